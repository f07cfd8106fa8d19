"""Classical leukocyte segmentation: colour spaces, Otsu, morphology, marker-controlled watershed.

Pure functions over NumPy arrays; nothing here reads files.

>>> from segmentation import segment
>>> seg = segment(rgb_uint8_image)          # doctest: +SKIP
>>> seg.nucleus, seg.cell, seg.stages["otsu_nucleus"]   # doctest: +SKIP
"""

from segmentation.color import (
    NUCLEUS_CHANNELS,
    blue_green_chromaticity,
    blue_minus_red,
    hsi_saturation,
    rgb_to_cmyk,
    rgb_to_hsi,
    rgb_to_lab,
)
from segmentation.field import (
    estimate_rbc_radius,
    granulometry_radius,
    nucleus_groups,
    segment_field,
)
from segmentation.params import SegmenterParams
from segmentation.pipeline import as_rgb_uint8, overlay, segment
from segmentation.plotting import STAGE_TITLES, plot_stages
from segmentation.result import FieldCell, Segmentation
from segmentation.threshold import multi_otsu_thresholds, otsu_separability, otsu_threshold
from wbc_classic import __version__

__all__ = [
    "__version__",
    "FieldCell",
    "NUCLEUS_CHANNELS",
    "STAGE_TITLES",
    "SegmenterParams",
    "Segmentation",
    "as_rgb_uint8",
    "blue_green_chromaticity",
    "blue_minus_red",
    "estimate_rbc_radius",
    "granulometry_radius",
    "hsi_saturation",
    "mask_to_labels",
    "multi_otsu_thresholds",
    "nucleus_groups",
    "otsu_separability",
    "otsu_threshold",
    "overlay",
    "plot_stages",
    "rgb_to_cmyk",
    "rgb_to_hsi",
    "rgb_to_lab",
    "segment",
    "segment_field",
]


def mask_to_labels(seg: Segmentation):
    """3-level ``uint8`` mask of a segmentation: 255 nucleus, 128 cytoplasm, 0 other."""
    import numpy as np

    out = np.zeros(seg.shape, dtype=np.uint8)
    out[seg.cell] = 128
    out[seg.nucleus] = 255
    return out
