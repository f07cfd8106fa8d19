"""Unsupervised domain adaptation of feature matrices: per-lab standardisation and CORAL.

A new laboratory has hundreds of unlabelled cells. Their features can be used without labels
to move the two feature distributions onto each other before a classifier trained on the
source labs is applied (issue 12, item 3). Both functions are pure, on ``(n, F)`` float
matrices:

* :func:`standardise_per_domain` -- every domain (lab) is centred and scaled by *its own*
  feature means and standard deviations, so a feature that is shifted or stretched in one lab
  (a stain that is darker, a camera with other pixel sizes) lines up with the others. The
  source labs are standardised the same way before training, so the classifier learns on the
  same footing.
* :func:`coral` -- CORrelation ALignment (Sun, Feng & Saenko, AAAI 2016): the source features
  are whitened with their own covariance and re-coloured with the target's (both
  regularised by ``eps`` times the identity), and moved to the target mean; a classifier
  trained on the aligned source is then applied to the target as it is.

These are *adaptation*: they need a batch of the target lab's cells (the statistics of a
batch of 3 cells are noise; see ``min_samples``).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

__all__ = ["standardise_per_domain", "coral", "MIN_DOMAIN_SAMPLES"]

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


def standardise_per_domain(X: np.ndarray, domains: Sequence | np.ndarray, *,
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


def _sqrtm_psd(C: np.ndarray, inverse: bool = False) -> np.ndarray:
    """Square root (or inverse square root) of a symmetric positive-definite matrix."""
    w, V = np.linalg.eigh(C)
    w = np.maximum(w, np.finfo(np.float64).tiny)
    return (V * (w ** (-0.5 if inverse else 0.5))) @ V.T


def coral(Xs: np.ndarray, Xt: np.ndarray, *, eps: float = 1.0,
          min_samples: int = MIN_DOMAIN_SAMPLES, standardise: bool = True) -> np.ndarray:
    """Align the source features' mean and covariance to the target's (CORAL).

    Parameters
    ----------
    Xs : ndarray of float, shape (n_source, n_features)
        Labelled source rows (the training labs).
    Xt : ndarray of float, shape (n_target, n_features)
        Unlabelled target rows (the new lab's cells).
    eps : float, default 1.0
        Ridge added to both covariances (on the scale of the standardised features when
        ``standardise``), which keeps the target's covariance invertible with fewer cells
        than features.
    min_samples : int, default MIN_DOMAIN_SAMPLES
    standardise : bool, default True
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
    scale = Xs.std(axis=0) + 1e-6 if standardise else np.ones(Xs.shape[1])
    S, T = Xs / scale, Xt / scale
    mu_s, mu_t = S.mean(axis=0), T.mean(axis=0)
    eye = np.eye(S.shape[1])
    Cs = np.cov(S, rowvar=False) + eps * eye
    Ct = np.cov(T, rowvar=False) + eps * eye
    aligned = (S - mu_s) @ _sqrtm_psd(Cs, inverse=True) @ _sqrtm_psd(Ct) + mu_t
    return aligned * scale
