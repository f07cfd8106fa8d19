"""Seeded procedural generator of synthetic leukocyte images with exact ground truth.

The generator paints stained blood-film images with a small optical model: every object
(red cell, leukocyte cytoplasm, nucleus, granules) contributes an *optical density*
(absorbance, per RGB channel) and the image is ``illumination * background * exp(-OD)``
(Beer-Lambert), so overlapping objects darken naturally and stain colour can be shifted
per component.  Shapes are drawn as anti-aliased signed-distance fields, so the nucleus and
cell masks are exact (``sdf < 0``) and the nucleus mask is always a subset of the cell mask.

The five mature leukocyte classes carry their textbook traits:

* **neutrophil** -- 2-5 nuclear lobes joined by thin chromatin strands, pale pink/lilac
  finely granular cytoplasm, ~1.75 red-cell diameters;
* **eosinophil** -- bilobed ("spectacle") nucleus, cytoplasm packed with coarse orange-red
  granules, ~1.8 red-cell diameters;
* **basophil** -- irregular nucleus obscured by coarse dark purple/blue-black granules over
  nucleus and cytoplasm, ~1.6 red-cell diameters;
* **lymphocyte** -- small cell (~1.2 red-cell diameters), large round dense nucleus, thin
  pale-blue cytoplasm rim;
* **monocyte** -- largest (~2.2 red-cell diameters), kidney/horseshoe/folded nucleus with
  lacy chromatin, abundant grey-blue cytoplasm, sometimes vacuoles.

Around the leukocyte lie pale-centred (biconcave) red cells, several pressed against or
slightly over its edge, and a few platelets (small purple distractors that belong to no mask).

Variation (all seeded, no global random state): stain colour (hue/saturation/density of
each component, plus a systematic ``stain_shift``), illumination (brightness, gradient,
vignetting), Gaussian blur, Gaussian + signal-dependent (Poisson-like) noise, scale,
rotation and position jitter, red-cell crowding and platelet count.  The same seed gives
identical bytes (for a given numpy/OpenCV build).

To render a shifted test set, pass the same keyword to every call, e.g.
``make_cells(50, seed=1, stain_shift=1.0, scale=1.25)``; ``stain_shift`` changes colours only
(the geometry drawn from a seed is unchanged), ``scale`` changes the pixel size of all cells.
Colours were set against the cellavision_seg ground-truth masks and PBC crops; at
``scale=0.72`` the framing resembles a PBC crop (leukocyte ~1/3 of the width).

Public API
----------
``SyntheticCell``, ``SyntheticField``, ``make_cell``, ``make_cells``,
``make_smear``. The on-disk writers (class folders, segmentation and Pascal-VOC smear sets)
are in :mod:`wbc_classic.data.synthetic_sets`.
"""

from __future__ import annotations

import colorsys
import math
import zlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import cv2
import numpy as np

from wbc_classic.data.labels import PBC5_CLASSES

__all__ = [
    "CELL_DIAMETER_RBC",
    "CONFUSABLE",
    "SyntheticCell",
    "SyntheticField",
    "make_cell",
    "make_cells",
    "make_smear",
]

#: The five mature leukocyte classes, in alphabetical order (the order of label indices).

#: Mean leukocyte diameter of each class, in red-cell diameters.
CELL_DIAMETER_RBC: dict[str, float] = {
    "basophil": 1.6,
    "eosinophil": 1.8,
    "lymphocyte": 1.2,
    "monocyte": 2.2,
    "neutrophil": 1.75,
}

#: The class each one is most often confused with; an *ambiguous* cell
#: (``make_cell(..., ambiguity=p)``) takes part of its size, nucleus and cytoplasm from it.
CONFUSABLE: dict[str, str] = {
    "basophil": "neutrophil",
    "eosinophil": "neutrophil",
    "lymphocyte": "monocyte",
    "monocyte": "lymphocyte",
    "neutrophil": "eosinophil",
}

# Red-cell diameter as a fraction of the crop width for make_cell at scale=1
# (neutrophil ~0.47, lymphocyte ~0.32, monocyte ~0.59 of the crop width).
_RBC_FRACTION_OF_CROP = 0.27

# Nominal background (illuminant seen through the glass) and the component colours, as the
# RGB a unit density of each component shows over that background (May-Gruenwald-Giemsa look,
# measured roughly on PBC / CellaVision images).
_BACKGROUND = (248.0, 218.0, 193.0)
_COLOURS: dict[str, tuple[float, float, float]] = {
    "nucleus": (80.0, 36.0, 132.0),
    "nucleus_mono": (100.0, 50.0, 146.0),
    "cyto_neutrophil": (220.0, 184.0, 192.0),
    "gran_neutrophil": (192.0, 146.0, 178.0),
    "cyto_eosinophil": (226.0, 180.0, 182.0),
    "gran_eosinophil": (206.0, 116.0, 116.0),
    "cyto_basophil": (196.0, 160.0, 194.0),
    "gran_basophil": (74.0, 32.0, 116.0),
    "cyto_lymphocyte": (176.0, 166.0, 210.0),
    "cyto_monocyte": (202.0, 180.0, 204.0),
    "rbc": (204.0, 156.0, 160.0),
    "platelet": (128.0, 76.0, 164.0),
}
_STAINED = tuple(_COLOURS)


# --------------------------------------------------------------------------------------
# result types
# --------------------------------------------------------------------------------------
@dataclass(frozen=True, eq=False)
class SyntheticCell:
    """One synthetic single-leukocyte crop and its exact ground truth.

    Attributes
    ----------
    image : ndarray, shape (size, size, 3), dtype uint8
        RGB image, leukocyte near the centre, red cells around it.
    nucleus : ndarray, shape (size, size), dtype bool
        Nucleus mask of the leukocyte (subset of ``cell``).
    cell : ndarray, shape (size, size), dtype bool
        Whole-leukocyte mask (nucleus + cytoplasm); red cells are not included.
    label : str
        Class name, one of :data:`PBC5_CLASSES`.
    params : dict
        The drawn rendering parameters (for inspection/debugging; not needed otherwise).
    """

    image: np.ndarray
    nucleus: np.ndarray
    cell: np.ndarray
    label: str
    params: dict = field(default_factory=dict, repr=False)


@dataclass(frozen=True, eq=False)
class SyntheticField:
    """A synthetic blood-smear field with several leukocytes and many red cells.

    Attributes
    ----------
    image : ndarray, shape (H, W, 3), dtype uint8
        RGB field image.
    nucleus : ndarray, shape (H, W), dtype bool
        Union of the leukocyte nucleus masks.
    cell : ndarray, shape (H, W), dtype bool
        Union of the leukocyte cell masks (nucleus + cytoplasm).
    instances : ndarray, shape (H, W), dtype int32
        0 = not a leukocyte, ``i + 1`` = pixels of leukocyte ``i``.
    boxes : ndarray, shape (n, 4), dtype int64
        Leukocyte boxes ``xmin, ymin, xmax, ymax`` in pixels, half-open (``xmax``/``ymax``
        are one past the last mask column/row), so ``cell[ymin:ymax, xmin:xmax]`` holds the
        whole instance.
    labels : list of str
        Class name of each leukocyte, aligned with ``boxes``.
    rbc_boxes : ndarray, shape (m, 4), dtype int64
        Boxes of the red cells, clipped to the image, same convention as ``boxes``.
    """

    image: np.ndarray
    nucleus: np.ndarray
    cell: np.ndarray
    instances: np.ndarray
    boxes: np.ndarray
    labels: list[str]
    rbc_boxes: np.ndarray = field(default_factory=lambda: np.zeros((0, 4), np.int64))


