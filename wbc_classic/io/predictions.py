"""The prediction CSV shared by ``wbc-classic predict`` and ``python -m deep.predict``.

One row per input image: ``path, status, predicted_class, p_<class>... (one per class, in
the model's class order), error, note`` -- and ``shift_score, shift_flag`` after them when the
model gives them (classical models of format 3: how unlike the training cells the cell is,
and whether that is above the model's threshold) -- so that outputs of both model families can be
compared and scored the same way.  ``status`` is one of

``ok``       classified: ``predicted_class`` and the probabilities are filled in;
``no_cell``  the image was read but holds no leukocyte (blank, black, too small, only red
             cells): **no class** -- ``predicted_class`` and the probabilities are empty
             cells, ``error`` says why; it counts as a failed input (exit code 1);
``error``    the file could not be read or processed; ``error`` names it and the problem.
"""

from __future__ import annotations

import csv
import os
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np

__all__ = ["STATUSES", "batch_report", "batch_summary", "expand_inputs", "failed_lines",
           "mark_no_cell", "write_predictions_csv"]

#: the values of the ``status`` column
STATUSES = ("ok", "no_cell", "error")


def expand_inputs(inputs: Iterable[str | os.PathLike[str]]) -> list[Path]:
    """Files as given, folders replaced by the image files under them (sorted, recursive).

    Hidden entries are skipped. Paths that do not exist are kept, so that they get an error row;
    so are broken or looping symbolic links with an image name inside a folder (never
    dropped silently).
    """
    from wbc_classic.io.images import is_image_file

    out: list[Path] = []
    for item in inputs:
        p = Path(item)
        if p.is_dir():
            out.extend(sorted(f for f in p.rglob("*") if is_image_file(f)
                              and (f.is_file() or f.is_symlink())
                              and not any(part.startswith(".") for part in
                                          f.relative_to(p).parts)))
        else:
            out.append(p)
    return out


def mark_no_cell(row: dict, reason: str = "no leukocyte found") -> dict:
    """Turn a prediction row into a ``no_cell`` row in place: no class, NaN probabilities.

    ``reason`` goes into ``error``, prefixed with the path when it does not name it already.
    Returns the row.
    """
    path = str(row.get("path", ""))
    row["status"] = "no_cell"
    row["predicted_class"] = ""
    row["proba"] = [float("nan")] * len(row.get("proba", ()))
    row["error"] = reason if path and path in reason else f"{path}: {reason}"
    return row


