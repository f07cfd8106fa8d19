"""The lab-transferable families: scale-free shape, smear-relative colour, cell-frame texture.

Each family claims an invariance (to the pixel size, to the lamp and white balance, to the
strength of the stain); these tests render a synthetic cell with exact masks, apply that
change, and check the features stay put -- and that they do move when the cell changes.
"""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from features import FAMILIES, FeatureExtractor
from features.celltexture import cell_texture_features
from features.relcolour import relative_colour_features, unmix
from features.shape import ABSOLUTE_GEOMETRY, shape_features
from segmentation.color import background_light
from segmentation.result import Segmentation
from wbc_classic.data.synthetic import make_cell


def _cell(label="neutrophil", seed=0, size=160):
    c = make_cell(label, size=size, rng=seed, blur=0.5, noise=0.0)
    return c.image, Segmentation(nucleus=c.nucleus, cell=c.cell)


def _resized(image, seg, factor):
    h, w = image.shape[:2]
    shape = (int(round(w * factor)), int(round(h * factor)))
    im = cv2.resize(image, shape, interpolation=cv2.INTER_LINEAR if factor > 1
                    else cv2.INTER_AREA)
    masks = [cv2.resize(m.astype(np.uint8), shape, interpolation=cv2.INTER_NEAREST) > 0
             for m in (seg.nucleus, seg.cell)]
    return im, Segmentation(nucleus=masks[0] & masks[1], cell=masks[1])


def _stain_strength(image, k):
    """The same slide with every optical density multiplied by ``k`` (a stronger stain)."""
    light = background_light(image)
    i = (image.astype(np.float64) + 0.5) / 255.0 / light
    return np.clip(255.0 * light * np.minimum(i, 1.0) ** k, 0, 255).round().astype(np.uint8)


def _lamp(image, gains):
    """The same slide under a lamp of another colour / a camera with another white balance."""
    return np.clip(image.astype(np.float64) * np.asarray(gains), 0, 255).round().astype(
        np.uint8)


def test_new_families_are_registered_and_finite():
    for fam in ("shape", "relcolour", "celltexture"):
        assert fam in FAMILIES
    image, seg = _cell()
    fx = FeatureExtractor(families=("shape", "relcolour", "celltexture"))
    X = fx.fit_transform([(image, seg), (image, Segmentation.empty(image.shape[:2]))])
    assert X.shape == (2, len(fx.get_feature_names_out()))
    assert np.isfinite(X).all()
    assert not X[1, 3:].any()  # nothing found: every family is zeros
    assert len(set(fx.get_feature_names_out())) == X.shape[1]  # no name collides


def test_shape_has_no_absolute_size_and_ignores_the_pixel_size():
    image, seg = _cell("monocyte", seed=3)
    a = shape_features(image, seg)
    assert not {k.removeprefix("shape_") for k in a} & ABSOLUTE_GEOMETRY
    b = shape_features(*_resized(image, seg, 0.5))
    for key in ("shape_nucleus_cell_area_ratio", "shape_nucleus_cell_diameter_ratio",
                "shape_cell_circularity", "shape_nucleus_solidity", "shape_cytoplasm_rim",
                "shape_nucleus_cell_perimeter_ratio", "shape_nucleus_thickness"):
        assert b[key] == pytest.approx(a[key], rel=0.08, abs=0.02), key
    assert b["shape_nucleus_lobes"] == a["shape_nucleus_lobes"]


def test_shape_tells_a_lymphocyte_from_a_neutrophil():
    lym = shape_features(*_cell("lymphocyte", seed=1))
    neu = shape_features(*_cell("neutrophil", seed=1))
    assert lym["shape_nucleus_cell_area_ratio"] > neu["shape_nucleus_cell_area_ratio"]
    assert lym["shape_nucleus_solidity"] > neu["shape_nucleus_solidity"]


def test_unmix_recovers_known_amounts():
    stains = np.array([[0.6, 0.8, 0.2], [0.1, 0.5, 0.4]])
    amounts = np.array([[1.0, 0.0], [0.3, 2.0], [0.0, 0.5]])
    got, res = unmix(amounts @ stains + 0.0, stains)
    np.testing.assert_allclose(got, amounts, atol=1e-12)
    np.testing.assert_allclose(res, 0.0, atol=1e-12)
    _, res = unmix(np.array([[0.0, 0.0, 1.0]]), stains)
    assert res[0] > 0.1  # a colour neither stain explains


@pytest.mark.parametrize("change", ["lamp", "stain"])
def test_relative_colour_cancels_lamp_and_stain_strength(change):
    image, seg = _cell("eosinophil", seed=2)
    other = _lamp(image, (0.85, 0.95, 0.8)) if change == "lamp" else \
        _stain_strength(image, 1.3)
    a = relative_colour_features(image, seg)
    b = relative_colour_features(other, seg)
    assert a["rc_rbc_missing"] == b["rc_rbc_missing"] == 0.0
    ratios = ("rc_nc_amount", "rc_cos_cn", "rc_cos_cr", "rc_cos_nr", "rc_nucleus_rbc_amount",
              "rc_cyto_rbc_amount", "rc_cyto_nuclear", "rc_cyto_red", "rc_cyto_red_dominant")
    for key in ratios:
        assert b[key] == pytest.approx(a[key], rel=0.1, abs=0.03), key


def test_relative_colour_sees_red_granules():
    # eosinophil granules take the red-cell stain; a lymphocyte's cytoplasm does not
    eos = relative_colour_features(*_cell("eosinophil", seed=4))
    lym = relative_colour_features(*_cell("lymphocyte", seed=4))
    assert eos["rc_cyto_red_dominant"] > lym["rc_cyto_red_dominant"]


def test_relative_colour_without_red_cells_says_so():
    image, seg = _cell("lymphocyte", seed=5)
    # the same cell on an empty background: everything outside the cell is the lamp
    bare = np.where(seg.cell[..., None], image, np.uint8(235)).astype(np.uint8)
    out = relative_colour_features(bare, seg)
    assert out["rc_rbc_missing"] == 1.0
    assert out["rc_cyto_red"] == 0.0 and out["rc_nc_amount"] > 0


def test_cell_texture_ignores_stain_strength_and_roughly_pixel_size():
    image, seg = _cell("neutrophil", seed=6)
    a = cell_texture_features(image, seg)
    keys = [k for k in a if "_lbp_" in k or "_gran_" in k or k.endswith("homogeneity")
            or k.endswith("correlation")]

    def diff(other, other_seg):
        b = cell_texture_features(other, other_seg)
        return np.array([abs(a[k] - b[k]) for k in keys])

    stronger = diff(_stain_strength(image, 1.3), seg)
    assert np.median(stronger) < 0.005 and stronger.max() < 0.05
    # resampling the image is not exact (interpolation smooths), so only roughly
    assert np.median(diff(*_resized(image, seg, 0.6))) < 0.03
    assert np.median(diff(*_resized(image, seg, 1.5))) < 0.03


def test_cell_texture_tells_granules_from_a_smooth_cytoplasm():
    eos = cell_texture_features(*_cell("eosinophil", seed=7))
    lym = cell_texture_features(*_cell("lymphocyte", seed=7))
    assert eos["ct_glcm_cytoplasm_d1_contrast"] > lym["ct_glcm_cytoplasm_d1_contrast"]
