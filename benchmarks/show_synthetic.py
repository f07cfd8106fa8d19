"""Write a PNG gallery of synthetic leukocytes (one row per class) and, optionally, a smear.

Example::

    python -m benchmarks.show_synthetic --out /tmp/synthetic_grid.png --n 8 --seed 0
    python -m benchmarks.show_synthetic --out /tmp/shifted.png --stain-shift 1 --scale 1.2
    python -m benchmarks.show_synthetic --out /tmp/grid.png --masks --smear /tmp/smear.png

With ``--masks`` the nucleus (yellow) and cell (green) outlines are drawn over the images.
With ``--timing`` the median ``make_cell`` time over 200 calls is printed.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
from PIL import Image
from scipy import ndimage as ndi

from wbc_classic.data.labels import PBC5_CLASSES
from wbc_classic.data.synthetic import make_cell, make_smear


def _outline(img: np.ndarray, mask: np.ndarray, colour: tuple[int, int, int]) -> None:
    edge = mask & ~ndi.binary_erosion(mask)
    img[edge] = colour


def gallery(n: int = 8, *, size: int = 128, seed: int = 0, masks: bool = False,
            **variation) -> np.ndarray:
    """Return a (5 * size, n * size, 3) uint8 grid: one row per class of :data:`PBC5_CLASSES`."""
    rows = []
    for ci, c in enumerate(PBC5_CLASSES):
        tiles = []
        for i in range(n):
            cell = make_cell(c, size=size, rng=np.random.default_rng([seed, ci, i]), **variation)
            img = cell.image.copy()
            if masks:
                _outline(img, cell.cell, (0, 200, 0))
                _outline(img, cell.nucleus, (255, 230, 0))
            tiles.append(img)
        rows.append(np.concatenate(tiles, axis=1))
    return np.concatenate(rows, axis=0)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--out", type=Path, default=Path("synthetic_grid.png"), help="output PNG")
    p.add_argument("--n", type=int, default=8, help="examples per class")
    p.add_argument("--size", type=int, default=128, help="crop size in pixels")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--stain-shift", type=float, default=0.0)
    p.add_argument("--scale", type=float, default=1.0)
    p.add_argument("--masks", action="store_true", help="draw ground-truth outlines")
    p.add_argument("--smear", type=Path, default=None, help="also write a smear field PNG")
    p.add_argument("--timing", action="store_true", help="print median make_cell time")
    a = p.parse_args(argv)
    grid = gallery(a.n, size=a.size, seed=a.seed, masks=a.masks, stain_shift=a.stain_shift,
                   scale=a.scale)
    a.out.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(grid).save(a.out)
    print(f"wrote {a.out} ({grid.shape[1]}x{grid.shape[0]})")
    if a.smear is not None:
        f = make_smear(seed=a.seed, n_leukocytes=3, stain_shift=a.stain_shift, scale=a.scale)
        img = f.image.copy()
        if a.masks:
            _outline(img, f.cell, (0, 200, 0))
            _outline(img, f.nucleus, (255, 230, 0))
            for x0, y0, x1, y1 in f.boxes:
                img[y0, x0:x1] = img[y1 - 1, x0:x1] = (0, 0, 255)
                img[y0:y1, x0] = img[y0:y1, x1 - 1] = (0, 0, 255)
        Image.fromarray(img).save(a.smear)
        print(f"wrote {a.smear}: {', '.join(f.labels)}; {len(f.rbc_boxes)} red cells")
    if a.timing:
        times = []
        for i in range(200):
            t0 = time.perf_counter()
            make_cell(PBC5_CLASSES[i % 5], size=a.size, rng=i)
            times.append(time.perf_counter() - t0)
        print(f"make_cell size={a.size}: median {1e3 * np.median(times):.2f} ms, "
              f"p90 {1e3 * np.percentile(times, 90):.2f} ms over 200 calls")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
