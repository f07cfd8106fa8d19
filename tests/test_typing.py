"""Type checking with mypy (configuration in setup.cfg, section ``[mypy]``).

The scope is the five library packages, the configuration's ``files``: ``wbc_classic``,
``segmentation``, ``features``, ``deep`` and ``benchmarks``; all of them are mypy-clean.
"""

import shutil
import subprocess

import pytest

from tests.conftest import REPO_ROOT

CLEAN = ("wbc_classic", "segmentation", "features", "deep", "benchmarks")


def test_mypy_clean_modules():
    mypy = shutil.which("mypy")
    if mypy is None:
        pytest.skip("mypy is not installed (it is in the 'test' extra)")
    # follow-imports=silent: imported modules are read for their types, their own errors are
    # not this test's scope
    result = subprocess.run([mypy, "--follow-imports=silent", "--no-incremental", *CLEAN],
                            capture_output=True, text=True, cwd=REPO_ROOT, timeout=280)
    assert result.returncode == 0, result.stdout + result.stderr
