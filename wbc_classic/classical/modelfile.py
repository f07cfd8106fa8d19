"""The classical model *file*: its format, the skops trust list, sniffing, writing and loading.

A :class:`wbc_classic.classical.model.WBCModel` is saved as **one file** with :mod:`skops.io`
(a zip of JSON + arrays whose loading cannot run arbitrary code).  Loading accepts only the
object types this package itself writes (:func:`known_types`); a pickle, random bytes, a
truncated file or a skops file that references any other type (``os.system``, ...) is refused
with :class:`ModelFileError` naming the file and the problem.  A model written by other
package versions loads with a :class:`ModelVersionWarning`.

File contents (format ``wbc-classic/model``, ``format_version`` 3), a plain dict:

``classes``           list of str -- the single source of class names and their order
``classifier``        str -- registry name (or the estimator's class name)
``pipeline``          the fitted scikit-learn Pipeline (scale, [select], clf)
``pipeline_classes``  list of int -- the index into ``classes`` of each of the pipeline's
                      output columns (version 2; in version 1 files the pipeline's own
                      ``classes_`` were those indices)
``extractor``         {"class": "features.FeatureExtractor", "params": {...}}
``feature_names``     list of str -- the extractor's output names at training time
``segmenter``         {"function": "segmentation.segment", "params": {...}}
``stain``             the fitted stain normaliser as plain data, or None
``scale``             {"um_per_pixel": float or None} -- the training images' pixel scale
``shift``             the fitted :class:`wbc_classic.classical.shift.ShiftScorer` (version 3)
``class_means``       ndarray (classes, features): the training rows' class means, or None
                      (files written before them; ``adapt --method class-means`` needs them)
``adaptation``        None, or (``wbc-classic adapt``) ``{"alignment": plain data of a
                      wbc_classic.classical.adapt.FeatureAlignment or None,
                      "um_per_pixel": the adapted lab's pixel scale or None}``
``versions``          dict of package versions at training time
``metadata``          dict: date, data summary, cross-validated accuracy, ...

Version 1 files (written before the pipeline was fitted on its own label encoding) and
version 2 files (no shift scorer: their rows get ``shift_score`` NaN and no flag) load
unchanged.

Example
-------
>>> from wbc_classic.classical.modelfile import load            # doctest: +SKIP
>>> model = load("model.skops")                                 # doctest: +SKIP
>>> model.predict(["cell1.jpg", "cell2.jpg"])                   # doctest: +SKIP
array(['neutrophil', 'lymphocyte'], dtype='<U10')
"""

from __future__ import annotations

import functools
import importlib
import os
import sys
import warnings
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from wbc_classic.classical.imports import import_sklearn, without_packages

__all__ = [
    "FORMAT",
    "FORMAT_VERSION",
    "PACKAGED_MODELS",
    "ModelFileError",
    "ModelVersionWarning",
    "check_model_file",
    "known_types",
    "is_known_type",
    "refused_types",
    "load",
    "packaged_model_path",
    "save",
]

FORMAT = "wbc-classic/model"
FORMAT_VERSION = 3

# the only extractor / segmenter entry points a model file may name
_EXTRACTOR_CLASSES = {"features.FeatureExtractor": ("features", "FeatureExtractor")}
_SEGMENTERS = {"segmentation.segment": ("segmentation", "segment")}

_VERSIONED = ("wbc_classic", "numpy", "scikit-learn", "scikit-image", "opencv", "xgboost")


class ModelFileError(ValueError):
    """A model file that cannot be loaded: missing, not a model, tampered or unknown types.

    Attributes
    ----------
    path : pathlib.Path
        The offending file.
    problem : str
        What is wrong with it.
    """

    def __init__(self, path: str | os.PathLike[str], problem: str):
        self.path = Path(path)
        self.problem = problem
        super().__init__(f"cannot load model file {str(self.path)!r}: {problem}")


class ModelVersionWarning(UserWarning):
    """The model file was written with other package versions than the running ones."""


# --------------------------------------------------------------------------- versions

