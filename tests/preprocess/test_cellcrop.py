"""Cell-centred, fixed-physical-size crops (wbc_classic.preprocess.cellcrop) and their use as deep
input."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage as ndi

from segmentation import segment
from wbc_classic.data.synthetic import make_cell
from wbc_classic.preprocess.cellcrop import CellCropper, cell_crop


@pytest.fixture(scope="module")
def cell():
    return make_cell("monocyte", size=128, rng=5)


def test_crop_is_centred_on_the_cell_and_blanks_the_rest(cell):
    seg = segment(cell.image)
    out = cell_crop(cell.image, seg, side_um=9.0, um_per_pixel=0.1)
    assert out.shape == (90, 90, 3) and out.dtype == np.uint8
    # the leukocyte's pixels are copied unchanged, centred
    inside = out.astype(int).sum(-1) < 600
    cy, cx = ndi.center_of_mass(inside)
    assert abs(cy - 45) < 3 and abs(cx - 45) < 3
    # everything far from the cell is one colour (the background)
    corners = np.concatenate([out[:5, :5].reshape(-1, 3), out[-5:, -5:].reshape(-1, 3)])
    assert len(np.unique(corners, axis=0)) == 1
    kept = cell_crop(cell.image, seg, side_um=9.0, um_per_pixel=0.1, blank_outside=False)
    assert len(np.unique(kept[:5, :5].reshape(-1, 3), axis=0)) > 1  # red cells stay


def test_physical_size_sets_the_side_and_pads_outside_the_image(cell):
    big = cell_crop(cell.image, side_um=25.0, um_per_pixel=0.1)  # 250 px > 128 px image
    assert big.shape == (250, 250, 3)
    assert cell_crop(cell.image, side_um=25.0, um_per_pixel=0.2).shape == (125, 125, 3)
    assert CellCropper(side_um=12.0, um_per_pixel=0.1)(cell.image).shape == (120, 120, 3)


def test_no_cell_gives_a_centred_crop():
    blank = np.full((64, 64, 3), 240, np.uint8)
    out = cell_crop(blank, side_um=4.0, um_per_pixel=0.1)
    assert out.shape == (40, 40, 3) and (out == 240).all()


def test_bad_settings_are_refused(cell):
    with pytest.raises(ValueError, match="side_um"):
        cell_crop(cell.image, side_um=0)
    with pytest.raises(ValueError, match="um_per_pixel"):
        cell_crop(cell.image, um_per_pixel=-1.0)


def test_settings_round_trip():
    c = CellCropper(side_um=20.0, um_per_pixel=None)
    assert CellCropper(**c.to_dict()) == c


def test_prepare_image_and_cache_key(cell, tmp_path):
    pytest.importorskip("cv2")
    from PIL import Image

    from deep.cache import build_cache, prepare_image

    out = prepare_image(cell.image, 32, crop="cell")
    assert out.shape == (32, 32, 3) and out.dtype == np.uint8
    with pytest.raises(ValueError, match="crop must be one of"):
        prepare_image(cell.image, 32, crop="middle")
    p = tmp_path / "c.png"
    Image.fromarray(cell.image).save(p)
    a = build_cache([p], 32, cache_dir=tmp_path / "cache", crop="center")
    b = build_cache([p], 32, cache_dir=tmp_path / "cache", crop="cell")
    assert a.path != b.path
    np.testing.assert_array_equal(b.images[0], out)


def test_side_in_cell_diameters_removes_absolute_size(cell):
    seg = segment(cell.image)
    diam = np.sqrt(4 * seg.cell.sum() / np.pi)
    out = cell_crop(cell.image, seg, side_cells=1.5)
    assert abs(out.shape[0] - 1.5 * diam) <= 1
    with pytest.raises(ValueError, match="side_cells"):
        cell_crop(cell.image, seg, side_cells=-1.0)


def test_pixels_are_cut_where_the_raw_image_was_segmented(cell):
    seg = segment(cell.image)
    bright = np.clip(cell.image.astype(int) + 20, 0, 255).astype(np.uint8)
    a = cell_crop(cell.image, seg, side_um=9.0, blank_outside=False)
    b = cell_crop(cell.image, seg, side_um=9.0, blank_outside=False, pixels=bright)
    c = cell_crop(bright, segment(bright), side_um=9.0, blank_outside=False)
    assert a.shape == b.shape
    assert (b.astype(int) >= a.astype(int)).all() and (b != a).any()
    assert b.shape == c.shape
    with pytest.raises(ValueError, match="pixels shape"):
        cell_crop(cell.image, seg, pixels=bright[:10])
