"""Binary morphology helpers on boolean masks (OpenCV-backed for speed)."""

from __future__ import annotations

import cv2
import numpy as np

__all__ = [
    "disk",
    "binary_open",
    "binary_close",
    "binary_dilate",
    "fill_holes",
    "remove_small_objects",
    "components_touching",
]


def disk(radius: float) -> np.ndarray:
    """Disk structuring element, ``uint8`` of shape (2r+1, 2r+1), ``r = max(1, round(radius))``."""
    r = max(1, int(round(float(radius))))
    return cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * r + 1, 2 * r + 1))


def _morph(mask: np.ndarray, op: int, radius: float) -> np.ndarray:
    if radius < 0.5:
        return np.asarray(mask, dtype=bool).copy()
    out = cv2.morphologyEx(np.asarray(mask, dtype=np.uint8), op, disk(radius),
                           borderType=cv2.BORDER_REPLICATE)
    return out.astype(bool)


def binary_open(mask: np.ndarray, radius: float) -> np.ndarray:
    """Opening with a disk of ``radius`` pixels; bool (H, W)."""
    return _morph(mask, cv2.MORPH_OPEN, radius)


def binary_close(mask: np.ndarray, radius: float) -> np.ndarray:
    """Closing with a disk of ``radius`` pixels; bool (H, W)."""
    return _morph(mask, cv2.MORPH_CLOSE, radius)


def binary_dilate(mask: np.ndarray, radius: float) -> np.ndarray:
    """Dilation with a disk of ``radius`` pixels; bool (H, W)."""
    return _morph(mask, cv2.MORPH_DILATE, radius)


def fill_holes(mask: np.ndarray) -> np.ndarray:
    """Fill enclosed holes (background not 4-connected to the border); bool (H, W)."""
    mask = np.asarray(mask, dtype=bool)
    h, w = mask.shape
    padded = np.zeros((h + 2, w + 2), dtype=np.uint8)
    padded[1:-1, 1:-1] = mask
    flood = np.zeros((h + 4, w + 4), dtype=np.uint8)
    cv2.floodFill(padded, flood, (0, 0), 1, flags=4)
    return mask | (padded[1:-1, 1:-1] == 0)


def remove_small_objects(mask: np.ndarray, min_area: float) -> np.ndarray:
    """Drop 8-connected components smaller than ``min_area`` pixels; bool (H, W)."""
    mask = np.asarray(mask, dtype=bool)
    n, labels, stats, _ = cv2.connectedComponentsWithStats(mask.astype(np.uint8), connectivity=8)
    if n <= 1:
        return mask.copy()
    keep = stats[:, cv2.CC_STAT_AREA] >= min_area
    keep[0] = False
    return keep[labels]


def components_touching(mask: np.ndarray, seed: np.ndarray) -> np.ndarray:
    """Union of the 8-connected components of ``mask`` that overlap ``seed``; bool (H, W)."""
    mask = np.asarray(mask, dtype=bool)
    n, labels = cv2.connectedComponents(mask.astype(np.uint8), connectivity=8)
    if n <= 1:
        return np.zeros_like(mask)
    hit = np.unique(labels[np.asarray(seed, dtype=bool) & mask])
    hit = hit[hit > 0]
    return np.isin(labels, hit)


def trim_pale_rim(cell: np.ndarray, nucleus: np.ndarray, pale: np.ndarray) -> np.ndarray:
    """Remove the pale ring a loose outline leaves between a cell's rim and the background.

    Pale pixels of ``cell`` (outside ``nucleus``) that are 4-connected to the outside of the
    cell through other pale pixels are taken off; pale spots enclosed by stained cytoplasm
    (vacuoles) stay. The result is opened by one pixel (no one-pixel spurs), reduced to the
    components touching the nucleus and hole-filled.

    Parameters
    ----------
    cell, nucleus, pale : ndarray of bool, shape (H, W)
        Cell and nucleus masks, and the background-coloured pixels of the image.

    Returns
    -------
    ndarray of bool, shape (H, W)
        The trimmed cell mask; it always contains ``nucleus``.
    """
    cell = np.asarray(cell, dtype=bool)
    nucleus = np.asarray(nucleus, dtype=bool)
    pale_cyto = np.asarray(pale, dtype=bool) & cell & ~nucleus
    outside = ~cell
    n, labels = cv2.connectedComponents((pale_cyto | outside).astype(np.uint8), connectivity=4)
    if n <= 1:
        return cell.copy()
    rim_ids = np.unique(labels[outside])
    rim = np.isin(labels, rim_ids[rim_ids > 0]) & pale_cyto
    trimmed = binary_open(cell & ~rim, 1) | nucleus
    trimmed = components_touching(trimmed, nucleus) if nucleus.any() else trimmed
    return fill_holes(trimmed)
