"""Texture features: masked grey-level co-occurrence (GLCM / Haralick) and masked LBP histograms.

Both are computed on the luminance of the cell crop, separately over the nucleus and the
cytoplasm, and *only pixels of the region contribute*:

* GLCM -- grey levels inside the cell are quantised to ``1..L`` over the cell's own 1st-99th
  percentile range (so features do not depend on the illumination level), pixels outside the
  region get level 0, and every pixel pair with a 0 is discarded (the trick of computing a GLCM
  on ``L + 1`` levels and dropping row/column 0). Matrices are symmetric, normalised, computed for
  each distance at 0, 45, 90 and 135 degrees; each Haralick property is averaged over the four
  angles (approximately rotation invariant).
* LBP -- rotation-invariant uniform patterns ("riu2", the definition of
  ``skimage.feature.local_binary_pattern(..., method="uniform")``, P + 2 bins), vectorised here
  (:func:`uniform_lbp`, several times faster), histogrammed over the region eroded by the LBP
  radius, so that every counted code only looks at pixels of the region.

Hence changing pixels outside a region never changes that region's texture features.
"""

from __future__ import annotations

import math
import re

import cv2
import numpy as np

from features._common import CellCrop, crop_cell, masked_histogram
from segmentation.result import Segmentation

__all__ = ["texture_features", "uniform_lbp", "glcm_features", "lbp_features", "masked_glcm",
           "haralick",
           "quantise", "HARALICK_PROPS", "describe_texture"]

HARALICK_PROPS = ("contrast", "dissimilarity", "homogeneity", "asm", "correlation", "entropy")
_ANGLES = 4
_REGIONS = ("nucleus", "cytoplasm")


def quantise(grey: np.ndarray, mask: np.ndarray, levels: int,
             ref_mask: np.ndarray | None = None) -> np.ndarray:
    """Quantise grey values inside ``mask`` to ``1..levels``; 0 outside.

    Parameters
    ----------
    grey : ndarray, shape (H, W)
    mask : ndarray of bool, shape (H, W)
    levels : int
    ref_mask : ndarray of bool, optional
        Pixels whose 1st and 99th percentiles set the quantisation range (default ``mask``).

    Returns
    -------
    ndarray of int32, shape (H, W)
    """
    ref = mask if ref_mask is None else ref_mask
    values = grey[ref]
    out = np.zeros(grey.shape, dtype=np.int32)
    if values.size == 0 or not mask.any():
        return out
    lo, hi = np.percentile(values.astype(np.float32), [1.0, 99.0])
    span = float(hi - lo)
    g = grey[mask].astype(np.float32)
    if span <= 0:
        q = np.ones(g.shape, dtype=np.int32)
    else:
        q = np.clip(np.floor((g - lo) * (levels / span)), 0, levels - 1).astype(np.int32) + 1
    out[mask] = q
    return out


def _offsets(distance: int) -> list[tuple[int, int]]:
    """(row, col) offsets for 0, 45, 90, 135 degrees (rows pointing down).

    Diagonal neighbours are at chessboard distance d, ``(d, +-d)``, as in Haralick (1973);
    ``skimage.feature.graycomatrix`` uses ``(round(d sin a), round(d cos a))`` instead, which is
    the same for d = 1 only.
    """
    d = distance
    return [(0, d), (d, d), (d, 0), (d, -d)]


def _pairs(q: np.ndarray, dr: int, dc: int) -> tuple[np.ndarray, np.ndarray]:
    """Arrays of (reference, neighbour) labels for the offset (dr, dc)."""
    h, w = q.shape
    r0, r1 = max(0, -dr), h - max(0, dr)
    c0, c1 = max(0, -dc), w - max(0, dc)
    if r1 <= r0 or c1 <= c0:
        empty = np.zeros(0, dtype=q.dtype)
        return empty, empty
    a = q[r0:r1, c0:c1]
    b = q[r0 + dr:r1 + dr, c0 + dc:c1 + dc]
    return a, b


