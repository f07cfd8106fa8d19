"""Dataset loaders: class-per-folder trees, segmentation sets, Pascal-VOC smears, MedMNIST.

Every loader returns paths (not pixels) in a deterministic order, so a :class:`~wbc_classic.
split.Split` made once indexes the same files on every machine.  Pixels are read later with
:func:`wbc_classic.io.images.read_image`.

Class names are lower case.  Folder and annotation labels are mapped to them through
:func:`wbc_classic.data.labels.canonical_label`: case, surrounding spaces and ``_``/``-``/space
differences are ignored, then the built-in alias table (plus any user aliases) is applied,
so ``Neutrophils/``, ``SEG_NEUTROPHIL/`` and ``band/`` all become ``"neutrophil"``.
"""

from __future__ import annotations

import csv
import logging
import os
import xml.etree.ElementTree as ET
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import numpy as np

from wbc_classic.data.labels import BLOODMNIST_CLASSES, CLASS_SETS, canonical_label, label_key
from wbc_classic.io.images import IMAGE_EXTENSIONS, is_image_file, read_grey

if TYPE_CHECKING:
    from wbc_classic.data.split import Split

__all__ = [
    "DatasetError",
    "ImageSet",
    "SegSample",
    "SmearAnnotation",
    "load_class_folders",
    "load_image_manifest",
    "is_segmentation_layout",
    "load_labelled",
    "load_medmnist",
    "load_medmnist_split",
    "load_segmentation_set",
    "load_voc_smears",
    "read_label_mask",
]

logger = logging.getLogger(__name__)

PathLike = str | os.PathLike[str]

class DatasetError(ValueError):
    """A data set on disk does not have the expected structure (message says what and where)."""


def _resolve_classes(classes: Sequence[str] | str | None,
                     aliases: Mapping[str, str] | None) -> tuple[str, ...] | None:
    if classes is None:
        return None
    if isinstance(classes, str):
        key = label_key(classes).replace(" ", "")
        if key in CLASS_SETS:
            return CLASS_SETS[key]
        classes = [classes]
    out: list[str] = []
    for c in classes:
        canon = canonical_label(c, aliases)
        if canon in out:
            raise ValueError(f"class {c!r} requested twice (as {canon!r})")
        out.append(canon)
    if not out:
        raise ValueError("classes must not be empty")
    return tuple(out)


@dataclass(frozen=True, eq=False)
class ImageSet:
    """Image files with integer labels.

    Attributes
    ----------
    paths : list of Path, length N
        Image files, sorted by class then by relative path.
    y : ndarray of int64, shape (N,)
        Label of each file, an index into ``classes``.
    classes : tuple of str
        Class names; ``classes[y[i]]`` is the name of file ``i``.
    root : Path or None
        The folder the set was loaded from.
    """

    paths: list[Path]
    y: np.ndarray
    classes: tuple[str, ...]
    root: Path | None = None

    def __post_init__(self) -> None:
        paths = [Path(p) for p in self.paths]
        y = np.asarray(self.y)
        if y.size and not np.issubdtype(y.dtype, np.integer):
            raise TypeError(f"y must hold integers, got dtype {y.dtype}")
        y = np.ascontiguousarray(y, dtype=np.int64).reshape(-1)
        if len(paths) != len(y):
            raise ValueError(f"{len(paths)} paths but {len(y)} labels")
        classes = tuple(str(c) for c in self.classes)
        if len(set(classes)) != len(classes):
            raise ValueError(f"duplicate class names in {classes}")
        if y.size and (y.min() < 0 or y.max() >= len(classes)):
            raise ValueError(f"labels must lie in [0, {len(classes)}), got [{y.min()}, {y.max()}]")
        y.flags.writeable = False
        object.__setattr__(self, "paths", paths)
        object.__setattr__(self, "y", y)
        object.__setattr__(self, "classes", classes)

    def __len__(self) -> int:
        return len(self.paths)

    def __repr__(self) -> str:
        counts = ", ".join(f"{k}={v}" for k, v in self.class_counts().items())
        return f"ImageSet(n={len(self)}, {counts})"

    @property
    def labels(self) -> list[str]:
        """Class name of every file, length N."""
        return [self.classes[i] for i in self.y]

    def subset(self, indices: Sequence[int] | np.ndarray) -> ImageSet:
        """A new set with the files at ``indices`` (int positions or a boolean mask).

        Classes (and so label numbers) are kept even if some become empty.
        """
        idx = np.asarray(indices)
        if idx.dtype == bool:
            if idx.shape != (len(self),):
                raise ValueError(f"boolean mask of shape {idx.shape}, expected ({len(self)},)")
            idx = np.flatnonzero(idx)
        idx = idx.astype(np.int64, copy=False).reshape(-1)
        if idx.size and (idx.min() < -len(self) or idx.max() >= len(self)):
            raise IndexError(f"indices out of range for an ImageSet of {len(self)} files")
        return ImageSet([self.paths[i] for i in idx], self.y[idx], self.classes, self.root)

    def class_counts(self) -> dict[str, int]:
        """Number of files per class, in ``classes`` order (zeros included)."""
        counts = np.bincount(self.y, minlength=len(self.classes))
        return {c: int(n) for c, n in zip(self.classes, counts, strict=True)}


