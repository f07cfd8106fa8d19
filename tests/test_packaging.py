"""Packaging: licence, one version source, py.typed, citation, changelog, declared
dependencies and pytest settings agree with each other and with the code."""

from __future__ import annotations

import configparser
import importlib
import re
import shutil
import subprocess
import sys
import zipfile

import pytest

from tests.conftest import REPO_ROOT

TOP_LEVEL = ("wbc_classic", "segmentation", "features", "deep", "benchmarks")
TYPED = ("wbc_classic", "segmentation", "features", "deep")


def _cfg() -> configparser.ConfigParser:
    cfg = configparser.ConfigParser()
    cfg.read(REPO_ROOT / "setup.cfg")
    return cfg


def _version() -> str:
    text = (REPO_ROOT / "wbc_classic" / "_version.py").read_text()
    return re.search(r'__version__ = "([^"]+)"', text).group(1)


def test_license_file_matches_setup_cfg():
    cfg = _cfg()
    assert cfg["metadata"]["license"] == "BSD-3-Clause"
    assert cfg["metadata"]["license_files"].split() == ["LICENSE"]
    text = (REPO_ROOT / "LICENSE").read_text()
    assert text.startswith("BSD 3-Clause License")
    assert "Copyright (c) 2026, the wbc-classic developers" in text
    assert "Neither the name of the copyright holder" in text  # clause 3


def test_one_version_source_and_every_package_exports_it():
    assert _cfg()["metadata"]["version"] == "attr: wbc_classic._version.__version__"
    version = _version()
    for pkg in TOP_LEVEL:
        if pkg == "deep":
            pytest.importorskip("torch")  # deep/__init__ imports no torch, its tests need it
        assert importlib.import_module(pkg).__version__ == version, pkg
    literal = [str(p.relative_to(REPO_ROOT)) for pkg in TOP_LEVEL
               for p in (REPO_ROOT / pkg).rglob("*.py")
               if p.name != "_version.py" and re.search(r"^__version__ = ", p.read_text(), re.M)]
    assert not literal, f"a second version literal: {literal}"


def test_py_typed_markers_ship_as_package_data():
    data = _cfg()["options.package_data"]
    for pkg in TYPED:
        assert (REPO_ROOT / pkg / "py.typed").is_file(), pkg
        assert "py.typed" in data[pkg].split(), pkg


def test_citation_and_changelog_name_the_version():
    import yaml

    cff = yaml.safe_load((REPO_ROOT / "CITATION.cff").read_text())
    assert cff["cff-version"] == "1.2.0" and cff["type"] == "software"
    assert str(cff["version"]) == _version() and cff["license"] == "BSD-3-Clause"
    assert cff["authors"] and cff["title"].startswith("wbc-classic")
    log = (REPO_ROOT / "CHANGELOG.md").read_text()
    assert "## [Unreleased]" in log and f"## [{_version()}]" in log
    assert log.index("## [Unreleased]") < log.index(f"## [{_version()}]")


def test_tomli_is_declared_because_toml_is_read():
    readers = [str(p.relative_to(REPO_ROOT)) for pkg in TOP_LEVEL
               for p in (REPO_ROOT / pkg).rglob("*.py") if "import tomllib" in p.read_text()]
    requires = _cfg()["options"]["install_requires"]
    declared = [ln.strip() for ln in requires.splitlines() if ln.strip().startswith("tomli")]
    if readers:  # tomllib is in the standard library from Python 3.11 only
        assert declared == ['tomli>=1.1; python_version < "3.11"'], readers
        assert all("import tomli as tomllib" in (REPO_ROOT / f).read_text() for f in readers)
    else:
        assert not declared


def test_test_extra_and_pytest_timeout():
    cfg = _cfg()
    extra = cfg["options.extras_require"]["test"].split()
    for req in ("pytest-timeout>=2.1", "onnxruntime>=1.17", "mypy>=1.8", "ruff"):
        assert req in extra, req
    assert int(cfg["tool:pytest"]["timeout"]) >= 60


@pytest.mark.slow
def test_wheel_carries_py_typed_license_and_version(tmp_path):
    """Build the wheel from a copy of the sources (setuptools' PEP 517 backend, offline)."""
    src = tmp_path / "src"
    src.mkdir()
    for name in ("setup.cfg", "pyproject.toml", "README.md", "LICENSE"):
        shutil.copy(REPO_ROOT / name, src / name)
    for pkg in TOP_LEVEL:
        shutil.copytree(REPO_ROOT / pkg, src / pkg,
                        ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    out = tmp_path / "dist"
    code = f"from setuptools import build_meta as b; print(b.build_wheel({str(out)!r}))"
    proc = subprocess.run([sys.executable, "-c", code], cwd=src, capture_output=True,
                          text=True, timeout=240)
    assert proc.returncode == 0, proc.stderr[-3000:]
    wheel = out / proc.stdout.strip().splitlines()[-1]
    names = zipfile.ZipFile(wheel).namelist()
    for pkg in TYPED:
        assert f"{pkg}/py.typed" in names, pkg
    assert any(n.endswith("licenses/LICENSE") for n in names)
    # the default classical model and its card ship in the wheel (load("default"))
    for name in ("default.skops", "default.json", "default.md"):
        assert f"wbc_classic/models/{name}" in names, name
    meta = zipfile.ZipFile(wheel).read(next(n for n in names if n.endswith("METADATA")))
    text = meta.decode()
    assert f"Version: {_version()}" in text and "License: BSD-3-Clause" in text
    assert 'Requires-Dist: tomli>=1.1; python_version < "3.11"' in text
