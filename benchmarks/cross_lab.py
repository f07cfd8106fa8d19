"""Cross-lab experiment: train on PBC, test on other labs' cells and on shifted synthetic cells.

Ablation over stain normalisation (none / reinhard / macenko / histogram / white-balance)
x scale normalisation (off / on: resample every crop to ``--target-um`` um/pixel from its
estimated scale) x feature subset:

* ``all``       -- every family of :class:`features.FeatureExtractor` (geometry, texture, ldp,
  colour; the colour family holds raw RGB/HSI/Lab statistics);
* ``no-colour`` -- geometry + texture + ldp;
* ``robust``    -- geometry + texture + ldp + colour-robust features prototyped here
  (:func:`robust_colour_features`: optical density relative to the image's own background,
  OD chromaticity, OD relative to the red cells, granularity of the OD);
* ``robust+gran`` -- ``robust`` plus the colour family's granularity features.

Classifier: StandardScaler + RBF SVC (C=10, balanced class weights). Two protocols:

A. train on the PBC 5-class 80/20 split from seed 0 (``wbc_classic.split.make_split``), the
   training part optionally subsampled to ``--per-class`` images per class; test on the PBC
   test part and on the 100 labelled cells of cellavision_seg (``manifest.csv``). The
   normaliser is fitted on ``--n-ref`` PBC training images.
B. (``--synth N``) train on nominal synthetic cells (``make_cells(2N, seed=11)``), test on
   synthetic cells rendered with shifted stains (``stain_shift=+-1``) and scales
   (``scale=0.7, 1.4``); the normaliser is fitted on synthetic training images. (A PBC-trained
   model scores chance on synthetic cells, so they cannot serve as a PBC cross-lab test.)

``--augment K`` adds K augmented copies (HED stain jitter, brightness/contrast, zoom, blur) of
every training image, reusing its masks. ``--scale-survey N`` only reports the estimated
um/pixel of each data set.

Segmentation runs once per image on the raw pixels (cached); normalisation then changes only the
pixels features are computed from. Everything expensive is cached under ``--cache`` (default
``/tmp/wbc_cross_lab``), never in the repository.

Example::

    OMP_NUM_THREADS=1 python -m benchmarks.cross_lab --per-class 150 --norms none,reinhard \\
        --scales off,on --subsets all,robust
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import itertools
import json
import sys
import time
from pathlib import Path

import numpy as np

from wbc_classic.scale import estimate_scale, rescale_image, rescale_mask
from wbc_classic.stain import (
    estimate_background,
    make_normalizer,
    red_cell_colour,
    rgb_to_od,
)

DEFAULT_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
CLASSES5 = ("basophil", "eosinophil", "lymphocyte", "monocyte", "neutrophil")
SUBSETS = ("all", "no-colour", "robust", "robust+gran")
#: synthetic test conditions: (name, make_cell keyword arguments)
SYNTH_CONDITIONS = (
    ("synth-nominal", {"stain_shift": 0.0, "scale": 1.0}),
    ("synth-stain+1", {"stain_shift": 1.0, "scale": 1.0}),
    ("synth-stain-1", {"stain_shift": -1.0, "scale": 1.0}),
    ("synth-scale0.7", {"stain_shift": 0.0, "scale": 0.7}),
    ("synth-scale1.4", {"stain_shift": 0.0, "scale": 1.4}),
)


# --------------------------------------------------------------------------------------------
# prototype colour-robust features


def robust_colour_features(image: np.ndarray, nucleus: np.ndarray, cell: np.ndarray,
                           background: np.ndarray | None = None,
                           red_cells: np.ndarray | None = None) -> dict[str, float]:
    """Colour features that do not depend on illumination and little on stain strength.

    For the nucleus and the cytoplasm: mean / median / 10th / 90th percentile of the total
    optical density (relative to the image's own background), the OD chromaticity (each
    channel's share of the total OD: the stain's "hue" in absorbance, independent of how
    thick or strong the stain is), the OD relative to the red cells' OD of the same image
    (stain-strength-invariant), and the std of the total OD (texture contrast in OD units).
    Cytoplasm pixels with a total OD <= 0.06 (background caught by a loose outline) are
    ignored.

    Parameters
    ----------
    image : ndarray, shape (H, W, 3), uint8
    nucleus, cell : ndarray of bool, shape (H, W)
    background : ndarray, shape (3,), optional
        Background RGB; default :func:`wbc_classic.stain.estimate_background`.
    red_cells : ndarray, shape (3,), optional
        Red-cell RGB; default found with :func:`wbc_classic.stain.red_cell_colour`; when no red
        cell is found the red-cell-relative features are set from a PBC-typical red-cell OD.

    Returns
    -------
    dict of str to float
    """
    bg = estimate_background(image) if background is None else background
    od = rgb_to_od(image, bg)
    if red_cells is None:
        red_cells = red_cell_colour(image, exclude=cell)
    if red_cells is None:
        rbc_od = np.array([0.06, 0.17, 0.12])  # typical PBC red cell (fallback)
    else:
        rbc_od = np.maximum(-np.log10(np.clip(red_cells, 1, 255) / bg), 1e-2)
    out: dict[str, float] = {}
    # cytoplasm without background-like pixels: outlines of thin-rimmed cells (small
    # lymphocytes) often include a ring of background, which would dominate its colour
    stained = od.sum(axis=-1) > 0.06
    regions = {"nucleus": nucleus, "cytoplasm": cell & ~nucleus & stained}
    for rname, mask in regions.items():
        pix = od[mask]
        if pix.shape[0] < 5:
            pix = np.zeros((5, 3))
        tot = pix.sum(axis=1)
        out[f"od_{rname}_total_mean"] = float(tot.mean())
        out[f"od_{rname}_total_std"] = float(tot.std())
        for q in (10, 50, 90):
            out[f"od_{rname}_total_p{q}"] = float(np.percentile(tot, q))
        chrom = pix.sum(axis=0) / max(float(tot.sum()), 1e-6)
        rel = pix.mean(axis=0) / rbc_od
        for i, ch in enumerate("rgb"):
            out[f"od_{rname}_chrom_{ch}"] = float(chrom[i])
            out[f"od_{rname}_rel_rbc_{ch}"] = float(rel[i])
        # per-pixel chromaticity spread (granules of a different colour than the background)
        pc = pix / np.maximum(tot[:, None], 1e-3)
        dense = tot > 0.05
        enough = dense.sum() > 5
        out[f"od_{rname}_chrom_b_std"] = float(pc[dense, 2].std()) if enough else 0.0
        out[f"od_{rname}_chrom_r_std"] = float(pc[dense, 0].std()) if enough else 0.0
    return out


# --------------------------------------------------------------------------------------------
# data


def _read(path: Path) -> np.ndarray:
    from PIL import Image

    with Image.open(path) as im:
        return np.asarray(im.convert("RGB"))


def _key(*parts: object) -> str:
    return hashlib.sha1("|".join(map(str, parts)).encode()).hexdigest()[:16]


def load_sets(data: Path, per_class: int | None, test_per_class: int | None, n_synth: int,
              synth_size: int, seed: int = 0):
    """Returns dict name -> (list of image sources, y int64); sources are paths or arrays."""
    from wbc_classic.datasets import load_class_folders
    from wbc_classic.split import make_split

    pbc = load_class_folders(data / "pbc", classes=CLASSES5)
    split = make_split(pbc.y, "80/20", seed=0)
    rng = np.random.default_rng(seed)

    def sub(idx: np.ndarray, n: int | None) -> np.ndarray:
        if n is None:
            return np.sort(idx)
        keep = []
        for c in range(len(CLASSES5)):
            ic = idx[pbc.y[idx] == c]
            keep.append(rng.choice(ic, min(n, ic.size), replace=False))
        return np.sort(np.concatenate(keep))

    tr, te = sub(split.train, per_class), sub(split.test, test_per_class)
    sets = {
        "pbc-train": ([pbc.paths[i] for i in tr], pbc.y[tr]),
        "pbc-test": ([pbc.paths[i] for i in te], pbc.y[te]),
    }
    cv_root = data / "cellavision_seg"
    rows = list(csv.DictReader(open(cv_root / "manifest.csv")))
    sets["cellavision"] = ([cv_root / r["image"] for r in rows],
                           np.array([CLASSES5.index(r["label"]) for r in rows], dtype=np.int64))
    if n_synth > 0:
        from wbc_classic.synthetic import make_cells

        ims, y, _ = make_cells(2 * n_synth, classes=CLASSES5, size=synth_size, seed=11)
        sets["synth-train"] = (list(ims), np.asarray(y, dtype=np.int64))
        for name, kw in SYNTH_CONDITIONS:
            ims, y, _ = make_cells(n_synth, classes=CLASSES5, size=synth_size, seed=7, **kw)
            sets[name] = (list(ims), np.asarray(y, dtype=np.int64))
    return sets


def segment_cached(src, cache: Path) -> dict:
    """Segmentation + scale estimate of one raw image, cached as .npz."""
    from segmentation.pipeline import segment

    if isinstance(src, np.ndarray):
        key = hashlib.sha1(src.tobytes()).hexdigest()[:20]
    else:
        key = _key(str(src), Path(src).stat().st_mtime)
    f = cache / "seg" / f"{key}.npz"
    if f.exists():
        d = np.load(f)
        return {k: d[k] for k in d.files}
    image = src if isinstance(src, np.ndarray) else _read(Path(src))
    seg = segment(image)
    est = estimate_scale(image, cell_mask=seg.cell if seg.found else None,
                         default=0.1)
    rbc = red_cell_colour(image, exclude=seg.cell if seg.found else None)
    d = {"nucleus": np.packbits(seg.nucleus), "cell": np.packbits(seg.cell),
         "shape": np.array(seg.cell.shape), "found": np.array(seg.found),
         "um": np.array(est.um_per_pixel), "method": np.array(est.method),
         "bg": estimate_background(image),
         "rbc": np.array(rbc if rbc is not None else [np.nan] * 3)}
    f.parent.mkdir(parents=True, exist_ok=True)
    tmp = f.with_suffix(".tmp.npz")
    np.savez(tmp, **d)
    tmp.replace(f)
    return d


def _source_hash(*packages: str) -> str:
    """Hash of the Python sources of packages (feature caches are only valid for one version
    of the feature code)."""
    root = Path(__file__).resolve().parents[1]
    h = hashlib.sha1()
    for pkg in packages:
        for f in sorted((root / pkg).glob("*.py")):
            h.update(f.read_bytes())
    return h.hexdigest()[:12]


def _unpack(d: dict, name: str) -> np.ndarray:
    h, w = (int(v) for v in d["shape"])
    return np.unpackbits(d[name])[: h * w].reshape(h, w).astype(bool)


# --------------------------------------------------------------------------------------------
# features per configuration


def _augmented_views(image, nucleus, cell, um, n, rng):
    """``n`` augmented copies (HED stain jitter, brightness/contrast, zoom, blur) of a raw
    crop with its masks and its (changed) physical scale."""
    from wbc_classic.augment import brightness_contrast, gaussian_blur, hed_jitter

    views = []
    for _ in range(n):
        im = hed_jitter(image, rng, sigma=0.15, bias=0.03)
        im = brightness_contrast(im, rng, brightness=0.08, contrast=0.15)
        factor = float(np.exp(rng.uniform(np.log(0.8), np.log(1.25))))
        im = rescale_image(im, factor)
        nu, ce = rescale_mask(nucleus, factor), rescale_mask(cell, factor)
        if rng.random() < 0.3:
            im = gaussian_blur(im, rng, sigma_range=(0.5, 1.5))
        views.append((im, nu, ce, um / factor))
    return views


def features_for(sources, segs, norm, scale_on: bool, target_um: float, subset: str,
                 augment: int = 0, seed: int = 0) -> np.ndarray:
    """Feature rows of the sources; with ``augment`` > 0, each source gives ``1 + augment``
    consecutive rows (the original, then augmented copies)."""
    from features import FeatureExtractor
    from segmentation.result import Segmentation

    fams = {"all": ("geometry", "texture", "ldp", "colour"),
            "no-colour": ("geometry", "texture", "ldp"),
            "robust": ("geometry", "texture", "ldp"),
            "robust+gran": ("geometry", "texture", "ldp", "colour")}[subset]
    fx = FeatureExtractor(families=fams).fit()
    names = fx.get_feature_names_out()
    keep = np.ones(len(names), bool)
    if subset == "robust+gran":
        keep = np.array([not n.startswith("colour_") for n in names])
    rows = []
    rng = np.random.default_rng(seed)
    for src, d in zip(sources, segs, strict=True):
        raw = src if isinstance(src, np.ndarray) else _read(Path(src))
        nucleus0, cell0 = _unpack(d, "nucleus"), _unpack(d, "cell")
        views = [(raw, nucleus0, cell0, float(d["um"]))]
        if augment:
            views += _augmented_views(raw, nucleus0, cell0, float(d["um"]), augment, rng)
        for k, (image, nucleus, cell, um) in enumerate(views):
            image = norm.transform(image)
            if scale_on and np.isfinite(um):
                factor = um / target_um
                image = rescale_image(image, factor)
                nucleus, cell = rescale_mask(nucleus, factor), rescale_mask(cell, factor)
            cell = cell | nucleus
            seg = (Segmentation(nucleus=nucleus, cell=cell) if bool(d["found"]) and cell.any()
                   else Segmentation.empty(cell.shape))
            x = fx.transform([(image, seg)])[0][keep]
            if subset.startswith("robust"):
                rbc = d["rbc"] if np.all(np.isfinite(d["rbc"])) else None
                # background and red cells were measured on the raw image; re-measure when
                # the pixels changed (normalisation or augmentation)
                same = norm.name == "none" and k == 0
                extra = robust_colour_features(
                    image, nucleus, cell, background=d["bg"] if same else None,
                    red_cells=rbc if same else None)
                x = np.concatenate([x, np.array(list(extra.values()), dtype=np.float32)])
            rows.append(x)
    return np.nan_to_num(np.asarray(rows, dtype=np.float64), nan=0.0, posinf=0.0, neginf=0.0)


def scale_survey(data: Path, n: int, seed: int = 0) -> list[dict]:
    """Estimated um/pixel per data set (PBC, cellavision_seg, BCCD fields): median, IQR and the
    share of each estimation method, over up to ``n`` images per set (random, seeded)."""
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
        t = time.time()
        ests = [estimate_scale(_read(p)) for p in pick]
        um = np.array([e.um_per_pixel for e in ests])
        meth = np.array([e.method for e in ests])
        rc = um[meth == "red-cells"]
        row = {"dataset": name, "n": len(pick), "median": float(np.nanmedian(um)),
               "q1": float(np.nanpercentile(um, 25)), "q3": float(np.nanpercentile(um, 75)),
               "red_cells_share": float(np.mean(meth == "red-cells")),
               "red_cells_median": float(np.median(rc)) if rc.size else float("nan"),
               "red_cells_q1": float(np.percentile(rc, 25)) if rc.size else float("nan"),
               "red_cells_q3": float(np.percentile(rc, 75)) if rc.size else float("nan"),
               "seconds_per_image": (time.time() - t) / len(pick)}
        out.append(row)
        print(f"{name:16s} n={row['n']:4d} um/px median={row['median']:.4f} "
              f"IQR=[{row['q1']:.4f}, {row['q3']:.4f}]  "
              f"red-cell method {row['red_cells_share']:.0%}"
              f" (median {row['red_cells_median']:.4f}, IQR [{row['red_cells_q1']:.4f}, "
              f"{row['red_cells_q3']:.4f}])  {row['seconds_per_image']:.2f} s/image", flush=True)
    return out


def make_classifier(name: str = "svc"):
    """``"svc"``: StandardScaler + RBF SVC (C=10, balanced); ``"logreg"``: StandardScaler +
    L2 logistic regression (C=0.1, balanced), a smoother boundary that transfers better."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    from sklearn.svm import SVC

    if name == "svc":
        return make_pipeline(StandardScaler(),
                             SVC(C=10.0, gamma="scale", class_weight="balanced"))
    if name == "logreg":
        return make_pipeline(StandardScaler(),
                             LogisticRegression(C=0.1, max_iter=5000, class_weight="balanced"))
    raise ValueError(f"unknown classifier {name!r}; valid: svc, logreg")


