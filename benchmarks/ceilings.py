"""How far can adaptation go? Upper bounds of the cross-lab scores, per target lab.

A PBC-trained model scored on another lab's cells can fall short for two reasons: its
adaptation does not recover the shift it could recover (the pseudo-labels are wrong), or
the representation does not carry the lab's classes at all. This benchmark separates the
two, for each target lab (``jtsc_seg``, ``cellavision_seg``) and classifier, on the cells
of the production path (default segmenter and features, cached):

``as trained``
    trained on every PBC 5-class cell, applied to the lab's cells as they are;
``adapt auto`` / ``adapt class-means``
    the same model adapted to the lab's *unlabelled* cells
    (:meth:`~wbc_classic.classical.model.WBCModel.adapt_features`, ``wbc-classic adapt``);
``class-means, true labels``
    the class-mean map of ``adapt --method class-means`` fitted with the lab's *true*
    labels instead of the model's predictions
    (:func:`wbc_classic.classical.adapt.class_mean_map`): what perfect pseudo-labels would
    give, the ceiling of that adaptation for this classifier and features;
``PBC + lab labels, 5-fold``
    PBC plus the lab's own labelled cells of four folds (weight ``--target-weight``, with
    ``train --align``'s class-mean map and its check), scored on the fifth: the few-shot
    curve at "every labelled cell there is";
``lab alone, 5-fold``
    a model of the lab's own cells only (stratified 5-fold): how separable its classes are
    in these features with its own labels, whatever was learnt elsewhere.

Cross-validated rows test the cells of classes with at least :data:`MIN_TESTED` of them
(jtsc_seg's single basophil and cellavision_seg's 3 are not tested: they are in every
training part of the PBC rows and left out of the lab-alone model); the other rows test
every cell. Each row has the accuracy with a 95 % bootstrap interval and the
balanced accuracy (:func:`wbc_classic.evaluation.metrics.evaluate`). Last, per lab, the
*disputed labels*: the cells that every cross-validated row of every classifier calls
another class than their label (:func:`disputed_labels`), a short list to look at again.

    python -m benchmarks.ceilings --classifiers logreg svm --out runs/ceilings.json
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.labcells import add_lab_arguments, fit_lab_model, load_labs, score

#: Folds of the cross-validated rows.
FOLDS = 5
#: Fewest cells of a class for it to be tested in the cross-validated rows: every training
#: part then holds at least 5 of it (what the SVM's 5-fold calibration needs).
MIN_TESTED = FOLDS + 2


def cross_validated(Xp: np.ndarray | None, yp: np.ndarray | None, Xt: np.ndarray,
                    yt: np.ndarray, *, classifier: str, weight: float, seed: int = 0
                    ) -> tuple[np.ndarray, np.ndarray, list[bool]]:
    """Pooled out-of-fold predictions on the target's cells of classes with at least
    :data:`MIN_TESTED` cells.

    With ``Xp`` (the reference), each fold's model is fitted on the reference plus the
    target's other folds, weight ``weight``, aligned by their class means
    (``align_rows``, checked); without it, on the target's other folds alone, of the
    tested classes only (a class of a few cells cannot be fitted, e.g. by the SVM's
    calibration). Returns (tested rows, their predictions as indices into
    ``PBC5_CLASSES``, whether each fold kept the map).
    """
    from sklearn.model_selection import StratifiedKFold

    from wbc_classic.classical.model import WBCModel
    from wbc_classic.data.labels import PBC5_CLASSES

    counts = np.bincount(yt, minlength=len(PBC5_CLASSES))
    tested = np.flatnonzero(counts[yt] >= MIN_TESTED)
    always = np.setdiff1d(np.arange(len(yt)), tested)
    pred = np.full(len(yt), -1)
    kept: list[bool] = []
    folds = StratifiedKFold(FOLDS, shuffle=True, random_state=seed)
    for tr, te in folds.split(tested, yt[tested]):
        if Xp is None:
            model, to_pbc5 = fit_lab_model(classifier, Xt[tested[tr]], yt[tested[tr]],
                                           seed=seed)
        else:
            rows = np.sort(np.r_[tested[tr], always])
            model = WBCModel(classifier, classes=PBC5_CLASSES, cv=0, seed=seed)
            to_pbc5 = np.arange(len(PBC5_CLASSES))
            assert yp is not None
            model.fit_features(
                np.concatenate([Xp, Xt[rows]]), np.concatenate([yp, yt[rows]]),
                sample_weight=np.r_[np.ones(len(yp)), np.full(rows.size, weight)],
                align_rows=np.r_[np.zeros(len(yp), bool), np.ones(rows.size, bool)])
            kept.append(bool(model.metadata_["adaptation"]["applied"]))
        pred[tested[te]] = to_pbc5[model.predict_proba_features(Xt[tested[te]]).argmax(axis=1)]
    return tested, pred[tested], kept


def _wrong(rows: np.ndarray, pred: np.ndarray, yt: np.ndarray, images: Sequence[str],
           names: tuple[str, ...]) -> list[dict[str, str]]:
    """The tested cells predicted another class than their label: image, label, prediction."""
    return [{"image": images[r], "label": names[yt[r]], "predicted": names[p]}
            for r, p in zip(rows, pred, strict=True) if p != yt[r]]


def disputed_labels(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Cells that every cross-validated row (of every classifier given) gets wrong: a model
    of the lab's own cells and PBC plus the lab's other cells both disagree with their
    label, a short list of labels worth a second look. Each: image, label, predictions."""
    cv = [r for r in rows if "wrong" in r]
    if not cv:
        return []
    common = set.intersection(*({w["image"] for w in r["wrong"]} for r in cv))
    out: dict[str, dict[str, Any]] = {}
    for r in cv:
        for w in r["wrong"]:
            if w["image"] in common:
                d = out.setdefault(w["image"], {"image": w["image"], "label": w["label"],
                                                "predicted": []})
                d["predicted"].append(w["predicted"])
    return [out[k] for k in sorted(out)]