# --------------------------------------------------------------------------------------
# small numeric helpers
# --------------------------------------------------------------------------------------
def _as_rng(rng: None | int | np.random.Generator) -> np.random.Generator:
    if isinstance(rng, np.random.Generator):
        return rng
    return np.random.default_rng(rng)


def _smooth_noise(rng: np.random.Generator, shape: tuple[int, int], scale: float) -> np.ndarray:
    """Zero-mean, unit-std random field with correlation length ~``scale`` pixels (float32)."""
    h, w = shape
    scale = max(float(scale), 1.0)
    gh = int(math.ceil(h / scale)) + 3
    gw = int(math.ceil(w / scale)) + 3
    grid = rng.standard_normal((gh, gw)).astype(np.float32)
    big = cv2.resize(grid, (int(gw * scale), int(gh * scale)), interpolation=cv2.INTER_CUBIC)
    oy = int(scale)
    ox = int(scale)
    out = big[oy:oy + h, ox:ox + w]
    if out.shape != (h, w):  # tiny shapes: pad by edge replication
        out = cv2.resize(big, (w, h), interpolation=cv2.INTER_LINEAR)
    std = float(out.std())
    return (out - float(out.mean())) / (std if std > 1e-6 else 1.0)


def _fine_noise(rng: np.random.Generator, shape: tuple[int, int], sigma: float) -> np.ndarray:
    """High-frequency unit-std noise (white noise blurred by ``sigma`` px), float32."""
    n: np.ndarray = rng.standard_normal(shape).astype(np.float32)
    if sigma > 0.3:
        n = cv2.GaussianBlur(n, (0, 0), sigma)
    std = float(n.std())
    return n / (std if std > 1e-6 else 1.0)


def _alpha(sdf: np.ndarray) -> np.ndarray:
    """Anti-aliased coverage (float32 in [0, 1]) of a signed distance field in pixels."""
    return np.clip(0.5 - sdf, 0.0, 1.0).astype(np.float32)


def _capsules_sdf(u: np.ndarray, v: np.ndarray, a: np.ndarray, b: np.ndarray,
                  ra: np.ndarray, rb: np.ndarray) -> np.ndarray:
    """Signed distance to the union of tapered capsules (segments a->b, radii ra->rb).

    ``u, v`` are (h, w) coordinates, ``a, b`` are (K, 2), ``ra, rb`` are (K,).
    """
    a = np.asarray(a, np.float32)
    b = np.asarray(b, np.float32)
    ra = np.asarray(ra, np.float32)
    rb = np.asarray(rb, np.float32)
    out = np.full(u.shape, np.inf, np.float32)
    for k in range(len(a)):  # loop over a handful of segments, pixels are vectorised
        dx, dy = b[k, 0] - a[k, 0], b[k, 1] - a[k, 1]
        l2 = dx * dx + dy * dy
        pu = u - a[k, 0]
        pv = v - a[k, 1]
        if l2 > 1e-9:
            t = np.clip((pu * dx + pv * dy) / l2, 0.0, 1.0)
        else:
            t = np.zeros_like(u)
        d = np.hypot(pu - t * dx, pv - t * dy) - (ra[k] + t * (rb[k] - ra[k]))
        np.minimum(out, d, out=out)
    return out


def _smooth_max(a: np.ndarray, b: np.ndarray, k: float) -> np.ndarray:
    """Polynomial smooth maximum (intersection with corners rounded over ~``k`` px).

    Never smaller than ``max(a, b)``, so a clipped shape stays inside the hard clip.
    """
    h = np.clip(0.5 + 0.5 * (a - b) / k, 0.0, 1.0)
    return (b + (a - b) * h + k * h * (1.0 - h)).astype(np.float32)


def _ellipse_sdf(u: np.ndarray, v: np.ndarray, cx: float, cy: float, a: float, b: float,
                 ang: float) -> np.ndarray:
    """Approximate signed distance (px) to an ellipse with semi-axes a, b rotated by ang."""
    c, s = math.cos(ang), math.sin(ang)
    x = (u - cx) * c + (v - cy) * s
    y = -(u - cx) * s + (v - cy) * c
    q = np.hypot(x / a, y / b)
    return ((q - 1.0) * min(a, b)).astype(np.float32)


def _shift_colour(rgb: Sequence[float], dh: float, sat: float, val: float) -> tuple:
    h, s, v = colorsys.rgb_to_hsv(*(c / 255.0 for c in rgb))
    h = (h + dh / 360.0) % 1.0
    s = min(max(s * sat, 0.0), 1.0)
    v = min(max(v * val, 0.02), 1.0)
    return tuple(255.0 * c for c in colorsys.hsv_to_rgb(h, s, v))


def _parse_stain_shift(stain_shift: float | Sequence[float]) -> tuple[float, float, float]:
    """Return (hue degrees, saturation factor, density factor) of the systematic shift."""
    if np.isscalar(stain_shift):
        s = float(stain_shift)  # type: ignore[arg-type]
        return 20.0 * s, math.exp(0.3 * s), math.exp(0.2 * s)
    hue, sat, dens = (float(x) for x in stain_shift)  # type: ignore[union-attr]
    return hue, sat, dens


# --------------------------------------------------------------------------------------
# style (stain + optics) drawn once per image
# --------------------------------------------------------------------------------------
@dataclass(frozen=True)
class _Style:
    background: np.ndarray           # (3,) float32 RGB of the empty glass
    od: dict[str, np.ndarray]        # component -> (3,) float32 optical density per unit
    rbc_density: float               # multiplier of red-cell density


def _draw_style(rng: np.random.Generator, stain_shift: float | Sequence[float],
                stain_jitter: float, background: Sequence[float] | None) -> _Style:
    hue0, sat0, dens0 = _parse_stain_shift(stain_shift)
    j = float(stain_jitter)
    # a global random stain cast plus a smaller independent part per component
    g_h = rng.normal(0.0, 5.0 * j)
    g_s = math.exp(rng.normal(0.0, 0.10 * j))
    g_d = math.exp(rng.normal(0.0, 0.10 * j))
    if background is None:
        bg = np.array(_BACKGROUND, np.float64)
        bg = bg + rng.normal(0.0, 4.0 * j, 3) + np.array([0.0, 1.0, 2.0]) * rng.normal(0, 3.0 * j)
    else:
        bg = np.asarray(background, np.float64)
    bg = np.clip(bg, 60.0, 255.0)
    nominal = np.array(_BACKGROUND, np.float64)
    od: dict[str, np.ndarray] = {}
    for name in _STAINED:
        dh = hue0 + g_h + rng.normal(0.0, 4.0 * j)
        sat = sat0 * g_s * math.exp(rng.normal(0.0, 0.08 * j))
        rgb = np.clip(np.array(_shift_colour(_COLOURS[name], dh, sat, 1.0)), 1.0, 255.0)
        dens = dens0 * g_d * math.exp(rng.normal(0.0, 0.08 * j))
        od[name] = (np.maximum(-np.log(rgb / nominal), 0.0) * dens).astype(np.float32)
    return _Style(background=bg.astype(np.float32), od=od,
                  rbc_density=float(math.exp(rng.normal(0.0, 0.1 * j))))