def _list_images(folder: Path, recursive: bool) -> tuple[list[Path], int]:
    """Image files under ``folder`` (sorted by relative posix path) and the count skipped."""
    found: list[Path] = []
    skipped = 0
    walker = folder.rglob("*") if recursive else folder.iterdir()
    for p in walker:
        rel_parts = p.relative_to(folder).parts
        if any(part.startswith(".") or part == "__MACOSX" for part in rel_parts):
            continue
        if p.is_dir():
            continue
        if is_image_file(p):
            found.append(p)
        else:
            skipped += 1
    found.sort(key=lambda q: q.relative_to(folder).as_posix())
    return found, skipped


def load_class_folders(
    root: PathLike,
    classes: Sequence[str] | str | None = None,
    aliases: Mapping[str, str] | None = None,
    *,
    recursive: bool = False,
    missing: str = "raise",
) -> ImageSet:
    """Load a class-per-folder tree (PBC, Raabin-WBC, LISC layouts).

    ``root/<class folder>/<image files>``.  Folder names are matched case-insensitively and
    through :func:`canonical_label` (built-in aliases + ``aliases``); several folders that map
    to one class (``seg_neutrophil/`` and ``band/``) are merged.  Files whose extension is
    not an image extension (``manifest.csv``, ``Thumbs.db``), hidden files and files directly
    in ``root`` are skipped.

    Parameters
    ----------
    root : str or Path
        The folder holding one sub-folder per class.
    classes : sequence of str or str, optional
        The classes to load, in label order (``y == i`` means ``classes[i]``).  Names go
        through the aliases.  The shorthands ``"pbc8"`` and ``"pbc5"`` select
        :data:`PBC8_CLASSES` and :data:`PBC5_CLASSES`.  Default: every class folder found,
        sorted by canonical name.  Folders of classes not requested are ignored.
    aliases : mapping of str to str, optional
        Extra raw-name -> class-name aliases, overriding the built-in ones.
    recursive : bool, optional
        Also collect images in nested sub-folders of each class folder.
    missing : {"raise", "skip"}, optional
        What a requested class without a folder, or whose folders hold no image, does:
        ``"raise"`` (default) a :class:`DatasetError`; ``"skip"`` leaves it with no image
        (its label index is kept), for a source that holds only some of the classes.

    Returns
    -------
    ImageSet
        Paths sorted by class (in ``classes`` order), then by path relative to the class
        folder; labels int64.

    Raises
    ------
    FileNotFoundError
        ``root`` does not exist.
    DatasetError
        ``root`` is not a folder or holds no class folders, a requested class has no folder,
        or a class has no image files (with ``missing="raise"``).
    """
    if missing not in ("raise", "skip"):
        raise ValueError(f"missing must be 'raise' or 'skip', not {missing!r}")
    root_p = Path(root)
    if not root_p.exists():
        raise FileNotFoundError(f"data set root {str(root_p)!r} does not exist")
    if not root_p.is_dir():
        raise DatasetError(f"data set root {str(root_p)!r} is not a folder")
    wanted = _resolve_classes(classes, aliases)

    folders: dict[str, list[Path]] = {}
    for d in sorted(root_p.iterdir(), key=lambda q: q.name):
        if not d.is_dir() or d.name.startswith(".") or d.name == "__MACOSX":
            continue
        folders.setdefault(canonical_label(d.name, aliases), []).append(d)
    if not folders:
        loose = sum(1 for p in root_p.iterdir() if p.is_file() and is_image_file(p))
        hint = (f"; it holds {loose} image file(s) directly -- pass the folder *containing* "
                f"one sub-folder per class" if loose else "")
        raise DatasetError(f"no class folders found in {str(root_p)!r}{hint}")

    if wanted is None:
        wanted = tuple(sorted(folders))
    elif missing == "raise":
        absent = [c for c in wanted if c not in folders]
        if absent:
            found = ", ".join(f"{d.name!r}->{c!r}" for c, ds in sorted(folders.items())
                              for d in ds)
            raise DatasetError(
                f"requested class(es) {absent} not found in {str(root_p)!r}; class folders "
                f"found: {found}"
            )

    paths: list[Path] = []
    labels: list[int] = []
    for label, cname in enumerate(wanted):
        class_files: list[tuple[str, Path]] = []
        for d in folders.get(cname, []):
            files, skipped = _list_images(d, recursive)
            if skipped:
                logger.info("skipped %d non-image file(s) in %s", skipped, d)
            if not files:
                if len(folders[cname]) == 1 and missing == "raise":
                    raise DatasetError(
                        f"class folder {str(d)!r} (class {cname!r}) contains no image files "
                        f"(extensions {sorted(IMAGE_EXTENSIONS)})"
                    )
                logger.warning("class folder %s (merged into %r) holds no images", d, cname)
            class_files += [(f"{d.name}/{f.relative_to(d).as_posix()}", f) for f in files]
        if not class_files:
            if missing == "skip":
                continue
            raise DatasetError(f"class {cname!r} has no image files in {str(root_p)!r} "
                               f"(folders: {[d.name for d in folders[cname]]})")
        class_files.sort(key=lambda t: t[0])
        paths += [f for _, f in class_files]
        labels += [label] * len(class_files)
    return ImageSet(paths, np.asarray(labels, dtype=np.int64), wanted, root_p)