def masked_glcm(q: np.ndarray, levels: int, distances: tuple[int, ...] = (1,),
                n_blocks: int = 1) -> np.ndarray:
    """Symmetric co-occurrence counts of labels ``1..n_blocks*levels``, ignoring label 0.

    ``n_blocks`` independent regions can be encoded in one label image: region ``k`` uses labels
    ``k*levels + 1 .. (k+1)*levels``; only pairs with both pixels in the same region are kept.

    Parameters
    ----------
    q : ndarray of int, shape (H, W)
        Labels, 0 = ignored.
    levels : int
    distances : tuple of int
    n_blocks : int

    Returns
    -------
    ndarray of float64, shape (n_blocks, len(distances), 4, levels, levels)
        Raw symmetric counts (not normalised), angles 0, 45, 90, 135 degrees.
    """
    n_labels = n_blocks * levels + 1
    out = np.zeros((n_blocks, len(distances), _ANGLES, levels, levels))
    # OpenCV's 2-D histogram of (reference, neighbour) is twice as fast as a bincount of
    # combined codes; its float32 counts are exact integers below 2**24 pairs
    q8 = q.astype(np.uint8) if n_labels <= 256 and q.size < 2 ** 24 else None
    for i, d in enumerate(distances):
        for j, (dr, dc) in enumerate(_offsets(d)):
            a, b = _pairs(q if q8 is None else q8, dr, dc)
            if a.size == 0:
                continue
            if q8 is None:
                counts = np.bincount((a.astype(np.intp) * n_labels + b).ravel(),
                                     minlength=n_labels * n_labels)
                full = counts.reshape(n_labels, n_labels)
            else:
                full = cv2.calcHist([np.ascontiguousarray(a), np.ascontiguousarray(b)],
                                    [0, 1], None, [n_labels, n_labels],
                                    [0, n_labels, 0, n_labels]).astype(np.float64)
            for k in range(n_blocks):
                s = slice(k * levels + 1, (k + 1) * levels + 1)
                block = full[s, s]
                out[k, i, j] = block + block.T
    return out


def haralick(glcm: np.ndarray) -> dict[str, np.ndarray]:
    """Haralick properties of co-occurrence matrices.

    Parameters
    ----------
    glcm : ndarray, shape (..., L, L)
        Counts or probabilities; each matrix is normalised to sum 1 here.

    Returns
    -------
    dict of str to ndarray of shape (...)
        ``contrast`` sum P (i-j)^2, ``dissimilarity`` sum P |i-j|, ``homogeneity``
        sum P / (1 + (i-j)^2), ``asm`` sum P^2, ``correlation`` (1 for a constant region,
        as in scikit-image), ``entropy`` -sum P log2 P. All zeros for an empty matrix.
    """
    levels = glcm.shape[-1]
    total = glcm.sum(axis=(-2, -1), keepdims=True)
    empty = total[..., 0, 0] == 0
    p = glcm / np.where(total == 0, 1.0, total)
    i = np.arange(levels, dtype=np.float64)[:, None]
    j = np.arange(levels, dtype=np.float64)[None, :]
    diff = i - j
    contrast = (p * diff ** 2).sum(axis=(-2, -1))
    dissimilarity = (p * np.abs(diff)).sum(axis=(-2, -1))
    homogeneity = (p / (1.0 + diff ** 2)).sum(axis=(-2, -1))
    asm = (p ** 2).sum(axis=(-2, -1))
    pi = p.sum(axis=-1)  # marginal over j, shape (..., L)
    lv = np.arange(levels, dtype=np.float64)
    mu = (pi * lv).sum(axis=-1)
    var = (pi * (lv - mu[..., None]) ** 2).sum(axis=-1)
    cov = (p * (i - mu[..., None, None]) * (j - mu[..., None, None])).sum(axis=(-2, -1))
    # symmetric matrices: both marginals are equal, so sigma_i * sigma_j = var
    with np.errstate(divide="ignore", invalid="ignore"):
        correlation = np.where(var > 1e-15, cov / np.where(var > 1e-15, var, 1.0), 1.0)
    with np.errstate(divide="ignore", invalid="ignore"):
        logp = np.where(p > 0, np.log2(np.where(p > 0, p, 1.0)), 0.0)
    entropy = -(p * logp).sum(axis=(-2, -1))
    props = dict(contrast=contrast, dissimilarity=dissimilarity, homogeneity=homogeneity,
                 asm=asm, correlation=correlation, entropy=entropy)
    return {k: np.where(empty, 0.0, v) for k, v in props.items()}


