"""segmentation.morphology: the cropped fast paths equal the whole-image operations."""

from __future__ import annotations

import numpy as np
from scipy import ndimage as ndi

from segmentation import morphology


def test_fill_holes_on_the_bounding_box_equals_the_whole_image_fill():
    rng = np.random.default_rng(4)
    for k in range(400):
        h, w = (int(v) for v in rng.integers(1, 40, 2))
        mask = np.zeros((h, w), bool)
        y, x = int(rng.integers(0, h)), int(rng.integers(0, w))
        mask[y:y + int(rng.integers(1, 25)), x:x + int(rng.integers(1, 25))] = True
        mask &= ~(rng.random((h, w)) < 0.25)          # holes, some open to the outside
        if k % 4 == 0:
            mask = rng.random((h, w)) < 0.6          # touching every border
        for m in (mask, mask.T):                     # also a non-contiguous view
            np.testing.assert_array_equal(morphology.fill_holes(m), ndi.binary_fill_holes(m))
    assert not morphology.fill_holes(np.zeros((5, 7), bool)).any()
