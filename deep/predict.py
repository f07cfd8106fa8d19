"""Classify images with a trained deep checkpoint; the same CSV as ``wbc-classic predict``.

::

    python -m deep.predict --checkpoint runs/wbcnet64/best.pt cells/ extra.jpg --out preds.csv

CSV columns: ``path, status, predicted_class, p_<class>... (checkpoint class order), error,
note``. An unreadable image gets ``status=error`` with its message and the batch goes on. An
image without a leukocyte gets ``status=no_cell``, no class and empty probabilities
(:mod:`wbc_classic.io.predictions`); ``--cell-check`` decides how that is found out:

``segment`` (default)  the classical segmenter's ``found`` flag
                       (:func:`wbc_classic.preprocess.cellcrop.leukocyte_found`), the same
                       decision as ``wbc-classic predict``; costs about 45 ms per 360 px image;
``contrast``           only blank or uniform images (the 1st-99th percentile range of the grey
                       levels below 8 of 255): cheap, but an image of red cells alone is
                       still classified;
``off``                every readable image is classified.

Exit codes (:mod:`wbc_classic.io.options`): 0 every image was classified; 1 some failed or
held no leukocyte; 2 a bad option or device, an unusable checkpoint, no input image, or an
``--out`` that cannot be written (checked before any work). The CSV is written atomically.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from wbc_classic.io.options import EXIT_FAILED_INPUTS, EXIT_OK, EXIT_USAGE, int_range
from wbc_classic.io.predictions import expand_inputs, mark_no_cell, write_predictions_csv

from .cache import prepare_image
from .data import normalize_batch

__all__ = ["CELL_CHECKS", "expand_inputs", "no_cell_reason", "predict_paths", "predict_proba",
           "write_predictions_csv", "main"]

#: the ways :func:`predict_paths` can tell that an image holds no leukocyte
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


@torch.no_grad()
def predict_proba(model: nn.Module, images: np.ndarray, meta: dict[str, Any], *,
                  batch_size: int = 64, device: str | torch.device = "cpu",
                  tta: bool = False) -> np.ndarray:
    """Class probabilities (softmax) for uint8 images already at the model's size.

    Parameters
    ----------
    model : nn.Module
    images : ndarray, shape (N, S, S, 3), uint8
        RGB, ``S == meta["img_size"]`` (use :func:`deep.cache.prepare_image` with the
        checkpoint's ``crop`` and ``crop_options``).
    meta : dict
        Checkpoint metadata (``mean``, ``std``, ``img_size``).
    tta : bool
        Average the logits over the 4 flips.

    Returns
    -------
    ndarray, shape (N, n_classes), float32
    """
    images = np.asarray(images)
    s = int(meta["img_size"])
    if images.ndim != 4 or images.shape[-1] != 3:
        raise ValueError(f"expected uint8 images of shape (N, {s}, {s}, 3), got {images.shape}")
    if images.shape[1:3] != (s, s):
        raise ValueError(f"images are {images.shape[1]}x{images.shape[2]} px but the model "
                         f"expects {s}x{s}: prepare them with deep.cache.prepare_image")
    model.eval()
    device = torch.device(device)
    out = []
    for i in range(0, len(images), batch_size):
        xb = torch.from_numpy(np.ascontiguousarray(images[i:i + batch_size])).to(device)
        x = normalize_batch(xb, meta["mean"], meta["std"])
        z = model(x)
        if tta:
            z = (z + model(x.flip(3)) + model(x.flip(2)) + model(x.flip(2, 3))) / 4
        out.append(torch.softmax(z.float(), 1).cpu())
    n_classes = len(meta["classes"])
    return torch.cat(out).numpy() if out else np.zeros((0, n_classes), np.float32)


def predict_paths(model: nn.Module, meta: dict[str, Any], paths: Sequence[str | os.PathLike],
                  *, batch_size: int = 64, device: str | torch.device = "cpu",
                  tta: bool = False, cell_check: str = "segment",
                  on_batch: Any = None) -> list[dict[str, Any]]:
    """Read, resize and classify image files; one row dict per path, errors included.

    Row keys: ``path, status ("ok"|"no_cell"|"error"), predicted_class, proba (list), error,
    note``. ``cell_check``: see :func:`no_cell_reason`. ``on_batch(n)`` is called after each
    batch of ``n`` paths (progress).
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    from wbc_classic.io.images import read_image

    classes = list(meta["classes"])
    s = int(meta["img_size"])
    stain = None
    if meta.get("stain"):
        from wbc_classic.preprocess.stain import normalizer_from_dict

        stain = normalizer_from_dict(meta["stain"])
    rows: list[dict[str, Any]] = []
    for start in range(0, len(paths), batch_size):
        chunk = [Path(p) for p in paths[start:start + batch_size]]
        imgs, ok_rows = [], []
        for p in chunk:
            row = {"path": str(p), "status": "error", "predicted_class": "",
                   "proba": [float("nan")] * len(classes), "error": "", "note": ""}
            try:
                img = read_image(p)
                h, w = img.shape[:2]
                if min(h, w) < 8:
                    raise ValueError(f"image {p} is too small ({h}x{w} px, minimum 8 px)")
                reason = no_cell_reason(img, cell_check)
                if reason:
                    mark_no_cell(row, reason)
                    rows.append(row)
                    continue
                if min(h, w) < s // 2:
                    row["note"] = f"upsampled from {h}x{w} px"
                imgs.append(prepare_image(img, s, crop=meta.get("crop", "center"),
                                          crop_options=meta.get("crop_options"),
                                          stain=stain))
                ok_rows.append(row)
            except (OSError, ValueError) as exc:
                msg = str(exc)
                row["error"] = msg if str(p) in msg else f"{p}: {msg}"
            rows.append(row)
        if imgs:
            proba = predict_proba(model, np.stack(imgs), meta, batch_size=batch_size,
                                  device=device, tta=tta)
            for row, pr in zip(ok_rows, proba, strict=True):
                row.update(status="ok", predicted_class=classes[int(pr.argmax())],
                           proba=[float(v) for v in pr])
        if on_batch is not None:
            on_batch(len(chunk))
    return rows


EXAMPLE = """example:
  python -m deep.predict --checkpoint runs/wbcnet64/best.pt cells/ extra.jpg --out preds.csv
"""


def build_parser() -> argparse.ArgumentParser:
    """The ``python -m deep.predict`` argument parser."""
    p = argparse.ArgumentParser(prog="python -m deep.predict", epilog=EXAMPLE,
                                formatter_class=argparse.RawDescriptionHelpFormatter,
                                description="Classify images with a deep checkpoint.")
    p.add_argument("--checkpoint", required=True, type=Path, help="best.pt / last.pt")
    p.add_argument("inputs", nargs="+", metavar="IMAGES_OR_DIRS",
                   help="image files and/or folders (searched recursively for images)")
    p.add_argument("--out", required=True, type=Path, help="CSV file (written atomically)")
    p.add_argument("--batch-size", type=int_range(1, 4096), default=64,
                   help="images per forward pass (default 64)")
    p.add_argument("--tta", action="store_true", help="average over the 4 flips")
    p.add_argument("--device", default=None, help="cpu / cuda (default: cuda if present)")
    p.add_argument("--cell-check", choices=CELL_CHECKS, default="segment",
                   help="how an image without a leukocyte is recognised (status no_cell): "
                        "segment (default, the classical segmenter), contrast (blank "
                        "images only, cheap) or off")
    return p


def main(argv: list[str] | None = None) -> int:
    """Entry point; exit code 0 all ok, 1 some images failed or held no leukocyte, 2 usage."""
    from wbc_classic.io.atomic import OutputError, check_output_file
    from wbc_classic.io.progress import Progress

    from .checkpoint import load_model
    from .device import resolve_device

    a = build_parser().parse_args(argv)
    try:
        check_output_file(a.out, "--out")
        device = resolve_device(a.device)
        model, meta = load_model(a.checkpoint, device=device)
    except (OutputError, FileNotFoundError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    paths = expand_inputs(a.inputs)
    if not paths:
        print(f"error: no image files found in {' '.join(a.inputs)} (empty folder?)",
              file=sys.stderr)
        return EXIT_USAGE
    t0 = time.perf_counter()
    with Progress(total=len(paths), desc="predict", unit="img") as bar:
        rows = predict_paths(model, meta, paths, batch_size=a.batch_size, device=device,
                             tta=a.tta, cell_check=a.cell_check, on_batch=bar.update)
    dt = time.perf_counter() - t0
    write_predictions_csv(a.out, rows, meta["classes"])
    failed = [r for r in rows if r["status"] != "ok"]
    n_no_cell = sum(r["status"] == "no_cell" for r in rows)
    print(f"{len(rows)} images, {len(rows) - len(failed)} classified, "
          f"{len(failed) - n_no_cell} failed, {n_no_cell} without a leukocyte "
          f"({len(rows) / max(dt, 1e-9):.1f} images/s) -> {a.out}")
    for r in failed[:20]:
        print(f"  {'failed' if r['status'] == 'error' else r['status']}: {r['error']}",
              file=sys.stderr)
    if len(failed) > 20:
        print(f"  ... and {len(failed) - 20} more (see the CSV)", file=sys.stderr)
    return EXIT_FAILED_INPUTS if failed else EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