def load_image_manifest(
    csv_path: PathLike,
    classes: Sequence[str] | str | None = None,
    aliases: Mapping[str, str] | None = None,
    *,
    path_column: str = "path",
    label_column: str = "label",
) -> ImageSet:
    """Load an image list from a CSV manifest (e.g. PBC's ``manifest.csv``: ``path,label``).

    Paths are relative to the CSV's folder (absolute paths are kept).  Labels go through
    :func:`canonical_label`.  Rows of classes not in ``classes`` are ignored.  Unlike
    :func:`load_class_folders` the manifest order is kept within each class (files are
    grouped by class in ``classes`` order, then in manifest order).

    Parameters
    ----------
    csv_path : str or Path
    classes : sequence of str or str, optional
        As in :func:`load_class_folders`; default: every label found, sorted.
    aliases : mapping, optional
    path_column, label_column : str, optional
        Column names (matched case-insensitively).

    Returns
    -------
    ImageSet

    Raises
    ------
    FileNotFoundError
        The CSV does not exist.
    DatasetError
        Missing columns, empty fields, listed files that do not exist, a requested class
        without rows, or no rows at all.
    """
    man = Path(csv_path)
    if not man.is_file():
        raise FileNotFoundError(f"manifest {str(man)!r} does not exist")
    wanted = _resolve_classes(classes, aliases)
    rows: list[tuple[str, Path]] = []
    with open(man, newline="", encoding="utf-8-sig") as fh:
        reader = csv.DictReader(fh)
        cols = {(f or "").strip().lower(): f for f in (reader.fieldnames or [])}
        pc, lc = path_column.lower(), label_column.lower()
        if pc not in cols or lc not in cols:
            raise DatasetError(f"manifest {str(man)!r} must have columns {path_column!r} and "
                               f"{label_column!r}, found {reader.fieldnames}")
        missing: list[str] = []
        for lineno, row in enumerate(reader, start=2):
            rel = (row.get(cols[pc]) or "").strip()
            raw = (row.get(cols[lc]) or "").strip()
            if not rel and not raw:
                continue
            if not rel or not raw:
                raise DatasetError(f"{str(man)!r} line {lineno}: empty path or label")
            label = canonical_label(raw, aliases)
            if wanted is not None and label not in wanted:
                continue
            p = man.parent / rel
            if not p.is_file():
                missing.append(rel)
                continue
            rows.append((label, p))
    if missing:
        raise DatasetError(f"{len(missing)} file(s) listed in {str(man)!r} do not exist, e.g. "
                           f"{missing[:3]}")
    found = sorted({lab for lab, _ in rows})
    if wanted is None:
        wanted = tuple(found)
    absent = [c for c in wanted if c not in found]
    if absent:
        raise DatasetError(f"class(es) {absent} have no rows in {str(man)!r}")
    if not rows:
        raise DatasetError(f"manifest {str(man)!r} lists no images")
    index = {c: i for i, c in enumerate(wanted)}
    order = sorted(range(len(rows)), key=lambda k: (index[rows[k][0]], k))
    return ImageSet([rows[k][1] for k in order],
                    np.asarray([index[rows[k][0]] for k in order], dtype=np.int64),
                    wanted, man.parent)