def glcm_features(image: np.ndarray, seg: Segmentation, *, levels: int = 32,
                  distances: tuple[int, ...] = (1, 2, 4),
                  _crop: CellCrop | None = None) -> dict[str, float]:
    """Masked Haralick features of the nucleus and the cytoplasm.

    Parameters
    ----------
    image : ndarray of uint8, shape (H, W, 3)
    seg : Segmentation
    levels : int
        Number of grey levels after quantisation (e.g. 32).
    distances : tuple of int
        Pixel distances of the co-occurrence pairs.

    Returns
    -------
    dict of str to float
        ``glcm_{region}_d{d}_{prop}`` for region in (nucleus, cytoplasm), each distance and
        each of :data:`HARALICK_PROPS`, averaged over 4 angles. Zeros for an empty region.
    """
    if levels < 2:
        raise ValueError(f"levels must be >= 2, got {levels}")
    distances = tuple(int(d) for d in distances)
    if any(d < 1 for d in distances):
        raise ValueError(f"distances must be >= 1, got {distances}")
    crop = _crop if _crop is not None else crop_cell(image, seg)
    q = quantise(crop.grey, crop.cell, levels)
    # nucleus: labels 1..L, cytoplasm: L+1..2L
    q = np.where(crop.cytoplasm & (q > 0), q + levels, np.where(crop.nucleus, q, 0))
    glcm = masked_glcm(q, levels, distances, n_blocks=2)
    props = haralick(glcm)  # each (2, n_dist, 4)
    out: dict[str, float] = {}
    for k, region in enumerate(_REGIONS):
        for i, d in enumerate(distances):
            for name in HARALICK_PROPS:
                out[f"glcm_{region}_d{d}_{name}"] = float(props[name][k, i].mean())
    return out


def lbp_features(image: np.ndarray, seg: Segmentation, *,
                 lbp: tuple[tuple[int, float], ...] = ((8, 1.0), (16, 2.0)),
                 _crop: CellCrop | None = None) -> dict[str, float]:
    """Masked rotation-invariant uniform LBP histograms of the nucleus and the cytoplasm.

    Parameters
    ----------
    image : ndarray of uint8, shape (H, W, 3)
    seg : Segmentation
    lbp : tuple of (P, R)
        Number of sampling points and radius of each LBP operator.

    Returns
    -------
    dict of str to float
        ``lbp{P}r{R}_{region}_{k:02d}`` for k in 0..P+1: fraction of the region's (eroded)
        pixels with pattern k. Zeros for an empty region.
    """
    crop = _crop if _crop is not None else crop_cell(image, seg)
    out: dict[str, float] = {}
    for points, radius in lbp:
        points = int(points)
        n_bins = points + 2
        tag = f"lbp{points}r{_fmt_radius(radius)}"
        inner = {r: crop.eroded(r, int(math.ceil(radius))) for r in _REGIONS}
        if any(m.any() for m in inner.values()):
            codes = uniform_lbp(crop.grey, points, radius)
        else:
            codes = np.zeros(crop.grey.shape, np.intp)
        for region in _REGIONS:
            hist = masked_histogram(codes, inner[region], n_bins)
            for k in range(n_bins):
                out[f"{tag}_{region}_{k:02d}"] = float(hist[k])
    return out


