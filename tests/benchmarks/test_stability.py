"""The perturbation-stability benchmark on tiny synthetic labs (fast, no real data)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from benchmarks import stability
from wbc_classic.data.synthetic_sets import write_class_folders, write_segmentation_set


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    root = tmp_path_factory.mktemp("labs")
    write_class_folders(root / "pbc", 10, size=64, seed=1)
    write_segmentation_set(root / "jtsc_seg", 20, seed=3, size=64, stain_shift=-0.7, scale=0.8)
    out = tmp_path_factory.mktemp("stability") / "s.json"
    code = stability.main(["--data", str(root), "--targets", "jtsc_seg", "--classifiers",
                           "logreg", "--repeats", "2", "--noise", "1e-3", "--out", str(out)])
    assert code == 0
    return json.loads(out.read_text())


def test_every_fit_is_scored_and_summarised(report):
    logreg = report["classifiers"]["logreg"]
    assert len(logreg["iterations"]) == 3 and all(i >= 1 for i in logreg["iterations"])
    for adapt in stability.ADAPTATIONS:
        s = logreg["scores"]["jtsc_seg"][adapt]
        assert len(s["values"]) == 3 and s["values"][0] == s["unperturbed"]
        assert s["min"] <= s["unperturbed"] <= s["max"]
        assert s["spread"] == pytest.approx(s["max"] - s["min"])


def test_the_perturbation_has_the_relative_size_asked_for():
    rng = np.random.default_rng(0)
    X = rng.uniform(1, 100, size=(400, 30)).astype(np.float32)
    Y = stability.perturbed(X, 1e-3, np.random.default_rng(1))
    rel = (Y - X) / X
    assert Y.dtype == np.float32 and abs(rel.std() - 1e-3) < 1e-4 and abs(rel.mean()) < 1e-4


def test_summary_of_runs():
    runs = [{"lab": {"none": 0.5, "class-means": 0.7}},
            {"lab": {"none": 0.4, "class-means": 0.7}},
            {"lab": {"none": 0.6, "class-means": 0.8}}]
    s = stability.summarise(runs)["lab"]
    assert s["none"]["unperturbed"] == 0.5 and s["none"]["spread"] == pytest.approx(0.2)
    assert s["class-means"]["min"] == 0.7 and s["class-means"]["max"] == 0.8


def test_bad_arguments_stop_before_any_work(tmp_path, capsys):
    with pytest.raises(SystemExit):
        stability.main(["--data", str(tmp_path), "--noise", "0"])
    with pytest.raises(SystemExit):
        stability.main(["--data", str(tmp_path)])
    assert "is not a folder" in capsys.readouterr().err
