"""Tests for wbc_classic.evaluation.leakage: hashes, popcount, exact/near duplicates across a
split."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from scipy import ndimage

import wbc_classic.evaluation.leakage as leakage
from wbc_classic.evaluation.leakage import (
    LeakageReport,
    dhash,
    find_duplicates,
    find_leakage,
    fingerprint,
    hamming_distances,
    phash,
    pixel_sha256,
    popcount64,
)


def _cell(seed: int, size: int = 96) -> np.ndarray:
    """A smooth random 'cell-like' RGB image, different for every seed."""
    rng = np.random.default_rng(seed)
    base = ndimage.gaussian_filter(rng.normal(size=(size, size)), 6)
    base = (base - base.min()) / (np.ptp(base) + 1e-9)
    yy, xx = np.mgrid[:size, :size]
    cy, cx = rng.uniform(0.3, 0.7, 2) * size
    disc = ((yy - cy) ** 2 + (xx - cx) ** 2) < (rng.uniform(0.15, 0.3) * size) ** 2
    rgb = np.stack([220 - 120 * base, 200 - 150 * base * disc, 230 - 60 * base], axis=2)
    rgb[disc] *= 0.6
    return np.clip(rgb, 0, 255).astype(np.uint8)


def _jpeg(a: np.ndarray, quality: int) -> np.ndarray:
    buf = io.BytesIO()
    Image.fromarray(a).save(buf, format="JPEG", quality=quality)
    buf.seek(0)
    return np.asarray(Image.open(buf).convert("RGB"))


def _bits(x: int) -> int:
    return bin(int(x)).count("1")


# ----------------------------------------------------------------------------- hashes


def test_phash_basic() -> None:
    a = _cell(0)
    h = phash(a)
    assert isinstance(h, np.uint64)
    assert phash(a.copy()) == h
    assert phash(a.astype(np.float64)) == h  # dtype does not matter
    assert 24 <= _bits(h) <= 40  # median threshold -> about half the bits set
    g = a.mean(axis=2)
    assert isinstance(phash(g), np.uint64)
    assert isinstance(dhash(a), np.uint64)


def test_hash_robust_to_reencode_and_brightness() -> None:
    for seed in range(5):
        a = _cell(seed)
        variants = [_jpeg(a, 60), _jpeg(a, 30),
                    np.clip(a.astype(int) + 8, 0, 255).astype(np.uint8),
                    np.clip(a.astype(int) - 8, 0, 255).astype(np.uint8)]
        for v in variants:
            assert _bits(phash(a) ^ phash(v)) <= 4


def test_hash_scale_invariant() -> None:
    a = _cell(1, size=128)
    small = np.asarray(Image.fromarray(a).resize((64, 64), Image.Resampling.BOX))
    assert _bits(phash(a) ^ phash(small)) <= 4


def test_hash_separates_different_images() -> None:
    hashes = [phash(_cell(s)) for s in range(30)]
    d = hamming_distances(np.array(hashes), np.array(hashes))
    off = d[~np.eye(30, dtype=bool)]
    assert off.min() > 8


def test_hash_rejects_bad_shapes() -> None:
    with pytest.raises(ValueError):
        phash(np.zeros((4, 4, 5)))
    with pytest.raises(ValueError):
        phash(np.zeros((0, 4)))


def test_tiny_and_flat_images() -> None:
    assert isinstance(phash(np.zeros((3, 3, 3), np.uint8)), np.uint64)  # upsampled
    assert phash(np.full((20, 20, 3), 7, np.uint8)) == phash(np.full((20, 20, 3), 7, np.uint8))


def test_pixel_sha256() -> None:
    a = _cell(2)
    assert pixel_sha256(a) == pixel_sha256(a.copy())
    assert pixel_sha256(a) != pixel_sha256(a[:, :-1])
    b = a.copy()
    b[0, 0, 0] ^= 1
    assert pixel_sha256(a) != pixel_sha256(b)
    # shape is part of the key: same bytes, different shape
    assert pixel_sha256(a.reshape(-1)) != pixel_sha256(a)


# ----------------------------------------------------------------------------- popcount


def test_popcount_and_hamming() -> None:
    rng = np.random.default_rng(0)
    x = rng.integers(0, 2**63, size=50, dtype=np.uint64) * np.uint64(2)
    x = np.concatenate([x, np.array([0, 2**64 - 1], dtype=np.uint64)])
    expected = np.array([_bits(v) for v in x])
    np.testing.assert_array_equal(popcount64(x), expected)
    a, b = x[:7], x[7:12]
    d = hamming_distances(a, b)
    assert d.shape == (7, 5)
    assert d[2, 3] == _bits(int(a[2]) ^ int(b[3]))
    assert hamming_distances(a, a).diagonal().max() == 0


def test_popcount_lookup_table_fallback(monkeypatch: pytest.MonkeyPatch) -> None:
    x = np.random.default_rng(1).integers(0, 2**63, size=(4, 6), dtype=np.uint64)
    fast = popcount64(x)
    monkeypatch.setattr(leakage, "_HAS_BITWISE_COUNT", False)
    slow = popcount64(x)
    np.testing.assert_array_equal(fast, slow)
    assert slow.shape == (4, 6)


def test_close_pairs_chunking() -> None:
    rng = np.random.default_rng(2)
    a = rng.integers(0, 2**63, 300, dtype=np.uint64)
    b = np.concatenate([a[:40] ^ np.uint64(3), rng.integers(0, 2**63, 50, dtype=np.uint64)])
    full = leakage._close_pairs(a, b, 4)
    chunked = leakage._close_pairs(a, b, 4, chunk_elems=500)
    np.testing.assert_array_equal(full, chunked)
    assert len(full) >= 40
    assert leakage._close_pairs(a[:0], b, 4).shape == (0, 3)


# ----------------------------------------------------------------------------- find_leakage


def _write(path: Path, a: np.ndarray, **kw) -> Path:
    Image.fromarray(a).save(path, **kw)
    return path


@pytest.fixture()
def split_files(tmp_path: Path) -> tuple[list[Path], list[Path]]:
    train = [_write(tmp_path / f"train_{i}.png", _cell(i)) for i in range(8)]
    test = [
        _write(tmp_path / "copy_of_3.png", _cell(3)),  # exact (same pixels, new name)
        _write(tmp_path / "reenc_5.jpg", _cell(5), quality=60),  # JPEG re-encode
        _write(tmp_path / "bright_6.png",
               np.clip(_cell(6).astype(int) + 6, 0, 255).astype(np.uint8)),  # brighter
        _write(tmp_path / "new_100.png", _cell(100)),
        _write(tmp_path / "new_101.png", _cell(101)),
        _write(tmp_path / "new_102.bmp", _cell(102)),
    ]
    return train, test


def test_find_leakage_paths(split_files: tuple[list[Path], list[Path]]) -> None:
    train, test = split_files
    rep = find_leakage(train, test)
    assert isinstance(rep, LeakageReport)
    assert rep.n_train == 8 and rep.n_test == 6
    np.testing.assert_array_equal(rep.exact_pairs, [[3, 0]])
    assert rep.exact_pairs.dtype == np.int64 and rep.near_pairs.dtype == np.int64
    assert {(int(i), int(j)) for i, j, _ in rep.near_pairs} == {(5, 1), (6, 2)}
    assert np.all(rep.near_pairs[:, 2] <= 4)
    np.testing.assert_array_equal(rep.leaked_test, [0, 1, 2])
    assert rep.n_exact == 1 and rep.n_near == 2 and rep.n_leaked_test == 3
    assert not rep.is_clean
    s = rep.summary()
    assert "exact duplicates: 1" in s and "near duplicates: 2" in s
    assert "copy_of_3.png" in s and "reenc_5.jpg" in s
    assert rep.seconds >= 0
    d = rep.to_dict()
    assert d["n_exact"] == 1 and d["exact_pairs"] == [[3, 0]]


def test_find_leakage_clean(split_files: tuple[list[Path], list[Path]]) -> None:
    train, test = split_files
    rep = find_leakage(train, test[3:])
    assert rep.is_clean and rep.n_leaked_test == 0 and rep.leaked_test.shape == (0,)
    assert "exact duplicates: 0" in str(rep)


def test_find_leakage_thresholds(split_files: tuple[list[Path], list[Path]]) -> None:
    train, test = split_files
    strict = find_leakage(train, test, max_distance=0)
    assert strict.n_exact == 1  # exact pairs do not depend on the threshold
    loose = find_leakage(train, test, max_distance=64)
    assert loose.n_near == 8 * 6 - 1  # every pair except the exact one
    with pytest.raises(ValueError, match="max_distance"):
        find_leakage(train, test, max_distance=65)
    with pytest.raises(ValueError, match="hash"):
        find_leakage(train, test, hash="ahash")  # type: ignore[arg-type]


def test_find_leakage_dhash(split_files: tuple[list[Path], list[Path]]) -> None:
    train, test = split_files
    rep = find_leakage(train, test, hash="dhash", max_distance=6)
    assert rep.hash_name == "dhash" and rep.n_exact == 1
    assert {0, 1, 2} <= set(rep.leaked_test.tolist()) and rep.n_leaked_test == 3


def test_find_leakage_parallel_matches(split_files: tuple[list[Path], list[Path]]) -> None:
    train, test = split_files
    a = find_leakage(train, test, n_jobs=1)
    b = find_leakage(train, test, n_jobs=2)
    np.testing.assert_array_equal(a.exact_pairs, b.exact_pairs)
    np.testing.assert_array_equal(a.near_pairs, b.near_pairs)


def test_find_leakage_arrays() -> None:
    train = np.stack([_cell(i) for i in range(6)])
    test_list = [train[2].copy(), _jpeg(train[4], 50), _cell(50)]
    rep = find_leakage(train, test_list)
    np.testing.assert_array_equal(rep.exact_pairs, [[2, 0]])
    np.testing.assert_array_equal(rep.near_pairs[:, :2], [[4, 1]])
    assert rep.test_names == ["#0", "#1", "#2"]
    grey = train.mean(axis=3).astype(np.uint8)
    rep2 = find_leakage(grey, grey[[1]])
    np.testing.assert_array_equal(rep2.exact_pairs, [[1, 0]])
    with pytest.raises(ValueError, match="2-D"):
        find_leakage(grey[0], grey)


def test_find_leakage_imageset(tmp_path: Path) -> None:
    from wbc_classic.data.datasets import load_class_folders

    for c, seeds in (("mono", [0, 1]), ("lymph", [2, 3])):
        (tmp_path / c).mkdir()
        for s in seeds:
            _write(tmp_path / c / f"{s}.png", _cell(s))
    ds = load_class_folders(tmp_path)
    rep = find_leakage(ds.subset([0, 1]), ds.subset([2, 3]))
    assert rep.is_clean
    rep2 = find_leakage(ds, [tmp_path / "mono" / "1.png"])
    assert rep2.n_exact == 1


def test_find_leakage_reports_unreadable(split_files: tuple[list[Path], list[Path]],
                                         tmp_path: Path) -> None:
    train, test = split_files
    bad = tmp_path / "bad.jpg"
    bad.write_text("not an image")
    rep = find_leakage([*train, bad], [tmp_path / "missing.png", *test])
    assert len(rep.train_failures) == 1 and rep.train_failures[0].index == 8
    assert len(rep.test_failures) == 1 and "not found" in rep.test_failures[0].reason
    assert rep.n_exact == 1 and rep.n_near == 2  # indices still refer to the inputs
    np.testing.assert_array_equal(rep.exact_pairs, [[3, 1]])
    assert "unreadable: 1 train, 1 test" in rep.summary()


def test_fingerprint() -> None:
    imgs = [_cell(i) for i in range(3)]
    f = fingerprint(imgs)
    assert len(f) == 3 and f.ok.all() and f.phash.dtype == np.uint64
    assert f.sha[0] == pixel_sha256(imgs[0]) and f.phash[1] == phash(imgs[1])
    assert f.dhash[2] == dhash(imgs[2])


def test_find_duplicates(tmp_path: Path) -> None:
    items = [_cell(0), _cell(1), _cell(0), _jpeg(_cell(1), 70), _cell(2)]
    rep = find_duplicates(items)
    np.testing.assert_array_equal(rep.exact_pairs, [[0, 2]])
    np.testing.assert_array_equal(rep.near_pairs[:, :2], [[1, 3]])
    assert np.all(rep.near_pairs[:, 0] < rep.near_pairs[:, 1])
    assert find_duplicates([_cell(i) for i in range(5)]).is_clean


# ----------------------------------------------------------------------------- real data


@pytest.mark.realdata
def test_real_pbc_known_duplicate(pbc_dir: Path) -> None:
    # found by the full PBC check: two file names, identical pixels
    a = pbc_dir / "eosinophil" / "EO_65638.jpg"
    b = pbc_dir / "eosinophil" / "EO_873756.jpg"
    others = sorted((pbc_dir / "eosinophil").glob("*.jpg"))[:20]
    others = [p for p in others if p.name not in (a.name, b.name)]
    rep = find_leakage([a, *others], [b])
    np.testing.assert_array_equal(rep.exact_pairs, [[0, 0]])
    rep2 = find_leakage(others[:10], others[10:])
    assert rep2.is_clean


@pytest.mark.realdata
@pytest.mark.slow
def test_real_pbc_known_duplicates(pbc_dir: Path) -> None:
    # PBC's eosinophil folder holds one exact copy (EO_65638 / EO_873756) and one shifted
    # near copy (EO_246684 / EO_409717); the whole-set 80/20 check is measured by
    # `python -m benchmarks.run --preset pbc8`, this keeps CI to one class folder.
    from wbc_classic.data.datasets import load_class_folders

    ds = load_class_folders(pbc_dir, classes=["eosinophil"])
    rep = find_duplicates(ds.paths)
    assert not rep.train_failures
    names = [Path(p).stem for p in ds.paths]
    exact = {frozenset((names[a], names[b])) for a, b in rep.exact_pairs}
    near = {frozenset((names[int(a)], names[int(b)])) for a, b, _ in rep.near_pairs}
    assert frozenset(("EO_65638", "EO_873756")) in exact
    assert frozenset(("EO_246684", "EO_409717")) in near | exact
    assert len(exact) + len(near) < 0.01 * len(ds.paths)  # a handful, not systematic
