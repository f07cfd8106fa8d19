"""Result types returned by the segmenter.

They hold arrays only: nothing here knows about files, features or classifiers.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

__all__ = ["Segmentation", "FieldCell"]


@dataclass(frozen=True)
class Segmentation:
    """One leukocyte's masks in the coordinates of the image that was segmented.

    Attributes
    ----------
    nucleus : ndarray of bool, shape (H, W)
        Nuclear pixels.
    cell : ndarray of bool, shape (H, W)
        Whole-cell pixels (nucleus + cytoplasm); always a superset of ``nucleus``.
    found : bool
        False when no leukocyte was found; the masks are then all False.
    stages : dict of str to ndarray
        Named intermediate images, in the order they were produced (insertion order),
        for teaching and debugging. Each is (H, W) float/bool/int or (H, W, 3) uint8.
    scale : float
        Length scale the parameters were derived from, in pixels (typically the
        estimated leukocyte radius); NaN when nothing was found.
    message : str
        Human-readable note, e.g. why nothing was found.
    """

    nucleus: np.ndarray
    cell: np.ndarray
    found: bool = True
    stages: dict[str, np.ndarray] = field(default_factory=dict, repr=False, compare=False)
    scale: float = float("nan")
    message: str = ""

    @property
    def cytoplasm(self) -> np.ndarray:
        """Cytoplasm mask, ``cell & ~nucleus``, bool of shape (H, W)."""
        return self.cell & ~self.nucleus

    @property
    def shape(self) -> tuple[int, int]:
        """Height and width of the masks."""
        return self.cell.shape

    @property
    def bbox(self) -> tuple[int, int, int, int] | None:
        """Bounding box of the cell as ``(row0, col0, row1, col1)``, end-exclusive, or None."""
        if not self.found or not self.cell.any():
            return None
        rows = np.flatnonzero(self.cell.any(axis=1))
        cols = np.flatnonzero(self.cell.any(axis=0))
        return int(rows[0]), int(cols[0]), int(rows[-1]) + 1, int(cols[-1]) + 1

    @classmethod
    def empty(cls, shape: tuple[int, int], message: str = "no leukocyte found",
              stages: dict[str, np.ndarray] | None = None) -> Segmentation:
        """An empty result (``found=False``) for an image of the given (H, W)."""
        blank = np.zeros(shape, dtype=bool)
        return cls(nucleus=blank, cell=blank.copy(), found=False,
                   stages=dict(stages or {}), message=message)


@dataclass(frozen=True)
class FieldCell:
    """One leukocyte found in a smear field.

    Attributes
    ----------
    bbox : tuple of int
        ``(row0, col0, row1, col1)`` in field coordinates, end-exclusive, padded by a margin.
    crop : ndarray of uint8, shape (h, w, 3)
        The field cut to ``bbox``.
    segmentation : Segmentation
        Masks in crop coordinates (shape (h, w)), restricted to this leukocyte.
    touches_border : bool
        True when the cell is cut by the field's edge (its masks are then incomplete).
    """

    bbox: tuple[int, int, int, int]
    crop: np.ndarray
    segmentation: Segmentation
    touches_border: bool = False
