"""Colour statistics and granularity of the nucleus and the cytoplasm.

Colour statistics (mean, std, skewness, 10th/50th/90th percentiles) of nine channels per region:

* ``r``, ``g``, ``b`` -- RGB scaled to [0, 1];
* ``h``, ``s``, ``i`` -- HSI (Gonzalez & Woods): intensity ``(R+G+B)/3``, saturation
  ``1 - min/I``, and hue in [0, 1) *rotated so that 0 is green* (120 degrees). MGG-stained
  cells are purple, blue, pink and red -- hues far from green -- so the circular hue does not
  wrap inside the range the stain produces and linear statistics stay meaningful;
* ``l``, ``a``, ``bb`` -- CIE L*a*b* (D65; L in [0, 100], a and b roughly [-128, 127]).

Granularity describes the cytoplasmic granules (eosinophil, basophil, neutrophil, ig):

* a granulometry (morphological pattern spectrum) of the *darkness* ``255 - grey`` inside each
  region: ``gran_{region}_r{k}`` is the fraction of the region's total darkness removed by a
  grey opening with a disk of radius k after radius k-1; ``gran_{region}_residual`` what is left
  after the largest opening. Fine granules empty the small radii, coarse granules larger ones;
* the mean local (5x5) standard deviation of the grey level over each region, and of the
  Lab ``a`` (red-green) channel, which lights up on eosinophilic granules.
"""

from __future__ import annotations

import math
import re

import cv2
import numpy as np

from features._common import CellCrop, crop_cell
from segmentation.color import rgb_to_hsi
from segmentation.result import Segmentation

__all__ = ["colour_features", "colour_statistics", "granularity_features",
           "histogram_statistics", "CHANNELS", "STATS", "describe_colour"]

CHANNELS = ("r", "g", "b", "h", "s", "i", "l", "a", "bb")
STATS = ("mean", "std", "skew", "p10", "p50", "p90")
_REGIONS = ("nucleus", "cytoplasm")
_GRAN_RADII = (1, 2, 3, 5, 7)
_HUE_ORIGIN = 120.0 / 360.0
_PCT_FRACTIONS = np.array([0.1, 0.5, 0.9])


def _channel_codes(rgb_pixels: np.ndarray) -> list[tuple[np.ndarray, int, float, float]]:
    """Quantised codes of the nine channels of (N, 3) uint8 pixels.

    Returns one ``(codes, n_bins, scale, offset)`` per channel of :data:`CHANNELS`: the channel
    value of a pixel is ``offset + scale * code``, with integer ``codes`` in ``[0, n_bins)``.
    RGB and intensity are exact; hue and saturation use 1024 levels; Lab is OpenCV's 8-bit Lab.
    """
    pix = np.ascontiguousarray(rgb_pixels, dtype=np.uint8)
    r, g, b = (pix[:, k].astype(np.intp) for k in range(3))
    hsi = rgb_to_hsi(pix.astype(np.float32) / 255.0, hue_origin=_HUE_ORIGIN)
    h = np.rint(hsi[:, 0] * 1023.0).astype(np.intp)
    s = np.rint(hsi[:, 1] * 1023.0).astype(np.intp)
    lab = cv2.cvtColor(pix.reshape(-1, 1, 3), cv2.COLOR_RGB2Lab).reshape(-1, 3).astype(np.intp)
    return [
        (r, 256, 1 / 255, 0.0), (g, 256, 1 / 255, 0.0), (b, 256, 1 / 255, 0.0),
        (h, 1024, 1 / 1023, 0.0), (s, 1024, 1 / 1023, 0.0), (r + g + b, 766, 1 / 765, 0.0),
        (lab[:, 0], 256, 100 / 255, 0.0), (lab[:, 1], 256, 1.0, -128.0),
        (lab[:, 2], 256, 1.0, -128.0),
    ]


def histogram_statistics(counts: np.ndarray, values: np.ndarray) -> np.ndarray:
    """Mean, std, skewness, 10th/50th/90th percentiles of a histogram.

    Parameters
    ----------
    counts : ndarray, shape (B,)
        Non-negative counts of each bin.
    values : ndarray, shape (B,)
        Value of each bin, increasing.

    Returns
    -------
    ndarray of float64, shape (6,)
        In the order of :data:`STATS`. Percentiles are the lower nearest-rank values (the
        smallest bin value whose cumulative count reaches the fraction). Zeros for empty
        counts; skewness 0 for a constant distribution.
    """
    n = float(counts.sum())
    if n == 0:
        return np.zeros(len(STATS))
    p = counts / n
    mean = float(p @ values)
    d = values - mean
    d2 = d * d
    var = float(p @ d2)
    std = math.sqrt(max(var, 0.0))
    skew = float(p @ (d2 * d)) / std ** 3 if std > 1e-7 * max(abs(mean), 1.0) else 0.0
    cdf = np.cumsum(counts)
    idx = np.searchsorted(cdf, np.ceil(_PCT_FRACTIONS * n - 1e-9), side="left")
    pct = values[np.minimum(idx, values.size - 1)]
    out = np.array([mean, std, skew, pct[0], pct[1], pct[2]])
    if np.isfinite(out).all():       # nearly always; nan_to_num costs more than the rest
        return out
    return np.nan_to_num(out, nan=0.0, posinf=0.0, neginf=0.0)


