"""The classical leukocyte segmenter: :func:`segment` (one cell; the field segmenter
:func:`segmentation.field.segment_field` calls it for each leukocyte of a smear field).

Method (every step's image is kept in ``Segmentation.stages``):

1. **Nucleus channel** -- the normalised blue-green chromaticity ``(B - G) / (R + G + B)``
   (or another channel of :data:`segmentation.color.NUCLEUS_CHANNELS`), lightly smoothed.
2. **Otsu threshold** of that channel over the whole image (``otsu_nucleus``).
3. **Clean-up** -- opening, small-object removal, hole filling; the nucleus is the large
   component nearest the image centre plus the lobes within about one nuclear radius of it
   (segmented neutrophils).  Its equivalent radius ``r_n`` sets every length below, so
   the method adapts to magnification without per-dataset constants.
4. **Cell channel** -- ``B - R`` (cytoplasm is bluer than red cells and background), with
   the nucleus painted over by the surrounding cytoplasm colour so only the *outer* cell
   border has an edge, smoothed with ``sigma ~ r_n / 12``.
5. **Objects and watershed** -- the foreground (cells of any kind) is the Otsu threshold of
   the colour distance to the background colour; its distance transform, markers (the
   nucleus for the leukocyte, distance peaks away from it for red cells, the background)
   and a marker-controlled watershed give the leukocyte's region, which bounds the
   outline search from outside.
6. **Outline** -- a minimum-cost closed path in polar coordinates around the nucleus
   (``segmentation.contour``), found by dynamic programming: it maximises the outward drop
   of the cell channel and rise of lightness (edge term), minus a region term that charges
   for enclosing pixels below the cell channel's Otsu threshold (red cells, background),
   between the nucleus and the watershed region's edge, with a bounded radius change per
   angle (smooth, round-ish outline).  Steps 5-6 run on a copy resized so that ``r_n`` is
   about 20 px (speed); the outline polygon is drawn back at full resolution.
7. The cell mask is the filled outline, united with the nucleus.

An image without a leukocyte (blank, too small, no nucleus-coloured object with enough
contrast) gives ``Segmentation.empty`` with a message, never an exception.
"""

from __future__ import annotations

import cv2
import numpy as np

from segmentation import color, contour, morphology, threshold, watershed
from segmentation.params import SegmenterParams
from segmentation.result import Segmentation

__all__ = ["segment", "as_rgb_uint8", "overlay"]


# ----------------------------------------------------------------------------- input checks
def as_rgb_uint8(image: np.ndarray) -> np.ndarray:
    """Validate an image and return it as RGB ``uint8`` (H, W, 3).

    Grey (H, W) or (H, W, 1) images are replicated to three channels; RGBA drops alpha.
    Float images are taken as [0, 1]; other integer types are scaled by their maximum.

    Raises
    ------
    ValueError
        For other shapes, non-numeric or boolean dtypes, or non-finite values.
    """
    image = np.asarray(image)
    if image.dtype == bool or not (np.issubdtype(image.dtype, np.integer)
                                   or np.issubdtype(image.dtype, np.floating)):
        raise ValueError(f"image must be numeric (uint8 RGB expected), got dtype {image.dtype}")
    if image.ndim == 3 and image.shape[2] == 1:
        image = image[..., 0]
    if image.ndim == 2:
        image = np.repeat(image[..., None], 3, axis=2)
    elif image.ndim == 3 and image.shape[2] == 4:
        image = image[..., :3]
    elif not (image.ndim == 3 and image.shape[2] == 3):
        raise ValueError("image must be (H, W) grey, (H, W, 3) RGB or (H, W, 4) RGBA; "
                         f"got shape {image.shape}")
    if image.dtype == np.uint8:
        return np.ascontiguousarray(image)
    if np.issubdtype(image.dtype, np.floating):
        if not np.isfinite(image).all():
            raise ValueError("image contains NaN or infinite values")
        return np.round(np.clip(image, 0.0, 1.0) * 255.0).astype(np.uint8)
    info = np.iinfo(image.dtype)
    return np.round(np.clip(image, 0, info.max) * (255.0 / info.max)).astype(np.uint8)


# ----------------------------------------------------------------------------- nucleus
def _smooth(x: np.ndarray, sigma: float) -> np.ndarray:
    if sigma <= 0:
        return x
    return cv2.GaussianBlur(x, (0, 0), float(sigma), borderType=cv2.BORDER_REFLECT)


