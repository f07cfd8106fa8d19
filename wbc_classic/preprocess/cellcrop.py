"""Cell-centred crops of one physical size, with the surroundings blanked out.

Single-cell images from different laboratories differ in crop convention (how much field
around the cell, where the cell sits), pixel scale, and in what surrounds the leukocyte (red
cells of a different hue, platelets, a neighbour). A classifier that sees the whole crop learns
those surroundings too: a CNN trained on PBC calls many CellaVision-blog lymphocytes
"eosinophil" because their red cells are pinker. :func:`cell_crop` removes these cues: it
centres a square of a fixed size *in micrometres* on the segmented leukocyte and replaces every
pixel outside the (slightly dilated) leukocyte with the image's own background colour.

It is a plain function on arrays; the deep family uses it as its image reader
(``deep.train --crop cell``) and stores the settings in the checkpoint so prediction applies
the same crop.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
from scipy import ndimage as ndi

__all__ = ["CELL_CROP_VERSION", "CellCropper", "cell_crop"]

#: bumped whenever :func:`cell_crop` changes its output (part of the deep image-cache key)
CELL_CROP_VERSION = 3  # unchanged output: pixels= only adds a source


@dataclass(frozen=True)
class CellCropper:
    """Settings of :func:`cell_crop`, as a small picklable/JSON-able callable.

    Parameters
    ----------
    side_um : float
        Side of the square crop in micrometres (25 um holds the largest monocytes).
    um_per_pixel : float or None
        Pixel scale of the input images; None estimates it per image from the red cells
        (:func:`wbc_classic.preprocess.scale.estimate_scale`, falling back to
        ``default_um_per_pixel``).
    default_um_per_pixel : float
        Scale used when ``um_per_pixel`` is None and no red cell can be measured.
    blank_outside : bool
        Replace pixels outside the dilated leukocyte mask with the background colour.
    dilate_um : float
        Dilation of the leukocyte mask before blanking, so the blurred cell rim stays.
    side_cells : float or None
        When set, the side is this many times the leukocyte's own equivalent diameter
        instead of ``side_um``: every cell then fills the same share of the crop, so a model
        sees shape, chromatin and colour but not absolute size (which differs between
        laboratories' populations, e.g. reactive lymphocytes).
    """

    side_um: float = 25.0
    um_per_pixel: float | None = 0.1
    default_um_per_pixel: float = 0.1
    blank_outside: bool = True
    dilate_um: float = 0.5
    side_cells: float | None = None

    def __call__(self, image: np.ndarray, segmentation=None, *,
                 pixels: np.ndarray | None = None) -> np.ndarray:
        return cell_crop(image, segmentation, pixels=pixels, **asdict(self))

    def to_dict(self) -> dict:
        """Plain-dict form (for checkpoints and cache keys)."""
        return asdict(self)


def _window_1d(centre: float, side: int, n: int) -> tuple[slice, slice]:
    """Source slice in ``[0, n)`` of a ``side``-long window centred at ``centre``, and where
    that part lands in the output window."""
    start = int(round(centre - side / 2.0))
    lo, hi = max(start, 0), min(start + side, n)
    hi = max(hi, lo)
    return slice(lo, hi), slice(lo - start, hi - start)


def cell_crop(image: np.ndarray, segmentation=None, *, pixels: np.ndarray | None = None,
              side_um: float = 25.0,
              um_per_pixel: float | None = 0.1, default_um_per_pixel: float = 0.1,
              blank_outside: bool = True, dilate_um: float = 0.5,
              side_cells: float | None = None) -> np.ndarray:
    """Square crop of ``side_um`` micrometres centred on the leukocyte, surroundings blanked.

    Parameters
    ----------
    image : ndarray, shape (H, W, 3), uint8
        RGB single-cell image (one leukocyte near the centre).
    segmentation : segmentation.Segmentation, optional
        Its ``cell`` mask; computed with :func:`segmentation.segment` when None.
    pixels : ndarray, shape (H, W, 3), uint8, optional
        The image the crop is cut from, e.g. a stain-normalised copy of ``image``; the
        segmentation, scale and background always come from ``image`` itself.
    side_um, um_per_pixel, default_um_per_pixel, blank_outside, dilate_um, side_cells
        See :class:`CellCropper`.

    Returns
    -------
    ndarray, shape (S, S, 3), uint8
        ``S = round(side_um / scale)`` pixels at the image's own scale (or ``side_cells``
        cell diameters), to be resized afterwards.
        Parts of the window outside the image are filled with the background colour. When no
        leukocyte is found the window is centred on the image and nothing is blanked.
    """
    from segmentation.color import background_light
    from segmentation.pipeline import as_rgb_uint8, segment

    from .scale import estimate_scale

    rgb = as_rgb_uint8(image)
    if side_um <= 0 or dilate_um < 0:
        raise ValueError(f"side_um must be > 0 and dilate_um >= 0, got {side_um}, {dilate_um}")
    if segmentation is None:
        segmentation = segment(rgb, keep_stages=False)
    cell = segmentation.cell if segmentation.found and segmentation.cell.any() else None
    if um_per_pixel is None:
        est = estimate_scale(rgb, cell_mask=cell, default=default_um_per_pixel)
        # the leukocyte ruler would erase the size differences between classes
        scale = est.um_per_pixel if est.method == "red-cells" else default_um_per_pixel
    else:
        scale = float(um_per_pixel)
    if not np.isfinite(scale) or scale <= 0:
        raise ValueError(f"um_per_pixel must be a positive number, got {scale!r}")
    if side_cells is not None and cell is not None:
        if side_cells <= 0:
            raise ValueError(f"side_cells must be > 0, got {side_cells}")
        side = max(int(round(side_cells * np.sqrt(4.0 * np.count_nonzero(cell) / np.pi))), 8)
    else:
        side = max(int(round(side_um / scale)), 8)
    h, w = rgb.shape[:2]
    if cell is not None:
        centre = tuple(float(v) for v in ndi.center_of_mass(cell))
    else:
        centre = ((h - 1) / 2.0, (w - 1) / 2.0)  # same convention as center_of_mass
    src = rgb if pixels is None else as_rgb_uint8(pixels)
    if src.shape != rgb.shape:
        raise ValueError(f"pixels shape {src.shape} != image shape {rgb.shape}")
    fill = np.round(background_light(src, exact=True, white=255.0)).astype(np.uint8)
    (src_r, dst_r), (src_c, dst_c) = _window_1d(centre[0], side, h), _window_1d(centre[1], side, w)
    out = np.empty((side, side, 3), np.uint8)
    out[:] = fill
    out[dst_r, dst_c] = src[src_r, src_c]
    if blank_outside and cell is not None:
        keep = np.zeros((side, side), bool)
        keep[dst_r, dst_c] = cell[src_r, src_c]
        radius = int(round(dilate_um / scale))
        if radius > 0:
            keep = ndi.binary_dilation(keep, iterations=radius)
        out[~keep] = fill
    return out


def leukocyte_found(image: np.ndarray) -> tuple[bool, str]:
    """Whether the classical segmenter finds a leukocyte in a single-cell image.

    The same decision as ``wbc-classic predict``'s ``no_cell`` status, for callers that may
    not import :mod:`segmentation` themselves (``deep.predict``).

    Parameters
    ----------
    image : ndarray, shape (H, W, 3), uint8

    Returns
    -------
    found : bool
    message : str
        Why not, when not found (``"no leukocyte found: ..."``); ``""`` otherwise.
    """
    from segmentation.pipeline import as_rgb_uint8, segment

    seg = segment(as_rgb_uint8(image), keep_stages=False)
    return bool(seg.found), ("" if seg.found else str(seg.message))
