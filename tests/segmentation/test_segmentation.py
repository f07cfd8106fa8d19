"""Tests of the classical segmenter (segmentation/*) on synthetic and (optionally) real data."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from segmentation import (
    Segmentation,
    SegmenterParams,
    as_rgb_uint8,
    color,
    contour,
    estimate_rbc_radius,
    granulometry_radius,
    mask_to_labels,
    morphology,
    otsu_separability,
    otsu_threshold,
    plot_stages,
    rgb_to_cmyk,
    rgb_to_hsi,
    rgb_to_lab,
    segment,
    segment_field,
    watershed,
)
from wbc_classic.evaluation.seg_eval import box_iou, dice, field_cell_box

BEIGE = (240, 226, 208)
PINK = (214, 150, 160)
LILAC = (200, 190, 225)
PURPLE = (95, 55, 150)


def _disc(shape, cy, cx, r):
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    return (yy - cy) ** 2 + (xx - cx) ** 2 <= r ** 2


def drawn_cell(size=160, seed=0, rbcs=True):
    """A numpy-drawn leukocyte: purple nucleus in a lilac disc, pink red cells touching it."""
    rng = np.random.default_rng(seed)
    shape = (size, size)
    c = size / 2
    cell = _disc(shape, c, c, 0.28 * size)
    nucleus = _disc(shape, c + 3, c - 2, 0.17 * size)
    img = np.empty((size, size, 3), np.float32)
    img[:] = BEIGE
    if rbcs:
        for ang in (0.3, 2.2, 4.0):
            d = 0.28 * size + 0.16 * size - 2
            img[_disc(shape, c + d * np.sin(ang), c + d * np.cos(ang), 0.16 * size)] = PINK
    img[cell] = LILAC
    img[nucleus] = PURPLE
    img = cv2.GaussianBlur(img, (0, 0), 1.0) + rng.normal(0, 3, img.shape)
    return np.clip(img, 0, 255).astype(np.uint8), nucleus, cell


# --------------------------------------------------------------------------- colour spaces
def test_rgb_to_hsi_known_values():
    px = np.array([[[255, 0, 0], [0, 255, 0], [0, 0, 255], [128, 128, 128]]], np.uint8)
    hsi = rgb_to_hsi(px)
    assert hsi.dtype == np.float32 and hsi.shape == (1, 4, 3)
    np.testing.assert_allclose(hsi[0, :, 0], [0.0, 1 / 3, 2 / 3, 0.0], atol=1e-4)
    np.testing.assert_allclose(hsi[0, :, 1], [1.0, 1.0, 1.0, 0.0], atol=1e-5)
    np.testing.assert_allclose(hsi[0, :, 2], [1 / 3, 1 / 3, 1 / 3, 128 / 255], atol=1e-5)


def test_colour_ranges_and_black():
    rng = np.random.default_rng(0)
    img = rng.integers(0, 256, (20, 20, 3), dtype=np.uint8)
    img[0, 0] = 0
    hsi = rgb_to_hsi(img)
    assert (hsi >= 0).all() and (hsi <= 1).all()
    cmyk = rgb_to_cmyk(img)
    assert cmyk.shape == (20, 20, 4) and (cmyk >= 0).all() and (cmyk <= 1).all()
    assert cmyk[0, 0, 3] == pytest.approx(1.0)
    lab = rgb_to_lab(img)
    assert (lab[..., 0] >= 0).all() and (lab[..., 0] <= 100.001).all()
    for name in color.NUCLEUS_CHANNELS:
        ch = color.channel(img, name)
        assert ch.shape == (20, 20) and np.isfinite(ch).all()
    with pytest.raises(ValueError):
        color.channel(img, "nope")


def test_nucleus_channel_orders_stain_colours():
    px = np.array([[PURPLE, LILAC, PINK, BEIGE]], np.uint8)
    ch = color.blue_green_chromaticity(px)[0]
    assert ch[0] > ch[1] > ch[3] and ch[0] > ch[2]
    br = color.blue_minus_red(px)[0]
    assert br[1] > br[2] and br[1] > br[3]


# --------------------------------------------------------------------------- building blocks
def test_otsu_bimodal_and_constant():
    rng = np.random.default_rng(1)
    x = np.r_[rng.normal(0.2, 0.03, 500), rng.normal(0.8, 0.03, 300)].reshape(40, 20)
    t, eta = otsu_separability(x)
    assert 0.3 < t < 0.7 and eta > 0.9
    assert np.isnan(otsu_threshold(np.ones((5, 5))))
    assert np.isnan(otsu_threshold(np.zeros((3, 3)), mask=np.zeros((3, 3), bool)))


def test_morphology_helpers():
    from scipy import ndimage as ndi

    rng = np.random.default_rng(2)
    m = rng.random((40, 50)) > 0.55
    np.testing.assert_array_equal(morphology.fill_holes(m), ndi.binary_fill_holes(m))
    small = np.zeros((30, 30), bool)
    small[2:4, 2:4] = True
    small[10:20, 10:20] = True
    kept = morphology.remove_small_objects(small, 10)
    assert not kept[2, 2] and kept[15, 15]
    assert morphology.components_touching(small, _disc((30, 30), 15, 15, 1)).sum() == 100
    assert morphology.disk(3).shape == (7, 7)


def test_trim_pale_rim_removes_background_ring_keeps_vacuole():
    # a stained disc (radius 12) inside a loose outline (radius 16): the 4-pixel ring of
    # background between them goes, a pale vacuole enclosed by stain stays
    nucleus = _disc((60, 60), 30, 30, 6)
    stained = _disc((60, 60), 30, 30, 12)
    outline = _disc((60, 60), 30, 30, 16)
    vacuole = _disc((60, 60), 30, 39, 2)
    pale = ~stained | vacuole
    trimmed = morphology.trim_pale_rim(outline, nucleus, pale)
    assert trimmed[30, 39] and trimmed[nucleus].all()
    assert dice(trimmed, stained) > 0.97
    assert not trimmed[30, 30 + 14]
    # nothing pale: the outline is kept as it is
    np.testing.assert_array_equal(
        morphology.trim_pale_rim(outline, nucleus, np.zeros_like(outline)), outline)


def test_pale_pixels_follows_the_image_background():
    img = np.full((20, 20, 3), (250, 230, 200), np.uint8)
    img[5:10, 5:10] = (120, 60, 150)  # stained
    img[12:15, 12:15] = (245, 226, 196)  # 2 % darker than the background: still pale
    pale = color.pale_pixels(img, max_od=0.06)
    assert pale[0, 0] and pale[13, 13] and not pale[7, 7]
    np.testing.assert_allclose(color.background_light(img), np.array([250, 230, 200]) / 255,
                               rtol=1e-6)
    # the same test on a dimmer, bluer illumination
    dim = (img.astype(float) * np.array([0.8, 0.9, 1.0])).astype(np.uint8)
    np.testing.assert_array_equal(color.pale_pixels(dim), pale)


def test_rim_trim_is_an_option():
    from wbc_classic.data.synthetic import make_cell

    cell_img = make_cell("lymphocyte", rng=3).image
    on = segment(cell_img, SegmenterParams(rim_max_od=0.06))
    off = segment(cell_img)  # off by default
    assert on.found and off.found
    np.testing.assert_array_equal(on.nucleus, off.nucleus)
    assert on.cell.sum() <= off.cell.sum()
    np.testing.assert_array_equal(on.stages["cell_outline"], off.cell)


def test_watershed_splits_touching_discs():
    shape = (80, 120)
    m = _disc(shape, 40, 38, 22) | _disc(shape, 40, 78, 22)
    labels = watershed.split_touching(m, min_distance=15, min_height=5)
    assert len(np.unique(labels[labels > 0])) == 2
    assert labels[40, 30] != labels[40, 90]


def test_polar_path_finds_circle():
    shape = (101, 101)
    r_true = 30
    ring = _disc(shape, 50, 50, r_true).astype(np.float32)
    pol = contour.polar_unwrap(ring, (50, 50), 45, 90)
    edge = -np.gradient(pol, axis=1)
    path = contour.closed_min_path(-edge, max_step=1)
    assert abs(np.median(path) - r_true) <= 1.5
    mask = contour.radii_to_mask(path, (50, 50), shape)
    assert dice(mask, _disc(shape, 50, 50, r_true)) > 0.95
    ext = contour.radial_extent(_disc(shape, 50, 50, 10), (50, 50), 45, 36)
    assert ext.shape == (36,) and np.all(np.abs(ext - 10) <= 1)


def test_granulometry_radius():
    shape = (200, 300)
    m = np.zeros(shape, bool)
    for cy in (40, 100, 160):
        for cx in range(30, 300, 60):
            m |= _disc(shape, cy, cx, 20)
    assert 14 <= granulometry_radius(m) <= 27
    assert np.isnan(granulometry_radius(np.zeros((10, 10), bool)))


# --------------------------------------------------------------------------- segment()
def test_segment_drawn_cell_dice():
    img, nuc, cell = drawn_cell()
    seg = segment(img)
    assert seg.found, seg.message
    assert dice(seg.nucleus, nuc) > 0.93
    assert dice(seg.cell, cell) > 0.90
    assert not (seg.nucleus & ~seg.cell).any()
    assert seg.scale == pytest.approx(np.sqrt(seg.cell.sum() / np.pi))


def test_segment_synthetic_cells():
    from wbc_classic.data.synthetic import make_cell

    nd, cd = [], []
    for i, label in enumerate(["neutrophil", "lymphocyte", "eosinophil", "monocyte"] * 2):
        c = make_cell(label, size=128, rng=i)
        seg = segment(c.image)
        assert seg.found, (label, seg.message)
        nd.append(dice(seg.nucleus, c.nucleus))
        cd.append(dice(seg.cell, c.cell))
    assert np.mean(nd) > 0.9, nd
    assert np.mean(cd) > 0.85, cd


@pytest.mark.parametrize("image", [
    np.full((100, 100, 3), 255, np.uint8),
    np.zeros((100, 100, 3), np.uint8),
    np.full((64, 64, 3), BEIGE, np.uint8),
    np.random.default_rng(0).integers(0, 256, (8, 8, 3), dtype=np.uint8),
], ids=["white", "black", "beige", "8x8"])
def test_segment_empty_images(image):
    seg = segment(image)
    assert isinstance(seg, Segmentation)
    assert not seg.found and seg.message
    assert seg.shape == image.shape[:2]
    assert not seg.cell.any() and not seg.nucleus.any()
    assert seg.bbox is None


def test_segment_red_cells_only():
    shape = (150, 150)
    img = np.empty(shape + (3,), np.float32)
    img[:] = BEIGE
    for cy, cx in [(40, 40), (40, 100), (105, 70), (110, 125)]:
        img[_disc(shape, cy, cx, 24)] = PINK
    img = np.clip(img + np.random.default_rng(3).normal(0, 2, img.shape), 0, 255)
    seg = segment(img.astype(np.uint8))
    assert not seg.found, "red cells alone must not be taken for a leukocyte"
    assert "no leukocyte" in seg.message


def test_segment_input_validation():
    img, _, _ = drawn_cell(120)
    grey = segment(img.mean(axis=2).astype(np.uint8))
    assert grey.shape == (120, 120)
    rgba = np.concatenate([img, np.full(img.shape[:2] + (1,), 255, np.uint8)], axis=2)
    assert segment(rgba).found
    assert segment(img.astype(np.float32) / 255).found
    assert segment(img.astype(np.uint16) * 257).found
    for bad in (np.zeros((10, 10, 5), np.uint8), np.zeros((2, 10, 10, 3), np.uint8),
                np.zeros((20, 20, 3), bool), np.full((20, 20, 3), np.nan)):
        with pytest.raises(ValueError):
            segment(bad)
    with pytest.raises(ValueError):
        SegmenterParams(nucleus_channel="bogus")


def test_stages_present_and_shaped():
    img, _, _ = drawn_cell()
    seg = segment(img)
    for name in ("input", "hsi_saturation", "nucleus_channel", "otsu_nucleus", "nucleus_clean",
                 "nucleus", "otsu_cell", "distance", "markers", "watershed", "cell_channel",
                 "edges", "cell", "overlay"):
        assert name in seg.stages, name
        arr = seg.stages[name]
        assert arr.shape[:2] == img.shape[:2], (name, arr.shape)
        assert arr.ndim == 2 or arr.shape == img.shape
        if np.issubdtype(arr.dtype, np.floating):
            assert np.isfinite(arr).all() and np.abs(arr).max() < 1e4, name
    assert seg.stages["overlay"].dtype == np.uint8
    assert seg.stages["otsu_nucleus"].dtype == bool
    labels = mask_to_labels(seg)
    assert set(np.unique(labels)) <= {0, 128, 255}
    assert ((labels == 255) == seg.nucleus).all()


def test_plot_stages_returns_figure(tmp_path):
    from matplotlib.figure import Figure

    img, _, _ = drawn_cell(96)
    seg = segment(img)
    fig = plot_stages(img, seg)
    assert isinstance(fig, Figure)
    assert len([ax for ax in fig.axes if ax.get_title()]) == len(seg.stages)
    fig.savefig(tmp_path / "s.png", dpi=40)
    empty = segment(np.zeros((50, 50, 3), np.uint8))
    assert isinstance(plot_stages(np.zeros((50, 50, 3), np.uint8), empty), Figure)


def test_touching_neighbour_cell_is_not_a_lobe():
    """Two touching leukocytes: only one is segmented, the other's nucleus is no lobe."""
    shape = (200, 200)
    img = np.empty(shape + (3,), np.float32)
    img[:] = BEIGE
    cell_a, cell_b = _disc(shape, 100, 62, 34), _disc(shape, 100, 135, 34)
    nuc_a, nuc_b = _disc(shape, 100, 64, 20), _disc(shape, 100, 133, 20)
    img[cell_a | cell_b] = LILAC
    img[nuc_a | nuc_b] = PURPLE
    img = cv2.GaussianBlur(img, (0, 0), 1.0)
    seg = segment(np.clip(img, 0, 255).astype(np.uint8))
    assert seg.found
    got_a, got_b = dice(seg.nucleus, nuc_a), dice(seg.nucleus, nuc_b)
    assert max(got_a, got_b) > 0.9 and min(got_a, got_b) < 0.1
    assert max(dice(seg.cell, cell_a), dice(seg.cell, cell_b)) > 0.85