# --------------------------------------------------------------------------------------
# red cells
# --------------------------------------------------------------------------------------
def _place_rbcs(rng: np.random.Generator, shape: tuple[int, int], r_rbc: float,
                wbcs: Sequence[tuple[float, float, float]], density: float,
                max_overlap: float = 0.35) -> np.ndarray:
    """Random red-cell discs (n, 3: cx, cy, radius) around the leukocytes.

    Red cells may overlap each other a little (``max_overlap`` of a radius), and may touch or
    slightly overlap a leukocyte edge; a few candidates are put right against each leukocyte
    first, as red cells crowd against white cells in a real film.
    """
    h, w = shape
    if density <= 0:
        return np.zeros((0, 3), np.float32)
    area = (h + 2 * r_rbc) * (w + 2 * r_rbc)
    target = int(round(density * 0.62 * area / (math.pi * r_rbc * r_rbc)))
    n_cand = max(8 * target, 16)
    cand = np.column_stack([
        rng.uniform(-r_rbc, w + r_rbc, n_cand),
        rng.uniform(-r_rbc, h + r_rbc, n_cand),
        r_rbc * np.exp(rng.normal(0.0, 0.07, n_cand)),
    ]).astype(np.float32)
    acc = np.zeros((target + 1, 3), np.float32)
    n = 0
    wb = np.asarray(wbcs, np.float32).reshape(-1, 3)
    # a red cell may reach into a leukocyte by at most ~0.3 of its own radius
    wb_depth = rng.uniform(-0.15, 0.3, n_cand).astype(np.float32)
    # contact candidates first: red cells lying against each leukocyte's edge
    contact = []
    for x, y, rw in wb:
        k = int(rng.poisson(2.5 * min(density, 1.5)))
        ang = rng.uniform(0.0, 2.0 * math.pi, k)
        r = r_rbc * np.exp(rng.normal(0.0, 0.07, k))
        dist = rw + r * (1.0 - rng.uniform(0.0, 0.3, k)) + 0.5
        contact.append(np.column_stack([x + dist * np.cos(ang), y + dist * np.sin(ang), r]))
    if contact:
        cand = np.concatenate([*contact, cand]).astype(np.float32)
        wb_depth = np.concatenate([np.full(len(cand) - n_cand, 0.35, np.float32), wb_depth])
        n_cand = len(cand)
    if len(wb):  # leukocyte clearance, vectorised over all candidates
        d = np.hypot(cand[:, None, 0] - wb[None, :, 0], cand[:, None, 1] - wb[None, :, 1])
        cand = cand[~np.any(d < wb[None, :, 2] + cand[:, 2:3] * (1.0 - wb_depth[:, None]),
                            axis=1)]
    keep = 1.0 - max_overlap * 0.5
    for x, y, r in cand.tolist():
        if n >= target:
            break
        if n:
            d2 = (acc[:n, 0] - x) ** 2 + (acc[:n, 1] - y) ** 2
            if (d2 < ((acc[:n, 2] + r) * keep) ** 2).any():
                continue
        acc[n] = (x, y, r)
        n += 1
    return acc[:n]


def _paint_rbcs(od: np.ndarray, rng: np.random.Generator, rbcs: np.ndarray,
                style: _Style) -> None:
    """Add the optical density of biconcave red cells to ``od`` (H, W, 3) in place."""
    h, w = od.shape[:2]
    colour = style.od["rbc"]
    for x, y, r in rbcs:
        ax = math.exp(rng.normal(0.0, 0.06))
        ang = rng.uniform(0, math.pi)
        x0, x1 = max(int(x - 1.3 * r) - 1, 0), min(int(x + 1.3 * r) + 2, w)
        y0, y1 = max(int(y - 1.3 * r) - 1, 0), min(int(y + 1.3 * r) + 2, h)
        if x0 >= x1 or y0 >= y1:
            continue
        xx = np.arange(x0, x1, dtype=np.float32)[None, :] - float(x)
        yy = np.arange(y0, y1, dtype=np.float32)[:, None] - float(y)
        c, s = math.cos(ang), math.sin(ang)
        du = (xx * (c / ax) + yy * (s / ax))
        dv = (xx * (-s * ax) + yy * (c * ax))
        rho = np.sqrt(du * du + dv * dv)
        a = _alpha(rho - r)
        q = rho / r
        pallor = rng.uniform(0.55, 0.9)
        prof = (1.0 - pallor * np.exp(-(q / rng.uniform(0.5, 0.64)) ** 6)
                + 0.25 * np.exp(-((q - 0.82) / 0.1) ** 2))
        dens = a * prof * style.rbc_density * rng.uniform(0.85, 1.15)
        od[y0:y1, x0:x1] += dens[..., None] * colour


def _paint_platelets(od: np.ndarray, rng: np.random.Generator, r_rbc: float,
                     wbcs: Sequence[tuple[float, float, float]], amount: float,
                     style: _Style) -> int:
    """Scatter a few small granular purple platelets (distractors, not in any mask)."""
    h, w = od.shape[:2]
    expected = 0.05 * amount * h * w / (math.pi * r_rbc * r_rbc)
    n = int(rng.poisson(max(expected, 0.0)))
    wb = np.asarray(wbcs, np.float32).reshape(-1, 3)
    colour = style.od["platelet"]
    painted = 0
    for _ in range(n):
        rp = r_rbc * rng.uniform(0.2, 0.34)
        x, y = rng.uniform(0, w), rng.uniform(0, h)
        if len(wb) and np.any(np.hypot(wb[:, 0] - x, wb[:, 1] - y) < wb[:, 2] + 2.5 * rp):
            continue
        pad = int(math.ceil(1.6 * rp)) + 2
        x0, x1 = max(int(x) - pad, 0), min(int(x) + pad + 1, w)
        y0, y1 = max(int(y) - pad, 0), min(int(y) + pad + 1, h)
        if x0 >= x1 or y0 >= y1:
            continue
        yy, xx = np.mgrid[y0:y1, x0:x1].astype(np.float32)
        sdf = _ellipse_sdf(xx, yy, x, y, rp * rng.uniform(1.0, 1.5), rp, rng.uniform(0, math.pi))
        sdf = sdf + 0.12 * rp * _smooth_noise(rng, sdf.shape, max(0.8 * rp, 1.0))
        grain = 0.85 + 0.3 * np.clip(_fine_noise(rng, sdf.shape, 0.7), -1.5, 1.5)
        od[y0:y1, x0:x1] += (_alpha(sdf) * grain * rng.uniform(0.6, 1.1))[..., None] * colour
        painted += 1
    return painted


