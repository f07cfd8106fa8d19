"""Cross-lab ablation: train on PBC, test on PBC's test split and on another lab's cells.

Protocol (issue 6): the classifier is trained on the training part of PBC's 5 mature classes
(stratified 80/20 split from seed 0, :func:`wbc_classic.data.split.make_split`, the same split as
``benchmarks.run --preset pbc5``) and scored on

* ``pbc-test``: the PBC test part (820 cells), the in-distribution accuracy; and
* ``cellavision``: the 100 labelled cells of ``cellavision_seg`` (CellaVision blog images,
  another laboratory; labels from ``manifest.csv``, not checked by experts).

Every configuration is a :class:`wbc_classic.classical.model.WBCModel` (what ``wbc-classic
train`` fits, with its content-keyed feature cache; :func:`classical_model`) fitted on the PBC
training images: the default segmenter on the raw pixels, then the stain normaliser (fitted by
the model on 50 PBC training images) on the pixels the features see. The ablation grid is

* ``--stains``: ``none``, ``reinhard``, ``macenko``, ``histogram``, ``white-balance``
  (:mod:`wbc_classic.preprocess.stain`);
* ``--features``: ``all`` (geometry, texture, LDP and colour: the default families before
  issue 12), ``no-cell-colour`` (without the colour statistics of the whole cell, which mix
  nucleus and cytoplasm colours in the proportion of the nucleus-to-cell ratio and so encode
  cell size a second time), ``no-colour`` (geometry, texture and LDP only), ``all+density``
  (plus the stain-robust optical-density family, :mod:`features.density`),
  ``density-for-colour`` (that family instead of the colour one);
* ``--classifiers``: any :data:`wbc_classic.classical.classifiers.CLASSIFIERS` name;
* ``--rim-trim``: ``off`` (the default segmenter) or ``on`` (``SegmenterParams(rim_max_od=
  0.06)``: the pale background ring around thin-rimmed cells is trimmed off the outline);
* ``--augment``: ``none``, ``colour`` (HED stain jitter, brightness/contrast, blur, flips) or
  ``colour+scale`` (the same plus scale jitter): ``--augment-copies`` augmented copies of every
  training image (:func:`wbc_classic.preprocess.augment.augmented_copies`, amplitude
  ``--augment-strength``) are added to the training features by the model's ``fit``, as
  ``wbc-classic train --augment-copies`` does.

``--synthetic N`` adds a second protocol on the project's synthetic cells: train on ``2N``
nominal cells per class, test on ``N`` per class rendered with shifted stains
(``stain_shift=+-1``) and pixel scales (``scale=0.7, 1.4``), for each stain normaliser (fitted on
the synthetic training cells); it shows what a normaliser does against a known, pure shift.

``--test-scales 0.7,1.4`` adds rows for the cellavision cells resized by each factor (another
magnification), as they are and after resampling to PBC's scale measured on each set's own
red cells (what ``wbc-classic predict --um-per-pixel auto`` does).

``--deep PRED.csv ...`` adds rows for deep models from prediction CSVs (``python -m
deep.predict``) over both test sets (name the CSV ``<name>.csv``; both sets' images must be in
it). ``--scale-survey N`` only reports each data set's estimated um/pixel.

Example::

    python -m benchmarks.cross_lab --stains none,reinhard --classifiers logreg,svm \\
        --out runs/cross-lab
"""

from __future__ import annotations

import argparse
import csv
import itertools
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from wbc_classic.data.labels import PBC5_CLASSES

DEFAULT_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
#: Column subsets of the ablation: ``all`` = geometry, texture, LDP and
#: colour, ``no-cell-colour`` and ``no-colour`` without some colour statistics,
#: ``all+density`` = plus the stain-robust optical-density family (:mod:`features.density`),
#: ``density-for-colour`` = the density family in place of the colour family.
FEATURE_SUBSETS = ("all", "no-cell-colour", "no-colour", "all+density", "density-for-colour")
#: The families extracted for those subsets (``all`` is the first four: the default families
#: when this ablation was written).
SUBSET_FAMILIES = ("geometry", "texture", "ldp", "colour", "density")


