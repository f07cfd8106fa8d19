"""Check that a speed-up changed no result: masks, features and predictions of real images.

``dump`` runs one code version on a seeded sample of class-folder images and saves, per
image, the segmentation masks, the feature row of the predict path
(:meth:`wbc_classic.classical.model.WBCModel.predict_paths`, one process), the class
probabilities and the shift score; ``compare`` tells where two dumps differ (masks and
found flags must be equal; features, probabilities and shift scores may differ by
``--rtol``; predicted classes must be equal) and exits 1 when they do.

Run ``dump`` once from a checkout of the old code and once from the new one::

    (cd /tmp/old-checkout && python -m benchmarks.same_results dump --out /tmp/old.npz)
    python -m benchmarks.same_results dump --out /tmp/new.npz
    python -m benchmarks.same_results compare /tmp/old.npz /tmp/new.npz
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["compare_dumps", "dump_results"]


def dump_results(paths: list[Path], model_path: str = "default") -> dict[str, np.ndarray]:
    """Masks, features, probabilities and shift scores of ``paths`` under one model.

    Returns
    -------
    dict of str to ndarray
        ``paths`` (str (n,)); ``found`` (bool (n,)); ``nucleus``, ``cell`` (uint8, the
        masks of every image packed with :func:`numpy.packbits` and concatenated);
        ``mask_sizes`` (int64 (n, 2), each image's H, W); ``X`` (float32 (n, F), the
        predict path's features); ``proba`` (float64 (n, K)); ``shift_score`` (float64
        (n,)); ``predicted`` (str (n,)).
    """
    from wbc_classic.classical.model import segment_image
    from wbc_classic.classical.modelfile import load
    from wbc_classic.io.images import read_image

    model = load(model_path)
    found, nucleus, cell, sizes = [], [], [], []
    for p in paths:
        seg = segment_image(read_image(p), model.segment_params)
        found.append(bool(seg.found))
        nucleus.append(np.packbits(seg.nucleus))
        cell.append(np.packbits(seg.cell))
        sizes.append(seg.cell.shape)
    result = model.extract([str(p) for p in paths], n_jobs=1, cache_dir=None)
    rows = model.predict_paths(paths, n_jobs=1, cache_dir=None)
    return {
        "paths": np.asarray([str(p) for p in paths]),
        "found": np.asarray(found),
        "nucleus": np.concatenate(nucleus), "cell": np.concatenate(cell),
        "mask_sizes": np.asarray(sizes, dtype=np.int64),
        "X": result.X,
        "proba": np.stack([r["proba"] for r in rows]),
        "shift_score": np.asarray([r["shift_score"] for r in rows]),
        "predicted": np.asarray([r["predicted_class"] for r in rows]),
    }


def compare_dumps(a: dict[str, Any], b: dict[str, Any], rtol: float = 1e-6) -> list[str]:
    """Differences between two :func:`dump_results` outputs, one line each ([] = same).

    Masks, found flags, paths and predicted classes must be equal; ``X``, ``proba`` and
    ``shift_score`` may differ by ``rtol`` relative to the larger magnitude (an absolute
    floor of ``rtol`` for values near 0).
    """
    problems = []
    for key in ("paths", "mask_sizes", "found", "nucleus", "cell", "predicted"):
        x, y = np.asarray(a[key]), np.asarray(b[key])
        if x.shape != y.shape:
            problems.append(f"{key}: shape {x.shape} != {y.shape}")
        elif not np.array_equal(x, y):
            problems.append(f"{key}: {int(np.sum(x != y))} of {x.size} values differ")
    for key in ("X", "proba", "shift_score"):
        x = np.asarray(a[key], dtype=np.float64)
        y = np.asarray(b[key], dtype=np.float64)
        if x.shape != y.shape:
            problems.append(f"{key}: shape {x.shape} != {y.shape}")
            continue
        scale = np.maximum(np.maximum(np.abs(x), np.abs(y)), 1.0)
        bad = ~((np.abs(x - y) <= rtol * scale) | (np.isnan(x) & np.isnan(y)))
        if bad.any():
            rel = np.nanmax(np.abs(x - y) / scale)
            problems.append(f"{key}: {int(bad.sum())} of {x.size} values differ by more "
                            f"than rtol={rtol:g} (largest {rel:.3g})")
    return problems


def main(argv: list[str] | None = None) -> int:
    """``dump`` or ``compare``; returns 0 (written / the same) or 1 (they differ)."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    d = sub.add_parser("dump", help="save this code version's results on a sample")
    d.add_argument("--model", default="default", help="model file or shipped name (default)")
    d.add_argument("--data", type=Path, default=Path("/work/shared/data/pbc"),
                   help="class-folder images (default /work/shared/data/pbc)")
    d.add_argument("--n-images", type=int, default=50, help="images, spread over classes (50)")
    d.add_argument("--seed", type=int, default=1, help="seed of the sample (1)")
    d.add_argument("--out", type=Path, required=True, help=".npz to write")
    c = sub.add_parser("compare", help="compare two dumps")
    c.add_argument("old", type=Path)
    c.add_argument("new", type=Path)
    c.add_argument("--rtol", type=float, default=1e-6, help="relative tolerance (1e-6)")
    args = parser.parse_args(argv)
    if args.command == "dump":
        from benchmarks.bench_predict import sample_paths

        paths = sample_paths(args.data, args.n_images, args.seed)
        out: dict[str, Any] = dump_results(paths, args.model)
        np.savez_compressed(args.out, **out)
        print(f"{len(paths)} images, {out['X'].shape[1]} features -> {args.out}")
        return 0
    with np.load(args.old) as fa, np.load(args.new) as fb:
        problems = compare_dumps(dict(fa), dict(fb), rtol=args.rtol)
    for line in problems:
        print(line)
    print("same results" if not problems else f"{len(problems)} difference(s)")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
