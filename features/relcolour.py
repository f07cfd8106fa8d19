"""Colour relative to the same smear: the cell's stains measured against its own references.

A haematologist reads colour against the slide itself -- "the granules are as red as the red
cells", "the cytoplasm is as dark as the nucleus" -- not in absolute RGB, which moves with the
stain recipe, the lamp and the camera (jtsc_seg's smears have a yellow background and
red-brown nuclei; PBC's a white background and purple nuclei). This family measures every
colour against three references found in the same image:

* the **background** (incident light ``I0``, :func:`segmentation.color.background_light`):
  optical density ``OD = -log10(I / I0)`` cancels the lamp and the white balance;
* the **nucleus** (the basophilic, haematoxylin/azure-like stain of this smear) and
* the **red cells** (the eosinophilic stain of this smear; median OD of the field's red-cell
  pixels, as in :mod:`features.density`).

The nucleus and red-cell mean OD vectors are the smear's own two stain directions; each
cytoplasm pixel's OD is unmixed on them by least squares (a per-image colour deconvolution
with self-calibrated stain vectors), so "how much nuclear-like and how much red-cell-like stain
is in the cytoplasm" is measured in units of the image's own nucleus and red cells. What is
left (the residual) is colour neither reference explains. Angles between the mean OD vectors
(cosines) compare hues without their amounts; ratios of total OD compare amounts.

Without enough red-cell pixels (``RBC_MIN_PIXELS`` of :mod:`features.density`) the red-cell
quantities are 0 and ``rc_rbc_missing`` is 1; the nucleus-relative ones are still computed.
All values are dimensionless and finite.
"""

from __future__ import annotations

import numpy as np

from features._common import CellCrop, crop_cell
from features.density import _red_cell_od
from segmentation.color import background_light, optical_density
from segmentation.result import Segmentation

__all__ = ["describe_relative_colour", "relative_colour_features", "unmix"]

_EPS = 1e-3
#: Cytoplasm pixels whose total OD is below this are left out of the per-pixel unmixing
#: (too pale to have a colour).
_MIN_PIXEL_OD = 0.02
_NAMES = (
    "rc_nc_amount", "rc_cos_cn", "rc_cos_cr", "rc_cos_nr", "rc_nucleus_rbc_amount",
    "rc_cyto_rbc_amount", "rc_cyto_nuclear", "rc_cyto_red", "rc_cyto_residual",
    "rc_cyto_nuclear_p50", "rc_cyto_nuclear_p90", "rc_cyto_red_p50", "rc_cyto_red_p90",
    "rc_cyto_red_dominant", "rc_cyto_nuclear_dominant", "rc_cyto_residual_p90",
    "rc_nucleus_cv", "rc_nucleus_p10", "rc_nucleus_p90", "rc_nucleus_red_p50",
    "rc_rbc_missing",
)