def load_sets(data: Path) -> dict[str, tuple[list[Path], np.ndarray]]:
    """``{"pbc-train", "pbc-test", "cellavision"}`` -> (image paths, int labels over PBC5_CLASSES).

    Raises
    ------
    FileNotFoundError
        When ``data/pbc`` or ``data/cellavision_seg/manifest.csv`` is missing.
    """
    from wbc_classic.data.datasets import load_class_folders
    from wbc_classic.data.split import make_split

    pbc = load_class_folders(data / "pbc", classes=PBC5_CLASSES)
    split = make_split(pbc.y, "80/20", seed=0)
    manifest = data / "cellavision_seg" / "manifest.csv"
    if not manifest.is_file():
        raise FileNotFoundError(f"cross-lab test set not found: {manifest}")
    with open(manifest, newline="") as fh:
        rows = [r for r in csv.DictReader(fh) if r["label"] in PBC5_CLASSES]
    return {
        "pbc-train": ([Path(pbc.paths[i]) for i in split.train], pbc.y[split.train]),
        "pbc-test": ([Path(pbc.paths[i]) for i in split.test], pbc.y[split.test]),
        "cellavision": ([manifest.parent / r["image"] for r in rows],
                        np.array([PBC5_CLASSES.index(r["label"]) for r in rows], np.int64)),
    }


#: synthetic test conditions: name -> wbc_classic.data.synthetic.make_cells keyword arguments
SYNTH_CONDITIONS: dict[str, dict[str, Any]] = {
    "synth-nominal": {},
    "synth-stain+1": {"stain_shift": 1.0},
    "synth-stain-1": {"stain_shift": -1.0},
    "synth-scale0.7": {"scale": 0.7},
    "synth-scale1.4": {"scale": 1.4},
}


def _synthetic_sets(n: int, size: int):
    """``2n`` nominal training cells per class (seed 11), and ``n`` test cells per class of
    every :data:`SYNTH_CONDITIONS` (seed 7): ``(train_x, train_y, {condition: (x, y)})``."""
    from wbc_classic.data.synthetic import make_cells

    train_x, train_y, _ = make_cells(2 * n, classes=PBC5_CLASSES, size=size, seed=11)
    tests = {name: make_cells(n, classes=PBC5_CLASSES, size=size, seed=7, **kw)[:2]
             for name, kw in SYNTH_CONDITIONS.items()}
    return train_x, train_y, tests