# --------------------------------------------------------------------------------------
# leukocytes
# --------------------------------------------------------------------------------------
def _cell_sdf(rng: np.random.Generator, u: np.ndarray, v: np.ndarray, radius: float,
              irregular: float) -> np.ndarray:
    """Near-circular cell outline with low-frequency wobble; signed distance in px."""
    ax = math.exp(abs(rng.normal(0.0, 0.05 + 0.5 * irregular)))
    rho = np.hypot(u / ax, v * ax)
    th = np.arctan2(v, u)
    rr = np.ones_like(rho)
    for k in range(2, 7):
        amp = rng.normal(0.0, (0.02 + irregular) / k)
        rr += amp * np.cos(k * th + rng.uniform(0, 2 * math.pi))
    return (rho - radius * rr).astype(np.float32)


def _neutrophil_nucleus(rng, u, v, R, n_lobes=None, eos=False):
    """Lobes (short fat capsules) on a random chain, joined by thin strands."""
    if n_lobes is None:
        if eos:
            n_lobes = int(rng.choice([2, 2, 2, 2, 2, 3]))
        else:
            n_lobes = int(rng.choice([2, 3, 4, 5], p=[0.17, 0.43, 0.3, 0.1]))
    lobe_r = R * (0.34 if eos else {2: 0.33, 3: 0.3, 4: 0.27, 5: 0.245}[n_lobes])
    lobe_r *= rng.uniform(0.9, 1.1)
    strand_r = max(0.03 * R, 0.55)
    pts_a = np.zeros((n_lobes, 2))
    for attempt in range(80):
        limit = 0.86 * R - lobe_r
        step = lobe_r * (rng.uniform(2.15, 2.45) if eos else rng.uniform(2.2, 2.6))
        # lobe centres on a random arc (C/S-like chains), centred on the cell
        rho_min = 0.5 * step / math.sin(min(math.pi / n_lobes, math.pi / 2) * 0.999)
        rho_a = rho_min * math.exp(rng.uniform(0.0, 0.9))
        dth = 2.0 * math.asin(min(step / (2.0 * rho_a), 1.0))
        th = np.arange(n_lobes) * dth + rng.normal(0.0, 0.12 * dth, n_lobes)
        rr = rho_a * (1.0 + rng.normal(0.0, 0.06, n_lobes))
        pts_a = np.column_stack([rr * np.cos(th), rr * np.sin(th)])
        if not eos and n_lobes >= 3 and rng.random() < 0.3:  # S-shaped: flip the tail
            k = n_lobes // 2
            pivot = pts_a[k]
            tail = pts_a[k + 1:] - pivot
            axis = pivot / (np.hypot(*pivot) + 1e-9)
            tail = 2.0 * (tail @ axis)[:, None] * axis[None, :] - tail
            pts_a[k + 1:] = pivot + tail
        pts_a = pts_a - pts_a.mean(0) + rng.normal(0.0, 0.06 * R, 2)
        rot = rng.uniform(0, 2 * math.pi)
        c, s_ = math.cos(rot), math.sin(rot)
        pts_a = pts_a @ np.array([[c, s_], [-s_, c]])
        if np.all(np.hypot(pts_a[:, 0], pts_a[:, 1]) <= limit):
            dists = np.hypot(*(pts_a[:, None, :] - pts_a[None, :, :]).transpose(2, 0, 1))
            np.fill_diagonal(dists, np.inf)
            if np.all(dists > 2.15 * lobe_r):
                break
        if attempt % 8 == 7:  # hard to fit: make the lobes a little smaller
            lobe_r *= 0.96
    # each lobe: a short capsule perpendicular-ish to the chain, so lobes look oval/kidney
    a, b, ra, rb = [], [], [], []
    for i, c in enumerate(pts_a):
        nb = pts_a[min(i + 1, len(pts_a) - 1)] - pts_a[max(i - 1, 0)]
        t = math.atan2(nb[1], nb[0]) + math.pi / 2 + rng.normal(0, 0.6)
        half = lobe_r * rng.uniform(0.25, 0.8)
        d = half * np.array([math.cos(t), math.sin(t)])
        a.append(c - d)
        b.append(c + d)
        r = lobe_r * rng.uniform(0.85, 1.05)
        ra.append(r * rng.uniform(0.85, 1.0))
        rb.append(r * rng.uniform(0.85, 1.0))
    noise = 0.05 * lobe_r * _smooth_noise(rng, u.shape, max(lobe_r * 0.6, 1.0))
    # each lobe is clipped by planes half-way to its chain neighbours, so neighbouring lobes
    # never touch (only the thin strand joins them) but may lie close, pressed together
    gap = max(0.1 * R, 2.5)
    lobes = np.full(u.shape, np.inf, np.float32)
    for i in range(n_lobes):
        li = _capsules_sdf(u, v, np.array(a[i:i + 1]), np.array(b[i:i + 1]),
                           np.array(ra[i:i + 1]), np.array(rb[i:i + 1])) + noise
        for j in (i - 1, i + 1):
            if 0 <= j < n_lobes:
                m = 0.5 * (pts_a[i] + pts_a[j])
                d = (pts_a[j] - pts_a[i]) / (np.hypot(*(pts_a[j] - pts_a[i])) + 1e-9)
                li = _smooth_max(li, (u - m[0]) * d[0] + (v - m[1]) * d[1] + 0.5 * gap,
                                 0.3 * lobe_r)
        np.minimum(lobes, li, out=lobes)
    sa = pts_a[:-1]
    sb = pts_a[1:]
    sr = np.full(len(sa), strand_r) * rng.uniform(0.9, 1.3, len(sa))
    strands = _capsules_sdf(u, v, sa, sb, sr, sr)
    return np.minimum(lobes, strands), {"n_lobes": n_lobes}


def _lymphocyte_nucleus(rng, u, v, R):
    rn = R * rng.uniform(0.76, 0.88)
    asp = math.exp(abs(rng.normal(0, 0.06)))
    off = (R - rn) * rng.uniform(0.2, 0.9)
    t = rng.uniform(0, 2 * math.pi)
    cx, cy = off * math.cos(t), off * math.sin(t)
    sdf = _ellipse_sdf(u, v, cx, cy, rn * asp, rn / asp, rng.uniform(0, math.pi))
    if rng.random() < 0.3:  # small notch / indentation
        ta = rng.uniform(0, 2 * math.pi)
        nr = rn * rng.uniform(0.15, 0.3)
        nx, ny = cx + (rn + 0.4 * nr) * math.cos(ta), cy + (rn + 0.4 * nr) * math.sin(ta)
        sdf = np.maximum(sdf, -(np.hypot(u - nx, v - ny) - nr))
    sdf = sdf + 0.03 * rn * _smooth_noise(rng, u.shape, max(rn * 0.35, 1.0))
    return sdf.astype(np.float32), {"nc_offset": off / R}


