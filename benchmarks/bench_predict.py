"""Throughput of classical prediction from image files: decode + segment + features + classify.

Measures :meth:`wbc_classic.classical.model.WBCModel.predict_paths` (the code behind
``wbc-classic predict``) on real single-cell images, after one warm-up call that starts
the worker processes, and reports the median cells/s over repeats, a per-stage
breakdown on one core, the model file size and its load time.

With ``--cli`` it also runs the command itself, ``python -m wbc_classic predict`` of this
checkout, once on the images and once on one image, in a fresh process each time: the
cells/s *including start-up* (interpreter, imports, model load, worker start, CSV), the
process tree's CPU seconds, and the fixed cost (the one-image run). The feature cache is
a new empty folder (a first run of the default command), or off with ``--cli-no-cache``.

Targets: >= 100 cells/s on 2 cores in-process, image decoding included (issue 5); model
file <= 20 MB; >= 150 cells/s through the CLI including start-up, 400 images, 2 cores
(issue 12).

Usage::

    python -m benchmarks.bench_predict --model default --data ../shared/data/pbc \\
        --n-images 400 --n-jobs 2 --repeats 5 --out runs/bench_predict.json
    python -m benchmarks.bench_predict --model default --n-images 400 --n-jobs 2 \\
        --repeats 0 --breakdown 0 --cli
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

TARGET_CELLS_PER_S = 100.0
TARGET_MODEL_MB = 20.0
TARGET_CLI_CELLS_PER_S = 150.0

#: the checkout whose ``wbc_classic`` the --cli runs use (``python -m`` from its root)
REPO_ROOT = Path(__file__).resolve().parents[1]


def sample_paths(root: Path, n: int, seed: int = 0) -> list[Path]:
    """``n`` image paths spread evenly over the class folders of ``root`` (seeded)."""
    from wbc_classic.data.datasets import load_class_folders

    data = load_class_folders(root)
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(data.paths))
    # round-robin over classes so every class is represented
    by_class: dict[int, list[int]] = {}
    for i in order:
        by_class.setdefault(int(data.y[i]), []).append(int(i))
    picked: list[int] = []
    while len(picked) < min(n, len(data.paths)):
        for idx in by_class.values():
            if idx and len(picked) < n:
                picked.append(idx.pop())
    return [Path(data.paths[i]) for i in picked]


def stage_breakdown(model: Any, paths: list[Path]) -> dict[str, Any]:
    """Median wall and CPU milliseconds per cell of each stage, one core, one image at a time.

    CPU time (``time.process_time``) is what a stage costs when it has a core to itself;
    on a shared machine the wall time also counts the waiting.

    Returns
    -------
    dict
        ``{"wall": {stage: ms}, "cpu": {stage: ms}}`` with stages decode, segment,
        features, classify (one row per call) and their sum ``total``; and
        ``cpu_batch_classify_ms_per_cell``: probabilities and shift scores of all rows in
        one call, as :meth:`predict_paths` computes them.
    """
    from wbc_classic.classical.model import segment_image
    from wbc_classic.io.images import read_image

    stages = ("decode", "segment", "features", "classify")
    wall: dict[str, list[float]] = {k: [] for k in stages}
    cpu: dict[str, list[float]] = {k: [] for k in stages}

    def timed(key, fn, *a):
        w0, c0 = time.perf_counter(), time.process_time()
        out = fn(*a)
        wall[key].append((time.perf_counter() - w0) * 1e3)
        cpu[key].append((time.process_time() - c0) * 1e3)
        return out

    rows = []
    for p in paths:
        image = timed("decode", read_image, p)
        seg = timed("segment", segment_image, image, model.segment_params)
        x = timed("features", model.extractor_.transform, [(image, seg)])
        timed("classify", model.predict_proba_features, x)
        rows.append(x)
    out: dict[str, Any] = {}
    for name, table in (("wall", wall), ("cpu", cpu)):
        med = {k: round(statistics.median(v), 3) for k, v in table.items()}
        med["total"] = round(sum(med.values()), 3)
        out[name] = med
    # what predict_paths does: every row at once (the per-row calls above pay the
    # classifier's per-call overhead), the shift scores included
    X = np.concatenate(rows) if rows else np.zeros((0, 0), np.float32)
    c0 = time.process_time()
    model.predict_proba_features(X)
    model.shift_scores(X)
    out["cpu_batch_classify_ms_per_cell"] = round(
        1e3 * (time.process_time() - c0) / max(1, len(rows)), 3)
    return out


#: run in a new interpreter by :func:`startup_breakdown`: the predict command's start-up
#: steps in their order, CPU seconds each (the imports are those the command makes)
_STARTUP_PROBE = """
import json, sys, time
sys.path.insert(0, {root!r})
t = time.process_time
steps = [("interpreter", t())]
def step(name):
    steps.append((name, t()))
