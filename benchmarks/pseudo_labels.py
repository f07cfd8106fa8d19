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
    a model of the lab's own pseudo-labelled cells only, of the same classifier (its
    scaler standardises the features by the lab; classes with fewer than
    :data:`MIN_CLASS_ROWS` pseudo-labelled cells are left out), refitted each round;
``label-spreading``
    scikit-learn's ``LabelSpreading`` (``alpha`` :data:`SPREAD_ALPHA`) over the lab's
    k-nearest-neighbour graph (``--neighbours``) in its first
    :data:`SPREAD_COMPONENTS` principal components, seeded by the pseudo-labels.

The schemes never see the lab's labels: they return predictions, which are scored
afterwards. Per classifier, lab and scheme it prints the accuracy (after every round,
``--rounds``, for the iterated schemes) and the last one's 95 % bootstrap interval; the
JSON holds every round's accuracy and the last one's full score.

    python -m benchmarks.pseudo_labels --classifiers logreg svm --out runs/pseudo-labels.json
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from benchmarks.labcells import add_lab_arguments, fit_lab_model, load_labs, score

if TYPE_CHECKING:
    from wbc_classic.classical.model import WBCModel

#: Principal components of the label-spreading graph (at most the cells or features).
SPREAD_COMPONENTS = 20
#: How much label spreading may change a seed's label (scikit-learn's ``alpha``).
SPREAD_ALPHA = 0.2
#: Fewest pseudo-labelled cells of a class for the lab-own model to fit it (the SVM's
#: 5-fold probability calibration needs 5).
MIN_CLASS_ROWS = 5


