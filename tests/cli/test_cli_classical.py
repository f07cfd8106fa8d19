"""``wbc-classic train / predict / count`` end to end on tiny synthetic data."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest

from wbc_classic.classical.modelfile import save as save_model
from wbc_classic.cli import build_parser, main
from wbc_classic.data.synthetic import make_smear
from wbc_classic.data.synthetic_sets import write_class_folders
from wbc_classic.io.images import read_image

CLASSES = ("eosinophil", "lymphocyte", "neutrophil")


def _read_csv(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A logreg model trained by the CLI on 3 synthetic classes x 8 images."""
    root = tmp_path_factory.mktemp("cli")
    data = write_class_folders(root / "data", 8, classes=CLASSES, size=96, seed=0)
    model = root / "model.skops"
    code = main(["train", "--data", str(data), "--classes", *CLASSES, "--classifier",
                 "logreg", "--out", str(model), "--cache-dir", str(root / "cache"),
                 "--cv", "2", "--test-split", "80/20", "--seed", "0"])
    assert code == 0
    return root, data, model


def test_train_writes_one_complete_model(trained, capsys):
    from wbc_classic.classical.modelfile import load

    root, _, model_path = trained
    model = load(model_path)
    assert tuple(model.classes_) == CLASSES
    meta = model.metadata_
    assert meta["classifier"] == "logreg"
    assert meta["data"]["n_images"] == 24 and meta["data"]["split_scheme"] == "80/20"
    assert 0.0 <= meta["cv_accuracy"] <= 1.0
    hold = meta["holdout"]
    assert hold["n"] == meta["data"]["n_test"] > 0
    assert set(hold["sensitivity"]) == set(CLASSES)
    assert list(root.glob("*.skops")) == [model_path]  # no stray temporary files


def test_predict_batch_with_bad_files_goes_on(trained, tmp_path, capsys):
    _, data, model_path = trained
    bad = tmp_path / "corrupt.jpg"
    bad.write_bytes(b"\xff\xd8\xff\xe0 definitely not a jpeg")
    out = tmp_path / "preds.csv"
    code = main(["predict", "--model", str(model_path), str(data / "lymphocyte"), str(bad),
                 str(tmp_path / "missing.png"), "--out", str(out)])
    assert code == 1
    rows = _read_csv(out)
    assert len(rows) == 8 + 2
    assert list(rows[0]) == ["path", "status", "predicted_class",
                             *[f"p_{c}" for c in CLASSES], "error", "note",
                             "shift_score", "shift_flag"]
    by_path = {Path(r["path"]).name: r for r in rows}
    for name in ("corrupt.jpg", "missing.png"):
        r = by_path[name]
        assert r["status"] == "error" and name in r["error"] and r["predicted_class"] == ""
    good = [r for r in rows if r["status"] == "ok"]
    assert len(good) == 8
    for r in good:
        p = np.array([float(r[f"p_{c}"]) for c in CLASSES])
        assert abs(p.sum() - 1) < 1e-4 and r["predicted_class"] == CLASSES[int(p.argmax())]
    assert "failed" in capsys.readouterr().err


def test_predict_all_ok_and_python_twin_agree(trained, tmp_path):
    import wbc_classic

    _, data, model_path = trained
    files = sorted((data / "neutrophil").glob("*.png"))[:3]
    out = tmp_path / "p.csv"
    assert main(["predict", "--model", str(model_path), *map(str, files),
                 "--out", str(out), "--n-jobs", "1"]) == 0
    rows = _read_csv(out)
    model = wbc_classic.load(model_path)  # the front door
    labels = model.predict([read_image(f) for f in files])
    assert [r["predicted_class"] for r in rows] == list(labels)
    proba = model.predict_proba(files)  # paths work too
    np.testing.assert_allclose(proba, [[float(r[f"p_{c}"]) for c in CLASSES] for r in rows],
                               atol=1e-6)


def test_training_and_prediction_features_are_identical(trained):
    """The cached training extraction and the prediction path compute the same numbers."""
    from wbc_classic.classical.modelfile import load

    root, data, model_path = trained
    model = load(model_path)
    files = sorted(data.rglob("*.png"))[::5]
    cached = model.set_params(cache_dir=root / "cache").extract(files)
    assert not cached.failures and cached.n_cached > 0  # written by `train`
    np.testing.assert_array_equal(cached.X, model.set_params(cache_dir=None).transform(files))