def _monocyte_nucleus(rng, u, v, R):
    kind = str(rng.choice(["kidney", "horseshoe", "folded"], p=[0.4, 0.35, 0.25]))
    rot = rng.uniform(0, 2 * math.pi)
    c, s = math.cos(rot), math.sin(rot)
    off = rng.normal(0, 0.08 * R, 2)
    uu = (u - off[0]) * c + (v - off[1]) * s
    vv = -(u - off[0]) * s + (v - off[1]) * c
    if kind == "kidney":
        a, b = R * rng.uniform(0.6, 0.72), R * rng.uniform(0.44, 0.54)
        sdf = _ellipse_sdf(uu, vv, 0.0, 0.0, a, b, 0.0)
        nr = b * rng.uniform(0.55, 0.9)
        sdf = np.maximum(sdf, -(np.hypot(uu, vv - (b + nr * rng.uniform(0.3, 0.65))) - nr))
    elif kind == "horseshoe":
        rho = R * rng.uniform(0.36, 0.46)
        span = rng.uniform(3.4, 4.6)
        k = 9
        th = np.linspace(-span / 2, span / 2, k) + math.pi / 2
        pts = np.column_stack([rho * np.cos(th), rho * np.sin(th) - 0.3 * rho])
        tube = R * rng.uniform(0.21, 0.27) * (1 + 0.15 * np.sin(np.linspace(0, math.pi, k)))
        sdf = _capsules_sdf(uu, vv, pts[:-1], pts[1:], tube[:-1], tube[1:])
    else:  # folded: overlapping blobs with a cleft
        n = int(rng.integers(2, 4))
        pts = rng.normal(0, 0.2 * R, (n, 2))
        rr = R * rng.uniform(0.35, 0.45, n)
        sdf = _capsules_sdf(uu, vv, pts, np.roll(pts, 1, 0), rr, np.roll(rr, 1))
        # a cleft cut in from outside the nucleus (a fold), never a hole
        ang = rng.uniform(0, 2 * math.pi)
        depth = R * rng.uniform(0.15, 0.35)
        cr = R * rng.uniform(0.04, 0.08)
        d = np.array([math.cos(ang), math.sin(ang)])
        cleft = _capsules_sdf(uu, vv, (d * 1.3 * R)[None], (d * depth)[None],
                              np.array([1.8 * cr]), np.array([cr]))
        sdf = np.maximum(sdf, -cleft)
    sdf = sdf + 0.025 * R * _smooth_noise(rng, u.shape, max(0.2 * R, 1.0))
    return sdf.astype(np.float32), {"nucleus_kind": kind}


def _basophil_nucleus(rng, u, v, R):
    n = int(rng.integers(2, 4))
    ang = rng.uniform(0, 2 * math.pi, n)
    dist = R * rng.uniform(0.1, 0.3, n)
    pts = np.column_stack([dist * np.cos(ang), dist * np.sin(ang)])
    rr = R * rng.uniform(0.26, 0.36, n)
    sdf = _capsules_sdf(u, v, pts, np.roll(pts, 1, 0), rr, np.roll(rr, 1))
    sdf = sdf + 0.05 * R * _smooth_noise(rng, u.shape, max(0.2 * R, 1.0))
    return sdf.astype(np.float32), {}


def _granules(rng: np.random.Generator, region: np.ndarray, coverage: float,
              radius: float) -> np.ndarray:
    """Saturating field of Gaussian granules scattered over ``region`` (float32 in [0, 1]).

    ``coverage`` is the expected number of granules per granule area (pi * radius**2), so the
    look does not change with the pixel size of the cell.
    """
    idx = np.flatnonzero(region.ravel() > 0.5)
    if idx.size == 0:
        return np.zeros(region.shape, np.float32)
    n = int(rng.poisson(coverage * idx.size / (math.pi * radius * radius)))
    pos = idx[rng.integers(0, idx.size, n)]
    img = np.bincount(pos, minlength=region.size).astype(np.float32).reshape(region.shape)
    sig = max(radius * 0.7, 0.5)
    img = cv2.GaussianBlur(img, (0, 0), sig) * (2.0 * math.pi * sig * sig)
    return (1.0 - np.exp(-1.3 * img)).astype(np.float32)


def _paint_leukocyte(od: np.ndarray, rng: np.random.Generator, label: str, cx: float,
                     cy: float, radius: float, rotation: float, style: _Style,
                     mimic: tuple[str, float] | None = None
                     ) -> tuple[np.ndarray, np.ndarray, tuple[int, int], dict]:
    """Add one leukocyte's optical density to ``od`` in place.

    ``mimic = (other, t)`` draws an ambiguous cell: with probability ``t`` its nucleus is
    shaped (and its chromatin textured) like ``other``'s, and its cytoplasm (colour, granules)
    is a ``1 - t : t`` blend of the two classes' -- a ``t`` near 0.5 is a cell an expert
    would hesitate over.

    Returns the nucleus and cell masks (bool) of the bounding window, its (y0, x0) offset and
    the drawn shape parameters.
    """
    h, w = od.shape[:2]
    R = float(radius)
    pad = int(math.ceil(1.4 * R)) + 3
    x0, x1 = max(int(cx) - pad, 0), min(int(cx) + pad + 1, w)
    y0, y1 = max(int(cy) - pad, 0), min(int(cy) + pad + 1, h)
    yy, xx = np.mgrid[y0:y1, x0:x1].astype(np.float32)
    c, s = math.cos(rotation), math.sin(rotation)
    u = (xx - cx) * c + (yy - cy) * s
    v = -(xx - cx) * s + (yy - cy) * c
    shape = u.shape

    irregular = {"monocyte": 0.05, "lymphocyte": 0.012, "basophil": 0.03}.get(label, 0.02)
    cell_sdf = _cell_sdf(rng, u, v, R, irregular)
    nuc_label = label
    if mimic is not None and rng.random() < mimic[1]:
        nuc_label = mimic[0]
    if nuc_label == "neutrophil":
        nuc_sdf, info = _neutrophil_nucleus(rng, u, v, R)
    elif nuc_label == "eosinophil":
        nuc_sdf, info = _neutrophil_nucleus(rng, u, v, R, eos=True)
    elif nuc_label == "lymphocyte":
        nuc_sdf, info = _lymphocyte_nucleus(rng, u, v, R)
    elif nuc_label == "monocyte":
        nuc_sdf, info = _monocyte_nucleus(rng, u, v, R)
    elif nuc_label == "basophil":
        nuc_sdf, info = _basophil_nucleus(rng, u, v, R)
    else:  # pragma: no cover - guarded by the callers
        raise ValueError(label)
    if mimic is not None:
        info = {**info, "mimic": mimic[0], "mimic_t": float(mimic[1]),
                "nucleus_from": nuc_label}
    # keep the nucleus strictly inside the cell (>= ~1 px of cytoplasm)
    margin = max(1.0, 0.025 * R)
    nuc_sdf = np.maximum(nuc_sdf, cell_sdf + margin)
    a_cell = _alpha(cell_sdf)
    a_nuc = _alpha(nuc_sdf)
    cyto = a_cell * (1.0 - a_nuc)

    local = np.zeros((*shape, 3), np.float32)
    rho = np.hypot(u, v) / R

    # ---- nucleus chromatin: coarse clumps + medium grain + pixel noise, denser at the rim
    coarse = _smooth_noise(rng, shape, max(0.09 * R, 1.2))
    medium = _smooth_noise(rng, shape, max(0.03 * R, 1.0))
    fine = _fine_noise(rng, shape, 0.6)
    rim = np.exp(np.minimum(nuc_sdf, 0.0) / max(0.06 * R, 1.0))
    if nuc_label == "monocyte":
        band = _smooth_noise(rng, shape, max(0.06 * R, 1.2))
        lace = 1.0 - 2.0 * np.abs(np.tanh(band))  # bright ridges -> lacy network
        chrom = 0.88 + 0.22 * lace + 0.06 * medium + 0.05 * fine + 0.08 * rim
        nuc_col = style.od["nucleus_mono"]
    elif nuc_label == "lymphocyte":
        chrom = 1.0 + 0.12 * coarse + 0.1 * medium + 0.05 * fine + 0.1 * rim
        nuc_col = style.od["nucleus"]
    else:
        chrom = 0.98 + 0.1 * coarse + 0.1 * medium + 0.05 * fine + 0.12 * rim
        nuc_col = style.od["nucleus"]
    chrom = np.clip(chrom, 0.35, None) * rng.uniform(0.9, 1.1)
    local += (a_nuc * chrom)[..., None] * nuc_col

    # ---- cytoplasm (an ambiguous cell: both classes' cytoplasm, weighted 1 - t and t)
    tex = _fine_noise(rng, shape, 0.7)
    blend = [(label, 1.0)] if mimic is None else [(label, 1.0 - mimic[1]),
                                                  (mimic[0], mimic[1])]
    for cyto_label, weight in blend:
        _paint_cytoplasm(local, rng, cyto_label, weight, cyto, a_cell, a_nuc, rho, tex,
                         coarse, u, v, R, style, info)

    od[y0:y1, x0:x1] += local
    return nuc_sdf < 0, cell_sdf < 0, (y0, x0), info


