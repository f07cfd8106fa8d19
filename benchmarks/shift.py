"""Shift warning benchmark: does ``shift_score`` tell another laboratory's cells apart?

Protocol: a :class:`wbc_classic.classical.model.WBCModel` (default features) is fitted on the
training part of PBC's 5 mature classes (stratified 80/20 split, seed 0, as
``benchmarks.run --preset pbc5``) and scores

* ``pbc-test`` (the PBC test part: in-distribution cells) and
* each other lab's labelled cells (``jtsc_seg``, ``cellavision_seg``).

Reported per model and lab: AUROC of ``shift_score`` between PBC test cells (negatives) and
the lab's cells (positives), the fraction flagged (``shift_flag``, threshold stored in the
model), accuracy on all cells, and *selective* accuracy: accuracy on unflagged cells and
their share (coverage).

    python -m benchmarks.shift --data ../shared/data --classifiers svm logreg \
        --out /work/runs/shift/shift.json
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

import numpy as np

LABS = ("jtsc_seg", "cellavision_seg")


def auroc(negatives: np.ndarray, positives: np.ndarray) -> float:
    """Area under the ROC curve of scores (positives should score higher); NaN-free input."""
    from sklearn.metrics import roc_auc_score

    y = np.r_[np.zeros(len(negatives)), np.ones(len(positives))]
    return float(roc_auc_score(y, np.r_[negatives, positives]))


def evaluate(model, sets: dict[str, tuple[list, np.ndarray]]) -> dict:
    """Shift and selective-accuracy numbers of a fitted model on ``{name: (paths, y)}``
    (``y`` indices into ``model.classes_``; ``pbc-test`` must be one of the sets)."""
    scores: dict[str, dict] = {}
    for name, (paths, y) in sets.items():
        res = model.extract(paths)
        good = res.ok & res.found
        X, yy = res.X[good], np.asarray(y)[good]
        pred = model.predict_proba_features(X).argmax(axis=1)
        s, f = model.shift_scores(X)
        right = pred == yy
        scores[name] = {"s": s, "row": {
            "n": int(good.sum()), "n_unusable": int((~good).sum()),
            "accuracy": float(right.mean()), "flagged": float(f.mean()),
            "n_flagged": int(f.sum()),
            "coverage": float((~f).mean()),
            "selective_accuracy": float(right[~f].mean()) if (~f).any() else float("nan"),
            "accuracy_flagged": float(right[f].mean()) if f.any() else float("nan"),
            "median_score": float(np.median(s))}}
    ref = scores["pbc-test"]["s"]
    out = {}
    for name, v in scores.items():
        row = v["row"]
        if name != "pbc-test":
            row["auroc_vs_pbc_test"] = auroc(ref, v["s"])
        out[name] = row
    return out


def main(argv: list[str] | None = None) -> int:
    from wbc_classic.classical.model import WBCModel
    from wbc_classic.data.datasets import load_class_folders, load_labelled
    from wbc_classic.data.labels import PBC5_CLASSES
    from wbc_classic.data.split import make_split
    from wbc_classic.io.atomic import atomic_write_text
    from wbc_classic.io.cachedir import resolve_cache_dir

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", type=Path, default=Path("../shared/data"))
    ap.add_argument("--classifiers", nargs="+", default=["svm", "logreg"])
    ap.add_argument("--n-jobs", type=int, default=1)
    ap.add_argument("--out", type=Path, default=None, help="JSON file of the results")
    args = ap.parse_args(argv)
    cache = resolve_cache_dir(None)
    pbc = load_class_folders(args.data / "pbc", PBC5_CLASSES)
    split = make_split(pbc.y, "80/20", seed=0)
    train = [str(pbc.paths[i]) for i in split.train]
    sets = {"pbc-test": ([str(pbc.paths[i]) for i in split.test], pbc.y[split.test])}
    for lab in LABS:
        s = load_labelled(args.data / lab, PBC5_CLASSES)
        sets[lab] = ([str(p) for p in s.paths], s.y)
    results: dict[str, dict[str, Any]] = {}
    for name in args.classifiers:
        model = WBCModel(name, classes=PBC5_CLASSES, n_jobs=args.n_jobs, cv=0,
                         cache_dir=cache).fit(train, pbc.y[split.train])
        assert model.shift_ is not None  # fit makes the shift scorer
        results[name] = {"threshold": model.shift_.threshold_, "sets": evaluate(model, sets)}
        for lab, r in results[name]["sets"].items():
            au = r.get("auroc_vs_pbc_test")
            print(f"{name:8s} {lab:16s} n={r['n']:4d} acc={r['accuracy']:.3f} "
                  f"flagged={r['flagged']:.3f} selective_acc={r['selective_accuracy']:.3f} "
                  f"coverage={r['coverage']:.3f}"
                  + ("" if au is None else f" AUROC={au:.3f}"), flush=True)
    if args.out:
        atomic_write_text(args.out, json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    os.environ.setdefault("WBC_CACHE_DIR", str(Path.home() / ".cache" / "wbc_classic"))
    sys.exit(main())
