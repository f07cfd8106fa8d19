"""Fixtures shared by the cross-lab benchmarks' tests."""

from __future__ import annotations

import pytest

from wbc_classic.data.synthetic_sets import write_class_folders, write_segmentation_set


@pytest.fixture(scope="module")
def pbc_and_jtsc(tmp_path_factory):
    """A tiny synthetic PBC (10 cells per class) and a shifted, smaller 'jtsc_seg' lab
    (25 cells with masks), in one folder as ``../shared/data`` holds them."""
    root = tmp_path_factory.mktemp("labs")
    write_class_folders(root / "pbc", 10, size=64, seed=1)
    write_segmentation_set(root / "jtsc_seg", 25, seed=3, size=64, stain_shift=-0.7, scale=0.8)
    return root


def json_report(main, root, args, out):
    """Run a benchmark's ``main`` on the labs at ``root`` (cached features beside them) with
    ``--out out``; check it succeeds and return the JSON report it wrote."""
    import json

    assert main(["--data", str(root), *args, "--cache-dir", str(root / "cache"),
                 "--out", str(out)]) == 0
    return json.loads(out.read_text())
