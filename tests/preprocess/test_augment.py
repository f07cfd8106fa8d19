"""Tests for wbc_classic.preprocess.augment: determinism, dtype/shape preservation, composition."""

from __future__ import annotations

import numpy as np
import pytest

from wbc_classic.preprocess.augment import (
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


# -- augmented training copies (classical family) --------------------------------------------
def test_augmented_copies_are_seeded_and_distinct(tmp_path):
    from PIL import Image

    from wbc_classic.preprocess.augment import (
        AugmentedImage,
        augmented_copies,
        default_augmentation,
    )

    path = tmp_path / "a.png"
    Image.fromarray(_image()).save(path)
    aug = default_augmentation(1.0)
    items = augmented_copies([path, _image()], aug, 3, seed=0)
    assert len(items) == 6 and all(isinstance(it, AugmentedImage) for it in items)
    assert [it.source for it in items[:2]] == [path, items[1].source]
    assert len({it.seed for it in items}) == 6
    again = augmented_copies([path, _image()], aug, 3, seed=0)
    assert [it.seed for it in again] == [it.seed for it in items]
    assert [it.seed for it in augmented_copies([path], aug, 1, seed=1)] != [items[0].seed]
    # the seed follows the image, not its position in the list
    swapped = augmented_copies([_image(), path], aug, 3, seed=0)
    assert [it.seed for it in swapped[:2]] == [items[1].seed, items[0].seed]
    np.testing.assert_array_equal(items[0].read(), again[0].read())
    assert not np.array_equal(items[0].read(), items[2].read())
    # the content key tells seeds, augmentations and sources apart
    keys = {it.content_sha256() for it in items}
    assert len(keys) == 6 and items[0].content_sha256() == again[0].content_sha256()
    other = AugmentedImage(path, default_augmentation(2.0), items[0].seed)
    assert other.content_sha256() != items[0].content_sha256()
    assert "augmented" in str(items[0]) and "a.png" in str(items[0])
    assert augmented_copies([path], aug, 0) == []
    with pytest.raises(ValueError, match="copies"):
        augmented_copies([path], aug, -1)


def test_default_augmentation_without_scale():
    from wbc_classic.preprocess.augment import ScaleJitter, default_augmentation

    assert any(isinstance(t, ScaleJitter) for t in default_augmentation().transforms)
    assert not any(isinstance(t, ScaleJitter)
                   for t in default_augmentation(scale=False).transforms)