def lab_rows(Xp: np.ndarray, yp: np.ndarray, Xt: np.ndarray, yt: np.ndarray, *,
             classifier: str, weight: float, images: Sequence[str] | None = None
             ) -> list[dict[str, Any]]:
    """Every row of the table for one target lab and classifier (``images``: the names of
    the lab's cells, for the cross-validated rows' ``wrong`` lists)."""
    from wbc_classic.classical.adapt import class_mean_map
    from wbc_classic.classical.model import WBCModel
    from wbc_classic.data.labels import PBC5_CLASSES

    names = tuple(PBC5_CLASSES)
    pbc = WBCModel(classifier, classes=PBC5_CLASSES, cv=0).fit_features(Xp, yp)
    out = [{"row": "as trained",
            **score(yt, pbc.predict_proba_features(Xt).argmax(axis=1))}]
    for method in ("auto", "class-means"):
        adapted = pbc.adapt_features(Xt, method=method)
        out.append({"row": f"adapt {method}",
                    "chosen": adapted.metadata_["adaptation"].get("chosen", method),
                    **score(yt, adapted.predict_proba_features(Xt).argmax(axis=1))})
    slope, offset = class_mean_map(Xt, yt, Xp, yp)
    oracle = pbc._with_alignment(pbc._raw_map_alignment(slope, offset, len(yt)))
    out.append({"row": "class-means, true labels",
                **score(yt, oracle.predict_proba_features(Xt).argmax(axis=1))})
    images = [str(i) for i in range(len(yt))] if images is None else list(images)
    rows, pred, kept = cross_validated(Xp, yp, Xt, yt, classifier=classifier, weight=weight)
    out.append({"row": f"PBC + lab labels, {FOLDS}-fold", "map_kept": kept,
                **score(yt[rows], pred),
                "wrong": _wrong(rows, pred, yt, images, names)})
    rows, pred, _ = cross_validated(None, None, Xt, yt, classifier=classifier, weight=weight)
    out.append({"row": f"lab alone, {FOLDS}-fold", **score(yt[rows], pred),
                "wrong": _wrong(rows, pred, yt, images, names)})
    return out


def main(argv: list[str] | None = None) -> int:
    from wbc_classic.io.atomic import atomic_write_text
    from wbc_classic.io.options import float_range

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    add_lab_arguments(ap, classifiers=True)
    ap.add_argument("--target-weight", type=float_range(0, lo_open=True), default=30.0,
                    help="weight of the lab's labelled cells beside PBC's (as benchmarks.fewshot)")
    ap.add_argument("--out", type=Path, default=None, help="JSON of every row")
    args = ap.parse_args(argv)
    (Xp, yp, _), labs = load_labs(ap, args)
    results: list[dict[str, Any]] = []
    for target in args.targets:
        Xt, yt, images = labs[target]
        for classifier in args.classifiers:
            for row in lab_rows(Xp, yp, Xt, yt, classifier=classifier,
                                weight=args.target_weight, images=images):
                row.update(target=target, classifier=classifier)
                results.append(row)
                extra = (f", chose {row['chosen']}" if "chosen" in row else "") + \
                    (f", map kept in {sum(row['map_kept'])} of {len(row['map_kept'])} folds"
                     if "map_kept" in row else "")
                print(f"{target:16s} {classifier:7s} {row['row']:26s} "
                      f"{row['accuracy_text']}  balanced {row['balanced_accuracy']['value']:.3f}"
                      f"  ({row['n_test']} cells{extra})", flush=True)
        disputed = disputed_labels([r for r in results if r["target"] == target])
        results.append({"target": target, "row": "disputed labels", "cells": disputed})
        print(f"{target}: {len(disputed)} cells every cross-validated model calls another "
              "class than their label (worth a second look): " + (", ".join(
                  f"{d['image']} ({d['label']} -> {'/'.join(sorted(set(d['predicted'])))})"
                  for d in disputed) or "none"), flush=True)
    if args.out:
        atomic_write_text(args.out, json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
