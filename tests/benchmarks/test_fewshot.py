"""The few-shot learning-curve benchmark on tiny synthetic labs (fast, no real data)."""

from __future__ import annotations

import json

import numpy as np

from benchmarks import fewshot, labcells
from wbc_classic.data.synthetic_sets import write_class_folders, write_segmentation_set


def test_curve_rows_per_k_and_adaptation(tmp_path):
    write_class_folders(tmp_path / "pbc", 10, size=64, seed=1)
    write_segmentation_set(tmp_path / "jtsc_seg", 40, seed=3, size=64, stain_shift=-0.7,
                           scale=0.8)
    out = tmp_path / "f.json"
    assert fewshot.main(["--data", str(tmp_path), "--targets", "jtsc_seg", "--classifier",
                         "logreg", "--ks", "0", "3", "--seeds", "0", "1", "--target-weight",
                         "5", "--adapt", "none", "class-means", "--out", str(out)]) == 0
    rows = json.loads(out.read_text())
    assert [(r["adapt"], r["k"]) for r in rows] == [("none", 0), ("none", 3),
                                                    ("class-means", 0), ("class-means", 3)]
    for r in rows:
        # k = 0 has one model; every k > 0 a model per seed, scored on the cells not picked
        assert len(r["accuracy"]) == (1 if r["k"] == 0 else 2)
        assert r["n_test"] == 40 - 5 * r["k"]
        assert r["ci95"][0] <= r["mean"] <= r["ci95"][1]


def test_lab_cells_names_images_relative_to_the_lab(tmp_path):
    from wbc_classic.classical.model import WBCModel
    from wbc_classic.data.labels import PBC5_CLASSES

    write_segmentation_set(tmp_path / "lab", 10, seed=3, size=64)
    engine = WBCModel("logreg", classes=PBC5_CLASSES, cv=0)
    cells = labcells.lab_cells(engine, tmp_path / "lab")
    assert len(cells.X) == len(cells.y) == len(cells.images) > 0
    assert all(name.startswith("images/") for name in cells.images)
    assert set(np.unique(cells.y)) <= set(range(len(PBC5_CLASSES)))


def test_pick_per_class_leaves_one_cell_of_a_small_class():
    y = np.repeat(np.arange(3), [1, 2, 10])
    pick = fewshot.pick_per_class(y, 5, 3, seed=0)
    assert np.bincount(y[pick], minlength=3).tolist() == [1, 1, 5]
