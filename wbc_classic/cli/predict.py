"""``wbc-classic predict``: classify single-leukocyte images with a saved classical model.

Writes one CSV row per image: ``path, status, predicted_class, p_<class>..., error, note``.
A file that cannot be read (missing, corrupt, not an image) gets ``status=error`` and its
error message; the other images are still classified.  Exit code 0 when every image was
classified, 1 when any failed, 2 when the model itself cannot be loaded.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from wbc_classic.io.predictions import expand_inputs, write_predictions_csv

HELP = "classify single-leukocyte images with a saved classical model"
EXAMPLE = "wbc-classic predict --model model.skops cells/ extra.jpg --out preds.csv --n-jobs 2"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the ``predict`` options to ``parser``."""
    parser.add_argument("--model", required=True, type=Path,
                        help="model file written by `wbc-classic train` (.skops)")
    parser.add_argument("inputs", nargs="+", metavar="IMAGES_OR_DIRS",
                        help="image files and/or folders (searched recursively for images)")
    parser.add_argument("--out", required=True, type=Path,
                        help="CSV file to write (written atomically)")
    parser.add_argument("--n-jobs", type=int, default=1,
                        help="parallel worker processes for decoding, segmentation and "
                             "features (default 1; -1 = all cores)")
    parser.add_argument("--um-per-pixel", default=None, metavar="UM|auto",
                        help="pixel scale of these images: a number, or 'auto' (median "
                             "red-cell estimate over up to 50 of them); the images are "
                             "resampled to the model's training scale first (default: used "
                             "as they are)")


def resolve_scale(value: str | None, paths: Sequence[Path]) -> float | None:
    """The ``--um-per-pixel`` value: None, the number given, or the batch estimate for
    ``"auto"`` (ValueError when it is neither or nothing can be measured)."""
    if value is None:
        return None
    if value == "auto":
        from wbc_classic.io.images import ImageReadError, read_image
        from wbc_classic.preprocess.scale import estimate_batch_scale

        def read(p):
            try:
                return read_image(p)
            except ImageReadError:  # a bad file is reported by the prediction itself
                return np.full((16, 16, 3), 255, np.uint8)

        um = estimate_batch_scale(paths, read=read)
        if not np.isfinite(um):
            raise ValueError("--um-per-pixel auto: no red cells measurable in the first 50 "
                             "images; give the scale as a number")
        return um
    try:
        return float(value)  # its range is checked by WBCModel.rescale_factor
    except ValueError:
        raise ValueError(f"--um-per-pixel takes a number or 'auto', got {value!r}") from None


def load_model_and_inputs(model_path: str, inputs: Sequence[str], what: str = "image files"):
    """Load the model and expand the inputs for a CLI command.

    Returns ``(model, paths, None)`` on success or ``(None, None, exit_code)`` after printing
    the problem: 2 when the model file cannot be loaded, 1 when no input file was found.
    """
    from wbc_classic.classical.modelfile import ModelFileError, load

    try:
        model = load(model_path)
    except ModelFileError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return None, None, 2
    paths = expand_inputs(inputs)
    if not paths:
        print(f"error: no {what} found in the given inputs", file=sys.stderr)
        return None, None, 1
    return model, paths, None


def run(args: argparse.Namespace) -> int:
    """Run ``wbc-classic predict``; returns the exit code (0 all ok, 1 some failed, 2 no model)."""
    model, paths, code = load_model_and_inputs(args.model, args.inputs)
    if code is not None:
        return code
    try:
        um = resolve_scale(args.um_per_pixel, paths)
        factor = model.rescale_factor(um)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    if um is not None:
        print(f"pixel scale {um:.4f} um/px -> model's {model.um_per_pixel_:.4f} um/px "
              f"(images resized by {factor:.3f})")
    t0 = time.perf_counter()
    rows = model.predict_paths(paths, n_jobs=args.n_jobs, um_per_pixel=um)
    seconds = time.perf_counter() - t0
    write_predictions_csv(args.out, rows, [str(c) for c in model.classes_])
    failed = [r for r in rows if r["status"] != "ok"]
    print(f"{len(rows)} images, {len(rows) - len(failed)} classified, {len(failed)} failed "
          f"({len(rows) / max(seconds, 1e-9):.1f} images/s) -> {args.out}")
    for r in failed[:20]:
        print(f"  failed: {r['error']}", file=sys.stderr)
    if len(failed) > 20:
        print(f"  ... and {len(failed) - 20} more (see the CSV)", file=sys.stderr)
    return 1 if failed else 0
