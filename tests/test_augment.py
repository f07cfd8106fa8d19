"""Tests for wbc_classic.augment: determinism, dtype/shape preservation, composition."""

from __future__ import annotations

import numpy as np
import pytest

from wbc_classic.augment import (
    BrightnessContrast,
    Compose,
    GaussianBlur,
    HEDJitter,
    RandomApply,
    ScaleJitter,
    brightness_contrast,
    default_augmentation,
    flip_rotate,
    gaussian_blur,
    hed_jitter,
    scale_jitter,
)


def _image(dtype=np.uint8, shape=(40, 50)) -> np.ndarray:
    rng = np.random.default_rng(0)
    img = rng.integers(60, 250, shape + (3,), dtype=np.uint8)
    img[10:30, 15:35] = (120, 60, 150)
    return img if dtype == np.uint8 else (img / 255.0).astype(dtype)


FUNCS = [hed_jitter, brightness_contrast, scale_jitter, gaussian_blur]


@pytest.mark.parametrize("fn", FUNCS)
@pytest.mark.parametrize("dtype", [np.uint8, np.float32])
def test_deterministic_and_preserves_dtype_shape(fn, dtype):
    img = _image(dtype)
    a = fn(img, np.random.default_rng(42))
    b = fn(img, np.random.default_rng(42))
    assert a.dtype == img.dtype and a.shape == img.shape
    np.testing.assert_array_equal(a, b)
    outs = [fn(img, np.random.default_rng(s)) for s in range(4)]
    assert any(not np.array_equal(outs[0], o) for o in outs[1:])  # the seed matters


def test_hed_jitter_changes_colour_not_layout():
    img = _image()
    out = hed_jitter(img, 1, sigma=0.2, bias=0.05)
    assert not np.array_equal(out, img)
    # zero jitter is (nearly) the identity
    same = hed_jitter(img, 1, sigma=0.0, bias=0.0)
    assert np.abs(same.astype(int) - img).max() <= 2


def test_scale_jitter_masks_follow():
    img = _image()
    mask = np.zeros(img.shape[:2], bool)
    mask[10:30, 15:35] = True
    out, (m,) = scale_jitter(img, 3, scale_range=(1.5, 1.5), masks=[mask])
    assert out.shape == img.shape and m.shape == mask.shape and m.dtype == bool
    assert m.sum() == pytest.approx(mask.sum() * 1.5 ** 2, rel=0.1)
    small = scale_jitter(img, 3, scale_range=(0.5, 0.5))
    assert small.shape == img.shape
    big = scale_jitter(img, 3, scale_range=(2.0, 2.0), keep_shape=False)
    assert big.shape == (80, 100, 3)
    with pytest.raises(ValueError):
        scale_jitter(img, 0, scale_range=(1.2, 0.8))


def test_blur_and_flip():
    img = _image()
    blurred = gaussian_blur(img, 0, sigma_range=(2.0, 2.0))
    assert blurred.std() < img.std()
    mask = img[..., 0] > 100
    out, (m,) = flip_rotate(img, 5, masks=[mask])
    np.testing.assert_array_equal(out[..., 0] > 100, m)
    assert sorted(out.shape[:2]) == sorted(img.shape[:2])


def test_compose_is_seeded_and_composable():
    aug = Compose([HEDJitter(), BrightnessContrast(), ScaleJitter(),
                   RandomApply(GaussianBlur(), p=0.5)])
    img = _image()
    a, b = aug(img, np.random.default_rng(7)), aug(img, np.random.default_rng(7))
    np.testing.assert_array_equal(a, b)
    assert a.dtype == np.uint8 and a.shape == img.shape
    assert "HEDJitter" in repr(aug)
    never = RandomApply(HEDJitter(), p=0.0)
    np.testing.assert_array_equal(never(img, 0), img)
    d = default_augmentation()(img, 0)
    assert d.dtype == np.uint8 and d.size == img.size
