"""Beyond the class-mean map: other uses of a new lab's pseudo-labels, compared on it.

``wbc-classic adapt --method class-means`` fits one per-feature affine map from the
model's own confident predictions on a lab's *unlabelled* cells. Its ceiling with the
lab's true labels is low on jtsc_seg (``benchmarks.ceilings``), while a model fitted on
PBC plus the lab's labelled cells scores far higher there. Can the pseudo-labels be used
for more than the map? This benchmark tries the usual semi-supervised schemes, each
started from the same pseudo-labels (the confident half of each class predicted by the
adapted model, :func:`wbc_classic.classical.adapt.confident_rows`), on the production
path's cached features of every target lab:

``class-means``
    the map itself (what ``adapt`` ships);
``self-training``
    the classifier refitted on PBC plus the lab's pseudo-labelled cells (aligned by the
    map, weight ``--weights``), its predictions the next round's pseudo-labels;
``lab-own``
    a classifier of the lab's own pseudo-labelled cells only, the lab's features
    standardised by the lab (logistic regression, ``C`` 0.1), refitted each round;
``label-spreading``
    scikit-learn's ``LabelSpreading`` over the lab's k-nearest-neighbour graph
    (``--neighbours``) in its first 20 principal components, seeded by the pseudo-labels.

The labels are used only to score. Per classifier, lab and scheme it prints the accuracy
after every round (``--rounds``); the JSON holds them all.

    python -m benchmarks.pseudo_labels --classifiers logreg svm --out runs/pseudo-labels.json
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.labcells import add_lab_arguments, load_labs

#: Principal components of the label-spreading graph (at most the cells or features).
SPREAD_COMPONENTS = 20
#: Inverse regularisation of the lab-own logistic regression.
LAB_OWN_C = 0.1


def _seeds(proba: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(rows, labels) of the confident half of each predicted class."""
    from wbc_classic.classical.adapt import confident_rows

    sure = confident_rows(proba)
    rows = np.concatenate([sure[c] for c in sure])
    labels = np.concatenate([np.full(sure[c].size, c) for c in sure])
    order = np.argsort(rows, kind="stable")
    return rows[order], labels[order]


def _accuracy(pred: np.ndarray, y: np.ndarray) -> float:
    return float(np.mean(pred == y))


def self_training(model: Any, adapted: Any, Xp: np.ndarray, yp: np.ndarray, Xt: np.ndarray,
                  yt: np.ndarray, *, weight: float, rounds: int) -> list[float]:
    """Accuracy after each round of refitting ``model``'s recipe on PBC plus the lab's
    pseudo-labelled cells (moved by ``adapted``'s map, weight ``weight``)."""
    from sklearn.base import clone

    aligned = adapted.aligned_features(Xt)
    proba, out = adapted.predict_proba_features(Xt), []
    for _ in range(rounds):
        rows, labels = _seeds(proba)
        refit = clone(model).fit_features(
            np.concatenate([Xp, aligned[rows]]), np.concatenate([yp, labels]),
            sample_weight=np.r_[np.ones(len(yp)), np.full(rows.size, weight)])
        proba = refit.predict_proba_features(aligned)
        out.append(_accuracy(proba.argmax(axis=1), yt))
    return out