def test_params_adapt_to_magnification():
    """The same cell drawn at two sizes gives the same relative result (no pixel constants)."""
    small, n1, c1 = drawn_cell(120, seed=4)
    big, n2, c2 = drawn_cell(360, seed=4)
    s1, s2 = segment(small), segment(big)
    assert dice(s1.cell, c1) > 0.88 and dice(s2.cell, c2) > 0.88
    assert s2.scale / s1.scale == pytest.approx(3.0, rel=0.1)


# --------------------------------------------------------------------------- segment_field()
def test_segment_field_synthetic_smear():
    from wbc_classic.data.synthetic import make_smear

    hits = total = 0
    for seed in (0, 1):
        f = make_smear(seed=seed, n_leukocytes=2)
        cells = segment_field(f.image)
        for fc in cells:
            assert fc.crop.shape[:2] == fc.segmentation.shape
            r0, c0, r1, c1 = fc.bbox
            assert fc.crop.shape[:2] == (r1 - r0, c1 - c0)
            assert all(isinstance(v, int) for v in fc.bbox)
        pred = [field_cell_box(fc) for fc in cells]
        for box in f.boxes:
            total += 1
            hits += any(box_iou(p, box) >= 0.5 for p in pred)
        assert len(cells) <= len(f.boxes) + 1
    assert hits >= total - 1


