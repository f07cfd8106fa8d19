"""Texture in the cell's own frame: chromatin and granules independent of pixel size and stain.

The texture family (:mod:`features.texture`) looks at neighbours 1, 2 and 4 *pixels* apart on
the luminance. Both move between laboratories: a pixel is about 0.1 um on PBC's CellaVision
crops and about twice that on jtsc_seg's, and the luminance mixes the two stains in
proportions that depend on the recipe. Here the cell is first resampled so that its
equivalent diameter is ``size`` pixels (area averaging, which also brings sharper optics down
to a common, coarser resolution), then texture is measured on the **total optical density**
relative to the image's own background (:func:`segmentation.color.background_light`), so

* distances are fractions of the cell's diameter (granules, chromatin clumps and lobes keep
  their relative size whatever the magnification);
* the co-occurrence matrices quantise each region's OD over its own 1st-99th percentile
  range, and LBP codes only compare a pixel with its neighbours, so a globally stronger,
  weaker or differently coloured stain leaves them unchanged;
* a granulometry of the OD (pattern spectrum of grey openings with disks of 1-4 pixels of the
  resampled cell) gives the size distribution of granules and clumps relative to the cell.

Features: masked Haralick properties (:data:`features.texture.HARALICK_PROPS`) at distances 1
and 2 of the nucleus and the cytoplasm; uniform LBP (8 points, radius 1) histograms of both
regions; the granulometry of both regions.
"""

from __future__ import annotations

import functools
import math

import cv2
import numpy as np

from features._common import CellCrop, crop_cell, erode, masked_histogram
from features.texture import HARALICK_PROPS, haralick, masked_glcm, quantise, uniform_lbp
from segmentation.color import background_light, optical_density
from segmentation.result import Segmentation

__all__ = ["describe_cell_texture", "cell_texture_features", "cell_frame", "CELL_FRAME_SIZE"]

#: Equivalent diameter, in pixels, of the cell after resampling to its own frame.
CELL_FRAME_SIZE = 48
_REGIONS = ("nucleus", "cytoplasm")
_LEVELS = 16
_DISTANCES = (1, 2)
_LBP = (8, 1.0)
_GRAN_RADII = (1, 2, 3, 4)


