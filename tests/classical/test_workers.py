"""wbc_classic.classical.workers: workers started early are warm and reused."""

from __future__ import annotations

import os
import sys
import time

import numpy as np
import pytest

from wbc_classic.classical import workers


def _pid_and_modules() -> tuple[int, bool]:
    time.sleep(0.2)  # keep this worker busy so that the other takes the next task
    return os.getpid(), "segmentation" in sys.modules and "features" in sys.modules


def test_one_job_starts_nothing():
    workers.start_workers(1)
    assert workers.wait_for_workers() == []


def test_warm_up_runs_in_this_process():
    assert workers._warm_up() == os.getpid()


@pytest.mark.slow  # starts loky worker processes
def test_started_workers_are_warm_and_reused_by_the_feature_engine():
    import joblib

    from wbc_classic.classical.extraction import extract_features

    workers.start_workers(2)
    warm = workers.wait_for_workers()
    assert len(warm) == 2
    seen = joblib.Parallel(n_jobs=2)(joblib.delayed(_pid_and_modules)() for _ in range(4))
    assert {pid for pid, _ in seen} <= set(warm)   # the same processes, not new ones
    assert all(imported for _, imported in seen)   # imported by the warm-up, not by the task
    # the engine waits for a start still running, then runs on the executor it made
    workers.start_workers(2)
    image = np.full((64, 64, 3), 230, np.uint8)
    result = extract_features([image, image], n_jobs=2, progress=False)
    assert not workers._starting.is_alive() and result.ok.all()
    assert set(workers.wait_for_workers()) == set(warm)  # the second start reused them