def _find_nucleus(chan: np.ndarray, params: SegmenterParams, stages: dict,
                  hint: np.ndarray | None = None, exclude: np.ndarray | None = None
                  ) -> tuple[np.ndarray | None, str, np.ndarray | None]:
    """Threshold + clean-up; returns (nucleus mask or None, message, main fragment)."""
    h, w = chan.shape
    t, eta = threshold.otsu_separability(chan)
    if not np.isfinite(t):
        return None, "no leukocyte found: the image has no contrast", None
    raw = chan > t
    stages["otsu_nucleus"] = raw
    n, _, areas, _ = morphology.components(raw)
    if n <= 1:
        return None, "no leukocyte found: nothing above the Otsu threshold", None
    r0 = np.sqrt(areas[1:].max() / np.pi)
    opened = morphology.binary_open(raw, max(1.0, r0 / 20.0))
    # small-object removal on the components of the opened mask; dropping whole components
    # leaves the others unchanged, so relabelling the survivors (their raster order kept)
    # gives exactly the labels and statistics of the cleaned mask without a second pass
    n, labels, areas, cents = morphology.components(opened, centroids=hint is None
                                                    or not hint.any())
    big = areas >= max(4.0, 0.02 * np.pi * r0 ** 2)
    big[0] = True
    if not big.all():
        remap = np.cumsum(big, dtype=np.int32) - 1
        remap[~big] = 0
        labels = remap[labels]
        areas = areas[big]
        cents = cents[big] if cents is not None else None
        n = int(big.sum())
    if n <= 1:
        return None, "no leukocyte found: no nucleus-sized object", None
    areas = areas[1:].astype(np.float64)
    if hint is not None and hint.any():
        overlap = np.bincount(labels[hint], minlength=n)[1:].astype(np.float64)
        score = overlap if overlap.max() > 0 else areas
    else:
        assert cents is not None  # components() returns centroids when there is no hint
        d = np.hypot(cents[1:, 1] - (h - 1) / 2.0, cents[1:, 0] - (w - 1) / 2.0)
        score = areas / (1.0 + (d / (params.centre_prior * min(h, w))) ** 2)
    main = int(np.argmax(score)) + 1
    main_mask = labels == main
    r_main = np.sqrt(areas[main - 1] / np.pi)
    reach = morphology.dilate_by_distance(main_mask, params.lobe_join * r_main)
    near = np.zeros(n, dtype=bool)
    near[labels[reach]] = True
    keep = np.zeros(n, dtype=bool)
    keep[1:] = (areas >= params.min_lobe_fraction * areas[main - 1]) & near[1:]
    if exclude is not None and exclude.any():
        # fragments that belong more to another leukocyte than to the wanted one
        other = np.bincount(labels[exclude], minlength=n)
        mine = np.bincount(labels[hint], minlength=n) if hint is not None else np.zeros(n)
        keep &= ~(other > mine)
    keep[main] = True
    nucleus = morphology.fill_holes(keep[labels])
    stages["nucleus_clean"] = nucleus
    area = int(nucleus.sum())
    if area < max(12, params.min_nucleus_fraction * h * w):
        return None, f"no leukocyte found: largest nucleus candidate too small ({area} px)", None
    ring = morphology.dilate_by_distance(nucleus, max(2.0, 0.5 * r_main)) & ~raw
    if not ring.any():
        ring = ~nucleus
    contrast = float(np.mean(chan[nucleus]) - np.median(chan[ring])) if ring.any() else 0.0
    if contrast < params.min_contrast:
        return None, (f"no leukocyte found: nucleus candidate contrast {contrast:.3f} "
                      f"< min_contrast {params.min_contrast}"), None
    return nucleus, "", main_mask


# ----------------------------------------------------------------------------- cell
def _trim_rim(rgb: np.ndarray, cell: np.ndarray, nucleus: np.ndarray, max_od: float
              ) -> np.ndarray:
    """:func:`morphology.trim_pale_rim` on the cell's bounding box (plus a margin)."""
    rows, cols = np.flatnonzero(cell.any(axis=1)), np.flatnonzero(cell.any(axis=0))
    h, w = cell.shape
    r0, r1 = max(rows[0] - 2, 0), min(rows[-1] + 3, h)
    c0, c1 = max(cols[0] - 2, 0), min(cols[-1] + 3, w)
    box = (slice(r0, r1), slice(c0, c1))
    pale = color.pale_pixels(rgb[box], max_od, background=color.background_light(rgb))
    out = np.zeros_like(cell)
    out[box] = morphology.trim_pale_rim(cell[box], nucleus[box], pale)
    return out


