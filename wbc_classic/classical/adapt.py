"""Unsupervised feature alignment of a new laboratory's cells to the training cells.

A laboratory has many unlabelled cells. Their feature vectors are moved onto the training
distribution before the classifier sees them:

``"standardize"``  per-feature standardisation per laboratory: each feature of the target
                   cells gets the training cells' mean and standard deviation;
``"coral"``        CORAL (Sun, Feng & Saenko 2016): standardisation, then the target
                   covariance (Ledoit-Wolf) is whitened and re-coloured with the training
                   covariance, so correlations are matched as well.

With a few *labelled* cells of the lab there is a third, :func:`class_mean_map` (method
``"class-means"``): a per-feature affine map that puts the lab's class means onto the
training cells' class means, used by ``wbc-classic train --align LAB`` (via
:meth:`wbc_classic.classical.model.WBCModel.fit_features`' ``align_rows``). Unlike the two
unsupervised maps, it does not assume the lab has the training set's class mix.

All work in the space of the classifier pipeline's ``StandardScaler`` (training mean 0,
standard deviation 1 per feature), where the training covariance is the one the model's
shift scorer (:mod:`wbc_classic.classical.shift`) already holds. The result is a
:class:`FeatureAlignment`, plain arrays saved in the model file by
:meth:`wbc_classic.classical.model.WBCModel.adapt` / ``wbc-classic adapt``.

Two more functions work on whole feature matrices, for the leave-one-lab-out benchmark
(:mod:`benchmarks.lolo`), where the training labs are known and each can be aligned on its
own: :func:`standardize_per_domain` (every lab centred and scaled by its own statistics, the
training labs too) and :func:`coral` (the training rows re-coloured to the target's
covariance and mean, the classifier then trained on them). Both CORAL directions use one
map, :func:`coral_matrix`; they differ in the covariance estimate (Ledoit-Wolf for a new
lab's cells, which may be few; a ridge ``eps`` for the benchmark's whole matrices).

Example
-------
>>> import numpy as np
>>> from wbc_classic.classical.adapt import fit_alignment
>>> rng = np.random.default_rng(0)
>>> target = rng.normal(3.0, 2.0, size=(200, 4))           # in the scaler's space
>>> align = fit_alignment(target, method="standardize")
>>> np.round(align.apply(target).mean(axis=0), 6).tolist()
[0.0, 0.0, 0.0, 0.0]
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from wbc_classic.evaluation.shift import AUTO_MAP_FLAGGED

__all__ = ["ADAPT_METHODS", "ALIGNMENTS", "AUTO_MAP_FLAGGED", "CLASS_MEANS",
           "CLASS_MEANS_SHRINK", "METHODS", "MIN_CELLS", "MIN_DOMAIN_SAMPLES",
           "PSEUDO_LABEL_ROUNDS", "FeatureAlignment", "affine_from_class_means",
           "class_mean_map", "confident_rows", "coral", "coral_matrix", "fit_alignment",
           "standardize_per_domain"]

#: alignment methods that need no labels (``wbc-classic adapt --method``)
METHODS = ("standardize", "coral")

#: the alignment fitted from a lab's labelled cells (:func:`class_mean_map`)
CLASS_MEANS = "class-means"

#: every method a :class:`FeatureAlignment` may record
ALIGNMENTS = (*METHODS, CLASS_MEANS)

#: what ``wbc-classic adapt --method`` offers for a lab's *unlabelled* cells: the two maps
#: above; ``class-means`` with the model's own confident predictions as the labels
#: (:meth:`wbc_classic.classical.model.WBCModel.adapt`); ``auto``, ``class-means`` when the
#: shift warning flags at least :data:`AUTO_MAP_FLAGGED` of the lab's cells, else no map
ADAPT_METHODS = (*METHODS, CLASS_MEANS, "auto")

#: rounds of predict -> keep the confident half of each predicted class -> refit the
#: class-mean map, from the standardised start, in ``adapt --method class-means``
PSEUDO_LABEL_ROUNDS = 4

#: :func:`class_mean_map`'s pull of each feature's slope towards 1, worth this many cells:
#: the slope of a feature whose lab class means barely differ is set by the prior, not by
#: noise (1, 2 and 5 gave the same few-shot accuracy within 0.01 on jtsc_seg)
CLASS_MEANS_SHRINK = 1.0

#: fewest target cells an alignment is fitted on (fewer give meaningless statistics)
MIN_CELLS = 20



@dataclass(frozen=True)
class FeatureAlignment:
    """An affine map of standardised feature vectors: ``z' = ((z - mean) / std) @ W``.

    Attributes
    ----------
    method : str
    mean : ndarray of float64, shape (F,)
        The target cells' mean (in the scaler's space).
    std : ndarray of float64, shape (F,)
    matrix : ndarray of float64, shape (F, F), or None
        The CORAL matrix (None: identity).
    n_cells : int
        Target cells it was fitted on.
    """

    method: str
    mean: np.ndarray
    std: np.ndarray
    matrix: np.ndarray | None
    n_cells: int

    def apply(self, Z: np.ndarray) -> np.ndarray:
        """Aligned rows, ndarray of float64, shape (n, F)."""
        out = (np.asarray(Z, dtype=np.float64) - self.mean) / self.std
        return out if self.matrix is None else out @ self.matrix

    def to_dict(self) -> dict[str, Any]:
        """Plain data for the model file."""
        return {"method": self.method, "mean": self.mean.tolist(), "std": self.std.tolist(),
                "matrix": None if self.matrix is None else self.matrix.tolist(),
                "n_cells": int(self.n_cells)}

    @classmethod
    def from_affine(cls, slope: np.ndarray, offset: np.ndarray, *, method: str = CLASS_MEANS,
                    n_cells: int = 0) -> FeatureAlignment:
        """The alignment ``z' = slope * z + offset`` (per feature; ``slope > 0``)."""
        slope = np.asarray(slope, dtype=np.float64)
        offset = np.asarray(offset, dtype=np.float64)
        if slope.ndim != 1 or offset.shape != slope.shape or not np.all(slope > 0):
            raise ValueError("an affine alignment needs positive slopes and offsets of one "
                             "length")
        return cls(method, -offset / slope, 1.0 / slope, None, int(n_cells))

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> FeatureAlignment:
        """Rebuild from :meth:`to_dict` (ValueError on inconsistent data)."""
        mean = np.asarray(d["mean"], dtype=np.float64)
        std = np.asarray(d["std"], dtype=np.float64)
        matrix = None if d.get("matrix") is None else np.asarray(d["matrix"], np.float64)
        if (d.get("method") not in ALIGNMENTS or mean.ndim != 1 or std.shape != mean.shape
                or not np.all(std > 0) or not np.all(np.isfinite(mean))
                or (matrix is not None and matrix.shape != (mean.size, mean.size))):
            raise ValueError("inconsistent feature alignment")
        return cls(str(d["method"]), mean, std, matrix, int(d.get("n_cells", 0)))


