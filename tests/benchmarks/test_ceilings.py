"""The adaptation-ceiling benchmark on tiny synthetic labs (fast, no real data)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from benchmarks import ceilings
from wbc_classic.data.synthetic_sets import write_class_folders, write_segmentation_set

ROWS = ["as trained", "adapt auto", "adapt class-means", "class-means, true labels",
        "PBC + lab labels, 5-fold", "lab alone, 5-fold"]


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    root = tmp_path_factory.mktemp("labs")
    write_class_folders(root / "pbc", 10, size=64, seed=1)
    # 8 cells per class: every class is tested by the cross-validated rows
    write_segmentation_set(root / "jtsc_seg", 40, seed=3, size=64, stain_shift=-0.7, scale=0.8)
    out = tmp_path_factory.mktemp("ceilings")
    code = ceilings.main(["--data", str(root), "--targets", "jtsc_seg", "--classifiers",
                          "logreg", "--cache-dir", str(out / "cache"),
                          "--out", str(out / "c.json")])
    assert code == 0
    return json.loads((out / "c.json").read_text())


def test_every_row_is_scored_on_the_lab(run):
    assert [r["row"] for r in run] == [*ROWS, "disputed labels"]
    for r in run[:-1]:
        assert r["target"] == "jtsc_seg" and r["classifier"] == "logreg"
        assert sum(map(sum, r["confusion"])) == r["n_test"]
        assert 0.0 <= r["accuracy"]["value"] <= 1.0
    assert len(run[4]["map_kept"]) == ceilings.FOLDS
    # the cross-validated rows list their errors by image name; the disputed labels are
    # the errors they share
    for r in run[4:6]:
        wrong = r["wrong"]
        assert len(wrong) == round(r["n_test"] * (1 - r["accuracy"]["value"]))
        assert all(w["image"].startswith("images/") and w["image"].endswith(".png")
                   and w["label"] != w["predicted"] for w in wrong)
    shared = {w["image"] for w in run[4]["wrong"]} & {w["image"] for w in run[5]["wrong"]}
    assert [d["image"] for d in run[-1]["cells"]] == sorted(shared)


def test_disputed_labels_are_the_errors_every_row_shares():
    rows = [{"wrong": [{"image": "a", "label": "x", "predicted": "y"},
                       {"image": "b", "label": "x", "predicted": "z"}]},
            {"wrong": [{"image": "b", "label": "x", "predicted": "y"}]},
            {"row": "as trained"}]
    assert ceilings.disputed_labels(rows) == [
        {"image": "b", "label": "x", "predicted": ["z", "y"]}]
    assert ceilings.disputed_labels([{"row": "as trained"}]) == []


def test_cells_with_swapped_labels_are_listed_as_disputed():
    from features import FeatureExtractor

    rng = np.random.default_rng(1)
    width = len(FeatureExtractor().get_feature_names_out())
    means = 2.0 * rng.normal(size=(5, width))  # five well-separated classes
    yp = np.repeat(np.arange(5), 20)
    Xp = rng.normal(size=(yp.size, width)) + means[yp]
    y_true = np.repeat(np.arange(5), 10)
    Xt = rng.normal(size=(y_true.size, width)) + means[y_true]
    yt = y_true.copy()
    yt[[3, 27]] = [4, 0]  # two labels the features contradict
    names = [f"images/{i:03d}.png" for i in range(yt.size)]
    rows = ceilings.lab_rows(Xp, yp, Xt, yt, classifier="logreg", weight=1.0, images=names)
    disputed = ceilings.disputed_labels(rows)
    assert [d["image"] for d in disputed] == ["images/003.png", "images/027.png"]
    assert [d["label"] for d in disputed] == ["neutrophil", "basophil"]
    assert all(set(d["predicted"]) == {c} for d, c in zip(
        disputed, ["basophil", "lymphocyte"], strict=True))


def test_a_model_of_the_lab_own_cells_separates_its_classes(run):
    # the synthetic classes differ in shape and size: a model of the lab's own labelled
    # cells must do far better than chance (0.2), whatever the stain shift
    assert run[5]["row"] == "lab alone, 5-fold" and run[5]["accuracy"]["value"] >= 0.6


def test_cross_validation_tests_only_classes_with_enough_cells():
    from features import FeatureExtractor

    rng = np.random.default_rng(0)
    y = np.repeat(np.arange(5), [1, 8, 8, 8, 8])  # one basophil, as jtsc_seg has
    width = len(FeatureExtractor().get_feature_names_out())
    X = rng.normal(size=(y.size, width)) + 3.0 * y[:, None]
    rows, pred, kept = ceilings.cross_validated(None, None, X, y, classifier="svm",
                                                weight=1.0)
    assert np.array_equal(rows, np.flatnonzero(y > 0)) and kept == []
    assert set(np.unique(pred)) <= {1, 2, 3, 4}  # the untested class is not in the model
    assert np.mean(pred == y[rows]) >= 0.9