def _leukocyte_region(lab: np.ndarray, nucleus: np.ndarray, nucleus_raw: np.ndarray,
                      r_n: float, stages: dict) -> np.ndarray:
    """Watershed region of the leukocyte among all objects; bool (h, w), working scale."""
    bg = color.background_lab(lab, 75, exclude=morphology.dilate_by_distance(nucleus, r_n))
    # colour distance to the background, summed channel by channel in place (the same
    # float32 operations, in the same order, as a sum over the last axis; a third the time)
    diff = lab - bg
    diff *= diff
    delta = diff[..., 0] + diff[..., 1]
    delta += diff[..., 2]
    delta = np.sqrt(delta, out=delta)
    t = threshold.otsu_threshold(delta, ~nucleus_raw)
    if not np.isfinite(t):
        return np.ones(nucleus.shape, dtype=bool)
    fg = morphology.fill_holes((delta > t) | nucleus)
    fg = morphology.binary_open(fg, max(1.0, r_n / 10.0)) | nucleus
    stages["otsu_cell"] = fg
    dist = watershed.distance_transform(fg)
    stages["distance"] = dist
    peaks = watershed.distance_peaks(dist, min_distance=max(2.0, r_n / 3.0),
                                     min_height=r_n / 4.0, mask=fg)
    d_nuc = cv2.distanceTransform((~nucleus).astype(np.uint8), cv2.DIST_L2, 5)
    ys, xs = np.nonzero(peaks)
    markers = np.zeros(nucleus.shape, dtype=np.int32)
    markers[~morphology.dilate_by_distance(fg, 2)] = 1      # background
    label = 3
    for y, x in zip(ys, xs, strict=True):
        # a red-cell marker: its inscribed disc does not reach the nucleus
        if d_nuc[y, x] > dist[y, x] and not nucleus_raw[y, x]:
            cv2.circle(markers, (int(x), int(y)), max(1, int(0.5 * dist[y, x])), label, -1)
            label += 1
    markers[nucleus] = 2                                    # the leukocyte
    stages["markers"] = markers
    ws = watershed.marker_watershed(-dist, markers)
    stages["watershed"] = ws
    return ws == 2


def _own_lobes(nucleus: np.ndarray, main: np.ndarray, dist: np.ndarray,
               ratio: float) -> np.ndarray | None:
    """Drop nuclear fragments that lie in a *neighbouring* cell.

    Every fragment floods its own basin of the foreground distance map; a fragment whose
    basin meets the main fragment's only across a neck (the highest distance on their
    common border is below ``ratio`` times the lower of the two basins' peaks) belongs to
    another, touching cell.  Returns the reduced nucleus mask, or None when nothing changes.
    """
    n, labels = cv2.connectedComponents(nucleus.astype(np.uint8), connectivity=8)
    if n <= 2 or not main.any():
        return None
    main_label = int(np.bincount(labels[main], minlength=n)[1:].argmax()) + 1
    fg = dist > 0
    basins = watershed.marker_watershed(-dist, labels, mask=fg | nucleus)
    peak = np.zeros(n)
    for k in range(1, n):
        sel = basins == k
        peak[k] = float(dist[sel].max()) if sel.any() else 0.0
    near_main = morphology.dilate_by_distance(basins == main_label, 1.5)
    drop = []
    for k in range(1, n):
        if k == main_label:
            continue
        border = near_main & (basins == k)
        saddle = float(dist[border].max()) if border.any() else 0.0
        if saddle < ratio * min(peak[k], peak[main_label]):
            drop.append(k)
    if not drop:
        return None
    return nucleus & ~np.isin(labels, drop)


