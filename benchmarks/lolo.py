"""Leave-one-lab-out (LOLO) transfer benchmark over pbc, cellavision_seg and jtsc_seg.

Protocol (issue 12, item 1). The three labelled sources are three laboratories (PBC: Hospital
Clinic of Barcelona, CellaVision DM96, MGG; cellavision_seg: CellaVision blog images;
jtsc_seg: Jiangxi Tecom, Motic camera, a rapid stain), restricted to the five mature classes
(basophil, eosinophil, lymphocyte, monocyte, neutrophil). For every held-out lab and every
non-empty set of the *other* labs, a classifier is trained on those labs and tested on the
held-out one; ``pbc -> pbc`` (the in-lab reference) is added. The PBC part of a training set
is always the training part of the README's stratified 80/20 split (seed 0,
:func:`wbc_classic.data.split.make_split`), and PBC as a *test* lab is always its test part
(820 cells), so every PBC number is on the same cells; cellavision_seg (100 cells) and
jtsc_seg (300 cells) are used whole. The other labs' masks are *not* used: every image goes
through the production path (:func:`wbc_classic.classical.extraction.extract_features`:
default segmenter, :class:`features.FeatureExtractor`, content-keyed cache), as for a user.

Every (train, test) pair reports accuracy with its 95 % percentile-bootstrap interval
(1,000 resamples, :func:`wbc_classic.evaluation.metrics.evaluate`), balanced accuracy (with
its interval), per-class sensitivity and the confusion matrix. ``--features`` compares
feature sets: each is a ``+``-joined list of :data:`features.FAMILIES` names, or ``default``
(:data:`features.DEFAULT_FAMILIES`) or ``all``; the features of every family are extracted
once and each set selects its columns (the three flags are always kept).

Networks (the deep family) are scored on the same pairs from prediction CSVs
(``--deep-predictions TRAIN=FILE.csv``): ``TRAIN`` names the labs the network was trained on
(``pbc``, ``pbc+jtsc_seg``, ...: PBC meaning its 80/20 training part, as above), the CSV is
what ``python -m deep.predict`` writes (columns ``path``, ``predicted_class``; the model is
named by the file stem), and it is scored on every lab outside ``TRAIN`` (and on PBC's test
part when ``TRAIN`` holds pbc), so it must hold a row for each of those labs' images.
:func:`lolo_pairs` gives the training and test images of every pair, so that a training
script can produce those CSVs; :func:`score_predictions` scores one set of predictions the
same way as the classical rows.

Example::

    python -m benchmarks.lolo --classifiers logreg,svm \\
        --features default,geometry,texture,ldp,colour,density --out /tmp/lolo
"""

from __future__ import annotations

import argparse
import csv
import itertools
import json
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from wbc_classic.data.labels import PBC5_CLASSES

DEFAULT_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
#: The five mature classes, in label order (the one home of the names).
CLASSES5 = PBC5_CLASSES
#: The labelled laboratories, in table order.
LABS = ("pbc", "cellavision_seg", "jtsc_seg")
#: A class with fewer training cells than this is left out of a classical training set (the
#: calibrated classifiers cross-validate 5-fold inside); the row's ``train_dropped`` says so.
MIN_CLASS_CELLS = 5

__all__ = ["LABS", "CLASSES5", "LabSet", "Pair", "load_labs", "lolo_pairs", "feature_columns",
           "spec_families", "extract_labs", "score_predictions",
           "ADAPTATIONS", "classical_rows", "deep_rows", "markdown", "main"]


@dataclass(frozen=True)
class LabSet:
    """The labelled cells of one laboratory.

    Attributes
    ----------
    name : str
    train_paths, test_paths : tuple of str
        Images used when the lab is in a training set / when it is the test lab (the same
        images except for PBC, split 80/20).
    train_y, test_y : ndarray of int64
        Labels over :data:`CLASSES5`.
    """

    name: str
    train_paths: tuple[str, ...]
    train_y: np.ndarray
    test_paths: tuple[str, ...]
    test_y: np.ndarray


@dataclass(frozen=True)
class Pair:
    """One (training labs, test lab) cell of the LOLO grid, with its images and labels
    (``train_lab``: the lab of each training row)."""

    train: tuple[str, ...]
    test: str
    train_paths: tuple[str, ...]
    train_y: np.ndarray
    test_paths: tuple[str, ...]
    test_y: np.ndarray
    train_lab: tuple[str, ...] = ()

    @property
    def train_name(self) -> str:
        """The training labs joined by ``+`` (the ``TRAIN`` of ``--deep-predictions``)."""
        return "+".join(self.train)