def _minor(version: str) -> str:
    return ".".join(str(version).split(".")[:2])


# --------------------------------------------------------------------------- trusted types

def _type_name(obj: Any) -> str:
    return f"{obj.__module__}.{obj.__qualname__}"


# (module, attribute) of every non-default type our model files may contain; the
# trusted *names* are computed from the objects themselves (see known_types)
_KNOWN_SOURCES: tuple[tuple[str, str], ...] = (
    ("wbc_classic.classical.classifiers", "BalancedClassifier"),
    ("wbc_classic.classical.shift", "ShiftScorer"),
    ("sklearn.calibration", "_CalibratedClassifier"),
    ("sklearn.calibration", "_SigmoidCalibration"),
    ("sklearn.calibration", "CalibratedClassifierCV"),
    ("sklearn.feature_selection", "f_classif"),
    ("sklearn.feature_selection", "SelectKBest"),
    ("sklearn.feature_selection", "SequentialFeatureSelector"),
    ("sklearn.model_selection", "StratifiedKFold"),
    ("sklearn.neighbors", "KDTree"),
    ("sklearn.neighbors", "BallTree"),
    ("sklearn.metrics._dist_metrics", "EuclideanDistance64"),
    ("sklearn.metrics._dist_metrics", "MinkowskiDistance64"),
    ("sklearn.neural_network._stochastic_optimizers", "AdamOptimizer"),
    ("sklearn.neural_network._stochastic_optimizers", "SGDOptimizer"),
    ("sklearn.tree._tree", "Tree"),
    ("sklearn.preprocessing", "LabelEncoder"),
    ("sklearn.preprocessing", "StandardScaler"),
    ("sklearn.pipeline", "Pipeline"),
    ("xgboost", "XGBClassifier"),
    ("xgboost", "Booster"),
)

# (module, attribute) of the scikit-learn estimators our classifiers are made of
# (:mod:`wbc_classic.classical.classifiers`); skops trusts them by default, and they are
# listed so that checking one of our files needs no walk of scikit-learn
# (:func:`_import_skops_io`); tests/classical/test_model_file.py checks that skops does
# trust every one of them
_SKLEARN_DEFAULT_SOURCES: tuple[tuple[str, str], ...] = (
    ("sklearn.svm", "SVC"),
    ("sklearn.svm", "LinearSVC"),
    ("sklearn.neighbors", "KNeighborsClassifier"),
    ("sklearn.linear_model", "LogisticRegression"),
    ("sklearn.naive_bayes", "GaussianNB"),
    ("sklearn.ensemble", "RandomForestClassifier"),
    ("sklearn.tree", "DecisionTreeClassifier"),
    ("sklearn.neural_network", "MLPClassifier"),
    ("sklearn.preprocessing", "LabelBinarizer"),
)


#: array libraries whose scikit-learn wrappers (``sklearn.externals.array_api_compat.*``)
#: import them; they define no estimators
_ARRAY_LIBRARIES = ("torch", "dask", "cupy")


def _import_skops_io() -> Any:
    """``import skops.io`` without its walk of every scikit-learn module.

    On import, :mod:`skops.io` lists the scikit-learn estimators it trusts by default with
    ``sklearn.utils.all_estimators()``, whose package walk imports every scikit-learn
    sub-package (and torch and dask through ``sklearn.externals.array_api_compat``): about
    0.6 s of a command's start-up, more than the rest of loading a model.  During this one
    import that function returns nothing, so skops' own default list of estimators is
    empty and :func:`skops.io.get_untrusted_types` lists every estimator a file holds;
    :func:`load` then accepts exactly what it accepted before -- the types of
    :func:`known_types`, and scikit-learn's estimators of :func:`_sklearn_estimator_names`,
    which is walked only for a file holding an estimator outside the first list.  Refusing
    more, never less, this stays safe for any other user of :mod:`skops.io` in the process.
    Nothing is changed when :mod:`skops.io` is already imported.
    """
    if "skops.io" in sys.modules:
        return sys.modules["skops.io"]
    import_sklearn()
    import sklearn.utils

    walk = sklearn.utils.all_estimators
    sklearn.utils.all_estimators = lambda *args, **kwargs: []
    try:
        import skops.io
    finally:
        sklearn.utils.all_estimators = walk
    return skops.io


