"""``wbc-classic train``: fit a classical leukocyte classifier on class folders.

Loads ``DATA/<class>/<images>``, segments every image and extracts its features (in
parallel, cached on disk per image so a re-run is fast), reports the cross-validated
accuracy, optionally the accuracy and per-class sensitivity on a held-out part of a
stratified seeded split, and saves everything needed to predict (segmenter and feature
settings, fitted classifier, class names, package versions, training summary) in one
``.skops`` file.

With ``--split`` the saved model is the one fitted on the training part only, so the
reported held-out numbers describe exactly the file that was written.

Exit codes (:mod:`wbc_classic.io.options`): 0 the model was saved and every image used; 1 the
model was saved but some images could not be used (listed); 2 a bad option or data folder,
an impossible split, nothing usable to fit on, or an ``--out`` that cannot be written
(checked before any work).  The feature cache follows :mod:`wbc_classic.io.cachedir`.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

import numpy as np

from wbc_classic.io.options import (
    EXIT_FAILED_INPUTS,
    EXIT_OK,
    EXIT_USAGE,
    NamesAction,
    add_cache_options,
    deprecated_alias,
    float_range,
    int_range,
    n_jobs_value,
)

if TYPE_CHECKING:
    from wbc_classic.data.datasets import ImageSet

HELP = "train a classical (segmentation + features + classifier) leukocyte model"
EXAMPLE = ("wbc-classic train --data ../shared/data/pbc --preset pbc8 --classifier svm "
           "--out model.skops --n-jobs 2 --split 80/20")



def _cv_folds(text: str) -> int:
    """``--cv``: 0 (skip) or at least 2 folds."""
    value = int_range(0, 100)(text)
    if value == 1:
        raise argparse.ArgumentTypeError("must be 0 (skip) or a number of folds >= 2, got '1'")
    return value


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the ``train`` options to ``parser``."""
    from features.extractor import FAMILIES
    from wbc_classic.classical.classifiers import CLASSIFIERS
    from wbc_classic.data.split import scheme_argument
    from wbc_classic.preprocess.stain import available_normalizers

    parser.add_argument("--data", required=True, action="append", type=source_argument,
                        metavar="[LAB=]FOLDER[:WEIGHT]",
                        help="labelled images: a folder with one sub-folder per class, or a "
                             "segmentation set with manifest.csv (image,mask,label); repeat "
                             "for several sources, each with a lab name and a sample weight, "
                             "e.g. --data pbc=../shared/data/pbc:1 --data "
                             "jtsc=../shared/data/jtsc_seg:5 (default name: the folder's, "
                             "weight 1)")
    parser.add_argument("--per-class", action="append", default=None, type=per_class_argument,
                        metavar="[LAB=]K",
                        help="take at most K labelled cells per class from a source (a "
                             "seeded pick; LAB=K for one source, K alone for every source "
                             "but the first), e.g. --per-class jtsc=10")
    parser.add_argument("--align", metavar="LAB", default=None,
                        help="make the model for LAB's images: LAB's labelled cells (a --data "
                             "source, e.g. a few per class with --per-class) are mapped "
                             "class by class onto the other sources' features, and every "
                             "later input is mapped the same way; kept only when a "
                             "cross-validation on LAB's cells says it helps (printed)")
    which = parser.add_mutually_exclusive_group()
    which.add_argument("--classes", nargs="+", metavar="CLASS", action=NamesAction,
                       help="classes to use, in label order, space- or comma-separated "
                            "(default: every class folder)")
    which.add_argument("--preset", choices=["pbc5", "pbc8"],
                       help="pbc5: the 5 mature leukocyte classes; pbc8: all 8 PBC classes")
    parser.add_argument("--classifier", default="svm", choices=list(CLASSIFIERS),
                        help="classifier (default: svm)")
    parser.add_argument("--out", required=True, type=Path, help="model file to write (.skops)")
    parser.add_argument("--n-jobs", type=n_jobs_value, default=1,
                        help="parallel jobs for features and the classifier (-1: all cores)")
    add_cache_options(parser)
    parser.add_argument("--seed", type=int_range(0, 2**32 - 1), default=0,
                        help="seed of folds, split and model")
    parser.add_argument("--split", metavar="SCHEME", default=None, type=scheme_argument,
                        help="hold out the test part of a stratified split (e.g. 80/20), "
                             "report its accuracy and per-class sensitivity, and fit the "
                             "saved model on the rest")
    deprecated_alias(parser, "--test-split", "--split", metavar="SCHEME", type=scheme_argument)
    parser.add_argument("--cv", type=_cv_folds, default=5,
                        help="folds of the reported cross-validated accuracy (0: skip)")
    parser.add_argument("--feature-selection", choices=["univariate", "sfs"], default=None,
                        help="optional feature selection step")
    parser.add_argument("--k", type=int_range(1), default=60,
                        help="features kept by the selection")
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
    parser.add_argument("--augment-copies", type=int_range(0, 50), default=0, metavar="K",
                        help="add K augmented copies of every training image (HED stain "
                             "jitter, brightness/contrast, scale jitter, blur, flips; "
                             "seeded, cached like the originals; default 0 = none)")
    parser.add_argument("--augment-strength", type=float_range(0, 5, lo_open=True), default=1.0,
                        help="amplitude of that augmentation (2 = twice the stain jitter, "
                             "+-40%% scale; default 1)")
    parser.add_argument("--augment-no-scale", action="store_true",
                        help="augment colour, blur and orientation only, not the scale")