# --------------------------------------------------------------------------- segmentation sets


@dataclass(frozen=True)
class SegSample:
    """One image with its 3-level ground-truth mask (255 nucleus / 128 cytoplasm / 0 other).

    Attributes
    ----------
    image_path : Path
    mask_path : Path
    label : str or None
        Canonical class name when known (from ``manifest.csv``), else None.
    """

    image_path: Path
    mask_path: Path
    label: str | None = None


def read_label_mask(
    path: PathLike, *, levels: tuple[int, int, int] = (0, 128, 255)
) -> tuple[np.ndarray, np.ndarray]:
    """Read a 3-level label mask into nucleus and whole-cell masks.

    Pixels are classified by the nearest level, i.e. thresholds at the midpoints between
    ``background < cytoplasm < nucleus`` (64 and 191.5 for the default levels), so JPEG
    noise or resampling around the level values does not matter.  Colour masks are averaged
    over RGB first.

    Parameters
    ----------
    path : str or Path
        The mask file.
    levels : (int, int, int), optional
        Grey values of background, cytoplasm and nucleus.  Default ``(0, 128, 255)``.

    Returns
    -------
    nucleus : ndarray of bool, shape (H, W)
        Pixels closest to the nucleus level.
    cell : ndarray of bool, shape (H, W)
        Nucleus or cytoplasm (the whole cell).

    Raises
    ------
    ImageReadError
        The file cannot be read.
    """
    bg, cyto, nuc = (float(v) for v in levels)
    if not bg < cyto < nuc:
        raise ValueError(f"levels must be increasing (background, cytoplasm, nucleus), "
                         f"got {levels}")
    g = read_grey(path).astype(np.float32)
    nucleus = g > (cyto + nuc) / 2.0
    cell = g > (bg + cyto) / 2.0
    return np.ascontiguousarray(nucleus), np.ascontiguousarray(cell)


def _index_by_stem(folder: Path) -> dict[str, Path]:
    out: dict[str, Path] = {}
    for p in sorted(folder.iterdir(), key=lambda q: q.name):
        if p.is_file() and is_image_file(p):
            if p.stem in out:
                raise DatasetError(f"two files with stem {p.stem!r} in {str(folder)!r}: "
                                   f"{out[p.stem].name}, {p.name}")
            out[p.stem] = p
    return out


def load_segmentation_set(
    root: PathLike,
    *,
    manifest: str | None = "manifest.csv",
    images_dir: str = "images",
    masks_dir: str = "masks",
    aliases: Mapping[str, str] | None = None,
    unpaired: Literal["raise", "skip"] = "raise",
) -> list[SegSample]:
    """Load a segmentation ground-truth set (e.g. ``cellavision_seg``).

    With ``root/manifest.csv`` (columns ``image``, ``mask`` and optionally ``label``; paths
    relative to ``root``) the manifest defines the samples, in its order.  Without it, images
    in ``root/images`` and masks in ``root/masks`` are paired by file stem (``001.png`` with
    ``001.png``/``001.bmp``), sorted by stem, with ``label=None``.

    Parameters
    ----------
    root : str or Path
    manifest : str or None, optional
        Manifest file name inside ``root``; None ignores any manifest.
    images_dir, masks_dir : str, optional
        Sub-folder names used when there is no manifest.
    aliases : mapping, optional
        Label aliases for :func:`canonical_label`.
    unpaired : {"raise", "skip"}, optional
        Without a manifest, what to do with an image lacking a mask (or a mask lacking an
        image): raise :class:`DatasetError` (default) or skip it with a logged warning.

    Returns
    -------
    list of SegSample

    Raises
    ------
    FileNotFoundError
        ``root`` does not exist.
    DatasetError
        Malformed manifest, a referenced file is missing, no samples, or unpaired files.
    """
    root_p = Path(root)
    if not root_p.exists():
        raise FileNotFoundError(f"segmentation set root {str(root_p)!r} does not exist")
    if not root_p.is_dir():
        raise DatasetError(f"segmentation set root {str(root_p)!r} is not a folder")
    if unpaired not in ("raise", "skip"):
        raise ValueError(f"unpaired must be 'raise' or 'skip', got {unpaired!r}")
    samples: list[SegSample] = []
    man = root_p / manifest if manifest else None
    if man is not None and man.is_file():
        with open(man, newline="", encoding="utf-8-sig") as fh:
            reader = csv.DictReader(fh)
            fields = {(f or "").strip().lower(): f for f in (reader.fieldnames or [])}
            if "image" not in fields or "mask" not in fields:
                raise DatasetError(f"manifest {str(man)!r} must have columns 'image' and "
                                   f"'mask', found {reader.fieldnames}")
            for lineno, row in enumerate(reader, start=2):
                img_rel = (row.get(fields["image"]) or "").strip()
                mask_rel = (row.get(fields["mask"]) or "").strip()
                if not img_rel and not mask_rel:
                    continue  # blank line
                if not img_rel or not mask_rel:
                    raise DatasetError(f"{str(man)!r} line {lineno}: empty image or mask field")
                img, mask = root_p / img_rel, root_p / mask_rel
                for kind, p in (("image", img), ("mask", mask)):
                    if not p.is_file():
                        raise DatasetError(f"{str(man)!r} line {lineno}: {kind} file "
                                           f"{str(p)!r} does not exist")
                raw = (row.get(fields["label"]) or "").strip() if "label" in fields else ""
                samples.append(SegSample(img, mask, canonical_label(raw, aliases) if raw
                                         else None))
        if not samples:
            raise DatasetError(f"manifest {str(man)!r} lists no samples")
        return samples

    img_dir, mask_dir = root_p / images_dir, root_p / masks_dir
    for d in (img_dir, mask_dir):
        if not d.is_dir():
            raise DatasetError(f"{str(root_p)!r} has no {manifest or 'manifest'} and no "
                               f"{d.name}/ folder to pair images with masks")
    images, masks = _index_by_stem(img_dir), _index_by_stem(mask_dir)
    lonely = sorted(set(images) ^ set(masks))
    if lonely:
        msg = (f"{len(lonely)} file(s) without a partner between {images_dir}/ and "
               f"{masks_dir}/ in {str(root_p)!r}: {lonely[:5]}")
        if unpaired == "raise":
            raise DatasetError(msg)
        logger.warning("%s (skipped)", msg)
    for stem in sorted(set(images) & set(masks)):
        samples.append(SegSample(images[stem], masks[stem], None))
    if not samples:
        raise DatasetError(f"no image/mask pairs found in {str(root_p)!r}")
    return samples


