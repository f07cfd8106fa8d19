"""``wbc-classic train`` with several labelled sources, lab names, weights and --per-class."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from wbc_classic.cli import main
from wbc_classic.cli.train import Source, source_argument
from wbc_classic.data.synthetic_sets import write_class_folders, write_segmentation_set

CLASSES = ("eosinophil", "lymphocyte", "neutrophil")


def test_source_argument_parses_lab_folder_and_weight(tmp_path):
    assert source_argument("pbc=../data/pbc:2.5") == Source("pbc", tmp_path.__class__(
        "../data/pbc"), 2.5)
    plain = source_argument(str(tmp_path / "jtsc_seg"))
    assert plain.lab == "jtsc_seg" and plain.weight == 1.0
    for bad in ("pbc=x:0", "pbc=x:-1", "pbc=:3"):
        with pytest.raises(argparse.ArgumentTypeError):
            source_argument(bad)


@pytest.fixture(scope="module")
def sources(tmp_path_factory):
    root = tmp_path_factory.mktemp("sources")
    a = write_class_folders(root / "a", 8, classes=CLASSES, size=96, seed=0)
    b = write_segmentation_set(root / "b", 12, seed=1, size=96, classes=CLASSES)
    return root, a, b


def test_train_on_two_labs_records_them_in_the_model(sources, capsys):
    from wbc_classic.classical.modelfile import load

    root, a, b = sources
    out = root / "m.skops"
    code = main(["train", "--data", f"main={a}:1", "--data", f"local={b}:4",
                 "--per-class", "local=2", "--classes", *CLASSES, "--classifier", "logreg",
                 "--cv", "0", "--out", str(out), "--cache-dir", str(root / "cache")])
    assert code == 0, capsys.readouterr().err
    meta = load(out).metadata_
    labs = {s["lab"]: s for s in meta["data"]["sources"]}
    assert set(labs) == {"main", "local"}
    assert labs["local"]["n_images"] == 6 and labs["local"]["weight"] == 4.0
    assert all(v == 2 for v in labs["local"]["counts"].values())
    assert labs["main"]["n_images"] == 24 and meta["weighted"] is True


def test_align_makes_a_model_for_one_lab_and_says_whether_it_kept_the_map(sources, capsys):
    from wbc_classic.classical.modelfile import load

    root, a, b = sources
    out = root / "aligned.skops"
    code = main(["train", "--data", f"main={a}:1", "--data", f"local={b}:4",
                 "--per-class", "local=4", "--align", "local", "--classes", *CLASSES,
                 "--classifier", "logreg", "--cv", "0", "--out", str(out),
                 "--cache-dir", str(root / "cache")])
    printed = capsys.readouterr().out
    assert code == 0
    line = next(x for x in printed.splitlines() if x.startswith("alignment:"))
    ad = load(out).metadata_["adaptation"]
    assert ad["method"] == "class-means" and ad["n_cells"] == 12
    assert ad["check"]["folds"] == 4 and "cross-validated on 12 of local's" in line
    assert ("for local's images" in line) == ad["applied"]
    assert ("alignment_" in load(out).__dict__) == ad["applied"]
    # a lab that is not a source, or a single source (no reference to align to)
    for data in ([f"main={a}", f"local={b}"], [f"main={a}"]):
        lab = "nowhere" if len(data) == 2 else "main"
        argv = ["train", *(x for d in data for x in ("--data", d)), "--align", lab,
                "--classes", *CLASSES, "--out", str(root / "x.skops"), "--cv", "0",
                "--classifier", "logreg", "--no-cache"]
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert f"--align {lab}" in err and "Traceback" not in err


def test_a_later_source_may_hold_some_of_the_classes(sources, tmp_path, capsys):
    from wbc_classic.classical.modelfile import load
    from wbc_classic.cli.train import load_sources

    root, a, _ = sources
    # a lab that labelled only its lymphocytes and neutrophils, in class folders
    some = write_class_folders(tmp_path / "some", 3, classes=("neutrophil", "lymphocyte"),
                               size=96, seed=7)
    (some / "smudge").mkdir()  # an empty folder of a class nobody asked for is ignored
    out = tmp_path / "m.skops"
    code = main(["train", "--data", f"main={a}", "--data", f"some={some}:3", "--classes",
                 *CLASSES, "--classifier", "logreg", "--cv", "0", "--out", str(out),
                 "--no-cache"])
    printed = capsys.readouterr().out
    assert code == 0
    assert "none of eosinophil (learnt from the other sources)" in printed
    labs = {s["lab"]: s for s in load(out).metadata_["data"]["sources"]}
    assert labs["some"]["counts"] == {"eosinophil": 0, "lymphocyte": 3, "neutrophil": 3}
    assert labs["some"]["missing"] == ["eosinophil"] and labs["main"]["missing"] == []
    # its images carry the labels of their folders, in the order the classes are given
    order = ("neutrophil", "eosinophil", "lymphocyte")
    data, weight, lab, _ = load_sources([Source("main", a, 1.0), Source("some", some, 3.0)],
                                        order)
    assert data.classes == order
    mine = [(p.parent.name, order[y]) for p, y, w in zip(data.paths, data.y, weight,
                                                         strict=True) if w == 3.0]
    assert [c for _, c in mine] == ["neutrophil"] * 3 + ["lymphocyte"] * 3
    assert all(folder == c for folder, c in mine)
    assert all(p.parent.name == order[y] for p, y in zip(data.paths, data.y, strict=True))
    # without --classes the classes are the union of the sources' (an empty folder is one)
    (some / "smudge").rmdir()
    data, *_ = load_sources([Source("some", some, 1.0), Source("main", a, 1.0)], None)
    assert data.classes == tuple(sorted(CLASSES))
    # the first source is the reference: it must hold every class
    assert main(["train", "--data", f"some={some}", "--data", f"main={a}", "--classes",
                 *CLASSES, "--classifier", "logreg", "--cv", "0",
                 "--out", str(tmp_path / "x.skops"), "--no-cache"]) == 2
    assert "the first --data source must hold every class" in capsys.readouterr().err
    # ... and only that message says so
    assert main(["train", "--data", f"none={tmp_path / 'nowhere'}", "--data", f"main={a}",
                 "--classes", *CLASSES, "--classifier", "logreg", "--cv", "0",
                 "--out", str(tmp_path / "x.skops"), "--no-cache"]) == 2
    assert "must hold every class" not in capsys.readouterr().err


def test_bad_sources_give_one_line_and_exit_2(sources, tmp_path, capsys):
    root, a, b = sources
    one = write_class_folders(tmp_path / "one", 4, classes=("lymphocyte",), size=96)
    cases = [
        (["--data", str(one)], "only one class"),
        (["--data", f"x={a}", "--data", f"x={b}"], "same lab name"),
        (["--data", f"x={a}", "--per-class", "y=3"], "no --data source named 'y'"),
        (["--data", f"x={a}", "--data", f"y={one}", "--classes", "eosinophil", "neutrophil"],
         "no image of the classes eosinophil, neutrophil"),
        (["--data", str(tmp_path / "missing")], "missing"),
    ]
    for extra, message in cases:
        code = main(["train", *extra, "--out", str(tmp_path / "m.skops"), "--cv", "0",
                     "--classifier", "logreg", "--no-cache"])
        err = capsys.readouterr().err
        assert code == 2 and message in err, (extra, err)
        assert "Traceback" not in err


def test_adapt_writes_a_model_and_refuses_unusable_batches(sources, tmp_path, capsys):
    import cv2
    import numpy as np

    from wbc_classic.classical.modelfile import load

    root, a, b = sources
    model = tmp_path / "m.skops"
    assert main(["train", "--data", str(a), "--classifier", "logreg", "--cv", "0",
                 "--out", str(model), "--no-cache"]) == 0
    lab = write_class_folders(tmp_path / "lab", 8, classes=CLASSES, size=96, seed=5,
                              stain_shift=1.0)
    out = tmp_path / "adapted.skops"
    for method in ("standardize", "coral", "class-means"):
        code = main(["adapt", "--model", str(model), "--images", str(lab), "--out", str(out),
                     "--method", method, "--no-cache"])
        assert code == 0, capsys.readouterr().err
        adapted = load(out)
        assert adapted.alignment_.method == method and adapted.alignment_.n_cells == 24
        assert adapted.metadata_["adaptation"]["n_images"] == 24
    # the default, auto: the class-mean map when the shift warning flags half the lab's
    # cells or more, else no map
    auto = tmp_path / "auto.skops"
    assert main(["adapt", "--model", str(model), "--images", str(lab), "--out", str(auto),
                 "--no-cache"]) == 0
    said = capsys.readouterr().out
    info = load(auto).metadata_["adaptation"]
    assert info["method"] == "auto"
    assert info["chosen"] == ("class-means" if info["flagged"] >= 0.5 else "none")
    assert f"auto: {info['chosen']}; {100 * info['flagged']:.0f} % of the cells flagged" in said
    assert ("alignment_" in load(auto).__dict__) == (info["chosen"] == "class-means")
    # the adapted model differs from the original on the lab's cells
    paths = sorted(str(p) for p in lab.rglob("*.png"))
    X = load(model).transform(paths)
    assert not np.allclose(load(model).predict_proba_features(X),
                           adapted.predict_proba_features(X))
    preds = tmp_path / "p.csv"
    assert main(["predict", "--model", str(model), str(lab), "--out", str(preds),
                 "--adapt", "--no-cache"]) == 0
    assert "adapted to 24 of 24 images" in capsys.readouterr().out
    # unusable batches: 3 images; 25 images without a leukocyte
    three = tmp_path / "three"
    three.mkdir()
    for p in paths[:3]:
        (three / Path(p).name).write_bytes(Path(p).read_bytes())
    blank = tmp_path / "blank"
    blank.mkdir()
    for i in range(25):
        cv2.imwrite(str(blank / f"{i}.png"), np.full((64, 64, 3), 235, np.uint8))
    for folder, message in ((three, "at least 20 images"), (blank, "hold a leukocyte")):
        for argv in (["adapt", "--model", str(model), "--images", str(folder), "--out",
                      str(tmp_path / "x.skops")],
                     ["predict", "--model", str(model), str(folder), "--out",
                      str(tmp_path / "x.csv"), "--adapt"]):
            code = main([*argv, "--no-cache"])
            err = capsys.readouterr().err
            assert code == 2 and message in err and "Traceback" not in err, (argv, err)
