"""ONNX export of the classical classifier stage: parity with scikit-learn's predict_proba."""

from __future__ import annotations

import json

import numpy as np
import pytest

pytest.importorskip("skl2onnx")
pytest.importorskip("onnxruntime")

from wbc_classic.classical.classifiers import (  # noqa: E402
    CLASSIFIERS,
    BalancedClassifier,
    FeatureClassifier,
)
from wbc_classic.classical.modelfile import save as save_model
from wbc_classic.classical.onnx import (  # noqa: E402
    _fix_knn_distance_sign,
    onnx_predict_proba,
    onnx_ready_pipeline,
    to_onnx_model,
)


def _data():
    from sklearn.datasets import make_classification

    X, y = make_classification(330, 40, n_informative=15, n_classes=5, random_state=0)
    X = X.astype(np.float32)
    # discrete columns like the flags and lobe counts of the real features: values sit exactly
    # on tree thresholds, where a scaler one ulp off flips a branch
    X[:, 0] = np.round(X[:, 0])
    X[:, 1] = X[:, 1] > 0
    return X[:300], y[:300], X[300:]


@pytest.fixture(scope="module")
def data():
    return _data()


def _converters():
    names = list(CLASSIFIERS)
    try:
        import onnxmltools  # noqa: F401
        import xgboost  # noqa: F401
    except ImportError:
        names.remove("xgboost")
    return names


@pytest.mark.parametrize("name", _converters())
def test_parity_batch_1_and_7(name, data):
    X, y, X_new = data
    fc = FeatureClassifier(name).fit(X, y)
    onx = to_onnx_model(fc)
    # training rows too: their values are the trees' thresholds
    for batch in (X_new[:1], X_new[:7], X[:7]):
        p_onnx = onnx_predict_proba(onx, batch)
        p_skl = fc.predict_proba(batch)
        assert p_onnx.shape == p_skl.shape
        assert np.abs(p_onnx - p_skl).max() <= 1e-5, name
        np.testing.assert_array_equal(p_onnx.argmax(1), p_skl.argmax(1))


def test_balanced_classifier_is_folded_not_changed(data):
    """predict_proba of BalancedClassifier is its inner estimator's: folding it is exact."""
    X, y, X_new = data
    fc = FeatureClassifier("naive-bayes").fit(X, y)
    step = fc.pipeline_.steps[-1][1]
    assert isinstance(step, BalancedClassifier)
    folded = onnx_ready_pipeline(fc)
    assert not any(isinstance(s, BalancedClassifier) for _, s in folded.steps)
    np.testing.assert_array_equal(folded.predict_proba(X_new), fc.predict_proba(X_new))


def _negate_topk_scale(model) -> None:
    from onnx import numpy_helper

    inits = {i.name: i for i in model.graph.initializer}
    values = {n.output[0] for n in model.graph.node if n.op_type == "TopK"}
    for node in model.graph.node:
        if node.op_type == "Mul" and node.input[0] in values:
            const = inits[node.input[1]]
            const.CopyFrom(numpy_helper.from_array(-numpy_helper.to_array(const), const.name))


def test_knn_distance_weights_are_corrected(data):
    X, y, X_new = data
    fc = FeatureClassifier("knn").fit(X, y)
    onx = to_onnx_model(fc)
    assert np.abs(onnx_predict_proba(onx, X_new) - fc.predict_proba(X_new)).max() <= 1e-5
    # skl2onnx's own graph (uncorrected) gives every neighbour the same weight
    import onnx

    raw = onnx.ModelProto()
    raw.CopyFrom(onx)
    _negate_topk_scale(raw)
    assert _fix_knn_distance_sign(raw) == 1  # it finds the pattern skl2onnx writes
    _negate_topk_scale(raw)
    drift = np.abs(onnx_predict_proba(raw, X_new) - fc.predict_proba(X_new)).max()
    assert drift > 1e-3


def test_export_onnx_file_from_a_saved_model(tmp_path):
    from wbc_classic.classical.model import WBCModel
    from wbc_classic.classical.modelfile import load
    from wbc_classic.cli import main
    from wbc_classic.data.synthetic import make_cells

    images, y, classes = make_cells(4, classes=("lymphocyte", "neutrophil"), size=96, seed=0)
    images = list(images)
    labels = [classes[i] for i in y]
    model = WBCModel("logreg", cv=2).fit(images, labels)
    save_model(model, tmp_path / "m.skops")
    assert main(["export-onnx", str(tmp_path / "m.skops"), "--out", str(tmp_path / "m.onnx"),
                 "--check"]) == 0
    import onnx

    onx = onnx.load(tmp_path / "m.onnx")
    meta = {p.key: p.value for p in onx.metadata_props}
    assert json.loads(meta["classes"]) == ["lymphocyte", "neutrophil"]
    loaded = load(tmp_path / "m.skops")
    X = loaded.extract(images[:3]).X
    np.testing.assert_allclose(onnx_predict_proba(tmp_path / "m.onnx", X),
                               loaded.estimator_.predict_proba(X), atol=1e-5)
    assert len(json.loads(meta["feature_names"])) == X.shape[1]


@pytest.mark.parametrize("params", [{"feature_selection": "univariate", "k": 8},
                                    {"feature_selection": "sfs", "k": 4},
                                    {"search": "grid", "cv": 2}])
def test_selection_and_search_pipelines_convert(params, data):
    X, y, X_new = data
    fc = FeatureClassifier("logreg", classifier_params=params).fit(X[:120], y[:120])
    for batch in (X_new[:1], X_new[:7]):
        p_onnx = onnx_predict_proba(to_onnx_model(fc), batch)
        assert np.abs(p_onnx - fc.predict_proba(batch)).max() <= 1e-5


def test_scaler_is_exact_so_trees_branch_alike_on_their_thresholds(data):
    """skl2onnx's Scaler (x - mean) * (1 / scale) moved XGBoost's probabilities by 0.02 on
    these training rows (values on split thresholds); the exported Sub + Div does not."""
    X, y, _ = data
    fc = FeatureClassifier("xgboost").fit(X, y) if "xgboost" in _converters() else \
        FeatureClassifier("random-forest").fit(X, y)
    assert np.abs(onnx_predict_proba(to_onnx_model(fc), X) - fc.predict_proba(X)).max() <= 1e-5