def _seg_lab(root: Path) -> tuple[tuple[str, ...], np.ndarray]:
    from wbc_classic.data.datasets import load_segmentation_set

    samples = [s for s in load_segmentation_set(root) if s.label in CLASSES5]
    if not samples:
        raise ValueError(f"{root}: no cells of the classes {', '.join(CLASSES5)}")
    return (tuple(str(s.image_path) for s in samples),
            np.array([CLASSES5.index(s.label) for s in samples], np.int64))


def load_labs(data: Path, labs: Sequence[str] = LABS, *, seed: int = 0) -> dict[str, LabSet]:
    """The labelled cells of each lab in ``labs`` under ``data`` (see the module docstring).

    ``pbc`` is a class-folder tree (split 80/20 with ``seed``); any other name is a
    segmentation set with a labelled ``manifest.csv`` (:func:`wbc_classic.data.datasets.
    load_segmentation_set`).

    Raises
    ------
    FileNotFoundError, ValueError
        A lab's folder is missing or holds none of the five classes.
    """
    from wbc_classic.data.datasets import load_class_folders
    from wbc_classic.data.split import make_split

    out: dict[str, LabSet] = {}
    paths: np.ndarray | tuple[str, ...]
    for lab in labs:
        root = Path(data) / lab
        if not root.is_dir():
            raise FileNotFoundError(f"lab folder not found: {root}")
        if lab == "pbc":
            pbc = load_class_folders(root, classes=CLASSES5)
            split = make_split(pbc.y, "80/20", seed=seed)
            paths = np.asarray([str(p) for p in pbc.paths], dtype=object)
            y = np.asarray(pbc.y, np.int64)
            out[lab] = LabSet(lab, tuple(paths[split.train]), y[split.train],
                              tuple(paths[split.test]), y[split.test])
        else:
            paths, y = _seg_lab(root)
            out[lab] = LabSet(lab, paths, y, paths, y)
    return out


def lolo_pairs(labs: dict[str, LabSet], *, in_lab: bool = True) -> list[Pair]:
    """Every (training labs, held-out lab) pair of the grid, in table order.

    For each held-out lab (in the order of ``labs``), every non-empty subset of the other
    labs, smallest first; with ``in_lab``, ``pbc -> pbc`` (PBC's training part -> its test
    part) first.
    """
    names = list(labs)
    pairs: list[Pair] = []
    if in_lab and "pbc" in labs:
        pairs.append(_pair(labs, ("pbc",), "pbc"))
    for test in names:
        others = [n for n in names if n != test]
        for k in range(1, len(others) + 1):
            for train in itertools.combinations(others, k):
                pairs.append(_pair(labs, train, test))
    return pairs


def _pair(labs: dict[str, LabSet], train: tuple[str, ...], test: str) -> Pair:
    paths = tuple(p for lab in train for p in labs[lab].train_paths)
    y = np.concatenate([labs[lab].train_y for lab in train])
    lab_of_row = tuple(lab for lab in train for _ in labs[lab].train_paths)
    return Pair(train, test, paths, y, labs[test].test_paths, labs[test].test_y, lab_of_row)


# -- features ---------------------------------------------------------------------------------
def spec_families(spec: str) -> tuple[str, ...]:
    """The families of feature set ``spec`` (``default``, ``all`` or families joined by ``+``).

    Raises
    ------
    ValueError
        An empty spec or a name outside :data:`features.FAMILIES`.
    """
    from features import DEFAULT_FAMILIES, FAMILIES

    if spec == "default":
        return tuple(DEFAULT_FAMILIES)
    if spec == "all":
        return tuple(FAMILIES)
    fams = tuple(f.strip() for f in spec.split("+") if f.strip())
    unknown = [f for f in fams if f not in FAMILIES]
    if unknown or not fams:
        raise ValueError(f"feature set {spec!r}: unknown or empty families {unknown}; "
                         f"use default, all or {', '.join(FAMILIES)} joined by '+'")
    return fams


