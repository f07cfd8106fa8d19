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

__all__ = ["STATUSES", "batch_report", "expand_inputs", "mark_no_cell",
           "write_predictions_csv"]

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
    ``shift_flag`` (1/0), empty unless ok.
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
                score = float(r.get("shift_score", float("nan")))
                extra = ([f"{score:.4f}", str(int(bool(r.get("shift_flag"))))]
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
    problems = []
    for r in failed[:max_listed]:
        err = r["error"] if r["path"] in r["error"] else f"{r['path']}: {r['error']}"
        problems.append(f"  {'failed' if r['status'] == 'error' else r['status']}: {err}")
    if len(failed) > max_listed:
        problems.append(f"  ... and {len(failed) - max_listed} more (see the CSV)")
    return summary, problems
