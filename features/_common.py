"""Shared helpers for the feature families: input checks, cropping, regions, safe statistics.

Private module: the public surface is in the family modules and :mod:`features.extractor`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import cv2
import numpy as np

from segmentation.result import Segmentation

__all__ = ["CellCrop", "crop_cell", "check_inputs", "flag_features", "erode", "safe_div",
           "masked_histogram", "CROP_MARGIN"]

#: Margin, in pixels, kept around the cell's bounding box when cropping. Large enough for the
#: widest neighbourhood any family looks at (LBP radius 2, Kirsch 3x3, granulometry disks).
CROP_MARGIN = 8


def check_inputs(image: np.ndarray, seg: Segmentation) -> None:
    """Raise ``ValueError`` unless ``image`` is RGB uint8 (H, W, 3) matching ``seg``'s masks."""
    image = np.asarray(image)
    if image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"image must have shape (H, W, 3), got {image.shape}")
    if image.dtype != np.uint8:
        raise ValueError(f"image must be uint8 RGB, got dtype {image.dtype}")
    if tuple(seg.cell.shape) != tuple(image.shape[:2]) or \
            tuple(seg.nucleus.shape) != tuple(image.shape[:2]):
        raise ValueError(f"segmentation masks {seg.cell.shape}/{seg.nucleus.shape} do not match "
                         f"image {image.shape[:2]}")


@dataclass(frozen=True)
class CellCrop:
    """An image and its masks cut to the cell's bounding box plus a margin.

    Attributes
    ----------
    rgb : ndarray of uint8, shape (h, w, 3)
    grey : ndarray of uint8, shape (h, w)
        Luminance (ITU-R BT.601, as ``cv2.COLOR_RGB2GRAY``).
    nucleus, cytoplasm, cell : ndarray of bool, shape (h, w)
        ``cell`` is ``nucleus | cytoplasm`` restricted to the segmented cell.
    found : bool
        ``seg.found`` and a non-empty cell mask.
    """

    rgb: np.ndarray
    grey: np.ndarray
    nucleus: np.ndarray
    cytoplasm: np.ndarray
    cell: np.ndarray
    found: bool
    _eroded: dict = field(default_factory=dict, init=False, repr=False, compare=False)

    def region(self, name: str) -> np.ndarray:
        """Mask of region ``name`` (``"nucleus"``, ``"cytoplasm"`` or ``"cell"``)."""
        return getattr(self, name)

    def eroded(self, name: str, radius: int) -> np.ndarray:
        """``erode(self.region(name), radius)``, computed once per crop (several families
        histogram over the same eroded regions); read-only."""
        key = (name, int(radius))
        if key not in self._eroded:
            self._eroded[key] = erode(self.region(name), int(radius))
        return self._eroded[key]

    def shared(self, key: str, compute: Callable[[], Any]) -> Any:
        """``compute()``, called once per crop and then returned from memory: whole-image
        references that several families measure (the background light, the red cells'
        OD) are computed once per cell."""
        memo_key = ("shared", key)
        if memo_key not in self._eroded:
            self._eroded[memo_key] = compute()
        return self._eroded[memo_key]


def crop_cell(image: np.ndarray, seg: Segmentation, margin: int = CROP_MARGIN) -> CellCrop:
    """Cut ``image`` and ``seg`` to the cell's bounding box grown by ``margin`` pixels.

    Every family works on the crop: features do not depend on how much background surrounds
    the cell, and the cost does not grow with the field of view. With ``found=False`` or an
    empty cell mask, a tiny blank crop is returned with ``found=False``.
    """
    check_inputs(image, seg)
    bbox = seg.bbox if seg.found else None
    if bbox is None:
        blank = np.zeros((1, 1), dtype=bool)
        return CellCrop(rgb=np.zeros((1, 1, 3), np.uint8), grey=np.zeros((1, 1), np.uint8),
                        nucleus=blank, cytoplasm=blank, cell=blank, found=False)
    r0, c0, r1, c1 = bbox
    h, w = seg.cell.shape
    r0, c0 = max(r0 - margin, 0), max(c0 - margin, 0)
    r1, c1 = min(r1 + margin, h), min(c1 + margin, w)
    rgb = np.ascontiguousarray(image[r0:r1, c0:c1])
    cell = np.ascontiguousarray(seg.cell[r0:r1, c0:c1], dtype=bool)
    nucleus = np.ascontiguousarray(seg.nucleus[r0:r1, c0:c1], dtype=bool) & cell
    grey = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
    return CellCrop(rgb=rgb, grey=grey, nucleus=nucleus, cytoplasm=cell & ~nucleus, cell=cell,
                    found=True)


def flag_features(image: np.ndarray, seg: Segmentation) -> dict[str, float]:
    """Flags telling the classifier which regions were missing (1.0) or present (0.0).

    Returns
    -------
    dict of str to float
        ``segmentation_found`` (1.0 when a cell was found), ``nucleus_empty``,
        ``cytoplasm_empty``.
    """
    check_inputs(image, seg)
    found = bool(seg.found) and bool(seg.cell.any())
    nucleus_empty = not (found and bool((seg.nucleus & seg.cell).any()))
    cyto_empty = not (found and bool((seg.cell & ~seg.nucleus).any()))
    return {"segmentation_found": float(found), "nucleus_empty": float(nucleus_empty),
            "cytoplasm_empty": float(cyto_empty)}


def erode(mask: np.ndarray, radius: int) -> np.ndarray:
    """Erode a bool mask by a (2r+1)x(2r+1) square, treating outside-the-array as background.

    Pixels of the result have their whole square neighbourhood inside ``mask``, so a local
    operator of that radius evaluated there only sees pixels of ``mask``.
    """
    if radius <= 0:
        return mask.copy()
    kernel = np.ones((2 * radius + 1, 2 * radius + 1), np.uint8)
    out = cv2.erode(mask.astype(np.uint8), kernel, borderType=cv2.BORDER_CONSTANT,
                    borderValue=0)
    return out.astype(bool)


def safe_div(a: float, b: float) -> float:
    """``a / b`` as float, or 0.0 when ``b`` is zero or the result is not finite."""
    if b == 0:
        return 0.0
    out = float(a) / float(b)
    return out if np.isfinite(out) else 0.0


def masked_histogram(values: np.ndarray, mask: np.ndarray, n_bins: int) -> np.ndarray:
    """Normalised histogram of integer ``values`` in ``[0, n_bins)`` over ``mask``.

    Returns float64 (n_bins,), summing to 1, or all zeros when ``mask`` is empty.
    """
    v = values[mask]
    if v.size == 0:
        return np.zeros(n_bins)
    hist = np.bincount(v.astype(np.intp, copy=False), minlength=n_bins)[:n_bins]
    return hist / v.size


FLAG_MEANING = {
    "segmentation_found": "1 when the segmenter found a leukocyte, else 0 (all features 0)",
    "nucleus_empty": "1 when the nucleus mask is empty (its features are 0)",
    "cytoplasm_empty": "1 when the cytoplasm mask is empty (its features are 0)",
}