def colour_statistics(rgb_pixels: np.ndarray) -> np.ndarray:
    """Statistics of the nine colour channels of a set of pixels.

    Parameters
    ----------
    rgb_pixels : ndarray of uint8, shape (N, 3)

    Returns
    -------
    ndarray of float64, shape (9, 6)
        Rows in the order of :data:`CHANNELS`, columns in the order of :data:`STATS`
        (see :func:`histogram_statistics`); zeros when N == 0.
    """
    return _region_statistics(rgb_pixels, {"all": np.ones(rgb_pixels.shape[0], bool)})["all"]


def _region_statistics(rgb_pixels: np.ndarray,
                       groups: dict[str, np.ndarray | tuple[str, ...]]
                       ) -> dict[str, np.ndarray]:
    """Statistics (9, 6) of several subsets of the pixels, converting colours only once.

    ``groups`` maps a name to a bool (N,) selection; the name ``"*"`` is not allowed. A group
    may also be a tuple of names of earlier groups, whose histograms are then added.
    """
    n_groups = {k: v for k, v in groups.items() if not isinstance(v, tuple)}
    out = {k: np.zeros((len(CHANNELS), len(STATS))) for k in groups}
    if rgb_pixels.shape[0] == 0:
        return out
    for ci, (codes, n_bins, scale, offset) in enumerate(_channel_codes(rgb_pixels)):
        values = offset + scale * np.arange(n_bins, dtype=np.float64)
        counts = {k: np.bincount(codes[sel], minlength=n_bins)[:n_bins].astype(np.float64)
                  for k, sel in n_groups.items()}
        for k, sel in groups.items():
            # a zeros start (not sum's int 0) keeps the type an array; the values are equal
            c = (sum((counts[m] for m in sel), np.zeros(n_bins)) if isinstance(sel, tuple)
                 else counts[k])
            out[k][ci] = histogram_statistics(c, values)
    return out


def granularity_features(image: np.ndarray, seg: Segmentation, *,
                         _crop: CellCrop | None = None) -> dict[str, float]:
    """Granulometry and local-variance features of the nucleus and the cytoplasm.

    Returns
    -------
    dict of str to float
        ``gran_{region}_r{k}`` for k in (1, 2, 3, 5, 7), ``gran_{region}_residual``,
        ``gran_{region}_local_std``, ``gran_{region}_local_std_a``. Zeros for an empty region.
    """
    crop = _crop if _crop is not None else crop_cell(image, seg)
    out: dict[str, float] = {}
    regions = {r: crop.region(r) for r in _REGIONS}
    if not any(m.any() for m in regions.values()):
        for region in _REGIONS:
            for k in _GRAN_RADII:
                out[f"gran_{region}_r{k}"] = 0.0
            for key in ("residual", "local_std", "local_std_a"):
                out[f"gran_{region}_{key}"] = 0.0
        return out
    dark = (255 - crop.grey).astype(np.uint8)
    # pixels outside the cell are set to 0 darkness so that openings of the cell do not
    # depend on neighbouring red cells or background
    dark = np.where(crop.cell, dark, 0).astype(np.uint8)
    opened: list[np.ndarray] = [dark]
    for k in _GRAN_RADII:
        se = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * k + 1, 2 * k + 1))
        opened.append(cv2.morphologyEx(dark, cv2.MORPH_OPEN, se))
    sums = {r: [float(o[m].sum(dtype=np.int64)) for o in opened] for r, m in regions.items()}
    g = crop.grey.astype(np.float32)
    a = cv2.cvtColor(crop.rgb.astype(np.float32) / 255.0, cv2.COLOR_RGB2Lab)[..., 1]
    local_std = {}
    for name, img in (("local_std", g), ("local_std_a", a)):
        mean = cv2.blur(img, (5, 5), borderType=cv2.BORDER_REFLECT)
        sq = cv2.blur(img * img, (5, 5), borderType=cv2.BORDER_REFLECT)
        local_std[name] = np.sqrt(np.maximum(sq - mean * mean, 0.0))
    for region, mask in regions.items():
        s = sums[region]
        total = s[0]
        for idx, k in enumerate(_GRAN_RADII, start=1):
            out[f"gran_{region}_r{k}"] = (s[idx - 1] - s[idx]) / total if total > 0 else 0.0
        out[f"gran_{region}_residual"] = s[-1] / total if total > 0 else 0.0
        inner = crop.eroded(region, 2)
        if not inner.any():
            inner = mask
        for name, img in local_std.items():
            out[f"gran_{region}_{name}"] = float(img[inner].mean()) if inner.any() else 0.0
    return out


