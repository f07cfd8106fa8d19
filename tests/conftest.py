"""Shared fixtures: the location of the real data sets, skipped cleanly when absent."""

from __future__ import annotations

import os
from pathlib import Path

# Tests are many small computations: multi-threaded BLAS/OpenMP/torch pools only oversubscribe
# a small CI machine (measured: 20 min with the default pools on a busy 2-core machine, under a
# minute with one thread). Set before numpy/torch are imported; a user's own setting wins.
for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import pytest  # noqa: E402

REPO_ROOT = Path(__file__).resolve().parents[1]


def shared_data_root() -> Path:
    """``$WBC_SHARED_DATA`` if set, else ``../shared/data`` beside the checkout."""
    env = os.environ.get("WBC_SHARED_DATA")
    return Path(env) if env else REPO_ROOT.parent / "shared" / "data"


def _require(name: str) -> Path:
    path = shared_data_root() / name
    if not path.is_dir():
        pytest.skip(f"real data set {name!r} not found at {path} (set WBC_SHARED_DATA)")
    return path


@pytest.fixture(scope="session")
def pbc_dir() -> Path:
    """Path to the PBC class-folder set; skips the test when absent."""
    return _require("pbc")


@pytest.fixture(scope="session")
def cellavision_dir() -> Path:
    """Path to the cellavision_seg set; skips the test when absent."""
    return _require("cellavision_seg")


@pytest.fixture(scope="session")
def bccd_dir() -> Path:
    """Path to the BCCD VOC smear set; skips the test when absent."""
    return _require("bccd")