def _synthetic_normalizer(stain: str, train_x: np.ndarray, n: int):
    """``stain`` fitted on every ``n // 5``-th synthetic training cell, or None for none."""
    from wbc_classic.preprocess.stain import make_normalizer

    norm = make_normalizer(stain)
    return None if norm is None else norm.fit(list(train_x[:: max(1, n // 5)]))


def synthetic_protocol(n: int, stains: list[str], classifier: str, *, size: int = 128,
                       seed: int = 0) -> list[dict]:
    """Accuracy under known stain and scale shifts: one row per stain normaliser.

    Train on ``2n`` nominal synthetic cells per class (``make_cells(..., seed=11)``), test on
    ``n`` per class of every :data:`SYNTH_CONDITIONS` (``seed=7``); all features.
    """
    from features import FeatureExtractor
    from wbc_classic.classical.classifiers import make_classifier
    from wbc_classic.classical.extraction import extract_features

    train_x, train_y, tests = _synthetic_sets(n, size)
    rows = []
    for stain in stains:
        norm = _synthetic_normalizer(stain, train_x, n)

        def feats(images, _norm=norm):
            return extract_features(list(images), extractor=FeatureExtractor(),
                                    progress=False, stain=_norm).X

        clf = make_classifier(classifier, seed=seed).fit(feats(train_x), train_y)
        row: dict[str, Any] = {"model": classifier, "stain": stain}
        for name, (x, y) in tests.items():
            row[name] = float(np.mean(clf.predict(feats(x)) == np.asarray(y)))
        rows.append(row)
        print(f"synthetic {stain:14s} " + "  ".join(f"{k} {v:.3f}" for k, v in row.items()
                                                  if k.startswith("synth")), flush=True)
    return rows


def synthetic_protocol_deep(n: int, stains: list[str], model_name: str, *, size: int = 128,
                            img_size: int = 64, epochs: int = 40,
                            augment: dict | None = None, seed: int = 0) -> list[dict]:
    """:func:`synthetic_protocol` for a network: one row per stain normaliser.

    The same training and test cells; each image is stain-normalised (the normaliser fitted on
    the training cells, as ``deep.train --stain`` does) and resized to ``img_size``; the network
    ``model_name`` is trained from scratch for ``epochs`` epochs with
    :func:`deep.data.build_augmentation` ``(**augment)`` (default settings when None) on 90 %
    of the training cells, the rest being its validation hold-out.
    """
    from deep.cache import prepare_image
    from deep.predict import predict_proba
    from deep.train import TrainConfig, train_on_split
    from wbc_classic.data.split import Split

    train_x, train_y, tests = _synthetic_sets(n, size)
    label = f"{model_name} (deep)" + (f" aug {json.dumps(augment)}" if augment else "")
    first_test = next(iter(tests.values()))
    # the Split needs a test part: the first test cell is appended as row n_train (it is
    # never trained on); every training cell is in the train part, of which train_on_split
    # holds out 10 % for early stopping
    n_tr = len(train_y)
    y_all = np.concatenate([np.asarray(train_y), np.asarray(first_test[1][:1])])
    split = Split(train=np.arange(n_tr), val=np.empty(0, np.int64), test=np.array([n_tr]),
                  seed=seed, scheme="synthetic")
    cfg = TrainConfig(model=model_name, img_size=img_size, epochs=epochs, seed=seed,
                      split_seed=seed, progress=False, warmup_epochs=1.0,
                      augment=dict(augment or {}), device="cpu")
    rows = []
    for stain in stains:
        norm = _synthetic_normalizer(stain, train_x, n)

        def prepared(images, _norm=norm):
            return np.stack([prepare_image(im, img_size, stain=_norm) for im in images])

        x_all = np.concatenate([prepared(train_x), prepared(first_test[0][:1])])
        res = train_on_split(cfg, x_all, y_all, split, classes=list(PBC5_CLASSES), stain=norm)
        model, meta = res.model, res.meta
        row: dict[str, Any] = {"model": label, "stain": stain}
        for name, (x, y) in tests.items():
            p = predict_proba(model, prepared(x), meta).argmax(axis=1)
            row[name] = float(np.mean(p == np.asarray(y)))
        rows.append(row)
        print(f"synthetic deep {stain:14s} " + "  ".join(
            f"{k} {v:.3f}" for k, v in row.items() if k.startswith("synth")), flush=True)
    return rows


def markdown_synthetic(rows: list[dict]) -> str:
    """The synthetic protocol as a Markdown table."""
    names = list(SYNTH_CONDITIONS)
    lines = ["| model | stain | " + " | ".join(names) + " |",
             "|" + "---|" * (2 + len(names))]
    lines += [f"| {r['model']} | {r['stain']} | " + " | ".join(f"{r[k]:.3f}" for k in names)
              + " |" for r in rows]
    return "\n".join(lines)


def subset_mask(names: np.ndarray, subset: str) -> np.ndarray:
    """Columns of the :class:`features.FeatureExtractor` output (every family, density
    included) kept by ``subset``; see :data:`FEATURE_SUBSETS`."""
    names = np.asarray(names).astype(str)
    density = np.char.startswith(names, "od_") | np.char.startswith(names, "odglcm_")
    colour = np.char.startswith(names, "colour_") | np.char.startswith(names, "gran_")
    if subset == "all":
        return ~density
    if subset == "no-cell-colour":
        return ~density & ~np.char.startswith(names, "colour_cell_")
    if subset == "no-colour":
        return ~density & ~colour
    if subset == "all+density":
        return np.ones(len(names), bool)
    if subset == "density-for-colour":
        return ~colour
    raise ValueError(f"unknown feature subset {subset!r}; valid: {', '.join(FEATURE_SUBSETS)}")


def score_into(row: dict, name: str, y: np.ndarray, p: np.ndarray) -> None:
    """Put the accuracy of predictions ``p`` on set ``name`` into ``row``: ``row[name]``,
    its 95 % percentile-bootstrap interval ``row[name + "/ci"]`` (1,000 resamples, seed 0,
    :func:`wbc_classic.evaluation.metrics.bootstrap_metrics`) and the per-class sensitivities
    ``row[name + "/per_class"]``. ``p == -1`` (a class outside :data:`PBC5_CLASSES`) is wrong."""
    from wbc_classic.evaluation.metrics import bootstrap_metrics

    k = len(PBC5_CLASSES)
    acc = bootstrap_metrics(y, np.where(p < 0, k, p), n_classes=k + 1)["accuracy"]
    row[name] = float(np.mean(p == y))
    row[name + "/ci"] = [acc.low, acc.high]
    row[name + "/per_class"] = per_class_accuracy(y, p)


def per_class_accuracy(y: np.ndarray, p: np.ndarray) -> dict[str, float]:
    """Sensitivity of each class present in ``y`` (``p == -1`` counts as wrong)."""
    from wbc_classic.evaluation.metrics import per_class_metrics

    k = len(PBC5_CLASSES)
    pc = per_class_metrics(y, np.where(p < 0, k, p), n_classes=k + 1)
    return {PBC5_CLASSES[c]: float(pc.sensitivity[c]) for c in range(k) if pc.support[c]}


AUGMENTATIONS = ("none", "colour", "colour+scale")


def _augmentation(kind: str, strength: float):
    """The training augmentation of ``--augment kind`` (None for ``none``)."""
    from wbc_classic.preprocess.augment import default_augmentation

    if kind not in AUGMENTATIONS:
        raise ValueError(f"unknown augmentation {kind!r}; choose from {AUGMENTATIONS}")
    return None if kind == "none" else default_augmentation(strength,
                                                            scale=kind == "colour+scale")


def classical_model(classifier: str, subset: str, *, stain: str = "none",
                    rim_trim: bool = False, augmentation=None, copies: int = 0,
                    cache: Path | None = None, n_jobs: int = 1, n_ref: int = 50,
                    seed: int = 0):
    """The ablation's :class:`wbc_classic.classical.model.WBCModel` for one configuration.

    The families of :data:`SUBSET_FAMILIES` (density included) are extracted, cached under
    ``cache``; the classifier sees the columns of ``subset`` (:func:`subset_mask`) through a
    scikit-learn ``ColumnTransformer`` in front of the :func:`~wbc_classic.classical.classifiers.
    make_classifier` pipeline. Its ``fit`` does the rest (pixel scale, stain normaliser on
    ``n_ref`` training images, augmented copies), as ``wbc-classic train`` does.
    """
    from sklearn.compose import ColumnTransformer
    from sklearn.pipeline import Pipeline

    from features import FeatureExtractor
    from wbc_classic.classical.classifiers import make_classifier
    from wbc_classic.classical.model import WBCModel, feature_names

    # the families the subsets are defined over (selected by name prefix in subset_mask);
    # the newer families (shape, relcolour, celltexture) are compared by benchmarks.lolo
    extractor = FeatureExtractor(families=SUBSET_FAMILIES)
    cols = np.flatnonzero(subset_mask(np.asarray(feature_names(extractor)), subset))
    clf = Pipeline([("columns", ColumnTransformer([("keep", "passthrough", cols)])),
                    ("model", make_classifier(classifier, seed=seed, n_jobs=n_jobs))])
    return WBCModel(clf, extractor=extractor, classes=list(PBC5_CLASSES), n_jobs=n_jobs,
                    seed=seed, stain=stain, augmentation=augmentation,
                    augment_copies=copies, n_ref=n_ref, cv=0, cache_dir=cache,
                    segment_params={"rim_max_od": 0.06} if rim_trim else None)


def predicted(model, paths_or_images, um_per_pixel: float | None = None) -> np.ndarray:
    """Class index predicted by ``model`` for each image; -1 (a wrong answer) where the
    image's features could not be computed."""
    items = list(paths_or_images)
    result = model.extract(items, um_per_pixel=um_per_pixel)
    pred = np.full(len(items), -1, dtype=np.int64)
    if result.ok.any():
        pred[result.ok] = model.predict_proba_features(result.X[result.ok]).argmax(axis=1)
    for f in result.failures[:1]:
        print(f"  {len(result.failures)} images failed, e.g. {f}", file=sys.stderr)
    return pred


def scale_rows(sets, factors: list[float], classifiers: list[str], subsets: list[str],
               cache: Path, n_jobs: int, seed: int) -> list[dict]:
    """The cellavision cells at other magnifications, as they are and rescaled to PBC's.

    For each factor ``f`` the 100 images are resized by ``f`` (another microscope's pixel
    size); the set's own scale is then measured on its images
    (:func:`wbc_classic.preprocess.scale.estimate_batch_scale`) and passed to the model as
    their ``um_per_pixel``, so they are resampled to the PBC training images' scale, as
    ``wbc-classic predict --um-per-pixel auto`` does. Models are trained on the PBC training
    images (stain ``none``).
    """
    from wbc_classic.io.images import read_image
    from wbc_classic.preprocess.scale import estimate_batch_scale, rescale_image

    paths, y = sets["cellavision"]
    originals = [read_image(p) for p in paths]
    scaled = {f: [rescale_image(im, f) if f != 1.0 else im for im in originals]
              for f in factors}
    rows = []
    for subset, clf_name in itertools.product(subsets, classifiers):
        model = classical_model(clf_name, subset, cache=cache, n_jobs=n_jobs, seed=seed)
        model.fit(*sets["pbc-train"])
        ref = model.um_per_pixel_
        for f, raw in scaled.items():
            um = estimate_batch_scale(raw, seed=seed)
            variants = {f"images x{f:g}": None,
                        f"images x{f:g} -> {um:.3f} um/px -> {ref:.3f}": um}
            for label, scale in variants.items():
                row = {"family": "classical", "model": clf_name, "stain": "none",
                       "features": f"{subset}; {label}", "pbc-test": float("nan")}
                score_into(row, "cellavision", y, predicted(model, raw, scale))
                rows.append(row)
                print(f"scale {row['features']:40s} {clf_name:8s} cellavision "
                      f"{row['cellavision']:.3f}", flush=True)
    return rows


def _deep_rows(csv_paths: list[Path], sets) -> list[dict]:
    rows = []
    for f in csv_paths:
        with open(f, newline="") as fh:
            pred = {Path(r["path"]).resolve(): r["predicted_class"] for r in csv.DictReader(fh)}
        row = {"family": "deep", "model": f.stem, "stain": "-", "features": "-"}
        for name in ("pbc-test", "cellavision"):
            paths, y = sets[name]
            missing = [p for p in paths if p.resolve() not in pred]
            if missing:
                raise ValueError(f"{f}: no prediction for {len(missing)} {name} images, e.g. "
                                 f"{missing[0]}")
            p = np.array([PBC5_CLASSES.index(pred[q.resolve()]) if pred[q.resolve()] in PBC5_CLASSES
                          else -1 for q in paths])
            score_into(row, name, y, p)
        rows.append(row)
    return rows


def _fmt(value: float) -> str:
    return "-" if not np.isfinite(value) else f"{value:.3f}"


def markdown(rows: list[dict]) -> str:
    """The ablation as a Markdown table (accuracy on both sets, the cellavision accuracy's 95 %
    bootstrap interval when known, cellavision per class)."""
    head = ("| family | model | stain | features | PBC test | cellavision | "
            + " | ".join(c[:4] for c in PBC5_CLASSES) + " |")
    lines = [head, "|" + "---|" * (6 + len(PBC5_CLASSES))]
    for r in rows:
        pc = r["cellavision/per_class"]
        ci = r.get("cellavision/ci")
        cv = f"{r['cellavision']:.3f}" + (f" [{ci[0]:.2f}, {ci[1]:.2f}]" if ci else "")
        lines.append(f"| {r['family']} | {r['model']} | {r['stain']} | {r['features']} | "
                     f"{_fmt(r['pbc-test'])} | {cv} | "
                     + " | ".join(f"{pc.get(c, float('nan')):.2f}" for c in PBC5_CLASSES) + " |")
    return "\n".join(lines)


def scale_survey(data: Path, n: int, seed: int = 0) -> list[dict]:
    """Estimated um/pixel of up to ``n`` random images of PBC, cellavision_seg and BCCD."""
    from wbc_classic.io.images import read_image
    from wbc_classic.preprocess.scale import estimate_scale

    rng = np.random.default_rng(seed)
    globs = {"pbc": sorted((data / "pbc").glob("*/*.jpg")),
             "cellavision_seg": sorted((data / "cellavision_seg" / "images").glob("*.png")),
             "bccd": sorted((data / "bccd" / "JPEGImages").glob("*.jpg"))}
    out = []
    for name, paths in globs.items():
        if not paths:
            continue
        pick = [paths[i] for i in np.sort(rng.choice(len(paths), min(n, len(paths)),
                                                     replace=False))]
        ests = [estimate_scale(read_image(p)) for p in pick]
        um = np.array([e.um_per_pixel for e in ests])
        red = np.array([e.method == "red-cells" for e in ests])
        row = {"dataset": name, "n": len(pick), "median": float(np.nanmedian(um)),
               "q1": float(np.nanpercentile(um, 25)), "q3": float(np.nanpercentile(um, 75)),
               "red_cells_share": float(red.mean())}
        out.append(row)
        print(f"{name:16s} n={row['n']:4d} um/px median={row['median']:.4f} "
              f"IQR=[{row['q1']:.4f}, {row['q3']:.4f}] red-cell ruler "
              f"{row['red_cells_share']:.0%}", flush=True)
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.cross_lab",
                                 description=__doc__.split("\n")[0],
                                 epilog=__doc__[__doc__.index("Example::"):],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=DEFAULT_DATA,
                    help="folder holding pbc/ and cellavision_seg/ (default ../shared/data)")
    ap.add_argument("--stains", default="none,reinhard,macenko,histogram,white-balance",
                    help="stain normalisers to compare, comma-separated (default: all five)")
    ap.add_argument("--features", default=",".join(FEATURE_SUBSETS),
                    help=f"feature subsets to compare (default: {','.join(FEATURE_SUBSETS)})")
    ap.add_argument("--classifiers", default="logreg,svm,xgboost",
                    help="classical classifiers to compare, comma-separated (default %(default)s)")
    ap.add_argument("--rim-trim", default="off", help="off, on or off,on")
    ap.add_argument("--augment", default="none",
                    help="training augmentations to compare: none, colour, colour+scale "
                         "(comma-separated)")
    ap.add_argument("--augment-copies", type=int, default=2,
                    help="augmented copies per training image (default 2)")
    ap.add_argument("--augment-strength", type=float, default=1.0,
                    help="scale of the colour/scale augmentation ranges (default 1.0)")
    ap.add_argument("--test-scales", default="", metavar="F,F,...",
                    help="also score the cellavision cells resized by each factor (another "
                         "magnification), as they are and resampled to PBC's measured scale "
                         "(stain none)")
    ap.add_argument("--synthetic", type=int, default=0, metavar="N",
                    help="also run the synthetic shifted-stain/scale protocol with N test "
                         "cells per class and condition (classifier: the first of "
                         "--classifiers)")
    ap.add_argument("--synthetic-deep", metavar="MODEL", default=None,
                    help="also train this network (e.g. smallcnn) in the synthetic protocol, "
                         "once per stain normaliser")
    ap.add_argument("--synthetic-deep-epochs", type=int, default=40,
                    help="training epochs of --synthetic-deep (default 40)")
    ap.add_argument("--synthetic-deep-augment", default="{}", metavar="JSON",
                    help="deep.data.build_augmentation kwargs for --synthetic-deep")
    ap.add_argument("--deep", type=Path, nargs="*", default=[],
                    help="prediction CSVs of deep models over both test sets")
    ap.add_argument("--cache-dir", type=Path, default=None,
                    help="feature cache shared with wbc-classic train (default "
                         "$WBC_CACHE_DIR, else ~/.cache/wbc_classic)")
    ap.add_argument("--n-jobs", type=int, default=2,
                    help="parallel workers for feature extraction (default 2)")
    ap.add_argument("--n-ref", type=int, default=50,
                    help="PBC training images the stain normaliser is fitted on")
    ap.add_argument("--seed", type=int, default=0, help="seed of splits and models (default 0)")
    ap.add_argument("--out", type=Path, help="write results.json and table.md here")
    ap.add_argument("--scale-survey", type=int, default=0, metavar="N",
                    help="only report the estimated um/pixel of N images per data set")
    args = ap.parse_args(argv)
    from wbc_classic.io.cachedir import resolve_cache_dir

    args.cache_dir = resolve_cache_dir(args.cache_dir)
    if args.scale_survey:
        rows = scale_survey(args.data, args.scale_survey, args.seed)
        if args.out:
            args.out.mkdir(parents=True, exist_ok=True)
            (args.out / "scale_survey.json").write_text(json.dumps(rows, indent=1))
        return 0
    try:
        sets = load_sets(args.data)
    except (FileNotFoundError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print("# " + ", ".join(f"{k}: {len(v[1])} images" for k, v in sets.items()), flush=True)
    t0 = time.time()
    rows = []
    for stain, trim, aug in itertools.product(args.stains.split(","),
                                              args.rim_trim.split(","),
                                              args.augment.split(",")):
        if trim not in ("on", "off"):
            print(f"error: --rim-trim takes on/off, got {trim!r}", file=sys.stderr)
            return 2
        try:
            augmentation = _augmentation(aug, args.augment_strength)
        except ValueError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
        label = "" if aug == "none" else \
            f", aug {aug} x{args.augment_copies}" + \
            (f" s{args.augment_strength:g}" if args.augment_strength != 1 else "")
        for subset, clf_name in itertools.product(args.features.split(","),
                                                  args.classifiers.split(",")):
            model = classical_model(clf_name, subset, stain=stain, rim_trim=trim == "on",
                                    augmentation=augmentation, copies=args.augment_copies,
                                    cache=args.cache_dir, n_jobs=args.n_jobs,
                                    n_ref=args.n_ref, seed=args.seed)
            model.fit(*sets["pbc-train"])
            row = {"family": "classical", "model": clf_name, "stain": stain,
                   "features": (subset if trim == "off" else f"{subset}, rim trim") + label}
            for name in ("pbc-test", "cellavision"):
                score_into(row, name, sets[name][1], predicted(model, sets[name][0]))
            rows.append(row)
            print(f"{stain:14s} {row['features']:15s} {clf_name:12s} PBC test "
                  f"{row['pbc-test']:.3f}  cellavision {row['cellavision']:.3f}  "
                  f"({time.time() - t0:.0f} s)", flush=True)
    if args.test_scales:
        try:
            factors = [float(v) for v in args.test_scales.split(",")]
        except ValueError:
            print(f"error: --test-scales takes numbers, got {args.test_scales!r}",
                  file=sys.stderr)
            return 2
        rows += scale_rows(sets, factors, args.classifiers.split(","),
                           args.features.split(","), args.cache_dir, args.n_jobs, args.seed)
    try:
        rows += _deep_rows(args.deep, sets)
    except (OSError, ValueError, KeyError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    table = markdown(rows)
    synth = []
    if args.synthetic:
        synth = synthetic_protocol(args.synthetic, args.stains.split(","),
                                   args.classifiers.split(",")[0], seed=args.seed)
        if args.synthetic_deep:
            try:
                augment = json.loads(args.synthetic_deep_augment)
            except json.JSONDecodeError as exc:
                print(f"error: --synthetic-deep-augment is not JSON: {exc}", file=sys.stderr)
                return 2
            synth += synthetic_protocol_deep(args.synthetic, args.stains.split(","),
                                             args.synthetic_deep, augment=augment or None,
                                             epochs=args.synthetic_deep_epochs,
                                             seed=args.seed)
        table += "\n\n" + markdown_synthetic(synth)
    print(table)
    if args.out:
        from wbc_classic.io.atomic import atomic_write_text

        args.out.mkdir(parents=True, exist_ok=True)
        atomic_write_text(args.out / "results.json",
                          json.dumps({"cross_lab": rows, "synthetic": synth}, indent=1))
        atomic_write_text(args.out / "table.md", table + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
