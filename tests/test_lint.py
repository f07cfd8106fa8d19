"""The code base stays ``ruff`` clean (configuration in ruff.toml)."""

import shutil
import subprocess

import pytest

from tests.conftest import REPO_ROOT


def test_ruff_clean():
    ruff = shutil.which("ruff")
    if ruff is None:
        pytest.skip("ruff is not installed (it is in the 'test' extra)")
    result = subprocess.run([ruff, "check", "--no-cache", str(REPO_ROOT)],
                            capture_output=True, text=True, cwd=REPO_ROOT)
    assert result.returncode == 0, result.stdout + result.stderr