def lab_own(proba: np.ndarray, Xt: np.ndarray, yt: np.ndarray, *, rounds: int,
            n_classes: int) -> list[float]:
    """Accuracy after each round of a logistic regression of the lab's own pseudo-labelled
    cells (features standardised by the lab)."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    Z = StandardScaler().fit_transform(np.asarray(Xt, np.float64))
    out = []
    for _ in range(rounds):
        rows, labels = _seeds(proba)
        if np.unique(labels).size < 2:
            break
        clf = LogisticRegression(C=LAB_OWN_C, max_iter=5000).fit(Z[rows], labels)
        proba = np.zeros((len(Z), n_classes))
        proba[:, clf.classes_] = clf.predict_proba(Z)
        out.append(_accuracy(proba.argmax(axis=1), yt))
    return out


def label_spreading(proba: np.ndarray, Xt: np.ndarray, yt: np.ndarray, *,
                    neighbours: int, seed: int = 0) -> float:
    """Accuracy of label spreading over the lab's kNN graph from the pseudo-labels."""
    from sklearn.decomposition import PCA
    from sklearn.preprocessing import StandardScaler
    from sklearn.semi_supervised import LabelSpreading

    Z = StandardScaler().fit_transform(np.asarray(Xt, np.float64))
    Y = PCA(min(SPREAD_COMPONENTS, *Z.shape), random_state=seed).fit_transform(Z)
    rows, labels = _seeds(proba)
    seeds = np.full(len(Y), -1)
    seeds[rows] = labels
    spread = LabelSpreading(kernel="knn", n_neighbors=min(neighbours, len(Y) - 1),
                            alpha=0.2).fit(Y, seeds)
    return _accuracy(spread.transduction_, yt)


def compare(classifier: str, Xp: np.ndarray, yp: np.ndarray, Xt: np.ndarray, yt: np.ndarray,
            *, rounds: int, weights: list[float], neighbours: list[int], seed: int = 0
            ) -> dict[str, Any]:
    """Every scheme's accuracy on one lab, for a model of ``classifier`` fitted on PBC."""
    from wbc_classic.classical.model import WBCModel
    from wbc_classic.data.labels import PBC5_CLASSES

    model = WBCModel(classifier, classes=PBC5_CLASSES, cv=0, seed=seed)
    fitted = model.fit_features(Xp, yp)
    adapted = fitted.adapt_features(Xt, method="class-means")
    proba = adapted.predict_proba_features(Xt)
    out: dict[str, Any] = {
        "as trained": _accuracy(fitted.predict_proba_features(Xt).argmax(axis=1), yt),
        "class-means": _accuracy(proba.argmax(axis=1), yt)}
    for w in weights:
        out[f"self-training, weight {w:g}"] = self_training(
            WBCModel(classifier, classes=PBC5_CLASSES, cv=0, seed=seed), adapted, Xp, yp,
            Xt, yt, weight=w, rounds=rounds)
    out["lab-own"] = lab_own(proba, Xt, yt, rounds=rounds, n_classes=len(PBC5_CLASSES))
    for k in neighbours:
        out[f"label-spreading, {k} neighbours"] = label_spreading(proba, Xt, yt,
                                                                  neighbours=k, seed=seed)
    return out


def main(argv: list[str] | None = None) -> int:
    """Run the comparison; print one line per classifier, lab and scheme."""
    from wbc_classic.io.atomic import atomic_write_text
    from wbc_classic.io.options import float_range, int_range

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    add_lab_arguments(ap, classifiers=True)
    ap.add_argument("--rounds", type=int_range(1, 20), default=4)
    ap.add_argument("--weights", type=float_range(0, lo_open=True), nargs="+",
                    default=[1.0, 5.0], help="weights of the lab's cells in self-training")
    ap.add_argument("--neighbours", type=int_range(2), nargs="+", default=[7, 15])
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=None, help="JSON report (atomic)")
    args = ap.parse_args(argv)
    (Xp, yp, _), cells = load_labs(ap, args)
    report: dict[str, Any] = {"rounds": args.rounds, "seed": args.seed, "results": {}}
    for classifier in args.classifiers:
        report["results"][classifier] = {}
        for target, lab in cells.items():
            res = compare(classifier, Xp, yp, lab.X, lab.y, rounds=args.rounds,
                          weights=args.weights, neighbours=args.neighbours, seed=args.seed)
            report["results"][classifier][target] = res
            for scheme, acc in res.items():
                text = " ".join(f"{a:.3f}" for a in acc) if isinstance(acc, list) \
                    else f"{acc:.3f}"
                print(f"{classifier:8s} {target:16s} {scheme:32s} {text}", flush=True)
    if args.out:
        atomic_write_text(args.out, json.dumps(report, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
