"""``wbc-classic features``: a table of named measurements, one row per cell.

The table CellProfiler and PyRadiomics users expect: ``path, status, error`` and then one
column per feature (flags, geometry, texture, LDP, colour, optical density), computed by the
one feature engine (:func:`wbc_classic.classical.extraction.extract_features`, cached on disk).
``--describe`` prints the column dictionary (name, unit, family, meaning); the descriptions come
from the feature modules themselves (:meth:`features.FeatureExtractor.describe_features`).

Sizes are in pixels, or in micrometres when the pixel scale is given (``--um-per-pixel 0.1``
or ``auto``, the red-cell estimate). The images are measured as they are, not resampled.

With ``--masks DIR`` the segmenter is not run: each image is measured with the 3-level mask of
the same file stem in ``DIR`` (255 nucleus, 128 cytoplasm, 0 background;
:func:`wbc_classic.data.datasets.read_label_mask`). These rows are not cached (the masks are
not part of any cache key).

Rows: ``status`` is ``ok``, ``no_cell`` (no leukocyte found, or an empty mask; the features
are then 0) or ``error`` (the file or its mask could not be read; ``error`` says why). Exit
codes (:mod:`wbc_classic.io.options`): 0 every row ok; 1 some rows failed or had no cell;
2 a bad option, no input, or an ``--out`` that cannot be written (checked before any work).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from wbc_classic.io.options import (
    EXIT_FAILED_INPUTS,
    EXIT_OK,
    EXIT_USAGE,
    add_cache_options,
    n_jobs_value,
)

HELP = "write a table of named per-cell measurements (CSV or Parquet)"
EXAMPLE = ("wbc-classic features cells/ --out table.csv --um-per-pixel auto   "
           "# wbc-classic features --describe")

#: table formats by file suffix
FORMATS = {".csv": "csv", ".parquet": "parquet", ".pq": "parquet"}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the ``features`` options to ``parser``."""
    from features import FAMILIES

    parser.add_argument("inputs", nargs="*", metavar="IMAGES_OR_DIRS",
                        help="image files and/or folders (searched recursively for images)")
    parser.add_argument("--out", type=Path, default=None,
                        help="table to write: .csv, or .parquet (needs pandas and pyarrow); "
                             "written atomically")
    parser.add_argument("--describe", action="store_true",
                        help="print the column dictionary (name, unit, family, meaning) and "
                             "exit; with --json as a JSON list")
    parser.add_argument("--families", nargs="+", default=list(FAMILIES), choices=FAMILIES,
                        metavar="FAMILY",
                        help=f"feature families to measure (default: all of {', '.join(FAMILIES)})")
    parser.add_argument("--um-per-pixel", default=None, metavar="UM|auto",
                        help="pixel scale: a number, or 'auto' (median red-cell estimate over "
                             "up to 50 images); sizes are then in um and um^2 (default: px)")
    parser.add_argument("--masks", type=Path, default=None, metavar="DIR",
                        help="measure these 3-level masks (255 nucleus / 128 cytoplasm / 0, "
                             "matched by file stem) instead of running the segmenter")
    parser.add_argument("--n-jobs", type=n_jobs_value, default=1,
                        help="parallel worker processes (default 1; -1 = all cores)")
    add_cache_options(parser)
    parser.add_argument("--json", action="store_true",
                        help="print the machine-readable result (a JSON summary, or the "
                             "dictionary with --describe) to stdout")


def _format_of(path: Path) -> str | None:
    return FORMATS.get(path.suffix.lower())


