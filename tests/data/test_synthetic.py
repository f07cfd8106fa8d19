"""Tests of the synthetic leukocyte generator (fast: well under 5 s in total)."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage as ndi

from wbc_classic.data.labels import PBC5_CLASSES
from wbc_classic.data.synthetic import (
    SyntheticCell,
    make_cell,
    make_cells,
    make_smear,
)

N_TRAIT = 10  # samples per class for the trait tests


@pytest.fixture(scope="module")
def samples() -> dict[str, list[SyntheticCell]]:
    return {c: [make_cell(c, rng=100 + i) for i in range(N_TRAIT)] for c in PBC5_CLASSES}


def test_classes5_order():
    assert PBC5_CLASSES == ("basophil", "eosinophil", "lymphocyte", "monocyte", "neutrophil")
    assert list(PBC5_CLASSES) == sorted(PBC5_CLASSES)


@pytest.mark.parametrize("label", PBC5_CLASSES)
def test_make_cell_shapes_and_dtypes(label):
    c = make_cell(label, size=96, rng=1)
    assert c.label == label
    assert c.image.shape == (96, 96, 3) and c.image.dtype == np.uint8
    assert c.nucleus.shape == (96, 96) and c.nucleus.dtype == bool
    assert c.cell.shape == (96, 96) and c.cell.dtype == bool


def test_label_is_case_insensitive_and_checked():
    assert make_cell("Neutrophil", rng=0).label == "neutrophil"
    with pytest.raises(ValueError, match="unknown leukocyte class"):
        make_cell("platelet", rng=0)


def test_determinism_same_seed_same_bytes():
    a = make_cell("monocyte", rng=7)
    b = make_cell("monocyte", rng=7)
    assert a.image.tobytes() == b.image.tobytes()
    assert np.array_equal(a.nucleus, b.nucleus) and np.array_equal(a.cell, b.cell)
    c = make_cell("monocyte", rng=8)
    assert a.image.tobytes() != c.image.tobytes()
    gen1, gen2 = np.random.default_rng(5), np.random.default_rng(5)
    assert make_cell("basophil", rng=gen1).image.tobytes() == \
        make_cell("basophil", rng=gen2).image.tobytes()


def test_no_global_random_state_used():
    np.random.seed(0)  # noqa: NPY002 - the legacy global state is what is checked
    before = np.random.get_state()[1].copy()  # noqa: NPY002
    make_cell("eosinophil", rng=3)
    assert np.array_equal(before, np.random.get_state()[1])  # noqa: NPY002


def test_make_cells_balanced_deterministic_and_masks():
    x1, y1, cl = make_cells(2, seed=3)
    x2, y2, _ = make_cells(2, seed=3)
    assert x1.shape == (10, 128, 128, 3) and x1.dtype == np.uint8
    assert y1.dtype == np.int64 and cl == PBC5_CLASSES
    assert np.bincount(y1).tolist() == [2] * 5
    assert x1.tobytes() == x2.tobytes() and np.array_equal(y1, y2)
    x3, _, _ = make_cells(2, seed=4)
    assert x1.tobytes() != x3.tobytes()
    # item i of a class does not depend on n_per_class or on the other classes
    xs, ys, cls, nuc, cell = make_cells(1, classes=("monocyte",), seed=3, return_masks=True)
    assert cls == ("monocyte",) and ys.tolist() == [0]
    assert np.array_equal(xs[0], x1[6])
    assert nuc.shape == cell.shape == (1, 128, 128) and nuc.dtype == bool
    assert not (nuc & ~cell).any()


def test_masks_consistent(samples):
    for label, cells in samples.items():
        for c in cells:
            assert c.nucleus.any() and c.cell.any(), label
            assert not (c.nucleus & ~c.cell).any(), label
            assert (c.cell & ~c.nucleus).any(), label  # some cytoplasm
            assert ndi.label(c.cell)[1] == 1, label
            frac = np.sqrt(c.cell.sum() / np.pi) * 2 / c.cell.shape[1]  # diameter / width
            assert 0.2 < frac < 0.8, (label, frac)


def _mean_area(cells, attr="cell"):
    return float(np.mean([getattr(c, attr).sum() for c in cells]))


def test_sizes_in_proportion(samples):
    lym = _mean_area(samples["lymphocyte"])
    neu = _mean_area(samples["neutrophil"])
    mono = _mean_area(samples["monocyte"])
    assert lym < neu < mono
    assert 1.3 < np.sqrt(mono / lym) < 2.5


def test_neutrophil_nucleus_is_lobed(samples):
    """Removing thin strands (opening, disk r=2) splits the nucleus into >= 2 lobes."""
    disk = np.hypot(*np.mgrid[-2:3, -2:3]) <= 2.0
    lobed = []
    for c in samples["neutrophil"]:
        opened = ndi.binary_opening(c.nucleus, structure=disk)
        lobed.append(ndi.label(opened)[1] >= 2)
    assert np.mean(lobed) >= 0.9
    # lymphocyte nuclei stay in one piece under the same opening
    for c in samples["lymphocyte"]:
        assert ndi.label(ndi.binary_opening(c.nucleus, structure=disk))[1] == 1


def test_eosinophil_nucleus_is_bilobed(samples):
    disk = np.hypot(*np.mgrid[-2:3, -2:3]) <= 2.0
    lobes = [ndi.label(ndi.binary_opening(c.nucleus, structure=disk))[1]
             for c in samples["eosinophil"]]
    assert np.mean([2 <= k <= 3 for k in lobes]) >= 0.9
    assert all(c.params["n_lobes"] in (2, 3) for c in samples["eosinophil"])


def test_red_cells_touch_the_leukocyte(samples):
    touching = [c.params["n_rbc_touching"] > 0 for v in samples.values() for c in v]
    assert np.mean(touching) >= 0.7
    assert all(c.params["n_rbc"] >= 3 for v in samples.values() for c in v)


def test_lymphocyte_nc_ratio_higher_than_monocyte(samples):
    def nc(cells):
        return np.array([c.nucleus.sum() / c.cell.sum() for c in cells])

    assert nc(samples["lymphocyte"]).min() > 0.5
    assert nc(samples["lymphocyte"]).mean() > nc(samples["monocyte"]).mean() + 0.2


def _cyto_rgb(c):
    return c.image[c.cell & ~c.nucleus].astype(float).mean(0)


def test_eosinophil_cytoplasm_redder_than_neutrophil(samples):
    def redness(c):
        r, g, b = _cyto_rgb(c)
        return r - 0.5 * (g + b)

    eos = np.array([redness(c) for c in samples["eosinophil"]])
    neu = np.array([redness(c) for c in samples["neutrophil"]])
    assert eos.mean() > neu.mean() + 10
    assert np.median(eos) > np.percentile(neu, 90)


def test_basophil_darkest(samples):
    def cell_grey(c):
        return c.image[c.cell].astype(float).mean()

    means = {k: np.mean([cell_grey(c) for c in v]) for k, v in samples.items()}
    assert min(means, key=means.get) == "basophil"


def test_lymphocyte_cytoplasm_bluer_than_neutrophil(samples):
    lym = np.mean([_cyto_rgb(c)[2] - _cyto_rgb(c)[0] for c in samples["lymphocyte"]])
    neu = np.mean([_cyto_rgb(c)[2] - _cyto_rgb(c)[0] for c in samples["neutrophil"]])
    assert lym > neu


def test_intra_class_variation(samples):
    means = np.array([_cyto_rgb(c) for c in samples["neutrophil"]])
    assert means.std(0).max() > 2.0  # colour varies between images of one class
    areas = np.array([c.cell.sum() for c in samples["neutrophil"]])
    assert areas.std() / areas.mean() > 0.05


def test_variation_controls():
    base = make_cell("neutrophil", rng=11, blur=0, noise=0)
    shifted = make_cell("neutrophil", rng=11, blur=0, noise=0, stain_shift=1.0)
    # the stain shift changes colours, not geometry
    assert np.array_equal(base.nucleus, shifted.nucleus)
    assert np.abs(base.image.astype(int) - shifted.image.astype(int)).mean() > 3
    as_tuple = make_cell("neutrophil", rng=11, blur=0, noise=0,
                         stain_shift=(20.0, np.exp(0.3), np.exp(0.2)))
    assert np.array_equal(as_tuple.image, shifted.image)
    big = make_cell("neutrophil", rng=11, scale=1.3)
    assert big.cell.sum() > 1.4 * base.cell.sum()
    dark = make_cell("neutrophil", rng=11, blur=0, noise=0, brightness=0.8)
    assert dark.image.mean() < base.image.mean() - 15
    noisy = make_cell("neutrophil", rng=11, blur=0, noise=8.0)
    assert np.abs(noisy.image.astype(int) - base.image.astype(int)).std() > 4
    empty = make_cell("lymphocyte", rng=2, rbc_density=0, platelets=0, noise=0, blur=0,
                      illumination=0)
    bg = empty.image[~ndi.binary_dilation(empty.cell, iterations=3)]
    assert np.ptp(bg.astype(int), axis=0).max() <= 1  # no red cells, flat illumination
    lit = make_cell("lymphocyte", rng=2, rbc_density=0, platelets=0, noise=0, blur=0,
                    illumination=2)
    bg = lit.image[~ndi.binary_dilation(lit.cell, iterations=3)]
    assert np.ptp(bg.astype(int), axis=0).max() > 5


def test_smear_field():
    f = make_smear(shape=(240, 320), n_leukocytes=3, seed=2)
    h, w = 240, 320
    assert f.image.shape == (h, w, 3) and f.image.dtype == np.uint8
    assert f.instances.dtype == np.int32 and f.boxes.dtype == np.int64
    n = len(f.labels)
    assert 1 <= n <= 3 and f.boxes.shape == (n, 4)
    assert set(f.labels) <= set(PBC5_CLASSES)
    assert f.instances.max() == n
    assert np.array_equal(f.cell, f.instances > 0)
    assert not (f.nucleus & ~f.cell).any()
    for i, (x0, y0, x1, y1) in enumerate(f.boxes):
        inst = f.instances == i + 1
        assert inst.any()
        inside = np.zeros_like(inst)
        inside[y0:y1, x0:x1] = True
        assert not (inst & ~inside).any()
        ys, xs = np.nonzero(inst)
        assert (xs.min(), ys.min(), xs.max() + 1, ys.max() + 1) == (x0, y0, x1, y1)
    assert len(f.rbc_boxes) >= 10
    # red cells: many pixels outside the leukocytes are clearly darker than the glass
    grey = f.image.astype(float).mean(2)
    bgv = np.percentile(grey[~f.cell], 95)
    assert np.mean(grey[~f.cell] < bgv - 20) > 0.2
    g = make_smear(shape=(240, 320), n_leukocytes=3, seed=2)
    assert f.image.tobytes() == g.image.tobytes()


def test_smear_explicit_labels():
    f = make_smear(shape=(300, 400), labels=["lymphocyte", "monocyte"], rng=0)
    assert f.labels == ["lymphocyte", "monocyte"]
