"""Cross-lab ablation: train on PBC, test on PBC's test split and on another lab's cells.

Protocol (issue 6): the classifier is trained on the training part of PBC's 5 mature classes
(stratified 80/20 split from seed 0, :func:`wbc_classic.data.split.make_split`, the same split as
``benchmarks.run --preset pbc5``) and scored on

* ``pbc-test``: the PBC test part (820 cells), the in-distribution accuracy; and
* ``cellavision``: the 100 labelled cells of ``cellavision_seg`` (CellaVision blog images,
  another laboratory; labels from ``manifest.csv``, not checked by experts).

Every configuration uses the production feature path (:func:`wbc_classic.classical.extraction.
extract_features`, which is what ``wbc-classic train`` runs, with its content-keyed cache):
the default segmenter on the raw pixels, then the stain normaliser (fitted on 50 PBC training
images) on the pixels the features see. The ablation grid is

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
  ``--augment-strength``) are added to the training features, as ``wbc-classic train
  --augment-copies`` does.

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

import numpy as np

DEFAULT_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
CLASSES5 = ("basophil", "eosinophil", "lymphocyte", "monocyte", "neutrophil")
#: Column subsets of the ablation: ``all`` = geometry, texture, LDP and
#: colour, ``no-cell-colour`` and ``no-colour`` without some colour statistics,
#: ``all+density`` = plus the stain-robust optical-density family (:mod:`features.density`),
#: ``density-for-colour`` = the density family in place of the colour family.
FEATURE_SUBSETS = ("all", "no-cell-colour", "no-colour", "all+density", "density-for-colour")
#: The families extracted for those subsets (``all`` is the first four: the default families
#: when this ablation was written).
SUBSET_FAMILIES = ("geometry", "texture", "ldp", "colour", "density")


def load_sets(data: Path) -> dict[str, tuple[list[Path], np.ndarray]]:
    """``{"pbc-train", "pbc-test", "cellavision"}`` -> (image paths, int labels over CLASSES5).

    Raises
    ------
    FileNotFoundError
        When ``data/pbc`` or ``data/cellavision_seg/manifest.csv`` is missing.
    """
    from wbc_classic.data.datasets import load_class_folders
    from wbc_classic.data.split import make_split

    pbc = load_class_folders(data / "pbc", classes=CLASSES5)
    split = make_split(pbc.y, "80/20", seed=0)
    manifest = data / "cellavision_seg" / "manifest.csv"
    if not manifest.is_file():
        raise FileNotFoundError(f"cross-lab test set not found: {manifest}")
    with open(manifest, newline="") as fh:
        rows = [r for r in csv.DictReader(fh) if r["label"] in CLASSES5]
    return {
        "pbc-train": ([Path(pbc.paths[i]) for i in split.train], pbc.y[split.train]),
        "pbc-test": ([Path(pbc.paths[i]) for i in split.test], pbc.y[split.test]),
        "cellavision": ([manifest.parent / r["image"] for r in rows],
                        np.array([CLASSES5.index(r["label"]) for r in rows], np.int64)),
    }


#: synthetic test conditions: name -> wbc_classic.data.synthetic.make_cells keyword arguments
SYNTH_CONDITIONS = {
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

    train_x, train_y, _ = make_cells(2 * n, classes=CLASSES5, size=size, seed=11)
    tests = {name: make_cells(n, classes=CLASSES5, size=size, seed=7, **kw)[:2]
             for name, kw in SYNTH_CONDITIONS.items()}
    return train_x, train_y, tests


def _synthetic_normalizer(stain: str, train_x: np.ndarray, n: int):
    """``stain`` fitted on every ``n // 5``-th synthetic training cell, or None for none."""
    from wbc_classic.preprocess.stain import make_normalizer

    norm = make_normalizer(stain)
    return None if norm.name == "none" else norm.fit(list(train_x[:: max(1, n // 5)]))


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
        row = {"model": classifier, "stain": stain}
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
    import tempfile

    import torch

    from deep.cache import prepare_image
    from deep.checkpoint import load_checkpoint
    from deep.data import ArrayDataset, build_augmentation, channel_stats, stratified_holdout
    from deep.models import get_model
    from deep.predict import predict_proba
    from deep.train import TrainConfig, fit, set_seed

    train_x, train_y, tests = _synthetic_sets(n, size)
    label = f"{model_name} (deep)" + (f" aug {json.dumps(augment)}" if augment else "")
    rows = []
    for stain in stains:
        norm = _synthetic_normalizer(stain, train_x, n)

        def prepared(images, _norm=norm):
            return np.stack([prepare_image(im, img_size, stain=_norm) for im in images])

        x_tr = prepared(train_x)
        keep, hold = stratified_holdout(np.asarray(train_y), 0.1, seed=seed)
        set_seed(seed)
        model = get_model(model_name, num_classes=len(CLASSES5), img_size=img_size)
        mean, std = channel_stats(x_tr[keep])
        meta = {"model": model_name, "classes": list(CLASSES5), "img_size": img_size,
                "mean": list(mean), "std": list(std)}
        cfg = TrainConfig(model=model_name, img_size=img_size, epochs=epochs, seed=seed,
                          progress=False, warmup_epochs=1.0)
        with tempfile.TemporaryDirectory() as tmp:
            fit(model, ArrayDataset(x_tr, train_y, keep,
                                    transform=build_augmentation(**(augment or {}))),
                ArrayDataset(x_tr, train_y, hold), cfg, meta=meta, out=tmp,
                device=torch.device("cpu"))
            best = Path(tmp) / "best.pt"
            if best.is_file():  # the epoch with the lowest validation loss
                model.load_state_dict(load_checkpoint(best)["state_dict"])
        row = {"model": label, "stain": stain}
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
    ``row[name + "/per_class"]``. ``p == -1`` (a class outside :data:`CLASSES5`) is wrong."""
    from wbc_classic.evaluation.metrics import bootstrap_metrics

    k = len(CLASSES5)
    acc = bootstrap_metrics(y, np.where(p < 0, k, p), n_classes=k + 1)["accuracy"]
    row[name] = float(np.mean(p == y))
    row[name + "/ci"] = [acc.low, acc.high]
    row[name + "/per_class"] = per_class_accuracy(y, p)


def per_class_accuracy(y: np.ndarray, p: np.ndarray) -> dict[str, float]:
    """Sensitivity of each class present in ``y``."""
    return {CLASSES5[c]: float(np.mean(p[y == c] == c)) for c in range(len(CLASSES5))
            if np.any(y == c)}


def _segmenter(rim_trim: bool):
    import functools

    from segmentation import SegmenterParams, segment

    return functools.partial(segment, params=SegmenterParams(rim_max_od=0.06)) \
        if rim_trim else segment


def _extract(items: list, cache: Path, n_jobs: int, norm=None, rim_trim: bool = False):
    """The :data:`SUBSET_FAMILIES` features of ``items`` on the production path."""
    from features import FeatureExtractor
    from wbc_classic.classical.extraction import extract_features

    # the families FEATURE_SUBSETS are defined over (selected by name prefix in subset_mask);
    # the newer families (shape, relcolour, celltexture) are compared by benchmarks.lolo
    return extract_features(items, segmenter=_segmenter(rim_trim),
                            extractor=FeatureExtractor(families=SUBSET_FAMILIES),
                            n_jobs=n_jobs,
                            cache_dir=cache, progress=False, stain=norm)


def _features(sets, norm, cache: Path, n_jobs: int, rim_trim: bool = False):
    out = {}
    for name, (paths, _) in sets.items():
        res = _extract([str(p) for p in paths], cache, n_jobs, norm, rim_trim)
        if res.failures:
            print(f"  {name}: {len(res.failures)} images failed, e.g. {res.failures[0]}",
                  file=sys.stderr)
        out[name] = res.X.astype(np.float64)
    return out, np.asarray(res.feature_names)


AUGMENTATIONS = ("none", "colour", "colour+scale")


def _augmented_features(paths: list[Path], kind: str, copies: int, strength: float, norm,
                        cache: Path, n_jobs: int, seed: int, rim_trim: bool = False
                        ) -> tuple[np.ndarray, np.ndarray]:
    """Features of ``copies`` augmented copies of the training images, and their row index
    into ``paths`` (copies whose extraction failed are left out)."""
    from wbc_classic.preprocess.augment import augmented_copies, default_augmentation

    if kind not in AUGMENTATIONS:
        raise ValueError(f"unknown augmentation {kind!r}; choose from {AUGMENTATIONS}")
    if kind == "none" or copies <= 0:
        return np.zeros((0, 0)), np.zeros(0, dtype=np.int64)
    aug = default_augmentation(strength, scale=kind == "colour+scale")
    res = _extract(augmented_copies([str(p) for p in paths], aug, copies, seed=seed), cache,
                   n_jobs, norm, rim_trim)
    rows = np.tile(np.arange(len(paths)), copies)
    return res.X[res.ok].astype(np.float64), rows[res.ok]


def scale_rows(sets, names: np.ndarray, factors: list[float], classifiers: list[str],
               subsets: list[str], X_train: np.ndarray, cache: Path, n_jobs: int,
               seed: int) -> list[dict]:
    """The cellavision cells at other magnifications, as they are and rescaled to PBC's.

    For each factor ``f`` the 100 images are resized by ``f`` (another microscope's pixel
    size); the set's own scale is then measured on its images
    (:func:`wbc_classic.preprocess.scale.estimate_batch_scale`) and they are resampled to the PBC
    training images' scale, as ``wbc-classic predict --um-per-pixel auto`` does. Classifiers
    are trained on ``X_train`` (PBC training features, stain ``none``).
    """
    from wbc_classic.classical.classifiers import make_classifier
    from wbc_classic.io.images import read_image
    from wbc_classic.preprocess.scale import estimate_batch_scale, rescale_image

    def features(images):
        return _extract(images, cache, n_jobs).X.astype(np.float64)

    ref = estimate_batch_scale(sets["pbc-train"][0], seed=seed)
    paths, y = sets["cellavision"]
    originals = [read_image(p) for p in paths]
    rows = []
    for f in factors:
        raw = [rescale_image(im, f) if f != 1.0 else im for im in originals]
        um = estimate_batch_scale(raw, seed=seed)
        fixed = [rescale_image(im, um / ref) for im in raw]
        variants = {f"images x{f:g}": features(raw),
                    f"images x{f:g} -> {um:.3f} um/px -> {ref:.3f}": features(fixed)}
        for subset, clf_name in itertools.product(subsets, classifiers):
            cols = subset_mask(names, subset)
            clf = make_classifier(clf_name, seed=seed, n_jobs=n_jobs)
            clf.fit(X_train[:, cols], sets["pbc-train"][1])
            for label, X in variants.items():
                row = {"family": "classical", "model": clf_name, "stain": "none",
                       "features": f"{subset}; {label}", "pbc-test": float("nan")}
                score_into(row, "cellavision", y, clf.predict(X[:, cols]))
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
            p = np.array([CLASSES5.index(pred[q.resolve()]) if pred[q.resolve()] in CLASSES5
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
            + " | ".join(c[:4] for c in CLASSES5) + " |")
    lines = [head, "|" + "---|" * (6 + len(CLASSES5))]
    for r in rows:
        pc = r["cellavision/per_class"]
        ci = r.get("cellavision/ci")
        cv = f"{r['cellavision']:.3f}" + (f" [{ci[0]:.2f}, {ci[1]:.2f}]" if ci else "")
        lines.append(f"| {r['family']} | {r['model']} | {r['stain']} | {r['features']} | "
                     f"{_fmt(r['pbc-test'])} | {cv} | "
                     + " | ".join(f"{pc.get(c, float('nan')):.2f}" for c in CLASSES5) + " |")
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
    ap.add_argument("--stains", default="none,reinhard,macenko,histogram,white-balance")
    ap.add_argument("--features", default=",".join(FEATURE_SUBSETS),
                    help=f"feature subsets to compare (default: {','.join(FEATURE_SUBSETS)})")
    ap.add_argument("--classifiers", default="logreg,svm,xgboost")
    ap.add_argument("--rim-trim", default="off", help="off, on or off,on")
    ap.add_argument("--augment", default="none",
                    help="training augmentations to compare: none, colour, colour+scale "
                         "(comma-separated)")
    ap.add_argument("--augment-copies", type=int, default=2,
                    help="augmented copies per training image (default 2)")
    ap.add_argument("--augment-strength", type=float, default=1.0)
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
    ap.add_argument("--synthetic-deep-epochs", type=int, default=40)
    ap.add_argument("--synthetic-deep-augment", default="{}", metavar="JSON",
                    help="deep.data.build_augmentation kwargs for --synthetic-deep")
    ap.add_argument("--deep", type=Path, nargs="*", default=[],
                    help="prediction CSVs of deep models over both test sets")
    ap.add_argument("--cache-dir", type=Path, default=Path(".wbc_cache"),
                    help="feature cache shared with wbc-classic train (default ./.wbc_cache)")
    ap.add_argument("--n-jobs", type=int, default=2)
    ap.add_argument("--n-ref", type=int, default=50,
                    help="PBC training images the stain normaliser is fitted on")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, help="write results.json and table.md here")
    ap.add_argument("--scale-survey", type=int, default=0, metavar="N",
                    help="only report the estimated um/pixel of N images per data set")
    args = ap.parse_args(argv)
    if args.scale_survey:
        rows = scale_survey(args.data, args.scale_survey, args.seed)
        if args.out:
            args.out.mkdir(parents=True, exist_ok=True)
            (args.out / "scale_survey.json").write_text(json.dumps(rows, indent=1))
        return 0
    from wbc_classic.classical.classifiers import make_classifier
    from wbc_classic.preprocess.stain import fit_normalizer

    try:
        sets = load_sets(args.data)
    except (FileNotFoundError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print("# " + ", ".join(f"{k}: {len(v[1])} images" for k, v in sets.items()), flush=True)
    t0 = time.time()
    rows: list[dict] = []
    for stain, trim in itertools.product(args.stains.split(","), args.rim_trim.split(",")):
        if trim not in ("on", "off"):
            print(f"error: --rim-trim takes on/off, got {trim!r}", file=sys.stderr)
            return 2
        norm = fit_normalizer(stain, sets["pbc-train"][0], n_ref=args.n_ref, seed=args.seed)
        feats, names = _features(sets, norm, args.cache_dir, args.n_jobs,
                                 rim_trim=trim == "on")
        for aug in args.augment.split(","):
            try:
                X_aug, rows_aug = _augmented_features(
                    sets["pbc-train"][0], aug, args.augment_copies, args.augment_strength,
                    norm, args.cache_dir, args.n_jobs, args.seed, rim_trim=trim == "on")
            except ValueError as exc:
                print(f"error: {exc}", file=sys.stderr)
                return 2
            X_fit, y_fit = feats["pbc-train"], sets["pbc-train"][1]
            if rows_aug.size:
                X_fit = np.concatenate([X_fit, X_aug])
                y_fit = np.concatenate([y_fit, y_fit[rows_aug]])
            label = "" if aug == "none" else \
                f", aug {aug} x{args.augment_copies}" + \
                (f" s{args.augment_strength:g}" if args.augment_strength != 1 else "")
            for subset, clf_name in itertools.product(args.features.split(","),
                                                      args.classifiers.split(",")):
                cols = subset_mask(names, subset)
                clf = make_classifier(clf_name, seed=args.seed, n_jobs=args.n_jobs)
                clf.fit(X_fit[:, cols], y_fit)
                row = {"family": "classical", "model": clf_name, "stain": stain,
                       "features": (subset if trim == "off" else f"{subset}, rim trim")
                       + label}
                for name in ("pbc-test", "cellavision"):
                    score_into(row, name, sets[name][1], clf.predict(feats[name][:, cols]))
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
        feats, names = _features(sets, None, args.cache_dir, args.n_jobs)
        rows += scale_rows(sets, names, factors, args.classifiers.split(","),
                           args.features.split(","), feats["pbc-train"], args.cache_dir,
                           args.n_jobs, args.seed)
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
