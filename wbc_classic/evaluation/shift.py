"""A feature-space shift score: the Mahalanobis distance to training rows (Ledoit-Wolf).

The one implementation behind both families' shift warnings: the classical
:class:`wbc_classic.classical.shift.ShiftScorer` fits it on the classifier's feature vectors,
and a network's checkpoint (:mod:`deep.checkpoint`) fits it on what the network's head
receives (:func:`deep.adapt.penultimate_features`), the Mahalanobis detector of Lee et al.
(2018) with one class-agnostic Gaussian.

The score is ``sqrt(d2 / F)`` (``d2`` the squared Mahalanobis distance of the standardised
row, ``F`` the number of features), so it is near 1 for a typical training row whatever the
number of features.

Example
-------
>>> import numpy as np
>>> from wbc_classic.evaluation.shift import fit_mahalanobis, mahalanobis_score
>>> rng = np.random.default_rng(0)
>>> params = fit_mahalanobis(rng.normal(size=(500, 5)))
>>> bool(mahalanobis_score(rng.normal(size=(1, 5)) + 10, *params)[0] > 3)
True
"""

from __future__ import annotations

import numpy as np

__all__ = ["AUTO_MAP_FLAGGED", "fit_mahalanobis", "mahalanobis_score"]

#: ``--method auto`` of both families' ``adapt`` adapts a batch only when at least this share
#: of its cells is flagged by the model's shift warning (whose threshold flags about 1 % of
#: cells like the training cells), and otherwise leaves the model as it is: a lab whose cells
#: are mostly flagged is unlike the training data, and one whose cells mostly are not has
#: more to lose than to gain from a map fitted on its own cells (which assumes its class mix).
#: Measured on eight left-out-lab cases of the classical family (logreg and svm, trained on
#: PBC or on PBC and the other lab, left out jtsc_seg or cellavision_seg) the flagged share
#: was 0.0-0.33 on cellavision_seg and 1.0 on jtsc_seg, and the rule picked the better of no
#: map and the class-mean map seven times; the former rule, the lower median shift score,
#: six times (a map can move cells into the right classes while raising their median
#: distance to the training cells)
AUTO_MAP_FLAGGED = 0.5


def fit_mahalanobis(X: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Centre, scale and shrunk precision matrix of training rows.

    Parameters
    ----------
    X : ndarray of float, shape (n, F), n >= 2, finite

    Returns
    -------
    center : ndarray of float64, shape (F,)
        Per-feature mean.
    scale : ndarray of float64, shape (F,)
        Per-feature standard deviation (1 where it is 0).
    precision : ndarray of float64, shape (F, F)
        Symmetric inverse of the Ledoit-Wolf covariance of the standardised rows.

    Raises
    ------
    ValueError
        Fewer than 2 rows, not 2-D, or non-finite values.
    """
    from sklearn.covariance import LedoitWolf

    X = np.asarray(X, dtype=np.float64)
    if X.ndim != 2 or X.shape[0] < 2:
        raise ValueError(f"a Mahalanobis fit needs at least 2 rows of features, got {X.shape}")
    if not np.all(np.isfinite(X)):
        raise ValueError("a Mahalanobis fit got features with NaN or inf")
    center = X.mean(axis=0)
    scale = X.std(axis=0)
    scale[~(scale > 1e-12)] = 1.0
    Z = (X - center) / scale
    cov = LedoitWolf(assume_centered=True, store_precision=False).fit(Z).covariance_
    # constant features (zero columns of Z) and a shrinkage of 0 on few rows leave the
    # covariance singular; a ridge of 1e-6 of its mean variance makes it positive definite
    # without moving the scores, so a plain inverse serves (scikit-learn's pinvh
    # eigendecomposition is ~100x slower on these matrices)
    ridge = 1e-6 * max(float(np.mean(np.diag(cov))), 1e-12)
    precision = np.linalg.inv(cov + ridge * np.eye(cov.shape[0]))
    return center, scale, (precision + precision.T) / 2


def mahalanobis_score(X: np.ndarray, center: np.ndarray, scale: np.ndarray,
                      precision: np.ndarray) -> np.ndarray:
    """Shift score of each row against :func:`fit_mahalanobis`'s parameters.

    Parameters
    ----------
    X : ndarray of float, shape (n, F)
    center, scale : ndarray, shape (F,)
    precision : ndarray, shape (F, F)

    Returns
    -------
    ndarray of float64, shape (n,)
        ``sqrt(d2 / F)``; higher = less like the training rows; NaN for a row with
        non-finite values.

    Raises
    ------
    ValueError
        ``X`` is not ``(n, F)`` for the parameters' ``F``.
    """
    X = np.asarray(X, dtype=np.float64)
    F = len(center)
    if X.ndim != 2 or X.shape[1] != F or scale.shape != (F,) or precision.shape != (F, F):
        raise ValueError(f"features must be (n, {F}) for these parameters, got {X.shape}")
    out = np.full(X.shape[0], np.nan)
    good = np.all(np.isfinite(X), axis=1)
    if good.any():
        Z = (X[good] - center) / scale
        d2 = np.sum((Z @ precision) * Z, axis=1)  # BLAS; an einsum here is ~100x slower
        out[good] = np.sqrt(np.maximum(d2, 0.0) / max(1, F))
    return out
