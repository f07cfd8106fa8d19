"""``wbc-classic train``: fit a classical leukocyte classifier on class folders.

Loads ``DATA/<class>/<images>``, segments every image and extracts its features (in
parallel, cached on disk per image so a re-run is fast), reports the cross-validated
accuracy, optionally the accuracy and per-class sensitivity on a held-out part of a
stratified seeded split, and saves everything needed to predict (segmenter and feature
settings, fitted classifier, class names, package versions, training summary) in one
``.skops`` file.

With ``--test-split`` the saved model is the one fitted on the training part only, so the
reported held-out numbers describe exactly the file that was written.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

HELP = "train a classical (segmentation + features + classifier) leukocyte model"
EXAMPLE = ("wbc-classic train --data ../shared/data/pbc --preset pbc8 --classifier svm "
           "--out model.skops --n-jobs 2 --test-split 80/20")

DEFAULT_CACHE = ".wbc_cache"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the ``train`` options to ``parser``."""
    from features.extractor import FAMILIES
    from wbc_classic.classical.classifiers import CLASSIFIERS
    from wbc_classic.preprocess.stain import available_normalizers

    parser.add_argument("--data", required=True, type=Path,
                        help="folder with one sub-folder of images per class")
    which = parser.add_mutually_exclusive_group()
    which.add_argument("--classes", nargs="+", metavar="CLASS",
                       help="classes to use, in label order (default: every class folder)")
    which.add_argument("--preset", choices=["pbc5", "pbc8"],
                       help="pbc5: the 5 mature leukocyte classes; pbc8: all 8 PBC classes")
    parser.add_argument("--classifier", default="svm", choices=list(CLASSIFIERS),
                        help="classifier (default: svm)")
    parser.add_argument("--out", required=True, type=Path, help="model file to write (.skops)")
    parser.add_argument("--n-jobs", type=int, default=1,
                        help="parallel jobs for features and the classifier (-1: all cores)")
    parser.add_argument("--cache-dir", type=Path, default=Path(DEFAULT_CACHE),
                        help=f"per-image feature cache (default: ./{DEFAULT_CACHE})")
    parser.add_argument("--no-cache", action="store_true", help="do not use the feature cache")
    parser.add_argument("--seed", type=int, default=0, help="seed of folds, split and model")
    parser.add_argument("--test-split", metavar="SCHEME", default=None,
                        help="hold out the test part of a stratified split (e.g. 80/20), "
                             "report its accuracy and per-class sensitivity, and fit the "
                             "saved model on the rest")
    parser.add_argument("--cv", type=int, default=5,
                        help="folds of the reported cross-validated accuracy (0: skip)")
    parser.add_argument("--feature-selection", choices=["univariate", "sfs"], default=None,
                        help="optional feature selection step")
    parser.add_argument("--k", type=int, default=60, help="features kept by the selection")
    parser.add_argument("--search", choices=["grid", "halving"], default=None,
                        help="tune hyper-parameters by stratified cross-validation")
    parser.add_argument("--families", nargs="+", default=None, choices=FAMILIES,
                        metavar="FAMILY",
                        help=f"feature families, any of {' '.join(FAMILIES)} (default: "
                             "geometry texture ldp colour; density is the stain-robust "
                             "optical-density family)")
    parser.add_argument("--no-class-weight", action="store_true",
                        help="do not balance the classes")
    parser.add_argument("--stain", default="none",
                        choices=available_normalizers(),
                        help="stain/colour normalisation of the pixels the features see, "
                             "fitted on 50 training images and saved in the model "
                             "(default: none)")
    parser.add_argument("--augment-copies", type=int, default=0, metavar="K",
                        help="add K augmented copies of every training image (HED stain "
                             "jitter, brightness/contrast, scale jitter, blur, flips; "
                             "seeded, cached like the originals; default 0 = none)")
    parser.add_argument("--augment-strength", type=float, default=1.0,
                        help="amplitude of that augmentation (2 = twice the stain jitter, "
                             "+-40%% scale; default 1)")
    parser.add_argument("--augment-no-scale", action="store_true",
                        help="augment colour, blur and orientation only, not the scale")


def _resolve_classes(args: argparse.Namespace) -> Sequence[str] | str | None:
    if args.preset:
        return args.preset
    return args.classes


