"""The speed benchmarks' helpers: the results comparison and the CLI timing arithmetic."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from benchmarks import bench_predict
from benchmarks.same_results import compare_dumps


def _dump(rng: np.random.Generator) -> dict[str, np.ndarray]:
    return {"paths": np.array(["a.jpg", "b.jpg"]), "found": np.array([True, False]),
            "nucleus": np.packbits(rng.random(50) > 0.5), "cell": np.packbits(rng.random(50) > 0.2),
            "mask_sizes": np.array([[5, 5], [5, 5]]), "X": rng.random((2, 7), dtype=np.float32),
            "proba": rng.random((2, 3)), "shift_score": np.array([1.5, np.nan]),
            "predicted": np.array(["x", ""])}


def test_compare_dumps_tells_what_changed():
    a = _dump(np.random.default_rng(0))
    assert compare_dumps(a, {k: v.copy() for k, v in a.items()}) == []
    close = {**a, "X": a["X"] * np.float32(1 + 1e-7)}
    assert compare_dumps(a, close) == []                      # within rtol 1e-6
    far = {**a, "X": a["X"] * np.float32(1 + 1e-4)}
    assert [p.split(":")[0] for p in compare_dumps(a, far)] == ["X"]
    flipped = a["cell"].copy()
    flipped[0] ^= 1
    other = {**a, "cell": flipped, "predicted": np.array(["y", ""])}
    assert sorted(p.split(":")[0] for p in compare_dumps(a, other)) == ["cell", "predicted"]
    assert [p.split(":")[0] for p in compare_dumps(a, {**a, "proba": a["proba"][:1]})] == \
        ["proba"]                                             # a shape change is named too


def test_cli_benchmark_per_image_cost_beyond_start_up(monkeypatch):
    calls = []

    def fake_run(model, paths, n_jobs, cache_dir, out_csv):
        calls.append((len(paths), cache_dir is None))
        wall = 2.0 if len(paths) == 1 else 5.0
        return {"wall_s": wall, "cpu_s": wall, "cells_per_s": len(paths) / wall, "exit_code": 0}

    monkeypatch.setattr(bench_predict, "cli_run", fake_run)
    out = bench_predict.cli_benchmark("default", [Path(f"{i}.jpg") for i in range(101)], 2,
                                      cache=True)
    assert calls == [(1, False), (101, False)]              # a fresh cache folder each run
    assert out["ms_per_cell_after_startup"] == 30.0          # (5 - 2) s / 100 further images
    assert out["cache"] == "cold" and out["batch"]["cells_per_s"] == 101 / 5.0