@functools.cache
def _sklearn_estimator_names() -> frozenset[str]:
    """The scikit-learn estimators :mod:`skops.io` trusts by default, computed as it does.

    The slow walk :func:`_import_skops_io` avoids, for a file holding an estimator that
    :func:`known_types` does not list.  Torch, dask and cupy are refused during the walk:
    the array-API wrappers that import them define no estimators, and the classical path
    must not pay for torch's import.
    """
    from sklearn.utils import all_estimators
    from skops.io._utils import get_type_name

    with without_packages(_ARRAY_LIBRARIES):
        names = [get_type_name(cls) for _, cls in all_estimators()]
    return frozenset(n for n in names if n.startswith("sklearn."))


@functools.cache
def _source_name(module: str, attr: str) -> str | None:
    """Qualified name of ``module.attr`` as skops writes it, or None if not importable."""
    try:
        return _type_name(getattr(importlib.import_module(module), attr))
    except (ImportError, AttributeError):
        return None


def is_known_type(name: str) -> bool:
    """Whether ``name`` (as listed by ``skops.io.get_untrusted_types``) is one of ours.

    Imports only the candidate module(s) whose attribute has the same final name, so
    checking an SVM model does not import XGBoost.
    """
    attr = name.rsplit(".", 1)[-1]
    return any(_source_name(m, a) == name
               for m, a in _KNOWN_SOURCES + _SKLEARN_DEFAULT_SOURCES if a == attr)


def refused_types(untrusted: list[str]) -> list[str]:
    """The names among ``untrusted`` (as listed by ``skops.io.get_untrusted_types``) that
    :func:`load` refuses: those neither of :func:`known_types` nor scikit-learn
    estimators skops trusts by default (walked only when the first test fails)."""
    return sorted(t for t in untrusted
                  if not is_known_type(t) and t not in _sklearn_estimator_names())


def known_types() -> frozenset[str]:
    """Fully-qualified names of the object types a model file of ours may contain beyond
    builtins and numpy: the types skops does not trust by default, and the scikit-learn
    estimators of our classifiers (which it does).

    Computed from the classes and functions themselves (so a renamed private class in a
    new scikit-learn release is noticed rather than silently trusted).  Anything a file
    references beyond these and :mod:`skops`'s own default-trusted scikit-learn/numpy
    types is refused at load time.  Imports every candidate module (slow-ish, for tests
    and documentation; loading uses :func:`is_known_type`).
    """
    names = (_source_name(m, a) for m, a in _KNOWN_SOURCES + _SKLEARN_DEFAULT_SOURCES)
    return frozenset(n for n in names if n is not None)


# --------------------------------------------------------------------------- writing

def _import_entry(table: dict[str, tuple[str, str]], name: str, what: str):
    if name not in table:
        raise ValueError(f"unknown {what} {name!r}; known: {', '.join(table)}")
    module, attr = table[name]
    return getattr(importlib.import_module(module), attr)