def extract_dataset(paths: Sequence[Any], extractor: Any, *, segment_params: dict | None,
                    n_jobs: int, cache_dir: Path | None, progress: bool = True,
                    stain: Any = None) -> tuple[np.ndarray, list[str]]:
    """Features of every image through :func:`wbc_classic.classical.extraction.extract_features`.

    Uses the same segmenter settings as :class:`wbc_classic.classical.model.WBCModel` will at
    prediction time (and its fitted ``stain`` normaliser, if any), and the on-disk per-image
    cache when ``cache_dir`` is given.

    Returns
    -------
    X : ndarray of float32, shape (n, F)
        Rows of failed images are NaN.
    errors : list of str, length n
        "" for a good image, else ``"<file>: <stage> failed: <reason>"``.
    """
    import functools

    from segmentation import segment
    from wbc_classic.classical.extraction import extract_features
    from wbc_classic.classical.model import segmenter_params
    from wbc_classic.preprocess.augment import AugmentedImage

    params = segmenter_params(segment_params)
    segmenter = segment if params is None else functools.partial(segment, params=params)
    result = extract_features([p if isinstance(p, AugmentedImage) else str(p) for p in paths],
                              segmenter=segmenter,
                              extractor=extractor, n_jobs=n_jobs, cache_dir=cache_dir,
                              progress=progress, stain=stain)
    X = np.array(result.X, dtype=np.float32)
    X[~result.ok] = np.nan
    errors = ["" for _ in range(len(paths))]
    for failure in result.failures:
        errors[failure.index] = str(failure)
    return X, errors


