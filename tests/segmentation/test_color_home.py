"""segmentation.color is the one home of the background light, optical density and HSI.

The references below are the formulas the five callers (preprocess.stain, preprocess.scale,
features.density, segmentation.pipeline, segmentation.field) and features.colour used before
they moved here, copied verbatim: the home must give the same arrays, bit for bit.
"""

from __future__ import annotations

import ast

import numpy as np
import pytest

from segmentation import color
from tests.conftest import REPO_ROOT
from wbc_classic.data.synthetic import make_cell


def _images() -> list[np.ndarray]:
    rng = np.random.default_rng(0)
    cells = [make_cell(c, size=96, rng=i).image
             for i, c in enumerate(("basophil", "lymphocyte", "monocyte", "neutrophil"))]
    noise = rng.integers(0, 256, (37, 53, 3), dtype=np.uint8)
    dark = np.zeros((20, 24, 3), np.uint8)   # level 0 everywhere: the clip / offset matter
    return [*cells, noise, dark]


# ---------------------------------------------------------------- the old formulas
def _old_estimate_background(image, percentile=90.0):  # preprocess.stain, preprocess.scale
    rgb = image.astype(np.float64) if image.dtype == np.uint8 else \
        np.clip(image.astype(np.float64), 0.0, 1.0) * 255.0
    grey = rgb.mean(axis=-1)
    sel = grey >= np.percentile(grey, percentile)
    return np.clip(np.median(rgb[sel], axis=0), 1.0, 255.0)


def _old_rgb_to_od(image, i0):  # preprocess.stain.rgb_to_od, preprocess.scale._optical_density
    rgb = image.astype(np.float64)
    od = -np.log10(np.clip(rgb, 1.0, 255.0) / np.asarray(i0, dtype=np.float64))
    return np.maximum(od, 0.0)


def _old_density_od(rgb, light):  # features.density.optical_density
    i = (np.asarray(rgb, dtype=np.float32) + 0.5) / np.float32(255.0)
    od = -np.log10(i / np.asarray(light, dtype=np.float32))
    return np.maximum(od, 0.0, out=od)