def test_predict_refuses_bad_model(tmp_path, capsys):
    fake = tmp_path / "model.skops"
    fake.write_bytes(b"not a model")
    img = tmp_path / "x.png"
    assert main(["predict", "--model", str(fake), str(img), "--out",
                 str(tmp_path / "p.csv")]) == 2
    assert "cannot load model file" in capsys.readouterr().err
    assert not (tmp_path / "p.csv").exists()


def test_count_fields(trained, tmp_path):
    from wbc_classic.io.atomic import atomic_write_bytes

    _, _, model_path = trained
    import cv2

    fields = []
    for i in range(2):
        f = make_smear(shape=(240, 320), n_leukocytes=2, classes=CLASSES, seed=i)
        path = tmp_path / f"field{i}.png"
        cv2.imwrite(str(path), cv2.cvtColor(f.image, cv2.COLOR_RGB2BGR))
        fields.append(path)
    broken = tmp_path / "broken.png"
    atomic_write_bytes(broken, b"\x89PNG\r\n\x1a\n broken")
    out = tmp_path / "counts"
    code = main(["count", "--model", str(model_path), *map(str, fields), str(broken),
                 "--out", str(out)])
    assert code == 1  # the broken field failed, the others were counted
    report = json.loads((out / "counts.json").read_text())
    assert report["classes"] == list(CLASSES)
    status = {Path(e["image"]).name: e["status"] for e in report["images"]}
    assert status == {"field0.png": "ok", "field1.png": "ok", "broken.png": "error"}
    overall = report["overall"]
    per_image = sum(e["n_cells"] for e in report["images"])
    assert overall["n_cells"] == per_image == sum(overall["counts"].values())
    if overall["n_cells"]:
        assert abs(sum(overall["percentages"].values()) - 100) < 0.1
    rows = _read_csv(out / "counts.csv")
    assert [r["image"] for r in rows][-1] == "ALL"
    assert int(rows[-1]["n_cells"]) == overall["n_cells"]
    cells = _read_csv(out / "cells.csv")
    assert len(cells) >= overall["n_cells"]
    # every cell has a shift score and flag; the report counts the flagged ones
    assert all(c["shift_score"] and c["shift_flag"] in ("0", "1") for c in cells)
    assert report["shift"]["n_scored"] == overall["n_cells"]
    assert report["shift"]["n_flagged"] == sum(c["shift_flag"] == "1" for c in cells
                                               if c["counted"] == "True")
    assert report["shift"]["summary"].startswith("shift")
    for path in fields:
        drawn = read_image(out / "annotated" / f"{path.stem}.png")
        assert drawn.shape == (240, 320, 3)


def test_count_rescale_reports_boxes_in_field_pixels(trained, tmp_path):
    import cv2

    _, _, model_path = trained
    f = make_smear(shape=(120, 160), n_leukocytes=1, classes=CLASSES, seed=3, scale=0.5)
    path = tmp_path / "small.png"
    cv2.imwrite(str(path), cv2.cvtColor(f.image, cv2.COLOR_RGB2BGR))
    out = tmp_path / "counts"
    assert main(["count", "--model", str(model_path), str(path), "--out", str(out),
                 "--rescale", "2", "--no-images"]) == 0
    assert json.loads((out / "counts.json").read_text())["rescale"] == 2.0
    for row in _read_csv(out / "cells.csv"):
        assert 0 <= int(row["row0"]) < int(row["row1"]) <= 120
        assert 0 <= int(row["col0"]) < int(row["col1"]) <= 160
    assert not (out / "annotated").exists()
    assert main(["count", "--model", str(model_path), str(path), "--out", str(out),
                 "--rescale", "0"]) == 2


def test_help_shows_examples(capsys):
    parser = build_parser()
    for cmd in ("train", "predict", "count"):
        with pytest.raises(SystemExit):
            parser.parse_args([cmd, "--help"])
        assert f"wbc-classic {cmd}" in capsys.readouterr().out