def uniform_lbp(grey: np.ndarray, points: int = 8, radius: float = 1.0,
                tol: float = 1e-4) -> np.ndarray:
    """Rotation-invariant uniform local binary patterns (riu2), vectorised.

    Neighbour ``p`` is sampled by bilinear interpolation at ``(-R sin(2 pi p / P),
    R cos(2 pi p / P))`` (row, col) from the pixel, as in scikit-image; its bit is set when
    it is >= the centre (``- tol``, so that rounding in the interpolation does not flip bits in
    flat areas); the interpolation is one cv2 correlation per neighbour. A pattern with at
    most two 0/1 transitions around the circle gets the number of set bits (0..P), any other
    pattern P + 1.

    Parameters
    ----------
    grey : ndarray, shape (H, W)
    points : int
        P, number of neighbours.
    radius : float
        R, in pixels.
    tol : float

    Returns
    -------
    ndarray of uint8, shape (H, W)
        Codes in 0..P+1; the border is handled by edge replication.
    """
    g = np.asarray(grey, dtype=np.float32)
    h, w = g.shape
    half = int(math.ceil(radius)) + 1
    angles = 2 * np.pi * np.arange(points) / points
    drs = np.round(-radius * np.sin(angles), 5)
    dcs = np.round(radius * np.cos(angles), 5)
    bits = []
    for dr, dc in zip(drs, dcs, strict=True):
        # one correlation kernel per neighbour: bilinear weights minus the centre -> t - g
        kernel = np.zeros((2 * half + 1, 2 * half + 1), dtype=np.float32)
        r0, c0 = int(math.floor(dr)), int(math.floor(dc))
        fr, fc = dr - r0, dc - c0
        for rr, cc, wt in ((r0, c0, (1 - fr) * (1 - fc)), (r0, c0 + 1, (1 - fr) * fc),
                           (r0 + 1, c0, fr * (1 - fc)), (r0 + 1, c0 + 1, fr * fc)):
            if wt != 0:
                kernel[half + rr, half + cc] += wt
        kernel[half, half] -= 1.0
        diff = cv2.filter2D(g, cv2.CV_32F, kernel, borderType=cv2.BORDER_REPLICATE)
        bits.append(diff >= -tol)
    n_set = np.zeros((h, w), dtype=np.uint8)
    changes = np.zeros((h, w), dtype=np.uint8)
    for p in range(points):
        n_set += bits[p]
        changes += bits[p] != bits[(p + 1) % points]
    return np.where(changes <= 2, n_set, np.uint8(points + 1)).astype(np.uint8)


def _fmt_radius(radius: float) -> str:
    return str(int(radius)) if float(radius).is_integer() else str(radius).replace(".", "p")


def texture_features(image: np.ndarray, seg: Segmentation, *, levels: int = 32,
                     distances: tuple[int, ...] = (1, 2, 4),
                     lbp: tuple[tuple[int, float], ...] = ((8, 1.0), (16, 2.0)),
                     _crop: CellCrop | None = None) -> dict[str, float]:
    """GLCM/Haralick and LBP features (see :func:`glcm_features`, :func:`lbp_features`).

    Returns
    -------
    dict of str to float
        The GLCM keys followed by the LBP keys.
    """
    crop = _crop if _crop is not None else crop_cell(image, seg)
    out = glcm_features(image, seg, levels=levels, distances=distances, _crop=crop)
    out.update(lbp_features(image, seg, lbp=lbp, _crop=crop))
    return out


_HARALICK_MEANING = {
    "contrast": "Haralick contrast (sum of p(i,j) (i-j)^2)",
    "dissimilarity": "Haralick dissimilarity (sum of p(i,j) |i-j|)",
    "homogeneity": "Haralick homogeneity (sum of p(i,j) / (1 + (i-j)^2))",
    "asm": "Haralick angular second moment (energy^2)",
    "correlation": "Haralick correlation of grey levels in the pair",
    "entropy": "Haralick entropy of the co-occurrence matrix (bits)",
}


def describe_texture(name: str) -> tuple[str, str] | None:
    """Unit and meaning of one texture feature (:func:`texture_features`), or None.

    Returns
    -------
    (unit, meaning) : tuple of str
        Every texture feature is dimensionless (``"1"``): grey levels are quantised within
        the cell's own range and histograms are fractions.
    """
    m = re.fullmatch(r"(od)?glcm_(nucleus|cytoplasm)_d([0-9]+)_([a-z]+)", name)
    if m and m[4] in _HARALICK_MEANING:
        source = "total optical density" if m[1] else "luminance"
        return "1", (f"{m[2]} {_HARALICK_MEANING[m[4]]} of the {source}, pixel distance "
                     f"{m[3]}, mean of 4 angles")
    m = re.fullmatch(r"lbp([0-9]+)r([0-9p]+)_(nucleus|cytoplasm)_([0-9]+)", name)
    if m:
        points, k = int(m[1]), int(m[4])
        what = ("non-uniform patterns" if k == points + 1
                else f"uniform pattern with {k} of {points} neighbours brighter")
        return "1", (f"{m[3]} fraction of pixels with LBP (P={points}, R={m[2].replace('p', '.')}"
                     f", riu2) {what}")
    return None
