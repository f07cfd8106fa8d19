"""The leave-one-lab-out benchmark on tiny synthetic labs (fast, no real data)."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest

from benchmarks import lolo
from wbc_classic.data.synthetic_sets import write_class_folders, write_segmentation_set


@pytest.fixture(scope="module")
def labs_root(tmp_path_factory):
    """A 'pbc' class-folder lab (10 cells per class) and two segmentation-set labs (25 cells:
    5 per class) rendered with shifted stains, laid out as ../shared/data."""
    root = tmp_path_factory.mktemp("labs")
    write_class_folders(root / "pbc", 10, size=96, seed=1)
    write_segmentation_set(root / "cellavision_seg", 25, seed=2, size=96, stain_shift=0.5)
    write_segmentation_set(root / "jtsc_seg", 25, seed=3, size=96, stain_shift=-0.7,
                           scale=0.8)
    return root


def test_grid_holds_every_held_out_lab_and_in_lab_pbc(labs_root):
    labs = lolo.load_labs(labs_root)
    pairs = lolo.lolo_pairs(labs)
    names = [(p.train_name, p.test) for p in pairs]
    assert names[0] == ("pbc", "pbc")
    assert len(pairs) == 1 + 3 * 3  # per held-out lab: two single labs and the pair
    assert ("pbc+cellavision_seg", "jtsc_seg") in names
    assert ("cellavision_seg+jtsc_seg", "pbc") in names
    for p in pairs[1:]:
        assert p.test not in p.train
        assert not set(p.train_paths) & set(p.test_paths)
    # PBC trains on its 80/20 training part and is tested on the test part only
    pbc = labs["pbc"]
    assert len(pbc.train_y) == 40 and len(pbc.test_y) == 10
    assert not set(pbc.train_paths) & set(pbc.test_paths)
    assert lolo.lolo_pairs(labs, in_lab=False)[0].test == "pbc"


def test_feature_columns_select_flags_and_families():
    from features import DEFAULT_FAMILIES, FAMILIES

    slices = {"flags": slice(0, 3), "geometry": slice(3, 5), "colour": slice(5, 9)}
    m = lolo.feature_columns(slices, "geometry", 9)
    assert m.tolist() == [True] * 5 + [False] * 4
    assert lolo.feature_columns(slices, "geometry+colour", 9).all()
    assert lolo.spec_families("default") == tuple(DEFAULT_FAMILIES)
    assert lolo.spec_families("all") == tuple(FAMILIES)
    with pytest.raises(ValueError, match="not extracted"):
        lolo.feature_columns(slices, "geometry+texture", 9)
    with pytest.raises(ValueError, match="unknown"):
        lolo.feature_columns(slices, "geometry+bogus", 9)
    with pytest.raises(ValueError, match="unknown"):
        lolo.spec_families("flags")


def test_score_predictions_counts_other_classes_as_wrong():
    y = np.array([0, 0, 1, 1, 4, 4, 4, 4])
    p = np.array([0, -1, 1, 0, 4, 4, 4, -1])
    s = lolo.score_predictions(y, p, n_resamples=50)
    assert s["accuracy"]["value"] == pytest.approx(5 / 8)
    # mean over the classes present (0, 1, 4) of their sensitivities 1/2, 1/2, 3/4
    assert s["balanced_accuracy"]["value"] == pytest.approx((0.5 + 0.5 + 0.75) / 3)
    assert s["sensitivity"] == {"basophil": 0.5, "eosinophil": 0.5, "neutrophil": 0.75}
    assert s["other"] == 2
    cm = np.array(s["confusion"])
    assert cm.shape == (5, 6) and cm.sum() == 8 and cm[:, 5].sum() == 2
    lo, hi = s["accuracy"]["low"], s["accuracy"]["high"]
    assert 0 <= lo <= 5 / 8 <= hi <= 1


def test_main_writes_results_and_report(labs_root, tmp_path):
    out = tmp_path / "out"
    rc = lolo.main(["--data", str(labs_root), "--classifiers", "logreg",
                    "--features", "geometry,shape+relcolour", "--n-resamples", "20",
                    "--cache-dir", str(tmp_path / "cache"), "--out", str(out)])
    assert rc == 0
    res = json.loads((out / "results.json").read_text())
    rows = res["rows"]
    assert len(rows) == 10 * 2
    for r in rows:
        assert sum(map(sum, r["confusion"])) == r["n"]
        assert 0 <= r["accuracy"]["value"] <= 1
        assert r["features"] in ("geometry", "shape+relcolour")
    in_lab = [r for r in rows if r["train"] == "pbc" and r["test"] == "pbc"]
    assert len(in_lab) == 2 and all(r["n"] == 10 for r in in_lab)
    report = (out / "report.md").read_text()
    assert "| classical | logreg | geometry | pbc+cellavision_seg | jtsc_seg |" in report
    assert "Transfer summary" in report and "Confusion matrices" in report
    # the same command gives the same numbers
    assert lolo.main(["--data", str(labs_root), "--classifiers", "logreg",
                      "--features", "geometry,shape+relcolour", "--n-resamples", "20",
                      "--cache-dir", str(tmp_path / "cache"), "--out", str(out)]) == 0
    assert json.loads((out / "results.json").read_text()) == res


def test_rare_training_class_is_left_out_and_said(labs_root):
    labs = lolo.load_labs(labs_root)
    # keep a single basophil in the cellavision lab
    cv = labs["cellavision_seg"]
    keep = np.flatnonzero(cv.train_y != 0).tolist() + [int(np.flatnonzero(cv.train_y == 0)[0])]
    paths = tuple(cv.train_paths[i] for i in keep)
    labs["cellavision_seg"] = lolo.LabSet(cv.name, paths, cv.train_y[keep], paths,
                                          cv.train_y[keep])
    pair = [p for p in lolo.lolo_pairs(labs) if p.train_name == "cellavision_seg"][0]
    rng = np.random.default_rng(0)
    feats = {p: rng.normal(size=6) for p in {*pair.train_paths, *pair.test_paths}}
    slices = {"flags": slice(0, 3), "geometry": slice(3, 6)}
    (row,) = lolo.classical_rows([pair], feats, slices, feature_sets=["geometry"],
                                 classifiers=["logreg"], n_resamples=10, log=False)
    assert row["train_dropped"] == {"basophil": 1}
    assert row["train_n"] == len(pair.train_y) - 1


def test_bad_arguments_give_a_clear_error(labs_root, tmp_path, capsys):
    assert lolo.main(["--data", str(tmp_path / "nowhere")]) == 2
    assert "lab folder not found" in capsys.readouterr().err
    assert lolo.main(["--data", str(labs_root), "--classifiers", "nope"]) == 2
    assert "unknown classifiers" in capsys.readouterr().err


def test_deep_predictions_are_scored_on_the_held_out_labs(labs_root, tmp_path, capsys):
    labs = lolo.load_labs(labs_root)
    pairs = lolo.lolo_pairs(labs)
    test = [p for p in pairs if p.train_name == "pbc"]
    assert [p.test for p in test] == ["pbc", "cellavision_seg", "jtsc_seg"]
    csv_path = tmp_path / "net.csv"
    with open(csv_path, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["path", "status", "predicted_class"])
        for p in test:
            for path, y in zip(p.test_paths, p.test_y, strict=True):
                w.writerow([path, "ok", lolo.CLASSES5[y] if p.test != "jtsc_seg"
                            else "erythroblast"])
    rows = lolo.deep_rows([f"pbc={csv_path}"], pairs, n_resamples=10)
    by_test = {r["test"]: r for r in rows}
    assert by_test["pbc"]["accuracy"]["value"] == 1.0
    assert by_test["cellavision_seg"]["accuracy"]["value"] == 1.0
    assert by_test["jtsc_seg"]["accuracy"]["value"] == 0.0
    assert by_test["jtsc_seg"]["other"] == len(labs["jtsc_seg"].test_y)
    assert all(r["family"] == "deep" and r["model"] == "net" for r in rows)
    partial = tmp_path / "partial.csv"
    partial.write_text("\n".join(csv_path.read_text().splitlines()[:5]) + "\n")
    with pytest.raises(ValueError, match="partial.csv: no prediction"):
        lolo.deep_rows([f"pbc={partial}"], pairs)
    with pytest.raises(ValueError, match="unknown training set"):
        lolo.deep_rows([f"bogus={csv_path}"], pairs)
    with pytest.raises(ValueError, match="TRAIN=FILE"):
        lolo.deep_rows([str(csv_path)], pairs)


def test_adaptations_use_the_test_labs_statistics(labs_root):
    labs = lolo.load_labs(labs_root)
    pairs = [p for p in lolo.lolo_pairs(labs) if p.train_name == "pbc"]
    rng = np.random.default_rng(0)
    shift = {"pbc": 0.0, "cellavision_seg": 40.0, "jtsc_seg": -40.0}
    lab_of = {p: lab for lab, s in labs.items() for p in (*s.train_paths, *s.test_paths)}
    y_of = {p: y for s in labs.values() for p, y in zip((*s.train_paths, *s.test_paths),
                                                        (*s.train_y, *s.test_y), strict=True)}
    # class signal in two columns, the same lab-wide offset on every feature of a lab
    feats = {p: np.concatenate([[1, 0, 0], 3.0 * np.eye(5)[y_of[p]][:2] + rng.normal(
        0, 0.3, 2) + shift[lab_of[p]]]) for p in lab_of}
    slices = {"flags": slice(0, 3), "geometry": slice(3, 5)}
    rows = lolo.classical_rows(pairs, feats, slices, feature_sets=["geometry"],
                               classifiers=["logreg"],
                               adaptations=["none", "standardize", "coral"],
                               n_resamples=10, log=False)
    assert [r["model"] for r in rows[:3]] == ["logreg", "logreg+standardize", "logreg+coral"]
    acc = {(r["test"], r["adaptation"]): r["accuracy"]["value"] for r in rows}
    for lab in ("cellavision_seg", "jtsc_seg"):
        assert acc[(lab, "standardize")] > acc[(lab, "none")]
        assert acc[(lab, "coral")] > acc[(lab, "none")]
