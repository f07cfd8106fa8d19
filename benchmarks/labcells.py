"""The labelled labs' cells as feature matrices, shared by the cross-lab benchmarks.

``benchmarks.fewshot``, ``benchmarks.ceilings`` and ``benchmarks.stability`` all start the
same way: PBC's 5-class cells and each target lab's, through the production path's feature
engine (default segmenter and features, cached). The options that say where the labs are
and how the features are extracted, the check that the folders exist, and the loading live
here once.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

#: The labelled labs other than PBC, in the order the benchmarks report them.
TARGETS = ("jtsc_seg", "cellavision_seg")


class LabCells(NamedTuple):
    """The usable cells of one labelled lab: features, labels (indices into
    ``PBC5_CLASSES``) and image paths relative to the lab's folder, row for row."""

    X: np.ndarray
    y: np.ndarray
    images: list[str]


def features(model: Any, items: Sequence[Any]) -> tuple[np.ndarray, np.ndarray]:
    """(X of the usable images, their indices) through the model's feature engine;
    ``items``: image paths, or anything else :meth:`WBCModel.extract` takes (e.g.
    augmented copies)."""
    res = model.extract(items)
    good = np.flatnonzero(res.ok & res.found & np.all(np.isfinite(res.X), axis=1))
    return res.X[good], good


def lab_cells(engine: Any, root: Path) -> LabCells:
    """The 5-class cells of the labelled lab at ``root`` (class folders or a segmentation
    set) through ``engine``'s feature extraction (cached); unusable images are left out."""
    from wbc_classic.data.datasets import load_labelled
    from wbc_classic.data.labels import PBC5_CLASSES

    lab = load_labelled(root, PBC5_CLASSES)
    X, keep = features(engine, [str(p) for p in lab.paths])
    return LabCells(X, lab.y[keep], [_name(Path(lab.paths[i]), root) for i in keep])


def _name(path: Path, root: Path) -> str:
    """``path`` relative to ``root`` (a manifest may list paths elsewhere: then whole)."""
    try:
        return path.relative_to(root).as_posix()
    except ValueError:
        return path.as_posix()


def score(y: np.ndarray, pred: np.ndarray) -> dict[str, Any]:
    """Accuracy and balanced accuracy with 95 % bootstrap intervals, and the confusion
    matrix, of predictions of 5-class cells (:func:`wbc_classic.evaluation.metrics.evaluate`,
    seed 0).

    Parameters
    ----------
    y, pred : ndarray of int, shape (n,)
        Labels and predictions, indices into ``PBC5_CLASSES``.

    Returns
    -------
    dict
        ``n_test``, ``accuracy`` and ``balanced_accuracy`` (value and interval),
        ``accuracy_text`` and ``confusion`` (list of lists).
    """
    from wbc_classic.data.labels import PBC5_CLASSES
    from wbc_classic.evaluation.metrics import evaluate

    names = tuple(PBC5_CLASSES)
    ev = evaluate(y, pred, n_classes=len(names), class_names=names, seed=0)
    acc, bal = ev.metrics["accuracy"], ev.metrics["balanced_accuracy"]
    return {"n_test": int(y.size), "accuracy": acc.to_dict(), "balanced_accuracy": bal.to_dict(),
            "accuracy_text": acc.format(), "confusion": ev.confusion.tolist()}


def fit_lab_model(classifier: str, X: np.ndarray, y: np.ndarray, *, seed: int = 0
                  ) -> tuple[Any, np.ndarray]:
    """A model of one lab's cells alone, over the classes ``y`` holds.

    Parameters
    ----------
    classifier : str
        A :data:`wbc_classic.classical.classifiers.CLASSIFIERS` name.
    X : ndarray, shape (n, F)
        The lab's cells (raw features; the model's scaler standardises them by the lab).
    y : ndarray of int, shape (n,)
        Their labels, indices into ``PBC5_CLASSES``; at least 2 classes.
    seed : int, default 0

    Returns
    -------
    model : WBCModel
        Fitted; its probability columns are the classes present, in ``PBC5_CLASSES`` order.
    to_pbc5 : ndarray of int, shape (C,)
        The ``PBC5_CLASSES`` index of each of its columns.
    """
    from wbc_classic.classical.model import WBCModel
    from wbc_classic.data.labels import PBC5_CLASSES

    present = np.unique(y)
    names = [PBC5_CLASSES[c] for c in present]
    model = WBCModel(classifier, classes=names, cv=0, seed=seed).fit_features(
        X, np.asarray(PBC5_CLASSES)[y])
    return model, present.astype(np.int64)


def add_lab_arguments(ap: argparse.ArgumentParser, *, classifiers: bool = False) -> None:
    """``--data``, ``--targets``, ``--n-jobs`` and ``--cache-dir``; with ``classifiers``
    also ``--classifiers`` (several registry names, default logreg and svm)."""
    from wbc_classic.classical.classifiers import CLASSIFIERS
    from wbc_classic.io.options import int_range

    ap.add_argument("--data", type=Path, default=Path("../shared/data"),
                    help="the folder holding pbc and the target labs (../shared/data)")
    ap.add_argument("--targets", nargs="+", default=list(TARGETS), choices=list(TARGETS))
    ap.add_argument("--n-jobs", type=int_range(1), default=1,
                    help="parallel workers of the feature extraction (benchmarks.fewshot: "
                         "also of its classifiers)")
    ap.add_argument("--cache-dir", type=Path, default=None,
                    help="feature cache (default: $WBC_CACHE_DIR, else the per-user cache)")
    if classifiers:
        ap.add_argument("--classifiers", nargs="+", default=["logreg", "svm"],
                        choices=sorted(CLASSIFIERS))


def load_labs(ap: argparse.ArgumentParser, args: argparse.Namespace
              ) -> tuple[LabCells, dict[str, LabCells]]:
    """PBC's cells and each of ``args.targets``'; a missing folder is ``ap.error``."""
    from wbc_classic.classical.model import WBCModel
    from wbc_classic.data.labels import PBC5_CLASSES
    from wbc_classic.io.cachedir import resolve_cache_dir

    for name in ("pbc", *args.targets):
        if not (args.data / name).is_dir():
            ap.error(f"{args.data / name} is not a folder (--data: the folder holding pbc "
                     "and the target labs)")
    engine = WBCModel("logreg", classes=PBC5_CLASSES, cv=0, n_jobs=args.n_jobs,
                      cache_dir=resolve_cache_dir(args.cache_dir))
    return (lab_cells(engine, args.data / "pbc"),
            {t: lab_cells(engine, args.data / t) for t in args.targets})
