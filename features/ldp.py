"""Local directional pattern (LDP) histograms of the nucleus and the cytoplasm.

LDP (Jabid, Kabir & Chae, 2010) codes each pixel by the directions of its three strongest
edge responses: the luminance is correlated with the 8 Kirsch compass masks ``M0..M7`` (east,
north-east, north, north-west, west, south-west, south, south-east), and bit ``i`` of the 8-bit
code is set when ``|m_i|`` is among the three largest absolute responses. Ties are broken
towards the lower mask index, so every code has exactly three bits set: C(8, 3) = 56 possible
codes, numbered in increasing order of the 8-bit code value.

The histogram is taken over the region eroded by one pixel, so every counted code depends only
on pixels of the region.
"""

from __future__ import annotations

import re
from itertools import combinations

import cv2
import numpy as np

from features._common import CellCrop, crop_cell, masked_histogram
from segmentation.result import Segmentation

__all__ = ["ldp_features", "ldp_codes", "kirsch_responses", "KIRSCH", "LDP_CODES",
           "LDP_RI_CLASS", "describe_ldp"]

_E = np.array([[-3, -3, 5], [-3, 0, 5], [-3, -3, 5]], dtype=np.float32)


def _rotate45(k: np.ndarray) -> np.ndarray:
    """Rotate a 3x3 compass mask by 45 degrees counter-clockwise (ring shift by one)."""
    ring = [(0, 0), (0, 1), (0, 2), (1, 2), (2, 2), (2, 1), (2, 0), (1, 0)]
    vals = [k[p] for p in ring]
    out = k.copy()
    for idx, p in enumerate(ring):
        out[p] = vals[(idx + 1) % 8]
    return out


def _kirsch() -> np.ndarray:
    masks = [_E]
    for _ in range(7):
        masks.append(_rotate45(masks[-1]))
    return np.stack(masks)


#: The 8 Kirsch masks, float32 (8, 3, 3): M0 east, M1 north-east, ..., M7 south-east.
KIRSCH = _kirsch()

#: The 56 valid LDP codes (8-bit values with exactly three bits set), ascending.
LDP_CODES = np.array(sorted(sum(1 << b for b in c) for c in combinations(range(8), 3)),
                     dtype=np.int64)
_CODE_TO_BIN = np.full(256, -1, dtype=np.intp)
_CODE_TO_BIN[LDP_CODES] = np.arange(LDP_CODES.size)


def _rotation_classes() -> np.ndarray:
    def rot(c: int) -> int:
        return ((c << 1) | (c >> 7)) & 0xFF

    minimal = []
    for code in LDP_CODES:
        c, seen = int(code), []
        for _ in range(8):
            seen.append(c)
            c = rot(c)
        minimal.append(min(seen))
    classes = sorted(set(minimal))
    return np.array([classes.index(m) for m in minimal], dtype=np.intp)


#: Class (0..6) of each of the 56 LDP bins under circular rotation of the code's bits.
LDP_RI_CLASS = _rotation_classes()
_N_RI = int(LDP_RI_CLASS.max()) + 1


def kirsch_responses(grey: np.ndarray) -> np.ndarray:
    """Absolute Kirsch responses (correlation, border replicated).

    Parameters
    ----------
    grey : ndarray, shape (H, W)

    Returns
    -------
    ndarray of float32, shape (8, H, W)
    """
    g = grey.astype(np.float32, copy=False)
    return np.stack([np.abs(cv2.filter2D(g, cv2.CV_32F, k, borderType=cv2.BORDER_REPLICATE))
                     for k in KIRSCH])


def ldp_codes(grey: np.ndarray, k: int = 3) -> np.ndarray:
    """LDP code image: bit i set when ``|m_i|`` ranks among the ``k`` largest.

    Parameters
    ----------
    grey : ndarray, shape (H, W)
    k : int
        Number of bits set per code (3 in the standard LDP).

    Returns
    -------
    ndarray of uint8, shape (H, W)
    """
    resp = kirsch_responses(grey)
    # rank_i = #{j : m_j > m_i or (m_j == m_i and j < i)}; bit i set when rank_i < k
    code = np.zeros(grey.shape, dtype=np.uint8)
    for i in range(8):
        rank = np.zeros(grey.shape, dtype=np.uint8)
        mi = resp[i]
        for j in range(8):
            if j == i:
                continue
            beats = resp[j] >= mi if j < i else resp[j] > mi
            rank += beats
        code |= (rank < k).astype(np.uint8) << np.uint8(i)
    return code


def ldp_features(image: np.ndarray, seg: Segmentation, *, rotation_invariant: bool = False,
                 _crop: CellCrop | None = None) -> dict[str, float]:
    """LDP histograms of the nucleus and of the cytoplasm.

    Parameters
    ----------
    image : ndarray of uint8, shape (H, W, 3)
    seg : Segmentation
    rotation_invariant : bool, default False
        False: the 56-bin histogram of the codes. True: the 7-bin histogram of the codes'
        classes under circular bit rotation (a rotation of the cell by a multiple of 45
        degrees rotates the code's bits), see :data:`LDP_RI_CLASS`.

    Returns
    -------
    dict of str to float
        ``ldp_{region}_{b:02d}`` for b in 0..55 (bin b is code ``LDP_CODES[b]``), or with
        ``rotation_invariant`` ``ldpri_{region}_{k}`` for k in 0..6: fraction of the region's
        (1-pixel eroded) pixels with that code. Zeros for an empty region.
    """
    crop = _crop if _crop is not None else crop_cell(image, seg)
    inner = {r: crop.eroded(r, 1) for r in ("nucleus", "cytoplasm")}
    if any(m.any() for m in inner.values()):
        bins = _CODE_TO_BIN[ldp_codes(crop.grey)]
    else:
        bins = np.zeros(crop.grey.shape, dtype=np.intp)
    out: dict[str, float] = {}
    for region, mask in inner.items():
        hist = masked_histogram(bins, mask, LDP_CODES.size)
        if rotation_invariant:
            ri = np.bincount(LDP_RI_CLASS, weights=hist, minlength=_N_RI)
            for k in range(_N_RI):
                out[f"ldpri_{region}_{k}"] = float(ri[k])
        else:
            for b in range(LDP_CODES.size):
                out[f"ldp_{region}_{b:02d}"] = float(hist[b])
    return out


def describe_ldp(name: str) -> tuple[str, str] | None:
    """Unit and meaning of one LDP feature (:func:`ldp_features`), or None.

    Returns
    -------
    (unit, meaning) : tuple of str
        Histogram fractions, dimensionless (``"1"``).
    """
    m = re.fullmatch(r"ldp(ri)?_(nucleus|cytoplasm)_([0-9]+)", name)
    if not m:
        return None
    if m[1]:
        return "1", (f"{m[2]} fraction of pixels whose LDP code (3 strongest Kirsch "
                     f"directions) is in rotation class {int(m[3])}")
    return "1", f"{m[2]} fraction of pixels with LDP code {int(LDP_CODES[int(m[3])])}"
