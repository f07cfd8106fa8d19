"""Geometric features of the nucleus and the whole cell.

Units
-----
*Absolute* size features -- ``*_area``, ``*_perimeter``, ``*_major_axis``, ``*_minor_axis``,
``*_equivalent_diameter`` -- are in pixels (px, px^2) by default, or in micrometres (um, um^2)
when ``um_per_pixel`` is given; pass it when images of different magnifications are mixed, so
that sizes become comparable. Every other geometric feature is *dimensionless* and invariant to
image scale: shape descriptors (circularity, eccentricity, solidity, convexity), ratios of the
nucleus to the cell (area ratio, relative diameter, centroid offset in cell radii), lobe counts,
log-scaled Hu moments and Zernike moment magnitudes (computed on the region resampled to a fixed
radius).

Perimeters and the shape descriptors derived from them are measured on the polygon of the
region's outer boundary (OpenCV ``CHAIN_APPROX_TC89_KCOS``), which makes a digital disk's
circularity ~1 and a square's exactly pi/4; holes are ignored. A region with several connected
components is measured as one set (areas and perimeters summed, one convex hull).
"""

from __future__ import annotations

import math
import re

import cv2
import mahotas
import numpy as np

from features._common import CellCrop, crop_cell, safe_div
from segmentation.result import Segmentation

__all__ = ["geometry_features", "count_lobes", "region_shape", "fourier_descriptors",
           "describe_geometry"]

_SHAPE_KEYS = ("area", "perimeter", "equivalent_diameter", "major_axis", "minor_axis",
               "eccentricity", "circularity", "solidity", "convexity", "extent")
_HU = 7
_ZERNIKE_DEGREE = 8
_ZERNIKE_RADIUS = 20  # px, region resampled so its enclosing radius is this
_N_ZERNIKE = 25  # number of |Z_nm| with n <= 8, n - |m| even, m >= 0
_LOBE_LEVELS = (0.3, 0.45, 0.6)


def region_shape(mask: np.ndarray) -> dict[str, float]:
    """Shape measurements of a bool mask, all in pixels; zeros for an empty mask.

    Parameters
    ----------
    mask : ndarray of bool, shape (H, W)

    Returns
    -------
    dict of str to float
        ``area`` (pixel count), ``perimeter`` (outer-boundary polygon length),
        ``equivalent_diameter`` (``sqrt(4 area / pi)``), ``major_axis``/``minor_axis``
        (of the ellipse with the same second moments), ``eccentricity`` (0 for a disk),
        ``circularity`` (``4 pi A_poly / P^2``, ~1 for a disk, pi/4 for a square),
        ``solidity`` (area over convex-hull area), ``convexity`` (hull perimeter over
        perimeter), ``extent`` (area over bounding-box area).
    """
    out = dict.fromkeys(_SHAPE_KEYS, 0.0)
    m8 = mask.astype(np.uint8)
    area = float(np.count_nonzero(m8))
    if area == 0:
        return out
    contours, _ = cv2.findContours(m8, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_TC89_KCOS)
    poly_area = float(sum(cv2.contourArea(c) for c in contours))
    perimeter = float(sum(cv2.arcLength(c, True) for c in contours))
    points = np.concatenate(contours, axis=0)
    hull = cv2.convexHull(points)
    hull_perimeter = cv2.arcLength(hull, True)
    hull_mask = np.zeros_like(m8)
    cv2.fillPoly(hull_mask, [hull], 1)
    hull_area = float(np.count_nonzero(hull_mask | m8))
    mom = cv2.moments(m8, binaryImage=True)
    mu20, mu02, mu11 = mom["mu20"] / area, mom["mu02"] / area, mom["mu11"] / area
    half_diff = math.sqrt(((mu20 - mu02) / 2.0) ** 2 + mu11 ** 2)
    lam1 = max((mu20 + mu02) / 2.0 + half_diff, 0.0)
    lam2 = max((mu20 + mu02) / 2.0 - half_diff, 0.0)
    x, y, w, h = cv2.boundingRect(points)
    out.update(
        area=area,
        perimeter=perimeter,
        equivalent_diameter=math.sqrt(4.0 * area / math.pi),
        major_axis=4.0 * math.sqrt(lam1),
        minor_axis=4.0 * math.sqrt(lam2),
        eccentricity=math.sqrt(max(0.0, 1.0 - lam2 / lam1)) if lam1 > 0 else 0.0,
        circularity=min(safe_div(4.0 * math.pi * poly_area, perimeter ** 2), 1.0),
        solidity=min(safe_div(area, hull_area), 1.0),
        convexity=min(safe_div(hull_perimeter, perimeter), 1.0),
        extent=safe_div(area, w * h),
    )
    return out