def test_segment_field_empty():
    assert segment_field(np.full((200, 300, 3), 230, np.uint8)) == []
    assert segment_field(np.zeros((8, 8, 3), np.uint8)) == []


def test_estimate_rbc_radius_drawn():
    shape = (240, 320)
    img = np.empty(shape + (3,), np.float32)
    img[:] = BEIGE
    for cy in range(30, 240, 60):
        for cx in range(30, 320, 60):
            img[_disc(shape, cy, cx, 22)] = PINK
    r = estimate_rbc_radius(img.astype(np.uint8))
    assert 15 <= r <= 30


def test_as_rgb_uint8_passthrough():
    img = np.zeros((5, 6, 3), np.uint8)
    assert as_rgb_uint8(img) is not None and as_rgb_uint8(img).shape == (5, 6, 3)
    assert as_rgb_uint8(np.zeros((5, 6, 1), np.uint8)).shape == (5, 6, 3)


# --------------------------------------------------------------------------- real data
@pytest.mark.realdata
def test_real_cellavision_dice(cellavision_dir):
    from wbc_classic.data.datasets import load_segmentation_set
    from wbc_classic.evaluation.seg_eval import evaluate_segmentation_set

    samples = load_segmentation_set(cellavision_dir)[::5]  # 20 images
    s = evaluate_segmentation_set(samples).summary
    assert s["found_rate"] == 1.0
    assert s["nucleus_dice"] > 0.90, s
    assert s["cell_dice"] > 0.85, s


