"""Speed benchmark of the classical segmenter: median time per single-cell image, one core.

Run::

    python -m benchmarks.bench_segmentation --data ../shared/data/cellavision_seg
    python -m benchmarks.bench_segmentation --data ../shared/data/pbc --n 200
    python -m benchmarks.bench_segmentation            # synthetic cells when no data given

Images are decoded before timing; each image is segmented ``--repeat`` times and the
best of those runs is its time (less noise from other processes).  Both the wall-clock
time and the CPU time of this process are measured; the median over images of each is
reported.  On a shared machine the wall-clock time includes waiting for a core, so the CPU
time is the per-core cost; on an idle machine the two agree.  Threads are pinned to one
(OMP_NUM_THREADS=1 and cv2.setNumThreads(1)) so the figure is per core.
The target of issue 2 is >= 20 images/s.
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("MKL_NUM_THREADS", "1")

import argparse  # noqa: E402
import json  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

import cv2  # noqa: E402
import numpy as np  # noqa: E402

cv2.setNumThreads(1)

TARGET_IMAGES_PER_SECOND = 20.0


def _load_images(data: Path | None, n: int, seed: int) -> tuple[list[np.ndarray], str]:
    from wbc_classic.io.images import is_image_file, read_image

    if data is None:
        from wbc_classic.data.synthetic import make_cell

        labels = ["neutrophil", "lymphocyte", "monocyte", "eosinophil", "basophil"]
        imgs = [make_cell(labels[i % 5], size=300, rng=seed + i).image for i in range(n)]
        return imgs, "synthetic make_cell 300x300"
    files = sorted(p for p in Path(data).rglob("*") if p.is_file() and is_image_file(p)
                   and "mask" not in p.parent.name.lower())
    if not files:
        raise SystemExit(f"no images under {data}")
    rng = np.random.default_rng(seed)
    pick = rng.choice(len(files), size=min(n, len(files)), replace=False)
    return [read_image(files[i]) for i in sorted(pick)], str(data)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, default=None,
                        help="folder of single-cell images (searched recursively); "
                             "default: synthetic cells")
    parser.add_argument("--n", type=int, default=100, help="images to time (100)")
    parser.add_argument("--repeat", type=int, default=3, help="runs per image, best kept (3)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the image sample")
    parser.add_argument("--out", type=Path, default=None, help="also write the results here (JSON)")
    parser.add_argument("--json", action="store_true",
                        help="print the machine-readable result (JSON) to stdout instead of "
                             "the summary line")
    parser.add_argument("--keep-stages", action="store_true",
                        help="also compute the teaching-only intermediate images (as "
                             "`segment --steps` does); default: the batch/predict path")
    args = parser.parse_args(argv)

    from segmentation import segment

    images, source = _load_images(args.data, args.n, args.seed)
    keep = bool(args.keep_stages)
    segment(images[0], keep_stages=keep)  # warm-up (imports, caches)
    times, cpu_times, found = [], [], 0
    for im in images:
        best, best_cpu = np.inf, np.inf
        for _ in range(max(1, args.repeat)):
            t0, c0 = time.perf_counter(), time.process_time()
            seg = segment(im, keep_stages=keep)
            best = min(best, time.perf_counter() - t0)
            best_cpu = min(best_cpu, time.process_time() - c0)
        times.append(best)
        cpu_times.append(best_cpu)
        found += bool(seg.found)
    t = np.asarray(times)
    tc = np.asarray(cpu_times)
    med = float(np.median(t))
    med_cpu = float(np.median(tc))
    try:
        load = os.getloadavg()[0]
    except OSError:  # pragma: no cover - platform without load average
        load = float("nan")
    result: dict[str, Any] = {
        "source": source, "n_images": len(images),
        "image_shape": list(images[0].shape),
        "median_ms": 1000 * med, "p90_ms": 1000 * float(np.percentile(t, 90)),
        "mean_ms": 1000 * float(t.mean()),
        "median_cpu_ms": 1000 * med_cpu,
        "images_per_second_wall": 1.0 / med if med > 0 else float("inf"),
        "images_per_second": 1.0 / med_cpu if med_cpu > 0 else float("inf"),
        "load_average_1min": load,
        "found_rate": found / len(images),
        "keep_stages": keep,
        "target_images_per_second": TARGET_IMAGES_PER_SECOND,
        "threads": {"OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS"),
                    "cv2": cv2.getNumThreads()},
    }
    print(json.dumps(result) if args.json else
          f"segmentation speed on {source} ({len(images)} images, {images[0].shape[1]}x"
          f"{images[0].shape[0]}, 1 thread): median CPU {result['median_cpu_ms']:.1f} ms/image "
          f"-> {result['images_per_second']:.1f} images/s per core "
          f"(target >= {TARGET_IMAGES_PER_SECOND:.0f}, keep_stages={keep}); wall-clock median "
          f"{result['median_ms']:.1f} ms (p90 {result['p90_ms']:.1f} ms, load average "
          f"{load:.1f}); found {100 * result['found_rate']:.0f}%")
    if args.out:
        from wbc_classic.io.atomic import atomic_write_text

        atomic_write_text(args.out, json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