def feature_columns(slices: dict[str, slice], spec: str, n_columns: int) -> np.ndarray:
    """Columns (bool mask) of feature set ``spec`` in a feature matrix holding its families.

    Parameters
    ----------
    slices : dict of str to slice
        :meth:`features.FeatureExtractor.family_slices` of the extractor that made the matrix.
    spec : str
        ``default``, ``all``, or families joined by ``+`` (``geometry+texture``), see
        :func:`spec_families`.
    n_columns : int

    Returns
    -------
    ndarray of bool, shape (n_columns,)
        The flags and the columns of each family named.
    """
    fams = spec_families(spec)
    missing = [f for f in fams if f not in slices]
    if missing:
        raise ValueError(f"feature set {spec!r}: families {missing} were not extracted")
    mask = np.zeros(n_columns, bool)
    for name in ("flags", *fams):
        mask[slices[name]] = True
    return mask


def extract_labs(labs: dict[str, LabSet], *, families: Sequence[str] | None = None,
                 cache_dir: Path | None = None, n_jobs: int = 1
                 ) -> tuple[dict[str, np.ndarray], dict[str, slice], int]:
    """Features of every distinct image of ``labs`` (all ``families``, default every family).

    Returns
    -------
    features : dict of str to ndarray of float64, shape (n_features,)
        Path -> feature row (failed images: zeros, as ``extract_features`` leaves them).
    slices : dict of str to slice
        Column range of the flags and of each family.
    n_failed : int
    """
    from features import FAMILIES, FeatureExtractor
    from wbc_classic.classical.extraction import extract_features

    fx = FeatureExtractor(families=tuple(families) if families else FAMILIES)
    if not list(fx.family_slices())[1:]:
        raise ValueError("no feature family to extract")
    paths = sorted({p for lab in labs.values() for p in (*lab.train_paths, *lab.test_paths)})
    res = extract_features(paths, extractor=fx, n_jobs=n_jobs, cache_dir=cache_dir,
                           progress=False)
    for f in res.failures[:5]:
        print(f"  warning: {f}", file=sys.stderr)
    X = res.X.astype(np.float64)
    return {p: X[i] for i, p in enumerate(paths)}, fx.family_slices(), len(res.failures)


# -- scoring ----------------------------------------------------------------------------------
def score_predictions(y: np.ndarray, pred: np.ndarray, *, seed: int = 0,
                      n_resamples: int = 1000) -> dict:
    """Scores of predictions on one test lab, as stored in ``results.json``.

    Parameters
    ----------
    y : ndarray of int, shape (n,)
        True labels over :data:`CLASSES5`.
    pred : ndarray of int, shape (n,)
        Predicted labels over :data:`CLASSES5`; -1 (a class outside them, e.g. a network's
        ``erythroblast``) counts as wrong.
    seed, n_resamples
        Bootstrap settings (:func:`wbc_classic.evaluation.metrics.evaluate`).

    Returns
    -------
    dict
        ``n``, ``accuracy`` and ``balanced_accuracy`` (``{"value", "low", "high"}``),
        ``sensitivity`` (class -> value, classes present only), ``support``, ``confusion``
        (rows true :data:`CLASSES5`, columns predicted :data:`CLASSES5` then ``other``),
        ``other`` (predictions outside the five classes).
    """
    from wbc_classic.evaluation.metrics import evaluate

    y = np.asarray(y, np.int64)
    pred = np.asarray(pred, np.int64)
    k = len(CLASSES5)
    ev = evaluate(y, np.where(pred < 0, k, pred), n_classes=k + 1,
                  class_names=(*CLASSES5, "other"), n_resamples=n_resamples, seed=seed)
    support = np.bincount(y, minlength=k)
    return {
        "n": int(y.size),
        "accuracy": ev.metrics["accuracy"].to_dict(),
        # mean sensitivity over the classes present: "other" has no true cells, so it is left
        # out of the mean and only lowers the sensitivities of the classes it took cells from
        "balanced_accuracy": ev.metrics["balanced_accuracy"].to_dict(),
        "sensitivity": {CLASSES5[c]: float(ev.per_class.sensitivity[c]) for c in range(k)
                        if support[c]},
        "support": {CLASSES5[c]: int(support[c]) for c in range(k)},
        "confusion": ev.confusion[:k].tolist(),
        "other": int(np.sum(pred < 0)),
    }


#: Unsupervised adaptations to the test lab's unlabelled features
#: (:mod:`wbc_classic.classical.adapt`): ``none``; ``standardize``: every lab (each training
#: lab and the test lab) standardised by its own feature means and deviations; ``coral``: the
#: training features re-coloured to the test lab's covariance and mean.
ADAPTATIONS = ("none", "standardize", "coral")


