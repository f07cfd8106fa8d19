"""``wbc-classic adapt``: adapt a classical model to a laboratory's unlabelled cells.

Fits what can be fitted without labels on the lab's single-leukocyte images
(:meth:`wbc_classic.classical.model.WBCModel.adapt`): their pixel scale (``--um-per-pixel
auto``) and an alignment of their feature vectors to the training cells' (``--method``:
``auto`` by default -- the class-mean map when the shift warning flags at least half the lab's
cells, else no map --,
``class-means``, per-feature ``standardize``, or ``coral``), and writes a new model file that
predicts that lab's images with both. ``wbc-classic predict --adapt`` does the same for one
batch without saving.

A deep network's checkpoint (``.pt``) is adapted by ``python -m deep.adapt`` instead (the
features its head receives, or its BatchNorm statistics); given one, this command says so and
stops.

Exit codes (:mod:`wbc_classic.io.options`): 0 the adapted model was written; 2 a bad option,
a model that cannot be loaded (or a deep checkpoint), too few usable images (fewer than 20
with a leukocyte, or a scale that cannot be measured), or an ``--out`` that cannot be
written.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from wbc_classic.io.options import EXIT_OK, EXIT_USAGE, add_cache_options, n_jobs_value

HELP = "adapt a classical model to a laboratory's unlabelled cells (scale, feature alignment)"
EXAMPLE = ("wbc-classic adapt --model model.skops --images ../shared/data/jtsc_seg/images "
           "--out model-jtsc.skops --um-per-pixel auto")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the ``adapt`` options to ``parser``."""
    from wbc_classic.classical.adapt import ADAPT_METHODS

    parser.add_argument("--model", required=True, type=Path, help="model file to adapt")
    parser.add_argument("--images", required=True, nargs="+", metavar="IMAGES_OR_DIRS",
                        help="the lab's unlabelled single-leukocyte images and/or folders")
    parser.add_argument("--out", required=True, type=Path, help="adapted model file to write")
    add_adapt_options(parser, ADAPT_METHODS)
    parser.add_argument("--um-per-pixel", default=None, metavar="UM|auto",
                        help="pixel scale of the lab's images: a number or 'auto' (median "
                             "red-cell estimate); stored, so later predictions resample them "
                             "to the training scale (default: used as they are)")
    parser.add_argument("--n-jobs", type=n_jobs_value, default=1,
                        help="parallel workers for the features (default 1; -1 = all cores)")
    add_cache_options(parser)


def add_adapt_options(parser: argparse.ArgumentParser, methods) -> None:
    """``--method`` (shared with ``predict --adapt``)."""
    parser.add_argument("--method", choices=list(methods), default="auto",
                        help="feature alignment: auto (default: class-means when the "
                             "shift warning flags at least half the lab's cells, else "
                             "none), class-means (the lab's "
                             "class means, classes from the model's own confident "
                             "predictions), standardize (per-feature mean and spread of the "
                             "lab) or coral (also the correlations)")


def adapt_model(model, paths, *, method: str, um_per_pixel, n_jobs: int):
    """``model.adapt`` with a one-line report; returns the adapted model (ValueError on
    unusable input)."""
    new = model.adapt([str(p) for p in paths], method=method, um_per_pixel=um_per_pixel,
                      n_jobs=n_jobs, progress=True)
    report_adaptation(new.metadata_["adaptation"])
    return new


def report_adaptation(info: dict, *, of: str = "images", file=None) -> None:
    """Print what an adaptation did (``metadata_["adaptation"]`` of the adapted model) to
    ``file`` (default stdout): the cells it was fitted on, the method (for ``auto`` its
    choice and why) and the scale; ``of`` names what ``info["n_images"]`` counts."""
    scale = "" if info.get("um_per_pixel") is None else \
        f", pixel scale {info['um_per_pixel']:.4f} um/px"
    how = info["method"]
    if "flagged" in info:
        scores = ", ".join(f"{k} {v:.2f}" for k, v in info["median_shift"].items())
        how = (f"auto: {info['chosen']}; {100 * info['flagged']:.0f} % of the cells flagged "
               f"by the shift warning; median shift score {scores}")
    elif "chosen" in info:  # an older model file's fallback
        how = f"auto: {info['chosen']}"
    cells = f"{info['n_cells']} of {info['n_images']} images" if of == "images" else \
        f"the {info['n_cells']} leukocytes of {info['n_images']} {of}"
    print(f"adapted to {cells} ({how}{scale})", file=file)
    if info.get("chosen") == "none":
        why = info.get("note") or ("fewer than half the lab's cells look unlike the training "
                                   "cells")
        print(f"no feature alignment is applied: {why}", file=file)


def run(args: argparse.Namespace) -> int:
    """Run ``wbc-classic adapt``; returns the exit code (0 written, 2 usage/unusable input)."""
    from wbc_classic.cli._inputs import load_model_and_inputs, resolve_scale
    from wbc_classic.io.atomic import check_output_file

    check_output_file(args.out, "--out")  # before the work; OutputError -> exit 2
    model, paths, code = load_model_and_inputs(
        args.model, args.images, n_jobs=args.n_jobs,
        deep_command=f"python -m deep.adapt --checkpoint {args.model} "
        "--images IMAGES_OR_DIRS --out adapted.pt")
    if code is not None:
        return code
    if not args.no_cache:
        from wbc_classic.io.cachedir import resolve_cache_dir

        model.cache_dir = resolve_cache_dir(args.cache_dir)
    try:
        um = resolve_scale(args.um_per_pixel, paths)
        new = adapt_model(model, paths, method=args.method, um_per_pixel=um,
                          n_jobs=args.n_jobs)
    except ValueError as exc:
        print(f"error: cannot adapt to {len(paths)} images in "
              f"{' '.join(str(i) for i in args.images)}: {exc}", file=sys.stderr)
        return EXIT_USAGE
    from wbc_classic.classical.modelfile import save as save_model

    try:
        path = save_model(new, args.out)
    except OSError as exc:
        print(f"error: cannot write {args.out}: {exc}", file=sys.stderr)
        return EXIT_USAGE
    print(f"saved {path}")
    return EXIT_OK