def _paint_cytoplasm(local: np.ndarray, rng: np.random.Generator, label: str, weight: float,
                     cyto: np.ndarray, a_cell: np.ndarray, a_nuc: np.ndarray, rho: np.ndarray,
                     tex: np.ndarray, coarse: np.ndarray, u: np.ndarray, v: np.ndarray,
                     R: float, style: _Style, info: dict) -> None:
    """Add ``weight`` times ``label``'s cytoplasm (colour and granules) to ``local``."""
    cyto = cyto * weight
    a_cell_w = a_cell * weight
    if label == "neutrophil":
        base = rng.uniform(0.8, 1.2) * (1.0 + 0.12 * tex)
        local += (cyto * base)[..., None] * style.od["cyto_neutrophil"]
        g = _granules(rng, a_cell, rng.uniform(0.25, 0.5), max(0.025 * R, 0.5))
        local += (cyto * g * 0.55)[..., None] * style.od["gran_neutrophil"]
    elif label == "eosinophil":
        local += (cyto * rng.uniform(0.7, 1.1))[..., None] * style.od["cyto_eosinophil"]
        g = _granules(rng, a_cell, rng.uniform(0.8, 1.2), max(0.05 * R, 0.7))
        local += (a_cell_w * g * (1.0 - 0.8 * a_nuc) * rng.uniform(0.9, 1.2))[..., None] \
            * style.od["gran_eosinophil"]
    elif label == "basophil":
        local += (cyto * rng.uniform(0.8, 1.2))[..., None] * style.od["cyto_basophil"]
        g = _granules(rng, a_cell, rng.uniform(0.7, 1.3), max(0.06 * R, 0.7))
        local += (a_cell_w * g * (1.0 - 0.3 * a_nuc) * rng.uniform(0.8, 1.1))[..., None] \
            * style.od["gran_basophil"]
    elif label == "lymphocyte":
        edge = 0.75 + 0.5 * np.clip(rho, 0, 1.2) ** 3
        local += (cyto * edge * rng.uniform(0.7, 1.1) * (1 + 0.08 * tex))[..., None] \
            * style.od["cyto_lymphocyte"]
    elif label == "monocyte":
        base = rng.uniform(0.75, 1.15) * (1.0 + 0.1 * tex + 0.08 * coarse)
        dens = cyto * base
        n_vac = int(rng.choice([0, 0, 1, 2, 3, 5]))
        for _ in range(n_vac):
            ang = rng.uniform(0, 2 * math.pi)
            rr = R * rng.uniform(0.55, 0.88)
            vr = R * rng.uniform(0.03, 0.07)
            vx, vy = rr * math.cos(ang), rr * math.sin(ang)
            dens = dens * (1.0 - 0.85 * _alpha(np.hypot(u - vx, v - vy) - vr))
        info["n_vacuoles"] = n_vac
        local += dens[..., None] * style.od["cyto_monocyte"]


# --------------------------------------------------------------------------------------
# optics: illumination, blur, noise
# --------------------------------------------------------------------------------------
def _expose(od: np.ndarray, rng: np.random.Generator, style: _Style, *, blur: float | None,
            noise: float | None, illumination: float, brightness: float,
            ref_size: float) -> np.ndarray:
    h, w = od.shape[:2]
    img = cv2.exp(-od) * style.background
    yy = np.linspace(-1.0, 1.0, h, dtype=np.float32)[:, None]
    xx = np.linspace(-1.0, 1.0, w, dtype=np.float32)[None, :]
    gx, gy = (float(t) for t in rng.normal(0.0, 0.04 * illumination, 2))
    vig = float(rng.uniform(0.0, 0.12 * illumination))
    gain = float(brightness) * math.exp(rng.normal(0.0, 0.04 * illumination))
    field_ = gain * (1.0 + gx * xx + gy * yy) * (1.0 - vig * 0.5 * (xx * xx + yy * yy))
    img *= field_[..., None]
    sigma = rng.uniform(0.0, 0.8) * ref_size / 128.0 if blur is None else float(blur)
    if sigma > 0.05:
        img = cv2.GaussianBlur(img, (0, 0), sigma)
    g_sigma = rng.uniform(0.5, 2.5) if noise is None else float(noise)
    if g_sigma > 0:
        shot = rng.uniform(0.0, 0.25) * g_sigma
        std = np.sqrt(g_sigma * g_sigma + shot * np.maximum(img, 0.0))
        img += std * rng.standard_normal(img.shape, dtype=np.float32)
    np.clip(img, 0.0, 255.0, out=img)
    return np.rint(img).astype(np.uint8)


def _check_label(label: str) -> str:
    name = str(label).lower()
    if name not in CELL_DIAMETER_RBC:
        raise ValueError(f"unknown leukocyte class {label!r}; expected one of {PBC5_CLASSES}")
    return name