@pytest.mark.realdata
def test_real_bccd_detection(bccd_dir):
    from wbc_classic.data.datasets import load_voc_smears
    from wbc_classic.evaluation.seg_eval import evaluate_smears

    anns = load_voc_smears(bccd_dir)[::40]  # 10 fields
    s = evaluate_smears(anns).summary
    assert s["recall"] >= 0.85, s
    assert s["precision"] >= 0.8, s


@pytest.mark.realdata
def test_real_pbc_found_rate(pbc_dir):
    from wbc_classic.data.datasets import load_class_folders
    from wbc_classic.io.images import read_image

    ims = load_class_folders(pbc_dir, classes=["lymphocyte", "neutrophil", "monocyte"])
    paths = ims.paths[::100]
    found = [segment(read_image(p)).found for p in paths]
    assert np.mean(found) >= 0.9


def _stage_free_cases():
    from wbc_classic.data.synthetic import make_cell

    cases = [make_cell(label, size=128, rng=i).image for i, label in
             enumerate(["neutrophil", "lymphocyte", "eosinophil", "monocyte", "basophil"])]
    cases.append(drawn_cell()[0])
    cases.append(np.full((64, 64, 3), BEIGE, np.uint8))       # nothing found
    return cases


@pytest.mark.parametrize("k", range(7))
def test_keep_stages_false_gives_identical_masks(k):
    img = _stage_free_cases()[k]
    full = segment(img)
    fast = segment(img, keep_stages=False)
    assert fast.found == full.found and fast.message == full.message
    assert np.array_equal(fast.nucleus, full.nucleus)
    assert np.array_equal(fast.cell, full.cell)
    assert fast.scale == full.scale or (np.isnan(fast.scale) and np.isnan(full.scale))
    assert set(fast.stages) <= {"input", "nucleus", "cell"}
    if full.found:
        assert {"hsi_saturation", "overlay", "edges"} <= set(full.stages)


