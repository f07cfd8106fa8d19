"""Score a predictions CSV on the test images of an earlier benchmark run.

A model trained outside ``python -m benchmarks.run`` (for example a long ``python -m deep.train``
run on the same ``Split``) is scored with the same metrics module, on exactly the same test
images, and compared with the run's best model by McNemar's paired test.

Example
-------
::

    python -m benchmarks.score_predictions --run runs/final-pbc8 --data ../shared/data/pbc \\
        --write-test-list test.txt
    python -m deep.predict --checkpoint runs/wbcnet64/best.pt $(cat test.txt) --out wbcnet.csv
    python -m benchmarks.score_predictions --run runs/final-pbc8 --data ../shared/data/pbc \\
        --predictions wbcnet.csv --name wbcnet
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from wbc_classic.data.datasets import load_class_folders
from wbc_classic.data.split import Split
from wbc_classic.evaluation.metrics import evaluate, mcnemar_test
from wbc_classic.io.atomic import atomic_write_text


def test_paths(run_dir: Path, data: Path) -> tuple[list[Path], np.ndarray, list[str]]:
    """The run's test images, their labels and the class names, in the run's test order.

    Raises
    ------
    ValueError
        When ``data`` is not the data set the run's split was made for.
    """
    results = json.loads((run_dir / "results.json").read_text())
    classes = list(results["class_names"])
    split = Split.load(run_dir / "split.json")
    images = load_class_folders(data, classes=classes)
    split.check(images.y)
    y_true = np.asarray(images.y)[split.test]
    if not np.array_equal(y_true, np.asarray(results["y_true"])):
        raise ValueError(f"{data}: its test labels differ from those of the run in {run_dir}")
    return [images.paths[i] for i in split.test], y_true, classes


def read_predictions(csv_path: Path, paths: Sequence[Path], classes: Sequence[str]
                     ) -> tuple[np.ndarray, np.ndarray]:
    """Predicted labels and probabilities of ``paths`` from a ``predict`` CSV.

    Images that failed (status not ``ok``) or are missing from the CSV count as errors: a
    wrong label (-1) and uniform probabilities, never silently dropped.
    """
    rows: dict[str, dict[str, Any]] = {}
    row: dict[str, Any] | None
    with open(csv_path, newline="", encoding="utf-8") as fh:
        for row in csv.DictReader(fh):
            rows[str(Path(row["path"]).resolve())] = row
    index = {c: k for k, c in enumerate(classes)}
    y_pred = np.full(len(paths), -1, dtype=np.int64)
    proba = np.full((len(paths), len(classes)), 1.0 / len(classes))
    for i, p in enumerate(paths):
        row = rows.get(str(Path(p).resolve()))
        if row is None or row.get("status") != "ok":
            continue
        y_pred[i] = index[row["predicted_class"]]
        proba[i] = [float(row[f"p_{c}"]) for c in classes]
    return y_pred, proba


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point; returns the exit code."""
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.score_predictions", description=__doc__.split("\n\n")[0],
        epilog=__doc__.split("Example\n-------\n::\n")[1],
        formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run", type=Path, required=True, help="output folder of benchmarks.run")
    parser.add_argument("--data", type=Path, required=True, help="the run's class-folder data")
    parser.add_argument("--write-test-list", type=Path, help="write the test image paths here")
    parser.add_argument("--predictions", type=Path, help="CSV written by a predict command")
    parser.add_argument("--name", default="external", help="model name for the report")
    parser.add_argument("--out", type=Path, help="write the scores as JSON here")
    args = parser.parse_args(argv)

    try:
        paths, y_true, classes = test_paths(args.run, args.data)
    except (OSError, ValueError, KeyError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.write_test_list:
        atomic_write_text(args.write_test_list, "".join(f"{p}\n" for p in paths))
        print(f"{len(paths)} test images -> {args.write_test_list}")
    if not args.predictions:
        return 0
    y_pred, proba = read_predictions(args.predictions, paths, classes)
    n_failed = int((y_pred < 0).sum())
    ev = evaluate(y_true, np.where(y_pred < 0, (y_true + 1) % len(classes), y_pred), proba,
                  class_names=classes)
    results = json.loads((args.run / "results.json").read_text())
    best = max(results["models"], key=lambda m: m["metrics"]["balanced_accuracy"]["value"])
    test = mcnemar_test(y_true, np.asarray(best["y_pred"]), y_pred)
    print(f"{args.name} on {len(paths)} test images of {args.run} ({n_failed} failed):")
    for name, m in ev.metrics.items():
        print(f"  {name:18s} {m.format()}")
    print("  per-class sensitivity: " + ", ".join(
        f"{row['class']} {row['sensitivity']:.3f}" for row in ev.per_class.rows()))
    print(f"McNemar vs {best['name']}: b={test.b} c={test.c} p={test.pvalue:.3g} ({test.method})")
    if args.out:
        atomic_write_text(args.out, json.dumps({
            "name": args.name, "n_failed": n_failed, "evaluation": ev.to_dict(),
            "mcnemar_vs": best["name"], "mcnemar": test.to_dict()}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
