"""Feature extraction on a few real PBC images: finite, sane values (needs ../shared/data)."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from features import FeatureExtractor

CLASSES = ("basophil", "eosinophil", "erythroblast", "ig", "lymphocyte", "monocyte",
           "neutrophil", "platelet")


def _segmenter():
    try:
        from segmentation import segment  # type: ignore[attr-defined]
    except ImportError:
        from benchmarks.bench_features import standin_segment as segment
    return segment


@pytest.mark.realdata
def test_features_on_real_pbc_cells(pbc_dir):
    segment = _segmenter()
    pairs = []
    for cls in CLASSES:
        path = sorted((pbc_dir / cls).glob("*.jpg"))[0]
        image = np.asarray(Image.open(path).convert("RGB"))
        pairs.append((image, segment(image)))
    fx = FeatureExtractor(families=("geometry", "texture", "ldp", "colour"))
    X = fx.transform(pairs)
    names = list(fx.get_feature_names_out())
    col = {n: X[:, i] for i, n in enumerate(names)}
    assert X.dtype == np.float32 and np.isfinite(X).all()
    found = col["segmentation_found"] == 1
    assert found.sum() >= 6
    assert np.all((col["nucleus_cell_area_ratio"][found] > 0.05)
                  & (col["nucleus_cell_area_ratio"][found] <= 1))
    assert np.all((col["cell_circularity"][found] > 0.3) & (col["cell_circularity"][found] <= 1))
    assert np.all(col["nucleus_lobes"][found] >= 1) and np.all(col["nucleus_lobes"] <= 10)
    # PBC cells are 360x363 crops: a leukocyte is tens to a couple of hundred pixels across
    assert np.all((col["cell_equivalent_diameter"][found] > 20)
                  & (col["cell_equivalent_diameter"][found] < 300))
    # the nucleus is darker (lower intensity) than the cytoplasm
    assert np.mean(col["colour_nc_i_diff"][found] < 0) >= 0.75