def write_predictions_csv(path: str | os.PathLike[str], rows: Sequence[dict],
                          classes: Sequence[str]) -> None:
    """Write prediction rows as CSV, atomically.

    Each row is a dict with ``path, status, predicted_class, proba (K floats), error`` and
    optionally ``note``; probabilities are written with 6 decimals, empty unless the status is
    ``ok`` (``no_cell`` and ``error`` rows have empty class and probability cells). When any
    row has ``shift_score``, two more columns follow: ``shift_score`` (4 decimals) and
    ``shift_flag`` (1/0; empty when the row's ``shift_flag`` is None: no threshold), empty
    unless ok.
    """
    from wbc_classic.io.atomic import atomic_open

    shift = any("shift_score" in r for r in rows)
    header = ["path", "status", "predicted_class", *[f"p_{c}" for c in classes],
              "error", "note", *(["shift_score", "shift_flag"] if shift else [])]
    with atomic_open(path, "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(header)
        for r in rows:
            ok = r["status"] == "ok"
            probs = [f"{float(p):.6f}" if ok else "" for p in r["proba"]]
            extra = []
            if shift:
                raw = r.get("shift_score")  # None: no meaningful score (written empty)
                score = float("nan") if raw is None else float(raw)
                flag = r.get("shift_flag")
                extra = ([f"{score:.4f}", "" if flag is None else str(int(bool(flag)))]
                         if ok and score == score else ["", ""])
            writer.writerow([r["path"], r["status"], r["predicted_class"], *probs,
                             r["error"], r.get("note", ""), *extra])


def batch_report(rows: Sequence[dict], out: str | os.PathLike[str], seconds: float,
                 max_listed: int = 20) -> tuple[str, list[str]]:
    """What a prediction command tells its user about a written batch (both families).

    Parameters
    ----------
    rows : sequence of dict
        The prediction rows (``path``, ``status``, ``error``).
    out : path-like
        The CSV they were written to.
    seconds : float
        Wall time of the prediction, for the images/s figure.
    max_listed : int
        Failed rows listed one by one; the rest are counted.

    Returns
    -------
    summary : str
        One line for stdout: images, classified, failed, without a leukocyte, speed.
    problems : list of str
        Lines for stderr, one per failed or no-cell row (each naming its file).
    """
    failed = [r for r in rows if r["status"] != "ok"]
    n_no_cell = sum(r["status"] == "no_cell" for r in rows)
    summary = (f"{len(rows)} images, {len(rows) - len(failed)} classified, "
               f"{len(failed) - n_no_cell} failed, {n_no_cell} without a leukocyte "
               f"({len(rows) / max(seconds, 1e-9):.1f} images/s) -> {out}")
    return summary, failed_lines(rows, max_listed)


def failed_lines(rows: Sequence[dict], max_listed: int = 20) -> list[str]:
    """One line per failed or no-cell row, naming its file (for stderr); the rows past
    ``max_listed`` are counted in a last line. Empty when every row is ``ok``."""
    failed = [r for r in rows if r["status"] != "ok"]
    problems = []
    for r in failed[:max_listed]:
        err = r["error"] if r["path"] in r["error"] else f"{r['path']}: {r['error']}"
        problems.append(f"  {'failed' if r['status'] == 'error' else r['status']}: {err}")
    if len(failed) > max_listed:
        problems.append(f"  ... and {len(failed) - max_listed} more (see the CSV)")
    return problems


def batch_summary(flags: np.ndarray, *, what: str = "cells", expected: float = 0.01,
                  adapted: bool = False, family: str = "classical") -> str:
    """One plain sentence about a batch's shift flags, for ``predict``/``count``/reports.

    Parameters
    ----------
    flags : ndarray of bool, shape (n,)
    what : str
        Name of the items ("cells", "images").
    expected : float
        Fraction flagged among cells like the training data (1 - the scorer's quantile).
    adapted : bool
        The model was adapted to the lab already (the advice then is labelled cells).
    family : {"classical", "deep"}
        Which commands the advice names (``wbc-classic adapt`` or ``python -m deep.adapt``).

    Returns
    -------
    str
        E.g. ``"shift warning: 180 of 300 cells (60.0 %) look unlike the training data ..."``.
    """
    flags = np.asarray(flags, dtype=bool)
    n, k = int(flags.size), int(flags.sum())
    if n == 0:
        return f"shift: no {what} scored"
    frac = k / n
    if family == "deep":
        retrain = "python -m deep.train with some of this lab's labelled cells added"
        adapt = "adapt the network (python -m deep.adapt, or deep.predict --adapt)"
    else:
        retrain = "wbc-classic train --data ... --per-class"
        adapt = "adapt the model (wbc-classic adapt)"
    # a batch is called shifted when clearly more cells are flagged than among training
    # cells: 5 times the expected rate and at least 3 cells (one odd cell is no shift)
    if k >= 3 and frac > 5 * expected:
        return (f"shift warning: {k} of {n} {what} ({100 * frac:.1f} %) look unlike the "
                f"training data (expected about {100 * expected:.0f} %); this batch is "
                "probably from another laboratory, stain or scanner, and its predictions "
                "may be wrong -- check some by eye, "
                + (f"and add a few labelled cells of this lab ({retrain}); the model is "
                   "adapted to it already" if adapted else f"or {adapt}"))
    return (f"shift: {k} of {n} {what} ({100 * frac:.1f} %) flagged as unlike the training "
            "data; the batch looks like the training data")
