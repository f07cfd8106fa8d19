"""The saved-model format: round trip, refusal of tampered or foreign files, versions."""

from __future__ import annotations

import json
import os
import pickle
import warnings
import zipfile
from pathlib import Path

import numpy as np
import pytest
import skops.io as sio

from features import FeatureExtractor
from wbc_classic.classical.classifiers import CLASSIFIERS, make_classifier
from wbc_classic.classical.model import WBCModel, full_segment_params
from wbc_classic.classical.modelfile import (
    ModelFileError,
    ModelVersionWarning,
    _from_dict,
    known_types,
    load,
    to_dict,
)
from wbc_classic.classical.modelfile import load as load_model
from wbc_classic.classical.modelfile import save as save_model

CLASSES = ["basophil", "eosinophil", "lymphocyte"]
#: keep the ensembles small so the tests stay fast
SMALL = {"random-forest": {"n_estimators": 20}, "xgboost": {"n_estimators": 30}}


def _data(n_features: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    y = np.repeat(np.arange(3), [10, 14, 12])
    X = rng.normal(size=(y.size, n_features)) + y[:, None] * 0.8
    return X.astype(np.float32), y


@pytest.fixture(scope="module")
def extractor():
    return FeatureExtractor(families=("geometry",))


def _fitted(name: str, extractor, cv: int = 0) -> tuple[WBCModel, np.ndarray]:
    X, y = _data(len(extractor.get_feature_names_out()))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = WBCModel(name, extractor=extractor, seed=0, classes=CLASSES, cv=cv,
                         classifier_params={"params": SMALL.get(name)}).fit_features(X, y)
    return model, X


@pytest.fixture(scope="module")
def saved(tmp_path_factory, extractor):
    model, X = _fitted("logreg", extractor, cv=2)
    path = tmp_path_factory.mktemp("model") / "model.skops"
    save_model(model, path)
    return model, X, path


@pytest.mark.parametrize("name", ["svm", "xgboost", "knn", "random-forest", "naive-bayes"])
def test_round_trip_identical_probabilities(name, extractor, tmp_path):
    model, X = _fitted(name, extractor)
    path = save_model(model, tmp_path / "m.skops")
    again = load(path)
    np.testing.assert_array_equal(model.predict_proba_features(X),
                                  again.predict_proba_features(X))
    assert tuple(again.classes_) == tuple(CLASSES)


def test_round_trip_keeps_everything(saved):
    model, _, path = saved
    again = load_model(path)
    assert tuple(again.classes_) == tuple(CLASSES)
    assert again.feature_names_ == model.feature_names_
    assert again.extractor.get_params() == model.extractor.get_params()
    from segmentation.params import SegmenterParams

    assert SegmenterParams(**again.segment_params) == SegmenterParams()
    assert again.versions_ == model.versions_ and "scikit-learn" in again.versions_
    meta = again.metadata_
    assert meta["classifier"] == "logreg" and meta["data"]["counts"]["eosinophil"] == 14
    assert 0.0 <= meta["cv_accuracy"] <= 1.0 and meta["cv_folds"] == 2
    assert meta["file"] == str(path)


def test_save_is_atomic_and_overwrites(saved, tmp_path):
    model, _, _ = saved
    target = tmp_path / "m.skops"
    target.write_bytes(b"old")
    save_model(model, target)
    assert zipfile.is_zipfile(target)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.skops"]


def test_unfitted_model_cannot_be_saved(tmp_path):
    with pytest.raises(RuntimeError, match="not fitted"):
        save_model(WBCModel("svm"), tmp_path / "m.skops")
    assert not (tmp_path / "m.skops").exists()


def test_missing_file(tmp_path):
    path = tmp_path / "nope.skops"
    with pytest.raises(ModelFileError, match="nope.skops.*file not found") as info:
        load(path)
    assert info.value.path == path


def test_random_bytes_refused(tmp_path):
    path = tmp_path / "random.skops"
    path.write_bytes(np.random.default_rng(0).bytes(2048))
    with pytest.raises(ModelFileError, match="random.skops.*not a zip"):
        load(path)


def test_empty_and_directory_refused(tmp_path):
    (tmp_path / "empty.skops").write_bytes(b"")
    with pytest.raises(ModelFileError, match="empty"):
        load(tmp_path / "empty.skops")
    with pytest.raises(ModelFileError, match="directory"):
        load(tmp_path)


def test_pickle_refused_and_never_unpickled(tmp_path, monkeypatch):
    path = tmp_path / "model.skops"
    path.write_bytes(pickle.dumps({"format": "wbc-classic/model"}))
    monkeypatch.setattr(pickle, "loads", lambda *a, **k: pytest.fail("unpickled"))
    with pytest.raises(ModelFileError, match="pickle"):
        load(path)


def _rewrite_schema(src: Path, dst: Path, edit) -> None:
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w") as zout:
        for item in zin.infolist():
            data = zin.read(item.filename)
            if item.filename == "schema.json":
                schema = json.loads(data)
                edit(schema)
                data = json.dumps(schema).encode()
            zout.writestr(item, data)


def test_injected_untrusted_function_refused(saved, tmp_path, monkeypatch):
    _, _, path = saved
    bad = tmp_path / "tampered.skops"

    def inject(schema):
        schema["content"]["metadata"] = {"__class__": "system", "__module__": "os",
                                         "__loader__": "FunctionNode", "__id__": 1}

    _rewrite_schema(path, bad, inject)
    monkeypatch.setattr(os, "system", lambda *a: pytest.fail("os.system was called"))
    with pytest.raises(ModelFileError, match=r"tampered.skops.*refused.*os\.system"):
        load(bad)


def test_injected_unknown_class_refused(saved, tmp_path):
    _, _, path = saved
    bad = tmp_path / "tampered.skops"

    def inject(schema):
        pipe = schema["content"]["pipeline"]
        pipe["__module__"], pipe["__class__"] = "subprocess", "Popen"

    _rewrite_schema(path, bad, inject)
    with pytest.raises(ModelFileError, match=r"subprocess\.Popen"):
        load(bad)


def test_corrupt_archive_refused(saved, tmp_path):
    _, _, path = saved
    bad = tmp_path / "cut.skops"
    bad.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(ModelFileError, match="cut.skops"):
        load(bad)


def test_other_skops_object_refused(tmp_path):
    path = tmp_path / "plain.skops"
    sio.dump(make_classifier("logreg"), path)
    with pytest.raises(ModelFileError, match="not a wbc-classic model"):
        load(path)


def test_version_mismatch_warns(extractor, tmp_path):
    model, X = _fitted("logreg", extractor)
    model.versions_["scikit-learn"] = "0.20.0"
    path = save_model(model, tmp_path / "old.skops")
    with pytest.warns(ModelVersionWarning, match="scikit-learn 0.20.0"):
        again = load(path)
    np.testing.assert_array_equal(again.predict_proba_features(X),
                                  model.predict_proba_features(X))


def test_feature_drift_refused(extractor, tmp_path):
    model, _ = _fitted("logreg", extractor)
    model.feature_names_ = [*model.feature_names_[:-1], "renamed"]
    path = save_model(model, tmp_path / "drift.skops")
    with pytest.raises(ModelFileError, match="retrain"):
        load(path)


def test_known_types_cover_every_classifier():
    """Everything our pipelines write must be in the explicit trusted list, nothing more."""
    X, y = _data(8)
    seen: set[str] = set()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for name in CLASSIFIERS:
            clf = make_classifier(name, feature_selection="univariate", k=4,
                                  params=SMALL.get(name)).fit(X, y)
            seen |= set(sio.get_untrusted_types(data=sio.dumps(clf)))
    missing = seen - known_types()
    assert not missing, f"add to known_types(): {sorted(missing)}"
    assert not any(t.startswith(("os.", "builtins.eval", "subprocess.")) for t in known_types())


def test_labels_as_names_and_missing_class(extractor, tmp_path):
    X, y = _data(len(extractor.get_feature_names_out()))
    names = np.asarray(CLASSES)[y]
    model = WBCModel("logreg", extractor=extractor, cv=0).fit_features(X, names)
    assert tuple(model.classes_) == tuple(sorted(CLASSES))
    # a class with no training sample still gets a (zero) probability column
    model = WBCModel("logreg", extractor=extractor, classes=["monocyte", *CLASSES],
                     cv=0).fit_features(X, y + 1)
    proba = model.predict_proba_features(X)
    assert proba.shape == (len(y), 4) and np.all(proba[:, 0] == 0)
    # ... also after a round trip (the file maps the pipeline's columns to the names)
    again = load(save_model(model, tmp_path / "m.skops"))
    np.testing.assert_array_equal(again.predict_proba_features(X), proba)
    with pytest.raises(ValueError, match="classes"):
        WBCModel("logreg", extractor=extractor).fit_features(X, y)


def test_fit_and_predict_from_images(tmp_path):
    from wbc_classic.data.synthetic import make_cells

    images, y, classes = make_cells(3, classes=("eosinophil", "lymphocyte"), size=64, seed=0)
    fx = FeatureExtractor(families=("geometry", "colour"))
    model = WBCModel("logreg", extractor=fx, classes=classes, cv=0).fit(list(images), y)
    labels = model.predict(images)
    assert labels.shape == (len(y),) and set(labels) <= set(classes)
    assert model.predict_proba(images[0]).shape == (1, 2)  # one (H, W, 3) image
    again = load(save_model(model, tmp_path / "m.skops"))
    np.testing.assert_array_equal(again.predict_proba(images), model.predict_proba(images))


@pytest.mark.parametrize("stain", ["reinhard", "white-balance"])
def test_stain_normaliser_is_fitted_saved_and_applied(stain, tmp_path):
    from wbc_classic.data.synthetic import make_cells

    images, y, classes = make_cells(3, classes=("eosinophil", "lymphocyte"), size=64, seed=0)
    fx = FeatureExtractor(families=("colour",))
    model = WBCModel("logreg", extractor=fx, stain=stain, classes=classes,
                     cv=0).fit(list(images), y)
    assert model.stain_ is not None and model.stain_.name == stain
    plain = WBCModel("logreg", extractor=fx, classes=classes, cv=0).fit(list(images), y)
    # the normaliser changes what the colour features see
    assert not np.allclose(model.transform(images), plain.transform(images))
    again = load(save_model(model, tmp_path / "m.skops"))
    assert again.stain_ is not None and again.stain_.to_dict() == model.stain_.to_dict()
    np.testing.assert_allclose(again.predict_proba(images), model.predict_proba(images))
    assert load(save_model(plain, tmp_path / "p.skops")).stain_ is None


def test_format_version_1_files_still_load(extractor, tmp_path):
    """Files written before ``pipeline_classes`` (format 1: the pipeline was fitted on the
    class indices themselves) load and predict as before."""
    X, y = _data(len(extractor.get_feature_names_out()))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        pipeline = make_classifier("logreg").fit(X, y)  # what version 1 saved
    model, _ = _fitted("logreg", extractor)
    obj = to_dict(model)
    obj.update(format_version=1, pipeline=pipeline)
    del obj["pipeline_classes"]
    path = tmp_path / "v1.skops"
    sio.dump(obj, path)
    again = load(path)
    np.testing.assert_array_equal(again.predict_proba_features(X),
                                  pipeline.predict_proba(X))
    assert tuple(again.classes_) == tuple(CLASSES)


def test_models_without_rim_trim_field_keep_their_segmentation(extractor, tmp_path):
    model, _ = _fitted("logreg", extractor)
    obj = to_dict(model)
    del obj["segmenter"]["params"]["rim_max_od"]  # a file written before the field existed
    again = _from_dict(obj, tmp_path / "old.skops")
    assert full_segment_params(again.segment_params)["rim_max_od"] == 0.0


_TRUSTED_LISTS = """
import json, sys
sys.path.insert(0, {root!r})
if {hook}:
    from wbc_classic.classical.modelfile import _import_skops_io, _sklearn_estimator_names
    _import_skops_io()
    assert "torch" not in sys.modules and "dask" not in sys.modules
    assert "sklearn.cross_decomposition" not in sys.modules  # no walk of scikit-learn
import skops.io._trusted_types as tt
lists = {{k: sorted(map(str, getattr(tt, k))) for k in dir(tt)
         if k.isupper() and k.endswith("NAMES")}}
if {hook}:
    assert lists["SKLEARN_ESTIMATOR_TYPE_NAMES"] == []
    # what load() trusts instead, computed on demand
    lists["SKLEARN_ESTIMATOR_TYPE_NAMES"] = sorted(_sklearn_estimator_names())
    assert "torch" not in sys.modules and "dask" not in sys.modules
print(json.dumps(lists))
"""


@pytest.mark.slow
def test_skops_import_without_the_walk_trusts_the_same_types():
    """skops.io imported without its walk of scikit-learn (and so without torch or dask):
    its other trusted-type lists are unchanged, and the estimators load() trusts on demand
    are the ones skops trusts after a plain import."""
    import subprocess
    import sys

    root = str(Path(__file__).resolve().parents[2])
    out = [subprocess.run([sys.executable, "-c", _TRUSTED_LISTS.format(root=root, hook=h)],
                          capture_output=True, text=True, check=True, timeout=120).stdout
           for h in (True, False)]
    assert json.loads(out[0]) == json.loads(out[1])
    assert len(json.loads(out[0])["SKLEARN_ESTIMATOR_TYPE_NAMES"]) > 100


def test_listed_estimators_are_trusted_by_skops_anyway():
    """The scikit-learn estimators listed to spare the walk widen nothing."""
    from wbc_classic.classical.modelfile import (
        _SKLEARN_DEFAULT_SOURCES,
        _sklearn_estimator_names,
        _source_name,
    )

    names = {_source_name(m, a) for m, a in _SKLEARN_DEFAULT_SOURCES}
    assert None not in names and names <= _sklearn_estimator_names()


def test_refused_types_accept_what_skops_trusts_by_default():
    from wbc_classic.classical.modelfile import refused_types

    assert refused_types(["sklearn.ensemble._forest.ExtraTreesClassifier",
                          "sklearn.svm._classes.SVC", "wbc_classic.classical.shift.ShiftScorer",
                          "os.system", "subprocess.Popen"]) == ["os.system", "subprocess.Popen"]


_NO_PANDAS = """
import sys
sys.path.insert(0, {root!r})
from wbc_classic.classical.modelfile import load
load("default")
assert "pandas" not in sys.modules and "torch" not in sys.modules
import pandas as pd  # refused only during scikit-learn's first import
from sklearn.preprocessing import StandardScaler
frame = pd.DataFrame({{"a": [1.0, 2.0]}})
out = StandardScaler().set_output(transform="pandas").fit_transform(frame)
assert isinstance(out, pd.DataFrame)
print("ok")
"""


@pytest.mark.slow
def test_loading_a_model_imports_no_pandas_and_pandas_still_works_after():
    import subprocess
    import sys

    root = str(Path(__file__).resolve().parents[2])
    out = subprocess.run([sys.executable, "-c", _NO_PANDAS.format(root=root)],
                         capture_output=True, text=True, timeout=120)
    assert out.stdout.strip() == "ok", out.stderr


def test_without_packages_refuses_only_inside_the_block():
    import sys

    from wbc_classic.classical.imports import without_packages

    name = "wbc_classic_no_such_package_xyz"
    with without_packages((name, "numpy")):
        import numpy  # noqa: F401 - already imported: still usable
        with pytest.raises(ModuleNotFoundError):
            __import__(name)
    assert not any(type(f).__name__ == "_Refuse" for f in sys.meta_path)
