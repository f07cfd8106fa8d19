"""The classical leukocyte classifier: a scikit-learn estimator from images to classes.

A :class:`WBCModel` goes from an RGB leukocyte image (or its file) to class probabilities::

    image --read--> RGB uint8 --rescale--> --segment--> Segmentation --stain--> pixels
          --FeatureExtractor--> features --FeatureClassifier--> probabilities over classes_

Every image it sees -- in :meth:`~WBCModel.fit`, :meth:`~WBCModel.predict`,
:meth:`~WBCModel.predict_paths`, :meth:`~WBCModel.transform` and the field cells of
``wbc-classic count`` (as :class:`~wbc_classic.classical.extraction.Segmented` cells, whose
segmentation is already done) -- goes through the one
feature engine, :func:`wbc_classic.classical.extraction.extract_features`, with the model's
segmenter, extractor, fitted stain normaliser and rescale factor (and its feature cache when
``cache_dir`` is set). The feature half is a
:class:`wbc_classic.classical.classifiers.FeatureClassifier` (``estimator_``).

The model file (format, trust list, loading) is :mod:`wbc_classic.classical.modelfile`.

Example
-------
>>> from wbc_classic import load                                  # doctest: +SKIP
>>> model = load("model.skops")                                   # doctest: +SKIP
>>> model.predict(["cell1.jpg", "cell2.jpg"])                     # doctest: +SKIP
array(['neutrophil', 'lymphocyte'], dtype='<U10')
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import os
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin

__all__ = ["WBCModel", "feature_names", "full_segment_params", "segment_image",
           "segmenter_params", "with_augmented_copies"]


# --------------------------------------------------------------------------- helpers

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


def feature_names(extractor: Any) -> list[str]:
    """The output names of a feature extractor (fitted on nothing first if it needs it)."""
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


def _check_weights(sample_weight: Sequence[float] | np.ndarray, n: int) -> np.ndarray:
    """Sample weights as float64 (n,), finite and >= 0 with a positive sum (else ValueError)."""
    w = np.asarray(sample_weight, dtype=np.float64)
    if w.shape != (n,):
        raise ValueError(f"sample_weight must have one value per sample ({n}), got shape "
                         f"{w.shape}")
    if not np.all(np.isfinite(w)) or (w < 0).any() or not w.sum() > 0:
        raise ValueError("sample_weight must be finite, >= 0 and not all 0")
    return w


def _check_mask(mask: Sequence[bool] | np.ndarray, n: int) -> np.ndarray:
    """A row mask as bool (n,) (else ValueError)."""
    m = np.asarray(mask)
    if m.shape != (n,) or m.dtype.kind not in "bi" or not np.isin(m, (0, 1)).all():
        raise ValueError(f"align_rows must be one True/False per sample ({n}), got shape "
                         f"{m.shape}")
    return m.astype(bool)


def _one_blas_thread() -> Any:
    """A context in which BLAS runs on one thread, so fits and predictions give the same
    numbers on any number of cores: a multi-threaded BLAS sums in another order, and the
    lbfgs fit and the pseudo-label rounds of ``adapt`` amplify the rounding (logreg's
    accuracy on jtsc_seg after ``adapt`` moved from 0.69 to 0.66 between 1 and 2 threads)."""
    from threadpoolctl import threadpool_limits

    return threadpool_limits(limits=1, user_api="blas")


def _classifier_view(estimator: Any, X: np.ndarray) -> np.ndarray:
    """The rows as the final classifier sees them: through the fitted pipeline's scaler and
    feature selection (``X`` itself for a custom estimator that is not a pipeline)."""
    pipe = estimator.pipeline_
    if hasattr(pipe, "steps") and len(pipe.steps) > 1:
        return np.asarray(pipe[:-1].transform(np.asarray(X, dtype=np.float32)),
                          dtype=np.float64)
    return np.asarray(X, dtype=np.float64)


# --------------------------------------------------------------------------- the model

class WBCModel(ClassifierMixin, BaseEstimator):
    """A complete classical leukocyte classifier: image in, class probabilities out.

    A scikit-learn classifier whose samples are images: ``fit(images_or_paths, y)``,
    ``predict(images_or_paths)``; ``clone``, ``cross_val_score`` and ``is_classifier`` work.
    Every parameter is stored as given; the fitted state (trailing ``_``) exists only after
    :meth:`fit` / :meth:`fit_features` or :func:`wbc_classic.classical.modelfile.load`.

    Parameters
    ----------
    classifier : str or estimator, default="svm"
        A :data:`wbc_classic.classical.classifiers.CLASSIFIERS` name, or an unfitted
        scikit-learn classifier/pipeline with ``predict_proba``.
    extractor : features.FeatureExtractor, optional
        Feature extractor (default settings when None); cloned at fit. Only its parameters
        are saved.
    segment_params : dict, optional
        :class:`segmentation.SegmenterParams` fields to change from their defaults
        (the saved file records every field).
    classifier_params : dict, optional
        Extra keyword arguments of :func:`wbc_classic.classical.classifiers.make_classifier`
        (``class_weight``, ``feature_selection``, ``k``, ``search``, ``cv``, ``params``).
    classes : sequence of str, optional
        Class names in label order (the column order of :meth:`predict_proba`); needed when
        ``y`` holds integer indices. None: the sorted names in ``y``.
    n_jobs : int, default=1
        Parallel jobs for feature extraction and the classifier.
    seed : int, default=0
        Seed of the classifier, the cross-validation folds, the stain/scale reference pick
        and the augmentation.
    stain : str, default="none"
        Stain / colour normalisation of the pixels the features are computed from
        (:func:`wbc_classic.preprocess.stain.make_normalizer` name: ``"none"``,
        ``"reinhard"``, ``"macenko"``, ``"histogram"``, ``"white-balance"``), fitted by
        :meth:`fit` on ``n_ref`` training images and saved in the model file.
    augmentation : callable ``(image, rng) -> image``, optional
        Training-time augmentation (e.g.
        :func:`wbc_classic.preprocess.augment.default_augmentation`): :meth:`fit` adds
        ``augment_copies`` augmented copies of every usable training image
        (:func:`wbc_classic.preprocess.augment.augmented_copies`, seeded by ``seed``);
        copies of one image stay in one cross-validation fold. Prediction never augments.
    augment_copies : int, default=2
        Copies per training image when ``augmentation`` is set.
    n_ref : int, default=50
        Training images (a seeded pick) the stain normaliser and the pixel scale are
        estimated from.
    cv : int, default=5
        Folds of the cross-validated accuracy :meth:`fit` / :meth:`fit_features` record in
        ``metadata_`` (0 skips it; never more than the smallest class).
    cache_dir : path, optional
        Per-image feature cache of :func:`~wbc_classic.classical.extraction.extract_features`
        (keyed by content, segmenter, extractor, stain normaliser and rescale factor);
        None: no cache.

    Attributes
    ----------
    classes_ : ndarray of str, shape (K,)
        Class names; column order of :meth:`predict_proba`.
    estimator_ : wbc_classic.classical.classifiers.FeatureClassifier
        The fitted classifier over feature vectors; its ``classes_`` are indices into
        ``classes_`` (a class absent from the training labels gets probability 0).
    extractor_ : features.FeatureExtractor
    feature_names_ : list of str
    stain_ : wbc_classic.preprocess.stain.StainNormalizer or None
        The fitted normaliser (None for ``stain="none"``).
    um_per_pixel_ : float or None
        Pixel scale of the training images
        (:func:`wbc_classic.preprocess.scale.estimate_batch_scale`); images of another
        scale are resampled to it when their ``um_per_pixel`` is passed to the prediction
        methods. None when the training images showed too few red cells.
    shift_ : wbc_classic.classical.shift.ShiftScorer or None
        Distance of a cell's features to the training cells' and the flag threshold
        (:meth:`shift_scores`); None for files written before format 3.
    class_means_ : ndarray of float64, shape (n_classes, n_features)
        Mean feature vector of each class's training rows (NaN for a class without rows):
        what ``adapt --method class-means`` aligns a lab to. Absent in older files.
    alignment_ : wbc_classic.classical.adapt.FeatureAlignment
        Only after :meth:`adapt`, or :meth:`fit_features` with ``align_rows``: the
        alignment of a laboratory's features to the training features, applied before the
        classifier and the shift scorer.
    input_um_per_pixel_ : float
        Only after :meth:`adapt` with a scale: that laboratory's pixel scale, the default
        ``um_per_pixel`` of every prediction.
    versions_ : dict of str to str
        Package versions at training time.
    metadata_ : dict
        Training date, data summary, cross-validated accuracy, skipped images, timings, ...
    """

    def __init__(self, classifier: str | Any = "svm", *, extractor: Any = None,
                 segment_params: dict | None = None, classifier_params: dict | None = None,
                 classes: Sequence[str] | None = None, n_jobs: int = 1, seed: int = 0,
                 stain: str = "none",
                 augmentation: Callable[[np.ndarray, Any], np.ndarray] | None = None,
                 augment_copies: int = 2, n_ref: int = 50, cv: int = 5,
                 cache_dir: str | os.PathLike[str] | None = None):
        self.classifier = classifier
        self.extractor = extractor
        self.segment_params = segment_params
        self.classifier_params = classifier_params
        self.classes = classes
        self.n_jobs = n_jobs
        self.seed = seed
        self.stain = stain
        self.augmentation = augmentation
        self.augment_copies = augment_copies
        self.n_ref = n_ref
        self.cv = cv
        self.cache_dir = cache_dir

    # ------------------------------------------------------------------ construction
    @property
    def classifier_name(self) -> str:
        """Registry name of the classifier, or its class name for a custom estimator."""
        if isinstance(self.classifier, str):
            return self.classifier
        return type(self.classifier).__name__

    @property
    def pipeline_(self) -> Any:
        """The fitted scikit-learn pipeline over feature vectors (``estimator_.pipeline_``)."""
        self._check_fitted()
        return self.estimator_.pipeline_

    def _new_extractor(self) -> Any:
        from sklearn.base import clone

        if self.extractor is None:
            from features import FeatureExtractor

            return FeatureExtractor()
        return clone(self.extractor)

    def _segmenter(self) -> Callable[[np.ndarray], Any]:
        """``segmentation.segment`` with this model's settings, as the feature engine's
        segmenter. Default settings are spelt one way however they were given (``None``,
        ``{}`` or every field, as a saved model has them), so every default-settings run
        shares its cache keys; the teaching-only intermediate images are skipped (the masks
        are the same, the segmentation ~25 % faster)."""
        import functools

        from segmentation import segment
        from segmentation.pipeline import SegmenterParams

        params = segmenter_params(self.segment_params)
        if params is None or params == SegmenterParams():
            return functools.partial(segment, keep_stages=False)
        return functools.partial(segment, params=params, keep_stages=False)

    def _check_fitted(self) -> None:
        if not hasattr(self, "estimator_"):
            raise RuntimeError("this WBCModel is not fitted; call fit() or load a model file")

    # ------------------------------------------------------------------ features
    def extract(self, images_or_paths: Sequence[Any], *, um_per_pixel: float | None = None,
                n_jobs: int | None = None, progress: bool | str = False,
                cache_dir: str | os.PathLike[str] | None = None) -> Any:
        """Features of images under this model's front end, through the one feature engine.

        :func:`wbc_classic.classical.extraction.extract_features` with this model's
        segmenter, extractor, fitted stain normaliser, rescale factor and ``cache_dir``. A
        bad image does not stop the batch (it is listed in the result's ``failures``).
        On an unfitted model (e.g. to extract a benchmark's features once and fit many
        classifiers with :meth:`fit_features`) the extractor is a fresh one of these
        settings; that is refused when ``stain`` needs fitting first.

        Parameters
        ----------
        images_or_paths : sequence of (H, W, 3) uint8 arrays, paths, AugmentedImage or
            :class:`~wbc_classic.classical.extraction.Segmented`
        um_per_pixel : float, optional
            Pixel scale of these images; they are resampled to :attr:`um_per_pixel_` before
            segmentation (see :meth:`rescale_factor`).
        n_jobs : int, optional
            Workers (default ``n_jobs``).
        progress : bool or str, default False
            Report progress (:class:`wbc_classic.io.progress.Progress`), labelled by the
            string given ("features" for True).
        cache_dir : path, optional
            Feature cache for this call (default: the model's ``cache_dir``).

        Returns
        -------
        wbc_classic.classical.extraction.ExtractionResult
            ``X`` float32 (n, F), ``ok``, ``found``, ``failures``, ...
        """
        from wbc_classic.classical.extraction import Segmented, extract_features
        from wbc_classic.preprocess.augment import AugmentedImage

        fitted = hasattr(self, "estimator_") or hasattr(self, "extractor_")
        if fitted:
            extractor, stain = self.extractor_, self.stain_
        elif self.stain not in (None, "none"):
            raise RuntimeError(f"this WBCModel is not fitted and its {self.stain!r} stain "
                               "normaliser must be fitted first; call fit()")
        else:
            extractor, stain = self._new_extractor(), None
        items = [item if isinstance(item, (AugmentedImage, Segmented)) else
                 str(item) if isinstance(item, (str, os.PathLike)) else _as_image(item)
                 for item in images_or_paths]
        return extract_features(items, segmenter=self._segmenter(), extractor=extractor,
                                n_jobs=int(self.n_jobs if n_jobs is None else n_jobs),
                                cache_dir=self.cache_dir if cache_dir is None else cache_dir,
                                progress=progress, stain=stain,
                                rescale=self.rescale_factor(um_per_pixel))

    def transform(self, images_or_paths: Sequence[Any], *,
                  um_per_pixel: float | None = None) -> np.ndarray:
        """Feature vectors of leukocyte images (arrays or paths); a bad image raises.

        Parameters
        ----------
        images_or_paths : sequence of (H, W, 3) uint8 arrays or paths
        um_per_pixel : float, optional
            As in :meth:`extract`.

        Returns
        -------
        X : ndarray of float32, shape (n, F)

        Raises
        ------
        ValueError
            Naming the first image whose features could not be computed.
        """
        result = self.extract(images_or_paths, um_per_pixel=um_per_pixel)
        if result.failures:
            raise ValueError(str(result.failures[0]))
        return result.X

    def rescale_factor(self, um_per_pixel: float | None) -> float:
        """Resize factor from images at ``um_per_pixel`` to the model's pixel scale.

        When ``um_per_pixel`` is None: the scale of the laboratory the model was adapted to
        (:meth:`adapt`), else 1.0. Raises ValueError for a non-positive scale or
        when the model has no :attr:`um_per_pixel_` (trained without red cells in view, or
        saved by a version before scales were recorded).
        """
        if um_per_pixel is None:
            um_per_pixel = self.__dict__.get("input_um_per_pixel_")
            if um_per_pixel is None:
                return 1.0
        if not (np.isfinite(um_per_pixel) and um_per_pixel > 0):
            raise ValueError(f"um_per_pixel must be a positive number, got {um_per_pixel!r}")
        ref = getattr(self, "um_per_pixel_", None)
        if ref is None or not np.isfinite(ref):
            raise ValueError("this model has no reference pixel scale (um_per_pixel_), so "
                             "images cannot be resampled to it; retrain it with this version")
        return float(um_per_pixel) / float(ref)

    # ------------------------------------------------------------------ fitting
    def fit(self, X: Sequence[Any], y: Sequence[Any] | np.ndarray, *,
            sample_weight: Sequence[float] | np.ndarray | None = None,
            align_rows: Sequence[bool] | np.ndarray | None = None,
            progress: bool = False) -> WBCModel:
        """Learn everything from training images: pixel scale, stain, features, classifier.

        In order: the training images' pixel scale (:attr:`um_per_pixel_`) and the stain
        normaliser (:attr:`stain_`) from a seeded pick of ``n_ref`` of them; their features
        through the feature engine (with ``cache_dir``); ``augment_copies`` augmented copies
        of every usable image when ``augmentation`` is set; then :meth:`fit_features`.
        Images whose features cannot be computed (unreadable, segmenter or extractor error,
        non-finite values) are skipped and listed in ``metadata_["data"]["skipped"]``.

        Parameters
        ----------
        X : sequence of (H, W, 3) uint8 arrays or paths, length n
            One leukocyte per image.
        y : array-like, shape (n,)
            Class names, or integer indices into ``classes``.
        sample_weight : array-like of float, shape (n,), optional
            Weight of each image in the classifier's fit (e.g. a laboratory's few labelled
            cells weighted up against a large public set); augmented copies inherit their
            image's weight. None: all 1.
        align_rows : array-like of bool, shape (n,), optional
            The images of the laboratory the model is for (see :meth:`fit_features`);
            augmented copies follow their image.
        progress : bool, default False
            Report the feature stage's progress (:class:`wbc_classic.io.progress.Progress`).

        Returns
        -------
        self

        Raises
        ------
        ValueError
            No usable image, labels outside ``classes``, bad weights, or a stain
            normaliser that cannot be fitted on these images.
        """
        from wbc_classic.preprocess.scale import estimate_batch_scale
        from wbc_classic.preprocess.stain import fit_normalizer

        items = [str(x) if isinstance(x, (str, os.PathLike)) else x for x in X]
        y = np.asarray(y)
        if y.shape != (len(items),):
            raise ValueError(f"y must have one label per image: {len(items)} images, "
                             f"y of shape {y.shape}")
        weight = None if sample_weight is None else _check_weights(sample_weight, len(items))
        target = None if align_rows is None else _check_mask(align_rows, len(items))
        for name in ("extractor_", "estimator_", "alignment_", "input_um_per_pixel_"):
            # a refit starts from nothing
            self.__dict__.pop(name, None)
        t0 = time.perf_counter()
        scale = estimate_batch_scale(items, n=self.n_ref, seed=self.seed, read=_as_image)
        um = float(scale) if np.isfinite(scale) else None
        try:
            stain = fit_normalizer(self.stain, items, n_ref=self.n_ref, seed=self.seed,
                                   read=_as_image)
        except OSError as exc:
            raise ValueError(f"cannot fit the {self.stain} stain normaliser: {exc}") from exc
        self.extractor_, self.stain_, self.um_per_pixel_ = self._new_extractor(), stain, um
        result = self.extract(items, progress=progress)
        ok = result.ok & np.all(np.isfinite(result.X), axis=1)
        skipped = [str(f) for f in result.failures] + [
            f"{items[i] if isinstance(items[i], str) else f'<array {i}>'}: non-finite "
            "features" for i in np.flatnonzero(result.ok & ~ok)]
        if not ok.any():
            raise ValueError("no usable training images" + (f" (first problem: "
                                                            f"{skipped[0]})" if skipped else ""))
        Xf, yf, groups = result.X[ok], y[ok], None
        wf = None if weight is None else weight[ok]
        tf = None if target is None else target[ok]
        used_copies = 0
        if self.augmentation is not None and self.augment_copies > 0:
            from wbc_classic.preprocess.augment import augmented_copies

            good = [items[i] for i in np.flatnonzero(ok)]
            copies = augmented_copies(good, self.augmentation, self.augment_copies,
                                      seed=self.seed)
            aug = self.extract(copies, progress=progress)
            aug_ok = aug.ok & np.all(np.isfinite(aug.X), axis=1)
            used_copies = int(aug_ok.sum())
            Xf, yf, groups = with_augmented_copies(Xf, yf, aug.X, self.augment_copies, aug_ok)
            if wf is not None:  # a copy weighs what its source image weighs
                wf = wf[groups]
            if tf is not None:
                tf = tf[groups]
        t_features = time.perf_counter() - t0
        self.fit_features(Xf, yf, groups=groups, stain_normalizer=stain, um_per_pixel=um,
                          sample_weight=wf, align_rows=tf)
        data = self.metadata_["data"]
        data.update(n_images=len(items), n_skipped=len(skipped), skipped=skipped[:50])
        if groups is not None:
            self.metadata_["augmentation"] = {
                "copies": int(self.augment_copies), "transforms": repr(self.augmentation),
                "used": used_copies, "offered": self.augment_copies * int(ok.sum())}
        self.metadata_["train_seconds"] = {"features": round(t_features, 2),
                                           "fit": self.metadata_["fit_seconds"]}
        return self

    def fit_features(self, X: np.ndarray, y: Sequence[Any] | np.ndarray, *,
                     groups: np.ndarray | None = None, stain_normalizer: Any = None,
                     um_per_pixel: float | None = None,
                     sample_weight: Sequence[float] | np.ndarray | None = None,
                     align_rows: Sequence[bool] | np.ndarray | None = None,
                     align_check: bool = True) -> WBCModel:
        """Fit the classifier on precomputed feature vectors (e.g. from :meth:`extract`).

        The one fitting step: :meth:`fit` ends here, and benchmarks that extract the
        features of a data set once call it for every classifier and fold.

        Parameters
        ----------
        X : ndarray, shape (n, F)
            Features from this model's extractor settings (same column order), finite.
        y : array-like, shape (n,)
            Class names, or integer class indices into ``classes``.
        groups : ndarray of int, shape (n,), optional
            Source image of each row: rows of one group (an image and its augmented copies)
            stay in one cross-validation fold (:class:`~sklearn.model_selection.
            StratifiedGroupKFold`), so the reported accuracy is not inflated by near copies.
        stain_normalizer : wbc_classic.preprocess.stain.StainNormalizer, optional
            The fitted normaliser the rows were computed with; required when ``stain`` is
            not ``"none"`` (it becomes :attr:`stain_`).
        um_per_pixel : float, optional
            Pixel scale of the images the rows come from (becomes :attr:`um_per_pixel_`).
        sample_weight : array-like of float, shape (n,), optional
            Weight of each row in the classifier's fit and its cross-validation (not
            supported by ``"knn"``).
        align_rows : array-like of bool, shape (n,), optional
            The rows of the laboratory the model is for (its few labelled cells), the others
            being the reference (e.g. PBC). Their features are moved onto the reference's
            class by class (:func:`wbc_classic.classical.adapt.class_mean_map`) before the
            classifier is fitted, and the map becomes :attr:`alignment_`, applied to every
            later input: the model is then for that lab's images. Whether the map helps is
            checked first (``align_check``); the outcome is ``metadata_["adaptation"]``.
        align_check : bool, default True
            Keep the map only when it predicts the lab's own labelled cells better: a
            stratified 5-fold cross-validation over those rows (fewer folds for few cells;
            the reference rows are in every training part), the map refitted in each fold,
            compared with the model fitted on the rows as they are. False: always keep it.

        Returns
        -------
        self

        Notes
        -----
        Also fits :attr:`shift_`, the shift scorer of the rows as the classifier sees them
        (:mod:`wbc_classic.classical.shift`).
        """
        with _one_blas_thread():
            return self._fit_rows(X, y, groups=groups, stain_normalizer=stain_normalizer,
                                  um_per_pixel=um_per_pixel, sample_weight=sample_weight,
                                  align_rows=align_rows, align_check=align_check)

    def _fit_rows(self, X: np.ndarray, y: Sequence[Any] | np.ndarray, *,
                  groups: np.ndarray | None = None, stain_normalizer: Any = None,
                  um_per_pixel: float | None = None,
                  sample_weight: Sequence[float] | np.ndarray | None = None,
                  align_rows: Sequence[bool] | np.ndarray | None = None,
                  align_check: bool = True, score_shift: bool = True) -> WBCModel:
        """:meth:`fit_features`; ``score_shift=False`` leaves :attr:`shift_` None (the
        throw-away models of the ``--align`` check, which only predict)."""
        from sklearn.base import clone
        from sklearn.model_selection import (
            StratifiedGroupKFold,
            StratifiedKFold,
            cross_val_score,
        )

        from wbc_classic.classical.classifiers import FeatureClassifier, is_search
        from wbc_classic.io.versions import package_versions

        t0 = time.perf_counter()
        X = np.asarray(X, dtype=np.float32)
        names, y_idx = self._encode(y)
        if X.ndim != 2 or X.shape[0] != y_idx.shape[0]:
            raise ValueError(f"X must be (n, F) with n = len(y) = {y_idx.shape[0]}, "
                             f"got shape {X.shape}")
        if not np.all(np.isfinite(X)):
            raise ValueError("features contain NaN or inf")
        if self.stain not in (None, "none") and stain_normalizer is None:
            raise ValueError(f"stain={self.stain!r}: pass the fitted normaliser the features "
                             "were computed with (stain_normalizer=), or use fit()")
        if um_per_pixel is not None and not (np.isfinite(um_per_pixel) and um_per_pixel > 0):
            raise ValueError(f"um_per_pixel must be a positive number, got {um_per_pixel!r}")
        weight = None if sample_weight is None else _check_weights(sample_weight, X.shape[0])
        for name in ("alignment_", "input_um_per_pixel_"):  # a refit forgets any adaptation
            self.__dict__.pop(name, None)
        adaptation = None
        if align_rows is not None:
            target = _check_mask(align_rows, X.shape[0])
            adaptation = self._class_alignment(X, names, y_idx, weight, target, align_check,
                                               groups)
            slope, offset = adaptation.pop("slope"), adaptation.pop("offset")
            if adaptation["applied"]:
                X = X.copy()
                X[target] = X[target] * slope + offset
        fit_params = {} if weight is None else {"sample_weight": weight}
        extractor = self.__dict__.get("extractor_")
        if extractor is None:
            extractor = self._new_extractor()
        columns = feature_names(extractor)
        if len(columns) != X.shape[1]:
            raise ValueError(f"X has {X.shape[1]} columns but the extractor makes "
                             f"{len(columns)} features")

        estimator = FeatureClassifier(self.classifier, classifier_params=self.classifier_params,
                                      n_jobs=self.n_jobs, seed=self.seed)
        counts = np.bincount(y_idx, minlength=len(names))
        cv_info: dict[str, Any] = {}
        if not is_search(estimator.make_estimator()):
            folds = int(min(self.cv, counts[counts > 0].min())) if self.cv else 0
            if folds >= 2:
                kfold = StratifiedKFold if groups is None else StratifiedGroupKFold
                scores = cross_val_score(clone(estimator), X, y_idx, scoring="accuracy",
                                         cv=kfold(folds, shuffle=True, random_state=self.seed),
                                         groups=groups, params=fit_params or None)
                cv_info = {"cv_accuracy": float(scores.mean()),
                           "cv_accuracy_std": float(scores.std()),
                           "cv_folds": folds, "cv_scores": [float(s) for s in scores]}
        estimator.fit(X, y_idx, **fit_params)
        from wbc_classic.classical.shift import ShiftScorer

        self.shift_: ShiftScorer | None = ShiftScorer(seed=self.seed).fit(
            _classifier_view(estimator, X), groups=groups) if score_shift else None
        if estimator.search_ is not None:
            cv_info = {"cv_accuracy": estimator.search_["best_score"],
                       "cv_note": "best mean score of the hyper-parameter search",
                       "best_params": {k: _plain(v) for k, v in
                                       estimator.search_["best_params"].items()}}
        self.classes_ = np.asarray(names, dtype=str)
        # what adapt's class-mean map aligns a lab's (pseudo-labelled) cells to
        self.class_means_ = np.stack([X[y_idx == c].mean(axis=0, dtype=np.float64)
                                      if counts[c] else np.full(X.shape[1], np.nan)
                                      for c in range(len(names))])
        self.extractor_ = extractor
        self.feature_names_ = columns
        self.estimator_ = estimator
        self.stain_ = stain_normalizer
        self.um_per_pixel_ = None if um_per_pixel is None else float(um_per_pixel)
        self.versions_ = package_versions()
        self.metadata_ = {
            "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
            "classifier": self.classifier_name,
            "classifier_params": {k: _plain(v) for k, v in
                                  (self.classifier_params or {}).items()},
            "seed": int(self.seed),
            "data": {"n_samples": int(X.shape[0]), "n_features": int(X.shape[1]),
                     "counts": {c: int(n) for c, n in zip(names, counts, strict=True)}},
            "fit_seconds": round(time.perf_counter() - t0, 3),
            **({"shift": {"threshold": self.shift_.threshold_,
                          "quantile": self.shift_.quantile}} if self.shift_ else {}),
            **({"weighted": True} if weight is not None else {}),
            **cv_info,
        }
        if adaptation is not None:
            if adaptation["applied"]:
                self.alignment_ = self._raw_map_alignment(slope, offset,
                                                          int(adaptation["n_cells"]))
            adaptation.update(
                date=self.metadata_["date"],
                note="the lab's features are mapped onto the reference's before the classifier"
                     if adaptation["applied"] else
                     "the map did not predict the lab's labelled cells better; not applied")
            self.metadata_["adaptation"] = adaptation
        return self

    def _class_alignment(self, X: np.ndarray, names: tuple[str, ...], y: np.ndarray,
                         weight: np.ndarray | None, target: np.ndarray,
                         check: bool, groups: np.ndarray | None = None) -> dict[str, Any]:
        """Fit the class-mean map of the ``target`` rows onto the others and decide whether to
        keep it (:meth:`fit_features`' ``align_rows``, ``align_check``; ``groups``: an
        image and its augmented copies, kept in one fold and counted as one cell)."""
        from sklearn.base import clone
        from sklearn.model_selection import StratifiedGroupKFold, StratifiedKFold

        from wbc_classic.classical.adapt import CLASS_MEANS, class_mean_map

        ref = ~target
        if not target.any() or not ref.any():
            raise ValueError("align_rows must mark some rows (the lab's cells) and leave "
                             "others (the reference)")
        rows = np.flatnonzero(target)
        # one row per cell (image), not per augmented copy
        first = rows if groups is None else rows[np.unique(groups[rows], return_index=True)[1]]
        out: dict[str, Any] = {"method": CLASS_MEANS, "labels": "given",
                               "n_cells": int(first.size),
                               "classes": sorted({names[c] for c in y[target]}),
                               "check": None, "applied": True}
        w_ref = None if weight is None else weight[ref]
        try:
            out["slope"], out["offset"] = class_mean_map(X[target], y[target], X[ref], y[ref],
                                                         sample_weight_ref=w_ref)
        except ValueError as exc:  # e.g. the lab's cells are of one class
            out.update(applied=False, slope=None, offset=None,
                       check={"reason": f"no class-mean map: {exc}"})
            return out
        if not check:
            return out
        counts = np.bincount(y[first], minlength=len(names))
        folds = int(min(5, counts[counts >= 2].min())) if (counts >= 2).sum() >= 2 else 0
        if folds < 2:
            out.update(applied=False, check={"reason": "too few labelled cells per class to "
                                             "cross-validate the map"})
            return out
        # a class with fewer cells than folds stays in every training part
        cv_rows = rows[counts[y[rows]] >= folds]
        always = np.setdiff1d(rows, cv_rows)
        right = {"aligned": 0, "as_is": 0}
        probe = clone(self).set_params(cv=0)
        kfold = StratifiedKFold(folds, shuffle=True, random_state=self.seed) if groups is None \
            else StratifiedGroupKFold(folds, shuffle=True, random_state=self.seed)
        for tr, te in kfold.split(cv_rows, y[cv_rows],
                                  groups=None if groups is None else groups[cv_rows]):
            fit_rows = np.sort(np.r_[np.flatnonzero(ref), cv_rows[tr], always])
            held = cv_rows[te]
            sw = None if weight is None else weight[fit_rows]
            for mode in right:
                m = clone(probe)._fit_rows(
                    X[fit_rows], np.asarray(names)[y[fit_rows]], sample_weight=sw,
                    align_rows=target[fit_rows] if mode == "aligned" else None,
                    align_check=False, score_shift=False)
                pred = m.predict_proba_features(X[held]).argmax(axis=1)
                right[mode] += int(np.sum(pred == y[held]))
        n = int(cv_rows.size)
        out["check"] = {"folds": folds,
                        "n_cells": n if groups is None else int(np.unique(groups[cv_rows]).size),
                        "accuracy_aligned": right["aligned"] / n,
                        "accuracy_as_is": right["as_is"] / n}
        out["applied"] = right["aligned"] > right["as_is"]
        return out

    def _raw_map_alignment(self, slope: np.ndarray, offset: np.ndarray, n_cells: int) -> Any:
        """The :class:`~wbc_classic.classical.adapt.FeatureAlignment` of a raw-feature map
        ``x' = slope * x + offset``, expressed in the fitted scaler's space (where
        :meth:`aligned_features` applies it)."""
        from wbc_classic.classical.adapt import FeatureAlignment

        scaler = self._scaler()
        m, s = scaler.mean_, scaler.scale_
        return FeatureAlignment.from_affine(slope, (slope * m + offset - m) / s,
                                            n_cells=n_cells)

    def _encode(self, y: Sequence[Any] | np.ndarray) -> tuple[tuple[str, ...], np.ndarray]:
        """(class names, integer label of each row) from names or indices into ``classes``."""
        y_arr = np.asarray(y)
        if y_arr.dtype.kind in "USO":
            names = tuple(str(c) for c in (self.classes if self.classes is not None
                                           else np.unique(y_arr.astype(str))))
            lookup = {c: i for i, c in enumerate(names)}
            unknown = sorted(set(y_arr.astype(str)) - set(lookup))
            if unknown:
                raise ValueError(f"labels not in classes: {unknown}")
            return names, np.array([lookup[str(v)] for v in y_arr], dtype=np.int64)
        if self.classes is None:
            raise ValueError("integer labels need `classes` (the class names in order)")
        names = tuple(str(c) for c in self.classes)
        y_idx = y_arr.astype(np.int64)
        if y_idx.size and (y_idx.min() < 0 or y_idx.max() >= len(names)):
            raise ValueError(f"label indices must be in [0, {len(names)})")
        return names, y_idx

    # ------------------------------------------------------------------ prediction
    def predict_proba_features(self, X: np.ndarray) -> np.ndarray:
        """Class probabilities of feature vectors.

        Parameters
        ----------
        X : ndarray, shape (n, F)

        Returns
        -------
        proba : ndarray of float64, shape (n, K)
            Columns in :attr:`classes_` order; rows sum to 1.
        """
        self._check_fitted()
        X = self.aligned_features(X)
        if X.shape[0] == 0:
            return np.zeros((0, len(self.classes_)))
        with _one_blas_thread():
            p = self.estimator_.predict_proba(X)
        fitted = np.asarray(self.estimator_.classes_, dtype=np.int64)
        if p.shape[1] == len(self.classes_) and np.array_equal(fitted, np.arange(len(fitted))):
            return p
        full = np.zeros((p.shape[0], len(self.classes_)))
        full[:, fitted] = p
        return full

    def _scaler(self) -> Any:
        """The classifier pipeline's fitted StandardScaler (ValueError when there is none)."""
        pipe = self.estimator_.pipeline_
        scaler = dict(getattr(pipe, "steps", [])).get("scale")
        if scaler is None or not hasattr(scaler, "mean_"):
            raise ValueError("this model's classifier has no 'scale' step to align features in")
        return scaler

    def aligned_features(self, X: np.ndarray) -> np.ndarray:
        """Feature rows as this model's classifier receives them: moved by its
        :attr:`alignment_` (from ``adapt`` or ``train --align``), unchanged without one.

        Parameters
        ----------
        X : ndarray, shape (n, F)
            Raw features, as :meth:`extract` gives them.

        Returns
        -------
        ndarray of float32, shape (n, F)
            On the training cells' scale: rows of the adapted lab can be pooled with the
            training rows (e.g. to refit on both).
        """
        X = np.asarray(X, dtype=np.float32)
        align = self.__dict__.get("alignment_")
        if align is None or X.shape[0] == 0:
            return X
        scaler = self._scaler()
        Z = align.apply(scaler.transform(X))
        return (Z * scaler.scale_ + scaler.mean_).astype(np.float32)

    def adapt(self, images_or_paths: Sequence[Any], *, method: str = "auto",
              um_per_pixel: float | str | None = None, n_jobs: int | None = None,
              progress: bool = False) -> WBCModel:
        """A copy of this model adapted to a laboratory's *unlabelled* cells.

        Fits what can be fitted without labels (:mod:`wbc_classic.classical.adapt`): the
        images' pixel scale (``um_per_pixel="auto"``: the median red-cell estimate, then
        every later prediction resamples that lab's images to the training scale), and a
        feature alignment of the lab's cells to the training cells (``method``) applied
        before the classifier and the shift scorer; the features step is
        :meth:`adapt_features`.

        Parameters
        ----------
        images_or_paths : sequence of (H, W, 3) uint8 arrays or paths
            The lab's single-leukocyte images (at least
            :data:`wbc_classic.classical.adapt.MIN_CELLS` with a leukocyte found).
        method : {"standardize", "coral", "class-means", "auto"}
            See :data:`wbc_classic.classical.adapt.ADAPT_METHODS`. ``"class-means"``: the
            lab's cells are first standardised, then, for
            :data:`~wbc_classic.classical.adapt.PSEUDO_LABEL_ROUNDS` rounds, classified,
            and the confident half of each predicted class aligns the lab class by class
            (:func:`~wbc_classic.classical.adapt.class_mean_map` onto
            :attr:`class_means_`). ``"auto"``: ``"class-means"`` when the model's shift
            warning flags at least :data:`~wbc_classic.classical.adapt.AUTO_MAP_FLAGGED`
            of the lab's cells, else no map, and the model comes back unadapted (the
            choice, the flagged share and the candidates' median shift scores are in
            ``metadata_["adaptation"]``).
        um_per_pixel : float, "auto" or None
            The images' pixel scale; None: used as they are.
        n_jobs : int, optional
        progress : bool, default False

        Returns
        -------
        WBCModel
            A new fitted model (this one is unchanged) with :attr:`alignment_` (unless
            ``auto`` chose none), :attr:`input_um_per_pixel_` (with a scale) and
            ``metadata_["adaptation"]``.

        Raises
        ------
        ValueError
            Too few usable images, an unmeasurable scale, or an unknown method.
        """
        import copy

        from wbc_classic.classical.adapt import MIN_CELLS

        self._check_fitted()
        items = [str(x) if isinstance(x, (str, os.PathLike)) else x for x in images_or_paths]
        if len(items) < MIN_CELLS:
            raise ValueError(f"adaptation needs at least {MIN_CELLS} images of the lab, got "
                             f"{len(items)}")
        self._refuse_label_aligned()
        # an earlier adapt's map and scale are dropped: the model is adapted as trained
        new = copy.deepcopy(self)
        new.__dict__.pop("alignment_", None)
        new.__dict__.pop("input_um_per_pixel_", None)
        if um_per_pixel == "auto":
            from wbc_classic.preprocess.scale import estimate_batch_scale

            um = estimate_batch_scale(items, n=self.n_ref, seed=self.seed, read=_as_image)
            if not np.isfinite(um):
                raise ValueError("cannot measure the pixel scale: too few red cells in view; "
                                 "give it as a number")
            um_per_pixel = float(um)
        if um_per_pixel is not None:
            new.rescale_factor(float(um_per_pixel))  # checks the model has a scale
            new.input_um_per_pixel_ = float(um_per_pixel)
        result = new.extract(items, n_jobs=n_jobs, progress=progress)
        good = result.ok & result.found & np.all(np.isfinite(result.X), axis=1)
        if good.sum() < MIN_CELLS:
            raise ValueError(f"only {int(good.sum())} of {len(items)} images hold a leukocyte "
                             f"the segmenter finds; adaptation needs at least {MIN_CELLS}")
        adapted = new.adapt_features(result.X[good], method=method)
        adapted.metadata_["adaptation"].update(
            n_images=len(items), um_per_pixel=new.__dict__.get("input_um_per_pixel_"))
        return adapted

    def adapt_features(self, X: np.ndarray, *, method: str = "auto") -> WBCModel:
        """A copy of this model adapted to a laboratory's *unlabelled* feature rows: the step
        of :meth:`adapt` after the features (benchmarks call it on cached features).

        Parameters
        ----------
        X : ndarray, shape (n, F)
            The lab's cells as :meth:`extract` gives them (finite rows,
            n >= :data:`~wbc_classic.classical.adapt.MIN_CELLS`).
        method : {"standardize", "coral", "class-means", "auto"}
            As in :meth:`adapt`.

        Returns
        -------
        WBCModel
            With :attr:`alignment_` (unless ``auto`` chose none) and
            ``metadata_["adaptation"]`` (method, cells, for ``auto`` the choice and the
            candidates' median shift scores). The fitted classifier is shared with this
            model, not copied.

        Raises
        ------
        ValueError
            Too few rows, an unknown method, or a model that is aligned already: by its
            lab's labelled cells (``train --align``), or by an earlier ``adapt`` (its map
            would be replaced, and ``auto`` would judge the cells through it); adapt the
            model as trained instead.
        """
        self._check_fitted()
        self._refuse_label_aligned()
        if "alignment_" in self.__dict__:
            done = self.metadata_.get("adaptation") or {}
            raise ValueError(f"this model is adapted already (method "
                             f"{done.get('chosen') or done.get('method') or 'unknown'} on "
                             f"{done.get('n_cells', '?')} cells); adapt the model as trained "
                             "instead (adapt() from images does: it drops the earlier map)")
        with _one_blas_thread():
            alignment, choice = self._choose_alignment(np.asarray(X, dtype=np.float32),
                                                       method)
        new = self._with_alignment(alignment)
        new.metadata_ = dict(self.metadata_)
        new.metadata_["adaptation"] = {
            "method": method, "n_cells": int(len(X)),
            **({"labels": "predicted"} if "class-means" in (method, choice.get("chosen"))
               else {}), **choice,
            "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")}
        return new

    def _refuse_label_aligned(self) -> None:
        """ValueError for a model aligned to its lab by that lab's labelled cells (``train
        --align``): adapting it would replace that map."""
        done = self.metadata_.get("adaptation") or {}
        if done.get("labels") == "given" and "alignment_" in self.__dict__:
            raise ValueError("this model is aligned to its lab by that lab's labelled cells "
                             "(train --align); adapting it would replace that map -- adapt "
                             "a model trained without --align instead")

    def _choose_alignment(self, X: np.ndarray, method: str) -> tuple[Any, dict[str, Any]]:
        """(alignment or None, what was chosen) for a lab's raw feature rows: ``method``'s
        alignment, or for ``"auto"`` the class-mean map when the shift warning flags at
        least :data:`~wbc_classic.classical.adapt.AUTO_MAP_FLAGGED` of the rows, else none
        (see :meth:`adapt`)."""
        from wbc_classic.classical.adapt import AUTO_MAP_FLAGGED

        if method != "auto":
            return self._fit_alignment(X, method), {}
        if getattr(self, "shift_", None) is None or "class_means_" not in self.__dict__:
            # a file from before the shift scorer or the class means: the former default
            why = "no shift scorer" if getattr(self, "shift_", None) is None \
                else "no training class means"
            return self._fit_alignment(X, "standardize"), {
                "chosen": "standardize",
                "note": f"this model file has {why} (written by an older version), so auto "
                        "fell back to standardize; retrain it for the class-mean map"}
        # not "standardize": per-lab standardisation assumes the lab has the training class
        # mix (it cost 0.16 on cellavision_seg, whose lymphocytes are 37 % of its cells)
        scores, flags = self.shift_scores(X)
        flagged = float(np.mean(flags))
        info: dict[str, Any] = {"flagged": flagged,
                                "median_shift": {"none": float(np.nanmedian(scores))}}
        if flagged < AUTO_MAP_FLAGGED:
            return None, {"chosen": "none", **info}
        try:
            alignment = self._fit_alignment(X, "class-means")
        except ValueError as exc:  # the model calls (nearly) every cell one class
            return None, {"chosen": "none", **info, "note": f"class-means not possible: {exc}"}
        info["median_shift"]["class-means"] = float(np.nanmedian(
            self._with_alignment(alignment).shift_scores(X)[0]))
        return alignment, {"chosen": "class-means", **info}

    def _with_alignment(self, alignment: Any) -> WBCModel:
        """A shallow copy of this fitted model with another :attr:`alignment_` (None: none),
        for scoring candidate alignments; the fitted classifier is shared, not copied."""
        import copy

        other = copy.copy(self)
        other.__dict__ = dict(self.__dict__)
        other.__dict__.pop("alignment_", None)
        if alignment is not None:
            other.alignment_ = alignment
        return other

    def _fit_alignment(self, X: np.ndarray, method: str) -> Any:
        """The :class:`~wbc_classic.classical.adapt.FeatureAlignment` of a lab's feature rows
        (raw, shape (n, F)) to this model's training rows (the step of :meth:`adapt` after
        the features; benchmarks call it on cached features)."""
        from wbc_classic.classical.adapt import CLASS_MEANS, fit_alignment

        self._check_fitted()
        if method == CLASS_MEANS:
            return self._pseudo_label_alignment(X)
        cov = None
        if method == "coral":
            pipe = self.estimator_.pipeline_
            if len(getattr(pipe, "steps", [])) != 2 or getattr(self, "shift_", None) is None:
                raise ValueError("CORAL needs a model without feature selection and with a "
                                 "shift scorer (format 3); use method='standardize'")
            # the shift scorer holds the training covariance in the scaler's space
            # (its own standardisation is ~identity there)
            sc = self.shift_
            assert sc is not None  # checked above
            cov = np.linalg.inv(sc.precision_) * np.outer(sc.scale_, sc.scale_)
        return fit_alignment(self._scaler().transform(np.asarray(X, dtype=np.float32)),
                             method=method, source_covariance=cov)

    def _pseudo_label_alignment(self, X: np.ndarray) -> Any:
        """The class-mean alignment of unlabelled rows, their labels the model's own
        confident predictions (``adapt --method class-means``, see :meth:`adapt`)."""
        from wbc_classic.classical.adapt import (
            PSEUDO_LABEL_ROUNDS,
            affine_from_class_means,
            confident_rows,
        )

        means = self.__dict__.get("class_means_")
        if means is None:
            raise ValueError("this model file has no training class means (written before "
                             "they were stored); retrain it to use method 'class-means'")
        X = np.asarray(X, dtype=np.float32)
        scaler = self._scaler()
        m, s = scaler.mean_, scaler.scale_  # the prior's units: the training rows' spread
        alignment, mapped = self._fit_alignment(X, "standardize"), False
        for _ in range(PSEUDO_LABEL_ROUNDS):
            sure = confident_rows(self._with_alignment(alignment).predict_proba_features(X))
            classes = [c for c in sure if np.isfinite(means[c]).all()]
            if len(classes) < 2:  # everything called one class: no class structure to match
                break
            lab_means = [X[sure[c]].mean(axis=0, dtype=np.float64) for c in classes]
            counts = [sure[c].size for c in classes]
            slope, offset = affine_from_class_means(np.stack(lab_means), np.array(counts),
                                                    means[classes], m, s)
            alignment, mapped = self._raw_map_alignment(slope, offset, X.shape[0]), True
        if not mapped:
            raise ValueError("the model calls (nearly) every cell of this lab one class, so "
                             "there are no class means to align; try method 'standardize'")
        return alignment

    def shift_scores(self, X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Shift score and flag of feature vectors (:mod:`wbc_classic.classical.shift`).

        Parameters
        ----------
        X : ndarray, shape (n, F)

        Returns
        -------
        scores : ndarray of float64, shape (n,)
            Higher = less like the training cells; NaN when the model has no scorer (a
            file written before format 3).
        flags : ndarray of bool, shape (n,)
            Score above the threshold stored in the model (False without a scorer).
        """
        self._check_fitted()
        X = np.asarray(X, dtype=np.float32)
        scorer = getattr(self, "shift_", None)
        if scorer is None or X.shape[0] == 0:
            return np.full(X.shape[0], np.nan), np.zeros(X.shape[0], bool)
        with _one_blas_thread():
            scores = scorer.score_samples(
                _classifier_view(self.estimator_, self.aligned_features(X)))
        return scores, ~(scores <= scorer.threshold_)

    def predict_proba(self, X: Sequence[Any], *,
                      um_per_pixel: float | None = None) -> np.ndarray:
        """Class probabilities of leukocyte images.

        Parameters
        ----------
        X : sequence of ndarray (H, W, 3) uint8, or of paths
            One leukocyte per image (a PBC-style crop). A single (H, W, 3) array is
            accepted as a batch of one.
        um_per_pixel : float, optional
            Pixel scale of these images (e.g. from
            :func:`wbc_classic.preprocess.scale.estimate_batch_scale`); they are resampled to
            the model's :attr:`um_per_pixel_` before segmentation. None: used as they are.

        Returns
        -------
        proba : ndarray of float64, shape (n, K)
            Columns in :attr:`classes_` order.
        """
        self._check_fitted()
        if isinstance(X, np.ndarray) and X.ndim == 3:
            X = [X]
        return self.predict_proba_features(self.transform(X, um_per_pixel=um_per_pixel))

    def predict(self, X: Sequence[Any], *, um_per_pixel: float | None = None) -> np.ndarray:
        """Predicted class names, ndarray of str, shape (n,) (the most probable class);
        ``um_per_pixel`` as in :meth:`predict_proba`."""
        proba = self.predict_proba(X, um_per_pixel=um_per_pixel)
        return self.classes_[proba.argmax(axis=1)] if len(proba) else \
            np.asarray([], dtype=str)

    def predict_paths(self, paths: Sequence[str | os.PathLike[str]], *,
                      n_jobs: int | None = None, um_per_pixel: float | None = None,
                      cache_dir: str | os.PathLike[str] | None = None,
                      progress: bool | str = False) -> list[dict[str, Any]]:
        """Classify image files in parallel; a bad file never stops the batch.

        Parameters
        ----------
        paths : sequence of path-like
        n_jobs : int, optional
            Parallel workers for decoding + segmentation + features (default ``n_jobs``).
        um_per_pixel : float, optional
            Pixel scale of these images, as in :meth:`predict_proba`.
        cache_dir : path, optional
            Per-image feature cache (the one of :meth:`extract`, keyed by content, settings,
            stain normaliser and rescale factor); default the model's ``cache_dir``.
        progress : bool or str, default False
            Report the images' progress (as in :meth:`extract`; a string labels it).

        Returns
        -------
        rows : list of dict, one per path, in input order, with keys
            ``path`` (str); ``status``: "ok", "no_cell" (the segmenter found no leukocyte:
            no class, NaN probabilities, see :func:`wbc_classic.io.predictions.mark_no_cell`)
            or "error"; ``found`` (bool, a leukocyte was segmented); ``predicted_class``
            (str, "" unless ok); ``proba`` (ndarray (K,) float64, NaN unless ok);
            ``shift_score`` (float, higher = less like the training cells, NaN unless ok)
            and ``shift_flag`` (bool, above the model's threshold); ``error`` (str, "" if
            ok) and ``note``.
        """
        from wbc_classic.io.predictions import mark_no_cell

        self._check_fitted()
        paths = [str(p) for p in paths]
        result = self.extract(paths, um_per_pixel=um_per_pixel, n_jobs=n_jobs,
                              cache_dir=cache_dir, progress=progress)
        errors = {f.index: str(f) for f in result.failures}
        good = result.ok & result.found
        ok = np.flatnonzero(good)
        proba = np.full((len(paths), len(self.classes_)), np.nan)
        score = np.full(len(paths), np.nan)
        flag = np.zeros(len(paths), bool)
        if ok.size:
            proba[ok] = self.predict_proba_features(result.X[ok])
            score[ok], flag[ok] = self.shift_scores(result.X[ok])
        rows = []
        for i, path in enumerate(paths):
            row = {
                "path": path,
                "status": "ok" if good[i] else "error",
                "found": bool(result.found[i]),
                "predicted_class": str(self.classes_[int(np.argmax(proba[i]))]) if good[i]
                else "",
                "proba": proba[i],
                "shift_score": float(score[i]),
                "shift_flag": bool(flag[i]),
                "error": errors.get(i, ""),
                "note": "",
            }
            if result.ok[i] and not result.found[i]:
                mark_no_cell(row, "no leukocyte found in the image")
                row["proba"] = proba[i]
            rows.append(row)
        return rows

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        # samples are images or paths, not rows of numbers
        tags.input_tags.two_d_array = False
        tags.input_tags.sparse = False
        return tags

