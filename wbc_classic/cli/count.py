"""``wbc-classic count``: differential leukocyte count of blood-smear fields.

For each field image: find every leukocyte (:func:`segmentation.segment_field`), classify
each one with a saved classical model, and write into ``--out``:

``cells.csv``        one row per leukocyte: image, cell, bbox, touches_border, class, p_<class>
``counts.csv``       one row per image and an ``ALL`` row: n_cells, <class>_count, <class>_pct
``counts.json``      the same counts and percentages, plus the model and class order
``annotated/``       ``<image>.png`` with a labelled box around every leukocyte

With ``--adapt`` the model is first adapted to the leukocytes of all the fields, as
``wbc-classic adapt`` adapts it to a lab's single-cell images (``--method``; ``auto``: the
class-mean map when the shift warning flags at least half the cells, else none), and then
classifies them: the cells of every field are found first, the counts come after.

A field that cannot be read gets ``status=error`` in ``counts.csv``/``counts.json`` and the
others go on; a field in which no leukocyte is found gets ``status=no_cell`` (zero counts).
Exit codes (:mod:`wbc_classic.io.options`): 0 every field was counted; 1 some failed or held
no leukocyte; 2 a bad option, a model that cannot be loaded, no field image, or an ``--out``
that cannot be written (checked before any work).  ``--rescale`` obeys the reader's
decompression-bomb pixel limit after resizing too.
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from wbc_classic.io.options import (
    EXIT_FAILED_INPUTS,
    EXIT_OK,
    EXIT_USAGE,
    float_range,
    n_jobs_value,
)

HELP = "count and classify every leukocyte in blood-smear field images"
EXAMPLE = "wbc-classic count --model model.skops fields/*.jpg --out counts/"

# colour-blind-friendly palette (Okabe-Ito + extras), RGB
_PALETTE = [(230, 159, 0), (86, 180, 233), (0, 158, 115), (240, 228, 66), (0, 114, 178),
            (213, 94, 0), (204, 121, 167), (120, 120, 120), (160, 60, 200), (40, 40, 40)]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the ``count`` options to ``parser``."""
    parser.add_argument("--model", required=True, type=Path,
                        help="model file written by `wbc-classic train` (.skops)")
    parser.add_argument("fields", nargs="+", metavar="FIELD_IMAGES",
                        help="smear field images and/or folders of them")
    parser.add_argument("--out", required=True, type=Path, help="output folder")
    parser.add_argument("--exclude-border", action="store_true",
                        help="leave leukocytes cut by the field edge out of the counts "
                             "(they are still listed in cells.csv)")
    parser.add_argument("--no-images", action="store_true",
                        help="do not write the annotated images")
    parser.add_argument("--rescale", type=float_range(0, 16, lo_open=True), default=1.0,
                        metavar="FACTOR",
                        help="resize each field by FACTOR before finding cells, to match "
                             "the pixel size of the training images (e.g. 2 when cells "
                             "look half as large as in training); boxes are reported in "
                             "the original field's pixels; 0 < FACTOR <= 16 (default 1)")
    parser.add_argument("--um-per-pixel", default=None, metavar="UM|auto",
                        help="pixel scale of the fields: a number, or 'auto' (median "
                             "red-cell estimate over up to 50 of them); each field is "
                             "resampled to the model's training scale (instead of --rescale)")
    parser.add_argument("--n-jobs", type=n_jobs_value, default=1,
                        help="parallel worker processes, one field each (default 1; "
                             "-1 = all cores)")
    parser.add_argument("--json", action="store_true",
                        help="print the machine-readable result (counts.json) to stdout")
    parser.add_argument("--adapt", action="store_true",
                        help="first adapt the model to the leukocytes of these fields, as "
                             "`wbc-classic adapt` does for single-cell images (at least 20 "
                             "leukocytes); see --method")
    from wbc_classic.classical.adapt import ADAPT_METHODS
    from wbc_classic.cli.adapt import add_adapt_options

    add_adapt_options(parser, ADAPT_METHODS)