def test_train_with_stain_normaliser_predicts_the_same_as_python(trained, tmp_path):
    """``--stain``: fitted at training, saved, and the training features equal predict's."""
    from wbc_classic.classical.modelfile import load

    root, data, _ = trained
    model_path = tmp_path / "stain.skops"
    assert main(["train", "--data", str(data), "--classes", *CLASSES, "--classifier",
                 "logreg", "--out", str(model_path), "--cache-dir", str(root / "cache"),
                 "--cv", "0", "--stain", "reinhard"]) == 0
    model = load(model_path)
    assert model.stain_ is not None and model.stain_.name == "reinhard"
    files = sorted(data.rglob("*.png"))[::6]
    cached = model.set_params(cache_dir=root / "cache").extract(files)
    assert not cached.failures and cached.n_cached == len(files)  # written by `train`
    np.testing.assert_allclose(cached.X, model.set_params(cache_dir=None).transform(files),
                               rtol=1e-6)
    plain = load(trained[2]).set_params(cache_dir=root / "cache").extract(files)
    assert not np.allclose(plain.X, cached.X)  # a separate cache entry, not the plain one


def test_train_with_augmented_copies(trained, tmp_path, capsys):
    """``--augment-copies``: copies of the training images only, recorded in the model."""
    from wbc_classic.classical.modelfile import load

    root, data, _ = trained
    model_path = tmp_path / "aug.skops"
    assert main(["train", "--data", str(data), "--classes", *CLASSES, "--classifier",
                 "logreg", "--out", str(model_path), "--cache-dir", str(root / "cache"),
                 "--cv", "2", "--test-split", "80/20", "--augment-copies", "2",
                 "--augment-no-scale"]) == 0
    out = capsys.readouterr().out
    model = load(model_path)
    meta = model.metadata_
    n_train = meta["data"]["n_train"]
    assert f"augmentation: {2 * n_train} of {2 * n_train} augmented copies used" in out
    assert meta["augmentation"]["copies"] == 2
    assert "HEDJitter" in meta["augmentation"]["transforms"]
    assert "ScaleJitter" not in meta["augmentation"]["transforms"]
    assert meta["data"]["n_samples"] == 3 * n_train
    assert meta["holdout"]["n"] == meta["data"]["n_test"]  # the test part is never augmented


def test_wbcmodel_fit_with_augmentation_keeps_copies_in_one_fold():
    from wbc_classic.classical.model import WBCModel
    from wbc_classic.data.synthetic import make_cells
    from wbc_classic.preprocess.augment import default_augmentation

    cells = make_cells(4, classes=CLASSES, size=96, seed=0)
    images, labels = list(cells[0]), [CLASSES[i] for i in cells[1]]
    model = WBCModel("logreg", augmentation=default_augmentation(), augment_copies=1, cv=2)
    model.fit(images, labels)
    assert model.metadata_["data"]["n_samples"] == 24
    assert model.metadata_["augmentation"]["copies"] == 1
    assert model.metadata_["cv_folds"] == 2
    assert model.predict_proba(images[:2]).shape == (2, 3)


def test_train_with_density_family_round_trips(trained, tmp_path):
    """The opt-in density family is saved with the model and used again at prediction."""
    from wbc_classic.classical.modelfile import load

    root, data, _ = trained
    model_path = tmp_path / "density.skops"
    assert main(["train", "--data", str(data), "--classes", *CLASSES, "--classifier",
                 "logreg", "--out", str(model_path), "--cache-dir", str(root / "cache"),
                 "--cv", "0", "--families", "geometry", "density"]) == 0
    model = load(model_path)
    assert any(n.startswith("od_") for n in model.feature_names_)
    assert not any(n.startswith("colour_") for n in model.feature_names_)
    files = sorted(data.rglob("*.png"))[::6]
    cached = model.set_params(cache_dir=root / "cache").extract(files)
    assert not cached.failures and cached.n_cached == len(files)
    np.testing.assert_allclose(cached.X, model.set_params(cache_dir=None).transform(files),
                               rtol=1e-6)
    with pytest.raises(SystemExit):
        build_parser().parse_args(["train", "--data", str(data), "--out", "m.skops",
                                   "--families", "bogus"])


