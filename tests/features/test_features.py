"""Unit tests of the feature families and the FeatureExtractor on tiny synthetic arrays."""

from __future__ import annotations

import math

import numpy as np
import pytest
from skimage.color import rgb2lab
from skimage.draw import disk, ellipse
from skimage.feature import graycomatrix, graycoprops, local_binary_pattern

from features import (
    DEFAULT_FAMILIES,
    FAMILIES,
    FeatureExtractor,
    colour_features,
    count_lobes,
    geometry_features,
    glcm_features,
    lbp_features,
    ldp_codes,
    ldp_features,
    texture_features,
)
from features.geometry import region_shape
from features.ldp import LDP_CODES
from features.texture import haralick, masked_glcm, uniform_lbp
from segmentation.result import Segmentation


def _disk_mask(shape, centre, radius):
    m = np.zeros(shape, bool)
    rr, cc = disk(centre, radius, shape=shape)
    m[rr, cc] = True
    return m


def _cell(shape=(96, 96), seed=0):
    """Random-texture RGB image with a round cell (r=36) and nucleus (r=18)."""
    rng = np.random.default_rng(seed)
    image = rng.integers(0, 256, (*shape, 3), dtype=np.uint8)
    c = (shape[0] // 2, shape[1] // 2)
    cell = _disk_mask(shape, c, 36)
    nucleus = _disk_mask(shape, c, 18)
    return image, Segmentation(nucleus=nucleus, cell=cell)


# -- geometry -------------------------------------------------------------------------------
def test_disk_circularity_close_to_one():
    shape = region_shape(_disk_mask((120, 120), (60, 60), 40))
    assert shape["circularity"] == pytest.approx(1.0, abs=0.03)
    assert shape["eccentricity"] < 0.1
    assert shape["solidity"] == pytest.approx(1.0, abs=0.02)
    assert shape["equivalent_diameter"] == pytest.approx(80, rel=0.02)


def test_square_circularity_is_pi_over_4():
    m = np.zeros((80, 80), bool)
    m[10:70, 10:70] = True
    shape = region_shape(m)
    assert shape["circularity"] == pytest.approx(math.pi / 4, abs=0.01)
    assert shape["solidity"] == pytest.approx(1.0)
    assert shape["extent"] == pytest.approx(1.0)
    assert shape["area"] == 3600


def test_ellipse_axes_and_eccentricity():
    m = np.zeros((160, 200), bool)
    rr, cc = ellipse(80, 100, 30, 60, shape=m.shape)  # semi-axes 30 (rows) and 60 (cols)
    m[rr, cc] = True
    shape = region_shape(m)
    assert shape["eccentricity"] == pytest.approx(math.sqrt(1 - (30 / 60) ** 2), abs=0.01)
    assert shape["major_axis"] == pytest.approx(120, rel=0.02)
    assert shape["minor_axis"] == pytest.approx(60, rel=0.03)


def test_fourier_descriptors():
    from features.geometry import fourier_descriptors

    round_ = fourier_descriptors(_disk_mask((120, 120), (60, 60), 40))
    assert np.all(round_ < 0.01)
    two = _disk_mask((80, 140), (40, 40), 25) | _disk_mask((80, 140), (40, 95), 25)
    two[38:43, 40:95] = True
    fd = fourier_descriptors(two)
    assert fd[1] > 0.1  # the 2nd harmonic of a dumbbell
    # invariant to scale and rotation (up to digitisation)
    big = np.kron(two, np.ones((2, 2), bool))
    np.testing.assert_allclose(fourier_descriptors(big)[:4], fd[:4], atol=0.02)
    np.testing.assert_allclose(fourier_descriptors(two.T.copy())[:4], fd[:4], atol=0.02)
    assert not fourier_descriptors(np.zeros((5, 5), bool)).any()


def test_empty_mask_shape_is_zero():
    assert all(v == 0 for v in region_shape(np.zeros((10, 10), bool)).values())


@pytest.mark.parametrize("centres, expected", [
    ([(50, 50)], 1),
    ([(50, 30), (50, 75)], 2),
    ([(30, 30), (30, 75), (75, 50)], 3),
])
def test_lobe_count_of_separated_blobs(centres, expected):
    m = np.zeros((110, 110), bool)
    for k, c in enumerate(centres):
        m |= _disk_mask(m.shape, c, 14 + 2 * k)  # different sizes on purpose
    n_lobes, n_components = count_lobes(m)
    assert n_components == expected
    assert n_lobes == expected


def test_lobes_joined_by_a_thin_filament_count_as_two():
    m = _disk_mask((80, 140), (40, 35), 22) | _disk_mask((80, 140), (40, 105), 22)
    m[39:42, 35:105] = True  # 3-px chromatin bridge
    n_lobes, n_components = count_lobes(m)
    assert (n_lobes, n_components) == (2, 1)


def test_ellipse_is_one_lobe():
    m = np.zeros((100, 160), bool)
    rr, cc = ellipse(50, 80, 20, 60, shape=m.shape)
    m[rr, cc] = True
    assert count_lobes(m) == (1, 1)


def test_geometry_units_and_scale_invariance():
    image, seg = _cell()
    px = geometry_features(image, seg)
    um = geometry_features(image, seg, um_per_pixel=0.5)
    assert um["cell_area"] == pytest.approx(px["cell_area"] * 0.25)
    assert um["cell_perimeter"] == pytest.approx(px["cell_perimeter"] * 0.5)
    for key in ("cell_circularity", "nucleus_cell_area_ratio", "nucleus_hu1", "nucleus_zernike02"):
        assert um[key] == px[key]
    assert px["nucleus_cell_area_ratio"] == pytest.approx((18 / 36) ** 2, rel=0.05)
    assert px["nucleus_centroid_offset"] == pytest.approx(0.0, abs=0.02)
    with pytest.raises(ValueError):
        geometry_features(image, seg, um_per_pixel=-1.0)


def test_shape_features_roughly_invariant_to_image_scale():
    small = _disk_mask((100, 100), (50, 50), 20)
    big = _disk_mask((200, 200), (100, 100), 40)
    a = geometry_features(np.zeros((100, 100, 3), np.uint8), Segmentation(small, small))
    b = geometry_features(np.zeros((200, 200, 3), np.uint8), Segmentation(big, big))
    for key in ("nucleus_circularity", "nucleus_thickness", "nucleus_hu1", "nucleus_zernike04"):
        assert a[key] == pytest.approx(b[key], abs=0.05)
    assert b["cell_area"] == pytest.approx(4 * a["cell_area"], rel=0.03)


# -- texture --------------------------------------------------------------------------------
def test_masked_glcm_matches_skimage_without_mask():
    rng = np.random.default_rng(1)
    q = rng.integers(0, 8, (30, 40))
    # labels 1..8, nothing ignored; distance 1 only (skimage puts the diagonal neighbours at
    # round(d / sqrt(2)) for d > 1, we at chessboard distance d as Haralick)
    ours = masked_glcm(q + 1, 8, distances=(1,))[0]
    ref = graycomatrix(q.astype(np.uint8), [1], [0, np.pi / 4, np.pi / 2, 3 * np.pi / 4],
                       levels=8, symmetric=True)
    np.testing.assert_array_equal(ours, np.moveaxis(ref, (0, 1), (-2, -1)))
    props = haralick(ours)
    ref_p = graycoprops(ref / ref.sum(axis=(0, 1), keepdims=True), "contrast")
    np.testing.assert_allclose(props["contrast"], ref_p, rtol=1e-10)
    ref_c = graycoprops(ref / ref.sum(axis=(0, 1), keepdims=True), "correlation")
    np.testing.assert_allclose(props["correlation"], ref_c, rtol=1e-8)


def test_glcm_contrast_of_a_checkerboard():
    # 1-px checkerboard of 0/255: levels 0 and L-1 after quantisation. Horizontal and vertical
    # neighbours always differ by L-1, diagonal ones never: contrast (0+45+90+135)/4 = (L-1)^2/2
    # at distance 1; at distance 2 all pairs are equal: contrast 0, homogeneity 1.
    n, levels = 40, 32
    board = ((np.indices((n, n)).sum(axis=0) % 2) * 255).astype(np.uint8)
    image = np.repeat(board[:, :, None], 3, axis=2)
    full = np.ones((n, n), bool)
    f = glcm_features(image, Segmentation(nucleus=full, cell=full), levels=levels,
                      distances=(1, 2))
    assert f["glcm_nucleus_d1_contrast"] == pytest.approx((levels - 1) ** 2 / 2)
    assert f["glcm_nucleus_d1_dissimilarity"] == pytest.approx((levels - 1) / 2)
    assert f["glcm_nucleus_d1_homogeneity"] == pytest.approx(0.5 + 0.5 / (1 + (levels - 1) ** 2))
    assert f["glcm_nucleus_d2_contrast"] == 0.0
    assert f["glcm_nucleus_d2_homogeneity"] == pytest.approx(1.0)
    assert f["glcm_nucleus_d1_entropy"] == pytest.approx(1.0)  # two equiprobable pairs/angle
    assert all(v == 0 for k, v in f.items() if k.startswith("glcm_cytoplasm"))


def test_masked_out_pixels_do_not_affect_texture():
    image, seg = _cell()
    rng = np.random.default_rng(7)
    other = image.copy()
    other[~seg.cell] = rng.integers(0, 256, (int((~seg.cell).sum()), 3), dtype=np.uint8)
    for func in (texture_features, ldp_features):
        assert func(image, seg) == func(other, seg)
    # nucleus LBP / LDP histograms do not look at the cytoplasm either
    third = image.copy()
    cyto = seg.cytoplasm
    third[cyto] = rng.integers(0, 256, (int(cyto.sum()), 3), dtype=np.uint8)
    for func in (lbp_features, ldp_features):
        a, b = func(image, seg), func(third, seg)
        nuc = [k for k in a if "_nucleus_" in k]
        assert nuc and all(a[k] == b[k] for k in nuc)


def test_uniform_lbp_agrees_with_skimage():
    rng = np.random.default_rng(3)
    g = rng.integers(0, 256, (50, 60)).astype(np.uint8)
    for points, radius in ((8, 1.0), (16, 2.0)):
        ref = local_binary_pattern(g, points, radius, method="uniform")[3:-3, 3:-3]
        ours = uniform_lbp(g, points, radius)[3:-3, 3:-3]
        assert (ref == ours).mean() > 0.999


def test_lbp_histograms_sum_to_one():
    image, seg = _cell()
    f = lbp_features(image, seg)
    for tag in ("lbp8r1", "lbp16r2"):
        for region in ("nucleus", "cytoplasm"):
            total = sum(v for k, v in f.items() if k.startswith(f"{tag}_{region}_"))
            assert total == pytest.approx(1.0)


# -- LDP ------------------------------------------------------------------------------------
def test_ldp_code_of_a_known_patch():
    # neighbours a..i of  [[1, 2, 4], [8, 0, 16], [32, 64, 128]]  sum to 255; Kirsch mask i
    # gives 5*S - 3*(255 - S) = 8*S - 765 with S the sum of its three "5" neighbours:
    # M0 E  (c,f,i) S=148 ->  419   M1 NE (b,c,f) S=22  -> -589   M2 N (a,b,c) S=7   -> -709
    # M3 NW (a,b,d) S=11  -> -677   M4 W  (a,d,g) S=41  -> -437   M5 SW (d,g,h) S=104 ->   67
    # M6 S  (g,h,i) S=224 -> 1027   M7 SE (f,h,i) S=208 ->  899
    # top-3 |m|: M6, M7, M2 -> bits 6, 7, 2 -> 64 + 128 + 4 = 196
    patch = np.array([[1, 2, 4], [8, 0, 16], [32, 64, 128]], dtype=np.uint8)
    assert ldp_codes(patch)[1, 1] == 196
    # ties are broken towards the lower mask index: |m| = 40, 24, 16, 24, 16, 24, 32, 16
    # -> M0, M6 and the first of the 24s, M1: 1 + 2 + 64 = 67
    patch = np.array([[3, 9, 1], [6, 0, 2], [8, 4, 7]], dtype=np.uint8)
    assert ldp_codes(patch)[1, 1] == 67


def test_rotation_invariant_ldp():
    from features.ldp import LDP_RI_CLASS

    assert np.bincount(LDP_RI_CLASS).tolist() == [8] * 7  # 7 classes of 8 rotations each
    image, seg = _cell()
    full = ldp_features(image, seg)
    ri = ldp_features(image, seg, rotation_invariant=True)
    assert len(ri) == 14
    for region in ("nucleus", "cytoplasm"):
        h = np.array([full[f"ldp_{region}_{b:02d}"] for b in range(56)])
        np.testing.assert_allclose([ri[f"ldpri_{region}_{k}"] for k in range(7)],
                                   np.bincount(LDP_RI_CLASS, weights=h), atol=1e-12)
    # a 90-degree rotation of the image moves codes within their rotation class
    rot = ldp_features(np.ascontiguousarray(np.rot90(image)),
                       Segmentation(nucleus=np.rot90(seg.nucleus), cell=np.rot90(seg.cell)),
                       rotation_invariant=True)
    assert rot == pytest.approx(ri, abs=0.02)
    fx = FeatureExtractor(families=("ldp",), ldp_rotation_invariant=True)
    assert fx.get_feature_names_out().size == 3 + 14


def test_ldp_codes_have_three_bits_and_histograms_sum_to_one():
    image, seg = _cell()
    codes = ldp_codes(image[..., 0])
    assert np.isin(codes, LDP_CODES).all()
    f = ldp_features(image, seg)
    assert len(f) == 112
    for region in ("nucleus", "cytoplasm"):
        assert sum(v for k, v in f.items() if k.startswith(f"ldp_{region}_")) == \
            pytest.approx(1.0)


# -- colour ---------------------------------------------------------------------------------
def test_colour_of_a_constant_image():
    image = np.empty((40, 40, 3), np.uint8)
    image[:] = (200, 100, 50)
    cell = _disk_mask((40, 40), (20, 20), 15)
    nucleus = _disk_mask((40, 40), (20, 20), 7)
    f = colour_features(image, Segmentation(nucleus=nucleus, cell=cell))
    lab = rgb2lab(image[:1, :1]).ravel()  # about (53.6, 36.3, 45.4)
    for region in ("nucleus", "cytoplasm"):
        assert f[f"colour_{region}_r_mean"] == pytest.approx(200 / 255)
        assert f[f"colour_{region}_g_p10"] == pytest.approx(100 / 255)
        assert f[f"colour_{region}_b_p90"] == pytest.approx(50 / 255)
        assert f[f"colour_{region}_i_mean"] == pytest.approx(350 / 765)
        assert f[f"colour_{region}_r_std"] == 0.0
        assert f[f"colour_{region}_s_skew"] == 0.0
        # CIE L*a*b* (D65) of (200, 100, 50), within the 8-bit quantisation of OpenCV's Lab
        for ch, ref in zip(("l", "a", "bb"), lab, strict=True):
            assert f[f"colour_{region}_{ch}_mean"] == pytest.approx(ref, abs=0.8)
    assert f["colour_nc_r_diff"] == 0.0
    assert f["gran_cytoplasm_local_std"] == pytest.approx(0.0, abs=1e-3)
    assert f["gran_cytoplasm_r1"] == 0.0


def test_granularity_sees_fine_granules():
    rng = np.random.default_rng(0)
    plain = np.full((80, 80, 3), 220, np.uint8)
    grainy = plain.copy()
    spots = rng.random((80, 80)) < 0.15
    grainy[spots] = 90  # isolated dark pixels: removed by the radius-1 opening
    cell = _disk_mask((80, 80), (40, 40), 30)
    nucleus = _disk_mask((80, 80), (40, 40), 8)
    seg = Segmentation(nucleus=nucleus, cell=cell)
    a, b = colour_features(plain, seg), colour_features(grainy, seg)
    assert b["gran_cytoplasm_r1"] > a["gran_cytoplasm_r1"] + 0.05
    assert b["gran_cytoplasm_local_std"] > a["gran_cytoplasm_local_std"] + 10


# -- extractor ------------------------------------------------------------------------------
def test_extractor_shapes_dtype_names():
    pairs = [_cell(seed=s) for s in range(3)]
    fx = FeatureExtractor()
    assert fx.fit(pairs) is fx
    X = fx.transform(pairs)
    names = fx.get_feature_names_out()
    assert X.dtype == np.float32
    assert X.shape == (3, names.size)
    assert len(set(names)) == names.size
    assert np.isfinite(X).all()
    assert list(names[:3]) == ["segmentation_found", "nucleus_empty", "cytoplasm_empty"]
    np.testing.assert_array_equal(X[:, 0], 1.0)
    np.testing.assert_array_equal(fx.feature_names_out_, names)


def test_extractor_is_deterministic():
    pairs = [_cell(seed=s) for s in range(2)]
    a = FeatureExtractor().transform(pairs)
    b = FeatureExtractor().fit(pairs).transform(list(reversed(pairs)))[::-1]
    np.testing.assert_array_equal(a, b)


def test_families_are_switchable():
    pairs = [_cell()]
    full = FeatureExtractor(families=FAMILIES)
    X = full.transform(pairs)
    slices = full.family_slices()
    assert list(slices) == ["flags", *FAMILIES]
    assert list(FeatureExtractor().family_slices()) == ["flags", *DEFAULT_FAMILIES]
    assert "density" in FAMILIES and "density" not in DEFAULT_FAMILIES
    for fam in FAMILIES:
        fx = FeatureExtractor(families=(fam,))
        Xf = fx.transform(pairs)
        assert Xf.shape[1] == 3 + (slices[fam].stop - slices[fam].start)
        np.testing.assert_array_equal(Xf[:, 3:], X[:, slices[fam]])
    with pytest.raises(ValueError, match="unknown"):
        FeatureExtractor(families=("bogus",)).transform(pairs)
    assert FeatureExtractor(families=()).transform(pairs).shape == (1, 3)


@pytest.mark.parametrize("case", ["not_found", "empty_nucleus", "empty_cytoplasm"])
def test_empty_regions_give_finite_values_and_flags(case):
    shape = (60, 60)
    image = np.random.default_rng(0).integers(0, 256, (*shape, 3), dtype=np.uint8)
    cell = _disk_mask(shape, (30, 30), 20)
    if case == "not_found":
        seg = Segmentation.empty(shape)
    elif case == "empty_nucleus":
        seg = Segmentation(nucleus=np.zeros(shape, bool), cell=cell)
    else:
        seg = Segmentation(nucleus=cell.copy(), cell=cell)
    fx = FeatureExtractor(families=("geometry", "texture", "ldp", "colour"))
    x = fx.transform([(image, seg)])[0]
    names = list(fx.get_feature_names_out())
    assert np.isfinite(x).all()
    flags = dict(zip(names[:3], x[:3], strict=True))
    if case == "not_found":
        assert flags == {"segmentation_found": 0, "nucleus_empty": 1, "cytoplasm_empty": 1}
        assert not x[3:].any()
    elif case == "empty_nucleus":
        assert flags == {"segmentation_found": 1, "nucleus_empty": 1, "cytoplasm_empty": 0}
        assert x[names.index("nucleus_area")] == 0
        assert x[names.index("cell_area")] > 0
    else:
        assert flags == {"segmentation_found": 1, "nucleus_empty": 0, "cytoplasm_empty": 1}
        assert x[names.index("nucleus_cell_area_ratio")] == pytest.approx(1.0)


def test_found_but_blank_masks_count_as_not_found():
    seg = Segmentation(nucleus=np.zeros((20, 20), bool), cell=np.zeros((20, 20), bool))
    x = FeatureExtractor().transform([(np.zeros((20, 20, 3), np.uint8), seg)])[0]
    assert x[0] == 0 and np.isfinite(x).all()


def test_features_do_not_depend_on_canvas_size():
    image, seg = _cell((96, 96))
    big = np.zeros((200, 150, 3), np.uint8)
    big[50:146, 20:116] = image
    nuc = np.zeros((200, 150), bool)
    cell = nuc.copy()
    nuc[50:146, 20:116] = seg.nucleus
    cell[50:146, 20:116] = seg.cell
    fx = FeatureExtractor()
    a = fx.transform([(image, seg)])
    b = fx.transform([(big, Segmentation(nucleus=nuc, cell=cell))])
    np.testing.assert_array_equal(a, b)


def test_per_image_pixel_size_hook():
    image, seg = _cell()
    fx = FeatureExtractor(families=("geometry",))
    names = list(fx.get_feature_names_out())
    X = fx.transform([(image, seg), (image, seg, 0.5), (image, seg, None)])
    area = names.index("cell_area")
    assert X[1, area] == pytest.approx(X[0, area] * 0.25)
    assert X[2, area] == X[0, area]
    scaled = FeatureExtractor(families=("geometry",), um_per_pixel=0.5).transform([(image, seg)])
    np.testing.assert_array_equal(scaled[0], X[1])


def test_bad_inputs_raise():
    image, seg = _cell()
    fx = FeatureExtractor()
    with pytest.raises(ValueError, match="uint8"):
        fx.transform([(image.astype(np.float32), seg)])
    with pytest.raises(ValueError, match="match"):
        fx.transform([(image[:50], seg)])
    with pytest.raises(TypeError, match="pairs"):
        fx.transform([image])


def test_sklearn_conventions():
    from sklearn.base import clone

    fx = FeatureExtractor(families=("geometry",), glcm_levels=16)
    params = fx.get_params()
    assert params["glcm_levels"] == 16 and params["families"] == ("geometry",)
    twin = clone(fx)
    assert twin.get_params() == params
    # parameters that went through JSON (lists) give the same features
    pairs = [_cell()]
    listy = FeatureExtractor(families=["texture"], glcm_distances=[1, 2, 4],
                             lbp=[[8, 1.0], [16, 2.0]])
    np.testing.assert_array_equal(listy.transform(pairs),
                                  FeatureExtractor(families=("texture",)).transform(pairs))
    assert fx.transform([]).shape == (0, fx.get_feature_names_out().size)


def test_set_output_pandas():
    pd = pytest.importorskip("pandas")
    fx = FeatureExtractor(families=("geometry",)).set_output(transform="pandas")
    df = fx.fit_transform([_cell()])
    assert isinstance(df, pd.DataFrame)
    assert list(df.columns) == list(fx.get_feature_names_out())


def test_synthetic_cells_give_finite_features():
    synthetic = pytest.importorskip("wbc_classic.data.synthetic")
    pairs = []
    for label in ("neutrophil", "lymphocyte"):
        c = synthetic.make_cell(label, size=96, rng=1)
        pairs.append((c.image[..., :3], Segmentation(nucleus=c.nucleus, cell=c.cell)))
    X = FeatureExtractor().transform(pairs)
    assert np.isfinite(X).all() and (X[:, 0] == 1).all()


def test_masked_glcm_matches_bincount_reference():
    """The OpenCV-histogram path counts exactly what a bincount of pair codes counts."""
    from features.texture import _offsets, _pairs

    rng = np.random.default_rng(7)
    for levels, n_blocks in ((8, 1), (32, 2)):
        n_labels = n_blocks * levels + 1
        q = rng.integers(0, n_labels, (37, 53)).astype(np.int32)
        q[:5] = 0
        ours = masked_glcm(q, levels, distances=(1, 2, 4), n_blocks=n_blocks)
        for i, d in enumerate((1, 2, 4)):
            for j, (dr, dc) in enumerate(_offsets(d)):
                a, b = _pairs(q, dr, dc)
                full = np.bincount((a * n_labels + b).ravel(),
                                   minlength=n_labels ** 2).reshape(n_labels, n_labels)
                for k in range(n_blocks):
                    s = slice(k * levels + 1, (k + 1) * levels + 1)
                    np.testing.assert_array_equal(ours[k, i, j], full[s, s] + full[s, s].T)


def test_erode_treats_outside_as_background():
    import cv2

    from features._common import erode

    mask = np.ones((6, 7), bool)
    mask[2, 3] = False
    padded = np.pad(mask, 2)
    ref = cv2.erode(padded.astype(np.uint8), np.ones((5, 5), np.uint8))[2:-2, 2:-2]
    np.testing.assert_array_equal(erode(mask, 2), ref.astype(bool))
    assert not erode(mask, 1)[0].any() and not erode(mask, 1)[:, -1].any()


# -- stain-robust optical density ---------------------------------------------------------
def _smear_cell(label="lymphocyte", seed=3):
    from wbc_classic.data.synthetic import make_cell

    c = make_cell(label, size=128, rng=seed)
    return c.image[..., :3].copy(), Segmentation(nucleus=c.nucleus, cell=c.cell)


def _restain(image, light, gain=1.0, white=(1.0, 1.0, 1.0)):
    """Same slide, other stain strength (OD x gain) and other lamp / white balance."""
    from segmentation.color import optical_density

    od = optical_density(image, light) * gain
    out = np.asarray(white) * light * 10.0 ** (-od) * 255.0 - 0.5
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)