def annotate(image: np.ndarray, boxes: Sequence[tuple[int, int, int, int]],
             labels: Sequence[str], classes: Sequence[str],
             scores: Sequence[float] | None = None) -> np.ndarray:
    """Draw labelled boxes on a copy of a field image.

    Parameters
    ----------
    image : ndarray of uint8, shape (H, W, 3), RGB
    boxes : sequence of (row0, col0, row1, col1), end-exclusive
    labels : sequence of str
        Class of each box (its colour comes from its index in ``classes``).
    classes : sequence of str
    scores : sequence of float, optional
        Probability shown after the label.

    Returns
    -------
    annotated : ndarray of uint8, shape (H, W, 3), RGB
    """
    import cv2

    out = np.ascontiguousarray(image.copy())
    h, w = out.shape[:2]
    thick = max(1, round(max(h, w) / 500))
    font_scale = max(0.4, max(h, w) / 1400)
    for i, ((r0, c0, r1, c1), label) in enumerate(zip(boxes, labels, strict=True)):
        idx = list(classes).index(label) if label in classes else len(_PALETTE) - 1
        colour = _PALETTE[idx % len(_PALETTE)]
        cv2.rectangle(out, (int(c0), int(r0)), (int(c1) - 1, int(r1) - 1), colour, thick)
        text = label if scores is None else f"{label} {scores[i]:.2f}"
        (tw, th), base = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, font_scale, thick)
        ty = int(r0) - 3 if int(r0) - th - base - 3 >= 0 else min(h - 1, int(r1) + th + 3)
        tx = int(np.clip(c0, 0, max(0, w - tw - 1)))
        cv2.rectangle(out, (tx, ty - th - base), (tx + tw, ty + base), colour, -1)
        cv2.putText(out, text, (tx, ty), cv2.FONT_HERSHEY_SIMPLEX, font_scale,
                    (0, 0, 0), thick, cv2.LINE_AA)
    return out


def _unique_stems(paths: Sequence[Path]) -> list[str]:
    seen: dict[str, int] = {}
    out = []
    for p in paths:
        stem = p.stem or "image"
        n = seen.get(stem, 0)
        seen[stem] = n + 1
        out.append(stem if n == 0 else f"{stem}_{n}")
    return out


def _summary(counts: np.ndarray, classes: Sequence[str]) -> dict[str, Any]:
    n = int(counts.sum())
    pct = counts / n * 100.0 if n else np.zeros(len(classes))
    return {"n_cells": n,
            "counts": {c: int(k) for c, k in zip(classes, counts, strict=True)},
            "percentages": {c: round(float(p), 2) for c, p in zip(classes, pct, strict=True)}}


class _FieldCells(NamedTuple):
    """What :func:`_find_cells` found in one field."""

    shape: tuple[int, ...] | None     #: the field's (H, W, 3); None when it failed
    cells: list[Any]                  #: the leukocytes (:func:`segmentation.segment_field`)
    X: np.ndarray | None              #: their features, (n_cells, F)
    image: np.ndarray | None = None   #: the field; dropped by --adapt, read again to be drawn
    error: Exception | None = None    #: why the field failed


def _find_cells(model: Any, path: Path, rescale: float) -> _FieldCells:
    """The leukocytes of one field and their features (or the error that stopped it)."""
    from segmentation import segment_field
    from wbc_classic.classical.extraction import Segmented
    from wbc_classic.classical.model import segmenter_params
    from wbc_classic.io.images import read_image
    from wbc_classic.preprocess.scale import rescale_image

    try:
        image = read_image(path)
        work = image if rescale == 1.0 else rescale_image(image, rescale)
        cells = segment_field(work, segmenter_params(model.segment_params))
        # the cells go through the feature engine like any image, only without the
        # segment step; their features give both the classes and the shift scores
        X = model.transform([Segmented(c.crop, c.segmentation) for c in cells]) \
            if cells else np.zeros((0, len(model.feature_names_)), np.float32)
    except (ImportError, MemoryError):
        raise  # broken installation or machine, not a bad image
    except Exception as exc:  # noqa: BLE001 - reported per field, batch goes on
        return _FieldCells(None, [], None, error=exc)
    return _FieldCells(image.shape, cells, X, image)