def test_model_records_its_pixel_scale_and_resamples_other_scales(tmp_path):
    from wbc_classic.classical.model import WBCModel
    from wbc_classic.classical.modelfile import load
    from wbc_classic.data.synthetic import make_cells
    from wbc_classic.preprocess.scale import rescale_image

    images, y, _ = make_cells(3, classes=CLASSES, size=160, seed=0)
    images = list(images)
    model = WBCModel("logreg", cv=0).fit(images, [CLASSES[i] for i in y])
    ref = model.um_per_pixel_
    assert ref is not None and 0.05 < ref < 0.5
    assert model.rescale_factor(None) == 1.0
    assert model.rescale_factor(2 * ref) == pytest.approx(2.0)
    # "these images are at twice the model's um/px" = upsample them by 2 first
    np.testing.assert_allclose(model.predict_proba(images[:2], um_per_pixel=2 * ref),
                               model.predict_proba([rescale_image(im, 2.0)
                                                    for im in images[:2]]))
    for bad in (0.0, -1.0, float("nan")):
        with pytest.raises(ValueError, match="positive"):
            model.rescale_factor(bad)
    path = save_model(model, tmp_path / "m.skops")
    again = load(path)
    assert again.um_per_pixel_ == pytest.approx(ref)
    again.um_per_pixel_ = None  # e.g. a model file from before scales were recorded
    with pytest.raises(ValueError, match="no reference pixel scale"):
        again.rescale_factor(0.1)


def test_predict_um_per_pixel_option(trained, tmp_path, capsys):
    from wbc_classic.classical.modelfile import load

    _, data, model_path = trained
    assert load(model_path).um_per_pixel_ is not None
    out = tmp_path / "p.csv"
    files = [str(data / "lymphocyte")]
    assert main(["predict", "--model", str(model_path), *files, "--out", str(out),
                 "--um-per-pixel", "auto"]) == 0
    assert "um/px -> model's" in capsys.readouterr().out
    assert len(_read_csv(out)) == 8
    assert main(["predict", "--model", str(model_path), *files, "--out", str(out),
                 "--um-per-pixel", "banana"]) == 2  # usage error (README "Exit codes")
    assert "number or 'auto'" in capsys.readouterr().err
    assert main(["predict", "--model", str(model_path), *files, "--out", str(out),
                 "--um-per-pixel", "-0.1"]) == 2


def test_with_augmented_copies_keeps_rows_labels_and_sources_aligned():
    from wbc_classic.classical.model import with_augmented_copies

    X = np.array([[0.0], [1.0], [2.0]])
    y = np.array([5, 6, 7])
    X_copies = np.array([[10.0], [11.0], [12.0], [20.0], [21.0], [22.0]])
    ok = np.array([True, False, True, True, True, False])
    Xs, ys, groups = with_augmented_copies(X, y, X_copies, 2, ok)
    np.testing.assert_array_equal(Xs.ravel(), [0, 1, 2, 10, 12, 20, 21])
    np.testing.assert_array_equal(ys, [5, 6, 7, 5, 7, 5, 6])
    np.testing.assert_array_equal(groups, [0, 1, 2, 0, 2, 0, 1])


def test_count_classifies_field_cells_on_stain_normalised_pixels(trained, tmp_path):
    """Issue 11: ``count`` with a ``--stain`` model must normalise the field cells' pixels
    the way training did (it classified them on raw pixels)."""
    import cv2

    import wbc_classic
    from segmentation import segment_field
    from wbc_classic.classical.model import segmenter_params

    root, data, _ = trained
    model_path = tmp_path / "stain.skops"
    assert main(["train", "--data", str(data), "--classes", *CLASSES, "--classifier",
                 "logreg", "--out", str(model_path), "--cache-dir", str(root / "cache"),
                 "--cv", "0", "--stain", "reinhard", "--families", "colour"]) == 0
    model = wbc_classic.load(model_path)
    field = make_smear(shape=(240, 320), n_leukocytes=2, classes=CLASSES, seed=5,
                       stain_shift=1.0).image
    path = tmp_path / "field.png"
    cv2.imwrite(str(path), cv2.cvtColor(field, cv2.COLOR_RGB2BGR))
    cells = segment_field(read_image(path), segmenter_params(model.segment_params))
    assert cells
    pairs = [(c.crop, c.segmentation) for c in cells]
    normalised = model.predict_proba_features(np.asarray(model.extractor_.transform(
        [(model.stain_.transform(crop), seg) for crop, seg in pairs]), np.float32))
    raw = model.predict_proba_features(np.asarray(model.extractor_.transform(pairs),
                                                  np.float32))
    assert not np.allclose(raw, normalised, atol=1e-5)  # the normaliser matters here

    out = tmp_path / "counts"
    assert main(["count", "--model", str(model_path), str(path), "--out", str(out),
                 "--no-images"]) == 0
    rows = _read_csv(out / "cells.csv")
    counted = np.array([[float(r[f"p_{c}"]) for c in CLASSES] for r in rows])
    np.testing.assert_allclose(counted, normalised, atol=2e-6)