def to_dict(model: Any) -> dict[str, Any]:
    """The plain dict written to the model file of a fitted ``WBCModel`` (see above)."""
    from wbc_classic.classical.model import _plain, full_segment_params

    model._check_fitted()
    extractor = model.extractor_
    cls_name = _type_name(type(extractor))
    cls_name = {"features.extractor.FeatureExtractor": "features.FeatureExtractor"}.get(
        cls_name, cls_name)
    if not cls_name.startswith("features.") or "FeatureExtractor" not in cls_name:
        raise TypeError(f"cannot save extractor of type {cls_name}")
    return {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "classes": [str(c) for c in model.classes_],
        "classifier": model.classifier_name,
        "pipeline": model.estimator_.pipeline_,
        "pipeline_classes": [int(c) for c in model.estimator_.classes_],
        "extractor": {"class": "features.FeatureExtractor",
                      "params": {k: _plain(v) for k, v in
                                 extractor.get_params(deep=False).items()}},
        "feature_names": list(model.feature_names_),
        "stain": None if model.stain_ is None else _plain(model.stain_.to_dict()),
        "scale": {"um_per_pixel": None if model.um_per_pixel_ is None
                  else float(model.um_per_pixel_)},
        "segmenter": {"function": "segmentation.segment",
                      "params": {k: _plain(v) for k, v in
                                 full_segment_params(model.segment_params).items()}},
        "shift": getattr(model, "shift_", None),
        "class_means": model.__dict__.get("class_means_"),
        "adaptation": None if not (model.__dict__.get("alignment_") is not None
                                   or model.__dict__.get("input_um_per_pixel_") is not None)
        else {"alignment": None if model.__dict__.get("alignment_") is None
              else model.alignment_.to_dict(),
              "um_per_pixel": model.__dict__.get("input_um_per_pixel_")},
        "versions": dict(model.versions_),
        "metadata": _plain(model.metadata_),
    }


def save(model: Any, path: str | os.PathLike[str]) -> Path:
    """Write a fitted ``WBCModel`` to one ``.skops`` file, atomically (compressed zip).

    Returns
    -------
    path : pathlib.Path
    """
    sio = _import_skops_io()

    from wbc_classic.io.atomic import atomic_path

    path = Path(path)
    obj = to_dict(model)
    with atomic_path(path) as tmp:
        sio.dump(obj, tmp, compression=zipfile.ZIP_DEFLATED, compresslevel=6)
    return path


# --------------------------------------------------------------------------- loading

def check_model_file(path: str | os.PathLike[str]) -> Path:
    """The file :func:`load` would read, checked cheaply before any heavy import.

    A shipped model's name is resolved (:func:`packaged_model_path`); the file must exist
    and be a zip archive, not a pickle.  Reads its first bytes and the zip directory, not
    the contents (:func:`load` checks those).

    Returns
    -------
    path : pathlib.Path

    Raises
    ------
    ModelFileError
        Missing, a directory, unreadable, empty, a pickle or not a zip archive.
    """
    path = packaged_model_path(path)
    try:
        with open(path, "rb") as fh:
            head = fh.read(4)
    except FileNotFoundError:
        raise ModelFileError(path, "file not found") from None
    except IsADirectoryError:
        raise ModelFileError(path, "is a directory, not a model file") from None
    except OSError as exc:
        raise ModelFileError(path, f"cannot read it ({exc.strerror or exc})") from None
    if not head:
        raise ModelFileError(path, "file is empty")
    if head[:1] == b"\x80":
        raise ModelFileError(path, "this is a pickle file; pickles can run arbitrary code "
                                   "when loaded and are refused (expected a .skops file)")
    if head[:2] != b"PK" or not zipfile.is_zipfile(path):
        raise ModelFileError(path, "not a skops model file (not a zip archive)")
    return path


#: models shipped as package data (``wbc_classic/models/<name>.skops``, with a card
#: ``<name>.json``/``<name>.md``), loadable by name
PACKAGED_MODELS = ("default",)


def packaged_model_path(path: str | os.PathLike[str]) -> Path:
    """``path`` itself, or the package's own file when ``path`` is the bare name of a shipped
    model (:data:`PACKAGED_MODELS`) and no file of that name exists."""
    p = Path(path)
    if str(path) in PACKAGED_MODELS and not p.exists():
        return Path(__file__).resolve().parent.parent / "models" / f"{path}.skops"
    return p


