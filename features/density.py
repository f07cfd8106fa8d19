"""Stain-robust colour: optical density relative to the slide's own background and red cells.

The colour statistics of :mod:`features.colour` (RGB, HSI, Lab) move with the lamp, the
camera's white balance and the strength of the stain, which differ between laboratories. The
features here cancel what can be cancelled inside one image:

* **background-relative optical density** ``OD_c = -log10(I_c / I0_c)`` per RGB channel, with
  the incident light ``I0`` measured on the image's own background
  (:func:`segmentation.color.background_light`): the lamp and the white balance cancel;
* **OD chromaticity** ``OD_c / (OD_r + OD_g + OD_b)``: a thicker or more strongly stained cell
  scales the three densities alike, so their proportions (the stain's hue without its
  amount) stay;
* **ratios to the red cells** of the same field, region mean OD over red-cell median OD per
  channel: a globally stronger or weaker stain scales both and cancels (red cells are a stained
  reference present in every smear);
* **nucleus-to-cytoplasm OD ratio** per channel, which cancels the same way;
* **hue-free texture**: Haralick features (:func:`features.texture.haralick`) of the *total*
  optical density, quantised within each region's own range, so they depend on neither the hue
  nor the overall strength of the stain.

Red-cell pixels are those outside the (dilated) leukocyte whose total OD is above the Otsu
threshold of the total OD there (and above ``RBC_MIN_OD``) -- in a single-cell crop that is
red cells with a few platelets, and the median is robust to the platelets. Without enough of
them (``RBC_MIN_PIXELS``), the ratios are 0 and ``od_rbc_missing`` is 1.

This family is optional (``FeatureExtractor(families=(..., "density"))``): it is not in the
default set, whose models and throughput figures predate it.
"""

from __future__ import annotations

import functools

import cv2
import numpy as np

from features._common import CellCrop, crop_cell
from features.texture import HARALICK_PROPS, haralick, masked_glcm, quantise
from segmentation.color import background_light, optical_density
from segmentation.result import Segmentation
from segmentation.threshold import otsu_threshold

__all__ = ["density_features", "RBC_MIN_OD", "RBC_MIN_PIXELS"]

#: Smallest total OD (summed over R, G, B) of a pixel counted as red cell (a floor under the
#: Otsu threshold between background and red cells).
RBC_MIN_OD = 0.1
#: Fewest red-cell pixels needed for the red-cell ratios.
RBC_MIN_PIXELS = 200
_REGIONS = ("nucleus", "cytoplasm")
_CH = ("r", "g", "b")
_TEXTURE_LEVELS = 16
_TEXTURE_DISTANCES = (1, 2)
_EPS = 1e-3


def _red_cell_od(image: np.ndarray, cell: np.ndarray, light: np.ndarray) -> np.ndarray | None:
    """Median OD (3,) of the red-cell pixels of the field, or None when too few."""
    # every second row and column, as for the background: red cells are large and smooth
    sub = image[::2, ::2]
    away = cv2.dilate(cell.astype(np.uint8), np.ones((9, 9), np.uint8))[::2, ::2] == 0
    od = optical_density(sub, light)
    total = od.sum(axis=-1)
    # Otsu between background and red cells scales with the stain, so a stronger stain
    # selects the same pixels; the floor keeps an empty field from splitting its noise
    t = otsu_threshold(total, away)
    t = max(t, RBC_MIN_OD) if np.isfinite(t) else RBC_MIN_OD
    sel = (total > t) & away
    if np.count_nonzero(sel) < RBC_MIN_PIXELS // 4:
        return None
    return np.maximum(np.median(od[sel], axis=0), _EPS)