# --------------------------------------------------------------------------- Pascal-VOC smears


def _empty_boxes() -> np.ndarray:
    return np.zeros((0, 4), dtype=np.int64)


@dataclass(frozen=True, eq=False)
class SmearAnnotation:
    """A smear field with Pascal-VOC boxes (and optionally a leukocyte mask).

    Attributes
    ----------
    image_path : Path
    boxes : dict of str to ndarray of int64, shape (n, 4)
        Boxes per object name as written in the XML (``"WBC"``, ``"RBC"``, ``"Platelets"``),
        columns ``xmin, ymin, xmax, ymax`` in pixels (VOC convention, as in the file).
    mask_path : Path or None
        ``Masks/<stem>.png`` when present (255 nucleus / 128 cytoplasm / 0 other).
    width, height : int or None
        Image size from the XML ``<size>`` element, when present and positive.
    n_dropped : int
        Objects ignored because of missing/invalid names or coordinates or zero area.
    """

    image_path: Path
    boxes: dict[str, np.ndarray]
    mask_path: Path | None = None
    width: int | None = None
    height: int | None = None
    n_dropped: int = 0

    def get(self, name: str) -> np.ndarray:
        """Boxes of object ``name`` (case-insensitive); an empty (0, 4) array when absent."""
        key = label_key(name)
        found = [b for k, b in self.boxes.items() if label_key(k) == key]
        return np.concatenate(found, axis=0) if found else _empty_boxes()

    @property
    def wbc_boxes(self) -> np.ndarray:
        """Leukocyte boxes, ndarray of int64 (n, 4): ``"WBC"`` in any case."""
        return self.get("WBC")


