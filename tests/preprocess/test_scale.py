"""Tests for wbc_classic.preprocess.scale: red-cell scale estimation and resampling."""

from __future__ import annotations

import numpy as np
import pytest

from wbc_classic.preprocess.scale import (
    RED_CELL_DIAMETER_UM,
    estimate_scale,
    resample_mask_to_scale,
    resample_to_scale,
    rescale_image,
    rescale_mask,
)

BG = np.array([245, 230, 215], dtype=np.uint8)
RBC = np.array([215, 160, 170], dtype=np.uint8)
NUC = np.array([90, 50, 130], dtype=np.uint8)


def _field(diameter: float, shape=(300, 300), n=9, leukocyte=True, seed=0) -> np.ndarray:
    """Pale field with ``n`` red cells of a known diameter on a grid and a purple nucleus."""
    rng = np.random.default_rng(seed)
    img = np.empty(shape + (3,), np.uint8)
    img[:] = BG
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    r = diameter / 2
    step = diameter * 1.35
    k = int(np.ceil(np.sqrt(n)))
    placed = 0
    for i in range(k):
        for j in range(k):
            if placed == n:
                break
            cy = r + 4 + i * step + rng.uniform(-1, 1)
            cx = r + 4 + j * step + rng.uniform(-1, 1)
            if cy + r >= shape[0] or cx + r >= shape[1]:
                continue
            disc = (yy - cy) ** 2 + (xx - cx) ** 2 <= r ** 2
            img[disc] = RBC
            placed += 1
    if leukocyte:
        disc = (yy - shape[0] + 40) ** 2 + (xx - shape[1] + 40) ** 2 <= 25 ** 2
        img[disc] = NUC
    noise = rng.normal(0, 2, img.shape)
    return np.clip(img + noise, 0, 255).astype(np.uint8)


@pytest.mark.parametrize("diameter", [20.0, 36.0, 60.0])
def test_red_cell_scale_within_10_percent(diameter):
    shape = (300, 300) if diameter < 50 else (420, 420)
    est = estimate_scale(_field(diameter, shape=shape))
    assert est.method == "red-cells"
    assert est.n_objects >= 3
    assert est.diameter_px == pytest.approx(diameter, rel=0.10)
    assert est.um_per_pixel == pytest.approx(RED_CELL_DIAMETER_UM / diameter, rel=0.10)


def test_touching_red_cells_are_measured():
    # cells spaced by exactly their diameter (touching) still give their size
    img = np.empty((240, 240, 3), np.uint8)
    img[:] = BG
    yy, xx = np.mgrid[:240, :240]
    for cy in (40, 80, 120, 160):
        for cx in (40, 80, 120, 160):
            img[(yy - cy) ** 2 + (xx - cx) ** 2 <= 20 ** 2] = RBC
    est = estimate_scale(img)
    assert est.method == "red-cells"
    assert est.diameter_px == pytest.approx(40, rel=0.10)


def test_user_scale_and_fallbacks():
    img = _field(30)
    assert estimate_scale(img, um_per_pixel=0.25).to_dict()["method"] == "user"
    assert estimate_scale(img, um_per_pixel=0.25).um_per_pixel == 0.25
    with pytest.raises(ValueError):
        estimate_scale(img, um_per_pixel=-1)
    # no red cell: the leukocyte is the ruler
    only_wbc = _field(30, n=0)
    est = estimate_scale(only_wbc)
    assert est.method == "leukocyte" and np.isfinite(est.um_per_pixel)
    cell = np.zeros(only_wbc.shape[:2], bool)
    cell[100:200, 100:200] = True
    est = estimate_scale(only_wbc, cell_mask=cell)
    assert est.method == "leukocyte"
    assert est.diameter_px == pytest.approx(np.sqrt(4 * 10000 / np.pi))
    # blank image: default
    blank = np.full((100, 100, 3), 240, np.uint8)
    est = estimate_scale(blank, default=0.1)
    assert est.method == "default" and est.um_per_pixel == 0.1


def test_resample_doubles_and_halves():
    img = np.random.default_rng(0).integers(0, 256, (40, 60, 3), dtype=np.uint8)
    up = resample_to_scale(img, 0.2, 0.1)
    assert up.shape == (80, 120, 3) and up.dtype == np.uint8
    down = resample_to_scale(img, 0.1, 0.2)
    assert down.shape == (20, 30, 3) and down.dtype == np.uint8
    # area averaging when shrinking: mean preserved
    assert abs(float(down.mean()) - float(img.mean())) < 2.0
    f = rescale_image(img.astype(np.float32) / 255, 2.0)
    assert f.shape == (80, 120, 3) and f.dtype == np.float32


def test_resample_mask_nearest():
    mask = np.zeros((10, 10), bool)
    mask[2:6, 3:7] = True
    up = resample_mask_to_scale(mask, 0.2, 0.1)
    assert up.dtype == bool and up.shape == (20, 20)
    assert up.sum() == 4 * mask.sum()
    assert set(np.unique(up)) <= {False, True}
    assert np.array_equal(rescale_mask(up, 0.5), mask)
    # bool passed to resample_to_scale is treated as a mask too
    assert resample_to_scale(mask, 0.2, 0.1).dtype == bool
    labels = np.arange(16).reshape(4, 4)
    assert set(np.unique(rescale_mask(labels, 3.0))) == set(range(16))
    with pytest.raises(ValueError):
        resample_to_scale(mask, 0.0, 0.1)


@pytest.mark.realdata
def test_pbc_scale_is_about_a_tenth_of_a_micron(pbc_dir):
    from PIL import Image

    paths = sorted((pbc_dir / "neutrophil").glob("*.jpg"))[:8]
    ums = [estimate_scale(np.asarray(Image.open(p).convert("RGB"))).um_per_pixel
           for p in paths]
    assert 0.08 < float(np.median(ums)) < 0.13


def test_batch_scale_follows_the_magnification():
    from wbc_classic.data.synthetic import make_cells
    from wbc_classic.preprocess.scale import estimate_batch_scale

    base = estimate_batch_scale(list(make_cells(2, size=200, seed=0)[0]))
    small = estimate_batch_scale(list(make_cells(2, size=200, seed=0, scale=0.7)[0]))
    assert np.isfinite(base) and small / base == pytest.approx(1 / 0.7, rel=0.1)
    # a pick of n, seeded: the same answer every time, NaN without red cells
    imgs = list(make_cells(2, size=200, seed=0)[0])
    assert estimate_batch_scale(imgs, n=3, seed=1) == estimate_batch_scale(imgs, n=3, seed=1)
    blank = [np.full((64, 64, 3), 240, np.uint8)] * 3
    assert np.isnan(estimate_batch_scale(blank))
