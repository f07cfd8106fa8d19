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

from wbc_classic.predictions import expand_inputs, write_predictions_csv

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


def load_model_and_inputs(model_path: str, inputs: Sequence[str], what: str = "image files"):
    """Load the model and expand the inputs for a CLI command.

    Returns ``(model, paths, None)`` on success or ``(None, None, exit_code)`` after printing
    the problem: 2 when the model file cannot be loaded, 1 when no input file was found.
    """
    from wbc_classic.model import ModelFileError, load

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
    t0 = time.perf_counter()
    rows = model.predict_paths(paths, n_jobs=args.n_jobs)
    seconds = time.perf_counter() - t0
    write_predictions_csv(args.out, rows, model.classes)
    failed = [r for r in rows if r["status"] != "ok"]
    print(f"{len(rows)} images, {len(rows) - len(failed)} classified, {len(failed)} failed "
          f"({len(rows) / max(seconds, 1e-9):.1f} images/s) -> {args.out}")
    for r in failed[:20]:
        print(f"  failed: {r['error']}", file=sys.stderr)
    if len(failed) > 20:
        print(f"  ... and {len(failed) - 20} more (see the CSV)", file=sys.stderr)
    return 1 if failed else 0