def run(args: argparse.Namespace) -> int:
    """Run ``wbc-classic train``; returns 0 on success, 1 on a data or fitting problem."""
    from features import FeatureExtractor
    from wbc_classic.classical.model import WBCModel
    from wbc_classic.data.datasets import load_class_folders

    t_start = time.perf_counter()
    try:
        data = load_class_folders(args.data, _resolve_classes(args))
    except (FileNotFoundError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    classes = tuple(data.classes)
    counts = np.bincount(data.y, minlength=len(classes))
    print(f"data: {args.data} -- {len(data.paths)} images, {len(classes)} classes")
    for c, k in zip(classes, counts, strict=True):
        print(f"  {c:>14s}: {k}")

    extractor = FeatureExtractor() if not args.families else \
        FeatureExtractor(families=tuple(args.families))
    params: dict[str, Any] = {"class_weight": None if args.no_class_weight else "balanced"}
    if args.feature_selection:
        params.update(feature_selection=args.feature_selection, k=args.k)
    if args.search:
        params.update(search=args.search, cv=max(2, args.cv or 5))
    model = WBCModel(args.classifier, extractor=extractor, segment_params={},
                     classifier_params=params, n_jobs=args.n_jobs, seed=args.seed,
                     stain=args.stain)
    split = None
    train_idx = np.arange(len(data.paths))
    if args.test_split:
        from wbc_classic.data.split import make_split

        split = make_split(data.y, scheme=args.test_split, seed=args.seed)
        train_idx = np.union1d(split.train, split.val)
    model.set_scale([data.paths[i] for i in train_idx])
    if model.um_per_pixel_ is not None:
        print(f"pixel scale of the training images: {model.um_per_pixel_:.4f} um/px "
              "(median red-cell estimate over 50 of them)")
    try:
        model.set_stain([data.paths[i] for i in train_idx])
    except (OSError, ValueError) as exc:
        print(f"error: cannot fit the {args.stain} stain normaliser: {exc}", file=sys.stderr)
        return 1
    cache_dir = None if args.no_cache else args.cache_dir
    t0 = time.perf_counter()
    X, errors = extract_dataset(data.paths, extractor, segment_params={}, n_jobs=args.n_jobs,
                                cache_dir=cache_dir, progress=sys.stderr.isatty(),
                                stain=model.stain_)
    t_feat = time.perf_counter() - t0
    bad = [i for i, e in enumerate(errors) if e]
    print(f"features: {X.shape[1]} per image, {len(data.paths)} images in {t_feat:.1f} s"
          + (f" (cache: {cache_dir})" if cache_dir else ""))
    if bad:
        print(f"warning: {len(bad)} images could not be used and are skipped:", file=sys.stderr)
        for i in bad[:10]:
            print(f"  {errors[i]}", file=sys.stderr)
    keep = np.array([not e for e in errors], dtype=bool) & np.all(np.isfinite(X), axis=1)
    if not keep.any():
        print("error: no usable images", file=sys.stderr)
        return 1

    summary: dict[str, Any] = {"root": str(Path(args.data).resolve()),
                               "n_images": len(data.paths), "n_skipped": len(bad)}

    holdout: dict[str, Any] | None = None
    fit_idx = np.flatnonzero(keep)
    if split is not None:
        fit_idx = train_idx[keep[train_idx]]
        test_idx = split.test[keep[split.test]]
        summary.update(split_scheme=split.scheme, split_seed=int(split.seed),
                       n_train=int(fit_idx.size), n_test=int(test_idx.size))

    X_fit, y_fit, groups = X[fit_idx], data.y[fit_idx], None
    augmentation = None
    if args.augment_copies > 0:
        from wbc_classic.classical.model import with_augmented_copies
        from wbc_classic.preprocess.augment import augmented_copies, default_augmentation

        augmentation = default_augmentation(args.augment_strength,
                                            scale=not args.augment_no_scale)
        copies = augmented_copies([data.paths[i] for i in fit_idx], augmentation,
                                  args.augment_copies, seed=args.seed)
        t0 = time.perf_counter()
        X_aug, aug_errors = extract_dataset(copies, extractor, segment_params={},
                                            n_jobs=args.n_jobs, cache_dir=cache_dir,
                                            progress=sys.stderr.isatty(), stain=model.stain_)
        t_feat += time.perf_counter() - t0
        ok = np.array([not e for e in aug_errors]) & np.all(np.isfinite(X_aug), axis=1)
        print(f"augmentation: {int(ok.sum())} of {len(copies)} augmented copies used "
              f"({args.augment_copies} per training image)")
        X_fit, y_fit, groups = with_augmented_copies(X_fit, y_fit, X_aug,
                                                     args.augment_copies, ok)
    t0 = time.perf_counter()
    try:
        model.fit_features(X_fit, y_fit, classes, cv=args.cv, data_summary=summary,
                           groups=groups)
    except ValueError as exc:
        print(f"error: cannot fit: {exc}", file=sys.stderr)
        return 1
    t_fit = time.perf_counter() - t0
    if augmentation is not None:
        from wbc_classic.classical.model import augmentation_summary

        model.metadata["augmentation"] = augmentation_summary(augmentation,
                                                              args.augment_copies)
    meta = model.metadata
    if "cv_accuracy" in meta:
        extra = f" +/- {meta['cv_accuracy_std']:.4f} ({meta['cv_folds']}-fold)" \
            if "cv_accuracy_std" in meta else " (best of the search)"
        print(f"cross-validated accuracy: {meta['cv_accuracy']:.4f}{extra}")
    if "best_params" in meta:
        print(f"best parameters: {meta['best_params']}")

    if args.test_split:
        holdout = _evaluate_holdout(model, X[test_idx], data.y[test_idx], classes)
        holdout.update(scheme=split.scheme, seed=int(split.seed))
        meta["holdout"] = holdout
        print(f"held-out accuracy ({split.scheme} split, seed {split.seed}, "
              f"{test_idx.size} images): {holdout['accuracy']:.4f}")
        print(f"  {'class':>14s}  sensitivity  precision  support")
        for c in classes:
            print(f"  {c:>14s}  {holdout['sensitivity'][c]:11.4f}  "
                  f"{holdout['precision'][c]:9.4f}  {holdout['support'][c]:7d}")

    meta["train_seconds"] = {"features": round(t_feat, 2), "fit": round(t_fit, 2),
                             "total": round(time.perf_counter() - t_start, 2)}
    try:
        path = model.save(args.out)
    except OSError as exc:
        print(f"error: cannot write {args.out}: {exc}", file=sys.stderr)
        return 1
    size = os.path.getsize(path)
    print(f"saved {path} ({size / 2**20:.2f} MB) in {time.perf_counter() - t_start:.1f} s "
          f"total (features {t_feat:.1f} s, fit {t_fit:.1f} s)")
    return 0


def _evaluate_holdout(model: Any, X: np.ndarray, y: np.ndarray,
                      classes: Sequence[str]) -> dict[str, Any]:
    """Accuracy and per-class sensitivity/precision of ``model`` on held-out features."""
    from wbc_classic.evaluation.metrics import confusion_matrix, per_class_metrics

    proba = model.predict_proba_features(X)
    pred = proba.argmax(axis=1)
    pc = per_class_metrics(y, pred, n_classes=len(classes), class_names=classes)
    cm = confusion_matrix(y, pred, n_classes=len(classes))
    return {
        "n": int(y.size),
        "accuracy": float((pred == y).mean()) if y.size else float("nan"),
        "sensitivity": {c: float(v) for c, v in zip(classes, pc.sensitivity, strict=True)},
        "precision": {c: float(v) for c, v in zip(classes, pc.precision, strict=True)},
        "support": {c: int(v) for c, v in zip(classes, pc.support, strict=True)},
        "confusion_matrix": cm.tolist(),
    }
