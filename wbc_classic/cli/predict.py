"""``wbc-classic predict``: classify single-leukocyte images with a saved classical model.

Writes one CSV row per image: ``path, status, predicted_class, p_<class>..., error, note``.
A file that cannot be read (missing, corrupt, not an image) gets ``status=error`` and its
error message; an image without a leukocyte gets ``status=no_cell`` and no class
(:mod:`wbc_classic.io.predictions`); the other images are still classified.  Exit codes
(:mod:`wbc_classic.io.options`): 0 every image was classified; 1 some failed or held no
leukocyte; 2 a bad option, a model that cannot be loaded, no input image, or an ``--out``
that cannot be written (checked before any work).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

from wbc_classic.io.options import (
    EXIT_FAILED_INPUTS,
    EXIT_OK,
    EXIT_USAGE,
    add_cache_options,
    n_jobs_value,
)
from wbc_classic.io.predictions import batch_report, write_predictions_csv

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
    parser.add_argument("--n-jobs", type=n_jobs_value, default=1,
                        help="processes for decoding, segmentation and features, this "
                             "one and N-1 workers (default 1; -1 = all cores)")
    parser.add_argument("--um-per-pixel", default=None, metavar="UM|auto",
                        help="pixel scale of these images: a number, or 'auto' (median "
                             "red-cell estimate over up to 50 of them); the images are "
                             "resampled to the model's training scale first (default: used "
                             "as they are)")
    add_cache_options(parser)
    parser.add_argument("--adapt", action="store_true",
                        help="first adapt the model to this batch's own cells, as "
                             "`wbc-classic adapt` does (at least 20 images with a leukocyte), "
                             "then classify them with it; the model file is not changed")
    from wbc_classic.classical.adapt import ADAPT_METHODS
    from wbc_classic.cli.adapt import add_adapt_options

    add_adapt_options(parser, ADAPT_METHODS)


def run(args: argparse.Namespace) -> int:
    """Run ``wbc-classic predict``; returns the exit code (0 all ok, 1 some failed, 2 usage)."""
    from wbc_classic.cli._inputs import load_model_and_inputs, resolve_scale
    from wbc_classic.io.atomic import check_output_file

    check_output_file(args.out, "--out")  # before the work; OutputError -> exit 2
    model, paths, code = load_model_and_inputs(
        args.model, args.inputs, n_jobs=args.n_jobs,
        deep_command=f"python -m deep.predict --checkpoint "
        f"{args.model} IMAGES_OR_DIRS --out preds.csv")
    if code is not None:
        return code
    try:
        um = resolve_scale(args.um_per_pixel, paths)
        factor = model.rescale_factor(um)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    if um is not None:
        print(f"pixel scale {um:.4f} um/px -> model's {model.um_per_pixel_:.4f} um/px "
              f"(images resized by {factor:.3f})")
    extra = {}
    if not args.no_cache:
        from wbc_classic.io.cachedir import resolve_cache_dir

        extra["cache_dir"] = resolve_cache_dir(args.cache_dir)
    if args.adapt:
        from wbc_classic.cli.adapt import adapt_model

        model.cache_dir = extra.get("cache_dir")
        try:
            model = adapt_model(model, paths, method=args.method, um_per_pixel=um,
                                n_jobs=args.n_jobs)
        except ValueError as exc:
            print(f"error: --adapt: cannot adapt to these {len(paths)} images: {exc}",
                  file=sys.stderr)
            return EXIT_USAGE
        um = None  # the adapted model resamples them itself
    t0 = time.perf_counter()
    # one call for the whole batch: the workers never wait for a slice's slowest image
    rows = model.predict_paths(paths, n_jobs=args.n_jobs, um_per_pixel=um,
                               progress="predict", **extra)
    seconds = time.perf_counter() - t0
    write_predictions_csv(args.out, rows, [str(c) for c in model.classes_])
    summary, problems = batch_report(rows, args.out, seconds)
    print(summary)
    for line in problems:
        print(line, file=sys.stderr)
    scored = [r for r in rows if r["status"] == "ok" and r.get("shift_score") == r.get(
        "shift_score")]  # NaN: a model file without a shift scorer
    if scored:
        from wbc_classic.classical.shift import batch_summary

        print(batch_summary(np.array([r["shift_flag"] for r in scored]), what="cells",
                            expected=1 - model.shift_.quantile,
                            adapted=getattr(model, "alignment_", None) is not None))
    return EXIT_FAILED_INPUTS if any(r["status"] != "ok" for r in rows) else EXIT_OK