def _adapt(kind: str, X_tr: np.ndarray, lab_tr: np.ndarray, X_te: np.ndarray
           ) -> tuple[np.ndarray, np.ndarray]:
    from wbc_classic.classical.adapt import coral, standardize_per_domain

    if kind == "none":
        return X_tr, X_te
    if kind == "standardize":
        Z = standardize_per_domain(np.vstack([X_tr, X_te]),
                                   np.concatenate([lab_tr, np.full(len(X_te), "<test>")]))
        return Z[:len(X_tr)], Z[len(X_tr):]
    if kind == "coral":
        return coral(X_tr, X_te), X_te
    raise ValueError(f"unknown adaptation {kind!r}; choose from {', '.join(ADAPTATIONS)}")


def classical_rows(pairs: Sequence[Pair], feats: dict[str, np.ndarray],
                   slices: dict[str, slice], *, feature_sets: Sequence[str],
                   classifiers: Sequence[str], adaptations: Sequence[str] = ("none",),
                   seed: int = 0, n_jobs: int = 1,
                   n_resamples: int = 1000, log: bool = True) -> list[dict]:
    """Train every classifier on every feature set for every pair and score it.

    With ``adaptations`` beyond ``none`` (see :data:`ADAPTATIONS`), each is also run; an
    adapted model uses the test lab's unlabelled features, so it is fitted per test lab.

    Returns
    -------
    list of dict
        One row per (pair, feature set, classifier): ``family``, ``model``, ``features``,
        ``train`` (labs joined by ``+``), ``test``, ``train_n``, ``train_dropped`` (classes
        left out of training for having fewer than :data:`MIN_CLASS_CELLS` cells, with their
        counts), plus :func:`score_predictions`'s keys.
    """
    from wbc_classic.classical.classifiers import make_classifier

    n_cols = len(next(iter(feats.values())))
    rows = []
    t0 = time.time()
    fitted: dict[tuple, Any] = {}  # pbc -> pbc and pbc -> other labs share their models
    for pair in pairs:
        counts = np.bincount(pair.train_y, minlength=len(CLASSES5))
        # the calibrated classifiers cross-validate 5-fold inside: a class with fewer cells
        # cannot be fitted, so it is left out of training (its test cells then count wrong)
        dropped = {CLASSES5[c]: int(counts[c]) for c in range(len(CLASSES5))
                   if 0 < counts[c] < MIN_CLASS_CELLS}
        keep = np.isin(pair.train_y, [c for c in range(len(CLASSES5))
                                      if counts[c] >= MIN_CLASS_CELLS])
        if len(np.unique(pair.train_y[keep])) < 2:
            raise ValueError(f"training labs {pair.train_name}: fewer than two classes with "
                             f"{MIN_CLASS_CELLS} or more cells")
        y_tr = pair.train_y[keep]
        X_tr = None
        X_te = np.vstack([feats[p] for p in pair.test_paths])
        for spec, clf_name, kind in itertools.product(feature_sets, classifiers, adaptations):
            cols = feature_columns(slices, spec, n_cols)
            key = (pair.train_name, spec, clf_name, kind, pair.test if kind != "none" else "")
            if X_tr is None:
                X_tr = np.vstack([feats[p] for p, k in
                                  zip(pair.train_paths, keep, strict=True) if k])
                lab_tr = np.asarray(pair.train_lab, dtype=object)[keep].astype(str) \
                    if pair.train_lab else np.full(len(y_tr), pair.train_name)
            A_tr, A_te = _adapt(kind, X_tr[:, cols], lab_tr, X_te[:, cols])
            if key not in fitted:
                clf = make_classifier(clf_name, seed=seed, n_jobs=n_jobs)
                fitted[key] = clf.fit(A_tr, y_tr)
            clf = fitted[key]
            pred = np.asarray(clf.predict(A_te), np.int64)
            row = {"family": "classical",
                   "model": clf_name if kind == "none" else f"{clf_name}+{kind}",
                   "features": spec, "adaptation": kind,
                   "train": pair.train_name, "test": pair.test, "train_n": int(y_tr.size),
                   "train_dropped": dropped,
                   **score_predictions(pair.test_y, pred, seed=seed, n_resamples=n_resamples)}
            rows.append(row)
            if log:
                print(f"{pair.train_name:>30s} -> {pair.test:15s} {spec:28s} {row['model']:8s} "
                      f"acc {row['accuracy']['value']:.3f}  bal "
                      f"{row['balanced_accuracy']['value']:.3f}  ({time.time() - t0:.0f} s)",
                      flush=True)
    return rows