def load(path: str | os.PathLike[str]) -> Any:
    """Load a classical model saved by :meth:`WBCModel.save`, refusing anything else.

    Only the types of :func:`known_types` (plus skops's default-trusted types) are
    allowed; no pickle is ever unpickled.

    Parameters
    ----------
    path : path-like
        A ``.skops`` file, or the name of a model shipped in the package
        (:data:`PACKAGED_MODELS`, e.g. ``"default"``) when no file of that name exists.

    Returns
    -------
    model : wbc_classic.classical.model.WBCModel

    Raises
    ------
    ModelFileError
        Missing file, not a skops archive (pickle, random bytes), a corrupt archive, a
        file referencing types outside the trusted set, or a file that is not a
        wbc-classic model.  The message names the file and the problem.

    Warns
    -----
    ModelVersionWarning
        When the file was written with other versions of wbc_classic, numpy,
        scikit-learn, scikit-image, OpenCV or XGBoost.
    """
    path = check_model_file(path)  # a missing file fails before the imports
    sio = _import_skops_io()
    try:
        untrusted = sio.get_untrusted_types(file=path)
    except Exception as exc:  # noqa: BLE001 - any parse failure is a bad file
        raise ModelFileError(path, f"corrupt or not a skops file ({type(exc).__name__}: "
                                   f"{exc})") from None
    refused = refused_types(untrusted)
    if refused:
        raise ModelFileError(path, "it references types that are not part of a "
                                   f"wbc-classic model and were refused: {refused}")
    try:
        obj = sio.load(path, trusted=list(untrusted))
    except Exception as exc:  # noqa: BLE001
        raise ModelFileError(path, f"corrupt skops file ({type(exc).__name__}: {exc})"
                             ) from None
    return _from_dict(obj, path)