def _find_cells_of(chunk: Sequence[tuple[int, Path]], arg: tuple[Any, float]) -> list:
    """``[(index, _find_cells(...))]`` of a chunk of ``(index, field)`` (a task of
    :func:`wbc_classic.classical.workers.run_chunks`; ``arg``: model and rescale)."""
    model, rescale = arg
    return [(i, _find_cells(model, path, rescale)) for i, path in chunk]


def _fields(model: Any, paths: Sequence[Path], rescale: float, n_jobs: int):
    """Yield ``_find_cells`` of each field in order, in ``n_jobs`` processes: this one and
    the feature engine's workers (:func:`~wbc_classic.classical.workers.run_chunks`, killed
    when the command ends), or another active joblib backend's."""
    from wbc_classic.classical.workers import own_pool, run_chunks

    n_workers = own_pool(n_jobs)
    if n_workers == 0:
        for p in paths:
            yield _find_cells(model, p, rescale)
        return
    if n_workers is None:  # e.g. joblib.parallel_backend("dask")
        import joblib

        yield from joblib.Parallel(n_jobs=n_jobs, return_as="generator")(
            joblib.delayed(_find_cells)(model, p, rescale) for p in paths)
        return
    # one field per task; the tasks finish in any order, the fields are yielded in theirs
    done: dict[int, tuple] = {}
    following = 0
    for results in run_chunks(_find_cells_of, [[(i, p)] for i, p in enumerate(paths)],
                              (model, rescale), n_workers):
        done.update(results)
        while following in done:
            yield done.pop(following)
            following += 1


def _adapted_to_fields(model: Any, found: list[_FieldCells], method: str) -> Any:
    """``model`` adapted to the leukocytes of every field that was read (``found``: the
    ``_find_cells`` results); ValueError when too few cells."""
    from wbc_classic.classical.adapt import MIN_CELLS

    rows = [f.X for f in found if f.X is not None and len(f.X)]
    X = np.concatenate(rows) if rows else np.zeros((0, len(model.feature_names_)), np.float32)
    X = X[np.all(np.isfinite(X), axis=1)]
    if len(X) < MIN_CELLS:
        raise ValueError(f"--adapt: {len(X)} leukocytes found in {len(found)} fields; "
                         f"adaptation needs at least {MIN_CELLS}")
    new = model.adapt_features(X, method=method)
    new.metadata_["adaptation"].update(n_images=len(found), um_per_pixel=None)
    return new


