"""Physical pixel scale of a blood-smear image, and resampling to a common scale.

A model trained on one microscope sees cells of a given size in pixels; another lab's camera,
objective or crop convention changes that size. These functions estimate each image's scale in
micrometres per pixel from objects of known physical size in the field, and resample images and
masks to one target scale.

Physical references used (textbook haematology values, adults):

* **Red cells** (erythrocytes): mean diameter about **7.5 um** (normal range ~6.7-8.0 um) on a
  dried, stained smear. They are the preferred ruler: there are many per field, they are nearly
  round and their size varies little between people. The estimate is the median equivalent
  diameter of the whole, isolated, roughly round red cells in the field.
* **Leukocyte** fallback: when no usable red cell is visible (e.g. a tight crop), the leukocyte
  itself is the ruler. Textbooks give ~12 um for a typical leukocyte (small lymphocytes 7-10 um,
  neutrophils 10-12 um, monocytes up to 20 um), but cells flatten on a dried smear: measured
  against red cells on the cellavision_seg ground-truth masks, the whole-cell equivalent diameter
  has a median of 15.8 um (lymphocytes 14.9, neutrophils 15.8, monocytes 18.2). So a given
  ``cell_mask`` is taken as ``LEUKOCYTE_DIAMETER_UM = 15`` um, and without a mask the convex hull
  of the nucleus as ``NUCLEUS_HULL_DIAMETER_UM = 10.5`` um (median 10.6 um on PBC, 12.0 on
  cellavision_seg, against red cells). This ruler is coarse (+-30 %) and erases true size
  differences between classes: prefer red cells or a user-given scale.

All functions are plain functions on arrays: images are ``(H, W, 3)`` RGB ``uint8`` (float images
in ``[0, 1]`` are accepted where noted), masks are ``(H, W)`` bool.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import cv2
import numpy as np
from scipy import ndimage as ndi
from skimage import measure
from skimage.filters import threshold_otsu

from segmentation import color

__all__ = [
    "RED_CELL_DIAMETER_UM",
    "LEUKOCYTE_DIAMETER_UM",
    "NUCLEUS_HULL_DIAMETER_UM",
    "ScaleEstimate",
    "estimate_scale",
    "estimate_batch_scale",
    "detect_red_cells",
    "red_cell_diameters",
    "leukocyte_mask",
    "resample_to_scale",
    "resample_mask_to_scale",
    "rescale_image",
    "rescale_mask",
]

#: Mean diameter of a normal red cell on a stained smear, in micrometres.
RED_CELL_DIAMETER_UM = 7.5
#: Equivalent diameter assumed for a leukocyte's whole-cell mask on a smear (coarse ruler).
LEUKOCYTE_DIAMETER_UM = 15.0
#: Equivalent diameter assumed for the convex hull of a leukocyte's nucleus (coarse ruler).
NUCLEUS_HULL_DIAMETER_UM = 10.5


@dataclass(frozen=True)
class ScaleEstimate:
    """Estimated physical scale of one image.

    Attributes
    ----------
    um_per_pixel : float
        Micrometres per pixel (the same along both axes).
    method : str
        How it was obtained: ``"user"`` (given), ``"red-cells"`` (median red-cell diameter),
        ``"leukocyte"`` (the leukocyte's diameter taken as 12 um) or ``"default"`` (nothing
        usable was found; ``um_per_pixel`` is then the ``default`` argument of
        :func:`estimate_scale`).
    diameter_px : float
        The measured reference diameter in pixels (NaN for ``"user"``/``"default"``).
    n_objects : int
        Number of objects the measurement rests on (red cells counted, or 1 for the leukocyte).
    spread : float
        Relative spread of the red-cell diameters (IQR / median); NaN otherwise.
    """

    um_per_pixel: float
    method: str
    diameter_px: float = float("nan")
    n_objects: int = 0
    spread: float = float("nan")

    def to_dict(self) -> dict:
        """Plain-python dict (JSON-serialisable)."""
        return asdict(self)


# --------------------------------------------------------------------------------------------
# helpers


def _as_float_rgb(image: np.ndarray) -> np.ndarray:
    """RGB image as float64 in [0, 255]; accepts uint8 or float in [0, 1]."""
    image = np.asarray(image)
    if image.ndim != 3 or image.shape[2] < 3:
        raise ValueError(f"expected an RGB image of shape (H, W, 3), got shape {image.shape}")
    image = image[..., :3]
    if image.dtype == np.uint8:
        return image.astype(np.float64)
    if np.issubdtype(image.dtype, np.floating):
        return np.clip(image, 0.0, 1.0) * 255.0
    if np.issubdtype(image.dtype, np.integer):
        return np.clip(image, 0, 255).astype(np.float64)
    raise TypeError(f"unsupported image dtype {image.dtype}")


def _optical_density(image: np.ndarray) -> np.ndarray:
    """Optical density (H, W, 3) float64 against the image's own background (exact estimate,
    0-255 scale), clipped at 0."""
    image = np.asarray(image)
    if image.ndim != 3 or image.shape[2] < 3:
        raise ValueError(f"expected an RGB image of shape (H, W, 3), got shape {image.shape}")
    rgb = image[..., :3]
    background = color.background_light(rgb, exact=True, white=255.0)
    return color.optical_density(rgb, background, white=255.0, offset=0.0, dtype=np.float64)


def leukocyte_mask(image: np.ndarray, *, nucleus_od: float = 0.2) -> np.ndarray:
    """Rough mask of leukocyte nuclei (dark purple objects), for excluding them.

    Parameters
    ----------
    image : ndarray, shape (H, W, 3), uint8 (or float in [0, 1])
        RGB image.
    nucleus_od : float
        Minimum optical density (log10, relative to the background) in the red channel for a
        pixel to count as nuclear. Nuclei stained with Romanowsky stains absorb red light
        strongly; red cells and cytoplasm hardly do.

    Returns
    -------
    ndarray of bool, shape (H, W)
        Nuclear pixels with small specks removed (empty if no nucleus is found).
    """
    red_od = _optical_density(image)[..., 0]
    thr = nucleus_od
    if red_od.max() > nucleus_od:
        thr = max(nucleus_od, threshold_otsu(red_od))
    mask = red_od > thr
    # drop specks (platelets, stain debris): keep components >= 0.5 % of the image
    lab, n = ndi.label(mask)
    if n == 0:
        return mask
    sizes = np.bincount(lab.ravel())
    keep = sizes >= max(20, 0.005 * mask.size)
    keep[0] = False
    return keep[lab]


def _foreground(image: np.ndarray, exclude: np.ndarray | None, threshold_factor: float = 0.6):
    """Red-cell foreground (holes filled, leukocyte removed), exclusion mask, nuclear mask."""
    odm = _optical_density(image).mean(axis=-1)
    h, w = odm.shape
    if exclude is None:
        nuc = leukocyte_mask(image)
        if nuc.any():
            # grow nuclei by about their own radius to cover the cytoplasm
            lab, n = ndi.label(nuc)
            big = np.bincount(lab.ravel())[1:].max()
            r = max(2, int(round(0.35 * np.sqrt(big / np.pi))))
            exclude = cv2.dilate(nuc.astype(np.uint8),
                                 cv2.getStructuringElement(cv2.MORPH_ELLIPSE,
                                                           (2 * r + 1, 2 * r + 1))) > 0
        else:
            exclude = nuc
        nuclear = nuc
    else:
        exclude = np.asarray(exclude, dtype=bool)
        if exclude.shape != (h, w):
            raise ValueError(f"exclude mask shape {exclude.shape} != image shape {(h, w)}")
        nuclear = exclude
    values = odm[~nuclear]
    if values.size < 16 or np.ptp(values) <= 1e-6:
        return np.zeros((h, w), bool), exclude, nuclear
    # the red-cell vs background threshold; bounded so that an almost empty field
    # (Otsu splitting noise) or a crowded one does not produce nonsense
    thr = float(np.clip(threshold_factor * threshold_otsu(values), 0.02, 0.25))
    fg = odm > thr
    fg = ndi.binary_opening(fg, iterations=1)
    # central pallor: fill compact holes, but not the concave gaps enclosed by touching cells;
    # a closing first mends pale rings, holes it creates anew are judged after it
    rejected = _fill_round_holes(fg, return_rejected=True)
    fg = ndi.binary_closing(fg, iterations=2) | fg
    fg = _fill_round_holes(fg, veto=rejected)
    # the leukocyte's component(s) are removed as a whole ...
    lab, n = ndi.label(fg)
    touching = np.unique(lab[exclude & fg])
    touching = touching[touching > 0]
    wbc = np.isin(lab, touching) & exclude
    # ... but red cells touching it are kept: only the leukocyte region itself is cut out
    fg &= ~ndi.binary_dilation(wbc, iterations=1)
    return fg, exclude, nuclear


def _fill_round_holes(fg: np.ndarray, min_solidity: float = 0.8, *,
                      veto: np.ndarray | None = None, return_rejected: bool = False
                      ) -> np.ndarray:
    """Fill holes that are compact (a red cell's central pallor, noise) but not the concave
    star-shaped gaps enclosed between touching cells (nor holes overlapping ``veto``).
    With ``return_rejected`` the mask of the holes left open is returned instead."""
    holes = ndi.binary_fill_holes(fg) & ~fg
    lab, n = ndi.label(holes)
    out = fg.copy()
    rejected = np.zeros_like(fg)
    for rp in measure.regionprops(lab):
        sl = rp.slice
        hole = lab[sl] == rp.label
        ok = rp.area <= 9 or rp.solidity >= min_solidity
        if veto is not None and np.any(veto[sl] & hole):
            ok = False
        if ok:
            out[sl] |= hole
        else:
            rejected[sl] |= hole
    return rejected if return_rejected else out


def detect_red_cells(
    image: np.ndarray,
    *,
    exclude: np.ndarray | None = None,
    min_diameter_px: float = 8.0,
    area_ratio: tuple[float, float] = (0.75, 1.5),
) -> list[dict]:
    """Find red cells and measure their diameters, also inside clumps of touching cells.

    Foreground is thresholded on the mean optical density (Otsu on the non-nuclear pixels,
    bounded to [0.02, 0.25]), holes (central pallor) are filled and the leukocyte is cut out.
    Each regional maximum of the distance transform is one cell candidate: its value is the
    radius of the largest disc inscribed in the cell, which for round cells that merely touch is
    their radius. A candidate is kept when its inscribed disc stays inside the image and away
    from the leukocyte, and when the watershed basin around it has an area close to the disc's
    (``area_ratio``), i.e. the object is round rather than elongated or a fragment.

    Parameters
    ----------
    image : ndarray, shape (H, W, 3), uint8 (or float in [0, 1])
        RGB image of a Romanowsky-stained smear (a crop or a field).
    exclude : ndarray of bool, shape (H, W), optional
        Leukocyte pixels to ignore (e.g. ``Segmentation.cell``). Default: nuclei found by
        :func:`leukocyte_mask`, dilated.
    min_diameter_px : float
        Candidates with a smaller inscribed diameter are ignored (platelets, debris).
    area_ratio : (float, float)
        Accepted range of basin area / inscribed-disc area.

    Returns
    -------
    list of dict
        One per accepted red cell, by decreasing size: ``centroid`` (row, col) of the inscribed
        disc, ``diameter_px`` (float: equivalent diameter of the cell's watershed basin, or the
        inscribed-disc diameter when the cell is cut by the border), ``inscribed_diameter_px``,
        ``area_ratio`` (basin area / inscribed-disc area inside the image).
    """
    from skimage.segmentation import watershed

    rgb = _as_float_rgb(image)
    h, w = rgb.shape[:2]
    fg, exclude, _ = _foreground(image, exclude)
    if not fg.any():
        return []
    dist = ndi.distance_transform_edt(fg)
    # regional maxima, merged when closer than the min radius; smoothing first removes ridges
    smooth = ndi.gaussian_filter(dist, 1.0)
    size = max(3, int(min_diameter_px) | 1)
    peaks = (smooth == ndi.maximum_filter(smooth, size=size)) & (dist >= min_diameter_px / 2)
    markers, n = ndi.label(peaks)
    if n == 0:
        return []
    cand = []
    for lbl, sl in enumerate(ndi.find_objects(markers), start=1):
        if sl is None:
            continue
        sub = markers[sl] == lbl
        rr, cc = np.nonzero(sub)
        vals = dist[sl][sub]
        k = int(np.argmax(vals))
        # + 0.5: the edt of the centre pixel is measured between pixel centres
        cand.append((float(vals[k]) + 0.5, int(rr[k] + sl[0].start), int(cc[k] + sl[1].start)))
    # greedy non-maximum suppression: a candidate whose centre lies inside an accepted larger
    # disc is a secondary maximum of the same cell
    cand.sort(key=lambda t: -t[0])
    accepted: list[tuple[float, int, int]] = []
    for rad, r, c in cand:
        if any((r - r2) ** 2 + (c - c2) ** 2 < (rad2 + 0.5 * rad) ** 2
               for rad2, r2, c2 in accepted):
            continue
        accepted.append((rad, r, c))
    seeds = np.zeros((h, w), dtype=np.int32)
    for i, (_, r, c) in enumerate(accepted, start=1):
        seeds[r, c] = i
    basins = watershed(-smooth, seeds, mask=fg)
    areas = np.bincount(basins.ravel(), minlength=len(accepted) + 1)
    excl_dist = (ndi.distance_transform_edt(~exclude) if exclude.any()
                 else np.full((h, w), np.inf))
    cells: list[dict[str, Any]] = []
    for i, (rad, r, c) in enumerate(accepted, start=1):
        # a cell cut by the border still gives its true radius when its centre is inside the
        # image (the nearest edge is then its own outline); a centre on the border does not
        if r < 2 or c < 2 or r > h - 3 or c > w - 3:
            continue
        if excl_dist[r, c] < rad + 1:
            continue  # touches the leukocyte
        # basin area relative to the part of the inscribed disc that lies inside the image
        disc = _disc_area_inside(r, c, rad, h, w)
        ratio = areas[i] / disc
        if not area_ratio[0] <= ratio <= area_ratio[1]:
            continue
        # the inscribed disc underestimates a real (not perfectly round) cell; the basin's
        # equivalent diameter is better when the whole cell is inside the image
        whole = r - rad >= 1 and c - rad >= 1 and r + rad <= h - 1 and c + rad <= w - 1
        diam = float(np.sqrt(4.0 * areas[i] / np.pi)) if whole else 2.0 * rad
        cells.append({"centroid": (float(r), float(c)), "diameter_px": diam,
                      "inscribed_diameter_px": 2.0 * rad, "area_ratio": float(ratio)})
    cells.sort(key=lambda cell: -cell["diameter_px"])
    return cells


def red_cell_diameters(image: np.ndarray, *, exclude: np.ndarray | None = None,
                       min_diameter_px: float = 8.0) -> np.ndarray:
    """Diameters (pixels) of the red cells accepted by :func:`detect_red_cells`, cleaned.

    Candidates smaller than 0.4x the leukocyte nucleus's equivalent diameter (when a nucleus
    is found) are platelets or debris and are dropped. Then outliers below 0.7x or above 1.4x
    the area-weighted median (fragments, gaps between cells, merged pairs) are removed; the
    area weighting lets the many large true red cells dominate small spurious candidates.

    Returns
    -------
    ndarray of float64, shape (n,)
        Possibly empty.
    """
    d = np.array([c["diameter_px"] for c in detect_red_cells(
        image, exclude=exclude, min_diameter_px=min_diameter_px)], dtype=np.float64)
    if d.size == 0:
        return d
    nuc = leukocyte_mask(image) if exclude is None else None
    if nuc is not None and nuc.any():
        d = d[d >= 0.4 * np.sqrt(4.0 * nuc.sum() / np.pi)]
    if d.size >= 2:
        med = _weighted_median(d, d ** 2)
        d = d[(d >= 0.7 * med) & (d <= 1.4 * med)]
    return d


def _disc_area_inside(r: int, c: int, rad: float, h: int, w: int) -> float:
    """Number of pixels of the disc of radius ``rad`` at (r, c) inside an (h, w) image."""
    k = int(np.ceil(rad))
    yy, xx = np.mgrid[-k:k + 1, -k:k + 1]
    inside = (yy ** 2 + xx ** 2 <= rad ** 2)
    inside &= (yy + r >= 0) & (yy + r < h) & (xx + c >= 0) & (xx + c < w)
    return float(max(1, inside.sum()))


def _weighted_median(values: np.ndarray, weights: np.ndarray) -> float:
    order = np.argsort(values)
    cw = np.cumsum(weights[order])
    return float(values[order][np.searchsorted(cw, 0.5 * cw[-1])])


def estimate_scale(
    image: np.ndarray,
    *,
    um_per_pixel: float | None = None,
    cell_mask: np.ndarray | None = None,
    min_red_cells: int = 2,
    default: float = float("nan"),
) -> ScaleEstimate:
    """Estimate an image's physical scale in micrometres per pixel.

    Order of preference: a user-given ``um_per_pixel``; the median diameter of the red cells
    in the field taken as 7.5 um; the leukocyte (``cell_mask`` taken as 15 um, or without it the
    convex hull of the nucleus taken as 10.5 um -- coarse, see the module docstring); otherwise
    ``default``.

    Parameters
    ----------
    image : ndarray, shape (H, W, 3), uint8 (or float in [0, 1])
        RGB image of a single-cell crop or a smear field.
    um_per_pixel : float, optional
        Known scale; returned as is (``method="user"``) when given.
    cell_mask : ndarray of bool, shape (H, W), optional
        The leukocyte (e.g. ``Segmentation.cell``): excluded from the red-cell search and used
        for the leukocyte fallback.
    min_red_cells : int
        Minimum number of accepted red cells for the red-cell method.
    default : float
        Value returned with ``method="default"`` when nothing can be measured.

    Returns
    -------
    ScaleEstimate
    """
    if um_per_pixel is not None:
        if not np.isfinite(um_per_pixel) or um_per_pixel <= 0:
            raise ValueError(f"um_per_pixel must be a positive number, got {um_per_pixel!r}")
        return ScaleEstimate(float(um_per_pixel), "user")
    d = red_cell_diameters(image, exclude=cell_mask)
    if d.size >= min_red_cells:
        med = float(np.median(d))
        q1, q3 = np.percentile(d, [25, 75])
        return ScaleEstimate(RED_CELL_DIAMETER_UM / med, "red-cells", med, int(d.size),
                             float((q3 - q1) / med))
    if cell_mask is not None and np.any(cell_mask):
        diam = float(np.sqrt(4.0 * np.count_nonzero(cell_mask) / np.pi))
        return ScaleEstimate(LEUKOCYTE_DIAMETER_UM / diam, "leukocyte", diam, 1)
    nuc = leukocyte_mask(image)
    if not nuc.any():
        return ScaleEstimate(float(default), "default")
    hull = float(measure.regionprops(nuc.astype(np.uint8))[0].area_convex)
    diam = float(np.sqrt(4.0 * hull / np.pi))
    return ScaleEstimate(NUCLEUS_HULL_DIAMETER_UM / diam, "leukocyte", diam, 1)


def estimate_batch_scale(images: Sequence[Any], *, n: int = 50, seed: int = 0,
                         read: Any = None) -> float:
    """One pixel scale for a set of images from the same microscope and camera.

    The median of the red-cell estimates (:func:`estimate_scale`) of a seeded pick of at most
    ``n`` images. Single-image estimates scatter by about +-10 % (on PBC: 0.086-0.114 um/px
    for one instrument), so a laboratory's scale is best taken over many of its images.

    Parameters
    ----------
    images : sequence of path or (H, W, 3) uint8 array
    n : int
        At most this many are read.
    seed : int
        Seed of the pick (:func:`wbc_classic.io.images.read_sample`).
    read : callable, optional
        ``item -> (H, W, 3) uint8``.

    Returns
    -------
    float
        Micrometres per pixel; NaN when no picked image shows enough red cells.
    """
    from wbc_classic.io.images import read_sample

    values = [e.um_per_pixel for e in (estimate_scale(im) for im in
                                       read_sample(images, n, seed=seed, read=read))
              if e.method == "red-cells"]
    return float(np.median(values)) if values else float("nan")


# --------------------------------------------------------------------------------------------
# resampling


def _target_shape(shape: tuple[int, ...], factor: float) -> tuple[int, int]:
    if not np.isfinite(factor) or factor <= 0:
        raise ValueError(f"scale factor must be a positive number, got {factor!r}")
    return max(1, int(round(shape[0] * factor))), max(1, int(round(shape[1] * factor)))


def rescale_image(image: np.ndarray, factor: float) -> np.ndarray:
    """Resize an image by ``factor`` (``> 1`` enlarges), keeping its dtype.

    Area averaging when shrinking (anti-aliased), bilinear interpolation when enlarging.

    Parameters
    ----------
    image : ndarray, shape (H, W) or (H, W, C), uint8 / float32 / float64 / uint16
    factor : float
        Output size is ``round(H * factor), round(W * factor)``.

    Returns
    -------
    ndarray, same dtype and number of channels as ``image``

    Raises
    ------
    ValueError
        When the result would be larger than the decompression-bomb limit of
        :func:`wbc_classic.io.images.read_image` (``DEFAULT_MAX_PIXELS``).
    """
    from wbc_classic.io.images import check_pixel_limit

    image = np.asarray(image)
    if image.dtype == bool:
        return rescale_mask(image, factor)
    oh, ow = _target_shape(image.shape, factor)
    check_pixel_limit(image.shape, factor)  # an enlargement can be a bomb of its own
    if (oh, ow) == image.shape[:2]:
        return image.copy()
    work = image
    if image.dtype not in (np.uint8, np.uint16, np.float32, np.float64):
        work = image.astype(np.float64)
    interp = cv2.INTER_AREA if factor < 1 else cv2.INTER_LINEAR
    out = cv2.resize(work, (ow, oh), interpolation=interp)
    if image.ndim == 3 and out.ndim == 2:  # cv2 drops a trailing singleton channel
        out = out[..., None]
    return out.astype(image.dtype, copy=False)


def rescale_mask(mask: np.ndarray, factor: float) -> np.ndarray:
    """Resize a bool or integer-label mask by ``factor`` with nearest-neighbour sampling.

    Parameters
    ----------
    mask : ndarray, shape (H, W), bool or integer
    factor : float

    Returns
    -------
    ndarray, shape (round(H*factor), round(W*factor)), same dtype as ``mask``
    """
    mask = np.asarray(mask)
    if mask.ndim != 2:
        raise ValueError(f"expected a 2-D mask, got shape {mask.shape}")
    oh, ow = _target_shape(mask.shape, factor)
    # nearest sampling at pixel centres (no half-pixel shift)
    rows = np.clip(((np.arange(oh) + 0.5) * mask.shape[0] / oh).astype(np.int64), 0,
                   mask.shape[0] - 1)
    cols = np.clip(((np.arange(ow) + 0.5) * mask.shape[1] / ow).astype(np.int64), 0,
                   mask.shape[1] - 1)
    return mask[np.ix_(rows, cols)]


def resample_to_scale(image: np.ndarray, um_per_pixel: float,
                      target_um_per_pixel: float) -> np.ndarray:
    """Resample an image from its scale to ``target_um_per_pixel``.

    An image at 0.2 um/px resampled to 0.1 um/px doubles in size.

    Parameters
    ----------
    image : ndarray, shape (H, W) or (H, W, C)
        Image (any dtype supported by :func:`rescale_image`; bool masks are resampled with
        nearest neighbour).
    um_per_pixel : float
        Current scale.
    target_um_per_pixel : float
        Wanted scale.

    Returns
    -------
    ndarray, shape (round(H*f), round(W*f)[, C]) with ``f = um_per_pixel / target``, same dtype
    """
    if not (target_um_per_pixel > 0 and um_per_pixel > 0):
        raise ValueError(f"scales must be positive, got {um_per_pixel!r} -> "
                         f"{target_um_per_pixel!r}")
    factor = float(um_per_pixel) / float(target_um_per_pixel)
    if np.asarray(image).dtype == bool:
        return rescale_mask(image, factor)
    return rescale_image(image, factor)


def resample_mask_to_scale(mask: np.ndarray, um_per_pixel: float,
                           target_um_per_pixel: float) -> np.ndarray:
    """Nearest-neighbour version of :func:`resample_to_scale` for bool / label masks."""
    if not (target_um_per_pixel > 0 and um_per_pixel > 0):
        raise ValueError(f"scales must be positive, got {um_per_pixel!r} -> "
                         f"{target_um_per_pixel!r}")
    return rescale_mask(mask, float(um_per_pixel) / float(target_um_per_pixel))