def unmix(od: np.ndarray, stains: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Least-squares amounts of ``k`` stain vectors in OD pixels.

    Parameters
    ----------
    od : ndarray of float, shape (N, 3)
    stains : ndarray of float, shape (k, 3)
        Stain OD vectors (rows), linearly independent; amounts are in units of each row.

    Returns
    -------
    amounts : ndarray of float64, shape (N, k)
    residual : ndarray of float64, shape (N,)
        Norm of the part of each pixel's OD the stains do not explain.
    """
    s = np.asarray(stains, np.float64)
    od = np.asarray(od, np.float64)
    # the pseudo-inverse once, then one matrix product: lstsq with N right-hand sides is an
    # SVD per call and ~20x slower here
    amounts = od @ np.linalg.pinv(s)
    residual = np.linalg.norm(od - amounts @ s, axis=1)
    return amounts, residual


def _cos(a: np.ndarray, b: np.ndarray) -> float:
    na, nb = float(np.linalg.norm(a)), float(np.linalg.norm(b))
    return float(a @ b) / (na * nb) if na > _EPS and nb > _EPS else 0.0


def relative_colour_features(image: np.ndarray, seg: Segmentation, *,
                             _crop: CellCrop | None = None) -> dict[str, float]:
    """Colour of the nucleus and cytoplasm relative to the image's background, nucleus and
    red cells (see the module docstring).

    Parameters
    ----------
    image : ndarray of uint8, shape (H, W, 3)
        The whole single-cell image (its background and red cells are references).
    seg : Segmentation
        Masks of shape (H, W).

    Returns
    -------
    dict of str to float
        ``rc_nc_amount`` (cytoplasm over nucleus mean total OD); ``rc_cos_{cn,cr,nr}``
        (cosines between the cytoplasm, nucleus and red-cell mean OD vectors);
        ``rc_{nucleus,cyto}_rbc_amount`` (total OD over the red cells'); the cytoplasm's mean
        amounts of nuclear and red-cell stain and the residual over its total OD
        (``rc_cyto_{nuclear,red,residual}``); per-pixel amounts (in units of the nucleus's and
        red cells' mean OD) ``rc_cyto_{nuclear,red}_{p50,p90}``, the fractions of cytoplasm
        pixels dominated by either stain, the residual's 90th percentile relative to the
        pixel's OD; the nucleus's total-OD coefficient of variation, 10th/90th percentiles
        over its mean, and its median red-cell-stain amount; ``rc_rbc_missing``.
        All zeros (``rc_rbc_missing`` included) when no cell was found.
    """
    crop = _crop if _crop is not None else crop_cell(image, seg)
    out = dict.fromkeys(_NAMES, 0.0)
    if not crop.found or not crop.nucleus.any():
        return out
    image = np.asarray(image)
    light = crop.shared("background_light", lambda: background_light(image))
    od = optical_density(crop.rgb, light).astype(np.float64)
    rbc = crop.shared("red_cell_od", lambda: _red_cell_od(image, seg.cell, light))
    nuc_px = od[crop.nucleus]
    cyt_px = od[crop.cytoplasm]
    n = nuc_px.mean(axis=0)
    n_tot = max(float(n.sum()), _EPS)
    tot_n = nuc_px.sum(axis=1)
    out["rc_nucleus_cv"] = float(tot_n.std() / n_tot)
    p10, p90 = np.percentile(tot_n, [10.0, 90.0])
    out["rc_nucleus_p10"] = float(p10 / n_tot)
    out["rc_nucleus_p90"] = float(p90 / n_tot)
    out["rc_rbc_missing"] = float(rbc is None)
    if rbc is not None:
        r = np.asarray(rbc, np.float64)
        out["rc_cos_nr"] = _cos(n, r)
        out["rc_nucleus_rbc_amount"] = n_tot / max(float(r.sum()), _EPS)
    if cyt_px.shape[0] == 0:
        return out
    c = cyt_px.mean(axis=0)
    c_tot = max(float(c.sum()), _EPS)
    out["rc_nc_amount"] = c_tot / n_tot
    out["rc_cos_cn"] = _cos(c, n)
    if rbc is None:
        return out
    out["rc_cos_cr"] = _cos(c, r)
    out["rc_cyto_rbc_amount"] = c_tot / max(float(r.sum()), _EPS)
    stains = np.stack([n, r])
    if abs(_cos(n, r)) > 0.999:  # one colour: the two references cannot be told apart
        return out
    amt, res = (x[0] for x in unmix(c[None], stains))
    norm_c = max(float(np.linalg.norm(c)), _EPS)
    out["rc_cyto_nuclear"] = float(amt[0])
    out["rc_cyto_red"] = float(amt[1])
    out["rc_cyto_residual"] = float(res / norm_c)
    px = cyt_px[cyt_px.sum(axis=1) > _MIN_PIXEL_OD]
    if px.shape[0]:
        a, res_px = unmix(px, stains)
        q = np.percentile(a, [50.0, 90.0], axis=0)
        out["rc_cyto_nuclear_p50"], out["rc_cyto_nuclear_p90"] = float(q[0, 0]), float(q[1, 0])
        out["rc_cyto_red_p50"], out["rc_cyto_red_p90"] = float(q[0, 1]), float(q[1, 1])
        out["rc_cyto_red_dominant"] = float(np.mean(a[:, 1] > a[:, 0]))
        out["rc_cyto_nuclear_dominant"] = float(np.mean(a[:, 0] > a[:, 1]))
        rel = res_px / np.maximum(np.linalg.norm(px, axis=1), _EPS)
        out["rc_cyto_residual_p90"] = float(np.percentile(rel, 90.0))
    a_n, _ = unmix(nuc_px, stains)
    out["rc_nucleus_red_p50"] = float(np.median(a_n[:, 1]))
    return out


def describe_relative_colour(name: str) -> tuple[str, str] | None:
    """``(unit, meaning)`` of an ``rc_*`` feature (None for another family's name)."""
    if not name.startswith("rc_"):
        return None
    words = name[3:].replace("_", " ").replace("rbc", "red cells").replace("nc", "nucleus/cell")
    if name.startswith("rc_cos_"):
        return "cosine", ("cosine between the optical-density colours of two parts "
                          "(c cytoplasm, n nucleus, r red cells): " + words)
    return "OD ratio", ("optical density against the image's background, relative to the "
                        "same smear's nucleus and red cells: " + words)