def test_density_features_names_and_empty_regions():
    from features import density_features

    image, seg = _smear_cell()
    f = density_features(image, seg)
    assert len(f) == 62 and all(np.isfinite(v) for v in f.values())
    assert f["od_rbc_missing"] == 0.0 and f["od_nucleus_sum_mean"] > f["od_cytoplasm_sum_mean"]
    chroma = [f[f"od_nucleus_chroma_{c}"] for c in "rgb"]
    assert abs(sum(chroma) - 1.0) < 1e-6
    empty = density_features(image, Segmentation.empty(seg.cell.shape))
    assert list(empty) == list(f) and not any(empty.values())
    # no red cells in the field: the ratios are 0 and flagged
    bare = image.copy()
    bare[~seg.cell] = bare[0, 0]
    g = density_features(bare, seg)
    assert g["od_rbc_missing"] == 1.0 and g["od_nucleus_rbc_r"] == 0.0


def test_density_features_cancel_stain_strength_and_white_balance():
    from features import density_features
    from segmentation.color import background_light

    image, seg = _smear_cell()
    light = background_light(image)
    base = density_features(image, seg)
    stronger = density_features(_restain(image, light, gain=1.3), seg)
    tinted = density_features(_restain(image, light, white=(0.9, 1.0, 0.85)), seg)
    invariant = [k for k in base if ("chroma" in k or "_rbc_" in k or "nc_ratio" in k)
                 and k != "od_rbc_missing"]
    assert len(invariant) == 15
    for other in (stronger, tinted):
        change = np.array([abs(other[k] / base[k] - 1.0) for k in invariant])
        # uint8 rounding moves the faint channels (cytoplasm blue) a little
        assert np.median(change) < 0.03 and change.max() < 0.15, \
            dict(zip(invariant, change, strict=True))
    # the stain strength does move the raw densities (so the test above can fail)
    assert stronger["od_nucleus_sum_mean"] > 1.2 * base["od_nucleus_sum_mean"]
    # plain colour statistics are not invariant
    assert colour_features(_restain(image, light, gain=1.3), seg)["colour_nucleus_i_mean"] != \
        pytest.approx(colour_features(image, seg)["colour_nucleus_i_mean"], rel=0.05)
