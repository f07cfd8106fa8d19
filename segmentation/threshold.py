"""Histogram thresholds computed from the image itself (Otsu, multi-Otsu)."""

from __future__ import annotations

import numpy as np
from skimage.filters import threshold_multiotsu

__all__ = ["otsu_threshold", "otsu_separability", "multi_otsu_thresholds"]


def _values(channel: np.ndarray, mask: np.ndarray | None) -> np.ndarray:
    channel = np.asarray(channel)
    values = channel[mask] if mask is not None else channel.ravel()
    finite = np.isfinite(values)
    if not finite.all():
        values = values[finite]
    # float32 stays float32 (see _histogram); anything else is taken as float64
    return values if values.dtype == np.float32 else values.astype(np.float64, copy=False)


def otsu_threshold(channel: np.ndarray, mask: np.ndarray | None = None,
                   nbins: int = 256) -> float:
    """Otsu's threshold of ``channel`` (optionally only over ``mask``).

    Parameters
    ----------
    channel : ndarray of float, shape (H, W)
        Grey levels.
    mask : ndarray of bool, shape (H, W), optional
        Pixels to use; all pixels when None.
    nbins : int
        Histogram bins.

    Returns
    -------
    float
        The threshold ``t``; the foreground is ``channel > t``.  NaN when fewer than two
        distinct values are available (a constant image has no threshold).
    """
    t, _ = _otsu(_values(channel, mask), nbins)
    return t


def otsu_separability(channel: np.ndarray, mask: np.ndarray | None = None,
                      nbins: int = 256) -> tuple[float, float]:
    """Otsu threshold and its separability ``eta = between-class / total variance``.

    Returns
    -------
    threshold : float
        As :func:`otsu_threshold` (NaN for constant input).
    eta : float
        In [0, 1]; near 1 for two well-separated populations, 0 for constant input.
    """
    return _otsu(_values(channel, mask), nbins)


def _otsu(values: np.ndarray, nbins: int) -> tuple[float, float]:
    if values.size < 2:
        return float("nan"), 0.0
    lo, hi = float(values.min()), float(values.max())
    if not hi > lo:
        return float("nan"), 0.0
    hist, edges = _histogram(values, nbins, lo, hi)
    centres = 0.5 * (edges[:-1] + edges[1:])
    p = hist.astype(np.float64) / hist.sum()
    w0 = np.cumsum(p)
    mu = np.cumsum(p * centres)
    mu_t = mu[-1]
    w1 = 1.0 - w0
    with np.errstate(divide="ignore", invalid="ignore"):
        between = (mu_t * w0 - mu) ** 2 / (w0 * w1)
    between[~np.isfinite(between)] = 0.0
    b = between[:-1]
    k = int(np.argmax(b))
    # empty bins between two populations give a plateau of equal scores: take its middle
    k_hi = k
    while k_hi + 1 < b.size and b[k_hi + 1] >= b[k] * (1 - 1e-9):
        k_hi += 1
    total = float(np.sum(p * (centres - mu_t) ** 2))
    eta = float(b[k] / total) if total > 0 else 0.0
    return float(0.5 * (edges[k + 1] + edges[k_hi + 1])), eta


def _histogram(values: np.ndarray, nbins: int, lo: float, hi: float
               ) -> tuple[np.ndarray, np.ndarray]:
    """``np.histogram(values.astype(float64), nbins, (lo, hi))`` for ``lo, hi`` = the
    values' min and max, bit-identical, without a float64 copy of the values.

    Bin indices are computed in the values' own precision, which can put a value that
    lies within a rounding error of a bin edge into the neighbouring bin; those few values
    are found by their fractional bin position and re-binned against the float64 edges
    exactly as numpy bins them (``edges[i] <= v < edges[i + 1]``, the last bin closed).
    """
    edges = np.linspace(lo, hi, nbins + 1)
    dtype = values.dtype.type
    pos = values - dtype(lo)
    pos *= dtype(nbins / (hi - lo))
    idx = pos.astype(np.intp)
    frac = pos - idx
    near = np.flatnonzero((frac < 1e-3) | (frac > 1.0 - 1e-3))   # rounding error ~1e-5
    counts = np.bincount(idx, minlength=nbins + 1)
    if near.size:
        exact = np.searchsorted(edges, values[near].astype(np.float64), side="right") - 1
        counts -= np.bincount(idx[near], minlength=nbins + 1)
        counts[:nbins] += np.bincount(np.minimum(exact, nbins - 1), minlength=nbins)
    counts[nbins - 1] += counts[nbins]          # the maximum belongs to the last bin
    return counts[:nbins], edges


def multi_otsu_thresholds(channel: np.ndarray, classes: int = 3,
                          mask: np.ndarray | None = None, nbins: int = 128) -> np.ndarray:
    """Multi-level Otsu thresholds (``classes - 1`` values, ascending).

    Returns an empty float64 array when the values are (nearly) constant.
    """
    values = _values(channel, mask).astype(np.float64, copy=False)
    if values.size < classes or np.unique(values[: 10_000]).size < classes:
        return np.empty(0, dtype=np.float64)
    try:
        return np.asarray(threshold_multiotsu(values, classes=classes, nbins=nbins),
                          dtype=np.float64)
    except ValueError:
        return np.empty(0, dtype=np.float64)
