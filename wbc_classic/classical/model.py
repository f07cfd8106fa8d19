"""The saved classical model: segmenter settings + feature extractor + fitted classifier.

A :class:`WBCModel` goes from an RGB leukocyte image (or its file) to class probabilities::

    image --read_image--> RGB uint8 --segment--> Segmentation --FeatureExtractor--> features
          --scaler/selection/classifier--> probabilities over ``model.classes``

It is saved as **one file** with :mod:`skops.io` (a zip of JSON + arrays whose loading
cannot run arbitrary code).  Loading accepts only the object types this package itself
writes (:func:`known_types`); a pickle, random bytes, a truncated file or a skops file that
references any other type (``os.system``, ...) is refused with :class:`ModelFileError`
naming the file and the problem.  A model written by other package versions loads with a
:class:`ModelVersionWarning`.

File contents (format ``wbc-classic/model``, ``format_version`` 1), a plain dict:

``classes``          list of str -- the single source of class names and their order
``classifier``       str -- registry name (or the estimator's class name)
``pipeline``         the fitted scikit-learn Pipeline (scale, [select], clf)
``extractor``        {"class": "features.FeatureExtractor", "params": {...}}
``feature_names``    list of str -- the extractor's output names at training time
``segmenter``        {"function": "segmentation.segment", "params": {...}}
``stain``            the fitted stain normaliser as plain data, or None
``scale``            {"um_per_pixel": float or None} -- the training images' pixel scale
``versions``         dict of package versions at training time
``metadata``         dict: date, data summary, cross-validated accuracy, ...

Example
-------
>>> import wbc_classic.classical.model as wm                       # doctest: +SKIP
>>> model = wm.load("model.skops")                        # doctest: +SKIP
>>> model.predict(["cell1.jpg", "cell2.jpg"])             # doctest: +SKIP
array(['neutrophil', 'lymphocyte'], dtype='<U10')
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import functools
import importlib
import os
import platform
import sys
import time
import warnings
import zipfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

__all__ = [
    "FORMAT",
    "FORMAT_VERSION",
    "ModelFileError",
    "ModelVersionWarning",
    "WBCModel",
    "known_types",
    "load",
    "package_versions",
]

FORMAT = "wbc-classic/model"
FORMAT_VERSION = 1

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

def package_versions() -> dict[str, str]:
    """Versions of the packages that decide a model's behaviour, as ``{name: version}``.

    Read from the installed distributions' metadata: nothing heavy is imported.
    """
    from wbc_classic import __version__
    from wbc_classic.io.versions import installed_version

    out = {"wbc_classic": __version__, "python": platform.python_version()}
    dists = {"numpy": ("numpy",), "scikit-learn": ("scikit-learn",),
             "scikit-image": ("scikit-image",), "skops": ("skops",),
             "opencv": ("opencv-python-headless", "opencv-python",
                        "opencv-contrib-python-headless", "opencv-contrib-python"),
             "xgboost": ("xgboost", "xgboost-cpu")}
    for label, names in dists.items():
        version = installed_version(names)
        if version is not None:
            out[label] = version
    return out


def _minor(version: str) -> str:
    return ".".join(str(version).split(".")[:2])


# --------------------------------------------------------------------------- trusted types

def _type_name(obj: Any) -> str:
    return f"{obj.__module__}.{obj.__qualname__}"


# (module, attribute) of every non-default type our model files may contain; the
# trusted *names* are computed from the objects themselves (see known_types)
_KNOWN_SOURCES: tuple[tuple[str, str], ...] = (
    ("wbc_classic.classical.classifiers", "BalancedClassifier"),
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


class _NoTorchFinder:
    """Import hook refusing ``torch`` (see :func:`_import_skops_io`)."""

    def find_spec(self, name: str, path: Any = None, target: Any = None) -> None:
        if name == "torch" or name.startswith("torch."):
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None


def _import_skops_io() -> Any:
    """``import skops.io`` without importing torch on the way.

    Importing :mod:`skops.io` builds its list of trusted scikit-learn types with
    ``sklearn.utils.all_estimators()``, whose package walk imports every sub-package,
    including ``sklearn.externals.array_api_compat.torch`` -- which imports torch when it
    is installed (~2 s of the ~3 s cold load).  That package defines no estimators, so
    refusing torch during this one import leaves the trusted-type lists unchanged (checked
    in tests/test_model_file.py) while halving the load time.  Nothing is blocked when
    torch is already imported or after the import.
    """
    if "skops.io" in sys.modules or "torch" in sys.modules:
        import skops.io

        return skops.io
    finder = _NoTorchFinder()
    sys.meta_path.insert(0, finder)
    try:
        import skops.io
    finally:
        sys.meta_path.remove(finder)
    return skops.io


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
    return any(_source_name(m, a) == name for m, a in _KNOWN_SOURCES if a == attr)


def known_types() -> frozenset[str]:
    """Fully-qualified names of the non-default types a model file of ours may contain.

    Computed from the classes and functions themselves (so a renamed private class in a
    new scikit-learn release is noticed rather than silently trusted).  Anything a file
    references beyond these and :mod:`skops`'s own default-trusted scikit-learn/numpy
    types is refused at load time.  Imports every candidate module (slow-ish, for tests
    and documentation; loading uses :func:`is_known_type`).
    """
    names = (_source_name(m, a) for m, a in _KNOWN_SOURCES)
    return frozenset(n for n in names if n is not None)


# --------------------------------------------------------------------------- helpers

def _import_entry(table: dict[str, tuple[str, str]], name: str, what: str):
    if name not in table:
        raise ValueError(f"unknown {what} {name!r}; known: {', '.join(table)}")
    module, attr = table[name]
    return getattr(importlib.import_module(module), attr)


def segmenter_params(segment_params: dict | None) -> Any:
    """:class:`segmentation.SegmenterParams` from a plain dict of its fields (None: defaults)."""
    if not segment_params:
        return None
    from segmentation.params import SegmenterParams

    return SegmenterParams(**segment_params)


def full_segment_params(segment_params: dict | None) -> dict[str, Any]:
    """Every :class:`segmentation.SegmenterParams` field, defaults filled in, as a plain dict.

    Saved in the model so later changes of the segmenter's defaults cannot silently change
    what a trained model sees.
    """
    from segmentation.params import SegmenterParams

    return dataclasses.asdict(SegmenterParams(**(segment_params or {})))


def segment_image(image: np.ndarray, segment_params: dict | None = None, *,
                  keep_stages: bool = False) -> Any:
    """:func:`segmentation.segment` with the parameters of a plain dict (see above).

    The predict / feature path needs only the masks, so the teaching-only intermediate
    images are skipped by default (``keep_stages=False``; masks are identical).
    """
    from segmentation import segment

    return segment(image, segmenter_params(segment_params), keep_stages=keep_stages)


def _default_extractor():
    from features import FeatureExtractor

    return FeatureExtractor()


def _extractor_params(extractor: Any) -> dict[str, Any]:
    return dict(extractor.get_params(deep=False))


def _feature_names(extractor: Any) -> list[str]:
    from sklearn.exceptions import NotFittedError

    try:
        names = extractor.get_feature_names_out()
    except (NotFittedError, AttributeError, ValueError, TypeError):
        extractor.fit([])
        names = extractor.get_feature_names_out()
    return [str(n) for n in names]


def _as_image(item: Any) -> np.ndarray:
    """An RGB uint8 (H, W, 3) array from an array, a path (read with wbc_classic.io.images) or
    a :class:`wbc_classic.preprocess.augment.AugmentedImage`."""
    from wbc_classic.preprocess.augment import AugmentedImage

    if isinstance(item, AugmentedImage):
        return item.read()
    if isinstance(item, (str, os.PathLike)):
        from wbc_classic.io.images import read_image

        return read_image(item)
    arr = np.asarray(item)
    if arr.ndim == 2:
        arr = np.repeat(arr[..., None], 3, axis=2)
    if arr.ndim != 3 or arr.shape[2] not in (3, 4):
        raise ValueError(f"expected an RGB image of shape (H, W, 3), got shape {arr.shape}")
    arr = arr[..., :3]
    if arr.dtype != np.uint8:
        if np.issubdtype(arr.dtype, np.floating) and arr.size and arr.max() <= 1.0:
            arr = arr * 255.0
        arr = np.clip(arr, 0, 255).astype(np.uint8)
    return np.ascontiguousarray(arr)


def cell_features(image: np.ndarray, extractor: Any, segment_params: dict | None = None
                  ) -> tuple[np.ndarray, Any]:
    """Segment one leukocyte image and extract its features.

    Parameters
    ----------
    image : ndarray of uint8, shape (H, W, 3)
    extractor : features.FeatureExtractor
    segment_params : dict, optional
        :class:`segmentation.SegmenterParams` fields (see :func:`segment_image`).

    Returns
    -------
    features : ndarray of float32, shape (F,)
    segmentation : segmentation.Segmentation
    """
    seg = segment_image(image, segment_params)
    x = np.asarray(extractor.transform([(image, seg)]), dtype=np.float32)[0]
    return x, seg


def _features_chunk(items: Sequence[Any], extractor: Any, segment_params: dict | None,
                    catch: bool, stain: Any = None, rescale: float = 1.0
                    ) -> list[tuple[np.ndarray | None, str, bool]]:
    """Features of a chunk of images/paths: ``(x or None, error message, found)`` each.

    Images are read, resized by ``rescale`` (to the model's pixel scale) and segmented one by
    one (a failure is recorded per item when ``catch``), then the extractor runs once over
    the chunk's good pairs. A fitted ``stain`` normaliser changes the pixels the features
    see, not the segmentation.
    """
    from wbc_classic.preprocess.scale import rescale_image

    out: list[tuple[np.ndarray | None, str, bool]] = [(None, "", False)] * len(items)
    pairs: list[tuple[np.ndarray, Any]] = []
    good: list[int] = []
    for i, item in enumerate(items):
        try:
            image = _as_image(item)
            if rescale != 1.0:
                image = rescale_image(image, rescale)
            seg = segment_image(image, segment_params)
        except (ImportError, MemoryError):
            raise  # broken installation or machine, not a bad image
        except Exception as exc:  # noqa: BLE001 - reported per image
            if not catch:
                raise
            out[i] = (None, f"{type(exc).__name__}: {exc}" if not isinstance(
                exc, ValueError) else str(exc), False)
            continue
        if getattr(seg, "stages", None):
            seg = dataclasses.replace(seg, stages={})  # intermediate images: ~MBs per cell
        pairs.append((image if stain is None else stain.transform(image), seg))
        good.append(i)
    if not pairs:
        return out
    try:
        X = np.asarray(extractor.transform(pairs), dtype=np.float32)
    except Exception:  # noqa: BLE001 - find the culprit(s) one by one
        if not catch:
            raise
        X = None
    for j, i in enumerate(good):
        found = bool(getattr(pairs[j][1], "found", True))
        if X is not None:
            out[i] = (X[j], "", found)
            continue
        try:
            out[i] = (np.asarray(extractor.transform([pairs[j]]), np.float32)[0], "", found)
        except Exception as exc:  # noqa: BLE001
            out[i] = (None, f"feature extraction failed: {type(exc).__name__}: {exc}", False)
    return out


def _features_chunk_worker(items: Sequence[Any], extractor: Any, segment_params: dict | None,
                           catch: bool, stain: Any = None, rescale: float = 1.0
                           ) -> list[tuple[np.ndarray | None, str, bool]]:
    """:func:`_features_chunk` in a joblib worker: one thread per worker process.

    The workers already use every core, so OpenCV's own thread pool (and any BLAS pool,
    which joblib's loky backend limits as well) would only oversubscribe the CPU.
    """
    import cv2

    cv2.setNumThreads(1)
    return _features_chunk(items, extractor, segment_params, catch, stain, rescale)


def _chunks(n: int, n_jobs: int, target: int = 64) -> list[slice]:
    if n == 0:
        return []
    n_chunks = max(1, min(n, max(n_jobs * 4, -(-n // target))))
    bounds = np.linspace(0, n, n_chunks + 1).astype(int)
    return [slice(a, b) for a, b in zip(bounds[:-1], bounds[1:], strict=True) if b > a]


def _effective_jobs(n_jobs: int | None) -> int:
    if n_jobs is None:
        return 1
    if n_jobs < 0:
        return max(1, (os.cpu_count() or 1) + 1 + n_jobs)
    return max(1, int(n_jobs))


def with_augmented_copies(X: np.ndarray, y: np.ndarray, X_copies: np.ndarray, copies: int,
                          ok: np.ndarray | None = None
                          ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Stack training rows with the rows of their augmented copies.

    Parameters
    ----------
    X : ndarray, shape (n, F)
        Features of the training images.
    y : ndarray, shape (n,)
    X_copies : ndarray, shape (copies * n, F)
        Features of :func:`wbc_classic.preprocess.augment.augmented_copies` of those images (copy by
        copy).
    copies : int
    ok : ndarray of bool, shape (copies * n,), optional
        Copies to keep (e.g. those whose extraction succeeded); all when None.

    Returns
    -------
    X, y, groups : the stacked rows, labels, and each row's source image (``0..n-1``) for
        grouped cross-validation.
    """
    n = len(y)
    source = np.tile(np.arange(n), copies)
    keep = np.ones(source.size, bool) if ok is None else np.asarray(ok, bool)
    return (np.concatenate([X, X_copies[keep]]), np.concatenate([y, y[source[keep]]]),
            np.concatenate([np.arange(n), source[keep]]))


def augmentation_summary(augmentation: Any, copies: int) -> dict[str, Any]:
    """What a model's training augmentation was, for ``metadata["augmentation"]``."""
    return {"copies": int(copies), "transforms": repr(augmentation)}


# --------------------------------------------------------------------------- the model

class WBCModel:
    """A complete classical leukocyte classifier: image in, class probabilities out.

    Parameters
    ----------
    classifier : str or estimator, default="svm"
        A :data:`wbc_classic.classical.classifiers.CLASSIFIERS` name, or an unfitted scikit-learn
        classifier/pipeline with ``predict_proba``.
    extractor : features.FeatureExtractor, optional
        Feature extractor (default settings when None).  Only its parameters are saved.
    segment_params : dict, optional
        :class:`segmentation.SegmenterParams` fields to change from their defaults
        (the saved file records every field).
    classifier_params : dict, optional
        Extra keyword arguments of :func:`wbc_classic.classical.classifiers.make_classifier`
        (``class_weight``, ``feature_selection``, ``k``, ``search``, ``cv``).
    n_jobs : int, default=1
        Parallel jobs for feature extraction and the classifier.
    seed : int, default=0
        Seed of the classifier and of the cross-validation folds.
    stain : str, default="none"
        Stain / colour normalisation of the pixels the features are computed from
        (:func:`wbc_classic.preprocess.stain.make_normalizer` name: ``"none"``, ``"reinhard"``,
        ``"macenko"``, ``"histogram"``, ``"white-balance"``). It is fitted on training
        images by :meth:`fit` (or set with :meth:`set_stain`) and saved in the model file.
    augmentation : callable ``(image, rng) -> image``, optional
        Training-time augmentation (e.g.
        :func:`wbc_classic.preprocess.augment.default_augmentation`):
        :meth:`fit` adds ``augment_copies`` augmented copies of every training image
        (:func:`wbc_classic.preprocess.augment.augmented_copies`, seeded by ``seed``).  Its
        settings are
        recorded in ``metadata["augmentation"]``; prediction never augments.
    augment_copies : int, default=2
        Copies per training image when ``augmentation`` is set.

    Attributes
    ----------
    classes : tuple of str
        Class names; column order of :meth:`predict_proba`.
    pipeline_ : sklearn Pipeline
        The fitted classifier pipeline over feature vectors.
    feature_names_ : list of str
    versions : dict of str to str
        Package versions at training time.
    metadata : dict
        Training date, data summary, cross-validated accuracy, ...
    stain_ : wbc_classic.preprocess.stain.StainNormalizer or None
        The fitted normaliser (None for ``stain="none"``).
    um_per_pixel_ : float or None
        Pixel scale of the training images
        (:func:`wbc_classic.preprocess.scale.estimate_batch_scale`,
        set by :meth:`fit` / :meth:`set_scale`); images of another scale are resampled to it
        when their ``um_per_pixel`` is passed to the prediction methods.
    """

    def __init__(self, classifier: str | Any = "svm", *, extractor: Any = None,
                 segment_params: dict | None = None, classifier_params: dict | None = None,
                 n_jobs: int = 1, seed: int = 0, stain: str = "none",
                 augmentation: Callable[[np.ndarray, Any], np.ndarray] | None = None,
                 augment_copies: int = 2):
        self.classifier = classifier
        self.extractor = extractor
        self.segment_params = segment_params
        self.classifier_params = classifier_params
        self.n_jobs = n_jobs
        self.seed = seed
        self.stain = stain
        self.augmentation = augmentation
        self.augment_copies = augment_copies
        self.stain_: Any = None
        self.um_per_pixel_: float | None = None
        self.classes: tuple[str, ...] = ()
        self.versions: dict[str, str] = {}
        self.metadata: dict[str, Any] = {}

    # ------------------------------------------------------------------ construction
    @property
    def extractor_(self) -> Any:
        """The feature extractor in use (created with default settings if none was given)."""
        if self.extractor is None:
            self.extractor = _default_extractor()
        return self.extractor

    @property
    def classifier_name(self) -> str:
        """Registry name of the classifier, or its class name for a custom estimator."""
        if isinstance(self.classifier, str):
            return self.classifier
        return type(self.classifier).__name__

    def _make_estimator(self) -> Any:
        from sklearn.base import clone

        from wbc_classic.classical.classifiers import make_classifier

        if isinstance(self.classifier, str):
            params = dict(self.classifier_params or {})
            params.setdefault("seed", self.seed)
            params.setdefault("n_jobs", self.n_jobs)
            return make_classifier(self.classifier, **params)
        return clone(self.classifier)

    # ------------------------------------------------------------------ features
    def transform(self, images_or_paths: Sequence[Any], *,
                  um_per_pixel: float | None = None) -> np.ndarray:
        """Feature vectors of leukocyte images (arrays or paths); errors are raised.

        Parameters
        ----------
        images_or_paths : sequence of (H, W, 3) uint8 arrays or paths
        um_per_pixel : float, optional
            Pixel scale of these images; they are resampled to the model's
            :attr:`um_per_pixel_` first (see :meth:`rescale_factor`).

        Returns
        -------
        X : ndarray of float32, shape (n, F)
        """
        rows = self._extract(images_or_paths, catch=False,
                             rescale=self.rescale_factor(um_per_pixel))
        return np.stack([r[0] for r in rows]) if rows else np.zeros(
            (0, len(self.feature_names_)), np.float32)

    def rescale_factor(self, um_per_pixel: float | None) -> float:
        """Resize factor from images at ``um_per_pixel`` to the model's pixel scale.

        1.0 when ``um_per_pixel`` is None. Raises ValueError for a non-positive scale or
        when the model has no :attr:`um_per_pixel_` (trained without red cells in view, or
        saved by a version before scales were recorded).
        """
        if um_per_pixel is None:
            return 1.0
        if not (np.isfinite(um_per_pixel) and um_per_pixel > 0):
            raise ValueError(f"um_per_pixel must be a positive number, got {um_per_pixel!r}")
        ref = self.um_per_pixel_
        if ref is None or not np.isfinite(ref):
            raise ValueError("this model has no reference pixel scale (um_per_pixel_), so "
                             "images cannot be resampled to it; retrain it with this version")
        return float(um_per_pixel) / float(ref)

    def _extract(self, items: Sequence[Any], *, catch: bool, n_jobs: int | None = None,
                 rescale: float = 1.0) -> list[tuple[np.ndarray | None, str, bool]]:
        items = list(items)
        jobs = _effective_jobs(self.n_jobs if n_jobs is None else n_jobs)
        extractor = self.extractor_
        if jobs == 1 or len(items) < 8:
            return _features_chunk(items, extractor, self.segment_params, catch, self.stain_,
                                   rescale)
        from joblib import Parallel, delayed

        parts = Parallel(n_jobs=jobs)(
            delayed(_features_chunk_worker)(items[s], extractor, self.segment_params, catch,
                                            self.stain_, rescale)
            for s in _chunks(len(items), jobs))
        return [row for part in parts for row in part]

    # ------------------------------------------------------------------ fitting
    def fit(self, images_or_paths: Sequence[Any], y: Sequence[Any],
            classes: Sequence[str] | None = None, *, cv: int = 5) -> WBCModel:
        """Segment, extract features and fit the classifier.

        Parameters
        ----------
        images_or_paths : sequence of (H, W, 3) uint8 arrays or paths, length n
        y : array-like, shape (n,)
            Integer indices into ``classes``, or class names (then ``classes`` defaults
            to their sorted unique values).
        classes : sequence of str, optional
            Class names in index order.
        cv : int, default=5
            Folds of the reported cross-validated accuracy (0 skips it).
        """
        items = list(images_or_paths)
        self.set_stain(items)
        self.set_scale(items)
        X = self.transform(items)
        y = np.asarray(y)
        if self.augmentation is None or self.augment_copies <= 0:
            return self.fit_features(X, y, classes, cv=cv)
        from wbc_classic.preprocess.augment import augmented_copies

        copies = augmented_copies(items, self.augmentation, self.augment_copies, seed=self.seed)
        X, y, groups = with_augmented_copies(X, y, self.transform(copies), self.augment_copies)
        self.fit_features(X, y, classes, cv=cv, groups=groups)
        self.metadata["augmentation"] = augmentation_summary(self.augmentation,
                                                             self.augment_copies)
        return self

    def set_stain(self, reference_images: Sequence[Any], n_ref: int = 50) -> WBCModel:
        """Fit the ``stain`` normaliser on up to ``n_ref`` of the given images (seeded pick).

        Parameters
        ----------
        reference_images : sequence of (H, W, 3) uint8 arrays or paths
            Training images; the normaliser's target colours are learnt from them.
        n_ref : int
            At most this many images are read.
        """
        from wbc_classic.preprocess.stain import fit_normalizer

        self.stain_ = fit_normalizer(self.stain, reference_images, n_ref=n_ref, seed=self.seed,
                                     read=_as_image)
        return self

    def set_scale(self, reference_images: Sequence[Any], n_ref: int = 50) -> WBCModel:
        """Record the training images' pixel scale in :attr:`um_per_pixel_`.

        The median red-cell estimate over up to ``n_ref`` of them
        (:func:`wbc_classic.preprocess.scale.estimate_batch_scale`, seeded pick); None when none
        shows
        enough red cells.
        """
        from wbc_classic.preprocess.scale import estimate_batch_scale

        um = estimate_batch_scale(reference_images, n=n_ref, seed=self.seed, read=_as_image)
        self.um_per_pixel_ = um if np.isfinite(um) else None
        return self

    def fit_features(self, X: np.ndarray, y: Sequence[Any],
                     classes: Sequence[str] | None = None, *, cv: int = 5,
                     data_summary: dict | None = None,
                     groups: np.ndarray | None = None) -> WBCModel:
        """Fit the classifier on precomputed feature vectors (e.g. from the feature cache).

        Parameters
        ----------
        X : ndarray, shape (n, F)
            Features from this model's extractor (same settings, same column order).
        y : array-like, shape (n,)
            Integer class indices into ``classes`` or class names.
        classes : sequence of str, optional
        cv : int, default=5
            Folds of the cross-validated accuracy stored in ``metadata`` (0 skips).
        data_summary : dict, optional
            Stored in ``metadata["data"]`` (e.g. the data root); counts per class are
            added automatically.
        groups : ndarray of int, shape (n,), optional
            Source image of each row: rows of one group (an image and its augmented copies)
            stay in one cross-validation fold (:class:`~sklearn.model_selection.
            StratifiedGroupKFold`), so the reported accuracy is not inflated by near copies.
        """
        from sklearn.model_selection import StratifiedGroupKFold, StratifiedKFold, cross_val_score

        t0 = time.perf_counter()
        X = np.asarray(X, dtype=np.float32)
        y_arr = np.asarray(y)
        if y_arr.dtype.kind in "USO":
            names = tuple(str(c) for c in (classes if classes is not None
                                           else np.unique(y_arr.astype(str))))
            lookup = {c: i for i, c in enumerate(names)}
            unknown = sorted(set(y_arr.astype(str)) - set(lookup))
            if unknown:
                raise ValueError(f"labels not in classes: {unknown}")
            y_idx = np.array([lookup[str(v)] for v in y_arr], dtype=np.int64)
        else:
            if classes is None:
                raise ValueError("integer labels need `classes` (the class names in order)")
            names = tuple(str(c) for c in classes)
            y_idx = y_arr.astype(np.int64)
            if y_idx.size and (y_idx.min() < 0 or y_idx.max() >= len(names)):
                raise ValueError(f"label indices must be in [0, {len(names)})")
        if X.ndim != 2 or X.shape[0] != y_idx.shape[0]:
            raise ValueError(f"X must be (n, F) with n = len(y) = {y_idx.shape[0]}, "
                             f"got shape {X.shape}")
        if not np.all(np.isfinite(X)):
            raise ValueError("features contain NaN or inf")
        self.classes = names
        self.feature_names_ = _feature_names(self.extractor_)
        if len(self.feature_names_) != X.shape[1]:
            raise ValueError(f"X has {X.shape[1]} columns but the extractor makes "
                             f"{len(self.feature_names_)} features")

        estimator = self._make_estimator()
        cv_info: dict[str, Any] = {}
        counts = np.bincount(y_idx, minlength=len(names))
        if hasattr(estimator, "best_estimator_") or hasattr(estimator, "param_grid"):
            estimator.fit(X, y_idx)
            cv_info = {"cv_accuracy": float(estimator.best_score_),
                       "cv_note": "best mean score of the hyper-parameter search",
                       "best_params": {k: _plain(v) for k, v in estimator.best_params_.items()}}
            pipeline = estimator.best_estimator_
        else:
            folds = int(min(cv, counts[counts > 0].min())) if cv else 0
            if folds >= 2:
                kfold = StratifiedKFold if groups is None else StratifiedGroupKFold
                skf = kfold(folds, shuffle=True, random_state=self.seed)
                scores = cross_val_score(estimator, X, y_idx, cv=skf, scoring="accuracy",
                                         groups=groups)
                cv_info = {"cv_accuracy": float(scores.mean()),
                           "cv_accuracy_std": float(scores.std()),
                           "cv_folds": folds, "cv_scores": [float(s) for s in scores]}
            pipeline = estimator.fit(X, y_idx)
        self.pipeline_ = pipeline
        self.versions = package_versions()
        data = dict(data_summary or {})
        data.update({"n_samples": int(X.shape[0]), "n_features": int(X.shape[1]),
                     "counts": {c: int(n) for c, n in zip(names, counts, strict=True)}})
        self.metadata = {
            "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
            "classifier": self.classifier_name,
            "classifier_params": {k: _plain(v) for k, v in
                                  (self.classifier_params or {}).items()},
            "seed": int(self.seed),
            "data": data,
            "fit_seconds": round(time.perf_counter() - t0, 3),
            **cv_info,
        }
        return self

    # ------------------------------------------------------------------ prediction
    def _check_fitted(self) -> None:
        if not hasattr(self, "pipeline_"):
            raise RuntimeError("this WBCModel is not fitted; call fit() or load a model file")

    def predict_proba_features(self, X: np.ndarray) -> np.ndarray:
        """Class probabilities of feature vectors.

        Parameters
        ----------
        X : ndarray, shape (n, F)

        Returns
        -------
        proba : ndarray of float64, shape (n, K)
            Columns in :attr:`classes` order; rows sum to 1.
        """
        self._check_fitted()
        X = np.asarray(X, dtype=np.float32)
        if X.shape[0] == 0:
            return np.zeros((0, len(self.classes)))
        p = np.asarray(self.pipeline_.predict_proba(X), dtype=np.float64)
        fitted = np.asarray(self.pipeline_.classes_, dtype=np.int64)
        if p.shape[1] == len(self.classes) and np.array_equal(fitted, np.arange(len(fitted))):
            return p
        full = np.zeros((p.shape[0], len(self.classes)))
        full[:, fitted] = p
        return full

    def predict_proba_segmented(self, pairs: Sequence[tuple[np.ndarray, Any]]) -> np.ndarray:
        """Class probabilities of already segmented cells ``[(image, Segmentation), ...]``.

        Returns
        -------
        proba : ndarray of float64, shape (n, K)
        """
        self._check_fitted()
        pairs = list(pairs)
        if not pairs:
            return np.zeros((0, len(self.classes)))
        X = np.asarray(self.extractor_.transform(pairs), dtype=np.float32)
        return self.predict_proba_features(X)

    def predict_proba(self, images: Sequence[Any], *,
                      um_per_pixel: float | None = None) -> np.ndarray:
        """Class probabilities of leukocyte images.

        Parameters
        ----------
        images : sequence of ndarray (H, W, 3) uint8, or of paths
            One leukocyte per image (a PBC-style crop).  A single (H, W, 3) array is
            accepted as a batch of one.
        um_per_pixel : float, optional
            Pixel scale of these images (e.g. from
            :func:`wbc_classic.preprocess.scale.estimate_batch_scale`); they are resampled to the
            model's :attr:`um_per_pixel_` before segmentation. None: used as they are.

        Returns
        -------
        proba : ndarray of float64, shape (n, K)
            Columns in :attr:`classes` order.
        """
        self._check_fitted()
        if isinstance(images, np.ndarray) and images.ndim == 3:
            images = [images]
        return self.predict_proba_features(self.transform(images, um_per_pixel=um_per_pixel))

    def predict(self, images: Sequence[Any], *, um_per_pixel: float | None = None
                ) -> np.ndarray:
        """Predicted class names, ndarray of str, shape (n,) (the most probable class);
        ``um_per_pixel`` as in :meth:`predict_proba`."""
        proba = self.predict_proba(images, um_per_pixel=um_per_pixel)
        return np.asarray(self.classes)[proba.argmax(axis=1)] if len(proba) else \
            np.asarray([], dtype=str)

    def predict_paths(self, paths: Sequence[str | os.PathLike[str]], *,
                      n_jobs: int | None = None, um_per_pixel: float | None = None
                      ) -> list[dict[str, Any]]:
        """Classify image files one by one in parallel; a bad file never stops the batch.

        Parameters
        ----------
        paths : sequence of path-like
        n_jobs : int, optional
            Parallel workers for decoding + segmentation + features (default ``n_jobs``).
        um_per_pixel : float, optional
            Pixel scale of these images, as in :meth:`predict_proba`.

        Returns
        -------
        rows : list of dict, one per path, in input order, with keys
            ``path`` (str), ``status`` ("ok" or "error"), ``predicted_class`` (str, "" on
            error), ``proba`` (ndarray (K,) float64, NaN on error), ``error`` (str, "" if
            ok) and ``note`` (e.g. "no leukocyte found" when the segmenter found none).
        """
        self._check_fitted()
        paths = [str(p) for p in paths]
        feats = self._extract(paths, catch=True, n_jobs=n_jobs,
                              rescale=self.rescale_factor(um_per_pixel))
        ok = [i for i, (x, _, _) in enumerate(feats) if x is not None]
        proba = np.full((len(paths), len(self.classes)), np.nan)
        if ok:
            proba[ok] = self.predict_proba_features(np.stack([feats[i][0] for i in ok]))
        rows = []
        for i, (path, (x, err, found)) in enumerate(zip(paths, feats, strict=True)):
            good = x is not None
            rows.append({
                "path": path,
                "status": "ok" if good else "error",
                "predicted_class": self.classes[int(np.argmax(proba[i]))] if good else "",
                "proba": proba[i],
                "error": err,
                "note": "" if (not good or found) else "no leukocyte found; "
                        "prediction from empty-mask features",
            })
        return rows

    # ------------------------------------------------------------------ persistence
    def to_dict(self) -> dict[str, Any]:
        """The plain dict written to the model file (see the module docstring)."""
        self._check_fitted()
        extractor = self.extractor_
        cls_name = _type_name(type(extractor))
        cls_name = {"features.extractor.FeatureExtractor": "features.FeatureExtractor"}.get(
            cls_name, cls_name)
        if not cls_name.startswith("features.") or "FeatureExtractor" not in cls_name:
            raise TypeError(f"cannot save extractor of type {cls_name}")
        return {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "classes": list(self.classes),
            "classifier": self.classifier_name,
            "pipeline": self.pipeline_,
            "extractor": {"class": "features.FeatureExtractor",
                          "params": {k: _plain(v) for k, v in
                                     _extractor_params(extractor).items()}},
            "feature_names": list(self.feature_names_),
            "stain": None if self.stain_ is None else _plain(self.stain_.to_dict()),
            "scale": {"um_per_pixel": None if self.um_per_pixel_ is None
                      else float(self.um_per_pixel_)},
            "segmenter": {"function": "segmentation.segment",
                          "params": {k: _plain(v) for k, v in
                                     full_segment_params(self.segment_params).items()}},
            "versions": dict(self.versions),
            "metadata": _plain(self.metadata),
        }

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write the model to one ``.skops`` file, atomically (compressed zip).

        Returns
        -------
        path : pathlib.Path
        """
        sio = _import_skops_io()

        from wbc_classic.io.atomic import atomic_path

        path = Path(path)
        obj = self.to_dict()
        with atomic_path(path) as tmp:
            sio.dump(obj, tmp, compression=zipfile.ZIP_DEFLATED, compresslevel=6)
        return path

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> WBCModel:
        """Load a model file written by :meth:`save`; see :func:`load`."""
        return load(path)

    def __repr__(self) -> str:
        state = f"classes={list(self.classes)}" if self.classes else "unfitted"
        return f"WBCModel(classifier={self.classifier_name!r}, {state})"


def _plain(value: Any) -> Any:
    """Turn numpy scalars/arrays and tuples inside metadata into plain Python values."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(_plain(v) for v in value)
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    return value


# --------------------------------------------------------------------------- loading

def _sniff(path: Path) -> None:
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


def load(path: str | os.PathLike[str]) -> WBCModel:
    """Load a classical model saved by :meth:`WBCModel.save`, refusing anything else.

    Only the types of :func:`known_types` (plus skops's default-trusted types) are
    allowed; no pickle is ever unpickled.

    Parameters
    ----------
    path : path-like
        A ``.skops`` file.

    Returns
    -------
    model : WBCModel

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
    sio = _import_skops_io()

    path = Path(path)
    _sniff(path)
    try:
        untrusted = sio.get_untrusted_types(file=path)
    except Exception as exc:  # noqa: BLE001 - any parse failure is a bad file
        raise ModelFileError(path, f"corrupt or not a skops file ({type(exc).__name__}: "
                                   f"{exc})") from None
    refused = sorted(t for t in untrusted if not is_known_type(t))
    if refused:
        raise ModelFileError(path, "it references types that are not part of a "
                                   f"wbc-classic model and were refused: {refused}")
    try:
        obj = sio.load(path, trusted=list(untrusted))
    except Exception as exc:  # noqa: BLE001
        raise ModelFileError(path, f"corrupt skops file ({type(exc).__name__}: {exc})"
                             ) from None
    return _from_dict(obj, path)


def _from_dict(obj: Any, path: Path) -> WBCModel:
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
    fitted = np.asarray(pipeline.classes_)
    if fitted.dtype.kind not in "iu" or fitted.min() < 0 or fitted.max() >= len(classes):
        raise ModelFileError(path, f"classifier classes {fitted.tolist()} do not index "
                                   f"the {len(classes)} class names")

    saved = obj.get("versions") or {}
    if isinstance(saved, dict):
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
        now = _feature_names(extractor)
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
    model = WBCModel(classifier=str(obj.get("classifier", "custom")), extractor=extractor,
                     segment_params=seg_params,
                     stain="none" if normalizer is None else normalizer.name)
    model.stain_ = normalizer
    scale = obj.get("scale")
    um = scale.get("um_per_pixel") if isinstance(scale, dict) else None
    if um is not None and not (isinstance(um, (int, float)) and np.isfinite(um) and um > 0):
        raise ModelFileError(path, f"invalid pixel scale {um!r} in the model file")
    model.um_per_pixel_ = None if um is None else float(um)
    model.classes = tuple(classes)
    model.pipeline_ = pipeline
    model.feature_names_ = names
    model.versions = dict(saved) if isinstance(saved, dict) else {}
    model.metadata = dict(obj.get("metadata") or {})
    model.metadata["file"] = str(path)
    return model