@pytest.mark.realdata
def test_keep_stages_false_identical_on_real_images(pbc_dir, cellavision_dir):
    from wbc_classic.data.datasets import load_class_folders, load_segmentation_set
    from wbc_classic.io.images import read_image

    paths = list(load_class_folders(pbc_dir).paths[::2000])
    paths += [s.image_path for s in load_segmentation_set(cellavision_dir)[::20]]
    for p in paths:
        img = read_image(p)
        full, fast = segment(img), segment(img, keep_stages=False)
        assert np.array_equal(fast.nucleus, full.nucleus), p
        assert np.array_equal(fast.cell, full.cell), p


def _closed_min_path_reference(cost, r_min, r_max, max_step):
    """The original sequential-scan recursion, kept to pin the vectorised one."""
    cost = np.asarray(cost, dtype=np.float32)
    n_a, n_r = cost.shape
    idx = np.arange(n_r)
    allowed = np.ones((n_a, n_r), dtype=bool)
    allowed &= idx[None, :] >= np.asarray(r_min)[:, None]
    allowed &= idx[None, :] <= np.asarray(r_max)[:, None]
    allowed[~allowed.any(axis=1)] = True
    c3 = np.concatenate([np.where(allowed, cost, contour._BIG)] * 2, axis=0)
    acc = c3[0].copy()
    back = np.empty((2 * n_a, n_r), dtype=np.int32)
    for t in range(1, 2 * n_a):
        best, arg = acc.copy(), idx.copy()
        for s in range(1, max_step + 1):
            better = acc[s:] < best[:-s]
            best[:-s] = np.where(better, acc[s:], best[:-s])
            arg[:-s] = np.where(better, idx[s:], arg[:-s])
            better = acc[:-s] < best[s:]
            best[s:] = np.where(better, acc[:-s], best[s:])
            arg[s:] = np.where(better, idx[:-s], arg[s:])
        back[t] = arg
        acc = best + c3[t]
    path = np.empty(2 * n_a, dtype=np.int64)
    path[-1] = int(np.argmin(acc))
    for t in range(2 * n_a - 1, 0, -1):
        path[t - 1] = back[t, path[t]]
    return path[n_a:]


def test_closed_min_path_matches_sequential_reference():
    rng = np.random.default_rng(1)
    for trial in range(60):
        n_a, n_r = int(rng.integers(8, 60)), int(rng.integers(2, 40))
        cost = rng.normal(size=(n_a, n_r)).astype(np.float32)
        if trial % 2:
            cost = np.round(cost)  # many ties: the tie-breaking must match too
        r_min = rng.integers(0, n_r, n_a)
        r_max = np.maximum(r_min, rng.integers(0, n_r, n_a))
        step = int(rng.integers(1, 4))
        np.testing.assert_array_equal(contour.closed_min_path(cost, r_min, r_max, step),
                                      _closed_min_path_reference(cost, r_min, r_max, step))