def _sqrtm(C: np.ndarray, inverse: bool = False) -> np.ndarray:
    w, V = np.linalg.eigh((C + C.T) / 2)
    w = np.maximum(w, 1e-6 * max(w.max(), 1e-12))
    return (V * (w ** (-0.5 if inverse else 0.5))) @ V.T


def coral_matrix(C_from: np.ndarray, C_to: np.ndarray) -> np.ndarray:
    """The CORAL map between two covariances: ``C_from^(-1/2) @ C_to^(1/2)``.

    Centred rows with covariance ``C_from``, multiplied on the right by this matrix, get
    covariance ``C_to`` (whitening, then re-colouring; Sun, Feng & Saenko 2016). Both
    directions of this module use it: :func:`fit_alignment` moves a new lab's cells onto the
    training covariance, :func:`coral` the training rows onto the target's.

    Parameters
    ----------
    C_from, C_to : ndarray of float, shape (F, F)
        Symmetric positive (semi-)definite covariances; eigenvalues below 1e-6 of the largest
        are clipped, so a rank-deficient covariance does not blow up.

    Returns
    -------
    ndarray of float64, shape (F, F)
    """
    return _sqrtm(np.asarray(C_from, np.float64), inverse=True) @ _sqrtm(
        np.asarray(C_to, np.float64))


