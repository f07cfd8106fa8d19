"""wbc_classic.data.synthetic_sets: the on-disk writers (class folders, segmentation set,
Pascal-VOC smears)."""

from __future__ import annotations

import csv
import xml.etree.ElementTree as ET

import numpy as np
from PIL import Image

from wbc_classic.data.labels import PBC5_CLASSES
from wbc_classic.data.synthetic import make_cells
from wbc_classic.data.synthetic_sets import (
    write_class_folders,
    write_segmentation_set,
    write_smear_set,
)


def test_write_class_folders(tmp_path):
    root = write_class_folders(tmp_path / "cf", 2, classes=("lymphocyte", "neutrophil"),
                               size=64, seed=1)
    assert root == tmp_path / "cf"
    files = sorted(p.relative_to(root).as_posix() for p in root.rglob("*.png"))
    assert files == ["lymphocyte/lymphocyte_0000.png", "lymphocyte/lymphocyte_0001.png",
                     "neutrophil/neutrophil_0000.png", "neutrophil/neutrophil_0001.png"]
    again = write_class_folders(tmp_path / "cf2", 2, classes=("lymphocyte", "neutrophil"),
                                size=64, seed=1)
    for f in files:
        assert (root / f).read_bytes() == (again / f).read_bytes()
    img = np.asarray(Image.open(root / "neutrophil" / "neutrophil_0001.png"))
    x, _, _ = make_cells(2, classes=("lymphocyte", "neutrophil"), size=64, seed=1)
    assert np.array_equal(img, x[3])


def test_write_segmentation_set(tmp_path):
    root = write_segmentation_set(tmp_path / "seg", 3, seed=0, size=96)
    with open(root / "manifest.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert [r["image"] for r in rows] == ["images/001.png", "images/002.png", "images/003.png"]
    assert [r["label"] for r in rows] == list(PBC5_CLASSES[:3])
    for r in rows:
        img = np.asarray(Image.open(root / r["image"]))
        mask = np.asarray(Image.open(root / r["mask"]))
        assert img.shape == (96, 96, 3) and mask.shape == (96, 96) and mask.dtype == np.uint8
        assert set(np.unique(mask).tolist()) == {0, 128, 255}


def test_write_smear_set(tmp_path):
    root = write_smear_set(tmp_path / "voc", 2, seed=0, shape=(200, 260))
    jpgs = sorted(p.name for p in (root / "JPEGImages").iterdir())
    assert jpgs == ["Synthetic_00000.jpg", "Synthetic_00001.jpg"]
    for stem in ("Synthetic_00000", "Synthetic_00001"):
        tree = ET.parse(root / "Annotations" / f"{stem}.xml").getroot()
        assert tree.findtext("filename") == f"{stem}.jpg"
        assert tree.findtext("size/width") == "260" and tree.findtext("size/height") == "200"
        wbc = [o for o in tree.iter("object") if o.findtext("name") == "WBC"]
        assert wbc and all(o.findtext("subtype") in PBC5_CLASSES for o in wbc)
        mask = np.asarray(Image.open(root / "Masks" / f"{stem}.png"))
        assert mask.shape == (200, 260)
        for o in wbc:
            b = [int(o.findtext(f"bndbox/{k}")) for k in ("xmin", "ymin", "xmax", "ymax")]
            assert (mask[b[1]:b[3], b[0]:b[2]] > 0).any()
        cellpix = mask > 0
        covered = np.zeros_like(cellpix)
        for o in wbc:
            b = [int(o.findtext(f"bndbox/{k}")) for k in ("xmin", "ymin", "xmax", "ymax")]
            covered[b[1]:b[3], b[0]:b[2]] = True
        assert not (cellpix & ~covered).any()
        assert np.asarray(Image.open(root / "JPEGImages" / f"{stem}.jpg")).shape == (200, 260, 3)