def _old_background_light(image, percentile=90.0):  # segmentation.color (fast)
    sub = image[::2, ::2].reshape(-1, 3)
    grey = sub.sum(axis=-1, dtype=np.uint16)
    counts = np.cumsum(np.bincount(grey, minlength=766))
    cut = int(np.searchsorted(counts, percentile / 100.0 * (counts[-1] - 1)))
    bright = sub[grey >= cut]
    light = np.empty(3, np.float32)
    for ch in range(3):
        cum = np.cumsum(np.bincount(bright[:, ch], minlength=256))
        light[ch] = np.searchsorted(cum, (cum[-1] + 1) // 2)
    light /= np.float32(255.0)
    return np.maximum(light, np.float32(1.0 / 255.0))


def _old_pipeline_background(lab, exclude):  # segmentation.pipeline._background_colour
    light = lab[..., 0]
    sel = ~exclude
    if sel.sum() < 10:
        sel = np.ones_like(exclude)
    cut = np.percentile(light[sel], 75)
    return np.median(lab[sel & (light >= cut)], axis=0)


def _old_field_background(lab):  # segmentation.field.estimate_rbc_radius
    light = lab[..., 0]
    return np.median(lab[light >= np.percentile(light, 80)], axis=0)


def _old_features_hsi(rgb):  # features.colour.rgb_to_hsi (hue from green)
    rgb = np.asarray(rgb, dtype=np.float32)
    r, g, b = rgb[..., 0], rgb[..., 1], rgb[..., 2]
    i = (r + g + b) / 3.0
    mn = np.minimum(np.minimum(r, g), b)
    s = np.where(i > 1e-6, 1.0 - mn / np.maximum(i, 1e-6), 0.0)
    num = 0.5 * ((r - g) + (r - b))
    den = np.sqrt((r - g) ** 2 + (r - b) * (g - b))
    theta = np.arccos(np.clip(num / np.maximum(den, 1e-9), -1.0, 1.0)) / (2 * np.pi)
    h = np.where(b > g, 1.0 - theta, theta)
    h = np.where(den > 1e-9, h, 0.0)
    h = np.mod(h - 120.0 / 360.0, 1.0)
    return np.stack([h, s, i], axis=-1).astype(np.float32)


def _same(a, b):
    a, b = np.asarray(a), np.asarray(b)
    assert a.dtype == b.dtype and a.shape == b.shape
    np.testing.assert_array_equal(a, b)


# ---------------------------------------------------------------- the five callers
@pytest.mark.parametrize("k", range(6))
def test_stain_and_scale_background_and_od_unchanged(k):
    from wbc_classic.preprocess import scale, stain

    image = _images()[k]
    bg = _old_estimate_background(image)
    _same(stain._background(image), bg)
    _same(stain._background(image, 70.0), _old_estimate_background(image, 70.0))
    as_float = image.astype(np.float32) / 255.0
    _same(stain._background(as_float), _old_estimate_background(as_float))
    _same(stain._od(image, bg), _old_rgb_to_od(image, bg))
    _same(scale._optical_density(image), _old_rgb_to_od(image, bg))


@pytest.mark.parametrize("k", range(6))
def test_density_and_segmenter_background_and_od_unchanged(k):
    import cv2

    image = _images()[k]
    light = color.background_light(image)
    _same(light, _old_background_light(image))
    _same(color.optical_density(image, light), _old_density_od(image, light))
    lab = cv2.cvtColor(color.as_float_rgb(image), cv2.COLOR_RGB2LAB)
    exclude = np.zeros(image.shape[:2], bool)
    exclude[5:15, 5:20] = True
    _same(color.background_lab(lab, 75, exclude=exclude), _old_pipeline_background(lab, exclude))
    everything = np.ones(image.shape[:2], bool)   # fewer than 10 left: all pixels count
    _same(color.background_lab(lab, 75, exclude=everything),
          _old_pipeline_background(lab, everything))
    _same(color.background_lab(lab, 80), _old_field_background(lab))


def test_cell_crop_fill_uses_the_exact_background():
    from wbc_classic.preprocess.cellcrop import cell_crop

    cell = make_cell("lymphocyte", size=96, rng=3)
    out = cell_crop(cell.image, um_per_pixel=0.5, side_um=60.0, blank_outside=True)
    fill = np.round(_old_estimate_background(cell.image)).astype(np.uint8)
    assert (out.reshape(-1, 3) == fill).all(axis=1).any()   # the padding has that colour


def test_background_scales_and_options():
    image = _images()[0]
    fast = color.background_light(image)
    assert fast.dtype == np.float32 and fast.min() >= 1 / 255 and fast.max() <= 1
    np.testing.assert_allclose(color.background_light(image, white=255.0), fast * 255, rtol=1e-6)
    exact = color.background_light(image, exact=True)
    assert exact.dtype == np.float64
    np.testing.assert_allclose(exact * 255, color.background_light(image, exact=True,
                                                                   white=255.0))
    np.testing.assert_allclose(exact, fast, atol=2 / 255)   # the two estimates agree closely
    with pytest.raises(ValueError, match="uint8"):
        color.background_light(image.astype(np.float32) / 255)


def test_optical_density_conventions():
    px = np.array([[[0, 128, 255]]], np.uint8)
    od255 = color.optical_density(px, 255.0, white=255.0, offset=0.0, dtype=np.float64)
    np.testing.assert_allclose(od255[0, 0], [np.log10(255.0), -np.log10(128 / 255), 0.0])
    od1 = color.optical_density(px, 1.0)
    assert od1.dtype == np.float32
    expected = np.clip(-np.log10((np.array([0, 128, 255]) + 0.5) / 255), 0.0, None)
    np.testing.assert_allclose(od1[0, 0], expected, rtol=1e-6)


# ---------------------------------------------------------------- HSI
def test_hsi_one_implementation_same_as_the_features_had():
    image = np.concatenate([im.reshape(-1, 3) for im in _images()])
    x = image.astype(np.float32) / 255.0
    old = _old_features_hsi(x)
    new = color.rgb_to_hsi(x, hue_origin=120.0 / 360.0)
    _same(new[:, [0, 2]], old[:, [0, 2]])
    # saturation is clipped into its documented [0, 1] now (it was -1 ulp on some grey pixels);
    # the features quantise it to 1024 levels, where that makes no difference
    _same(new[:, 1], np.clip(old[:, 1], 0.0, 1.0))
    _same(np.rint(new[:, 1] * 1023.0).astype(np.intp), np.rint(old[:, 1] * 1023.0).astype(np.intp))
    # hue origin 0 is the same turn, rotated back
    np.testing.assert_allclose(np.mod(color.rgb_to_hsi(x)[:, 0] - 1 / 3, 1.0), new[:, 0],
                               atol=1e-6)
    # uint8 input equals the float32 [0, 1] input
    _same(color.rgb_to_hsi(image[None]), color.rgb_to_hsi(color.as_float_rgb(image[None])))


def _definitions() -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for package in ("segmentation", "features", "wbc_classic", "deep", "benchmarks"):
        for path in sorted((REPO_ROOT / package).rglob("*.py")):
            for node in ast.walk(ast.parse(path.read_text())):
                if isinstance(node, ast.FunctionDef):
                    out.setdefault(node.name, []).append(str(path.relative_to(REPO_ROOT)))
    return out


def test_each_colour_route_is_defined_once():
    defs = _definitions()
    for name in ("rgb_to_hsi", "background_light", "background_lab", "optical_density"):
        assert defs.get(name) == ["segmentation/color.py"], (name, defs.get(name))
    for gone in ("estimate_background", "rgb_to_od", "_background_colour"):
        assert gone not in defs, (gone, defs[gone])
