"""Leukocytes in a smear field: find nucleus groups, then segment each one.

1. Nucleus channel + Otsu over the whole field, as for a single cell.
2. The red-cell radius ``r_rbc`` is estimated from the field itself: the median height
   of the distance-transform peaks of the foreground (all cells vs background).  It sets
   the size below which a purple object is a platelet or debris, how far nuclear lobes
   may lie apart, and the crop margin.
3. Nuclear fragments are grouped by a marker-controlled watershed on the distance
   transform of the closed nucleus mask (touching leukocytes become separate groups).
4. Each group is cropped with a margin and segmented by :func:`segmentation.pipeline.segment`
   with the group as nucleus hint; the result is kept when its nucleus overlaps the group.
"""

from __future__ import annotations

import cv2
import numpy as np

from segmentation import color, morphology, threshold, watershed
from segmentation.params import SegmenterParams
from segmentation.pipeline import _smooth, as_rgb_uint8, segment
from segmentation.result import FieldCell, Segmentation

__all__ = ["estimate_rbc_radius", "granulometry_radius", "nucleus_groups", "segment_field"]


def estimate_rbc_radius(image: np.ndarray) -> float:
    """Typical red-cell radius in pixels, estimated from the image.

    The foreground (everything darker / more coloured than the background, by Otsu on the
    colour distance to the background colour) is distance-transformed; the median height
    of its local maxima is the typical inscribed radius of the objects, dominated by the
    (most numerous) red cells.

    Parameters
    ----------
    image : ndarray, shape (H, W, 3), uint8 RGB

    Returns
    -------
    float
        Radius in pixels; ``min(H, W) / 20`` when nothing can be measured.
    """
    rgb = as_rgb_uint8(image)
    h, w = rgb.shape[:2]
    fallback = max(4.0, min(h, w) / 20.0)
    rgb_f = _smooth(color.as_float_rgb(rgb), 1.5)
    lab = cv2.cvtColor(rgb_f, cv2.COLOR_RGB2LAB)
    nuc_chan = color.blue_green_chromaticity(rgb_f)
    t_n = threshold.otsu_threshold(nuc_chan)
    nuclear = nuc_chan > t_n if np.isfinite(t_n) else np.zeros((h, w), dtype=bool)
    bg = color.background_lab(lab, 80)
    delta = np.sqrt(((lab - bg) ** 2).sum(axis=-1)).astype(np.float32)
    t = threshold.otsu_threshold(delta, ~nuclear)
    if not np.isfinite(t):
        return fallback
    fg = morphology.binary_open(morphology.fill_holes((delta > t) | nuclear), 2)
    radius = granulometry_radius(fg)
    return radius if np.isfinite(radius) else fallback


def granulometry_radius(mask: np.ndarray, r_min: float = 2.0,
                        r_max: float | None = None, n_radii: int = 24) -> float:
    """Dominant object radius of a binary image by granulometry (Matheron).

    The mask is opened with disks of increasing radius; the radius over which the opened
    area drops the most (the peak of the pattern spectrum) is the radius of the objects
    that cover most of the foreground.  Openings are computed with distance transforms,
    so large radii cost no more than small ones.

    Parameters
    ----------
    mask : ndarray of bool, shape (H, W)
    r_min, r_max : float
        Radii tried, pixels (geometric steps); ``r_max`` defaults to ``min(H, W) / 5``.
    n_radii : int

    Returns
    -------
    float
        The radius, or NaN for an empty mask.
    """
    mask = np.asarray(mask, dtype=bool)
    if not mask.any():
        return float("nan")
    r_max = r_max if r_max is not None else max(r_min * 2, min(mask.shape) / 5.0)
    radii = np.geomspace(r_min, r_max, n_radii)
    dist = watershed.distance_transform(mask)
    areas: list[int] = []
    for r in radii:
        core = dist >= r
        if not core.any():
            areas.append(0)
            continue
        back = cv2.distanceTransform((~core).astype(np.uint8), cv2.DIST_L2, 3)
        areas.append(int((back < r).sum()))
    sizes = np.asarray(areas, dtype=np.float64)
    drop = sizes[:-1] - sizes[1:]
    k = int(np.argmax(drop))
    return float(np.sqrt(radii[k] * radii[k + 1]))