def _outline(rgb_f: np.ndarray, nucleus: np.ndarray, r_n: float,
             region: np.ndarray | None, params: SegmenterParams,
             stages: dict, edge_image: bool = True) -> tuple[np.ndarray, tuple[float, float]]:
    """Polar minimum-cost outline; returns (radii in working pixels, centre (row, col))."""
    h, w = nucleus.shape
    pad = max(1.5, r_n / 10.0)
    reach = pad + max(3.0, 0.2 * r_n)
    d_nuc = morphology.distance_to(nucleus, reach, 5)
    ring = (d_nuc > pad) & (d_nuc < reach)
    painted = rgb_f.copy()
    fill = np.median(rgb_f[ring], axis=0) if ring.any() else rgb_f[~nucleus].mean(axis=0)
    painted[d_nuc <= pad] = fill
    sigma = params.edge_sigma if params.edge_sigma is not None else \
        float(np.clip(r_n / 12.0, 1.0, 3.0))
    sm = _smooth(painted, sigma)
    cell_chan = sm[..., 2] - sm[..., 0]
    light = sm @ np.array([0.299, 0.587, 0.114], dtype=np.float32)  # luma, [0, 1]
    stages["cell_channel"] = cell_chan
    ys, xs = np.nonzero(nucleus)
    cy, cx = float(ys.mean()), float(xs.mean())
    r_ext = float(np.hypot(ys - cy, xs - cx).max())
    radius = max(r_ext * 1.2, params.max_radius * r_n)
    radius = min(radius, 1.5 * max(h, w))
    n_a = int(params.n_angles)
    pb = contour.polar_unwrap(cell_chan, (cy, cx), radius, n_a)
    pl = contour.polar_unwrap(light, (cy, cx), radius, n_a)
    e_blue = np.maximum(-np.gradient(pb, axis=1), 0.0)
    e_light = np.maximum(np.gradient(pl, axis=1), 0.0)
    e_blue /= np.percentile(e_blue, 99) + 1e-6
    e_light /= np.percentile(e_light, 99) + 1e-6
    edges = params.blue_weight * e_blue + params.light_weight * e_light
    cost = -edges
    # the image's footprint in the polar grid (the search disc clipped to the image)
    inside = contour.polar_unwrap(np.ones((h, w), np.float32), (cy, cx), radius, n_a) > 0.5
    if params.region_weight > 0:
        # region term: every pixel enclosed that looks like red cell / background (B-R below
        # the Otsu threshold of the search disc) costs, every cytoplasm-like pixel pays back
        disc = inside
        pn = contour.polar_unwrap(nucleus.astype(np.float32), (cy, cx), radius, n_a) > 0.5
        sel = disc & ~pn
        t_cell = threshold.otsu_threshold(pb, sel) if sel.sum() > 10 else float("nan")
        if np.isfinite(t_cell):
            spread = float(np.std(pb[sel])) + 1e-6
            score = np.clip((t_cell - pb) / spread, -2.0, 2.0)
            score[~disc] = 2.0
            cost = cost + params.region_weight * np.cumsum(score, axis=1) / max(r_n, 1.0)
    # rays leaving the image: no boundary beyond the border
    n_r = edges.shape[1]
    last_in = n_r - 1 - np.argmax(inside[:, ::-1], axis=1)
    r_min = np.minimum(contour.radial_extent(nucleus, (cy, cx), radius, n_a) + 1, n_r - 1)
    r_max = np.minimum(last_in, n_r - 1)
    if region is not None and params.bound_by_watershed:
        r_reg = contour.radial_extent(region, (cy, cx), radius, n_a)
        r_max = np.minimum(r_max, r_reg + int(round(params.watershed_margin * r_n)))
    r_max = np.maximum(r_max, r_min)
    step = max(1, int(round(params.max_slope * 2.0 * np.pi * 1.5 * r_n / n_a)))
    path = contour.closed_min_path(cost, r_min, r_max, step)
    if edge_image:
        stages["edges"] = _polar_edges_to_image(edges, (cy, cx), (h, w))
    return path.astype(np.float64), (cy, cx)


def _polar_edges_to_image(edges: np.ndarray, centre: tuple[float, float],
                          shape: tuple[int, int]) -> np.ndarray:
    n_a, n_r = edges.shape
    cy, cx = centre
    out = cv2.warpPolar(edges.astype(np.float32), (shape[1], shape[0]), (cx, cy), float(n_r),
                        cv2.WARP_POLAR_LINEAR + cv2.WARP_INVERSE_MAP + cv2.WARP_FILL_OUTLIERS
                        + cv2.INTER_LINEAR)
    yy, xx = np.ogrid[: shape[0], : shape[1]]
    out[(yy - cy) ** 2 + (xx - cx) ** 2 >= (n_r - 1) ** 2] = 0.0
    return np.nan_to_num(out, nan=0.0, posinf=0.0, neginf=0.0)