def colour_features(image: np.ndarray, seg: Segmentation, *,
                    _crop: CellCrop | None = None) -> dict[str, float]:
    """Colour statistics and granularity of the nucleus and the cytoplasm.

    Parameters
    ----------
    image : ndarray of uint8, shape (H, W, 3)
        RGB image.
    seg : Segmentation

    Returns
    -------
    dict of str to float
        ``colour_{region}_{channel}_{stat}`` for region in (nucleus, cytoplasm, cell), each of
        :data:`CHANNELS` and :data:`STATS`; then ``colour_nc_{channel}_diff`` (nucleus mean
        minus cytoplasm mean); then the :func:`granularity_features`. Zeros for empty regions.
    """
    crop = _crop if _crop is not None else crop_cell(image, seg)
    out: dict[str, float] = {}
    means = {}
    in_nucleus = crop.nucleus[crop.cell]
    all_stats = _region_statistics(crop.rgb[crop.cell], {
        "nucleus": in_nucleus, "cytoplasm": ~in_nucleus, "cell": ("nucleus", "cytoplasm")})
    for region in (*_REGIONS, "cell"):
        mask = crop.region(region)
        stats = all_stats[region]
        means[region] = stats[:, 0] if mask.any() else None
        for ci, ch in enumerate(CHANNELS):
            for si, st in enumerate(STATS):
                out[f"colour_{region}_{ch}_{st}"] = float(stats[ci, si])
    nuc_mean, cyto_mean = means["nucleus"], means["cytoplasm"]
    for ci, ch in enumerate(CHANNELS):
        out[f"colour_nc_{ch}_diff"] = (float(nuc_mean[ci] - cyto_mean[ci])
                                       if nuc_mean is not None and cyto_mean is not None
                                       else 0.0)
    out.update(granularity_features(image, seg, _crop=crop))
    return out


_CHANNEL_MEANING = {
    "r": ("1", "red, RGB scaled to [0, 1]"), "g": ("1", "green, RGB scaled to [0, 1]"),
    "b": ("1", "blue, RGB scaled to [0, 1]"),
    "h": ("1", "HSI hue in [0, 1), 0 = green"), "s": ("1", "HSI saturation 1 - min/I"),
    "i": ("1", "HSI intensity (R+G+B)/3 in [0, 1]"), "l": ("L*", "CIE L* lightness (0-100)"),
    "a": ("a*", "CIE a* red-green"), "bb": ("b*", "CIE b* yellow-blue"),
}
_STAT_MEANING = {"mean": "mean", "std": "standard deviation", "skew": "skewness",
                 "p10": "10th percentile", "p50": "median", "p90": "90th percentile"}


def describe_colour(name: str) -> tuple[str, str] | None:
    """Unit and meaning of one colour or granularity feature (:func:`colour_features`).

    Returns
    -------
    (unit, meaning) : tuple of str, or None when ``name`` is not a colour feature
        ``unit`` is the channel's unit (``"1"`` dimensionless; skewness is always ``"1"``).
    """
    m = re.fullmatch(r"colour_(nucleus|cytoplasm|cell)_([a-z]+)_(mean|std|skew|p10|p50|p90)",
                     name)
    if m and m[2] in _CHANNEL_MEANING:
        unit, channel = _CHANNEL_MEANING[m[2]]
        return ("1" if m[3] == "skew" else unit), f"{m[1]} {_STAT_MEANING[m[3]]} of {channel}"
    m = re.fullmatch(r"colour_nc_([a-z]+)_diff", name)
    if m and m[1] in _CHANNEL_MEANING:
        unit, channel = _CHANNEL_MEANING[m[1]]
        return unit, f"nucleus mean minus cytoplasm mean of {channel}"
    m = re.fullmatch(r"gran_(nucleus|cytoplasm)_(r[0-9]+|residual|local_std|local_std_a)", name)
    if not m:
        return None
    region, key = m[1], m[2]
    if key == "residual":
        return "1", (f"{region} fraction of darkness left after a grey opening of radius "
                     f"{_GRAN_RADII[-1]} px (coarse structure)")
    if key == "local_std":
        return "grey", f"{region} mean 5x5 local standard deviation of the grey level (0-255)"
    if key == "local_std_a":
        return "a*", f"{region} mean 5x5 local standard deviation of CIE a* (granules)"
    return "1", (f"{region} granulometry: fraction of darkness removed by a grey opening of "
                 f"radius {key[1:]} px after the previous radius (granules of that size)")
