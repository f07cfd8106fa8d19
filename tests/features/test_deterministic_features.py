"""Features do not depend on OpenCV's thread count (issue 14, item 8)."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from features.geometry import exact_distance_transform, geometry_features
from segmentation import segment
from wbc_classic.data.synthetic import make_cell


@pytest.fixture
def restore_threads():
    n = cv2.getNumThreads()
    yield
    cv2.setNumThreads(n)


def _disk_with_lobes() -> np.ndarray:
    yy, xx = np.mgrid[:301, :301]
    m = ((yy - 150) ** 2 + (xx - 150) ** 2 <= 110 ** 2)
    m |= ((yy - 60) ** 2 + (xx - 220) ** 2 <= 45 ** 2)
    return np.pad(m.astype(np.uint8), 1)


def test_exact_distance_transform_is_thread_independent_and_exact(restore_threads):
    m8 = _disk_with_lobes()
    outs = []
    for threads in (1, 2, 3, 4):
        cv2.setNumThreads(threads)
        outs.append(exact_distance_transform(m8))
    for o in outs[1:]:
        assert o.tobytes() == outs[0].tobytes()
    sq = np.rint(outs[0].astype(np.float64) ** 2)  # exact: float32 square roots of integers
    assert np.array_equal(outs[0], np.sqrt(sq).astype(np.float32))
    from scipy import ndimage as ndi

    np.testing.assert_allclose(outs[0], ndi.distance_transform_edt(m8), atol=1e-5)


@pytest.mark.parametrize("label", ["neutrophil", "lymphocyte", "monocyte"])
def test_geometry_features_bitwise_equal_across_thread_counts(label, restore_threads):
    image = make_cell(label, size=160, rng=3).image
    seg = segment(image)
    rows = []
    for threads in (1, 2, 4):
        cv2.setNumThreads(threads)
        rows.append(geometry_features(image, seg))
    for r in rows[1:]:
        assert list(r) == list(rows[0])
        assert np.array(list(r.values()), np.float64).tobytes() == \
            np.array(list(rows[0].values()), np.float64).tobytes()


@pytest.mark.parametrize("label,rng", [("neutrophil", 2), ("lymphocyte", 3)])
def test_nucleus_thickness_inputs_do_not_depend_on_threads(label, rng, restore_threads):
    # these two nuclei gave a different max/mean distance with 1, 2 and 4 OpenCV threads
    # before the distances were snapped (PBC: nucleus_thickness moved on 5 of 1,200 images)
    from features.geometry import _lobe_stats

    nucleus = segment(make_cell(label, size=160, rng=rng).image).nucleus
    outs = set()
    for threads in (1, 2, 4):
        cv2.setNumThreads(threads)
        outs.add(_lobe_stats(nucleus))
    assert len(outs) == 1, outs