# ----------------------------------------------------------------------------- fast helpers
def _random_masks(rng, n, shape=(70, 90)):
    """Blobby masks of every density (and an empty and a full one), some at the border."""
    yield np.zeros(shape, bool)
    yield np.ones(shape, bool)
    for _ in range(n):
        noise = cv2.GaussianBlur(rng.random(shape).astype(np.float32), (0, 0), 2.0)
        yield noise > np.quantile(noise, rng.uniform(0.05, 0.999))


def test_components_match_opencv_statistics():
    rng = np.random.default_rng(2)
    for mask in _random_masks(rng, 40):
        n, labels, stats, cents = cv2.connectedComponentsWithStats(mask.astype(np.uint8), 8)
        n2, labels2, areas, cents2 = morphology.components(mask, centroids=True)
        assert n2 == n
        np.testing.assert_array_equal(labels2, labels)
        np.testing.assert_array_equal(areas, stats[:, cv2.CC_STAT_AREA])
        np.testing.assert_array_equal(cents2[1:], cents[1:])   # bit-identical
        assert morphology.components(mask)[3] is None


@pytest.mark.parametrize("mask_size", [3, 5])
def test_distance_to_matches_whole_image_transform(mask_size):
    rng = np.random.default_rng(3)
    for mask in _random_masks(rng, 30):
        small = mask & (cv2.distanceTransform(mask.astype(np.uint8), cv2.DIST_L2, 3)
                        > rng.uniform(0, 6))           # a few small blobs, anywhere
        full = cv2.distanceTransform((~small).astype(np.uint8), cv2.DIST_L2, mask_size)
        for reach in (0.5, 1.5, 2.0, 7.3, 25.0):
            d = morphology.distance_to(small, reach, mask_size)
            near = full <= reach
            np.testing.assert_array_equal(d[near], full[near])     # bit-identical
            assert np.all(d[~near] > reach)
            np.testing.assert_array_equal(morphology.dilate_by_distance(small, reach),
                                          (cv2.distanceTransform((~small).astype(np.uint8),
                                                                 cv2.DIST_L2, 3) <= reach))


def _peak_local_max_markers(distance, min_distance, min_height, mask):
    """The scikit-image call that :func:`watershed.distance_peaks` replaces."""
    from skimage.feature import peak_local_max

    coords = peak_local_max(distance, min_distance=max(1, int(round(min_distance))),
                            threshold_abs=min_height, exclude_border=False,
                            labels=None if mask is None else mask.astype(np.int32))
    out = np.zeros(distance.shape, np.int32)
    out[coords[:, 0], coords[:, 1]] = np.arange(1, len(coords) + 1)
    return out


def test_distance_peaks_match_scikit_image():
    rng = np.random.default_rng(4)
    for k, mask in enumerate(_random_masks(rng, 60)):
        dist = watershed.distance_transform(mask)
        if k % 3 == 0:
            dist = np.round(dist)                      # plateaus: ties in height and place
        md, mh = rng.uniform(1, 7), rng.uniform(0, 2)
        for m in (mask, None):
            np.testing.assert_array_equal(watershed.distance_peaks(dist, md, mh, m),
                                          _peak_local_max_markers(dist, md, mh, m))
    flat = np.ones((20, 30), np.float32)               # no peak, but isolated mask pixels
    tiny = np.zeros((20, 30), bool)
    tiny[3, 4] = tiny[10, 10:20] = True
    for m in (tiny, None):
        np.testing.assert_array_equal(watershed.distance_peaks(flat, 2, 0.0, m),
                                      _peak_local_max_markers(flat, 2, 0.0, m))


def test_otsu_histogram_matches_numpy():
    from segmentation.threshold import _histogram

    rng = np.random.default_rng(5)
    samples = [rng.normal(size=20000).astype(np.float32), rng.random(3000),
               rng.integers(0, 5, 500).astype(np.float32),            # values on bin edges
               (rng.integers(0, 256, 5000) / 255).astype(np.float32),
               np.linspace(-1, 1, 257, dtype=np.float32), np.array([0.0, 1.0], np.float32)]
    img, _, _ = drawn_cell()
    samples.append(color.blue_green_chromaticity(img).ravel())
    for values in samples:
        lo, hi = float(values.min()), float(values.max())
        for nbins in (2, 7, 256):
            counts, edges = _histogram(values, nbins, lo, hi)
            ref_counts, ref_edges = np.histogram(values.astype(np.float64), nbins, (lo, hi))
            np.testing.assert_array_equal(counts, ref_counts)
            np.testing.assert_array_equal(edges, ref_edges)