def test_count_takes_n_jobs_and_um_per_pixel_like_predict(trained, tmp_path, capsys):
    import cv2

    _, _, model_path = trained
    fields = []
    for i in range(3):
        f = make_smear(shape=(240, 320), n_leukocytes=2, classes=CLASSES, seed=10 + i)
        path = tmp_path / f"field{i}.png"
        cv2.imwrite(str(path), cv2.cvtColor(f.image, cv2.COLOR_RGB2BGR))
        fields.append(str(path))
    reports = []
    for jobs in ("1", "2"):
        assert main(["count", "--model", str(model_path), *fields, "--out",
                     str(tmp_path / f"c{jobs}"), "--n-jobs", jobs, "--no-images",
                     "--json"]) == 0
        reports.append(json.loads(capsys.readouterr().out))
    assert reports[0]["images"] == reports[1]["images"]  # the same counts in any process
    assert reports[0]["overall"]["n_cells"] > 0
    assert main(["count", "--model", str(model_path), *fields, "--out", str(tmp_path / "x"),
                 "--um-per-pixel", "0.1", "--rescale", "2"]) == 2
    assert "not both" in capsys.readouterr().err
    assert main(["count", "--model", str(model_path), *fields, "--out", str(tmp_path / "y"),
                 "--um-per-pixel", "-3"]) == 2
    assert "--um-per-pixel" in capsys.readouterr().err


def _write_fields(tmp_path, n, seed0=20):
    import cv2

    paths = []
    for i in range(n):
        f = make_smear(shape=(240, 320), n_leukocytes=3, classes=CLASSES, seed=seed0 + i)
        path = tmp_path / f"adapt_field{i}.png"
        cv2.imwrite(str(path), cv2.cvtColor(f.image, cv2.COLOR_RGB2BGR))
        paths.append(str(path))
    return paths


def test_count_adapt_fits_on_every_fields_cells_then_counts(trained, tmp_path, capsys):
    _, _, model_path = trained
    fields = _write_fields(tmp_path, 10)
    reports = []
    for jobs in ("1", "2"):
        assert main(["count", "--model", str(model_path), *fields, "--out",
                     str(tmp_path / f"a{jobs}"), "--adapt", "--method", "standardize",
                     "--n-jobs", jobs, "--json"]) == 0
        out, err = capsys.readouterr()
        reports.append(json.loads(out))  # the adaptation line goes to stderr with --json
        assert "adapted to the" in err and "leukocytes of 10 fields (standardize)" in err
    report = reports[0]
    assert [{k: v for k, v in e.items() if k != "annotated"} for e in report["images"]] == \
        [{k: v for k, v in e.items() if k != "annotated"} for e in reports[1]["images"]]
    n = report["overall"]["n_cells"]
    assert report["adaptation"]["method"] == "standardize"
    assert report["adaptation"]["n_cells"] == n >= 20
    assert report["shift"]["summary"].startswith("shift")
    for path in fields:  # drawn from the field read again
        assert read_image(tmp_path / "a1" / "annotated" / f"{Path(path).stem}.png").shape \
            == (240, 320, 3)
    plain = tmp_path / "plain"
    assert main(["count", "--model", str(model_path), *fields, "--out", str(plain),
                 "--no-images", "--json"]) == 0
    assert "adaptation" not in json.loads(capsys.readouterr().out)


def test_count_adapt_with_too_few_cells_stops_with_a_message(trained, tmp_path, capsys):
    _, _, model_path = trained
    fields = _write_fields(tmp_path, 2)
    assert main(["count", "--model", str(model_path), *fields, "--out", str(tmp_path / "c"),
                 "--adapt"]) == 2
    err = capsys.readouterr().err
    assert "--adapt" in err and "at least 20" in err and "2 fields" in err


def test_count_with_workers_ends_when_its_work_is_done(trained, tmp_path):
    """A joblib generator left suspended kept ``count --n-jobs 2`` alive for its workers'
    five-minute idle timeout after the outputs were written."""
    import subprocess
    import sys

    _, _, model_path = trained
    fields = _write_fields(tmp_path, 2)
    done = subprocess.run([sys.executable, "-m", "wbc_classic", "count", "--model",
                           str(model_path), *fields, "--out", str(tmp_path / "c"),
                           "--no-images", "--n-jobs", "2"], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "c" / "counts.json").is_file()
    assert "leaked" not in done.stderr  # no shared-memory files left by killed workers
