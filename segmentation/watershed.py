"""Distance transform and marker-controlled watershed."""

from __future__ import annotations

import cv2
import numpy as np
from scipy import ndimage as ndi
from skimage.segmentation import watershed

__all__ = ["distance_transform", "distance_peaks", "marker_watershed", "split_touching"]


def distance_transform(mask: np.ndarray) -> np.ndarray:
    """Euclidean distance of every foreground pixel to the background.

    Returns
    -------
    ndarray of float32, shape (H, W)
        0 on the background.
    """
    return cv2.distanceTransform(np.asarray(mask, dtype=np.uint8), cv2.DIST_L2, 5)


def distance_peaks(distance: np.ndarray, min_distance: float, min_height: float = 0.0,
                   mask: np.ndarray | None = None) -> np.ndarray:
    """Local maxima of a distance map, one marker per peak.

    Parameters
    ----------
    distance : ndarray of float, shape (H, W)
        Typically :func:`distance_transform` of a foreground mask.
    min_distance : float
        Minimum separation of peaks, pixels (about an object's radius).
    min_height : float
        Peaks lower than this (objects thinner than ``2 * min_height``) are ignored.
    mask : ndarray of bool, shape (H, W), optional
        Only peaks inside ``mask`` are kept.

    Returns
    -------
    ndarray of int32, shape (H, W)
        0 everywhere except the peaks, labelled 1..n.
    """
    coords = _peak_coordinates(np.asarray(distance), max(1, int(round(min_distance))),
                               float(min_height), mask)
    markers = np.zeros(distance.shape, dtype=np.int32)
    if len(coords):
        markers[coords[:, 0], coords[:, 1]] = np.arange(1, len(coords) + 1, dtype=np.int32)
    return markers


def _peak_coordinates(image: np.ndarray, min_distance: int, threshold: float,
                      mask: np.ndarray | None) -> np.ndarray:
    """The peaks of ``skimage.feature.peak_local_max(image, min_distance, threshold_abs=
    threshold, labels=mask, exclude_border=False)`` for a 2-D image and a binary ``mask``,
    in the same order.

    Same rules, cheaper steps (the segmenter calls this once per cell): the square maximum
    filter is OpenCV's dilation (exact, and a border that never wins is the same as
    scikit-image's ``mode="nearest"``), the image outside ``mask`` is set to the dtype's
    minimum as scikit-image does inside the mask's bounding box, and the minimum spacing
    is the greedy Chebyshev suppression that ``skimage._shared.coord.ensure_spacing``
    performs with its k-d tree, run directly on the few candidates.
    """
    img = np.asarray(image)
    if not np.issubdtype(img.dtype, np.floating):
        img = img.astype(np.float64)
    if mask is not None:
        mask = np.asarray(mask, dtype=bool)
        if not mask.any():
            return np.empty((0, 2), dtype=np.intp)
        img = np.where(mask, img, np.finfo(img.dtype).min).astype(img.dtype, copy=False)
    size = 2 * min_distance + 1
    if size > 1:
        image_max = cv2.dilate(img, np.ones((size, size), np.uint8),
                               borderType=cv2.BORDER_CONSTANT,
                               borderValue=float(np.finfo(img.dtype).min))
        peak = img == image_max
        inside = peak if mask is None else peak[mask]
        if inside.all():
            # no peak on a flat image; scikit-image then keeps a masked region's isolated
            # pixels (those removed by an opening)
            peak[:] = False
            if mask is not None:
                peak[mask & ~ndi.binary_opening(mask)] = True
    else:
        peak = np.ones(img.shape, dtype=bool)
    peak &= img > threshold
    ys, xs = np.nonzero(peak)
    order = np.argsort(-img[ys, xs], kind="stable")       # highest first, ties in raster order
    ys, xs = ys[order], xs[order]
    if min_distance > 1 and len(ys) > 1:
        alive = np.ones(len(ys), dtype=bool)
        keep = []
        for i in range(len(ys)):
            if alive[i]:
                keep.append(i)
                alive &= (np.abs(ys - ys[i]) >= min_distance) | \
                    (np.abs(xs - xs[i]) >= min_distance)
        ys, xs = ys[keep], xs[keep]
    return np.stack([ys, xs], axis=1)


def marker_watershed(surface: np.ndarray, markers: np.ndarray,
                     mask: np.ndarray | None = None, compactness: float = 0.0) -> np.ndarray:
    """Marker-controlled watershed flooding of ``surface`` from ``markers``.

    Parameters
    ----------
    surface : ndarray of float, shape (H, W)
        Relief to flood (e.g. ``-distance`` or a gradient magnitude).
    markers : ndarray of int, shape (H, W)
        Seeds, labels > 0; 0 = to be assigned.
    mask : ndarray of bool, shape (H, W), optional
        Pixels outside stay 0.
    compactness : float
        Compact watershed parameter (0 = classic watershed).

    Returns
    -------
    ndarray of int32, shape (H, W)
        Every pixel (inside ``mask``) labelled by the marker whose basin it belongs to.
    """
    return watershed(surface, markers, mask=mask, compactness=compactness).astype(np.int32)


def split_touching(mask: np.ndarray, min_distance: float,
                   min_height: float = 0.0) -> np.ndarray:
    """Split touching round objects with a distance-transform watershed.

    Returns
    -------
    ndarray of int32, shape (H, W)
        One label per object (0 = background).  Objects without a peak of at least
        ``min_height`` keep a label of their own.
    """
    mask = np.asarray(mask, dtype=bool)
    dist = distance_transform(mask)
    markers = distance_peaks(dist, min_distance, min_height, mask)
    n_cc, cc = cv2.connectedComponents(mask.astype(np.uint8), connectivity=8)
    missing = np.setdiff1d(np.arange(1, n_cc), np.unique(cc[markers > 0]))
    if len(missing):
        start = int(markers.max())
        for k, lab in enumerate(missing, start=1):
            ys, xs = np.nonzero(cc == lab)
            j = int(np.argmax(dist[ys, xs]))
            markers[ys[j], xs[j]] = start + k
    return marker_watershed(-dist, markers, mask)