def fit_alignment(Z: np.ndarray, *, method: str = "standardize",
                  source_covariance: np.ndarray | None = None) -> FeatureAlignment:
    """Fit the alignment of target rows (already in the scaler's space) to the training rows.

    Parameters
    ----------
    Z : ndarray of float, shape (n, F)
        The target laboratory's cells, standardised with the *training* scaler.
    method : {"standardize", "coral"}
    source_covariance : ndarray, shape (F, F)
        The training rows' covariance in that space; required for ``"coral"``.

    Returns
    -------
    FeatureAlignment

    Raises
    ------
    ValueError
        Fewer than :data:`MIN_CELLS` rows, non-finite values, an unknown method, or CORAL
        without a source covariance of the right shape.
    """
    Z = np.asarray(Z, dtype=np.float64)
    if method not in METHODS:
        raise ValueError(f"unknown alignment {method!r}; choose from {', '.join(METHODS)}")
    if Z.ndim != 2 or Z.shape[0] < MIN_CELLS:
        raise ValueError(f"need at least {MIN_CELLS} target cells with a leukocyte to fit an "
                         f"alignment, got {Z.shape[0] if Z.ndim == 2 else 0}")
    if not np.all(np.isfinite(Z)):
        raise ValueError("target features contain NaN or inf")
    mean = Z.mean(axis=0)
    std = Z.std(axis=0)
    std[~(std > 1e-6)] = 1.0  # a constant feature stays where it is
    matrix = None
    if method == "coral":
        from sklearn.covariance import LedoitWolf

        if source_covariance is None or np.shape(source_covariance) != (Z.shape[1],) * 2:
            raise ValueError("CORAL needs the training covariance of the same features")
        Cs = np.asarray(source_covariance, dtype=np.float64)
        Ct = LedoitWolf(assume_centered=True).fit((Z - mean) / std).covariance_
        matrix = coral_matrix(Ct, Cs)
    return FeatureAlignment(method, mean, std, matrix, int(Z.shape[0]))


def confident_rows(proba: np.ndarray) -> dict[int, np.ndarray]:
    """The confident half of each predicted class: the pseudo-labels of the class-mean map.

    Parameters
    ----------
    proba : ndarray of float, shape (n, K)
        Class probabilities of a lab's cells.

    Returns
    -------
    dict of int to ndarray of int
        For every class predicted at least once (the argmax), the rows predicted as it whose
        probability of it is at least the median over those rows, in increasing order.
    """
    proba = np.asarray(proba)
    pred, conf = proba.argmax(axis=1), proba.max(axis=1)
    out = {}
    for c in np.unique(pred):
        rows = np.flatnonzero(pred == c)
        out[int(c)] = rows[conf[rows] >= np.median(conf[rows])]
    return out