def deep_rows(specs: Sequence[str], pairs: Sequence[Pair], *, seed: int = 0,
              n_resamples: int = 1000) -> list[dict]:
    """Rows of network predictions, one per (CSV, test lab) of the grid.

    Parameters
    ----------
    specs : sequence of str
        ``TRAIN=path.csv`` (see the module docstring).
    pairs : sequence of Pair
        The grid (:func:`lolo_pairs`); a CSV is scored on each pair whose ``train_name`` is
        its ``TRAIN``.

    Raises
    ------
    ValueError
        A malformed spec, an unknown ``TRAIN``, or a CSV without a prediction for an image
        of a test lab (the message names the file and the image).
    """
    rows = []
    for spec in specs:
        train, sep, file = spec.partition("=")
        if not sep or not file:
            raise ValueError(f"--deep-predictions takes TRAIN=FILE.csv, got {spec!r}")
        mine = [p for p in pairs if p.train_name == train]
        if not mine:
            valid = sorted({p.train_name for p in pairs})
            raise ValueError(f"{file}: unknown training set {train!r}; one of {valid}")
        path = Path(file)
        try:
            with open(path, newline="") as fh:
                table = {str(Path(r["path"]).resolve()): r.get("predicted_class", "")
                         for r in csv.DictReader(fh)}
        except KeyError as exc:
            raise ValueError(f"{path}: no column {exc} (expected path, predicted_class)") \
                from exc
        for pair in mine:
            keys = [str(Path(p).resolve()) for p in pair.test_paths]
            missing = [p for p, k in zip(pair.test_paths, keys, strict=True) if k not in table]
            if missing:
                raise ValueError(f"{path}: no prediction for {len(missing)} {pair.test} "
                                 f"image(s), e.g. {missing[0]}")
            pred = np.array([CLASSES5.index(table[k]) if table[k] in CLASSES5 else -1
                             for k in keys], np.int64)
            rows.append({"family": "deep", "model": path.stem, "features": "-",
                         "train": train, "test": pair.test,
                         **score_predictions(pair.test_y, pred, seed=seed,
                                             n_resamples=n_resamples)})
    return rows


# -- report -----------------------------------------------------------------------------------
def _ci(m: dict) -> str:
    v, lo, hi = m["value"], m["low"], m["high"]
    if v is None:
        return "-"
    return f"{v:.3f} [{lo:.2f}, {hi:.2f}]" if lo is not None and hi is not None else f"{v:.3f}"


def markdown(rows: Sequence[dict]) -> str:
    """The report: one table of every row (accuracy and balanced accuracy with 95 % intervals,
    per-class sensitivity), a transfer summary per feature set, then the confusion matrices."""
    short = [c[:4] for c in CLASSES5]
    lines = ["## Leave-one-lab-out: every (train, test) pair", "",
             "| family | model | features | train | test | n | accuracy [95 % CI] | "
             "balanced acc. [95 % CI] | " + " | ".join(short) + " |",
             "|" + "---|" * (8 + len(CLASSES5))]
    for r in rows:
        sens = " | ".join(f"{r['sensitivity'][c]:.2f}" if c in r["sensitivity"] else "-"
                          for c in CLASSES5)
        lines.append(f"| {r['family']} | {r['model']} | {r['features']} | {r['train']} | "
                     f"{r['test']} | {r['n']} | {_ci(r['accuracy'])} | "
                     f"{_ci(r['balanced_accuracy'])} | {sens} |")
    lines += ["", "## Transfer summary (accuracy / balanced accuracy)", "",
              *_summary(rows), "", "## Confusion matrices (rows true, columns predicted: "
              + ", ".join(short) + ", other)", ""]
    for r in rows:
        lines.append(f"- {r['family']} {r['model']} `{r['features']}` {r['train']} -> "
                     f"{r['test']}: " + "; ".join(
                         " ".join(str(v) for v in row) for row in r["confusion"]))
    return "\n".join(lines)


