"""The prediction CSV shared by ``wbc-classic predict`` and ``python -m deep.predict``.

One row per input image: ``path, status ("ok"/"error"), predicted_class, p_<class>...
(one per class, in the model's class order), error, note``, so that outputs of both model
families can be compared and scored the same way.
"""

from __future__ import annotations

import csv
import os
from collections.abc import Iterable, Sequence
from pathlib import Path

__all__ = ["expand_inputs", "write_predictions_csv"]


def expand_inputs(inputs: Iterable[str | os.PathLike[str]]) -> list[Path]:
    """Files as given, folders replaced by the image files under them (sorted, recursive).

    Hidden entries are skipped. Paths that do not exist are kept, so that they get an error row.
    """
    from wbc_classic.io.images import is_image_file

    out: list[Path] = []
    for item in inputs:
        p = Path(item)
        if p.is_dir():
            out.extend(sorted(f for f in p.rglob("*") if f.is_file() and is_image_file(f)
                              and not any(part.startswith(".") for part in
                                          f.relative_to(p).parts)))
        else:
            out.append(p)
    return out


def write_predictions_csv(path: str | os.PathLike[str], rows: Sequence[dict],
                          classes: Sequence[str]) -> None:
    """Write prediction rows as CSV, atomically.

    Each row is a dict with ``path, status, predicted_class, proba (K floats), error`` and
    optionally ``note``; probabilities are written with 6 decimals, empty on error.
    """
    from wbc_classic.io.atomic import atomic_open

    header = ["path", "status", "predicted_class", *[f"p_{c}" for c in classes],
              "error", "note"]
    with atomic_open(path, "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(header)
        for r in rows:
            ok = r["status"] == "ok"
            probs = [f"{float(p):.6f}" if ok else "" for p in r["proba"]]
            writer.writerow([r["path"], r["status"], r["predicted_class"], *probs,
                             r["error"], r.get("note", "")])