def _parse_voc(xml_path: Path) -> tuple[str | None, dict[str, np.ndarray], int | None,
                                         int | None, int]:
    try:
        root = ET.parse(xml_path).getroot()
    except ET.ParseError as exc:
        raise DatasetError(f"cannot parse VOC annotation {str(xml_path)!r}: {exc}") from None
    filename = (root.findtext("filename") or "").strip() or None

    def _int_or_none(text: str | None) -> int | None:
        try:
            v = int(round(float((text or "").strip())))
        except ValueError:
            return None
        return v if v > 0 else None

    size = root.find("size")
    width = _int_or_none(size.findtext("width")) if size is not None else None
    height = _int_or_none(size.findtext("height")) if size is not None else None
    boxes: dict[str, list[list[int]]] = {}
    dropped = 0
    for obj in root.iter("object"):
        name = (obj.findtext("name") or "").strip()
        bb = obj.find("bndbox")
        if not name or bb is None:
            dropped += 1
            continue
        try:
            x0, y0, x1, y1 = (float((bb.findtext(k) or "").strip())
                              for k in ("xmin", "ymin", "xmax", "ymax"))
        except ValueError:
            dropped += 1
            continue
        if not all(np.isfinite(v) for v in (x0, y0, x1, y1)):
            dropped += 1
            continue
        x0, x1 = sorted((x0, x1))
        y0, y1 = sorted((y0, y1))
        if width is not None:
            x0, x1 = min(max(x0, 0.0), float(width)), min(max(x1, 0.0), float(width))
        if height is not None:
            y0, y1 = min(max(y0, 0.0), float(height)), min(max(y1, 0.0), float(height))
        box = [int(round(v)) for v in (x0, y0, x1, y1)]
        if box[2] <= box[0] or box[3] <= box[1]:
            dropped += 1
            continue
        boxes.setdefault(name, []).append(box)
    arrays = {k: np.asarray(v, dtype=np.int64).reshape(-1, 4) for k, v in boxes.items()}
    return filename, arrays, width, height, dropped


def load_voc_smears(
    root: PathLike,
    *,
    annotations_dir: str = "Annotations",
    images_dir: str = "JPEGImages",
    masks_dir: str = "Masks",
    on_error: Literal["raise", "skip"] = "raise",
) -> list[SmearAnnotation]:
    """Load Pascal-VOC smear annotations (e.g. BCCD).

    ``root/Annotations/*.xml`` are read in sorted order.  The image is
    ``root/JPEGImages/<filename>`` from the XML, or, when that field is missing or wrong,
    the image in ``JPEGImages/`` with the XML's stem.  ``root/Masks/<stem>.png`` (any image
    extension) is attached when present.  Odd XML is tolerated: objects without a name or a
    bounding box, with non-numeric or zero-area boxes are dropped (counted in
    ``n_dropped``), swapped corners are reordered, boxes are clipped to ``<size>`` when it
    is given, and coordinates are rounded to int.

    Parameters
    ----------
    root : str or Path
    annotations_dir, images_dir, masks_dir : str, optional
        Sub-folder names.
    on_error : {"raise", "skip"}, optional
        For an unparsable XML or an annotation whose image is missing: raise
        :class:`DatasetError` (default) or skip it with a logged warning.

    Returns
    -------
    list of SmearAnnotation, sorted by annotation file name.

    Raises
    ------
    FileNotFoundError
        ``root`` does not exist.
    DatasetError
        No ``Annotations`` folder or no XML files, or (``on_error="raise"``) a bad XML or a
        missing image.
    """
    root_p = Path(root)
    if not root_p.exists():
        raise FileNotFoundError(f"VOC smear root {str(root_p)!r} does not exist")
    if on_error not in ("raise", "skip"):
        raise ValueError(f"on_error must be 'raise' or 'skip', got {on_error!r}")
    ann_dir, img_dir, mask_dir = (root_p / annotations_dir, root_p / images_dir,
                                  root_p / masks_dir)
    if not ann_dir.is_dir():
        raise DatasetError(f"{str(root_p)!r} has no {annotations_dir}/ folder")
    xmls = sorted((p for p in ann_dir.iterdir()
                   if p.suffix.lower() == ".xml" and not p.name.startswith(".")),
                  key=lambda q: q.name)
    if not xmls:
        raise DatasetError(f"no .xml annotations in {str(ann_dir)!r}")
    images_by_stem = _index_by_stem(img_dir) if img_dir.is_dir() else {}
    masks_by_stem = _index_by_stem(mask_dir) if mask_dir.is_dir() else {}

    out: list[SmearAnnotation] = []
    for xml_path in xmls:
        try:
            filename, boxes, width, height, dropped = _parse_voc(xml_path)
            image: Path | None = None
            if filename is not None:
                cand = img_dir / Path(filename).name
                if cand.is_file():
                    image = cand
                elif Path(filename).stem in images_by_stem:
                    image = images_by_stem[Path(filename).stem]
            if image is None:
                image = images_by_stem.get(xml_path.stem)
            if image is None:
                raise DatasetError(f"no image for annotation {str(xml_path)!r} "
                                   f"(filename field {filename!r}) in {str(img_dir)!r}")
        except DatasetError as exc:
            if on_error == "raise":
                raise
            logger.warning("skipping %s: %s", xml_path, exc)
            continue
        if dropped:
            logger.info("%s: dropped %d object(s) with missing or invalid boxes",
                        xml_path.name, dropped)
        mask = masks_by_stem.get(image.stem, masks_by_stem.get(xml_path.stem))
        out.append(SmearAnnotation(image, boxes, mask, width, height, dropped))
    return out


