"""ONNX export of a classical model's classifier stage (scaler + classifier on the features).

What is exported is the fitted :class:`~wbc_classic.classical.classifiers.FeatureClassifier`
pipeline: ``float32 (N, F)`` feature vectors in, ``label`` (int64 (N,), the index into
the model's ``classes_``) and ``probabilities`` (float32 (N, K)) out. The front end -- reading,
pixel scale, stain normaliser, segmentation and the hand-crafted features -- stays Python
(:func:`wbc_classic.classical.extraction.extract_features`): it is OpenCV, scikit-image and
mahotas code with no ONNX equivalent. A runtime in another language therefore needs the feature
vectors computed by this package (``wbc-classic features``, the same columns in the same order,
stored in the ONNX metadata as ``feature_names``).

Conversions (scikit-learn 1.9, skl2onnx 1.20, onnxmltools 1.16, XGBoost 3.2; parity checked
against ``predict_proba`` in ``tests/classical/test_onnx.py``, max |dp| <= 1e-5):

* ``svm``, ``linear-svm`` (sigmoid-calibrated), ``logreg``, ``random-forest``: skl2onnx as is.
* ``naive-bayes``, ``mlp``, ``xgboost``: wrapped in ``BalancedClassifier``, which skl2onnx does
  not know. The balancing only changes ``fit`` (per-sample weights); ``predict_proba`` is the
  inner estimator's on the same ``0..K-1`` codes, so the inner fitted estimator is exported in
  its place (:func:`onnx_ready_pipeline`).
* ``xgboost``: converted by onnxmltools' XGBoost converter, registered here when onnxmltools is
  installed (``pip install onnxmltools``); without it the export stops with that message.
* ``knn`` with ``weights="distance"``: skl2onnx (up to 1.20 at least) negates the top-k
  distances before taking their reciprocal for opset >= 11, so every neighbour gets the same
  weight 1e6 -- the "drift". The exported graph is corrected (:func:`_fix_knn_distance_sign`).
* The scaler: skl2onnx's ``Scaler`` multiplies by ``1 / scale``; scikit-learn divides by
  ``scale`` in float32. One ulp of difference flips a tree's branch when a value sits on a
  split threshold (XGBoost's histogram thresholds are data values), so the scaler is exported
  as ``Sub`` and ``Div`` in float32: bit-identical to scikit-learn.

Feature selection converts too: ``"univariate"`` (SelectKBest) with skl2onnx's converter, and
``"sfs"`` (SequentialFeatureSelector, which skl2onnx does not know) through the same converter,
registered here (at prediction time both are a fitted column mask). A hyper-parameter search
exports its best pipeline. Anything skl2onnx lacks a converter for raises
:class:`OnnxExportError` naming it.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.preprocessing import StandardScaler

__all__ = ["OnnxExportError", "export_onnx", "onnx_ready_pipeline", "to_onnx_model",
           "onnx_predict_proba"]

logger = logging.getLogger(__name__)

#: opsets of the exported graphs (ONNX Runtime >= 1.14 runs them)
TARGET_OPSET = {"": 17, "ai.onnx.ml": 3}


class OnnxExportError(RuntimeError):
    """The classifier cannot be exported (missing package or no converter)."""


def onnx_ready_pipeline(estimator: Any) -> Any:
    """The fitted pipeline to export, with ``BalancedClassifier`` steps folded away.

    Parameters
    ----------
    estimator : WBCModel, FeatureClassifier or fitted Pipeline
        A fitted model (its ``estimator_``), feature classifier (its ``pipeline_``) or the
        pipeline itself.

    Returns
    -------
    sklearn.pipeline.Pipeline
        A new pipeline of the same fitted steps; a ``BalancedClassifier`` is replaced by its
        fitted inner estimator (the balancing only weights ``fit``; ``predict_proba`` is the
        inner one's) and the scaler by :class:`_ExactScaler` (the same fitted values).
    """
    from sklearn.pipeline import Pipeline

    from wbc_classic.classical.classifiers import BalancedClassifier

    est = getattr(estimator, "estimator_", estimator)  # WBCModel -> FeatureClassifier
    est = getattr(est, "pipeline_", est)
    est = getattr(est, "best_estimator_", est)
    if not isinstance(est, Pipeline):
        est = Pipeline([("clf", est)])
    steps = []
    for name, step in est.steps:
        while isinstance(step, BalancedClassifier):
            step = step.estimator_
        if type(step) is StandardScaler:
            exact = _ExactScaler(with_mean=step.with_mean, with_std=step.with_std)
            exact.__dict__.update({k: v for k, v in vars(step).items() if k.endswith("_")})
            step = exact
        steps.append((name, step))
    return Pipeline(steps)


class _ExactScaler(StandardScaler):
    """A fitted StandardScaler exported as float32 ``Sub`` + ``Div`` (see the module)."""


_registered = False


def _register_converters() -> None:
    global _registered
    if _registered:
        return
    from skl2onnx import update_registered_converter
    from skl2onnx.algebra.onnx_ops import OnnxDiv, OnnxIdentity, OnnxSub
    from skl2onnx.shape_calculators.scaler import calculate_sklearn_scaler_output_shapes

    def convert_exact_scaler(scope, operator, container):
        op = operator.raw_operator
        opv = container.target_opset
        x = operator.inputs[0]
        if op.with_mean:
            x = OnnxSub(x, np.asarray(op.mean_, np.float32), op_version=opv)
        if op.with_std:
            x = OnnxDiv(x, np.asarray(op.scale_, np.float32), op_version=opv)
        OnnxIdentity(x, op_version=opv, output_names=operator.outputs[:1]).add_to(
            scope, container)

    update_registered_converter(_ExactScaler, "WbcExactStandardScaler",
                                calculate_sklearn_scaler_output_shapes, convert_exact_scaler)
    # forward selection (``feature_selection="sfs"``) is a fitted column mask at prediction
    # time, like SelectKBest: skl2onnx's own selection converter reads ``get_support()``
    from skl2onnx.operator_converters.feature_selection import (
        convert_sklearn_feature_selection,
    )
    from skl2onnx.shape_calculators.feature_selection import calculate_sklearn_select
    from sklearn.feature_selection import SequentialFeatureSelector

    update_registered_converter(SequentialFeatureSelector, "WbcSequentialFeatureSelector",
                                calculate_sklearn_select, convert_sklearn_feature_selection)
    try:
        from onnxmltools.convert.xgboost.operator_converters.XGBoost import convert_xgboost
        from skl2onnx.common.shape_calculator import calculate_linear_classifier_output_shapes
        from xgboost import XGBClassifier
    except ImportError:
        pass  # the export of an XGBoost model then says what to install
    else:
        update_registered_converter(
            XGBClassifier, "XGBoostXGBClassifier", calculate_linear_classifier_output_shapes,
            convert_xgboost, options={"nocl": [True, False], "zipmap": [True, False, "columns"]})
    _registered = True


def _fix_knn_distance_sign(model: Any) -> int:
    """Undo skl2onnx's negated top-k distances in a distance-weighted kNN graph.

    skl2onnx's ``onnx_nearest_neighbors_indices_k`` returns ``-distance`` for opset >= 11
    (``Mul(TopK.values, -1)``) and the weights are ``1 / max(that, 1e-6)``, i.e. all 1e6.
    The constant is flipped to +1 so the weights become ``1 / distance`` as in scikit-learn.

    Returns
    -------
    int
        Number of nodes corrected (0 when the graph has no such pattern).
    """
    from onnx import numpy_helper

    graph = model.graph
    inits = {i.name: i for i in graph.initializer}
    topk_values = {n.output[0] for n in graph.node if n.op_type == "TopK"}
    fixed = 0
    for node in graph.node:
        if node.op_type == "Mul" and node.input[0] in topk_values and node.input[1] in inits:
            const = inits[node.input[1]]
            value = numpy_helper.to_array(const)
            if value.size == 1 and float(value.reshape(-1)[0]) == -1.0:
                const.CopyFrom(numpy_helper.from_array(-value, const.name))
                fixed += 1
    return fixed


def to_onnx_model(estimator: Any, n_features: int | None = None, *,
                  metadata: dict[str, str] | None = None) -> Any:
    """Convert a fitted classical classifier stage to an ``onnx.ModelProto``.

    Parameters
    ----------
    estimator : WBCModel, FeatureClassifier or fitted Pipeline
    n_features : int, optional
        Width of the feature vector (default: the estimator's ``n_features_in_``).
    metadata : dict of str to str, optional
        Stored as the model's ``metadata_props`` (e.g. class and feature names).

    Returns
    -------
    onnx.ModelProto
        Input ``features`` float32 (N, F); outputs ``label`` int64 (N,) and
        ``probabilities`` float32 (N, K).

    Raises
    ------
    OnnxExportError
        skl2onnx is not installed, or a step has no converter (the message names it).
    """
    try:
        from skl2onnx import convert_sklearn
        from skl2onnx.common.data_types import FloatTensorType
    except ImportError as exc:
        raise OnnxExportError("ONNX export needs skl2onnx: pip install skl2onnx onnxruntime"
                              ) from exc
    _register_converters()
    pipe = onnx_ready_pipeline(estimator)
    clf = pipe.steps[-1][1]
    if type(clf).__name__ == "XGBClassifier":
        try:
            import onnxmltools  # noqa: F401
        except ImportError as exc:
            raise OnnxExportError("exporting an XGBoost classifier needs onnxmltools: "
                                  "pip install onnxmltools") from exc
    if n_features is None:
        inner = getattr(estimator, "estimator_", estimator)  # WBCModel -> FeatureClassifier
        n_features = int(getattr(inner, "n_features_in_", None) or pipe.n_features_in_)
    try:
        model = convert_sklearn(pipe, initial_types=[("features", FloatTensorType(
            [None, int(n_features)]))], options={id(clf): {"zipmap": False}},
            target_opset=TARGET_OPSET)
    except Exception as exc:  # skl2onnx raises several types for "no converter"
        raise OnnxExportError(f"skl2onnx cannot convert {type(clf).__name__}: "
                              f"{type(exc).__name__}: {exc}") from exc
    if getattr(clf, "weights", None) == "distance" and type(clf).__name__ == \
            "KNeighborsClassifier":
        if _fix_knn_distance_sign(model) == 0:
            logger.warning("kNN graph: the negated-distance pattern of skl2onnx was not found; "
                           "check the parity of this export")
    for key, value in (metadata or {}).items():
        entry = model.metadata_props.add()
        entry.key, entry.value = str(key), str(value)
    return model


def onnx_predict_proba(model: Any, X: np.ndarray) -> np.ndarray:
    """Run an exported model with ONNX Runtime: probabilities float32 (N, K).

    Parameters
    ----------
    model : onnx.ModelProto, bytes or path
    X : ndarray, shape (N, F)
        Feature vectors (cast to float32).
    """
    import onnxruntime as ort

    if isinstance(model, (str, os.PathLike)):
        data = Path(model).read_bytes()
    elif isinstance(model, bytes):
        data = model
    else:
        data = model.SerializeToString()
    sess = ort.InferenceSession(data, providers=["CPUExecutionProvider"])
    out = sess.run(["probabilities"], {"features": np.asarray(X, np.float32)})
    return np.asarray(out[0])


def export_onnx(model: Any, path: str | os.PathLike) -> Path:
    """Write a saved classical model's classifier stage as ONNX (atomically).

    Parameters
    ----------
    model : WBCModel
        A fitted or loaded model (:func:`wbc_classic.load`).
    path : path
        The ``.onnx`` file to write.

    Returns
    -------
    Path
        ``path``. Its metadata hold ``classes`` and ``feature_names`` (JSON lists), the
        ``classifier`` name and the package version.
    """
    from wbc_classic import __version__
    from wbc_classic.io.atomic import atomic_write_bytes

    names = getattr(model, "feature_names_", None)
    if names is None:
        names = getattr(getattr(model, "estimator_", None), "feature_names_in_", None)
    meta = {"classes": json.dumps([str(c) for c in model.classes_]),
            "classifier": str(getattr(model, "classifier", "")),
            "wbc_classic_version": __version__,
            "input": "float32 (N, F) feature vectors from wbc_classic's extract_features"}
    if names is not None:
        meta["feature_names"] = json.dumps([str(n) for n in names])
    onx = to_onnx_model(model, metadata=meta)
    atomic_write_bytes(path, onx.SerializeToString())
    return Path(path)