def count_lobes(mask: np.ndarray, levels: tuple[float, ...] = _LOBE_LEVELS,
                min_fraction: float = 0.02) -> tuple[int, int]:
    """Count the lobes and connected components of a (nuclear) mask.

    A lobe is a thick part of the region: the distance transform is thresholded at each
    fraction in ``levels`` of its maximum and the components of the cores are counted; the
    lobe count is the largest count over the levels. Lobes joined by thin chromatin filaments
    (segmented neutrophils) or separated entirely are both counted.

    Parameters
    ----------
    mask : ndarray of bool, shape (H, W)
    levels : tuple of float
        Fractions of the maximal distance to the boundary.
    min_fraction : float
        Components smaller than this fraction of the mask's area are ignored (noise).

    Returns
    -------
    n_lobes, n_components : int
        Both 0 for an empty mask.
    """
    n_lobes, n_components, _, _ = _lobe_stats(mask, levels, min_fraction)
    return n_lobes, n_components


def _lobe_stats(mask: np.ndarray, levels: tuple[float, ...] = _LOBE_LEVELS,
                min_fraction: float = 0.02) -> tuple[int, int, float, float]:
    """(n_lobes, n_components, max and mean distance to the boundary of the hole-filled
    mask)."""
    m8 = mask.astype(np.uint8)
    area = int(np.count_nonzero(m8))
    if area == 0:
        return 0, 0, 0.0, 0.0
    n_components = int(np.count_nonzero(_component_areas(m8) >= min_fraction * area))
    # lobes describe the outline: fill holes (pale chromatin) before the distance transform
    contours, _ = cv2.findContours(m8, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    filled = np.zeros((m8.shape[0] + 2, m8.shape[1] + 2), np.uint8)
    cv2.drawContours(filled, contours, -1, 1, thickness=cv2.FILLED, offset=(1, 1))
    dist = exact_distance_transform(filled)
    dmax = float(dist.max())
    # a core smaller than a disk of 15 % of the thickest lobe's radius is a ragged-edge bump
    min_core = max(2.0, math.pi * (0.15 * dmax) ** 2)
    n_lobes = 0
    for level in levels:
        core = (dist > level * dmax).astype(np.uint8)
        n_lobes = max(n_lobes, int(np.count_nonzero(_component_areas(core) >= min_core)))
    dmean = float(dist[filled > 0].mean())
    return max(n_lobes, 1 if n_components else 0), n_components, dmax, dmean


def exact_distance_transform(m8: np.ndarray) -> np.ndarray:
    """Euclidean distance of every foreground pixel to the nearest background pixel, the same
    in every run.

    ``cv2.distanceTransform(..., DIST_MASK_PRECISE)`` is exact only up to float32 rounding
    that depends on OpenCV's thread count (measured: 18.973665 with 2 threads, 18.973667 with
    1 for one PBC nucleus), which moved ``nucleus_thickness`` in its last bit on a few images
    between runs.  The exact distances are square roots of integers (pixel-centre offsets),
    so snapping the squared distance to the nearest integer removes the rounding noise.

    Parameters
    ----------
    m8 : ndarray of uint8, shape (H, W)
        Non-zero = foreground.

    Returns
    -------
    ndarray of float32, shape (H, W)
    """
    dist = cv2.distanceTransform(m8, cv2.DIST_L2, cv2.DIST_MASK_PRECISE).astype(np.float64)
    return np.sqrt(np.rint(dist * dist)).astype(np.float32)


def _component_areas(m8: np.ndarray) -> np.ndarray:
    """Pixel counts of the 8-connected components of a uint8 mask (background excluded)."""
    n, labels = cv2.connectedComponents(m8, connectivity=8, ltype=cv2.CV_32S)
    if n <= 1:
        return np.zeros(0, dtype=np.int64)
    return np.bincount(labels.ravel(), minlength=n)[1:]


def _log_hu(mask: np.ndarray) -> np.ndarray:
    """Log-scaled Hu moments ``-sign(h) log10|h|``, clipped to [-30, 30]; zeros if empty."""
    if not mask.any():
        return np.zeros(_HU)
    hu = cv2.HuMoments(cv2.moments(mask.astype(np.uint8), binaryImage=True)).ravel()
    mag = np.clip(np.abs(hu), 1e-30, None)
    out = -np.sign(hu) * np.log10(mag)
    out[hu == 0] = 0.0
    return np.clip(out, -30.0, 30.0)


def _zernike(mask: np.ndarray) -> np.ndarray:
    """Zernike moment magnitudes (degree 8) of the mask resampled to radius ``_ZERNIKE_RADIUS``.

    The region is centred on its centroid and scaled so its farthest pixel is at the
    reference radius, which makes the magnitudes invariant to translation, rotation and scale.
    """
    if not mask.any():
        return np.zeros(_N_ZERNIKE)
    rows, cols = np.nonzero(mask)
    cy, cx = rows.mean(), cols.mean()
    rmax = float(np.sqrt(((rows - cy) ** 2 + (cols - cx) ** 2).max())) + 0.5
    size = 2 * _ZERNIKE_RADIUS + 2
    scale = _ZERNIKE_RADIUS / rmax
    # affine map: source (x, y) -> centred, scaled destination
    mat = np.array([[scale, 0.0, size / 2.0 - scale * cx],
                    [0.0, scale, size / 2.0 - scale * cy]])
    warped = cv2.warpAffine(mask.astype(np.float32), mat, (size, size),
                            flags=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR)
    if not warped.any():
        return np.zeros(_N_ZERNIKE)
    z = mahotas.features.zernike_moments(warped, _ZERNIKE_RADIUS, degree=_ZERNIKE_DEGREE)
    return np.nan_to_num(np.asarray(z, dtype=np.float64), nan=0.0, posinf=0.0, neginf=0.0)


def geometry_features(image: np.ndarray, seg: Segmentation, *,
                      um_per_pixel: float | None = None,
                      _crop: CellCrop | None = None) -> dict[str, float]:
    """Geometric features of the cell and its nucleus.

    Parameters
    ----------
    image : ndarray of uint8, shape (H, W, 3)
        RGB image (only its shape is used here).
    seg : Segmentation
        Masks of the leukocyte, shape (H, W).
    um_per_pixel : float, optional
        Physical pixel size. When given, absolute sizes are in um / um^2 instead of px / px^2
        (see the module docstring); dimensionless features are unchanged.

    Returns
    -------
    dict of str to float
        Always the same keys in the same order: ``cell_*`` and ``nucleus_*`` shape
        measurements (see :func:`region_shape`), ``cytoplasm_area``, ``nucleus_cell_area_ratio``,
        ``nucleus_cell_diameter_ratio``, ``nucleus_centroid_offset``, ``nucleus_lobes``,
        ``nucleus_components``, ``nucleus_thickness``, ``nucleus_mean_thickness``,
        ``nucleus_convexity_defects``, ``cell_hu1..7``, ``nucleus_hu1..7``, Fourier descriptors
        ``cell_fd1..8`` and ``nucleus_fd1..8`` (see :func:`fourier_descriptors`) and
        ``nucleus_zernike01..24``. Zeros for missing regions.
    """
    crop = _crop if _crop is not None else crop_cell(image, seg)
    if um_per_pixel is not None and not (um_per_pixel > 0 and math.isfinite(um_per_pixel)):
        raise ValueError(f"um_per_pixel must be a positive finite number, got {um_per_pixel!r}")
    length = 1.0 if um_per_pixel is None else float(um_per_pixel)
    out: dict[str, float] = {}
    shapes = {}
    for name in ("cell", "nucleus"):
        shape = region_shape(crop.region(name))
        shapes[name] = shape
        for key in _SHAPE_KEYS:
            value = shape[key]
            if key == "area":
                value *= length ** 2
            elif key in ("perimeter", "equivalent_diameter", "major_axis", "minor_axis"):
                value *= length
            out[f"{name}_{key}"] = value
    cell, nuc = shapes["cell"], shapes["nucleus"]
    out["cytoplasm_area"] = float(np.count_nonzero(crop.cytoplasm)) * length ** 2
    out["nucleus_cell_area_ratio"] = safe_div(nuc["area"], cell["area"])
    out["nucleus_cell_diameter_ratio"] = safe_div(nuc["equivalent_diameter"],
                                                  cell["equivalent_diameter"])
    offset = 0.0
    if nuc["area"] > 0 and cell["area"] > 0:
        nr, nc = np.nonzero(crop.nucleus)
        cr, cc = np.nonzero(crop.cell)
        dist = math.hypot(nr.mean() - cr.mean(), nc.mean() - cc.mean())
        offset = safe_div(dist, cell["equivalent_diameter"] / 2.0)
    out["nucleus_centroid_offset"] = offset
    n_lobes, n_components, dmax, dmean = _lobe_stats(crop.nucleus)
    out["nucleus_lobes"] = float(n_lobes)
    out["nucleus_components"] = float(n_components)
    # largest inscribed disk's diameter over the equivalent diameter: 1 for a disk, small for
    # thin, lobed or band-shaped nuclei
    out["nucleus_thickness"] = min(safe_div(2.0 * max(dmax - 0.5, 0.0),
                                            nuc["equivalent_diameter"]), 1.0)
    # mean distance to the boundary over the equivalent diameter: 1/3 for a disk
    out["nucleus_mean_thickness"] = min(safe_div(2.0 * dmean, nuc["equivalent_diameter"]), 1.0)
    out["nucleus_convexity_defects"] = float(_convexity_defects(crop.nucleus))
    for name in ("cell", "nucleus"):
        for i, v in enumerate(_log_hu(crop.region(name)), start=1):
            out[f"{name}_hu{i}"] = float(v)
    for name in ("cell", "nucleus"):
        for i, v in enumerate(fourier_descriptors(crop.region(name)), start=1):
            out[f"{name}_fd{i}"] = float(v)
    # |Z00| is constant (the area normalisation), so it is left out
    for i, v in enumerate(_zernike(crop.nucleus)[1:], start=1):
        out[f"nucleus_zernike{i:02d}"] = float(v)
    return out


def fourier_descriptors(mask: np.ndarray, n_harmonics: int = 8,
                        n_points: int = 64) -> np.ndarray:
    """Fourier descriptors of the outline of the largest component of a mask.

    The centroid-distance signature of the outer boundary, resampled at ``n_points`` equally
    spaced arc-length positions, is Fourier transformed; the magnitudes of harmonics
    1..``n_harmonics`` divided by the mean distance are invariant to translation, rotation,
    scale and starting point. A disk gives ~0; lobes and indentations raise the harmonics.

    Parameters
    ----------
    mask : ndarray of bool, shape (H, W)
    n_harmonics, n_points : int

    Returns
    -------
    ndarray of float64, shape (n_harmonics,)
        Zeros for an empty or tiny mask.
    """
    m8 = mask.astype(np.uint8)
    if not m8.any():
        return np.zeros(n_harmonics)
    contours, _ = cv2.findContours(m8, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
    contour = max(contours, key=cv2.contourArea).reshape(-1, 2).astype(np.float64)
    if len(contour) < 8:
        return np.zeros(n_harmonics)
    closed = np.vstack([contour, contour[:1]])
    seg_len = np.hypot(*np.diff(closed, axis=0).T)
    arc = np.concatenate([[0.0], np.cumsum(seg_len)])
    if arc[-1] <= 0:
        return np.zeros(n_harmonics)
    t = np.linspace(0.0, arc[-1], n_points, endpoint=False)
    x = np.interp(t, arc, closed[:, 0])
    y = np.interp(t, arc, closed[:, 1])
    mom = cv2.moments(m8, binaryImage=True)
    cx, cy = mom["m10"] / mom["m00"], mom["m01"] / mom["m00"]
    r = np.hypot(x - cx, y - cy)
    spectrum = np.abs(np.fft.rfft(r)) / n_points
    if spectrum[0] <= 0:
        return np.zeros(n_harmonics)
    out = spectrum[1:n_harmonics + 1] / spectrum[0]
    return np.pad(out, (0, n_harmonics - out.size))


def _convexity_defects(mask: np.ndarray, min_depth: float = 0.1) -> int:
    """Number of convexity defects of the largest component deeper than ``min_depth`` times
    its equivalent diameter (indentations between nuclear lobes)."""
    m8 = mask.astype(np.uint8)
    if not m8.any():
        return 0
    contours, _ = cv2.findContours(m8, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
    contour = max(contours, key=cv2.contourArea)
    if len(contour) < 4:
        return 0
    hull = cv2.convexHull(contour, returnPoints=False)
    if hull is None or len(hull) < 3:
        return 0
    try:
        defects = cv2.convexityDefects(contour, hull)
    except cv2.error:  # self-intersecting / non-monotonous hull on degenerate contours
        return 0
    if defects is None:
        return 0
    diameter = math.sqrt(4.0 * cv2.contourArea(contour) / math.pi)
    depths = defects.reshape(-1, 4)[:, 3] / 256.0
    return int(np.count_nonzero(depths > min_depth * diameter))


_SHAPE_MEANING = {
    "area": "area",
    "perimeter": "outer-boundary polygon length",
    "equivalent_diameter": "diameter of the disk of the same area, sqrt(4 area / pi)",
    "major_axis": "major axis of the ellipse with the same second moments",
    "minor_axis": "minor axis of the ellipse with the same second moments",
    "eccentricity": "eccentricity of the moment ellipse (0 for a disk)",
    "circularity": "4 pi area / perimeter^2 (~1 for a disk, pi/4 for a square)",
    "solidity": "area over convex-hull area",
    "convexity": "convex-hull perimeter over perimeter",
    "extent": "area over bounding-box area",
}
_OTHER_MEANING = {
    "cytoplasm_area": ("area", "cytoplasm area (cell minus nucleus)"),
    "nucleus_cell_area_ratio": ("1", "nucleus area over cell area"),
    "nucleus_cell_diameter_ratio": ("1", "nucleus over cell equivalent diameter"),
    "nucleus_centroid_offset": ("1", "distance between nucleus and cell centroids, in cell "
                                     "radii"),
    "nucleus_lobes": ("count", "nuclear lobes: the most cores of the distance transform "
                               "thresholded at 0.3, 0.45 and 0.6 of its maximum"),
    "nucleus_components": ("count", "connected components of the nucleus mask"),
    "nucleus_thickness": ("1", "largest inscribed disk's diameter over the equivalent "
                               "diameter (1 for a disk, small for lobed or band nuclei)"),
    "nucleus_mean_thickness": ("1", "mean distance to the boundary over the equivalent "
                                    "diameter (1/3 for a disk)"),
    "nucleus_convexity_defects": ("count", "convexity defects of the nucleus deeper than "
                                           "0.1 of its equivalent diameter"),
}


def describe_geometry(name: str, um_per_pixel: float | None = None) -> tuple[str, str] | None:
    """Unit and meaning of one geometry feature, or None when ``name`` is not one.

    Parameters
    ----------
    name : str
        A key of :func:`geometry_features`.
    um_per_pixel : float, optional
        The value given to :func:`geometry_features`: absolute sizes are then in um / um^2,
        else in px / px^2.

    Returns
    -------
    (unit, meaning) : tuple of str
        ``unit`` is ``"1"`` for a dimensionless value.
    """
    length = "px" if um_per_pixel is None else "um"
    units = {"area": f"{length}^2", "length": length}
    region, _, key = name.partition("_")
    if region in ("cell", "nucleus") and key in _SHAPE_MEANING:
        unit = (units["area"] if key == "area" else units["length"]
                if key in ("perimeter", "equivalent_diameter", "major_axis", "minor_axis")
                else "1")
        return unit, f"{region} {_SHAPE_MEANING[key]}"
    if name in _OTHER_MEANING:
        unit, meaning = _OTHER_MEANING[name]
        return units.get(unit, unit), meaning
    m = re.fullmatch(r"(cell|nucleus)_hu([1-7])", name)
    if m:
        return "1", f"{m[1]} Hu moment {m[2]}, sign(h) log10|h| (rotation/scale invariant)"
    m = re.fullmatch(r"(cell|nucleus)_fd([0-9]+)", name)
    if m:
        return "1", (f"{m[1]} outline Fourier descriptor {m[2]}: harmonic magnitude of the "
                     "centroid-distance signature over the mean distance")
    m = re.fullmatch(r"nucleus_zernike([0-9]+)", name)
    if m:
        return "1", (f"nucleus Zernike moment magnitude {m[1]} (degree <= {_ZERNIKE_DEGREE}, "
                     f"region resampled to radius {_ZERNIKE_RADIUS} px)")
    return None