def count_fields(model: Any, paths: Sequence[Path], out_dir: Path, *,
                 exclude_border: bool = False, write_images: bool = True,
                 rescale: float = 1.0, n_jobs: int = 1,
                 adapt: str | None = None) -> dict[str, Any]:
    """Segment, classify and count the leukocytes of field images; write the outputs.

    ``rescale`` resizes each field before segmentation (see ``--rescale``); boxes are
    mapped back to the original field's pixels. ``n_jobs`` fields are processed at once
    (joblib processes; the outputs are the same for any value). ``adapt`` (a method of
    :meth:`~wbc_classic.classical.model.WBCModel.adapt_features`, e.g. ``"auto"``): the
    model is first adapted to the leukocytes of all the fields (ValueError when fewer than
    :data:`~wbc_classic.classical.adapt.MIN_CELLS` are found), then classifies them.

    Returns the report written to ``counts.json`` (dict with ``classes``, ``images``
    (one entry per field, with ``status`` and ``error``), ``overall``, ``shift`` and, with
    ``adapt``, ``adaptation``).
    """
    from wbc_classic.io.atomic import atomic_open, atomic_path, atomic_write_text
    from wbc_classic.io.progress import progress

    if not rescale > 0:
        raise ValueError(f"rescale must be > 0, got {rescale}")

    classes = [str(c) for c in model.classes_]
    out_dir.mkdir(parents=True, exist_ok=True)
    if write_images:
        (out_dir / "annotated").mkdir(exist_ok=True)
    per_image: list[dict[str, Any]] = []
    cell_rows: list[list[Any]] = []
    total = np.zeros(len(classes), dtype=np.int64)
    all_flags: list[np.ndarray] = []
    results = _fields(model, paths, rescale, n_jobs)
    if adapt is not None:
        # every field's cells before any count; the images are read again to be drawn
        found = [f._replace(image=None) for f in progress(results, desc="find cells",
                                                          unit="field", total=len(paths))]
        model = _adapted_to_fields(model, found, adapt)
        results = iter(found)
    # results first: zip then draws it to its end, so that the generator's clean-up (of
    # run_chunks or joblib) runs here and no worker waits for work that never comes
    for field, (path, stem) in zip(
            results, progress(list(zip(paths, _unique_stems(paths), strict=True)),
                              desc="count", unit="field"), strict=True):
        entry: dict[str, Any] = {"image": str(path), "status": "ok", "error": ""}
        cells, X = field.cells, field.X
        if field.shape is None:
            exc = field.error
            entry.update(status="error", error=f"{type(exc).__name__}: {exc}",
                         **_summary(np.zeros(len(classes), np.int64), classes))
            per_image.append(entry)
            continue
        proba = model.predict_proba_features(X)
        shift, flag = model.shift_scores(X)
        pred = proba.argmax(axis=1) if len(proba) else np.zeros(0, np.int64)
        counted = np.array([not (exclude_border and c.touches_border) for c in cells],
                           dtype=bool)
        counts = np.bincount(pred[counted], minlength=len(classes)).astype(np.int64)
        total += counts
        entry.update(_summary(counts, classes))
        entry["n_found"] = len(cells)
        entry["n_shift_flagged"] = int(flag[counted].sum())
        all_flags.append(flag[counted & np.isfinite(shift)])
        if not cells:
            entry.update(status="no_cell", error=f"{path}: no leukocyte found in the field")
        h, w = field.shape[:2]
        boxes = [(min(h, round(r0 / rescale)), min(w, round(c0 / rescale)),
                  min(h, round(r1 / rescale)), min(w, round(c1 / rescale)))
                 for r0, c0, r1, c1 in (c.bbox for c in cells)]
        for j, cell in enumerate(cells):
            cell_rows.append([str(path), j, *boxes[j], bool(cell.touches_border),
                              bool(counted[j]), classes[pred[j]],
                              *[f"{p:.6f}" for p in proba[j]],
                              "" if not np.isfinite(shift[j]) else f"{shift[j]:.4f}",
                              int(flag[j])])
        if write_images:
            if field.image is None:  # --adapt did not keep it
                from wbc_classic.io.images import read_image

                image = read_image(path)
            else:
                image = field.image
            drawn = annotate(image, boxes, [classes[k] for k in pred],
                             classes, [float(proba[j, k]) for j, k in enumerate(pred)])
            import cv2

            with atomic_path(out_dir / "annotated" / f"{stem}.png") as tmp:
                if not cv2.imwrite(str(tmp), cv2.cvtColor(drawn, cv2.COLOR_RGB2BGR)):
                    raise OSError(f"cannot write annotated image for {path}")
            entry["annotated"] = str(out_dir / "annotated" / f"{stem}.png")
        per_image.append(entry)

    from wbc_classic.classical.shift import batch_summary

    flags = np.concatenate(all_flags) if all_flags else np.zeros(0, bool)
    scorer = getattr(model, "shift_", None)
    report: dict[str, Any] = {"model": str(model.metadata_.get("file", "")), "classes": classes,
              "exclude_border": bool(exclude_border), "rescale": float(rescale),
              "images": per_image,
              "overall": _summary(total, classes),
              "shift": None if scorer is None else {
                  "n_scored": int(flags.size), "n_flagged": int(flags.sum()),
                  "threshold": float(scorer.threshold_),
                  "summary": batch_summary(flags, expected=1 - scorer.quantile,
                                           adapted=getattr(model, "alignment_", None)
                                           is not None)}}
    if adapt is not None:
        report["adaptation"] = model.metadata_["adaptation"]

    with atomic_open(out_dir / "cells.csv", "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["image", "cell", "row0", "col0", "row1", "col1", "touches_border",
                    "counted", "predicted_class", *[f"p_{c}" for c in classes],
                    "shift_score", "shift_flag"])
        w.writerows(cell_rows)
    with atomic_open(out_dir / "counts.csv", "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["image", "status", "n_cells", *[f"{c}_count" for c in classes],
                    *[f"{c}_pct" for c in classes], "error"])
        for e in [*per_image, {"image": "ALL", "status": "ok", "error": "",
                               **report["overall"]}]:
            w.writerow([e["image"], e["status"], e["n_cells"],
                        *[e["counts"][c] for c in classes],
                        *[f"{e['percentages'][c]:.2f}" for c in classes], e["error"]])
    atomic_write_text(out_dir / "counts.json", json.dumps(report, indent=2) + "\n")
    return report