# --------------------------------------------------------------------------- MedMNIST


_MEDMNIST_SPLITS = ("train", "val", "test")


def load_medmnist(npz_path: PathLike) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Load a MedMNIST ``.npz`` file (e.g. ``bloodmnist.npz``, ``bloodmnist_224.npz``).

    The file holds ``{split}_images`` (N, H, W, 3) or (N, H, W) uint8 and ``{split}_labels``
    (N, 1) for ``split`` in train/val/test.  For BloodMNIST the labels index
    :data:`BLOODMNIST_CLASSES` (0 basophil, 1 eosinophil, 2 erythroblast, 3 ig, 4 lymphocyte,
    5 monocyte, 6 neutrophil, 7 platelet).

    Parameters
    ----------
    npz_path : str or Path

    Returns
    -------
    dict
        ``split -> (images, labels)`` for each split present: images ndarray of uint8
        (N, H, W, 3) C-contiguous (grey images repeated to 3 channels), labels ndarray of
        int64 (N,).

    Raises
    ------
    FileNotFoundError
        The file does not exist.
    DatasetError
        Not a readable ``.npz``, no ``*_images``/``*_labels`` pair, mismatched lengths, bad
        shapes or dtypes, or negative labels.
    """
    p = Path(npz_path)
    if not p.exists():
        raise FileNotFoundError(f"MedMNIST file {str(p)!r} does not exist")
    if p.is_dir():
        raise DatasetError(f"MedMNIST path {str(p)!r} is a folder, expected an .npz file")
    try:
        data = np.load(p, allow_pickle=False)
    except Exception as exc:
        raise DatasetError(f"{str(p)!r} is not a readable .npz file: {exc}") from None
    if not isinstance(data, np.lib.npyio.NpzFile):
        raise DatasetError(f"{str(p)!r} is a single .npy array, expected a MedMNIST .npz "
                           f"with train_images/train_labels/...")
    out: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    with data:
        keys = set(data.files)
        for split in _MEDMNIST_SPLITS:
            ik, lk = f"{split}_images", f"{split}_labels"
            if ik not in keys and lk not in keys:
                continue
            if ik not in keys or lk not in keys:
                raise DatasetError(f"{str(p)!r} has {ik if ik in keys else lk!r} but not "
                                   f"{lk if ik in keys else ik!r}")
            try:
                images, labels = data[ik], data[lk]
            except Exception as exc:
                raise DatasetError(f"cannot read {split} arrays from {str(p)!r}: {exc}") \
                    from None
            if images.ndim == 3:
                images = np.repeat(images[..., None], 3, axis=3)
            if images.ndim != 4 or images.shape[3] not in (1, 3):
                raise DatasetError(f"{str(p)!r}: {ik} has shape {images.shape}, expected "
                                   f"(N, H, W, 3) or (N, H, W)")
            if images.shape[3] == 1:
                images = np.repeat(images, 3, axis=3)
            if images.dtype != np.uint8:
                if (np.issubdtype(images.dtype, np.integer) and images.size
                        and images.min() >= 0 and images.max() <= 255):
                    images = images.astype(np.uint8)
                else:
                    raise DatasetError(f"{str(p)!r}: {ik} has dtype {images.dtype}, "
                                       f"expected uint8")
            if labels.ndim == 2 and labels.shape[1] == 1:
                labels = labels[:, 0]
            if labels.ndim != 1:
                raise DatasetError(f"{str(p)!r}: {lk} has shape {labels.shape}, expected "
                                   f"(N, 1) or (N,) (multi-label MedMNIST sets are not "
                                   f"supported)")
            if not np.issubdtype(labels.dtype, np.integer):
                raise DatasetError(f"{str(p)!r}: {lk} has dtype {labels.dtype}, expected "
                                   f"integers")
            if len(labels) != len(images):
                raise DatasetError(f"{str(p)!r}: {len(images)} {split} images but "
                                   f"{len(labels)} labels")
            if labels.size and labels.min() < 0:
                raise DatasetError(f"{str(p)!r}: negative label in {lk}")
            out[split] = (np.ascontiguousarray(images), labels.astype(np.int64))
    if not out:
        raise DatasetError(f"{str(p)!r} is not a MedMNIST file: expected keys like "
                           f"'train_images', 'train_labels', found {sorted(keys)}")
    return out


@dataclass(frozen=True)
class MedMNISTSet:
    """A MedMNIST file as one labelled set with its official split (:func:`load_medmnist_split`).

    Attributes
    ----------
    images : ndarray, shape (N, H, W, 3), uint8
        The train, val and test parts, in that order.
    y : ndarray of int64, shape (N,)
    classes : tuple of str
        :data:`BLOODMNIST_CLASSES` for a ``bloodmnist*`` file, else ``class_0``, ...
    split : wbc_classic.data.split.Split
        The official parts (scheme ``"official"``, no seed).
    """

    images: np.ndarray
    y: np.ndarray
    classes: tuple[str, ...]
    split: Split


def load_medmnist_split(npz_path: PathLike) -> MedMNISTSet:
    """Load a MedMNIST ``.npz`` (:func:`load_medmnist`) as one set with its official
    train/val/test :class:`~wbc_classic.data.split.Split`, so both model families train on the
    official train part and are scored on the official test part.

    Raises
    ------
    FileNotFoundError, DatasetError
        As :func:`load_medmnist`; also when the file has no train or no test part.
    """
    from wbc_classic.data.split import Split, label_digest

    p = Path(npz_path)
    parts = load_medmnist(p)
    missing = [name for name in ("train", "test") if name not in parts]
    if missing:
        raise DatasetError(f"{str(p)!r} has no {' and no '.join(missing)} part")
    order = [name for name in _MEDMNIST_SPLITS if name in parts]
    images = np.concatenate([parts[name][0] for name in order])
    y = np.concatenate([parts[name][1] for name in order])
    n = {name: len(parts[name][1]) if name in parts else 0 for name in _MEDMNIST_SPLITS}
    k = int(y.max()) + 1 if y.size else 0
    classes = (BLOODMNIST_CLASSES if p.name.lower().startswith("bloodmnist")
               and k <= len(BLOODMNIST_CLASSES) else tuple(f"class_{i}" for i in range(k)))
    a, b = n["train"], n["train"] + n["val"]
    split = Split(train=np.arange(a), val=np.arange(a, b), test=np.arange(b, len(y)),
                  seed=None, scheme="official", label_digest=label_digest(y))
    return MedMNISTSet(images, y, tuple(classes), split)


def is_segmentation_layout(root: PathLike) -> bool:
    """Whether ``root`` is laid out as a segmentation set: a ``manifest.csv`` with ``image``
    and ``mask`` columns, or ``images/`` and ``masks/`` folders."""
    root = Path(root)
    man = root / "manifest.csv"
    if man.is_file():
        head = man.read_text(encoding="utf-8-sig").splitlines()[:1]
        cols = {c.strip().lower() for c in head[0].split(",")} if head else set()
        return {"image", "mask"} <= cols
    return (root / "images").is_dir() and (root / "masks").is_dir()


def load_labelled(
    root: PathLike,
    classes: Sequence[str] | str | None = None,
    aliases: Mapping[str, str] | None = None,
) -> ImageSet:
    """Labelled single-cell images from either layout: class folders, or a segmentation set.

    A segmentation-layout folder (a ``manifest.csv`` with ``image`` and ``mask`` columns, as
    ``jtsc_seg`` and ``cellavision_seg``, or ``images/`` + ``masks/`` folders) is read with
    :func:`load_segmentation_set` and its manifest's labels; any other folder with
    :func:`load_class_folders`.

    Parameters
    ----------
    root : str or Path
    classes : sequence of str or str, optional
        As in :func:`load_class_folders` (default: every class present, sorted). Images of
        other classes are left out.
    aliases : mapping of str to str, optional

    Returns
    -------
    ImageSet

    Raises
    ------
    DatasetError
        When a segmentation set has images without a label, or the folder holds no image
        of the requested classes.
    """
    root = Path(root)
    if not is_segmentation_layout(root):
        return load_class_folders(root, classes, aliases)
    samples = load_segmentation_set(root, aliases=aliases)
    unlabelled = [s.image_path for s in samples if not s.label]
    if unlabelled:
        raise DatasetError(f"{root}: {len(unlabelled)} image(s) have no label in "
                           f"manifest.csv (e.g. {unlabelled[0]}); labelled images are needed")
    wanted = _resolve_classes(classes, aliases)
    names = wanted if wanted is not None else tuple(sorted({s.label for s in samples if s.label}))
    keep = [s for s in samples if s.label in names]
    if not keep:
        raise DatasetError(f"{str(root)!r}: no labelled image of the classes "
                           f"{', '.join(names) or '(none)'}")
    lookup: dict[str | None, int] = {c: i for i, c in enumerate(names)}
    return ImageSet([s.image_path for s in keep],
                    np.array([lookup[s.label] for s in keep], np.int64), names, root)