def class_mean_map(X: np.ndarray, y: np.ndarray, X_ref: np.ndarray, y_ref: np.ndarray, *,
                   shrink: float = CLASS_MEANS_SHRINK,
                   sample_weight_ref: np.ndarray | None = None
                   ) -> tuple[np.ndarray, np.ndarray]:
    """Per-feature affine map putting a lab's class means onto the reference's class means.

    For each feature ``j`` the slope ``a_j`` and offset ``b_j`` minimise
    ``sum_c n_c (a_j m_cj + b_j - r_cj)^2`` over the classes ``c`` the lab has (``m`` the
    lab's class means, ``r`` the reference's, ``n_c`` the lab's cells of class ``c``), with
    the slope pulled towards 1 by ``shrink`` (a ridge worth ``shrink`` cells whose class
    means sit one reference standard deviation apart) and kept in [0.1, 10]. A stain,
    illuminant or scale difference moves a feature's values roughly affinely; matching class
    means (not the overall mean, as per-lab standardisation does) leaves the lab's class mix
    out of the map.

    Parameters
    ----------
    X, y : ndarray, shapes (n, F) and (n,)
        The lab's labelled cells (class indices); at least 2 classes that the reference has.
    X_ref, y_ref : ndarray, shapes (m, F) and (m,)
        The reference (training) cells.
    shrink : float, default :data:`CLASS_MEANS_SHRINK`
        >= 0.
    sample_weight_ref : ndarray, shape (m,), optional
        Weights of the reference cells in their class means.

    Returns
    -------
    slope, offset : ndarray of float64, shape (F,)
        ``x' = slope * x + offset`` maps a lab cell (raw features) to the reference's scale.

    Raises
    ------
    ValueError
        Fewer than 2 shared classes, mismatched shapes or non-finite values.
    """
    X, X_ref = _as_matrix(X, "X"), _as_matrix(X_ref, "X_ref")
    y, y_ref = np.asarray(y), np.asarray(y_ref)
    if X.shape[1] != X_ref.shape[1] or y.shape != (len(X),) or y_ref.shape != (len(X_ref),):
        raise ValueError(f"class_mean_map: shapes do not fit: X {X.shape}, y {y.shape}, "
                         f"X_ref {X_ref.shape}, y_ref {y_ref.shape}")
    if not shrink >= 0:
        raise ValueError(f"shrink must be >= 0, got {shrink!r}")
    w_ref = np.ones(len(y_ref)) if sample_weight_ref is None else \
        np.asarray(sample_weight_ref, np.float64)
    classes = [c for c in np.unique(y) if np.any(y_ref == c)]
    if len(classes) < 2:
        raise ValueError("aligning a lab by its class means needs labelled cells of at least "
                         f"2 classes that the training cells have; got {len(classes)}")
    center = np.average(X_ref, axis=0, weights=w_ref)
    scale = np.sqrt(np.average((X_ref - center) ** 2, axis=0, weights=w_ref))
    ref = np.stack([np.average(X_ref[y_ref == c], axis=0, weights=w_ref[y_ref == c])
                    for c in classes])
    return affine_from_class_means(np.stack([X[y == c].mean(axis=0) for c in classes]),
                                   np.array([np.sum(y == c) for c in classes]), ref,
                                   center, scale, shrink=shrink)


def affine_from_class_means(lab_means: np.ndarray, lab_counts: np.ndarray,
                            ref_means: np.ndarray, center: np.ndarray, scale: np.ndarray, *,
                            shrink: float = CLASS_MEANS_SHRINK
                            ) -> tuple[np.ndarray, np.ndarray]:
    """The fit of :func:`class_mean_map` from class means already computed.

    Parameters
    ----------
    lab_means, ref_means : ndarray, shape (C, F)
        The lab's and the reference's mean feature vector of the same C classes (C >= 2).
    lab_counts : ndarray, shape (C,)
        The lab's cells behind each mean (the fit's weights; the prior's unit).
    center, scale : ndarray, shape (F,)
        The reference's overall mean and standard deviation (the units of the prior).

    Returns
    -------
    slope, offset : ndarray of float64, shape (F,)
        ``x' = slope * x + offset`` on raw features.
    """
    scale = np.where(np.asarray(scale, np.float64) > 1e-12, scale, 1.0)
    center = np.asarray(center, np.float64)
    lab = (np.asarray(lab_means, np.float64) - center) / scale
    ref = (np.asarray(ref_means, np.float64) - center) / scale
    n = np.asarray(lab_counts, np.float64)[:, None]
    if lab.shape != ref.shape or lab.shape[0] < 2 or n.shape[0] != lab.shape[0]:
        raise ValueError(f"class means of at least 2 classes needed, got {lab.shape} and "
                         f"{ref.shape}")
    lab_mean, ref_mean = (n * lab).sum(0) / n.sum(), (n * ref).sum(0) / n.sum()
    # sums over the lab's cells: the prior (worth ``shrink`` cells) weighs less as cells come
    spread = (n * (lab - lab_mean) ** 2).sum(0)
    cross = (n * (lab - lab_mean) * (ref - ref_mean)).sum(0)
    slope = np.clip((cross + shrink) / (spread + shrink), 0.1, 10.0)
    offset = ref_mean - slope * lab_mean
    # back from the reference's standardised units to raw features
    return slope, center + scale * offset - slope * center


# ----------------------------------------------------- whole matrices (benchmarks.lolo)

#: Fewest cells of a domain whose statistics are used (fewer raise ``ValueError``).
MIN_DOMAIN_SAMPLES = 10