def density_features(image: np.ndarray, seg: Segmentation, *,
                     _crop: CellCrop | None = None) -> dict[str, float]:
    """Background- and red-cell-relative optical-density features of one leukocyte.

    Parameters
    ----------
    image : ndarray of uint8, shape (H, W, 3)
        The whole single-cell image (its background and red cells are the references).
    seg : Segmentation
        Masks of shape (H, W).

    Returns
    -------
    dict of str to float
        For region in (nucleus, cytoplasm): ``od_{region}_{r,g,b}_{mean,p50,p90}``,
        ``od_{region}_sum_{mean,std}``, ``od_{region}_chroma_{r,g,b}``,
        ``od_{region}_rbc_{r,g,b}``; then ``od_nc_ratio_{r,g,b}``, ``od_rbc_missing``, and
        ``odglcm_{region}_d{1,2}_{prop}`` for each of :data:`features.texture.HARALICK_PROPS`.
        All finite; zeros for an empty region.
    """
    crop = _crop if _crop is not None else crop_cell(image, seg)
    out: dict[str, float] = {}
    names = _names()
    if not crop.found:
        return dict.fromkeys(names, 0.0)
    image = np.asarray(image)
    light = background_light(image)
    od = optical_density(crop.rgb, light)
    total = od.sum(axis=-1)
    rbc = _red_cell_od(image, seg.cell, light)
    means: dict[str, np.ndarray] = {}
    for region in _REGIONS:
        mask = crop.region(region)
        px = od[mask]
        if px.shape[0] == 0:
            means[region] = np.zeros(3, np.float32)
            for key in names:
                if key.startswith(f"od_{region}_"):
                    out[key] = 0.0
            continue
        mean = px.mean(axis=0)
        means[region] = mean
        pct = np.percentile(px, [50.0, 90.0], axis=0)
        for c, ch in enumerate(_CH):
            out[f"od_{region}_{ch}_mean"] = float(mean[c])
            out[f"od_{region}_{ch}_p50"] = float(pct[0, c])
            out[f"od_{region}_{ch}_p90"] = float(pct[1, c])
        tot = total[mask]
        out[f"od_{region}_sum_mean"] = float(tot.mean())
        out[f"od_{region}_sum_std"] = float(tot.std())
        chroma = mean / max(float(mean.sum()), _EPS)
        for c, ch in enumerate(_CH):
            out[f"od_{region}_chroma_{ch}"] = float(chroma[c])
        for c, ch in enumerate(_CH):
            out[f"od_{region}_rbc_{ch}"] = 0.0 if rbc is None else float(mean[c] / rbc[c])
    cyto = np.maximum(means["cytoplasm"], _EPS)
    for c, ch in enumerate(_CH):
        out[f"od_nc_ratio_{ch}"] = float(means["nucleus"][c] / cyto[c]) \
            if means["cytoplasm"].any() else 0.0
    out["od_rbc_missing"] = float(rbc is None)
    out.update(_density_texture(total, crop))
    return {k: out[k] for k in names}


def _density_texture(total: np.ndarray, crop: CellCrop) -> dict[str, float]:
    levels = _TEXTURE_LEVELS
    q = np.zeros(total.shape, np.int32)
    for k, region in enumerate(_REGIONS):
        mask = crop.region(region)
        qr = quantise(total, mask, levels)
        q[mask] = qr[mask] + k * levels  # nucleus 1..L, cytoplasm L+1..2L
    props = haralick(masked_glcm(q, levels, _TEXTURE_DISTANCES, n_blocks=2))
    out: dict[str, float] = {}
    for k, region in enumerate(_REGIONS):
        empty = not crop.region(region).any()
        for i, d in enumerate(_TEXTURE_DISTANCES):
            for name in HARALICK_PROPS:
                out[f"odglcm_{region}_d{d}_{name}"] = 0.0 if empty else \
                    float(props[name][k, i].mean())
    return out


@functools.cache
def _names() -> tuple[str, ...]:
    names: list[str] = []
    for region in _REGIONS:
        names += [f"od_{region}_{ch}_{s}" for ch in _CH for s in ("mean", "p50", "p90")]
        names += [f"od_{region}_sum_mean", f"od_{region}_sum_std"]
        names += [f"od_{region}_chroma_{ch}" for ch in _CH]
        names += [f"od_{region}_rbc_{ch}" for ch in _CH]
    names += [f"od_nc_ratio_{ch}" for ch in _CH] + ["od_rbc_missing"]
    names += [f"odglcm_{region}_d{d}_{p}" for region in _REGIONS for d in _TEXTURE_DISTANCES
              for p in HARALICK_PROPS]
    return tuple(names)
