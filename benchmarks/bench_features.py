"""Time the feature families on PBC-sized cells (one core).

Prints the median milliseconds per cell (process CPU time, robust to a busy machine, and
wall-clock time) of each family and of the whole
:class:`features.FeatureExtractor` (flags + crop + all families), over ``--n`` images read from
a PBC class-folder tree (or synthetic 360x363 cells when the data are absent).

Segmentation is not timed. It uses ``segmentation.segment`` when available, or with
``--standin`` (or when ``segment`` is missing) a quick stand-in good enough for timing only:
nucleus = Otsu on HSV saturation (largest central component, closed, holes filled),
cell = nucleus grown to its convex hull and dilated by 12 px.

With ``--accuracy`` it instead extracts the features of ``--per-class`` images per class
(through :func:`wbc_classic.classical.extraction.extract_features`, cached with ``--cache-dir``) and
prints the 5-fold CV and 80/20 accuracy of ``StandardScaler + SVC(rbf, C=10)``: a quick check
of the features' discriminative power, not the project's benchmark.

Examples::

    OMP_NUM_THREADS=1 python -m benchmarks.bench_features --data ../shared/data/pbc --n 40
    OMP_NUM_THREADS=1 python -m benchmarks.bench_features --accuracy --per-class 100 \
        --cache-dir /tmp/wbc-feature-cache
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

os.environ.setdefault("OMP_NUM_THREADS", "1")

import cv2  # noqa: E402
import numpy as np  # noqa: E402

from features import FeatureExtractor  # noqa: E402
from features._common import crop_cell  # noqa: E402
from features.celltexture import cell_texture_features  # noqa: E402
from features.colour import colour_features  # noqa: E402
from features.density import density_features  # noqa: E402
from features.geometry import geometry_features  # noqa: E402
from features.ldp import ldp_features  # noqa: E402
from features.relcolour import relative_colour_features  # noqa: E402
from features.shape import shape_features  # noqa: E402
from features.texture import glcm_features, lbp_features  # noqa: E402
from segmentation.result import Segmentation  # noqa: E402

DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "pbc"


def standin_segment(image: np.ndarray) -> Segmentation:
    """Quick Otsu-on-saturation masks (benchmark stand-in, not a real segmenter)."""
    sat = cv2.cvtColor(image, cv2.COLOR_RGB2HSV)[..., 1]
    _, nuc = cv2.threshold(sat, 0, 1, cv2.THRESH_BINARY + cv2.THRESH_OTSU)
    nuc = cv2.morphologyEx(nuc, cv2.MORPH_OPEN, np.ones((5, 5), np.uint8))
    n, lab, stats, cents = cv2.connectedComponentsWithStats(nuc)
    if n <= 1:
        return Segmentation.empty(image.shape[:2])
    h, w = sat.shape
    d = np.hypot(cents[1:, 0] - w / 2, cents[1:, 1] - h / 2)
    score = stats[1:, cv2.CC_STAT_AREA] / (1.0 + d)
    keep = 1 + int(np.argmax(score))
    nucleus = (lab == keep).astype(np.uint8)
    nucleus = cv2.morphologyEx(nucleus, cv2.MORPH_CLOSE, np.ones((7, 7), np.uint8))
    contours, _ = cv2.findContours(nucleus, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    nucleus = cv2.drawContours(np.zeros_like(nucleus), contours, -1, 1, cv2.FILLED).astype(bool)
    pts = cv2.findNonZero(nucleus.astype(np.uint8))
    cell = np.zeros((h, w), np.uint8)
    cv2.fillPoly(cell, [cv2.convexHull(pts)], 1)
    cell = cv2.dilate(cell, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (25, 25))).astype(bool)
    return Segmentation(nucleus=nucleus, cell=cell | nucleus, found=True)


def _load(data: Path, n: int, seed: int) -> list[np.ndarray]:
    from PIL import Image

    paths = sorted(data.glob("*/*.jpg")) if data.is_dir() else []
    if not paths:
        from wbc_classic.data.synthetic import make_cells

        images, _, _ = make_cells(max(1, n // 5 + 1), size=360, seed=seed)
        return [np.ascontiguousarray(im[:, :, :3]) for im in images[:n]]
    rng = np.random.default_rng(seed)
    pick = rng.choice(len(paths), size=min(n, len(paths)), replace=False)
    return [np.asarray(Image.open(paths[i]).convert("RGB")) for i in sorted(pick)]


def _median_ms(func, pairs, repeat: int) -> tuple[float, float]:
    """Median over cells of the best-of-``repeat`` CPU time and wall time, in ms."""
    cpu, wall = [], []
    for image, seg in pairs:
        best_cpu, best_wall = [], []
        for _ in range(repeat):
            c0, t0 = time.process_time(), time.perf_counter()
            func(image, seg)
            best_wall.append(time.perf_counter() - t0)
            best_cpu.append(time.process_time() - c0)
        cpu.append(min(best_cpu))
        wall.append(min(best_wall))
    return 1e3 * float(np.median(cpu)), 1e3 * float(np.median(wall))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="PBC class-folder root")
    parser.add_argument("--n", type=int, default=40, help="number of images")
    parser.add_argument("--repeat", type=int, default=3, help="timings per cell (min is kept)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the image sample")
    parser.add_argument("--standin", action="store_true", help="use the Otsu stand-in segmenter")
    parser.add_argument("--accuracy", action="store_true",
                        help="instead of timing: extract features of --per-class images per "
                             "class and report a StandardScaler + SVC(rbf) accuracy")
    parser.add_argument("--per-class", type=int, default=100,
                        help="images per class for --accuracy (0: all)")
    parser.add_argument("--cache-dir", type=Path, default=None,
                        help="feature cache for --accuracy (re-runs are then fast)")
    parser.add_argument("--n-jobs", type=int, default=1, help="workers for --accuracy")
    args = parser.parse_args(argv)

    segment = standin_segment
    seg_name = "stand-in (Otsu on saturation)"
    if not args.standin:
        try:
            from segmentation import segment as real_segment

            segment, seg_name = real_segment, "segmentation.segment"
        except ImportError:
            pass
    cv2.setNumThreads(1)
    if args.accuracy:
        return _accuracy(args, segment, seg_name)
    images = _load(args.data, args.n, args.seed)
    pairs = [(im, segment(im)) for im in images]
    found = sum(s.found for _, s in pairs)
    shapes = sorted({im.shape[:2] for im in images})
    print(f"{len(pairs)} cells ({found} found), image shapes {shapes[:3]}, segmenter {seg_name}, "
          f"OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS')}")
    fx = FeatureExtractor()
    families: dict[str, Callable[..., Any]] = {
        "crop": lambda im, sg: crop_cell(im, sg),
        "geometry": geometry_features,
        "texture.glcm": glcm_features,
        "texture.lbp": lbp_features,
        "ldp": ldp_features,
        "colour": colour_features,
        "density": density_features,
        "shape": shape_features,
        "relcolour": relative_colour_features,
        "celltexture": cell_texture_features,
        "TOTAL (FeatureExtractor)": fx.extract_one,
    }
    for name, func in families.items():
        for im, sg in pairs[:2]:  # warm-up
            func(im, sg)
        cpu, wall = _median_ms(func, pairs, args.repeat)
        print(f"{name:26s} {cpu:7.2f} ms/cell CPU  {wall:7.2f} ms/cell wall (medians)")
    print(f"n_features = {fx.get_feature_names_out().size}")
    return 0


def _accuracy(args: argparse.Namespace, segment, seg_name: str) -> int:
    """Quick check of discriminative power: 5-fold CV and 80/20 accuracy of an RBF SVM."""
    from sklearn.model_selection import StratifiedKFold, cross_val_score
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    from sklearn.svm import SVC

    from wbc_classic.classical.extraction import extract_features
    from wbc_classic.data.split import make_split

    classes = sorted(d.name for d in args.data.iterdir() if d.is_dir())
    rng = np.random.default_rng(args.seed)
    paths: list[Path] = []
    labels: list[int] = []
    for k, cls in enumerate(classes):
        files = sorted((args.data / cls).glob("*.jpg"))
        n = len(files) if args.per_class <= 0 else min(args.per_class, len(files))
        pick = np.sort(rng.choice(len(files), size=n, replace=False))
        paths += [files[i] for i in pick]
        labels += [k] * n
    y = np.asarray(labels)
    t0 = time.perf_counter()
    result = extract_features(paths, segmenter=segment, extractor=FeatureExtractor(),
                              n_jobs=args.n_jobs, cache_dir=args.cache_dir, progress=True)
    print(result.summary())
    print(f"{len(paths)} images, {len(classes)} classes, segmenter {seg_name}, "
          f"{time.perf_counter() - t0:.0f} s")
    X, y = result.X[result.ok], y[result.ok]
    clf = make_pipeline(StandardScaler(), SVC(C=10.0, gamma="scale"))
    scores = cross_val_score(clf, X, y, cv=StratifiedKFold(5, shuffle=True,
                                                           random_state=args.seed))
    print(f"5-fold CV accuracy: {scores.mean():.4f} +- {scores.std():.4f}")
    split = make_split(y, "80/20", seed=args.seed)
    acc = clf.fit(X[split.train], y[split.train]).score(X[split.test], y[split.test])
    print(f"80/20 accuracy (make_split seed {args.seed}, {split.test.size} test images): "
          f"{acc:.4f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