# --------------------------------------------------------------------------------------
# public API
# --------------------------------------------------------------------------------------
def make_cell(label: str, *, size: int = 128, rng: None | int | np.random.Generator = None,
              scale: float = 1.0, stain_shift: float | Sequence[float] = 0.0,
              stain_jitter: float = 1.0, blur: float | None = None, noise: float | None = None,
              illumination: float = 1.0, brightness: float = 1.0, rotation: float | None = None,
              position_jitter: float = 0.05, scale_jitter: float = 0.08,
              rbc_density: float = 1.0, platelets: float = 1.0,
              background: Sequence[float] | None = None,
              ambiguity: float = 0.0) -> SyntheticCell:
    """Render one single-leukocyte crop (like a CellaVision/PBC crop) with exact masks.

    Parameters
    ----------
    label : str
        Leukocyte class, one of :data:`PBC5_CLASSES` (case-insensitive).
    size : int, default 128
        Side of the square crop in pixels.
    rng : None, int or numpy.random.Generator
        Seed or generator; ``None`` draws fresh entropy (not reproducible).  The function
        never touches global random state; the same int seed gives identical bytes.
    scale : float, default 1.0
        Systematic size factor of all objects (1.0: red cell = 0.27 * size, so a neutrophil
        fills ~47 %, a lymphocyte ~32 % and a monocyte ~59 % of the crop width).
    stain_shift : float or (hue_deg, saturation_factor, density_factor), default 0.0
        Systematic stain shift applied to every stained component.  A float ``s`` means
        ``(20 * s degrees, exp(0.3 * s), exp(0.2 * s))``; ``s = +-1`` is a strong shift
        (e.g. a different lab), ``0`` the nominal MGG look.
    stain_jitter : float, default 1.0
        Multiplier of the random per-image stain variation (0 disables it).
    blur : float or None
        Gaussian blur sigma in pixels; ``None`` draws ``U(0, 0.8) * size / 128``.
    noise : float or None
        Gaussian noise sigma (grey levels) plus a proportional shot-noise term; ``None``
        draws ``U(0.5, 2.5)``; ``0`` disables noise.
    illumination : float, default 1.0
        Strength of the random illumination gradient, vignetting and brightness jitter.
    brightness : float, default 1.0
        Systematic brightness factor.
    rotation : float or None
        Rotation of the leukocyte in radians; ``None`` draws a uniform angle.
    position_jitter : float, default 0.05
        Std of the leukocyte centre offset, as a fraction of ``size``.
    scale_jitter : float, default 0.08
        Std of the random log-size variation of the leukocyte and red cells.
    rbc_density : float, default 1.0
        Red-cell crowding (0: no red cells).
    platelets : float, default 1.0
        Multiplier of the expected number of platelets (small purple distractor blobs, part
        of no mask; ~0.8 per 128-px crop at 1.0; 0: none).
    background : (3,) RGB or None
        Colour of the empty glass; ``None`` draws one near a PBC-like cream.
    ambiguity : float in [0, 1], default 0.0
        Probability that the cell is drawn *ambiguous*: part-way (``t ~ U(0.15, 0.6)``)
        towards its :data:`CONFUSABLE` class in size, nucleus shape and cytoplasm (see
        ``params["mimic"]``, ``params["mimic_t"]``). The label stays the cell's own class;
        at ``t`` near 0.5 even a perfect classifier errs. 0 (the default) draws no random
        numbers for it, so existing seeds give the same images.

    Returns
    -------
    SyntheticCell
        ``image`` (size, size, 3) uint8, ``nucleus`` and ``cell`` (size, size) bool,
        ``label`` str, ``params`` dict.

    Examples
    --------
    >>> c = make_cell("neutrophil", rng=0)
    >>> c.image.shape, c.image.dtype, bool(c.nucleus[c.cell].any())
    ((128, 128, 3), dtype('uint8'), True)
    """
    name = _check_label(label)
    size = int(size)
    if size < 16:
        raise ValueError(f"size must be >= 16, got {size}")
    gen = _as_rng(rng)
    style = _draw_style(gen, stain_shift, stain_jitter, background)
    r_rbc = 0.5 * _RBC_FRACTION_OF_CROP * size * float(scale) * math.exp(
        gen.normal(0.0, 0.5 * scale_jitter))
    diam = CELL_DIAMETER_RBC[name] * math.exp(gen.normal(0.0, scale_jitter))
    if name == "lymphocyte" and gen.random() < 0.15:  # occasional large lymphocyte
        diam *= 1.15
    mimic = None
    if not 0.0 <= float(ambiguity) <= 1.0:
        raise ValueError(f"ambiguity must be in [0, 1], got {ambiguity!r}")
    if ambiguity > 0 and gen.random() < ambiguity:
        other = CONFUSABLE[name]
        t = float(gen.uniform(0.15, 0.6))
        mimic = (other, t)
        diam *= (CELL_DIAMETER_RBC[other] / CELL_DIAMETER_RBC[name]) ** t
    R = 0.5 * diam * 2.0 * r_rbc
    cx = 0.5 * (size - 1) + gen.normal(0.0, position_jitter * size)
    cy = 0.5 * (size - 1) + gen.normal(0.0, position_jitter * size)
    rot = gen.uniform(0, 2 * math.pi) if rotation is None else float(rotation)

    od = np.zeros((size, size, 3), np.float32)
    rbcs = _place_rbcs(gen, (size, size), r_rbc, [(cx, cy, R)], rbc_density * 0.95)
    _paint_rbcs(od, gen, rbcs, style)
    n_plt = _paint_platelets(od, gen, r_rbc, [(cx, cy, R)], platelets, style)
    nuc_w, cell_w, (y0, x0), info = _paint_leukocyte(od, gen, name, cx, cy, R, rot, style,
                                                     mimic=mimic)
    nucleus = np.zeros((size, size), bool)
    cell = np.zeros((size, size), bool)
    nucleus[y0:y0 + nuc_w.shape[0], x0:x0 + nuc_w.shape[1]] = nuc_w
    cell[y0:y0 + cell_w.shape[0], x0:x0 + cell_w.shape[1]] = cell_w
    image = _expose(od, gen, style, blur=blur, noise=noise, illumination=illumination,
                    brightness=brightness, ref_size=size)
    gap = (np.hypot(rbcs[:, 0] - cx, rbcs[:, 1] - cy) - rbcs[:, 2] - R) if len(rbcs) else rbcs
    params = {"radius_px": R, "rbc_radius_px": r_rbc, "centre": (cx, cy), "rotation": rot,
              "n_rbc": len(rbcs), "n_rbc_touching": int(np.sum(gap < 1.5)),
              "n_platelets": n_plt, **info}
    return SyntheticCell(image=image, nucleus=nucleus, cell=cell, label=name, params=params)


def _item_seed(seed: int, label: str, i: int) -> np.random.Generator:
    return np.random.default_rng([int(seed), zlib.crc32(label.encode()), int(i)])


def make_cells(n_per_class: int, *, classes: Sequence[str] = PBC5_CLASSES, size: int = 128,
               seed: int = 0, return_masks: bool = False, **variation: Any):
    """Render a balanced labelled set of single-cell crops.

    Images are ordered class by class (all of ``classes[0]``, then ``classes[1]``, ...).
    Item ``i`` of class ``c`` is seeded by ``(seed, crc32(c), i)``, so it does not depend on
    ``n_per_class`` or on the other classes requested.

    Parameters
    ----------
    n_per_class : int
        Number of crops per class.
    classes : sequence of str, default PBC5_CLASSES
        Class names (each one of :data:`PBC5_CLASSES`); ``y`` indexes into this tuple.
    size : int, default 128
        Crop side in pixels.
    seed : int, default 0
        Base seed.
    return_masks : bool, default False
        Also return the nucleus and cell masks.
    **variation
        Forwarded to :func:`make_cell` (``scale``, ``stain_shift``, ``blur``, ``noise``, ...).

    Returns
    -------
    images : ndarray, shape (N, size, size, 3), dtype uint8
        ``N = n_per_class * len(classes)``.
    y : ndarray, shape (N,), dtype int64
        Index of each image's class in ``classes``.
    classes : tuple of str
        The class names.
    nucleus, cell : ndarray, shape (N, size, size), dtype bool
        Only when ``return_masks=True`` (then a 5-tuple is returned).
    """
    classes = tuple(_check_label(c) for c in classes)
    n = int(n_per_class) * len(classes)
    images = np.zeros((n, size, size, 3), np.uint8)
    nuc = np.zeros((n, size, size), bool) if return_masks else None
    cel = np.zeros((n, size, size), bool) if return_masks else None
    y = np.zeros(n, np.int64)
    k = 0
    for ci, c in enumerate(classes):
        for i in range(int(n_per_class)):
            cellobj = make_cell(c, size=size, rng=_item_seed(seed, c, i), **variation)
            images[k] = cellobj.image
            y[k] = ci
            if return_masks:
                nuc[k] = cellobj.nucleus  # type: ignore[index]
                cel[k] = cellobj.cell  # type: ignore[index]
            k += 1
    if return_masks:
        return images, y, classes, nuc, cel
    return images, y, classes


