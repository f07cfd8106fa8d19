"""Image files -> the network's view of them, with one row per file saying what happened.

Both commands that read a batch of image files for a trained checkpoint -- ``python -m
deep.predict`` (classify them) and ``python -m deep.adapt`` (re-estimate the normalisation
statistics on them) -- read them here, so a file is decoded, checked for a leukocyte and
prepared the same way by both: :func:`wbc_classic.io.images.read_image`, :func:`no_cell_reason`,
then :func:`deep.cache.prepare_image` with the checkpoint's crop convention and stain
normaliser (the same function that filled the training cache).
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from wbc_classic.io.predictions import mark_no_cell

from .cache import prepare_image

__all__ = ["CELL_CHECKS", "no_cell_reason", "read_inputs"]

#: the ways :func:`read_inputs` can tell that an image holds no leukocyte
CELL_CHECKS = ("segment", "contrast", "off")


def no_cell_reason(image: np.ndarray, check: str = "segment") -> str:
    """Why ``image`` holds no leukocyte, or ``""`` when it may hold one (see ``--cell-check``).

    Parameters
    ----------
    image : ndarray, shape (H, W, 3), uint8
    check : {"segment", "contrast", "off"}
    """
    if check not in CELL_CHECKS:
        raise ValueError(f"cell check must be one of {', '.join(CELL_CHECKS)}, got {check!r}")
    if check == "off":
        return ""
    image = np.asarray(image)
    step = max(1, min(image.shape[:2]) // 96)  # ~10^4 samples are plenty for two percentiles
    grey = image[::step, ::step].astype(np.float32).mean(axis=2)
    lo, hi = np.percentile(grey, [1, 99])
    if hi - lo < 8:
        return "no leukocyte found: the image has no contrast"
    if check == "segment":
        from wbc_classic.preprocess.cellcrop import leukocyte_found

        found, message = leukocyte_found(image)
        return "" if found else (message or "no leukocyte found")
    return ""


def read_inputs(paths: Sequence[str | os.PathLike[str]], meta: Mapping[str, Any], *,
                cell_check: str = "segment") -> tuple[list[dict[str, Any]], np.ndarray]:
    """Read image files and prepare the usable ones as the checkpoint's network sees them.

    Parameters
    ----------
    paths : sequence of path-like
    meta : mapping
        Checkpoint metadata: ``classes``, ``img_size``, ``crop``, ``crop_options``, ``stain``.
    cell_check : {"segment", "contrast", "off"}
        See :func:`no_cell_reason`.

    Returns
    -------
    rows : list of dict
        One per path, in order: ``path, status, predicted_class (""), proba (NaN per class),
        error, note``. ``status`` is ``"ok"`` for a file that was read and prepared (not yet
        classified), ``"no_cell"`` or ``"error"`` (``error`` names the file and the problem)
        otherwise.
    images : ndarray, shape (n_ok, S, S, 3), uint8
        The prepared images of the ``"ok"`` rows, in their order (``S = meta["img_size"]``).
    """
    from wbc_classic.io.images import read_image

    n_classes = len(meta["classes"])
    s = int(meta["img_size"])
    stain = None
    if meta.get("stain"):
        from wbc_classic.preprocess.stain import normalizer_from_dict

        stain = normalizer_from_dict(meta["stain"])
    rows: list[dict[str, Any]] = []
    images: list[np.ndarray] = []
    for p in map(Path, paths):
        row = {"path": str(p), "status": "error", "predicted_class": "",
               "proba": [float("nan")] * n_classes, "error": "", "note": ""}
        rows.append(row)
        try:
            img = read_image(p)
            h, w = img.shape[:2]
            if min(h, w) < 8:
                raise ValueError(f"image {p} is too small ({h}x{w} px, minimum 8 px)")
            reason = no_cell_reason(img, cell_check)
            if reason:
                mark_no_cell(row, reason)
                continue
            if min(h, w) < s // 2:
                row["note"] = f"upsampled from {h}x{w} px"
            images.append(prepare_image(img, s, crop=meta.get("crop", "center"),
                                        crop_options=meta.get("crop_options"), stain=stain))
            row["status"] = "ok"
        except (OSError, ValueError) as exc:
            msg = str(exc)
            row["error"] = msg if str(p) in msg else f"{p}: {msg}"
    out = np.stack(images) if images else np.zeros((0, s, s, 3), np.uint8)
    return rows, out