class Source(NamedTuple):
    """One ``--data`` source: lab name, folder, sample weight."""

    lab: str
    path: Path
    weight: float


def source_argument(text: str) -> Source:
    """``--data [LAB=]FOLDER[:WEIGHT]`` -> :class:`Source` (argparse type)."""
    lab, sep, rest = text.partition("=")
    if not sep or "/" in lab or not lab:
        lab, rest = "", text
    weight = 1.0
    head, colon, tail = rest.rpartition(":")
    if colon:
        try:
            weight = float(tail)
        except ValueError:
            head = rest  # a ':' in the folder name, no weight
        else:
            if not (np.isfinite(weight) and weight > 0):
                raise argparse.ArgumentTypeError(f"weight must be a positive number, got "
                                                 f"{tail!r} in {text!r}")
    else:
        head = rest
    if not head:
        raise argparse.ArgumentTypeError(f"no folder in {text!r}")
    path = Path(head)
    return Source(lab or path.resolve().name, path, weight)


def per_class_argument(text: str) -> tuple[str | None, int]:
    """``--per-class [LAB=]K`` -> (lab or None, K) (argparse type)."""
    lab, sep, k = text.rpartition("=")
    value = int_range(1)(k)
    return (lab if sep else None), value


def load_sources(sources: Sequence[Source], classes: Sequence[str] | str | None,
                 per_class: Sequence[tuple[str | None, int]] = (), seed: int = 0
                 ) -> tuple[Any, np.ndarray, np.ndarray, list[dict[str, Any]]]:
    """Load and stack labelled sources (class folders or manifest sets).

    Parameters
    ----------
    sources : sequence of Source
    classes : class names, a preset name, or None (the union of the sources' classes)
    per_class : (lab or None, K) pairs: at most K cells per class of that lab (None: every
        source but the first), a seeded pick.
    seed : int

    Returns
    -------
    data : wbc_classic.data.datasets.ImageSet (every source, in order)
    weight : ndarray of float64 (n,), each image's source weight
    lab : ndarray of str (n,), each image's lab name
    summary : list of dict, one per source (lab, root, weight, per_class, counts)

    Notes
    -----
    With ``classes`` given, the first source must hold every one of them (it is the
    reference, e.g. PBC); without, the classes are those of all the sources together. A
    later source may hold only some of them (a lab that labelled its neutrophils and
    lymphocytes only): its other classes are learnt from the other sources, and its entry
    in ``summary`` lists them under ``"missing"``.

    Raises
    ------
    ValueError
        A folder that cannot be loaded, a later source with none of the classes, two
        sources with one lab name, a --per-class lab that is no source, or fewer than 2
        classes in all.
    """
    from wbc_classic.data.datasets import ImageSet, load_labelled

    labs = [s.lab for s in sources]
    if len(set(labs)) != len(labs):
        raise ValueError(f"two --data sources have the same lab name: {labs}")
    limits: dict[str, int] = {}
    k: int | None
    for lab, k in per_class:
        if lab is not None and lab not in labs:
            raise ValueError(f"--per-class {lab}={k}: no --data source named {lab!r} "
                             f"(sources: {', '.join(labs)})")
        for name in ([lab] if lab is not None else labs[1:]):
            limits[name] = k
    if classes is None:
        names = tuple(sorted({c for s in sources for c in load_labelled(s.path).classes}))
        loaded = [_load_some_classes(s.path, names) for s in sources]
    elif len(sources) == 1:
        loaded = [load_labelled(sources[0].path, classes)]
        names = tuple(loaded[0].classes)
    else:
        loaded = [_load_some_classes(s.path, classes) for s in sources]
        names = tuple(loaded[0].classes)
        lacking = [c for c, n in zip(names, np.bincount(loaded[0].y, minlength=len(names)),
                                     strict=True) if n == 0]
        if lacking:
            raise ValueError(f"{sources[0].path}: no image of the class(es) "
                             f"{', '.join(lacking)} -- the first --data source must hold "
                             "every class (the others may hold some); give the complete "
                             "one first")
    rng = np.random.default_rng(seed)
    paths, ys, weights, lab_of, summary = [], [], [], [], []
    for src, d in zip(sources, loaded, strict=True):
        idx = np.arange(len(d))
        k = limits.get(src.lab)
        if k is not None:
            idx = np.sort(np.concatenate([rng.permutation(np.flatnonzero(d.y == c))[:k]
                                          for c in range(len(names))]))
        if idx.size == 0:
            raise ValueError(f"{src.path}: no image of the classes {', '.join(names)}")
        paths += [d.paths[i] for i in idx]
        ys.append(d.y[idx])
        weights.append(np.full(idx.size, src.weight))
        lab_of += [src.lab] * idx.size
        counts = np.bincount(d.y[idx], minlength=len(names))
        summary.append({"lab": src.lab, "root": str(Path(src.path).resolve()),
                        "weight": float(src.weight), "per_class": k, "n_images": int(idx.size),
                        "counts": {c: int(n) for c, n in zip(names, counts, strict=True)},
                        "missing": [c for c, n in zip(names, np.bincount(
                            d.y, minlength=len(names)), strict=True) if n == 0]})
    y = np.concatenate(ys)
    present = np.unique(y)
    if present.size < 2:
        only = names[int(present[0])] if present.size else "none"
        raise ValueError(f"the training data hold only one class ({only}); a classifier "
                         "needs at least 2 classes with images")
    data = ImageSet(paths, y, names, Path(sources[0].path))
    return data, np.concatenate(weights), np.asarray(lab_of), summary


