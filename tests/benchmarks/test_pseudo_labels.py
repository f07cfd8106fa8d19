"""The pseudo-label schemes benchmark on tiny synthetic labs (fast, no real data)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from benchmarks import pseudo_labels
from wbc_classic.classical.adapt import confident_rows
from wbc_classic.data.synthetic_sets import write_class_folders, write_segmentation_set

ARGS = ["--targets", "jtsc_seg", "--classifiers", "logreg", "--rounds", "2", "--weights",
        "2", "--neighbours", "5"]


@pytest.fixture(scope="module")
def labs(tmp_path_factory):
    root = tmp_path_factory.mktemp("labs")
    write_class_folders(root / "pbc", 10, size=64, seed=1)
    write_segmentation_set(root / "jtsc_seg", 25, seed=3, size=64, stain_shift=-0.7, scale=0.8)
    return root


@pytest.fixture(scope="module")
def report(labs, tmp_path_factory):
    out = tmp_path_factory.mktemp("pl") / "p.json"
    assert pseudo_labels.main(["--data", str(labs), *ARGS, "--cache-dir", str(labs / "cache"),
                               "--out", str(out)]) == 0
    return json.loads(out.read_text())


def test_every_scheme_is_scored_per_round(report):
    res = report["results"]["logreg"]["jtsc_seg"]
    assert set(res) == {"as trained", "class-means", "self-training, weight 2", "lab-own",
                        "label-spreading, 5 neighbours"}
    assert len(res["self-training, weight 2"]) == 2
    assert 1 <= len(res["lab-own"]) <= 2
    for value in res.values():
        for acc in value if isinstance(value, list) else [value]:
            assert 0.0 <= acc <= 1.0


def test_the_same_seed_gives_the_same_report(labs, report, tmp_path):
    out = tmp_path / "again.json"
    assert pseudo_labels.main(["--data", str(labs), *ARGS, "--cache-dir", str(labs / "cache"),
                               "--out", str(out)]) == 0
    assert json.loads(out.read_text()) == report


def test_the_schemes_start_from_the_confident_half_of_each_class():
    proba = np.array([[0.9, 0.1], [0.6, 0.4], [0.7, 0.3], [0.2, 0.8], [0.45, 0.55]])
    sure = confident_rows(proba)
    assert set(sure) == {0, 1}
    assert sure[0].tolist() == [0, 2]          # median of 0.9, 0.6, 0.7 is 0.7
    assert sure[1].tolist() == [3]             # median of 0.8 and 0.55 is 0.675
    rows, labels = pseudo_labels._seeds(proba)
    assert rows.tolist() == [0, 2, 3] and labels.tolist() == [0, 0, 1]


def test_label_spreading_recovers_separable_clusters_from_a_few_seeds():
    rng = np.random.default_rng(0)
    X = np.concatenate([rng.normal(0, 0.3, (30, 4)), rng.normal(5, 0.3, (30, 4))])
    y = np.r_[np.zeros(30, int), np.ones(30, int)]
    # pseudo-labels right for the confident rows only: the rest are wrong but unsure
    proba = np.where(y[:, None] == np.arange(2), 0.9, 0.1)
    proba[::3] = proba[::3, ::-1] * 0.6 + 0.2           # wrong, and less confident
    assert pseudo_labels.label_spreading(proba, X, y, neighbours=5) == 1.0
