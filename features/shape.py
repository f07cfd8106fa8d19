"""Scale-free shape: the geometry a haematologist reads, without the microscope's pixel size.

Another laboratory's camera, objective and crop change every size in pixels (jtsc_seg's cells
are about half as wide in pixels as PBC's), so absolute areas, perimeters and axis lengths in
pixels do not carry over between labs. This family keeps the *dimensionless* part of
:func:`features.geometry_features` -- shape descriptors (circularity, eccentricity, solidity,
convexity, extent), the nucleus-to-cell area and diameter ratios (the N:C ratio), the
nucleus's offset in cell radii, lobe and component counts, the thickness ratios, convexity
defects, log Hu moments, Fourier descriptors and Zernike magnitudes -- and adds two more
ratios: the nucleus-to-cell perimeter ratio and the cytoplasm's share of the cell's
equivalent radius (the width of the cytoplasm rim relative to the cell). Every value is
invariant to the image's scale; the names carry a ``shape_`` prefix so that the family can be
combined with ``geometry``.
"""

from __future__ import annotations

import numpy as np

from features._common import CellCrop, crop_cell, safe_div
from features.geometry import geometry_features
from segmentation.result import Segmentation

__all__ = ["describe_shape", "shape_features", "ABSOLUTE_GEOMETRY"]

#: Geometry features with a physical dimension (pixels or pixels squared), left out here.
ABSOLUTE_GEOMETRY = frozenset(
    [f"{region}_{key}" for region in ("cell", "nucleus")
     for key in ("area", "perimeter", "equivalent_diameter", "major_axis", "minor_axis")]
    + ["cytoplasm_area"])


def shape_features(image: np.ndarray, seg: Segmentation, *,
                   _crop: CellCrop | None = None) -> dict[str, float]:
    """Scale-invariant shape features of the cell and its nucleus.

    Parameters
    ----------
    image : ndarray of uint8, shape (H, W, 3)
        RGB image (only its shape is used).
    seg : Segmentation
        Masks of shape (H, W).

    Returns
    -------
    dict of str to float
        ``shape_<name>`` for every dimensionless key of :func:`features.geometry_features`
        (all but :data:`ABSOLUTE_GEOMETRY`), then ``shape_nucleus_cell_perimeter_ratio`` and
        ``shape_cytoplasm_rim`` (``1 - nucleus/cell diameter ratio``, 0 without a nucleus).
        Zeros for missing regions.
    """
    crop = _crop if _crop is not None else crop_cell(image, seg)
    geo = geometry_features(image, seg, _crop=crop)
    out = {f"shape_{k}": v for k, v in geo.items() if k not in ABSOLUTE_GEOMETRY}
    out["shape_nucleus_cell_perimeter_ratio"] = safe_div(geo["nucleus_perimeter"],
                                                         geo["cell_perimeter"])
    ratio = geo["nucleus_cell_diameter_ratio"]
    out["shape_cytoplasm_rim"] = 1.0 - ratio if ratio > 0 else 0.0
    return out



def describe_shape(name: str) -> tuple[str, str] | None:
    """``(unit, meaning)`` of a ``shape_*`` feature (None for another family's name).

    Every shape feature is the geometry feature of the same name without the prefix
    (:func:`features.geometry.describe_geometry`), which is dimensionless, or one of the two
    ratios this family adds.
    """
    from features.geometry import describe_geometry

    if not name.startswith("shape_"):
        return None
    extra = {"shape_nucleus_cell_perimeter_ratio": "nucleus perimeter / cell perimeter",
             "shape_cytoplasm_rim_fraction": "cytoplasm rim width as a fraction of the cell's "
                                             "equivalent radius"}
    if name in extra:
        return "1", extra[name]
    found = describe_geometry(name[len("shape_"):], None)
    if found is None:
        return "1", f"scale-free shape measure {name[len('shape_'):].replace('_', ' ')}"
    unit = found[0] if found[0] and not found[0].startswith(("px", "um")) else "1"
    return unit, f"as geometry's {name[len('shape_'):]} (scale-free): {found[1]}"