def _load_some_classes(root: str | Path, classes: Sequence[str] | str) -> ImageSet:
    """The images of ``root`` of those of ``classes`` it holds, labelled in their order.

    A class ``root`` lacks (no folder, an empty folder, no manifest row) is left with no
    image; folders of classes not asked for are ignored, empty or not.

    Raises
    ------
    ValueError
        ``root`` holds none of the classes, or cannot be loaded.
    """
    from wbc_classic.data.datasets import (
        is_segmentation_layout,
        load_class_folders,
        load_labelled,
    )

    if is_segmentation_layout(Path(root)):
        return load_labelled(root, classes)
    data = load_class_folders(root, classes, missing="skip")
    if len(data) == 0:
        raise ValueError(f"{root}: no image of the classes {', '.join(data.classes)}")
    return data


def _resolve_classes(args: argparse.Namespace) -> Sequence[str] | str | None:
    if args.preset:
        return args.preset
    return args.classes


def run(args: argparse.Namespace) -> int:
    """Run ``wbc-classic train``; exit code 0 saved, 1 saved but images skipped, 2 usage."""
    from features import FeatureExtractor
    from wbc_classic.classical.model import WBCModel
    from wbc_classic.io.atomic import check_output_file
    from wbc_classic.io.cachedir import resolve_cache_dir

    check_output_file(args.out, "--out")  # before the work; OutputError -> exit 2
    t_start = time.perf_counter()
    try:
        data, weight, lab_of, sources = load_sources(args.data, _resolve_classes(args),
                                                     args.per_class or (), seed=args.seed)
    except (OSError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    classes = tuple(data.classes)
    counts = np.bincount(data.y, minlength=len(classes))
    for src in sources:
        print(f"data: {src['lab']} = {src['root']} -- {src['n_images']} images"
              + (f", weight {src['weight']:g}" if len(sources) > 1 else "")
              + (f", at most {src['per_class']} per class" if src["per_class"] else "")
              + (f"; none of {', '.join(src['missing'])} (learnt from the other sources)"
                 if src["missing"] and len(sources) > 1 else ""))
    print(f"{len(data.paths)} images, {len(classes)} classes")
    for c, k in zip(classes, counts, strict=True):
        print(f"  {c:>14s}: {k}")
    weighted = len(sources) > 1 and len({s["weight"] for s in sources}) > 1
    align_rows = None
    if args.align is not None:
        labs = [s["lab"] for s in sources]
        if args.align not in labs or len(labs) < 2:
            print(f"error: --align {args.align}: name one of several --data sources (the lab "
                  f"the model is for; the others are the reference), got {', '.join(labs)}",
                  file=sys.stderr)
            return EXIT_USAGE
        align_rows = lab_of == args.align

    extractor = FeatureExtractor() if not args.families else \
        FeatureExtractor(families=tuple(args.families))
    params: dict[str, Any] = {"class_weight": None if args.no_class_weight else "balanced"}
    if args.feature_selection:
        params.update(feature_selection=args.feature_selection, k=args.k)
    if args.search:
        params.update(search=args.search, cv=max(2, args.cv or 5))
    augmentation = None
    if args.augment_copies > 0:
        from wbc_classic.preprocess.augment import default_augmentation

        augmentation = default_augmentation(args.augment_strength,
                                            scale=not args.augment_no_scale)
    cache_dir = None if args.no_cache else resolve_cache_dir(args.cache_dir)
    model = WBCModel(args.classifier, extractor=extractor, segment_params={},
                     classifier_params=params, classes=classes, n_jobs=args.n_jobs,
                     seed=args.seed, stain=args.stain, augmentation=augmentation,
                     augment_copies=args.augment_copies, cv=args.cv, cache_dir=cache_dir)
    split = None
    n_test_failed = 0
    fit_idx = np.arange(len(data.paths))
    if args.split:
        from wbc_classic.data.split import make_split

        try:
            split = make_split(data.y, scheme=args.split, seed=args.seed)
        except ValueError as exc:
            print(f"error: --split {args.split}: {exc}", file=sys.stderr)
            return EXIT_USAGE
        fit_idx = np.union1d(split.train, split.val)
    try:
        model.fit([data.paths[i] for i in fit_idx], data.y[fit_idx], progress=True,
                  sample_weight=weight[fit_idx] if weighted else None,
                  align_rows=None if align_rows is None else align_rows[fit_idx])
    except ValueError as exc:
        print(f"error: cannot fit: {exc}", file=sys.stderr)
        return EXIT_USAGE
    meta = model.metadata_
    if model.um_per_pixel_ is not None:
        print(f"pixel scale of the training images: {model.um_per_pixel_:.4f} um/px "
              f"(median red-cell estimate over up to {model.n_ref} of them)")
    t_feat, t_fit = meta["train_seconds"]["features"], meta["train_seconds"]["fit"]
    print(f"features: {len(model.feature_names_)} per image, {len(fit_idx)} images in "
          f"{t_feat:.1f} s" + (f" (cache: {cache_dir})" if cache_dir else ""))
    skipped = meta["data"]["skipped"]
    if skipped:
        print(f"warning: {meta['data']['n_skipped']} images could not be used and are "
              "skipped:", file=sys.stderr)
        for line in skipped[:10]:
            print(f"  {line}", file=sys.stderr)
    if "augmentation" in meta:
        aug = meta["augmentation"]
        print(f"augmentation: {aug['used']} of {aug['offered']} augmented copies used "
              f"({args.augment_copies} per training image)")
    if "cv_accuracy" in meta:
        extra = f" +/- {meta['cv_accuracy_std']:.4f} ({meta['cv_folds']}-fold)" \
            if "cv_accuracy_std" in meta else " (best of the search)"
        print(f"cross-validated accuracy: {meta['cv_accuracy']:.4f}{extra}")
    if "best_params" in meta:
        print(f"best parameters: {meta['best_params']}")
    if "adaptation" in meta:
        print(_alignment_line(args.align, meta["adaptation"]))

    n_train = meta["data"]["n_images"] - meta["data"]["n_skipped"]
    # the data set as a whole (fit counted the images it was given)
    meta["data"].update(root=sources[0]["root"], n_images=len(data.paths), sources=sources,
                        labs=[s["lab"] for s in sources])
    if split is not None:
        test = model.extract([data.paths[i] for i in split.test])
        good = test.ok & np.all(np.isfinite(test.X), axis=1)
        n_test_failed = int((~good).sum())
        for failure in test.failures[:10]:
            print(f"  skipped (held-out): {failure}", file=sys.stderr)
        assert split.seed is not None  # made above with seed=args.seed
        meta["data"].update(split_scheme=split.scheme, split_seed=int(split.seed),
                            n_train=int(n_train),
                            n_test=int(good.sum()))
        holdout = _evaluate_holdout(model, test.X[good], data.y[split.test][good], classes)
        holdout.update(scheme=split.scheme, seed=int(split.seed))
        if len(sources) > 1:
            pred = model.predict_proba_features(test.X[good]).argmax(axis=1)
            right, test_lab = pred == data.y[split.test][good], lab_of[split.test][good]
            holdout["per_lab"] = {s["lab"]: {"n": int((test_lab == s["lab"]).sum()),
                                             "accuracy": float(right[test_lab == s["lab"]]
                                                               .mean())
                                  if (test_lab == s["lab"]).any() else float("nan")}
                                  for s in sources}
        meta["holdout"] = holdout
        print(f"held-out accuracy ({split.scheme} split, seed {split.seed}, "
              f"{int(good.sum())} images): {holdout['accuracy']:.4f}")
        print(f"  {'class':>14s}  sensitivity  precision  support")
        for c in classes:
            print(f"  {c:>14s}  {holdout['sensitivity'][c]:11.4f}  "
                  f"{holdout['precision'][c]:9.4f}  {holdout['support'][c]:7d}")
        for lab, r in holdout.get("per_lab", {}).items():
            print(f"  held-out accuracy of {lab}: {r['accuracy']:.4f} ({r['n']} images)")

    meta["train_seconds"]["total"] = round(time.perf_counter() - t_start, 2)
    from wbc_classic.io.modelcard import classical_card, write_card

    meta["card"] = classical_card(meta, [str(c) for c in model.classes_], model.versions_,
                                  args.out)
    from wbc_classic.classical.modelfile import save as save_model

    try:
        path = save_model(model, args.out)
        write_card(meta["card"], path)  # beside the model: model.card.md
    except OSError as exc:
        print(f"error: cannot write {args.out}: {exc}", file=sys.stderr)
        return EXIT_USAGE
    size = os.path.getsize(path)
    print(f"saved {path} ({size / 2**20:.2f} MB) in {time.perf_counter() - t_start:.1f} s "
          f"total (features {t_feat:.1f} s, fit {t_fit:.1f} s)")
    n_bad = int(meta["data"]["n_skipped"]) + n_test_failed
    if n_bad:
        print(f"{n_bad} of {len(data.paths)} images could not be used (listed above); "
              f"exit code {EXIT_FAILED_INPUTS}", file=sys.stderr)
        return EXIT_FAILED_INPUTS
    return EXIT_OK


def _alignment_line(lab: str, adaptation: dict[str, Any]) -> str:
    """The sentence ``train --align`` prints about the class-mean map."""
    check = adaptation.get("check") or {}
    if "accuracy_aligned" in check:
        how = (f"cross-validated on {check['n_cells']} of {lab}'s labelled cells "
               f"({check['folds']}-fold): {check['accuracy_aligned']:.3f} mapped, "
               f"{check['accuracy_as_is']:.3f} as they are")
    else:
        how = check.get("reason", "not checked")
    if adaptation["applied"]:
        return (f"alignment: {lab}'s features are mapped onto the other sources' class by "
                f"class ({how}); every image this model predicts is mapped the same way, so "
                f"it is a model for {lab}'s images")
    return f"alignment: not applied to {lab} ({how}); the model takes every image as it is"


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
