"""Radial (polar) boundary search: the cell outline as a minimum-cost closed path.

Around a centre (the nucleus), the image is unwrapped into polar coordinates (one row per
angle, one column per radius).  The cell boundary is then one radius per angle.  Dynamic
programming finds the path of radii with the highest outward edge strength whose radius
changes by at most ``max_step`` bins between neighbouring angles, so the outline stays
smooth and star-shaped around the nucleus -- which leukocytes nearly always are.
"""

from __future__ import annotations

import cv2
import numpy as np

__all__ = ["polar_unwrap", "closed_min_path", "radii_to_mask", "radial_extent"]

_BIG = np.float32(1e9)


def polar_unwrap(channel: np.ndarray, centre: tuple[float, float], radius: float,
                 n_angles: int = 180) -> np.ndarray:
    """Resample ``channel`` on a polar grid around ``centre``.

    Parameters
    ----------
    channel : ndarray, shape (H, W)
        Any numeric image (cast to float32).
    centre : (row, col)
        Centre of the polar grid in pixel coordinates.
    radius : float
        Largest radius sampled, in pixels; the grid has ``ceil(radius)`` radius bins of
        about one pixel.
    n_angles : int
        Angles, evenly spaced over a full turn starting at 0 (pointing along +col) and
        turning towards +row.

    Returns
    -------
    ndarray of float32, shape (n_angles, ceil(radius))
        Row ``a`` holds the values along angle ``2 pi a / n_angles``; samples outside the
        image are 0.
    """
    n_r = max(2, int(np.ceil(radius)))
    cy, cx = centre
    return cv2.warpPolar(np.ascontiguousarray(channel, dtype=np.float32), (n_r, int(n_angles)),
                         (float(cx), float(cy)), float(n_r),
                         cv2.WARP_POLAR_LINEAR + cv2.WARP_FILL_OUTLIERS + cv2.INTER_LINEAR)


def radial_extent(mask: np.ndarray, centre: tuple[float, float], radius: float,
                  n_angles: int = 180) -> np.ndarray:
    """Outermost radius bin of ``mask`` along each angle (0 where the ray misses it).

    Returns
    -------
    ndarray of int64, shape (n_angles,)
    """
    polar = polar_unwrap(mask.astype(np.float32), centre, radius, n_angles) > 0.5
    n_r = polar.shape[1]
    last = n_r - 1 - np.argmax(polar[:, ::-1], axis=1)
    return np.where(polar.any(axis=1), last, 0).astype(np.int64)


def closed_min_path(cost: np.ndarray, r_min: np.ndarray | None = None,
                    r_max: np.ndarray | None = None, max_step: int = 2) -> np.ndarray:
    """Minimum-cost closed path through a polar cost image by dynamic programming.

    Parameters
    ----------
    cost : ndarray of float, shape (n_angles, n_radii)
        Cost of the boundary passing radius bin ``r`` at angle ``a`` (low = likely edge).
    r_min, r_max : ndarray of int, shape (n_angles,), optional
        Allowed radius bins per angle, inclusive (default: all).
    max_step : int
        Largest change of radius bin between neighbouring angles.

    Returns
    -------
    ndarray of int64, shape (n_angles,)
        The radius bin of the path at every angle.

    Notes
    -----
    Closure is handled by running the recursion over two copies of the angles and
    keeping the second one (its start is conditioned on a full turn already walked), which
    makes the start and end agree in practice without a quadratic search over start radii.
    """
    cost = np.asarray(cost, dtype=np.float32)
    n_a, n_r = cost.shape
    idx = np.arange(n_r)
    allowed = np.ones((n_a, n_r), dtype=bool)
    if r_min is not None:
        allowed &= idx[None, :] >= np.asarray(r_min)[:, None]
    if r_max is not None:
        allowed &= idx[None, :] <= np.asarray(r_max)[:, None]
    allowed[~allowed.any(axis=1)] = True  # never leave an angle without a choice
    c = np.where(allowed, cost, _BIG)
    step = max(1, int(max_step))
    # candidate predecessors in the order self, r+1, r-1, r+2, r-2, ... ; argmin keeps the
    # first minimum, i.e. the same tie-breaking as a sequential strict "<" scan
    offsets = np.array([0] + [o for s in range(1, step + 1) for o in (s, -s)], dtype=np.int64)
    n_o = len(offsets)
    buf = np.full(n_r + 2 * step, np.inf, dtype=np.float32)   # acc padded with +inf
    acc = buf[step:step + n_r]                                 # a view: updated in place
    acc[:] = c[0]
    flat = ((step + offsets)[:, None] + idx[None, :]).ravel()  # (n_o * n_r) into buf
    cand = np.empty((n_o, n_r), dtype=np.float32)
    cand_flat = cand.reshape(-1)
    best = np.empty(n_r, dtype=np.float32)
    choice = np.zeros((2 * n_a, n_r), dtype=np.intp)           # index into offsets
    # the loop runs 2 * n_angles times on short rows, so its cost is numpy's per-call
    # overhead: four calls per angle, all writing into preallocated arrays
    take, argmin, amin, add = buf.take, cand.argmin, cand.min, np.add
    for t in range(1, 2 * n_a):
        take(flat, out=cand_flat)
        argmin(axis=0, out=choice[t])
        amin(axis=0, out=best)
        add(best, c[t - n_a if t >= n_a else t], out=acc)
    path = np.empty(2 * n_a, dtype=np.int64)
    r = int(np.argmin(acc))
    path[-1] = r
    off = offsets.tolist()
    for t in range(2 * n_a - 1, 0, -1):
        r += off[choice[t, r]]
        path[t - 1] = r
    return path[n_a:]


def radii_to_mask(radii: np.ndarray, centre: tuple[float, float], shape: tuple[int, int],
                  bin_size: float = 1.0) -> np.ndarray:
    """Fill the star-shaped polygon ``r(angle)`` around ``centre``.

    Parameters
    ----------
    radii : ndarray, shape (n_angles,)
        Radius per angle, in bins of ``bin_size`` pixels.
    centre : (row, col)
    shape : (H, W)

    Returns
    -------
    ndarray of bool, shape (H, W)
    """
    n_a = len(radii)
    ang = 2.0 * np.pi * np.arange(n_a) / n_a
    r = (np.asarray(radii, dtype=np.float64) + 0.5) * bin_size
    cy, cx = centre
    pts = np.stack([cx + r * np.cos(ang), cy + r * np.sin(ang)], axis=1)
    out = np.zeros(shape, dtype=np.uint8)
    cv2.fillPoly(out, [np.round(pts * 16).astype(np.int32)], 1, lineType=cv2.LINE_8, shift=4)
    return out.astype(bool)
