"""wbc_classic.classical.workers: the pool of workers plus this process."""

from __future__ import annotations

import os
import sys
import time

import numpy as np
import pytest

from wbc_classic.classical import workers


def _where(chunk: list[int], delay: float) -> list[tuple[int, int, bool]]:
    time.sleep(delay)  # long enough that both sides take chunks
    return [(i, os.getpid(), "segmentation" in sys.modules) for i in chunk]


def _fails(chunk: list[int], _: object) -> list[int]:
    if os.getpid() != chunk[1]:  # only in a worker
        raise RuntimeError("worker task failed")
    return chunk


def test_one_job_uses_no_pool():
    assert workers.own_pool(1) == 0
    workers.start_workers(1)
    assert workers.wait_for_workers() == []


def test_another_joblib_backend_is_left_to_joblib():
    import joblib

    with joblib.parallel_backend("threading"):
        assert workers.own_pool(2) is None
    assert workers.own_pool(3) == 2  # this process and two workers


def test_warm_up_runs_in_this_process():
    assert workers._warm_up() == os.getpid()


@pytest.mark.slow  # starts a loky worker process
def test_chunks_run_once_each_here_and_on_the_started_worker():
    workers.start_workers(2)
    warm = workers.wait_for_workers()
    assert len(warm) == 1 and warm[0] != os.getpid()
    chunks = [[2 * k, 2 * k + 1] for k in range(12)]
    rows = [r for out in workers.run_chunks(_where, chunks, 0.05, 1) for r in out]
    assert sorted(i for i, _, _ in rows) == list(range(24))     # every item once
    pids = {pid for _, pid, _ in rows}
    assert pids == {os.getpid(), warm[0]}                      # both sides worked
    assert all(seg for _, pid, seg in rows if pid == warm[0])  # warm: imported before
    with pytest.raises(RuntimeError, match="worker task failed"):
        list(workers.run_chunks(_fails, [[0, os.getpid()]] * 4, None, 1))


def _opencv_threads(chunk: list[int], delay: float) -> list[tuple[int, int]]:
    import cv2

    time.sleep(delay)
    return [(os.getpid(), cv2.getNumThreads()) for _ in chunk]


@pytest.mark.slow  # starts a loky worker process
def test_opencv_runs_single_threaded_in_the_chunks_and_is_restored_here():
    import cv2

    before = cv2.getNumThreads()
    rows = [r for out in workers.run_chunks(_opencv_threads, [[0]] * 8, 0.05, 1) for r in out]
    assert {n for _, n in rows} == {1}
    assert len({pid for pid, _ in rows}) == 2                  # here and on the worker
    assert cv2.getNumThreads() == before


@pytest.mark.slow  # starts a loky worker process
def test_feature_engine_on_two_processes_equals_one():
    from wbc_classic.classical.extraction import extract_features
    from wbc_classic.data.synthetic import make_cells

    images, _, _ = make_cells(6, classes=("lymphocyte", "neutrophil"), size=64, seed=2)
    one = extract_features(list(images), n_jobs=1, progress=False)
    two = extract_features(list(images), n_jobs=2, progress=False, chunk_size=1)
    np.testing.assert_array_equal(one.X, two.X)
    assert two.ok.all()


@pytest.mark.slow  # starts loky worker processes
def test_stop_warm_up_kills_workers_still_starting_and_the_pool_recovers():
    workers.start_workers(2)
    assert workers.stop_warm_up()            # a fresh interpreter takes far longer than this
    assert workers.wait_for_workers() == []
    assert not workers.stop_warm_up()        # nothing left to stop
    chunks = [[k] for k in range(4)]
    rows = [r for out in workers.run_chunks(_where, chunks, 0.0, 1) for r in out]
    assert sorted(i for i, _, _ in rows) == [0, 1, 2, 3]  # a new executor does the work


def _square(x: int) -> int:
    return x * x


@pytest.mark.slow  # starts a loky worker process
def test_joblib_parallel_after_the_pool_reuses_it_without_error():
    # wbc-classic predict starts the pool, count then runs joblib.Parallel in the same
    # process: joblib reuses the one loky executor and needs what its own constructor sets
    import joblib

    workers.start_workers(2)
    workers.wait_for_workers()
    list(workers.run_chunks(_where, [[0, 1], [2, 3]], 0.0, 1))
    assert joblib.Parallel(n_jobs=2)(joblib.delayed(_square)(i) for i in range(4)) == [
        0, 1, 4, 9]
