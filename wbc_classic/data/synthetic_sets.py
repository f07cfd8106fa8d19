"""Synthetic data sets on disk: the writers around the renderer of
:mod:`wbc_classic.data.synthetic`.

* :func:`write_class_folders` -- one folder per class of single-cell crops (PNG), the layout of
  PBC, for the classical and deep training commands and the benchmark's synthetic preset;
* :func:`write_segmentation_set` -- images with 3-level nucleus/cell masks and a manifest, the
  layout of ``cellavision_seg``, for ``eval-seg``;
* :func:`write_smear_set` -- smear fields with Pascal-VOC boxes, the layout of BCCD.

Every file is written atomically; the same seed writes the same bytes.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from wbc_classic.data.labels import PBC5_CLASSES
from wbc_classic.data.synthetic import (
    _check_label,
    _item_seed,
    make_cell,
    make_smear,
)
from wbc_classic.io.atomic import atomic_open, atomic_write_bytes

__all__ = ["write_class_folders", "write_segmentation_set", "write_smear_set"]


def _png_bytes(arr: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="PNG", optimize=False)
    return buf.getvalue()


def _jpeg_bytes(arr: np.ndarray, quality: int = 92) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="JPEG", quality=quality)
    return buf.getvalue()


def _label_mask(nucleus: np.ndarray, cell: np.ndarray) -> np.ndarray:
    m = np.zeros(cell.shape, np.uint8)
    m[cell] = 128
    m[nucleus] = 255
    return m


def write_class_folders(root: str | Path, n_per_class: int, *,
                        classes: Sequence[str] = PBC5_CLASSES, size: int = 128, seed: int = 0,
                        **variation: Any) -> Path:
    """Write a class-folder image set ``root/<class>/<class>_<iiii>.png``.

    Parameters
    ----------
    root : path
        Output folder (created).
    n_per_class : int
        Images per class; file ``<class>_<i:04d>.png`` holds item ``i`` of
        :func:`make_cells` for that class (same seed -> same bytes).
    classes, size, seed, **variation
        As in :func:`make_cells`.

    Returns
    -------
    pathlib.Path
        ``root``.
    """
    root = Path(root)
    for c in (_check_label(c) for c in classes):
        for i in range(int(n_per_class)):
            cellobj = make_cell(c, size=size, rng=_item_seed(seed, c, i), **variation)
            atomic_write_bytes(root / c / f"{c}_{i:04d}.png", _png_bytes(cellobj.image))
    return root


def write_segmentation_set(root: str | Path, n: int, seed: int = 0, *, size: int = 300,
                           classes: Sequence[str] = PBC5_CLASSES, **variation: Any) -> Path:
    """Write a segmentation set laid out like ``cellavision_seg``.

    Files: ``images/NNN.png`` (RGB), ``masks/NNN.png`` (uint8: 255 nucleus, 128 cytoplasm,
    0 background and red cells), ``manifest.csv`` with columns ``image,mask,label``.
    Numbering starts at 001; labels cycle through ``classes``.

    Parameters
    ----------
    root : path
        Output folder.
    n : int
        Number of images.
    seed : int, default 0
        Base seed.
    size : int, default 300
        Image side (cellavision_seg uses 300).
    classes, **variation
        Classes to cycle through; extra arguments go to :func:`make_cell`.

    Returns
    -------
    pathlib.Path
        ``root``.
    """
    root = Path(root)
    classes = tuple(_check_label(c) for c in classes)
    rows = []
    for i in range(int(n)):
        c = classes[i % len(classes)]
        cellobj = make_cell(c, size=size, rng=np.random.default_rng([int(seed), 7, i]),
                            **variation)
        name = f"{i + 1:03d}.png"
        atomic_write_bytes(root / "images" / name, _png_bytes(cellobj.image))
        atomic_write_bytes(root / "masks" / name,
                           _png_bytes(_label_mask(cellobj.nucleus, cellobj.cell)))
        rows.append((f"images/{name}", f"masks/{name}", c))
    with atomic_open(root / "manifest.csv", "w", newline="") as fh:
        wr = csv.writer(fh, lineterminator="\n")
        wr.writerow(["image", "mask", "label"])
        wr.writerows(rows)
    return root


def _voc_xml(filename: str, shape: tuple[int, int], objects: list[tuple]) -> str:
    h, w = shape
    parts = [
        "<annotation>",
        "\t<folder>JPEGImages</folder>",
        f"\t<filename>{filename}</filename>",
        "\t<source>",
        "\t\t<database>wbc_classic.data.synthetic</database>",
        "\t</source>",
        "\t<size>",
        f"\t\t<width>{w}</width>",
        f"\t\t<height>{h}</height>",
        "\t\t<depth>3</depth>",
        "\t</size>",
        "\t<segmented>1</segmented>",
    ]
    for name, box, subtype in objects:
        x0, y0, x1, y1 = (int(t) for t in box)
        trunc = int(x0 <= 0 or y0 <= 0 or x1 >= w or y1 >= h)
        parts += ["\t<object>", f"\t\t<name>{name}</name>"]
        if subtype:
            parts.append(f"\t\t<subtype>{subtype}</subtype>")
        parts += [
            "\t\t<pose>Unspecified</pose>",
            f"\t\t<truncated>{trunc}</truncated>",
            "\t\t<difficult>0</difficult>",
            "\t\t<bndbox>",
            f"\t\t\t<xmin>{x0}</xmin>",
            f"\t\t\t<ymin>{y0}</ymin>",
            f"\t\t\t<xmax>{x1}</xmax>",
            f"\t\t\t<ymax>{y1}</ymax>",
            "\t\t</bndbox>",
            "\t</object>",
        ]
    parts.append("</annotation>")
    return "\n".join(parts) + "\n"


def write_smear_set(root: str | Path, n: int, seed: int = 0, *,
                    shape: tuple[int, int] = (480, 640), rbc_boxes: bool = True,
                    **variation: Any) -> Path:
    """Write a Pascal-VOC-like smear set laid out like ``bccd``.

    Files: ``JPEGImages/Synthetic_NNNNN.jpg``, ``Annotations/Synthetic_NNNNN.xml`` (objects
    named ``WBC`` with a ``<subtype>`` child giving the class, plus ``RBC`` boxes when
    ``rbc_boxes``), ``Masks/Synthetic_NNNNN.png`` (255 nucleus, 128 cytoplasm, 0 other).
    Boxes are the half-open pixel boxes of :class:`SyntheticField`.

    Parameters
    ----------
    root : path
        Output folder.
    n : int
        Number of fields.
    seed : int, default 0
        Base seed; field ``i`` uses ``(seed, 11, i)``.
    shape : (H, W), default (480, 640)
        Field shape.
    rbc_boxes : bool, default True
        Also annotate the red cells.
    **variation
        Forwarded to :func:`make_smear`.

    Returns
    -------
    pathlib.Path
        ``root``.
    """
    root = Path(root)
    for i in range(int(n)):
        f = make_smear(shape=shape, rng=np.random.default_rng([int(seed), 11, i]), **variation)
        stem = f"Synthetic_{i:05d}"
        atomic_write_bytes(root / "JPEGImages" / f"{stem}.jpg", _jpeg_bytes(f.image))
        atomic_write_bytes(root / "Masks" / f"{stem}.png",
                           _png_bytes(_label_mask(f.nucleus, f.cell)))
        objs: list[tuple[str, Any, str | None]] = [
            ("WBC", b, lab) for b, lab in zip(f.boxes, f.labels, strict=True)]
        if rbc_boxes:
            objs += [("RBC", b, None) for b in f.rbc_boxes]
        with atomic_open(root / "Annotations" / f"{stem}.xml", "w") as fh:
            fh.write(_voc_xml(f"{stem}.jpg", shape, objs))
    return root