def _as_matrix(X: np.ndarray, name: str) -> np.ndarray:
    X = np.asarray(X, dtype=np.float64)
    if X.ndim != 2:
        raise ValueError(f"{name} must be a 2-D (n_samples, n_features) matrix, got shape "
                         f"{X.shape}")
    if not np.isfinite(X).all():
        raise ValueError(f"{name} holds NaN or infinite values")
    return X


def standardize_per_domain(X: np.ndarray, domains: Sequence | np.ndarray, *,
                           min_samples: int = MIN_DOMAIN_SAMPLES,
                           eps: float = 1e-6) -> np.ndarray:
    """Centre and scale each domain's rows by that domain's own feature statistics.

    Parameters
    ----------
    X : ndarray of float, shape (n_samples, n_features)
    domains : array_like, shape (n_samples,)
        Domain (lab) of each row, any hashable labels.
    min_samples : int, default MIN_DOMAIN_SAMPLES
        A domain with fewer rows raises ``ValueError`` (its statistics would be noise).
    eps : float, default 1e-6
        Added to every standard deviation (a constant feature becomes 0, not NaN).

    Returns
    -------
    ndarray of float64, shape (n_samples, n_features)
        Each domain's rows with mean 0 and standard deviation ~1 per feature.

    Raises
    ------
    ValueError
        Shapes disagree, ``X`` is not finite, or a domain has fewer than ``min_samples`` rows.
    """
    X = _as_matrix(X, "X")
    d = np.asarray(domains)
    if d.shape != (X.shape[0],):
        raise ValueError(f"domains must have shape ({X.shape[0]},), got {d.shape}")
    out = np.empty_like(X)
    for dom in np.unique(d):
        rows = d == dom
        n = int(rows.sum())
        if n < min_samples:
            raise ValueError(f"domain {str(dom)!r} has {n} sample(s); at least {min_samples} are "
                             f"needed to standardise it")
        mu = X[rows].mean(axis=0)
        sd = X[rows].std(axis=0)
        out[rows] = (X[rows] - mu) / (sd + eps)
    return out


def coral(Xs: np.ndarray, Xt: np.ndarray, *, eps: float = 1.0,
          min_samples: int = MIN_DOMAIN_SAMPLES, standardize: bool = True) -> np.ndarray:
    """Align the source features' mean and covariance to the target's (CORAL).

    Parameters
    ----------
    Xs : ndarray of float, shape (n_source, n_features)
        Labelled source rows (the training labs).
    Xt : ndarray of float, shape (n_target, n_features)
        Unlabelled target rows (the new lab's cells).
    eps : float, default 1.0
        Ridge added to both covariances (on the scale of the standardised features when
        ``standardize``), which keeps the target's covariance invertible with fewer cells
        than features.
    min_samples : int, default MIN_DOMAIN_SAMPLES
    standardize : bool, default True
        Compute the alignment on features scaled by the source's standard deviations (so
        ``eps`` means the same for every feature), and return them on the original scale.

    Returns
    -------
    ndarray of float64, shape (n_source, n_features)
        The source rows re-coloured to the target's covariance and moved to its mean; train
        on these and predict ``Xt`` unchanged.

    Raises
    ------
    ValueError
        Bad shapes, non-finite values, or fewer than ``min_samples`` rows in either set.
    """
    Xs = _as_matrix(Xs, "Xs")
    Xt = _as_matrix(Xt, "Xt")
    if Xs.shape[1] != Xt.shape[1]:
        raise ValueError(f"Xs has {Xs.shape[1]} features and Xt {Xt.shape[1]}")
    for name, M in (("Xs", Xs), ("Xt", Xt)):
        if M.shape[0] < min_samples:
            raise ValueError(f"{name} has {M.shape[0]} sample(s); at least {min_samples} are "
                             f"needed for CORAL")
    scale = Xs.std(axis=0) + 1e-6 if standardize else np.ones(Xs.shape[1])
    S, T = Xs / scale, Xt / scale
    mu_s, mu_t = S.mean(axis=0), T.mean(axis=0)
    eye = np.eye(S.shape[1])
    Cs = np.cov(S, rowvar=False) + eps * eye
    Ct = np.cov(T, rowvar=False) + eps * eye
    aligned = (S - mu_s) @ coral_matrix(Cs, Ct) + mu_t
    return aligned * scale
