"""Tests of dataset-level extraction: failures reported, cache hits, parallel and Dask runs."""

from __future__ import annotations

import dataclasses
import functools
import threading
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from skimage.draw import disk

from features import FeatureExtractor
from segmentation.result import Segmentation
from wbc_classic.classical.extraction import (
    ExtractionResult,
    cache_key,
    extract_features,
    segmenter_settings,
)


def disk_segmenter(image: np.ndarray, radius: int = 12) -> Segmentation:
    """Toy segmenter: a centred cell disk and a nucleus disk of half its radius."""
    h, w = image.shape[:2]
    cell = np.zeros((h, w), bool)
    nucleus = cell.copy()
    cell[disk((h // 2, w // 2), radius, shape=(h, w))] = True
    nucleus[disk((h // 2, w // 2), radius // 2, shape=(h, w))] = True
    if image.mean() > 250:  # blank image: nothing found
        return Segmentation.empty((h, w))
    return Segmentation(nucleus=nucleus, cell=cell)


class CountingSegmenter:
    """Counts its calls (thread-safe); settings exposed through get_params for the cache key."""

    def __init__(self, radius: int = 12):
        self.radius = radius
        self.calls = 0
        self._lock = threading.Lock()

    def get_params(self, deep: bool = False) -> dict:
        return {"radius": self.radius}

    def __call__(self, image: np.ndarray) -> Segmentation:
        with self._lock:
            self.calls += 1
        return disk_segmenter(image, self.radius)


def _images(n: int, seed: int = 0, size: int = 40) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [rng.integers(0, 200, (size, size + i, 3), dtype=np.uint8) for i in range(n)]


@pytest.fixture
def image_files(tmp_path: Path) -> list[Path]:
    paths = []
    for i, im in enumerate(_images(4)):
        p = tmp_path / "img" / f"cell{i}.png"
        p.parent.mkdir(exist_ok=True)
        Image.fromarray(im).save(p)
        paths.append(p)
    return paths


FX = FeatureExtractor(families=("geometry", "colour"))


def test_matches_the_extractor_and_reports_bad_files(image_files, tmp_path):
    bad = tmp_path / "img" / "broken.png"
    bad.write_bytes(b"not an image at all")
    missing = tmp_path / "img" / "missing.png"
    items = [image_files[0], bad, image_files[1], missing]
    result = extract_features(items, segmenter=disk_segmenter, extractor=FX, progress=False)
    assert isinstance(result, ExtractionResult)
    X, ok = result
    assert X.dtype == np.float32 and X.shape == (4, FX.get_feature_names_out().size)
    np.testing.assert_array_equal(ok, [True, False, True, False])
    assert [f.index for f in result.failures] == [1, 3]
    assert all(f.stage == "read" for f in result.failures)
    assert "broken.png" in str(result.failures[0]) and "missing.png" in str(result.failures[1])
    assert not X[~ok].any()
    ref = FX.transform([(np.asarray(Image.open(p)), disk_segmenter(np.asarray(Image.open(p))))
                        for p in image_files[:2]])
    np.testing.assert_array_equal(X[ok], ref)
    assert "2 failed" in result.summary()


def test_cache_hit_does_not_recompute(image_files, tmp_path):
    cache = tmp_path / "cache"
    seg = CountingSegmenter()
    first = extract_features(image_files, segmenter=seg, extractor=FX, cache_dir=cache,
                             progress=False)
    assert seg.calls == 4 and first.n_cached == 0
    entries = sorted(cache.rglob("*.npz"))
    assert len(entries) == 4
    with np.load(entries[0], allow_pickle=False) as data:  # no pickle in the cache
        assert data["x"].dtype == np.float32
    second = extract_features(image_files, segmenter=seg, extractor=FX, cache_dir=cache,
                              progress=False)
    assert seg.calls == 4 and second.n_cached == 4
    np.testing.assert_array_equal(first.X, second.X)
    np.testing.assert_array_equal(first.found, second.found)
    # other settings -> other keys -> recomputed
    seg2 = CountingSegmenter(radius=10)
    extract_features(image_files, segmenter=seg2, extractor=FX, cache_dir=cache, progress=False)
    assert seg2.calls == 4
    extract_features(image_files[:1], segmenter=seg, cache_dir=cache, progress=False,
                     extractor=FeatureExtractor(families=("geometry",)))
    assert seg.calls == 5
    # a renamed copy of the same bytes hits the cache
    copy = tmp_path / "copy.png"
    copy.write_bytes(image_files[2].read_bytes())
    again = extract_features([copy], segmenter=seg, extractor=FX, cache_dir=cache,
                             progress=False)
    assert seg.calls == 5 and again.n_cached == 1


def test_corrupt_cache_entry_is_recomputed(image_files, tmp_path):
    cache = tmp_path / "cache"
    seg = CountingSegmenter()
    first = extract_features(image_files[:1], segmenter=seg, extractor=FX, cache_dir=cache,
                             progress=False)
    entry = next(cache.rglob("*.npz"))
    # garbage, or the empty file a power cut can leave (entries are written without fsync)
    for content, calls in ((b"garbage", 2), (b"", 3)):
        entry.write_bytes(content)
        second = extract_features(image_files[:1], segmenter=seg, extractor=FX,
                                  cache_dir=cache, progress=False)
        assert seg.calls == calls and second.n_cached == 0
        np.testing.assert_array_equal(first.X, second.X)
    assert not list(cache.rglob("*.tmp*"))  # atomic writes leave no temporaries


def test_arrays_segment_failures_and_not_found():
    images = _images(3)
    images.append(np.full((30, 30, 3), 255, np.uint8))  # nothing found: not a failure

    def flaky(image):
        if image.shape[1] == 41:
            raise RuntimeError("boom")
        return disk_segmenter(image)

    result = extract_features(images, segmenter=flaky, extractor=FX, progress=False)
    np.testing.assert_array_equal(result.ok, [True, False, True, True])
    np.testing.assert_array_equal(result.found, [True, False, True, False])
    (failure,) = result.failures
    assert failure.stage == "segment" and "boom" in failure.reason
    assert failure.source == "<array 1>"
    assert result.X[3, 0] == 0  # segmentation_found flag
    stacked = extract_features(np.stack(_images(2, size=30)[:1] * 2), segmenter=disk_segmenter,
                               extractor=FX, progress=False)
    assert stacked.ok.all() and np.array_equal(stacked.X[0], stacked.X[1])


@pytest.mark.slow  # starts loky worker processes
def test_parallel_equals_sequential(image_files):
    a = extract_features(image_files, segmenter=disk_segmenter, extractor=FX, progress=False)
    b = extract_features(image_files, segmenter=disk_segmenter, extractor=FX, progress=False,
                         n_jobs=2, chunk_size=1)
    np.testing.assert_array_equal(a.X, b.X)


def test_segmenter_settings_are_deterministic():
    part = functools.partial(disk_segmenter, radius=9)
    assert segmenter_settings(part) == segmenter_settings(functools.partial(disk_segmenter,
                                                                            radius=9))
    assert segmenter_settings(part) != segmenter_settings(disk_segmenter)
    assert segmenter_settings(disk_segmenter)["defaults"] == {"radius": 12}

    @dataclasses.dataclass(frozen=True)
    class Params:
        sigma: float = 1.0

    a = segmenter_settings(functools.partial(disk_segmenter, params=Params(1.0)))
    b = segmenter_settings(functools.partial(disk_segmenter, params=Params(2.0)))
    assert a != b and "2.0" in str(b)
    assert cache_key("abc", {"a": 1}) == cache_key("abc", {"a": 1}) != cache_key("abd", {"a": 1})


def test_code_fingerprint():
    from wbc_classic.classical.extraction import code_fingerprint

    a = code_fingerprint("features.extractor")
    assert len(a) == 64 and a == code_fingerprint("features")
    assert code_fingerprint("no_such_package_xyz") == "?"
    assert code_fingerprint("sklearn.svm").startswith("sklearn ")  # big package: version


def test_bad_arguments():
    with pytest.raises(TypeError):
        extract_features("one/path.png", segmenter=disk_segmenter, progress=False)
    with pytest.raises(ValueError):
        extract_features(np.zeros((5, 5, 3), np.uint8), segmenter=disk_segmenter,
                         progress=False)


def test_dask_cluster(image_files, tmp_path):
    distributed = pytest.importorskip("distributed")
    import joblib

    seg = CountingSegmenter()
    ref = extract_features(image_files, segmenter=disk_segmenter, extractor=FX, progress=False)
    with distributed.LocalCluster(n_workers=1, threads_per_worker=1, processes=False,
                                  dashboard_address=None) as cluster:
        result = extract_features(image_files, segmenter=seg, extractor=FX, progress=False,
                                  scheduler=cluster.scheduler_address, chunk_size=2,
                                  cache_dir=tmp_path / "cache")
        np.testing.assert_array_equal(result.X, ref.X)
        assert result.ok.all()
        with distributed.Client(cluster) as client, joblib.parallel_backend("dask",
                                                                            client=client):
            again = extract_features(image_files, segmenter=seg, extractor=FX, n_jobs=-1,
                                     progress=False, cache_dir=tmp_path / "cache")
        assert again.n_cached == 4
        np.testing.assert_array_equal(again.X, ref.X)


def test_warm_cache_starts_no_workers(tmp_path, monkeypatch):
    """With every row cached, a parallel call starts no worker."""
    import joblib

    from wbc_classic.classical import extraction, workers
    from wbc_classic.data.synthetic import make_cells

    images, _, _ = make_cells(2, classes=("lymphocyte", "neutrophil"), size=64, seed=1)
    first = extraction.extract_features(list(images), n_jobs=1, cache_dir=tmp_path,
                                        progress=False)

    def no_pool(*args, **kwargs):
        raise AssertionError("workers started although every row is cached")

    monkeypatch.setattr(joblib, "Parallel", no_pool)
    monkeypatch.setattr(workers, "run_chunks", no_pool)
    again = extraction.extract_features(list(images), n_jobs=2, cache_dir=tmp_path,
                                        progress=False)
    assert again.n_cached == len(images)
    np.testing.assert_array_equal(again.X, first.X)


def test_augmented_copies_extract_like_their_images_and_cache(image_files, tmp_path):
    from wbc_classic.preprocess.augment import augmented_copies, default_augmentation

    items = augmented_copies(image_files[:2], default_augmentation(), 2, seed=0)
    seg = CountingSegmenter()
    cache = tmp_path / "cache"
    first = extract_features(items, segmenter=seg, extractor=FX, cache_dir=cache,
                             progress=False)
    assert first.ok.all() and seg.calls == 4
    arrays = extract_features([it.read() for it in items], segmenter=disk_segmenter,
                              extractor=FX, progress=False)
    np.testing.assert_array_equal(first.X, arrays.X)
    second = extract_features(items, segmenter=seg, extractor=FX, cache_dir=cache,
                              progress=False)
    assert seg.calls == 4 and second.n_cached == 4
    # a missing source is reported under the augmented item's name
    bad = augmented_copies([tmp_path / "gone.png"], default_augmentation(), 1)
    res = extract_features(bad, segmenter=disk_segmenter, extractor=FX, progress=False)
    assert not res.ok.any() and "gone.png (augmented" in str(res.failures[0])


def test_chunks_keep_every_item_in_order_and_shrink_at_the_end_on_several_processes():
    from wbc_classic.classical.extraction import _chunks

    todo = list(range(400))
    one = _chunks(todo, 8, 1)
    assert [len(c) for c in one] == [8] * 50
    two = _chunks(todo, 8, 2)
    assert [i for c in two for i in c] == todo
    sizes = [len(c) for c in two]
    assert max(sizes) == 8 and sizes[-1] == 1 and sizes == sorted(sizes, reverse=True)