def print_dictionary(entries: Sequence[dict[str, str]], as_json: bool) -> None:
    """Print the column dictionary: a JSON list, or aligned ``name unit family meaning`` lines."""
    if as_json:
        print(json.dumps(list(entries), indent=1))
        return
    w_name = max(len(e["name"]) for e in entries)
    w_unit = max(len(e["unit"]) for e in entries)
    w_fam = max(len(e["family"]) for e in entries)
    print(f"{'name':<{w_name}}  {'unit':<{w_unit}}  {'family':<{w_fam}}  meaning")
    for e in entries:
        print(f"{e['name']:<{w_name}}  {e['unit']:<{w_unit}}  {e['family']:<{w_fam}}  "
              f"{e['meaning']}")


def mask_items(paths: Sequence[Path], mask_dir: Path) -> tuple[list[Any], dict[int, str]]:
    """Items for :func:`extract_features` measuring the user's masks, and per-index errors.

    Returns
    -------
    items : list
        A :class:`~wbc_classic.classical.extraction.Segmented` per usable image (its
        ``Segmentation`` built from the mask), else the path (a placeholder never extracted).
    errors : dict of int to str
        Index -> one-line error (unreadable image or mask, no mask, shape mismatch).
    """
    from segmentation.result import Segmentation
    from wbc_classic.classical.extraction import Segmented
    from wbc_classic.data.datasets import _index_by_stem, read_label_mask
    from wbc_classic.io.images import ImageReadError, read_image

    masks = _index_by_stem(mask_dir)
    items: list[Any] = []
    errors: dict[int, str] = {}
    for i, path in enumerate(paths):
        items.append(path)
        mask_path = masks.get(path.stem)
        if mask_path is None:
            errors[i] = f"{path}: no mask with stem {path.stem!r} in {mask_dir}"
            continue
        try:
            image = read_image(path)
        except ImageReadError as exc:
            errors[i] = str(exc)
            continue
        try:
            nucleus, cell = read_label_mask(mask_path)
        except ImageReadError as exc:
            errors[i] = f"mask {exc}"
            continue
        if nucleus.shape != image.shape[:2]:
            errors[i] = (f"{path}: mask {mask_path.name} is {nucleus.shape[1]}x"
                         f"{nucleus.shape[0]} px, the image {image.shape[1]}x{image.shape[0]}")
            continue
        cell = cell | nucleus
        seg = (Segmentation(nucleus=nucleus, cell=cell, found=True) if cell.any() else
               Segmentation.empty(cell.shape, message="the mask is empty"))
        items[i] = Segmented(image=image, segmentation=seg)
    return items, errors