def _summary(rows: Sequence[dict]) -> list[str]:
    """One line per (family, model, features): the score of each pair, as columns."""
    pairs = list(dict.fromkeys((r["train"], r["test"]) for r in rows))
    head = "| family | model | features | " + " | ".join(f"{a} -> {b}" for a, b in pairs) + " |"
    out = [head, "|" + "---|" * (3 + len(pairs))]
    groups: dict[tuple, dict] = {}
    r: dict | None
    for r in rows:
        groups.setdefault((r["family"], r["model"], r["features"]), {})[
            (r["train"], r["test"])] = r
    for (fam, model, spec), cells in groups.items():
        vals = []
        for p in pairs:
            r = cells.get(p)
            vals.append("-" if r is None else f"{r['accuracy']['value']:.3f} / "
                        f"{r['balanced_accuracy']['value']:.3f}")
        out.append(f"| {fam} | {model} | {spec} | " + " | ".join(vals) + " |")
    return out


# -- command ----------------------------------------------------------------------------------
def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.lolo",
                                 description=__doc__.split("\n")[0],
                                 epilog=__doc__[__doc__.index("Example::"):],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=DEFAULT_DATA,
                    help="folder holding the labs' folders (default ../shared/data)")
    ap.add_argument("--labs", default=",".join(LABS),
                    help=f"labs of the grid, comma-separated (default {','.join(LABS)})")
    ap.add_argument("--classifiers", default="logreg,svm")
    ap.add_argument("--features", default="default",
                    help="feature sets, comma-separated; each 'default', 'all' or families "
                         "joined by '+' (e.g. default,geometry,geometry+density)")
    ap.add_argument("--adapt", default="none",
                    help="unsupervised adaptations to the test lab, comma-separated: "
                         + ", ".join(ADAPTATIONS) + " (default none)")
    ap.add_argument("--deep-predictions", nargs="*", default=[], metavar="TRAIN=CSV",
                    help="network predictions to score on the same grid (see above)")
    ap.add_argument("--no-in-lab", action="store_true", help="leave out the pbc -> pbc row")
    ap.add_argument("--cache-dir", type=Path, default=None,
                    help="feature cache (default $WBC_CACHE_DIR or ./.wbc_cache)")
    ap.add_argument("--n-jobs", type=int, default=1)
    ap.add_argument("--n-resamples", type=int, default=1000, help="bootstrap resamples")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, help="write results.json and report.md here")
    args = ap.parse_args(argv)
    import os

    cache = args.cache_dir or Path(os.environ.get("WBC_CACHE_DIR", ".wbc_cache"))
    try:
        labs = load_labs(args.data, [s for s in args.labs.split(",") if s], seed=args.seed)
        pairs = lolo_pairs(labs, in_lab=not args.no_in_lab)
        feature_sets = [s for s in args.features.split(",") if s]
        classifiers = [s for s in args.classifiers.split(",") if s]
        adaptations = [s for s in args.adapt.split(",") if s]
        bad = [a for a in adaptations if a not in ADAPTATIONS]
        if bad:
            raise ValueError(f"unknown adaptations {bad}; choose from {', '.join(ADAPTATIONS)}")
        from wbc_classic.classical.classifiers import CLASSIFIERS

        bad = [c for c in classifiers if c not in CLASSIFIERS]
        if bad:
            raise ValueError(f"unknown classifiers {bad}; choose from {', '.join(CLASSIFIERS)}")
        rows: list[dict] = []
        if feature_sets and classifiers:
            for spec in feature_sets:  # a bad spec fails before anything is computed
                spec_families(spec)
            # every family, whatever the feature sets: one cache entry per image serves
            # every run of this benchmark (the key holds the extractor's settings)
            feats, slices, n_failed = extract_labs(labs, cache_dir=cache, n_jobs=args.n_jobs)
            print("# " + ", ".join(f"{k}: {len(v.train_y)} train / {len(v.test_y)} test"
                                   for k, v in labs.items())
                  + f"; {n_failed} image(s) failed", flush=True)
            rows += classical_rows(pairs, feats, slices, feature_sets=feature_sets,
                                   classifiers=classifiers, adaptations=adaptations,
                                   seed=args.seed, n_jobs=args.n_jobs,
                                   n_resamples=args.n_resamples)
        rows += deep_rows(args.deep_predictions, pairs, seed=args.seed,
                          n_resamples=args.n_resamples)
    except (FileNotFoundError, ValueError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    report = markdown(rows)
    print("\n".join(_summary(rows)))
    if args.out:
        from wbc_classic.io.atomic import atomic_write_text

        args.out.mkdir(parents=True, exist_ok=True)
        atomic_write_text(args.out / "results.json", json.dumps(
            {"protocol": "leave-one-lab-out", "labs": list(labs), "classes": list(CLASSES5),
             "seed": args.seed, "rows": rows}, indent=1))
        atomic_write_text(args.out / "report.md", report + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