import numpy
step("numpy")
from wbc_classic.cli import build_parser
build_parser(["predict"])
step("command-line parser")
from wbc_classic.classical.imports import import_sklearn
import_sklearn()  # as the command imports it: without pandas
import sklearn.base
step("scikit-learn (scipy.stats, ...)")
import segmentation, features
step("segmentation + features (OpenCV, scikit-image, mahotas)")
from wbc_classic.classical.modelfile import _import_skops_io, load
_import_skops_io()
step("skops.io (its trusted-type lists)")
model = load({model!r})
step("model file (parse, rebuild)")
paths = {paths!r}
model.predict_paths(paths[:1], n_jobs=1)
step("first image (with first-call set-up)")
model.predict_paths(paths[1:2], n_jobs=1)
step("second image")
prev = 0.0
out = {{}}
for name, c in steps:
    out[name] = c - prev
    prev = c
print(json.dumps(out))
"""


def startup_breakdown(model: str, paths: list[Path], repeats: int = 3) -> dict[str, float]:
    """Median CPU seconds of each start-up step of ``wbc-classic predict``, each repeat in a
    new interpreter (so every import is a first one).

    Returns
    -------
    dict
        Step name -> median CPU seconds, in the order the command takes them (see
        ``_STARTUP_PROBE``), plus ``"total"``.
    """
    import subprocess

    code = _STARTUP_PROBE.format(root=str(REPO_ROOT), model=str(model),
                                 paths=[str(p) for p in paths[:2]])
    runs = [json.loads(subprocess.run([sys.executable, "-c", code], cwd=REPO_ROOT,
                                      capture_output=True, text=True, check=True
                                      ).stdout.strip().splitlines()[-1])
            for _ in range(max(1, repeats))]
    out = {k: round(statistics.median(r[k] for r in runs), 3) for k in runs[0]}
    out["total"] = round(statistics.median(sum(r.values()) for r in runs), 3)
    return out


def cli_run(model: str, paths: list[Path], n_jobs: int, cache_dir: Path | None,
            out_csv: Path) -> dict[str, float]:
    """Run ``python -m wbc_classic predict`` of this checkout once in a new process.

    Parameters
    ----------
    model : str
        Model file or shipped model name.
    paths : list of Path
    n_jobs : int
    cache_dir : Path or None
        Feature cache folder (None: ``--no-cache``).
    out_csv : Path

    Returns
    -------
    dict
        ``wall_s`` (start to exit, start-up included), ``cpu_s`` (user + system seconds of
        the process and the worker processes it waited for), ``cells_per_s``
        (``len(paths) / wall_s``) and ``exit_code``.
    """
    import resource
    import subprocess

    cmd = [sys.executable, "-m", "wbc_classic", "predict", "--model", str(model),
           "--n-jobs", str(n_jobs), "--out", str(out_csv), *map(str, paths)]
    cmd += ["--no-cache"] if cache_dir is None else ["--cache-dir", str(cache_dir)]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, cwd=REPO_ROOT, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode not in (0, 1):
        raise RuntimeError(f"{' '.join(cmd[:8])} ... failed ({proc.returncode}): "
                           f"{proc.stderr.strip()[-500:]}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return {"wall_s": round(wall, 3), "cpu_s": round(cpu, 3),
            "cells_per_s": round(len(paths) / wall, 2), "exit_code": proc.returncode}


def cli_benchmark(model: str, paths: list[Path], n_jobs: int, cache: bool
                  ) -> dict[str, Any]:
    """The --cli measurement: the command on ``paths`` and on one image, each in a fresh
    process and (with ``cache``) a fresh empty feature cache.

    Returns
    -------
    dict
        ``batch`` and ``one_image`` (each a :func:`cli_run` result), ``n_images``,
        ``n_jobs``, ``cache`` ("cold" or "off") and ``ms_per_cell_after_startup``
        (the batch's wall time beyond the one-image run, per further image).
    """
    import tempfile

    with tempfile.TemporaryDirectory(prefix="bench-predict-cli-") as tmp:
        root = Path(tmp)
        runs = {}
        for name, subset in (("one_image", paths[:1]), ("batch", paths)):
            cache_dir = root / f"cache-{name}" if cache else None
            runs[name] = cli_run(model, subset, n_jobs, cache_dir, root / f"{name}.csv")
    extra = (runs["batch"]["wall_s"] - runs["one_image"]["wall_s"]) / max(1, len(paths) - 1)
    return {**runs, "n_images": len(paths), "n_jobs": n_jobs,
            "cache": "cold" if cache else "off",
            "ms_per_cell_after_startup": round(1e3 * extra, 2)}


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark; returns 0 when the throughput and size targets are met, else 1."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", required=True,
                        help="model file written by `wbc-classic train` (.skops), or the "
                             "name of a shipped model (default)")
    parser.add_argument("--data", type=Path,
                        default=Path(__file__).resolve().parents[2] / "shared" / "data" / "pbc",
                        help="class-folder images to time (default ../shared/data/pbc)")
    parser.add_argument("--n-images", type=int, default=400, help="images to time (400)")
    parser.add_argument("--n-jobs", type=int, default=2, help="parallel workers (2)")
    parser.add_argument("--repeats", type=int, default=5,
                        help="timed in-process runs, their median reported (5; 0: none)")
    parser.add_argument("--breakdown", type=int, default=60,
                        help="images for the one-core per-stage breakdown (0: skip)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the image sample")
    parser.add_argument("--cli", action="store_true",
                        help="also time `python -m wbc_classic predict` end to end in a new "
                             "process (start-up included), on the images and on one image")
    parser.add_argument("--cli-no-cache", action="store_true",
                        help="--cli runs with --no-cache (default: a new empty cache folder)")
    parser.add_argument("--startup", type=int, default=0, metavar="N",
                        help="CPU seconds of each start-up step of the predict command, "
                             "medians of N new interpreters (0: skip)")
    parser.add_argument("--out", type=Path, default=None, help="JSON report (atomic)")
    args = parser.parse_args(argv)

    from wbc_classic.classical.modelfile import load, packaged_model_path

    paths = sample_paths(args.data, args.n_images, args.seed)
    cli = None
    if args.cli:  # first, while this process has imported nothing heavy to share caches
        cli = cli_benchmark(args.model, paths, args.n_jobs, cache=not args.cli_no_cache)
        b, o = cli["batch"], cli["one_image"]
        print(f"  CLI, {len(paths)} images, n_jobs={args.n_jobs}, cache {cli['cache']}: "
              f"{b['wall_s']:.2f} s wall = {b['cells_per_s']:.1f} cells/s start-up included "
              f"({b['cpu_s']:.2f} CPU s); one image: {o['wall_s']:.2f} s wall "
              f"({o['cpu_s']:.2f} CPU s); {cli['ms_per_cell_after_startup']:.2f} ms wall "
              "per further image")
    startup = None
    if args.startup:
        startup = startup_breakdown(args.model, paths, args.startup)
        print(f"  start-up, median CPU s of {args.startup} new interpreters: " + ", ".join(
            f"{k} {v:.3f}" for k, v in startup.items()))
    t0 = time.perf_counter()
    model = load(args.model)
    load_s = time.perf_counter() - t0
    size_mb = os.path.getsize(packaged_model_path(args.model)) / 2**20
    print(f"model {args.model} ({model.classifier_name}, {len(model.classes_)} classes, "
          f"{size_mb:.2f} MB, loads in {load_s:.2f} s); {len(paths)} images from {args.data}")

    if args.repeats > 0:  # warm-up: starts the workers
        model.predict_paths(paths[: max(8, 4 * args.n_jobs)], n_jobs=args.n_jobs)
    rates = []
    for r in range(args.repeats):
        t0 = time.perf_counter()
        rows = model.predict_paths(paths, n_jobs=args.n_jobs)
        dt = time.perf_counter() - t0
        n_ok = sum(row["status"] == "ok" for row in rows)
        rates.append(len(paths) / dt)
        print(f"  repeat {r + 1}: {len(paths)} images ({n_ok} ok) in {dt:.2f} s "
              f"= {rates[-1]:.1f} cells/s")
    median_rate = statistics.median(rates) if rates else None

    breakdown = stage_breakdown(model, paths[: args.breakdown]) if args.breakdown else {}
    projected = None
    if breakdown:
        for kind in ("wall", "cpu"):
            print(f"  one-core median {kind} ms/cell: " + ", ".join(
                f"{k} {v:.2f}" for k, v in breakdown[kind].items()))
        print(f"  classify + shift scores of all rows at once: "
              f"{breakdown['cpu_batch_classify_ms_per_cell']:.3f} CPU ms/cell")
        projected = 1000.0 * max(1, args.n_jobs) / breakdown["cpu"]["total"]
        print(f"  projected from CPU time on {args.n_jobs} idle cores: {projected:.1f} cells/s")
    try:
        load_avg = os.getloadavg()
        print(f"  load average during the run: {load_avg[0]:.1f} (cores: {os.cpu_count()})")
    except OSError:  # pragma: no cover - not on every platform
        load_avg = None
    ok_rate = median_rate is None or median_rate >= TARGET_CELLS_PER_S
    ok_size = size_mb <= TARGET_MODEL_MB
    ok_cli = cli is None or cli["batch"]["cells_per_s"] >= TARGET_CLI_CELLS_PER_S
    if median_rate is not None:
        print(f"median throughput: {median_rate:.1f} cells/s on n_jobs={args.n_jobs} "
              f"(target >= {TARGET_CELLS_PER_S:.0f}: {'PASS' if ok_rate else 'FAIL'})")
    if cli is not None:
        print(f"CLI throughput, start-up included: {cli['batch']['cells_per_s']:.1f} cells/s "
              f"on n_jobs={args.n_jobs}, {len(paths)} images (target >= "
              f"{TARGET_CLI_CELLS_PER_S:.0f} at 400: {'PASS' if ok_cli else 'FAIL'})")
    print(f"model file {size_mb:.2f} MB (target <= {TARGET_MODEL_MB:.0f}: "
          f"{'PASS' if ok_size else 'FAIL'})")

    if args.out:
        from wbc_classic.io.atomic import atomic_write_text

        report: dict[str, Any] = {
            "benchmark": "bench_predict", "model": str(args.model),
            "classifier": model.classifier_name, "classes": [str(c) for c in model.classes_],
            "model_mb": round(size_mb, 3), "load_seconds": round(load_s, 3),
            "n_images": len(paths), "n_jobs": args.n_jobs, "repeats": args.repeats,
            "cells_per_s": [round(r, 2) for r in rates],
            "median_cells_per_s": None if median_rate is None else round(median_rate, 2),
            "cli": cli, "startup_cpu_s": startup,
            "one_core_ms_per_cell": breakdown,
            "projected_cells_per_s_from_cpu_time": None if projected is None
            else round(projected, 2),
            "load_average": None if load_avg is None else [round(v, 2) for v in load_avg],
            "targets": {"cells_per_s": TARGET_CELLS_PER_S, "model_mb": TARGET_MODEL_MB,
                        "cli_cells_per_s": TARGET_CLI_CELLS_PER_S},
            "pass": {"throughput": ok_rate, "model_size": ok_size, "cli": ok_cli},
        }
        try:
            from benchmarks.environment import capture_environment

            report["environment"] = capture_environment(seed=args.seed,
                                                        command=sys.argv)
        except Exception as exc:  # noqa: BLE001 - the numbers matter more than the context
            report["environment"] = {"error": str(exc)}
        atomic_write_text(args.out, json.dumps(report, indent=2, default=str) + "\n")
        print(f"report -> {args.out}")
    return 0 if (ok_rate and ok_size and ok_cli) else 1


if __name__ == "__main__":
    sys.exit(main())
