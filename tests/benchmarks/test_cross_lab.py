"""benchmarks.cross_lab: feature subsets, the table, and the protocol's data sets."""

from __future__ import annotations

import numpy as np

from benchmarks import cross_lab


def test_subset_masks():
    names = np.array(["cell_area", "colour_cell_r_mean", "colour_nucleus_r_mean",
                      "gran_nucleus_r2", "glcm_nucleus_d1_contrast", "od_nucleus_r_mean",
                      "odglcm_nucleus_d1_contrast"])
    np.testing.assert_array_equal(cross_lab.subset_mask(names, "all"),
                                  [True, True, True, True, True, False, False])
    np.testing.assert_array_equal(cross_lab.subset_mask(names, "no-cell-colour"),
                                  [True, False, True, True, True, False, False])
    np.testing.assert_array_equal(cross_lab.subset_mask(names, "no-colour"),
                                  [True, False, False, False, True, False, False])
    assert cross_lab.subset_mask(names, "all+density").all()
    np.testing.assert_array_equal(cross_lab.subset_mask(names, "density-for-colour"),
                                  [True, False, False, False, True, True, True])


def test_markdown_table_has_one_row_per_result():
    row = {"family": "classical", "model": "logreg", "stain": "none", "features": "all",
           "pbc-test": 0.99, "cellavision": 0.8,
           "cellavision/per_class": {"lymphocyte": 0.7, "monocyte": 1.0}}
    table = cross_lab.markdown([row, row])
    lines = table.splitlines()
    assert len(lines) == 4 and "0.800" in lines[2] and "| 0.70 | 1.00 |" in lines[2]


def test_missing_data_is_a_clear_error(tmp_path, capsys):
    assert cross_lab.main(["--data", str(tmp_path), "--stains", "none"]) == 2
    assert "pbc" in capsys.readouterr().err  # names the missing folder


def test_protocol_sets(pbc_dir, cellavision_dir):
    sets = cross_lab.load_sets(pbc_dir.parent)
    assert len(sets["cellavision"][1]) == 100
    n = len(sets["pbc-train"][1]) + len(sets["pbc-test"][1])
    assert len(sets["pbc-test"][1]) == round(0.2 * n)
    assert not set(sets["pbc-train"][0]) & set(sets["pbc-test"][0])


def test_synthetic_protocol_rows():
    rows = cross_lab.synthetic_protocol(2, ["none", "white-balance"], "logreg", size=64)
    assert [r["stain"] for r in rows] == ["none", "white-balance"]
    for r in rows:
        assert all(0.0 <= r[k] <= 1.0 for k in cross_lab.SYNTH_CONDITIONS)
    table = cross_lab.markdown_synthetic(rows)
    assert table.count("\n") == 3 and "synth-scale1.4" in table


def test_classical_model_fits_its_subset_with_augmented_copies(tmp_path):
    """The ablation's model: every family extracted, the subset's columns classified, and
    ``fit`` itself adds the augmented copies (of the training images only)."""
    import pytest

    from wbc_classic.data.synthetic_sets import write_class_folders

    classes = ("lymphocyte", "monocyte")
    root = write_class_folders(tmp_path / "d", 3, classes=classes, size=96)
    paths = sorted(root.rglob("*.png"))
    y = np.array([cross_lab.PBC5_CLASSES.index(p.parent.name) for p in paths])
    model = cross_lab.classical_model("logreg", "no-colour",
                                      augmentation=cross_lab._augmentation("colour", 1.0),
                                      copies=2, cache=tmp_path / "c")
    model.fit(paths, y)
    assert model.metadata_["data"]["n_samples"] == 3 * len(paths)
    assert model.metadata_["augmentation"]["used"] == 2 * len(paths)
    kept = model.estimator_.pipeline_.named_steps["columns"].transformers_[0][2]
    names = np.asarray(model.feature_names_)
    np.testing.assert_array_equal(kept, np.flatnonzero(cross_lab.subset_mask(names,
                                                                             "no-colour")))
    pred = cross_lab.predicted(model, [*paths, tmp_path / "missing.png"])
    assert pred[-1] == -1 and set(pred[:-1]) <= {cross_lab.PBC5_CLASSES.index(c) for c in classes}
    assert cross_lab._augmentation("none", 1.0) is None
    with pytest.raises(ValueError, match="unknown augmentation"):
        cross_lab._augmentation("rainbow", 1.0)


def test_scores_carry_a_bootstrap_interval():
    y = np.array([0, 1, 2, 3, 4] * 20)
    p = y.copy()
    p[:10] = -1  # 10 cells given a class outside the five: wrong
    row = {"family": "deep", "model": "m", "stain": "-", "features": "-", "pbc-test": 1.0}
    cross_lab.score_into(row, "cellavision", y, p)
    assert row["cellavision"] == 0.9
    low, high = row["cellavision/ci"]
    assert 0.8 < low < 0.9 < high <= 0.97
    assert "0.900 [" in cross_lab.markdown([row])


def test_synthetic_protocol_deep_rows():
    import pytest

    pytest.importorskip("torch")
    rows = cross_lab.synthetic_protocol_deep(2, ["none"], "smallcnn", size=64, img_size=32,
                                             epochs=1)
    assert [r["stain"] for r in rows] == ["none"] and rows[0]["model"] == "smallcnn (deep)"
    assert all(0.0 <= rows[0][k] <= 1.0 for k in cross_lab.SYNTH_CONDITIONS)
    assert "smallcnn (deep)" in cross_lab.markdown_synthetic(rows)
