"""Tests for wbc_classic.preprocess.stain: normaliser registry, each method's defining property,
state."""

from __future__ import annotations

import json

import numpy as np
import pytest
from skimage.color import rgb2lab

from segmentation.color import background_light, optical_density
from wbc_classic.preprocess.stain import (
    NORMALIZERS,
    StainNormalizer,
    available_normalizers,
    fit_normalizer,
    macenko_stain_vectors,
    make_normalizer,
    normalizer_from_dict,
    od_to_rgb,
    relative_to_background,
)


def estimate_background(image):
    """The stain module's background: exact estimate on the 0-255 scale."""
    return background_light(image, exact=True, white=255.0)


def rgb_to_od(image, background):
    """The stain module's optical density: float64, levels clipped at 1, 0-255 scale."""
    return optical_density(image, background, white=255.0, offset=0.0, dtype=np.float64)

# two MGG-like stains in optical density (unit vectors): purple nuclear and pink eosin
NUCLEAR = np.array([0.65, 0.70, 0.30])
EOSIN = np.array([0.20, 0.95, 0.25])
NUCLEAR /= np.linalg.norm(NUCLEAR)
EOSIN /= np.linalg.norm(EOSIN)


def _two_stain_image(stains=(NUCLEAR, EOSIN), background=(250, 240, 230), shape=(64, 64),
                     seed=0) -> np.ndarray:
    """Synthetic smear: per-pixel concentrations of two stains rendered through Beer-Lambert."""
    rng = np.random.default_rng(seed)
    h, w = shape
    c = np.zeros((h, w, 2))
    c[: h // 2, :, 0] = rng.uniform(0.0, 1.0, (h // 2, w))
    c[h // 2:, :, 1] = rng.uniform(0.0, 0.8, (h - h // 2, w))
    c[h // 4: 3 * h // 4, w // 4: 3 * w // 4] *= rng.uniform(0, 1, (h // 2, w // 2, 1))
    c[:4] = 0.0  # background rows
    od = c @ np.stack(stains)
    return od_to_rgb(od, np.asarray(background, float))


def _random_image(seed: int, tint=(0, 0, 0), shape=(48, 48)) -> np.ndarray:
    rng = np.random.default_rng(seed)
    img = rng.normal((180, 150, 170), 30, shape + (3,)) + np.asarray(tint)
    return np.clip(img, 0, 255).astype(np.uint8)


def test_registry_and_invalid_name():
    assert set(available_normalizers()) == {"none", "reinhard", "macenko", "histogram",
                                            "white-balance"}
    assert set(NORMALIZERS) | {"none"} == set(available_normalizers())
    with pytest.raises(ValueError) as exc:
        make_normalizer("vahadane")
    msg = str(exc.value)
    assert "vahadane" in msg
    for name in available_normalizers():
        assert name in msg
    with pytest.raises(TypeError, match="bad parameters"):
        make_normalizer("reinhard", nonsense=1)
    assert make_normalizer("White_Balance").name == "white-balance"


def test_unfitted_normalizer_raises():
    with pytest.raises(RuntimeError, match="fit"):
        make_normalizer("reinhard").transform(_random_image(0))
    with pytest.raises(ValueError, match="reference"):
        make_normalizer("macenko").fit([])


def test_no_normaliser_is_none_everywhere():
    """"none" is one object, None, whichever way it is asked for."""
    assert make_normalizer("none") is None
    assert make_normalizer("Identity") is None
    assert fit_normalizer("none", [_random_image(1)]) is None
    assert normalizer_from_dict({"name": "none", "params": {}, "state": None}) is None
    with pytest.raises(TypeError, match="no parameters"):
        make_normalizer("none", max_pixels=3)
    assert "none" not in NORMALIZERS  # no identity class beside None


@pytest.mark.parametrize("name", sorted(NORMALIZERS))
def test_normalizers_are_sklearn_estimators(name):
    from sklearn.base import BaseEstimator, clone
    from sklearn.utils.validation import check_is_fitted

    norm = make_normalizer(name)
    assert isinstance(norm, StainNormalizer) and isinstance(norm, BaseEstimator)
    # no fitted state before fit: every attribute ending in "_" comes from fit
    assert not [k for k in vars(norm) if k.endswith("_")]
    params = norm.get_params()
    assert set(params) and all(not k.endswith("_") for k in params)
    if norm._needs_fit:
        from sklearn.exceptions import NotFittedError

        with pytest.raises(NotFittedError):
            check_is_fitted(norm)
    fitted = norm.fit([_two_stain_image(seed=3)])
    check_is_fitted(fitted)
    copy = clone(fitted)
    assert type(copy) is type(norm) and copy.get_params() == params
    assert not [k for k in vars(copy) if k.endswith("_")]   # clone drops the fitted state
    first = next(iter(params))
    changed = clone(norm).set_params(**{first: params[first]})
    assert changed.get_params() == params


def test_reinhard_matches_lab_statistics():
    src = _random_image(2, tint=(-40, 20, 30))
    ref = _random_image(3, tint=(30, -20, 0))
    out = make_normalizer("reinhard").fit([ref]).transform(src)
    assert out.shape == src.shape and out.dtype == np.uint8
    lab_out = rgb2lab(out).reshape(-1, 3)
    lab_ref = rgb2lab(ref).reshape(-1, 3)
    np.testing.assert_allclose(lab_out.mean(0), lab_ref.mean(0), atol=1.5)
    np.testing.assert_allclose(lab_out.std(0), lab_ref.std(0), rtol=0.1, atol=0.5)


def test_macenko_recovers_stain_vectors():
    img = _two_stain_image()
    od = rgb_to_od(img, estimate_background(img)).reshape(-1, 3)
    vecs = macenko_stain_vectors(od, beta=0.05, alpha=0.5)
    assert vecs.shape == (2, 3)
    # within a few degrees, in the nuclear-first order
    assert np.degrees(np.arccos(np.clip(vecs[0] @ NUCLEAR, -1, 1))) < 5
    assert np.degrees(np.arccos(np.clip(vecs[1] @ EOSIN, -1, 1))) < 5


def test_macenko_maps_source_stains_to_reference():
    other = np.array([0.45, 0.80, 0.40])
    other /= np.linalg.norm(other)
    pink = np.array([0.10, 0.90, 0.42])
    pink /= np.linalg.norm(pink)
    src = _two_stain_image(stains=(other, pink), background=(235, 245, 250), seed=1)
    ref = _two_stain_image(seed=2)
    norm = make_normalizer("macenko", beta=0.05, alpha=0.5).fit([ref])
    out = norm.transform(src)
    od = rgb_to_od(out, estimate_background(out)).reshape(-1, 3)
    vecs = macenko_stain_vectors(od, beta=0.05, alpha=0.5)
    assert np.degrees(np.arccos(np.clip(vecs[0] @ NUCLEAR, -1, 1))) < 6
    assert np.degrees(np.arccos(np.clip(vecs[1] @ EOSIN, -1, 1))) < 6
    # the reference background colour is adopted
    np.testing.assert_allclose(estimate_background(out), [250, 240, 230], atol=3)


def test_histogram_matching_makes_cdfs_match():
    src = _random_image(4, tint=(-50, 10, 40))
    ref = _random_image(5, tint=(20, -30, -10), shape=(64, 64))
    out = make_normalizer("histogram").fit([ref]).transform(src)
    levels = np.linspace(0.05, 0.95, 19)
    for ch in range(3):
        q_out = np.quantile(out[..., ch], levels)
        q_ref = np.quantile(ref[..., ch], levels)
        np.testing.assert_allclose(q_out, q_ref, atol=5)


def test_white_balance_whitens_a_tinted_background():
    img = np.full((40, 40, 3), (230, 210, 180), np.uint8)  # yellowish background
    img[10:30, 10:30] = (150, 80, 140)
    norm = make_normalizer("white-balance").fit(None)
    out = norm.transform(img)
    np.testing.assert_allclose(out[0, 0], [255, 255, 255], atol=1)
    # a reference with a given background colour is adopted instead
    ref = np.full((20, 20, 3), (250, 235, 215), np.uint8)
    out = make_normalizer("white-balance").fit([ref]).transform(img)
    np.testing.assert_allclose(out[0, 0], [250, 235, 215], atol=1)


@pytest.mark.parametrize("name", sorted(NORMALIZERS))
def test_state_round_trips_exactly(name):
    refs = [_two_stain_image(seed=3), _two_stain_image(seed=4)]
    norm = make_normalizer(name).fit(refs)
    d = norm.to_dict()
    d2 = json.loads(json.dumps(d))  # plain python values only
    assert d2 == d
    clone = normalizer_from_dict(d2)
    assert type(clone) is type(norm)
    assert clone.to_dict() == d
    src = _two_stain_image(stains=(EOSIN, NUCLEAR), seed=5)
    np.testing.assert_array_equal(clone.transform(src), norm.transform(src))


def test_od_helpers_invert_and_relative_background():
    img = _random_image(6)
    od = rgb_to_od(img, 255.0)
    assert od.shape == img.shape and od.dtype == np.float64 and od.min() >= 0
    back = od_to_rgb(od, 255.0)
    assert np.abs(back.astype(int) - np.maximum(img, 1)).max() <= 1
    flat = np.full((10, 10, 3), (200, 180, 160), np.uint8)
    np.testing.assert_allclose(relative_to_background(flat), 1.0)
    np.testing.assert_allclose(rgb_to_od(flat, estimate_background(flat)), 0.0)


def test_fit_normalizer_picks_seeded_references(tmp_path):
    from PIL import Image

    from wbc_classic.preprocess.stain import fit_normalizer

    rng = np.random.default_rng(0)
    images = [rng.integers(0, 256, (16, 16, 3), dtype=np.uint8) for _ in range(6)]
    assert fit_normalizer("none", []) is None
    a = fit_normalizer("reinhard", images, n_ref=3, seed=1)
    pick = np.sort(np.random.default_rng(1).choice(6, 3, replace=False))
    b = make_normalizer("reinhard").fit([images[i] for i in pick])
    assert a.to_dict() == b.to_dict()
    # paths are read, only the picked ones; n_ref above the count takes them all
    paths = []
    for i, im in enumerate(images):
        paths.append(tmp_path / f"{i}.png")
        Image.fromarray(im).save(paths[-1])
    assert fit_normalizer("reinhard", paths, n_ref=3, seed=1).to_dict() == a.to_dict()
    assert fit_normalizer("reinhard", images, n_ref=99).to_dict() == \
        make_normalizer("reinhard").fit(images).to_dict()
    with pytest.raises(ValueError, match="reference images"):
        fit_normalizer("macenko", [])