def seeds(proba: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The pseudo-labels every scheme starts from: (rows, labels) of the confident half of
    each predicted class (:func:`wbc_classic.classical.adapt.confident_rows`), rows in
    increasing order."""
    from wbc_classic.classical.adapt import confident_rows

    sure = confident_rows(proba)
    rows = np.concatenate([sure[c] for c in sure])
    labels = np.concatenate([np.full(sure[c].size, c) for c in sure])
    order = np.argsort(rows, kind="stable")
    return rows[order], labels[order]


def self_training(model: WBCModel, adapted: WBCModel, Xp: np.ndarray, yp: np.ndarray,
                  Xt: np.ndarray, *, weight: float, rounds: int) -> list[np.ndarray]:
    """Self-training on PBC plus the lab's pseudo-labelled cells.

    Parameters
    ----------
    model : WBCModel
        Unfitted: the recipe refitted every round (cloned).
    adapted : WBCModel
        The PBC model adapted to the lab (``adapt_features``): its predictions are the
        first pseudo-labels, its map puts the lab's cells on PBC's scale for pooling.
    Xp, yp : ndarray, shapes (m, F) and (m,)
        PBC's cells and labels (indices into ``PBC5_CLASSES``).
    Xt : ndarray, shape (n, F)
        The lab's cells (raw features).
    weight : float
        Weight of each pseudo-labelled lab cell (PBC's: 1).
    rounds : int

    Returns
    -------
    list of ndarray of int, shape (n,)
        The predictions after each round.
    """
    from sklearn.base import clone

    aligned = adapted.aligned_features(Xt)
    proba, out = adapted.predict_proba_features(Xt), []
    for _ in range(rounds):
        rows, labels = seeds(proba)
        refit = clone(model).fit_features(
            np.concatenate([Xp, aligned[rows]]), np.concatenate([yp, labels]),
            sample_weight=np.r_[np.ones(len(yp)), np.full(rows.size, weight)])
        proba = refit.predict_proba_features(aligned)
        out.append(proba.argmax(axis=1))
    return out


def lab_own(classifier: str, proba: np.ndarray, Xt: np.ndarray, *, rounds: int,
            seed: int = 0) -> list[np.ndarray]:
    """A model of the lab's own pseudo-labelled cells, refitted on its own predictions.

    Parameters
    ----------
    classifier : str
        The classifier of the lab's model (:func:`benchmarks.labcells.fit_lab_model`).
    proba : ndarray of float, shape (n, 5)
        The adapted PBC model's probabilities of the lab's cells (the first pseudo-labels).
    Xt : ndarray, shape (n, F)
    rounds : int
    seed : int, default 0

    Returns
    -------
    list of ndarray of int, shape (n,)
        The predictions (``PBC5_CLASSES`` indices) after each round; shorter than
        ``rounds`` when fewer than 2 classes keep :data:`MIN_CLASS_ROWS` pseudo-labelled
        cells (the JSON says so by its length).
    """
    from wbc_classic.data.labels import PBC5_CLASSES

    out = []
    for _ in range(rounds):
        rows, labels = seeds(proba)
        big = np.isin(labels, np.flatnonzero(np.bincount(labels) >= MIN_CLASS_ROWS))
        if np.unique(labels[big]).size < 2:
            break
        model, to_pbc5 = fit_lab_model(classifier, Xt[rows[big]], labels[big], seed=seed)
        proba = np.zeros((len(Xt), len(PBC5_CLASSES)))
        proba[:, to_pbc5] = model.predict_proba_features(Xt)
        out.append(proba.argmax(axis=1))
    return out


def label_spreading(proba: np.ndarray, Xt: np.ndarray, *, neighbours: int, seed: int = 0
                    ) -> np.ndarray:
    """Label spreading over the lab's kNN graph from the pseudo-labels.

    Parameters
    ----------
    proba : ndarray of float, shape (n, 5)
        The adapted PBC model's probabilities of the lab's cells.
    Xt : ndarray, shape (n, F)
    neighbours : int
        Neighbours of each cell in the graph (at most n - 1).
    seed : int, default 0
        Of the PCA's solver.

    Returns
    -------
    ndarray of int, shape (n,)
        Every cell's spread label.
    """
    from sklearn.decomposition import PCA
    from sklearn.preprocessing import StandardScaler
    from sklearn.semi_supervised import LabelSpreading

    Z = StandardScaler().fit_transform(np.asarray(Xt, np.float64))
    Y = PCA(min(SPREAD_COMPONENTS, *Z.shape), random_state=seed).fit_transform(Z)
    rows, labels = seeds(proba)
    start = np.full(len(Y), -1)
    start[rows] = labels
    spread = LabelSpreading(kernel="knn", n_neighbors=min(neighbours, len(Y) - 1),
                            alpha=SPREAD_ALPHA).fit(Y, start)
    return np.asarray(spread.transduction_, dtype=np.int64)


def predictions(classifier: str, Xp: np.ndarray, yp: np.ndarray, Xt: np.ndarray, *,
                rounds: int, weights: Sequence[float], neighbours: Sequence[int],
                seed: int = 0) -> dict[str, list[np.ndarray]]:
    """Every scheme's predictions of one lab's cells (no label of the lab is given).

    Parameters
    ----------
    classifier : str
        The classifier fitted on PBC (and of the schemes' refits).
    Xp, yp : ndarray
        PBC's cells and labels.
    Xt : ndarray, shape (n, F)
        The lab's cells.
    rounds, weights, neighbours, seed
        As the command's options.

    Returns
    -------
    dict of str to list of ndarray of int
        Per scheme (``as trained``, ``class-means``, ``self-training, weight W``,
        ``lab-own``, ``label-spreading, K neighbours``) its predictions, one per round.
    """
    from sklearn.base import clone

    from wbc_classic.classical.model import WBCModel
    from wbc_classic.data.labels import PBC5_CLASSES

    recipe = WBCModel(classifier, classes=PBC5_CLASSES, cv=0, seed=seed)
    fitted = clone(recipe).fit_features(Xp, yp)
    adapted = fitted.adapt_features(Xt, method="class-means")
    proba = adapted.predict_proba_features(Xt)
    out: dict[str, list[np.ndarray]] = {
        "as trained": [fitted.predict_proba_features(Xt).argmax(axis=1)],
        "class-means": [proba.argmax(axis=1)]}
    for w in weights:
        out[f"self-training, weight {w:g}"] = self_training(recipe, adapted, Xp, yp, Xt,
                                                           weight=w, rounds=rounds)
    out["lab-own"] = lab_own(classifier, proba, Xt, rounds=rounds, seed=seed)
    for k in neighbours:
        out[f"label-spreading, {k} neighbours"] = [label_spreading(proba, Xt, neighbours=k,
                                                                   seed=seed)]
    return out


def scores(pred: dict[str, list[np.ndarray]], y: np.ndarray) -> dict[str, dict[str, Any]]:
    """Per scheme: the accuracy of every round and the last round's full score
    (:func:`benchmarks.labcells.score`)."""
    return {scheme: {"accuracy": [float(np.mean(p == y)) for p in rounds],
                     "last": score(y, rounds[-1]) if rounds else None}
            for scheme, rounds in pred.items()}


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
            res = scores(predictions(classifier, Xp, yp, lab.X, rounds=args.rounds,
                                     weights=args.weights, neighbours=args.neighbours,
                                     seed=args.seed), lab.y)
            report["results"][classifier][target] = res
            for scheme, r in res.items():
                text = " ".join(f"{a:.3f}" for a in r["accuracy"])
                last = f"  (last {r['last']['accuracy_text']})" if r["last"] else ""
                print(f"{classifier:8s} {target:16s} {scheme:32s} {text}{last}", flush=True)
    if args.out:
        atomic_write_text(args.out, json.dumps(report, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