def _resize_stage(x: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    if x.shape[:2] == tuple(shape):
        return x
    size = (shape[1], shape[0])
    if x.dtype == bool:
        return cv2.resize(x.astype(np.uint8), size, interpolation=cv2.INTER_NEAREST).astype(bool)
    if np.issubdtype(x.dtype, np.integer) and x.dtype != np.uint8:
        return cv2.resize(x.astype(np.int32).astype(np.float32), size,
                          interpolation=cv2.INTER_NEAREST).astype(x.dtype)
    interp = cv2.INTER_NEAREST if x.dtype == np.uint8 and x.ndim == 2 else cv2.INTER_LINEAR
    return cv2.resize(x, size, interpolation=interp)


# ----------------------------------------------------------------------------- public API
def overlay(image: np.ndarray, nucleus: np.ndarray, cell: np.ndarray) -> np.ndarray:
    """RGB ``uint8`` (H, W, 3) copy of ``image`` with the cell outline (green) and the
    nucleus outline (magenta) drawn on it."""
    out = as_rgb_uint8(image).copy()
    thick = max(1, int(round(min(out.shape[:2]) / 200)))
    for mask, col in ((cell, (0, 200, 0)), (nucleus, (255, 0, 255))):
        cs, _ = cv2.findContours(np.asarray(mask, np.uint8), cv2.RETR_EXTERNAL,
                                 cv2.CHAIN_APPROX_NONE)
        cv2.drawContours(out, cs, -1, col, thick)
    return out


def segment(image: np.ndarray, params: SegmenterParams | None = None, *,
            nucleus_hint: np.ndarray | None = None,
            nucleus_exclude: np.ndarray | None = None,
            keep_stages: bool = True) -> Segmentation:
    """Segment the leukocyte nearest the centre of a single-cell image.

    Parameters
    ----------
    image : ndarray, shape (H, W, 3) uint8 RGB
        Also accepted: (H, W) grey, (H, W, 4) RGBA, float in [0, 1] (see
        :func:`as_rgb_uint8`).  A PBC/CellaVision-style crop with one leukocyte near the
        centre and red cells around it.
    params : SegmenterParams, optional
        Defaults adapt to the image.
    nucleus_hint : ndarray of bool, shape (H, W), optional
        Pixels known to belong to the wanted nucleus (used by :func:`segment_field`); the
        nucleus component overlapping it most is chosen instead of the most central one.
    nucleus_exclude : ndarray of bool, shape (H, W), optional
        Pixels known to belong to *other* leukocytes' nuclei; fragments overlapping them more
        than the hint are not taken as lobes (touching leukocytes in a field).
    keep_stages : bool, default=True
        Keep every intermediate image in ``Segmentation.stages`` (for ``segment --steps``
        and :func:`segmentation.plot_stages`).  False (the batch / predict path) skips the
        teaching-only images (HSI saturation, polar edge map, overlay, resizing of the
        working-scale stages) and returns only ``"input"``, ``"nucleus"`` and ``"cell"``;
        the masks are identical either way.

    Returns
    -------
    Segmentation
        ``nucleus`` and ``cell`` bool (H, W) masks, ``scale`` = equivalent radius of the
        cell in pixels, and every intermediate image in ``stages`` (see ``keep_stages``).
        When no leukocyte is found, ``found`` is False, the masks are empty and
        ``message`` says why.

    Raises
    ------
    ValueError
        If ``image`` has an unsupported shape or dtype.
    """
    params = params or SegmenterParams()
    rgb = as_rgb_uint8(image)
    h, w = rgb.shape[:2]
    stages: dict[str, np.ndarray] = {"input": rgb}
    if min(h, w) < params.min_size:
        return Segmentation.empty((h, w), f"no leukocyte found: image {h}x{w} is smaller "
                                  f"than min_size={params.min_size}", stages)
    if nucleus_hint is not None:
        nucleus_hint = np.asarray(nucleus_hint, dtype=bool)
        if nucleus_hint.shape != (h, w):
            raise ValueError(f"nucleus_hint shape {nucleus_hint.shape} != image shape {(h, w)}")
    if nucleus_exclude is not None:
        nucleus_exclude = np.asarray(nucleus_exclude, dtype=bool)
        if nucleus_exclude.shape != (h, w):
            raise ValueError(f"nucleus_exclude shape {nucleus_exclude.shape} != image shape "
                             f"{(h, w)}")
    rgb_f = color.as_float_rgb(rgb)
    if keep_stages:
        stages["hsi_saturation"] = color.hsi_saturation(rgb_f)
    chan = _smooth(color.channel(rgb_f, params.nucleus_channel), params.nucleus_sigma)
    stages["nucleus_channel"] = chan
    nucleus, message, main = _find_nucleus(chan, params, stages, nucleus_hint, nucleus_exclude)
    if nucleus is None:
        return Segmentation.empty((h, w), message, stages if keep_stages else
                                  {"input": rgb})
    stages["nucleus"] = nucleus
    r_n = float(np.sqrt(nucleus.sum() / np.pi))
    # the cell outline is searched at a working scale where the nucleus radius is about
    # params.work_radius pixels (speed); the outline polygon is drawn back at full size
    f = max(1.0, r_n / params.work_radius) if params.work_radius else 1.0
    if f > 1.0:
        hs, ws_ = max(8, int(round(h / f))), max(8, int(round(w / f)))
        fy, fx = h / hs, w / ws_
        small = cv2.resize(rgb_f, (ws_, hs), interpolation=cv2.INTER_AREA)
        nuc_s = cv2.resize(nucleus.astype(np.float32), (ws_, hs),
                           interpolation=cv2.INTER_AREA) > 0.5
        raw_s = cv2.resize(stages["otsu_nucleus"].astype(np.float32), (ws_, hs),
                           interpolation=cv2.INTER_AREA) > 0.5
        if not nuc_s.any():
            nuc_s, f, fy, fx, small, raw_s = nucleus, 1.0, 1.0, 1.0, rgb_f, stages["otsu_nucleus"]
    else:
        small, nuc_s, raw_s, fy, fx = rgb_f, nucleus, stages["otsu_nucleus"], 1.0, 1.0
    r_s = float(np.sqrt(nuc_s.sum() / np.pi))
    work: dict[str, np.ndarray] = {}
    lab = cv2.cvtColor(small, cv2.COLOR_RGB2LAB)
    region = _leukocyte_region(lab, nuc_s, raw_s, r_s, work)
    if params.separate_ratio > 0:
        assert main is not None  # _find_nucleus returns the main fragment with a nucleus
        main_s = cv2.resize(main.astype(np.uint8), (nuc_s.shape[1], nuc_s.shape[0]),
                            interpolation=cv2.INTER_NEAREST).astype(bool) & nuc_s
        keep_s = _own_lobes(nuc_s, main_s, work["distance"], params.separate_ratio)
        if keep_s is not None:
            # a fragment sits in a neighbouring cell: drop it and redo the watershed
            nuc_s = keep_s
            keep = cv2.resize(keep_s.astype(np.uint8), (w, h),
                              interpolation=cv2.INTER_NEAREST).astype(bool)
            keep = morphology.dilate_by_distance(keep, max(1.0, f))
            nucleus = morphology.components_touching(nucleus, keep) | main
            stages["nucleus"] = nucleus
            r_s = float(np.sqrt(nuc_s.sum() / np.pi))
            region = _leukocyte_region(lab, nuc_s, raw_s, r_s, work)
    radii, (cy, cx) = _outline(small, nuc_s, r_s, region, params, work,
                               edge_image=keep_stages)
    n_a = len(radii)
    ang = 2.0 * np.pi * np.arange(n_a) / n_a
    # back to full-size coordinates (pixel centres: x_full = (x_small + 0.5) * f - 0.5)
    px = (cx + (radii + 0.5) * np.cos(ang) + 0.5) * fx - 0.5
    py = (cy + (radii + 0.5) * np.sin(ang) + 0.5) * fy - 0.5
    cell = np.zeros((h, w), dtype=np.uint8)
    cv2.fillPoly(cell, [np.round(np.stack([px, py], 1) * 16).astype(np.int32)], 1,
                 lineType=cv2.LINE_8, shift=4)
    cell = morphology.fill_holes(cell.astype(bool) | nucleus)
    outline = cell
    if params.rim_max_od > 0:
        # a polygon through the outline radii overshoots thin cytoplasm rims (small
        # lymphocytes) and takes in a ring of background, which would then count as
        # "pale cytoplasm" in the colour and texture features
        cell = _trim_rim(rgb, cell, nucleus, params.rim_max_od)
    if keep_stages:
        for name, arr in work.items():
            stages[name] = _resize_stage(arr, (h, w))
        stages["cell_outline"] = outline
        stages["cell"] = cell
        stages["overlay"] = overlay(rgb, nucleus, cell)
    else:
        stages = {"input": rgb, "nucleus": nucleus, "cell": cell}
    scale = float(np.sqrt(cell.sum() / np.pi))
    return Segmentation(nucleus=nucleus, cell=cell, found=True, stages=stages, scale=scale,
                        message="")