def cell_frame(od: np.ndarray, crop: CellCrop, size: int = CELL_FRAME_SIZE
               ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Resample an OD image and the crop's masks so that the cell's equivalent diameter is
    ``size`` pixels.

    Parameters
    ----------
    od : ndarray of float32, shape (h, w)
        A channel of the crop (e.g. total optical density).
    crop : CellCrop
    size : int

    Returns
    -------
    od, nucleus, cytoplasm : ndarray, shape (h', w')
        float32 and bool; masks by area-weighted resampling thresholded at one half.
    """
    area = float(np.count_nonzero(crop.cell))
    factor = size / max(math.sqrt(4.0 * area / math.pi), 1.0)
    h, w = od.shape
    shape = (max(1, int(round(w * factor))), max(1, int(round(h * factor))))
    interp = cv2.INTER_AREA if factor < 1 else cv2.INTER_LINEAR
    out = cv2.resize(od.astype(np.float32), shape, interpolation=interp)
    masks = [cv2.resize(m.astype(np.float32), shape, interpolation=interp) > 0.5
             for m in (crop.nucleus, crop.cytoplasm)]
    return out, masks[0], masks[1] & ~masks[0]


def cell_texture_features(image: np.ndarray, seg: Segmentation, *, size: int = CELL_FRAME_SIZE,
                          _crop: CellCrop | None = None) -> dict[str, float]:
    """Scale- and stain-normalised texture of the nucleus and the cytoplasm.

    Parameters
    ----------
    image : ndarray of uint8, shape (H, W, 3)
        The whole single-cell image (its background is the OD reference).
    seg : Segmentation
        Masks of shape (H, W).
    size : int, default CELL_FRAME_SIZE
        Equivalent diameter of the resampled cell, in pixels.

    Returns
    -------
    dict of str to float
        ``ct_glcm_{region}_d{1,2}_{prop}``, ``ct_lbp_{region}_{k:02d}`` (k in 0..9),
        ``ct_gran_{region}_r{1..4}`` and ``ct_gran_{region}_residual`` for region in
        (nucleus, cytoplasm). Zeros for an empty region.
    """
    crop = _crop if _crop is not None else crop_cell(image, seg)
    names = _names()
    if not crop.found:
        return dict.fromkeys(names, 0.0)
    light = crop.shared("background_light", lambda: background_light(np.asarray(image)))
    total = optical_density(crop.rgb, light).sum(axis=-1)
    od, nucleus, cytoplasm = cell_frame(total, crop, int(size))
    regions = {"nucleus": nucleus, "cytoplasm": cytoplasm}
    out: dict[str, float] = {}
    q = np.zeros(od.shape, np.int32)
    for k, region in enumerate(_REGIONS):
        mask = regions[region]
        q[mask] = quantise(od, mask, _LEVELS)[mask] + k * _LEVELS
    props = haralick(masked_glcm(q, _LEVELS, _DISTANCES, n_blocks=2))
    for k, region in enumerate(_REGIONS):
        empty = not regions[region].any()
        for i, d in enumerate(_DISTANCES):
            for name in HARALICK_PROPS:
                out[f"ct_glcm_{region}_d{d}_{name}"] = 0.0 if empty else \
                    float(props[name][k, i].mean())
    points, radius = _LBP
    codes = uniform_lbp(od, points, radius)
    for region in _REGIONS:
        hist = masked_histogram(codes, erode(regions[region], int(math.ceil(radius))),
                                points + 2)
        for k in range(points + 2):
            out[f"ct_lbp_{region}_{k:02d}"] = float(hist[k])
    # openings of the OD inside the cell only: neighbours outside do not leak in
    inside = np.where(nucleus | cytoplasm, np.maximum(od, 0.0), 0.0).astype(np.float32)
    opened: list[np.ndarray] = [inside]
    for r in _GRAN_RADII:
        se = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * r + 1, 2 * r + 1))
        opened.append(cv2.morphologyEx(inside, cv2.MORPH_OPEN, se))
    for region in _REGIONS:
        mask = regions[region]
        sums = [float(o[mask].sum()) for o in opened]
        total_r = sums[0]
        for i, r in enumerate(_GRAN_RADII, start=1):
            out[f"ct_gran_{region}_r{r}"] = (sums[i - 1] - sums[i]) / total_r \
                if total_r > 0 else 0.0
        out[f"ct_gran_{region}_residual"] = sums[-1] / total_r if total_r > 0 else 0.0
    return {k: out[k] for k in names}


@functools.cache
def _names() -> tuple[str, ...]:
    names = [f"ct_glcm_{region}_d{d}_{p}" for region in _REGIONS for d in _DISTANCES
             for p in HARALICK_PROPS]
    names += [f"ct_lbp_{region}_{k:02d}" for region in _REGIONS for k in range(_LBP[0] + 2)]
    names += [f"ct_gran_{region}_{s}" for region in _REGIONS
              for s in (*(f"r{r}" for r in _GRAN_RADII), "residual")]
    return tuple(names)


def describe_cell_texture(name: str) -> tuple[str, str] | None:
    """``(unit, meaning)`` of a ``ct_*`` feature (None for another family's name)."""
    if not name.startswith("ct_"):
        return None
    kind, rest = name[3:].split("_", 1)
    what = {"glcm": "Haralick texture", "lbp": "uniform-LBP histogram bin",
            "gran": "granulometry (pattern spectrum) share"}.get(kind, kind)
    return "1", (f"{what} of the total optical density, cell resampled to "
                f"{CELL_FRAME_SIZE} px: {rest.replace('_', ' ')}")