def nucleus_groups(image: np.ndarray, params: SegmenterParams | None = None,
                   r_rbc: float | None = None) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Label the leukocyte nuclei (lobes grouped) of a smear field.

    Returns
    -------
    labels : ndarray of int32, shape (H, W)
        0 = no leukocyte nucleus; 1..n one label per leukocyte.
    stages : dict of str to ndarray
        ``nucleus_channel``, ``otsu_nucleus``, ``nucleus_clean``, ``distance``,
        ``markers``, ``watershed``.
    """
    params = params or SegmenterParams()
    rgb = as_rgb_uint8(image)
    r_rbc = estimate_rbc_radius(rgb) if r_rbc is None else float(r_rbc)
    rgb_f = color.as_float_rgb(rgb)
    chan = _smooth(color.channel(rgb_f, params.nucleus_channel), params.nucleus_sigma)
    stages: dict[str, np.ndarray] = {"nucleus_channel": chan}
    t = threshold.otsu_threshold(chan)
    labels = np.zeros(chan.shape, dtype=np.int32)
    if not np.isfinite(t):
        return labels, stages
    raw = chan > t
    stages["otsu_nucleus"] = raw
    clean = morphology.binary_open(raw, max(1.0, r_rbc / 15.0))
    # a lobe is at least ~ (r_rbc / 4) in radius; platelets are smaller
    clean = morphology.remove_small_objects(clean, np.pi * (0.25 * r_rbc) ** 2)
    joined = morphology.binary_close(clean, params.lobe_join * 0.5 * r_rbc)
    joined = morphology.fill_holes(joined)
    stages["nucleus_clean"] = joined
    dist = watershed.distance_transform(joined)
    stages["distance"] = dist
    markers = watershed.distance_peaks(dist, min_distance=1.2 * r_rbc,
                                       min_height=0.25 * r_rbc, mask=joined)
    stages["markers"] = markers
    groups = watershed.split_touching(joined, min_distance=1.2 * r_rbc,
                                      min_height=0.25 * r_rbc) if markers.any() else \
        cv2.connectedComponents(joined.astype(np.uint8), connectivity=8)[1].astype(np.int32)
    groups[~clean] = 0
    stages["watershed"] = groups
    # keep groups with enough nuclear area (a lymphocyte nucleus is about a red cell)
    min_area = np.pi * (0.45 * r_rbc) ** 2
    out = np.zeros_like(labels)
    k = 0
    for lab in np.unique(groups):
        if lab == 0:
            continue
        mask = groups == lab
        if mask.sum() >= min_area:
            k += 1
            out[mask] = k
    return out, stages


def segment_field(image: np.ndarray, params: SegmenterParams | None = None) -> list[FieldCell]:
    """Find and segment every leukocyte in a smear field.

    Parameters
    ----------
    image : ndarray, shape (H, W, 3) uint8 RGB
        A blood-smear field (e.g. BCCD 640x480), any number of leukocytes.
    params : SegmenterParams, optional

    Returns
    -------
    list of FieldCell
        One per leukocyte, ordered top-to-bottom then left-to-right, each with its padded
        ``bbox`` in field coordinates, the ``crop`` and the ``segmentation`` in crop
        coordinates.  Empty when the field holds no leukocyte.
    """
    params = params or SegmenterParams()
    rgb = as_rgb_uint8(image)
    h, w = rgb.shape[:2]
    if min(h, w) < params.min_size:
        return []
    r_rbc = estimate_rbc_radius(rgb)
    groups, _ = nucleus_groups(rgb, params, r_rbc)
    cells: list[tuple[tuple[int, int], FieldCell]] = []
    taken = np.zeros((h, w), dtype=bool)
    for lab in range(1, int(groups.max()) + 1):
        mask = groups == lab
        if not mask.any() or (taken & mask).sum() > 0.5 * mask.sum():
            continue
        ys, xs = np.nonzero(mask)
        r_g = np.sqrt(mask.sum() / np.pi)
        margin = int(round(max(r_rbc, 1.2 * r_g)))
        r0, r1 = int(max(0, ys.min() - margin)), int(min(h, ys.max() + 1 + margin))
        c0, c1 = int(max(0, xs.min() - margin)), int(min(w, xs.max() + 1 + margin))
        crop = rgb[r0:r1, c0:c1]
        others = (groups[r0:r1, c0:c1] > 0) & ~mask[r0:r1, c0:c1]
        seg = segment(crop, params, nucleus_hint=mask[r0:r1, c0:c1], nucleus_exclude=others)
        if not seg.found or not (seg.nucleus & mask[r0:r1, c0:c1]).any():
            continue
        bb = seg.bbox
        assert bb is not None
        pad = max(2, int(round(0.1 * seg.scale)))
        fr0, fc0 = int(max(0, r0 + bb[0] - pad)), int(max(0, c0 + bb[1] - pad))
        fr1, fc1 = int(min(h, r0 + bb[2] + pad)), int(min(w, c0 + bb[3] + pad))
        # masks in the coordinates of the final (padded) crop
        nuc = np.zeros((fr1 - fr0, fc1 - fc0), dtype=bool)
        cel = np.zeros_like(nuc)
        big_n = np.zeros((h, w), dtype=bool)
        big_c = np.zeros((h, w), dtype=bool)
        big_n[r0:r1, c0:c1] = seg.nucleus
        big_c[r0:r1, c0:c1] = seg.cell
        nuc[:] = big_n[fr0:fr1, fc0:fc1]
        cel[:] = big_c[fr0:fr1, fc0:fc1]
        taken |= big_n
        touches = bool(r0 + bb[0] == 0 or c0 + bb[1] == 0 or r0 + bb[2] == h or c0 + bb[3] == w)
        stages = {"input": rgb[fr0:fr1, fc0:fc1].copy(), "nucleus": nuc, "cell": cel}
        fseg = Segmentation(nucleus=nuc, cell=cel, found=True, stages=stages,
                            scale=seg.scale, message="")
        cells.append(((fr0, fc0), FieldCell(bbox=(fr0, fc0, fr1, fc1),
                                            crop=rgb[fr0:fr1, fc0:fc1].copy(),
                                            segmentation=fseg, touches_border=touches)))
    cells.sort(key=lambda item: item[0])
    return [c for _, c in cells]