def _from_dict(obj: Any, path: Path) -> Any:
    from wbc_classic.classical.classifiers import FeatureClassifier
    from wbc_classic.classical.model import WBCModel, feature_names, segmenter_params

    if not isinstance(obj, dict) or obj.get("format") != FORMAT:
        raise ModelFileError(path, "not a wbc-classic model (a skops file holding "
                                   f"{type(obj).__name__}, without format {FORMAT!r})")
    version = obj.get("format_version")
    if not isinstance(version, int) or version > FORMAT_VERSION:
        raise ModelFileError(path, f"model format version {version!r} is newer than this "
                                   f"wbc-classic understands ({FORMAT_VERSION}); upgrade")
    required = ("classes", "pipeline", "extractor", "feature_names", "segmenter")
    missing = [k for k in required if k not in obj]
    if missing:
        raise ModelFileError(path, f"model file lacks {missing}")
    classes = obj["classes"]
    if not (isinstance(classes, list) and classes and all(isinstance(c, str)
                                                          for c in classes)):
        raise ModelFileError(path, "'classes' must be a non-empty list of names")
    pipeline = obj["pipeline"]
    if not hasattr(pipeline, "predict_proba") or not hasattr(pipeline, "classes_"):
        raise ModelFileError(path, "'pipeline' is not a fitted probabilistic classifier")
    # version 1: the pipeline was fitted on the class indices themselves
    fitted = np.asarray(obj.get("pipeline_classes", pipeline.classes_))
    if (fitted.ndim != 1 or fitted.dtype.kind not in "iu" or fitted.size == 0
            or fitted.min() < 0 or fitted.max() >= len(classes)
            or len(np.unique(fitted)) != fitted.size
            or fitted.size != len(np.asarray(pipeline.classes_))):
        raise ModelFileError(path, f"classifier classes {fitted.tolist()} do not index "
                                   f"the {len(classes)} class names")

    saved = obj.get("versions") or {}
    if isinstance(saved, dict):
        from wbc_classic.io.versions import package_versions

        current = package_versions()
        diffs = [f"{k} {saved[k]} (running {current[k]})" for k in _VERSIONED
                 if k in saved and k in current and _minor(saved[k]) != _minor(current[k])]
        if diffs:
            warnings.warn(f"model file {str(path)!r} was written with other package "
                          f"versions: {', '.join(diffs)}; predictions may differ",
                          ModelVersionWarning, stacklevel=3)

    ext = obj["extractor"]
    seg = obj["segmenter"]
    try:
        ext_cls = _import_entry(_EXTRACTOR_CLASSES, ext["class"], "extractor")
        extractor = ext_cls(**dict(ext.get("params") or {}))
        if seg["function"] not in _SEGMENTERS:
            raise ValueError(f"unknown segmenter {seg['function']!r}")
        seg_params = dict(seg.get("params") or {})
        segmenter_params(seg_params)  # fails on fields this segmenter does not know
    except (ValueError, TypeError, KeyError, ImportError, AttributeError) as exc:
        raise ModelFileError(path, f"cannot rebuild the feature pipeline: {exc}") from None
    names = [str(n) for n in obj["feature_names"]]
    try:
        now = feature_names(extractor)
    except Exception:  # noqa: BLE001
        now = names
    if now != names:
        raise ModelFileError(path, f"the feature extractor now makes {len(now)} features "
                                   f"but the model was trained on {len(names)} different "
                                   "ones; retrain the model with this version")

    stain = obj.get("stain")
    try:
        from wbc_classic.preprocess.stain import StainNormalizer

        normalizer = None if stain is None else StainNormalizer.from_dict(stain)
    except (ValueError, TypeError, KeyError) as exc:
        raise ModelFileError(path, f"cannot rebuild the stain normaliser: {exc}") from None
    scale = obj.get("scale")
    um = scale.get("um_per_pixel") if isinstance(scale, dict) else None
    if um is not None and not (isinstance(um, (int, float)) and np.isfinite(um) and um > 0):
        raise ModelFileError(path, f"invalid pixel scale {um!r} in the model file")
    name = str(obj.get("classifier", "custom"))
    model = WBCModel(classifier=name, extractor=extractor, segment_params=seg_params,
                     classes=list(classes),
                     stain="none" if normalizer is None else normalizer.name)
    # the fitted state, exactly as fit_features leaves it
    estimator = FeatureClassifier(name)
    estimator.pipeline_ = pipeline
    estimator.classes_ = fitted.astype(np.int64)
    estimator.n_features_in_ = len(names)
    estimator.search_ = None
    model.extractor_ = extractor
    model.estimator_ = estimator
    shift = obj.get("shift")
    if shift is not None:
        from wbc_classic.classical.shift import ShiftScorer

        if not (isinstance(shift, ShiftScorer) and hasattr(shift, "precision_")
                and shift.n_features_in_ == np.asarray(shift.precision_).shape[0]):
            raise ModelFileError(path, "'shift' is not a fitted ShiftScorer")
    model.shift_ = shift
    means = obj.get("class_means")
    if means is not None:
        if not (isinstance(means, np.ndarray) and means.dtype.kind == "f"
                and means.shape == (len(classes), len(names))):
            raise ModelFileError(path, "'class_means' does not match the classes and "
                                       "features")
        model.class_means_ = means.astype(np.float64)
    adaptation = obj.get("adaptation")
    if adaptation is not None:
        from wbc_classic.classical.adapt import FeatureAlignment

        try:
            align = adaptation.get("alignment")
            if align is not None:
                model.alignment_ = FeatureAlignment.from_dict(align)
                if model.alignment_.mean.size != len(names):
                    raise ValueError("alignment does not match the features")
            lab_um = adaptation.get("um_per_pixel")
            if lab_um is not None:
                if not (isinstance(lab_um, (int, float)) and np.isfinite(lab_um) and lab_um > 0):
                    raise ValueError(f"invalid pixel scale {lab_um!r}")
                model.input_um_per_pixel_ = float(lab_um)
        except (ValueError, TypeError, KeyError, AttributeError) as exc:
            raise ModelFileError(path, f"cannot rebuild the adaptation: {exc}") from None
    model.stain_ = normalizer
    model.um_per_pixel_ = None if um is None else float(um)
    model.classes_ = np.asarray(classes, dtype=str)
    model.feature_names_ = names
    model.versions_ = dict(saved) if isinstance(saved, dict) else {}
    model.metadata_ = dict(obj.get("metadata") or {})
    model.metadata_["file"] = str(path)
    return model
