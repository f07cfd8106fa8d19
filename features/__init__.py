"""Hand-crafted features of segmented leukocytes.

Each family is a plain function ``(image, seg) -> dict[str, float]`` with stable names;
:class:`FeatureExtractor` combines them into a scikit-learn transformer over
``(image, Segmentation)`` pairs. This package knows :class:`segmentation.Segmentation` and
nothing else of the project.
"""

from features._common import flag_features
from features.celltexture import cell_texture_features
from features.colour import colour_features, granularity_features
from features.density import density_features
from features.extractor import DEFAULT_FAMILIES, FAMILIES, FLAG_NAMES, FeatureExtractor
from features.geometry import count_lobes, geometry_features
from features.ldp import ldp_codes, ldp_features
from features.relcolour import relative_colour_features
from features.shape import shape_features
from features.texture import glcm_features, lbp_features, texture_features
from wbc_classic import __version__

__all__ = [
    "__version__",
    "DEFAULT_FAMILIES", "FAMILIES", "FLAG_NAMES", "FeatureExtractor", "cell_texture_features",
    "colour_features",
    "count_lobes", "density_features",
    "flag_features", "geometry_features", "glcm_features", "granularity_features",
    "lbp_features", "ldp_codes", "ldp_features", "relative_colour_features", "shape_features",
    "texture_features",
]