def make_smear(*, shape: tuple[int, int] = (480, 640), n_leukocytes: int | tuple[int, int] = (1, 3),
               rng: None | int | np.random.Generator = None, seed: int | None = None,
               classes: Sequence[str] = PBC5_CLASSES, labels: Sequence[str] | None = None,
               rbc_diameter: float | None = None, scale: float = 1.0,
               stain_shift: float | Sequence[float] = 0.0, stain_jitter: float = 1.0,
               blur: float | None = None, noise: float | None = None,
               illumination: float = 1.0, brightness: float = 1.0, rbc_density: float = 1.1,
               platelets: float = 1.0, background: Sequence[float] | None = None
               ) -> SyntheticField:
    """Render a blood-smear field with several non-overlapping leukocytes and many red cells.

    Parameters
    ----------
    shape : (H, W), default (480, 640)
        Image shape.
    n_leukocytes : int or (low, high), default (1, 3)
        Number of leukocytes, or an inclusive range to draw it from.  If a leukocyte cannot be
        placed without overlapping another, fewer are drawn (at least one always is).
    rng, seed : None, int or Generator
        Randomness (``seed`` is an alias of ``rng``; give at most one).
    classes : sequence of str, default PBC5_CLASSES
        Classes to draw leukocyte labels from (uniformly).
    labels : sequence of str, optional
        Explicit leukocyte classes (overrides ``n_leukocytes`` and ``classes``).
    rbc_diameter : float, optional
        Red-cell diameter in pixels; default ``min(H, W) / 7 * scale``.
    scale, stain_shift, stain_jitter, blur, noise, illumination, brightness, rbc_density,
    platelets, background
        As in :func:`make_cell` (``blur=None`` draws ``U(0, 1.2)`` px here).

    Returns
    -------
    SyntheticField
        ``image`` (H, W, 3) uint8; ``nucleus``, ``cell`` (H, W) bool unions;
        ``instances`` (H, W) int32; ``boxes`` (n, 4) int64 half-open ``xmin, ymin, xmax,
        ymax``; ``labels`` list of str; ``rbc_boxes`` (m, 4) int64.
    """
    if seed is not None and rng is not None:
        raise ValueError("give either rng or seed, not both")
    gen = _as_rng(seed if seed is not None else rng)
    h, w = int(shape[0]), int(shape[1])
    style = _draw_style(gen, stain_shift, stain_jitter, background)
    if labels is None:
        pool = tuple(_check_label(c) for c in classes)
        if np.isscalar(n_leukocytes):
            n = int(n_leukocytes)  # type: ignore[arg-type]
        else:
            lo, hi = n_leukocytes  # type: ignore[misc]
            n = int(gen.integers(int(lo), int(hi) + 1))
        labels = [pool[int(gen.integers(len(pool)))] for _ in range(max(n, 1))]
    else:
        labels = [_check_label(c) for c in labels]
    d_rbc = (min(h, w) / 7.0 * float(scale)) if rbc_diameter is None else float(rbc_diameter)
    r_rbc = 0.5 * d_rbc
    placed: list[tuple[float, float, float, str]] = []
    for lab in labels:
        R = r_rbc * CELL_DIAMETER_RBC[lab] * math.exp(gen.normal(0.0, 0.08))
        ok = False
        for _ in range(200):
            m = 1.15 * R
            if 2 * m >= min(h, w):
                break
            cx, cy = gen.uniform(m, w - m), gen.uniform(m, h - m)
            if all(math.hypot(cx - px, cy - py) > 1.2 * (R + pr) + 4 for px, py, pr, _ in placed):
                ok = True
                break
        if ok:
            placed.append((cx, cy, R, lab))
        elif not placed:
            placed.append((0.5 * (w - 1), 0.5 * (h - 1), min(R, 0.4 * min(h, w)), lab))
    od = np.zeros((h, w, 3), np.float32)
    rbcs = _place_rbcs(gen, (h, w), r_rbc, [(x, y, r) for x, y, r, _ in placed], rbc_density)
    _paint_rbcs(od, gen, rbcs, style)
    _paint_platelets(od, gen, r_rbc, [(x, y, r) for x, y, r, _ in placed], platelets, style)
    nucleus = np.zeros((h, w), bool)
    cell = np.zeros((h, w), bool)
    instances = np.zeros((h, w), np.int32)
    boxes = []
    for i, (cx, cy, R, lab) in enumerate(placed):
        nuc_w, cell_w, (y0, x0), _ = _paint_leukocyte(od, gen, lab, cx, cy, R,
                                                      gen.uniform(0, 2 * math.pi), style)
        sl = (slice(y0, y0 + cell_w.shape[0]), slice(x0, x0 + cell_w.shape[1]))
        nucleus[sl] |= nuc_w
        cell[sl] |= cell_w
        instances[sl][cell_w] = i + 1
        ys, xs = np.nonzero(cell_w)
        boxes.append((x0 + xs.min(), y0 + ys.min(), x0 + xs.max() + 1, y0 + ys.max() + 1))
    image = _expose(od, gen, style, blur=(gen.uniform(0.0, 1.2) if blur is None else blur),
                    noise=noise, illumination=illumination, brightness=brightness,
                    ref_size=min(h, w))
    rb = np.zeros((len(rbcs), 4), np.int64)
    if len(rbcs):
        rb[:, 0] = np.clip(np.floor(rbcs[:, 0] - rbcs[:, 2]), 0, w)
        rb[:, 1] = np.clip(np.floor(rbcs[:, 1] - rbcs[:, 2]), 0, h)
        rb[:, 2] = np.clip(np.ceil(rbcs[:, 0] + rbcs[:, 2]), 0, w)
        rb[:, 3] = np.clip(np.ceil(rbcs[:, 1] + rbcs[:, 2]), 0, h)
        rb = rb[(rb[:, 2] - rb[:, 0] > 2) & (rb[:, 3] - rb[:, 1] > 2)]
    return SyntheticField(image=image, nucleus=nucleus, cell=cell, instances=instances,
                          boxes=np.asarray(boxes, np.int64).reshape(-1, 4),
                          labels=[p[3] for p in placed], rbc_boxes=rb)