def run(args: argparse.Namespace) -> int:
    """Run ``wbc-classic count``; exit code 0 all fields ok, 1 some failed, 2 no model."""
    from wbc_classic.cli._inputs import load_model_and_inputs
    from wbc_classic.io.atomic import check_output_dir

    check_output_dir(args.out, "--out")  # before the work; OutputError -> exit 2
    model, paths, code = load_model_and_inputs(args.model, args.fields, "field images")
    if code is not None:
        return code
    rescale = args.rescale
    try:
        if args.um_per_pixel is not None:
            from wbc_classic.cli._inputs import resolve_scale

            if args.rescale != 1.0:
                raise ValueError("give --um-per-pixel or --rescale, not both")
            um = resolve_scale(args.um_per_pixel, paths)
            rescale = model.rescale_factor(um)
            print(f"pixel scale {um:.4f} um/px -> model's {model.um_per_pixel_:.4f} um/px "
                  f"(fields resized by {rescale:.3f})", file=sys.stderr if args.json
                  else sys.stdout)
        report = count_fields(model, paths, args.out, exclude_border=args.exclude_border,
                              write_images=not args.no_images, rescale=rescale,
                              n_jobs=args.n_jobs, adapt=args.method if args.adapt else None)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    if args.adapt:
        from wbc_classic.cli.adapt import report_adaptation

        report_adaptation(report["adaptation"], of="fields",
                          file=sys.stderr if args.json else sys.stdout)
    if args.json:
        print(json.dumps(report))
        return EXIT_FAILED_INPUTS if any(e["status"] != "ok" for e in report["images"]) \
            else EXIT_OK
    failed = [e for e in report["images"] if e["status"] != "ok"]
    overall = report["overall"]
    print(f"{len(paths)} fields, {overall['n_cells']} leukocytes counted -> {args.out}")
    for c in report["classes"]:
        print(f"  {c:>14s}: {overall['counts'][c]:5d}  {overall['percentages'][c]:6.2f} %")
    if report["shift"] is not None:
        print(report["shift"]["summary"])
    for e in failed:
        err = e["error"] if str(e["image"]) in e["error"] else f"{e['image']}: {e['error']}"
        print(f"  {'failed' if e['status'] == 'error' else e['status']}: {err}",
              file=sys.stderr)
    return EXIT_FAILED_INPUTS if failed else EXIT_OK