def write_table(path: Path, columns: list[str], rows: list[list[Any]]) -> None:
    """Write the table atomically as CSV or Parquet (by ``path``'s suffix)."""
    from wbc_classic.io.atomic import atomic_open, atomic_path

    if _format_of(path) == "parquet":
        import pandas as pd

        frame = pd.DataFrame(rows, columns=columns)
        with atomic_path(path) as tmp:
            frame.to_parquet(tmp, index=False)
        return
    import csv

    with atomic_open(path, "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(columns)
        writer.writerows(rows)


def _parquet_missing() -> str | None:
    try:
        import pandas  # noqa: F401
        import pyarrow  # noqa: F401
    except ImportError as exc:
        return (f"--out .parquet needs pandas and pyarrow ({exc.name} is not installed): "
                "pip install pandas pyarrow, or write .csv")
    return None


def run(args: argparse.Namespace) -> int:
    """Run ``wbc-classic features``; returns the exit code (0 all ok, 1 some failed, 2 usage)."""
    from features import FeatureExtractor
    from wbc_classic.cli._inputs import resolve_scale
    from wbc_classic.io.atomic import check_output_file
    from wbc_classic.io.predictions import expand_inputs

    if args.describe:
        um = None if args.um_per_pixel is None else 1.0  # units only; the value is not needed
        print_dictionary(FeatureExtractor(families=tuple(args.families), um_per_pixel=um)
                         .describe_features(), args.json)
        return EXIT_OK
    if args.out is None:
        print("error: --out TABLE.csv|.parquet is required (or --describe)", file=sys.stderr)
        return EXIT_USAGE
    if _format_of(args.out) is None:
        print(f"error: --out {args.out}: unknown table format {args.out.suffix!r}; use .csv "
              f"or .parquet", file=sys.stderr)
        return EXIT_USAGE
    if _format_of(args.out) == "parquet" and (problem := _parquet_missing()):
        print(f"error: {problem}", file=sys.stderr)
        return EXIT_USAGE
    if args.masks is not None and not args.masks.is_dir():
        print(f"error: --masks {args.masks}: not a folder", file=sys.stderr)
        return EXIT_USAGE
    if not args.inputs:
        print("error: no IMAGES_OR_DIRS given", file=sys.stderr)
        return EXIT_USAGE
    check_output_file(args.out, "--out")  # before the work; OutputError -> exit 2
    paths = expand_inputs(args.inputs)
    if not paths:
        print(f"error: no image files found in {' '.join(args.inputs)} (empty folder?)",
              file=sys.stderr)
        return EXIT_USAGE
    try:
        um = resolve_scale(args.um_per_pixel, paths)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    return _measure(args, paths, um, FeatureExtractor(families=tuple(args.families),
                                                      um_per_pixel=um))


def _measure(args: argparse.Namespace, paths: list[Path], um: float | None, extractor) -> int:
    from wbc_classic.classical.extraction import extract_features
    from wbc_classic.data.datasets import DatasetError

    errors: dict[int, str] = {}
    items: list[Any] = list(paths)
    if args.masks is not None:
        try:
            items, errors = mask_items(paths, args.masks)
        except DatasetError as exc:
            print(f"error: --masks: {exc}", file=sys.stderr)
            return EXIT_USAGE
    todo = [i for i in range(len(paths)) if i not in errors]
    cache_dir = None
    if not args.no_cache:
        from wbc_classic.io.cachedir import resolve_cache_dir

        cache_dir = resolve_cache_dir(args.cache_dir)
    result = extract_features([items[i] for i in todo], extractor=extractor,
                              n_jobs=args.n_jobs, cache_dir=cache_dir,
                              progress=sys.stderr.isatty())
    names = [str(n) for n in result.feature_names]
    for f in result.failures:  # named by the path: a Segmented item's source is no name
        errors[todo[f.index]] = f"{paths[todo[f.index]]}: {f.stage} failed: {f.reason}"
    row_of = {i: k for k, i in enumerate(todo)}
    rows: list[list[Any]] = []
    counts = {"ok": 0, "no_cell": 0, "error": 0}
    zeros = np.zeros(len(names), np.float32)
    for i, path in enumerate(paths):
        if i in errors:
            status, error, values = "error", errors[i], zeros
        else:
            k = row_of[i]
            status = "ok" if result.found[k] else "no_cell"
            error = "" if result.found[k] else "no leukocyte found"
            values = result.X[k]
        counts[status] += 1
        rows.append([str(path), status, error, *(float(v) for v in values)])
    write_table(args.out, ["path", "status", "error", *names], rows)
    summary = {"out": str(args.out), "n_images": len(paths), **counts,
               "n_features": len(names), "um_per_pixel": um, "n_cached": result.n_cached,
               "masks": None if args.masks is None else str(args.masks)}
    if args.json:
        print(json.dumps(summary))
    else:
        unit = "px" if um is None else f"um ({um:.4f} um/px)"
        print(f"{len(paths)} images, {counts['ok']} measured, {counts['no_cell']} without a "
              f"leukocyte, {counts['error']} failed; {len(names)} features, sizes in {unit} "
              f"-> {args.out}")
    for i in sorted(errors)[:20]:
        print(f"  failed: {errors[i]}", file=sys.stderr)
    if len(errors) > 20:
        print(f"  ... and {len(errors) - 20} more (see the table)", file=sys.stderr)
    return EXIT_FAILED_INPUTS if counts["error"] or counts["no_cell"] else EXIT_OK