def per_class_accuracy(y: np.ndarray, p: np.ndarray) -> dict[str, float]:
    return {CLASSES5[c]: float(np.mean(p[y == c] == c)) for c in range(len(CLASSES5))
            if np.any(y == c)}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=DEFAULT_DATA)
    ap.add_argument("--cache", type=Path, default=Path("/tmp/wbc_cross_lab"))
    ap.add_argument("--per-class", type=int, default=150,
                    help="PBC training images per class (0: the whole training split)")
    ap.add_argument("--test-per-class", type=int, default=0,
                    help="PBC test images per class (0: the whole test split)")
    ap.add_argument("--synth", type=int, default=20,
                    help="synthetic cells per class and test condition (training: twice "
                         "as many nominal ones); 0 skips the synthetic protocol")
    ap.add_argument("--synth-size", type=int, default=256)
    ap.add_argument("--norms", default="none,reinhard,macenko,histogram,white-balance")
    ap.add_argument("--scales", default="off,on")
    ap.add_argument("--subsets", default=",".join(SUBSETS))
    ap.add_argument("--target-um", type=float, default=0.1)
    ap.add_argument("--augment", type=int, default=0,
                    help="augmented copies of each training image (HED stain jitter, "
                         "brightness/contrast, zoom 0.8-1.25, blur)")
    ap.add_argument("--n-ref", type=int, default=50,
                    help="PBC training images the normaliser is fitted on")
    ap.add_argument("--json", type=Path, help="write all results here")
    ap.add_argument("--classifiers", default="svc",
                    help="comma-separated: svc, logreg")
    ap.add_argument("--scale-survey", type=int, default=0, metavar="N",
                    help="only report estimated um/pixel over N images per data set, and exit")
    args = ap.parse_args(argv)
    if args.scale_survey:
        rows = scale_survey(args.data, args.scale_survey)
        if args.json:
            args.json.write_text(json.dumps(rows, indent=1))
        return 0

    t0 = time.time()
    sets = load_sets(args.data, args.per_class or None, args.test_per_class or None,
                     args.synth, args.synth_size)
    print("# sets: " + ", ".join(f"{k}={len(v[1])}" for k, v in sets.items()), flush=True)
    segs = {}
    for name, (srcs, _) in sets.items():
        segs[name] = [segment_cached(s, args.cache) for s in srcs]
        um = np.array([float(d["um"]) for d in segs[name]])
        meth = np.array([str(d["method"]) for d in segs[name]])
        found = np.mean([bool(d["found"]) for d in segs[name]])
        q1, q2, q3 = np.nanpercentile(um, [25, 50, 75])
        print(f"# {name:15s} segmented={found:.2f} um/px median={q2:.4f} IQR=[{q1:.4f},"
              f"{q3:.4f}] red-cells={np.mean(meth == 'red-cells'):.2f} "
              f"({time.time() - t0:.0f}s)", flush=True)

    def refs_of(name: str) -> list[np.ndarray]:
        srcs = sets[name][0]
        idx = np.random.default_rng(0).choice(len(srcs), min(args.n_ref, len(srcs)),
                                              replace=False)
        return [srcs[i] if isinstance(srcs[i], np.ndarray) else _read(Path(srcs[i]))
                for i in idx]

    # protocol A: train on PBC, test on PBC test and cellavision_seg
    # protocol B: train on nominal synthetic cells, test on synthetic cells with shifted
    # stain / scale (the normaliser is then fitted on the synthetic training images)
    protocols = [("pbc-train", ["pbc-test", "cellavision"])]
    if "synth-train" in sets:
        protocols.append(("synth-train", [n for n in sets if n.startswith("synth-")
                                          and n != "synth-train"]))
    refs = {train: refs_of(train) for train, _ in protocols}
    test_names = [n for _, tests in protocols for n in tests]
    print(f"{'norm':14s} {'scale':5s} {'features':12s} {'clf':7s} " + " ".join(
        f"{n[:14]:>14s}" for n in test_names))
    code = _source_hash("features")
    results = []
    configs = itertools.product(args.norms.split(","), args.scales.split(","),
                                args.subsets.split(","), args.classifiers.split(","))
    fitted: dict[tuple[str, str], object] = {}
    for norm_name, scale, subset, clf_name in configs:
        row = {"norm": norm_name, "scale": scale, "subset": subset,
               "augment": args.augment, "classifier": clf_name}
        for train, tests in protocols:
            if (norm_name, train) not in fitted:
                fitted[norm_name, train] = make_normalizer(norm_name).fit(refs[train])
            norm = fitted[norm_name, train]
            cfg = _key(json.dumps(norm.to_dict(), sort_keys=True), scale, subset,
                       args.target_um, 4 if subset.startswith("robust") else 3, code)
            feats = {}
            for name in [train, *tests]:
                srcs = sets[name][0]
                aug = args.augment if name == train else 0
                tag = _key(*map(str, srcs[:3]), len(srcs), *([aug] if aug else []))
                f = args.cache / "feat" / f"{cfg}_{name}_{tag}.npy"
                if f.exists():
                    feats[name] = np.load(f)
                else:
                    feats[name] = features_for(srcs, segs[name], norm, scale == "on",
                                               args.target_um, subset, augment=aug)
                    f.parent.mkdir(parents=True, exist_ok=True)
                    np.save(f, feats[name])
            y_train = np.repeat(sets[train][1], 1 + args.augment)
            clf = make_classifier(clf_name).fit(feats[train], y_train)
            for name in tests:
                y = sets[name][1]
                p = clf.predict(feats[name])
                row[name] = float(np.mean(p == y))
                row[name + "/per_class"] = per_class_accuracy(y, p)
        results.append(row)
        print(f"{norm_name:14s} {scale:5s} {subset:12s} {clf_name:7s} " + " ".join(
            f"{row[n]:14.3f}" for n in test_names) + f"   ({time.time() - t0:.0f}s)",
            flush=True)
        pc = row["cellavision/per_class"]
        print("    cellavision per class: " + ", ".join(
            f"{k[:4]}={v:.2f}" for k, v in pc.items()), flush=True)
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
