"""Tests for wbc_classic.data.datasets: class folders, segmentation sets, VOC smears, MedMNIST."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from wbc_classic.data.datasets import (
    DatasetError,
    ImageSet,
    SegSample,
    SmearAnnotation,
    load_class_folders,
    load_image_manifest,
    load_medmnist,
    load_segmentation_set,
    load_voc_smears,
    read_label_mask,
)
from wbc_classic.data.labels import (
    BLOODMNIST_CLASSES,
    LABEL_ALIASES,
    PBC5_CLASSES,
    PBC8_CLASSES,
    canonical_label,
)
from wbc_classic.io.images import ImageReadError


def _png(path: Path, value: int = 0, size: tuple[int, int] = (6, 5)) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((*size, 3), value, dtype=np.uint8)).save(path)
    return path


def _tree(root: Path, spec: dict[str, int], ext: str = "png") -> Path:
    for folder, n in spec.items():
        (root / folder).mkdir(parents=True, exist_ok=True)
        for i in range(n):
            _png(root / folder / f"img_{i:02d}.{ext}", 10 * i)
    return root


# ----------------------------------------------------------------------------- labels


def test_constants() -> None:
    assert PBC8_CLASSES == ("basophil", "eosinophil", "erythroblast", "ig", "lymphocyte",
                            "monocyte", "neutrophil", "platelet")
    assert PBC5_CLASSES == ("basophil", "eosinophil", "lymphocyte", "monocyte", "neutrophil")
    assert set(PBC5_CLASSES) <= set(PBC8_CLASSES)
    # official BloodMNIST label order
    assert BLOODMNIST_CLASSES[0] == "basophil" and BLOODMNIST_CLASSES[3] == "ig"
    assert BLOODMNIST_CLASSES[6] == "neutrophil" and BLOODMNIST_CLASSES[7] == "platelet"
    assert all(v in PBC8_CLASSES for v in LABEL_ALIASES.values())


@pytest.mark.parametrize("raw, canon", [
    ("Neutrophils", "neutrophil"), ("NEUTROPHIL", "neutrophil"), ("seg_neutrophil", "neutrophil"),
    ("Seg-Neutrophil", "neutrophil"), ("band", "neutrophil"), (" mono ", "monocyte"),
    ("Lymph", "lymphocyte"), ("EOS", "eosinophil"), ("baso", "basophil"),
    ("Immature Granulocyte", "ig"), ("immature_granulocytes", "ig"), ("IG", "ig"),
    ("Platelets", "platelet"), ("thrombocyte", "platelet"), ("erythroblasts", "erythroblast"),
    ("Mixt Cells", "mixt_cells"), ("unknown", "unknown"),
    # LISC folder names
    ("Baso", "basophil"), ("eosi", "eosinophil"), ("lymp", "lymphocyte"), ("neut", "neutrophil"),
    ("mixt", "mixt"),
])
def test_canonical_label(raw: str, canon: str) -> None:
    assert canonical_label(raw) == canon


def test_user_aliases_override() -> None:
    assert canonical_label("band", {"band": "band_cell"}) == "band_cell"
    assert canonical_label("Neutro", {"NEUTRO": "Neutrophil"}) == "neutrophil"
    assert canonical_label("band", {"band": "Band Neutrophil"}) == "band_neutrophil"
    assert canonical_label("SNE", {}) == "neutrophil"


# ----------------------------------------------------------------------------- class folders


def test_class_folders_basic(tmp_path: Path) -> None:
    root = _tree(tmp_path / "data", {"Neutrophil": 3, "MONOCYTE": 2, "lymphocytes": 4})
    (root / "MONOCYTE" / "notes.txt").write_text("not an image")
    (root / "MONOCYTE" / ".DS_Store").write_bytes(b"\0")
    (root / "MONOCYTE" / "._img_00.png").write_bytes(b"\0")  # AppleDouble junk
    (root / "manifest.csv").write_text("path,label\n")
    (root / ".hidden").mkdir()
    ds = load_class_folders(root)
    assert isinstance(ds, ImageSet)
    assert ds.classes == ("lymphocyte", "monocyte", "neutrophil")
    assert len(ds) == 9
    assert ds.class_counts() == {"lymphocyte": 4, "monocyte": 2, "neutrophil": 3}
    assert ds.y.dtype == np.int64
    np.testing.assert_array_equal(ds.y, [0, 0, 0, 0, 1, 1, 2, 2, 2])
    assert all(p.suffix == ".png" for p in ds.paths)
    assert [p.name for p in ds.paths[:4]] == [f"img_{i:02d}.png" for i in range(4)]
    assert ds.labels[4] == "monocyte"
    assert ds.root == root
    assert "monocyte=2" in repr(ds)


def test_class_folders_order_is_deterministic(tmp_path: Path) -> None:
    root = tmp_path / "d"
    names = ["b10.png", "a2.png", "B1.png", "c.jpg", "a10.png"]
    for n in names:
        _png(root / "eos" / n)
    _png(root / "baso" / "z.png")
    a = load_class_folders(root)
    b = load_class_folders(root)
    assert a.paths == b.paths
    assert [p.name for p in a.paths] == ["z.png", *sorted(names)]


def test_class_subset_and_order(tmp_path: Path) -> None:
    root = _tree(tmp_path / "d", {c: 2 for c in PBC8_CLASSES})
    ds5 = load_class_folders(root, "pbc5")
    assert ds5.classes == PBC5_CLASSES and len(ds5) == 10
    ds8 = load_class_folders(root, PBC8_CLASSES)
    assert ds8.classes == PBC8_CLASSES and len(ds8) == 16
    # the requested order defines label numbers
    ds = load_class_folders(root, ["Platelets", "mono"])
    assert ds.classes == ("platelet", "monocyte")
    assert all(p.parent.name == "platelet" for p in ds.paths[:2])
    np.testing.assert_array_equal(ds.y, [0, 0, 1, 1])


def test_aliases_merge_folders(tmp_path: Path) -> None:
    root = _tree(tmp_path / "d", {"SEG_NEUTROPHIL": 2, "Band": 1, "Eos": 1})
    ds = load_class_folders(root)
    assert ds.class_counts() == {"eosinophil": 1, "neutrophil": 3}
    assert [p.parent.name for p in ds.paths[1:]] == ["Band", "SEG_NEUTROPHIL", "SEG_NEUTROPHIL"]
    # user alias separates band forms
    ds2 = load_class_folders(root, aliases={"band": "band_neutrophil"})
    assert ds2.class_counts() == {"band_neutrophil": 1, "eosinophil": 1, "neutrophil": 2}


def test_duplicate_requested_class(tmp_path: Path) -> None:
    root = _tree(tmp_path / "d", {"neutrophil": 1})
    with pytest.raises(ValueError, match="twice"):
        load_class_folders(root, ["neutrophil", "Neutrophils"])


def test_missing_root(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_class_folders(tmp_path / "absent")


def test_root_is_a_file(tmp_path: Path) -> None:
    f = tmp_path / "f.txt"
    f.write_text("x")
    with pytest.raises(DatasetError, match="not a folder"):
        load_class_folders(f)


def test_root_without_class_folders(tmp_path: Path) -> None:
    _png(tmp_path / "a.png")
    with pytest.raises(DatasetError, match="no class folders.*1 image file.*containing"):
        load_class_folders(tmp_path)


def test_empty_class_folder(tmp_path: Path) -> None:
    root = _tree(tmp_path / "d", {"neutrophil": 2, "monocyte": 0})
    (root / "monocyte" / "readme.txt").write_text("only text here")
    with pytest.raises(DatasetError, match="monocyte.*no image files"):
        load_class_folders(root)
    # not requested -> not a problem
    assert len(load_class_folders(root, ["neutrophil"])) == 2


def test_empty_folder_merged_with_nonempty_is_tolerated(tmp_path: Path) -> None:
    root = _tree(tmp_path / "d", {"neutrophil": 2, "band": 0})
    assert load_class_folders(root).class_counts() == {"neutrophil": 2}


def test_requested_class_absent(tmp_path: Path) -> None:
    root = _tree(tmp_path / "d", {"neutrophil": 2, "monocyte": 2})
    with pytest.raises(DatasetError, match=r"\['basophil'\] not found") as info:
        load_class_folders(root, ["neutrophil", "basophil"])
    assert "monocyte" in str(info.value)  # lists what is there


def test_recursive(tmp_path: Path) -> None:
    root = tmp_path / "d"
    _png(root / "mono" / "a.png")
    _png(root / "mono" / "sub" / "b.png")
    assert len(load_class_folders(root)) == 1
    ds = load_class_folders(root, recursive=True)
    assert [p.name for p in ds.paths] == ["a.png", "b.png"]


def test_mixed_extensions(tmp_path: Path) -> None:
    root = tmp_path / "d"
    for ext in ("png", "JPG", "jpeg", "bmp", "tif", "TIFF"):
        _png(root / "lymph" / f"x.{ext}")
    ds = load_class_folders(root)
    assert len(ds) == 6


def test_imageset_subset_and_counts(tmp_path: Path) -> None:
    root = _tree(tmp_path / "d", {"a": 3, "b": 2})
    ds = load_class_folders(root)
    sub = ds.subset([4, 0])
    assert sub.paths == [ds.paths[4], ds.paths[0]]
    np.testing.assert_array_equal(sub.y, [1, 0])
    assert sub.classes == ds.classes
    assert ds.subset(np.array([], dtype=int)).class_counts() == {"a": 0, "b": 0}
    mask = ds.y == 1
    assert ds.subset(mask).class_counts() == {"a": 0, "b": 2}
    with pytest.raises(IndexError):
        ds.subset([5])
    with pytest.raises(ValueError):
        ds.subset(np.array([True, False]))


def test_imageset_validation() -> None:
    with pytest.raises(ValueError, match="labels"):
        ImageSet([Path("a.png")], np.array([0, 1]), ("x",))
    with pytest.raises(ValueError, match="lie in"):
        ImageSet([Path("a.png")], np.array([3]), ("x",))
    with pytest.raises(ValueError, match="duplicate"):
        ImageSet([], np.array([], dtype=np.int64), ("x", "x"))
    with pytest.raises(TypeError):
        ImageSet([Path("a.png")], np.array([0.5]), ("x",))
    s = ImageSet(["a.png"], [0], ["x"])
    assert s.paths == [Path("a.png")] and s.y.dtype == np.int64 and s.classes == ("x",)
    with pytest.raises(ValueError):
        s.y[0] = 1  # read-only labels


def test_image_manifest(tmp_path: Path) -> None:
    root = _tree(tmp_path / "d", {"neut": 2, "mono": 2})
    (root / "manifest.csv").write_text(
        "Path,Label\nmono/img_01.png,Monocyte\nneut/img_00.png,neutrophils\n"
        "mono/img_00.png,mono\n\nneut/img_01.png,NEUTROPHIL\n")
    ds = load_image_manifest(root / "manifest.csv")
    assert ds.classes == ("monocyte", "neutrophil")
    assert [p.relative_to(root).as_posix() for p in ds.paths] == [
        "mono/img_01.png", "mono/img_00.png", "neut/img_00.png", "neut/img_01.png"]
    np.testing.assert_array_equal(ds.y, [0, 0, 1, 1])
    only = load_image_manifest(root / "manifest.csv", ["neutrophil"])
    assert len(only) == 2 and only.classes == ("neutrophil",)
    with pytest.raises(DatasetError, match="no rows"):
        load_image_manifest(root / "manifest.csv", ["basophil"])
    (root / "bad.csv").write_text("file,label\na.png,x\n")
    with pytest.raises(DatasetError, match="columns"):
        load_image_manifest(root / "bad.csv")
    (root / "gone.csv").write_text("path,label\nmono/nothere.png,mono\n")
    with pytest.raises(DatasetError, match="do not exist.*nothere"):
        load_image_manifest(root / "gone.csv")
    with pytest.raises(FileNotFoundError):
        load_image_manifest(root / "absent.csv")


# ----------------------------------------------------------------------------- segmentation


def _mask(path: Path, nucleus: slice, cell: slice, size: int = 10, fmt: str | None = None,
          noise: int = 0, seed: int = 0) -> np.ndarray:
    m = np.zeros((size, size), dtype=np.int16)
    m[cell, cell] = 128
    m[nucleus, nucleus] = 255
    if noise:
        m = m + np.random.default_rng(seed).integers(-noise, noise + 1, m.shape)
    m8 = np.clip(m, 0, 255).astype(np.uint8)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(m8).save(path, format=fmt)
    return m8


def test_read_label_mask(tmp_path: Path) -> None:
    _mask(tmp_path / "m.png", slice(4, 6), slice(2, 8))
    nucleus, cell = read_label_mask(tmp_path / "m.png")
    assert nucleus.dtype == bool and cell.dtype == bool and nucleus.shape == (10, 10)
    assert nucleus.sum() == 4 and cell.sum() == 36
    assert not np.any(nucleus & ~cell)


def test_read_label_mask_tolerates_noise(tmp_path: Path) -> None:
    _mask(tmp_path / "m.png", slice(4, 6), slice(2, 8), noise=40, seed=3)
    nucleus, cell = read_label_mask(tmp_path / "m.png")
    assert nucleus.sum() == 4 and cell.sum() == 36


def test_read_label_mask_jpeg_and_rgb(tmp_path: Path) -> None:
    m = np.zeros((32, 32), dtype=np.uint8)
    m[4:28, 4:28] = 128
    m[10:22, 10:22] = 255
    Image.fromarray(m).save(tmp_path / "m.jpg", quality=75)
    Image.fromarray(np.repeat(m[..., None], 3, axis=2)).save(tmp_path / "m_rgb.png")
    for name in ("m.jpg", "m_rgb.png"):
        nucleus, cell = read_label_mask(tmp_path / name)
        # away from the edges the classes are exact
        assert nucleus[12:20, 12:20].all() and not nucleus[5:8, 5:8].any()
        assert cell[5:8, 5:8].all() and not cell[:3, :3].any()
        assert abs(int(nucleus.sum()) - 144) <= 12 and abs(int(cell.sum()) - 576) <= 24


def test_read_label_mask_custom_levels(tmp_path: Path) -> None:
    Image.fromarray(np.array([[0, 1, 2, 2]], dtype=np.uint8)).save(tmp_path / "idx.png")
    nucleus, cell = read_label_mask(tmp_path / "idx.png", levels=(0, 1, 2))
    np.testing.assert_array_equal(nucleus, [[False, False, True, True]])
    np.testing.assert_array_equal(cell, [[False, True, True, True]])
    with pytest.raises(ValueError, match="increasing"):
        read_label_mask(tmp_path / "idx.png", levels=(0, 2, 1))
    with pytest.raises(ImageReadError):
        read_label_mask(tmp_path / "missing.png")


def _seg_set(root: Path, n: int = 3, manifest: bool = True) -> Path:
    lines = ["image,mask,label"]
    labels = ["Lymphocyte", "neutrophils", ""]
    for i in range(n):
        _png(root / "images" / f"{i:03d}.png", 100)
        _mask(root / "masks" / f"{i:03d}.png", slice(4, 6), slice(2, 8))
        lines.append(f"images/{i:03d}.png,masks/{i:03d}.png,{labels[i % 3]}")
    if manifest:
        (root / "manifest.csv").write_text("\n".join(lines) + "\n")
    return root


def test_segmentation_set_with_manifest(tmp_path: Path) -> None:
    root = _seg_set(tmp_path / "seg")
    s = load_segmentation_set(root)
    assert len(s) == 3 and all(isinstance(x, SegSample) for x in s)
    assert s[0] == SegSample(root / "images/000.png", root / "masks/000.png", "lymphocyte")
    assert s[1].label == "neutrophil" and s[2].label is None


def test_segmentation_set_without_manifest(tmp_path: Path) -> None:
    root = _seg_set(tmp_path / "seg", manifest=False)
    _mask(root / "masks" / "003.bmp", slice(1, 2), slice(0, 3))  # different extension
    _png(root / "images" / "003.jpg")
    s = load_segmentation_set(root)
    assert [x.image_path.stem for x in s] == ["000", "001", "002", "003"]
    assert s[3].mask_path.suffix == ".bmp" and s[3].label is None
    # manifest=None ignores a manifest that exists
    _seg_set(tmp_path / "seg2")
    assert all(x.label is None for x in load_segmentation_set(tmp_path / "seg2", manifest=None))


def test_segmentation_set_unpaired(tmp_path: Path) -> None:
    root = _seg_set(tmp_path / "seg", manifest=False)
    _png(root / "images" / "999.png")
    with pytest.raises(DatasetError, match="without a partner.*999"):
        load_segmentation_set(root)
    assert len(load_segmentation_set(root, unpaired="skip")) == 3


def test_segmentation_set_errors(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        load_segmentation_set(tmp_path / "none")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DatasetError, match="images"):
        load_segmentation_set(tmp_path / "empty")
    root = _seg_set(tmp_path / "seg")
    (root / "masks" / "001.png").unlink()
    with pytest.raises(DatasetError, match="line 3: mask file"):
        load_segmentation_set(root)
    bad = _seg_set(tmp_path / "seg3")
    (bad / "manifest.csv").write_text("img,msk\nimages/000.png,masks/000.png\n")
    with pytest.raises(DatasetError, match="columns"):
        load_segmentation_set(bad)
    (bad / "manifest.csv").write_text("image,mask\n")
    with pytest.raises(DatasetError, match="no samples"):
        load_segmentation_set(bad)


# ----------------------------------------------------------------------------- VOC smears


def _voc_xml(filename: str | None, objects: list[str], size: tuple[int, int] | None = (64, 48)
             ) -> str:
    fn = f"<filename>{filename}</filename>" if filename is not None else ""
    sz = (f"<size><width>{size[0]}</width><height>{size[1]}</height><depth>3</depth></size>"
          if size else "")
    return f"<annotation><folder>JPEGImages</folder>{fn}{sz}{''.join(objects)}</annotation>"


def _obj(name: str | None, box: tuple | None) -> str:
    n = f"<name>{name}</name>" if name is not None else ""
    if box is None:
        return f"<object>{n}</object>"
    b = "".join(f"<{k}>{v}</{k}>" for k, v in zip(("xmin", "ymin", "xmax", "ymax"), box,
                                                    strict=True))
    return f"<object>{n}<pose>Unspecified</pose><bndbox>{b}</bndbox></object>"


def _mkdir(p: Path) -> Path:
    p.mkdir(parents=True, exist_ok=True)
    return p


def _voc_root(root: Path) -> Path:
    _mkdir(root / "Annotations")
    images = _mkdir(root / "JPEGImages")
    for i in range(3):
        Image.fromarray(np.zeros((48, 64, 3), np.uint8)).save(images / f"Img_{i}.jpg")
    return root


def test_voc_smears(tmp_path: Path) -> None:
    root = _voc_root(tmp_path / "bccd")
    (root / "Annotations" / "Img_0.xml").write_text(_voc_xml("Img_0.jpg", [
        _obj("WBC", (10, 12, 30, 40)), _obj("RBC", (1, 1, 9, 9)), _obj("RBC", (20, 5, 28, 11)),
        _obj("Platelets", (50, 40, 55, 45)),
    ]))
    (root / "Annotations" / "Img_1.xml").write_text(_voc_xml("Img_1.jpg", [
        _obj("RBC", (1, 1, 9, 9))]))
    _mkdir(root / "Masks")
    _mask(root / "Masks" / "Img_0.png", slice(4, 6), slice(2, 8))
    smears = load_voc_smears(root)
    assert len(smears) == 2 and all(isinstance(s, SmearAnnotation) for s in smears)
    s0, s1 = smears
    assert s0.image_path == root / "JPEGImages" / "Img_0.jpg"
    assert s0.mask_path == root / "Masks" / "Img_0.png" and s1.mask_path is None
    assert set(s0.boxes) == {"WBC", "RBC", "Platelets"}
    assert s0.boxes["RBC"].shape == (2, 4) and s0.boxes["RBC"].dtype == np.int64
    np.testing.assert_array_equal(s0.wbc_boxes, [[10, 12, 30, 40]])
    np.testing.assert_array_equal(s0.get("platelets"), [[50, 40, 55, 45]])
    assert s1.wbc_boxes.shape == (0, 4) and s1.wbc_boxes.dtype == np.int64
    assert (s0.width, s0.height, s0.n_dropped) == (64, 48, 0)


def test_voc_odd_fields(tmp_path: Path) -> None:
    root = _voc_root(tmp_path / "bccd")
    (root / "Annotations" / "Img_0.xml").write_text(_voc_xml(None, [  # no <filename>
        _obj("  WBC ", (30.6, 20.2, 10.4, 5)),  # padded name, float + swapped corners
        _obj(None, (1, 1, 5, 5)),  # no name
        _obj("RBC", None),  # no box
        _obj("RBC", ("a", 1, 5, 5)),  # not a number
        _obj("RBC", (7, 7, 7, 9)),  # zero width
        _obj("RBC", ("", 1, 5, 5)),  # empty field
        _obj("RBC", (-5, 40, 70, 60)),  # out of the image: clipped
    ]))
    (root / "Annotations" / "Img_1.xml").write_text(_voc_xml("wrong_name.jpg", [
        _obj("wbc", (1, 2, 3, 4))], size=None))  # wrong filename, no size
    (root / "Annotations" / "Img_2.xml").write_text(
        "<annotation><filename>Img_2.jpg</filename><size><width>abc</width></size>"
        "<object><name>WBC</name><bndbox><xmin>1</xmin><ymin>2</ymin></bndbox></object>"
        "</annotation>")
    s0, s1, s2 = load_voc_smears(root)
    assert s0.image_path.name == "Img_0.jpg"
    np.testing.assert_array_equal(s0.wbc_boxes, [[10, 5, 31, 20]])
    np.testing.assert_array_equal(s0.boxes["RBC"], [[0, 40, 64, 48]])
    assert s0.n_dropped == 5
    assert s1.image_path.name == "Img_1.jpg" and s1.width is None and s1.height is None
    np.testing.assert_array_equal(s1.wbc_boxes, [[1, 2, 3, 4]])  # "wbc" found case-insensitively
    assert s2.boxes == {} and s2.n_dropped == 1 and s2.width is None


def test_voc_errors(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        load_voc_smears(tmp_path / "none")
    (tmp_path / "noann").mkdir()
    with pytest.raises(DatasetError, match="Annotations"):
        load_voc_smears(tmp_path / "noann")
    root = _voc_root(tmp_path / "bccd")
    with pytest.raises(DatasetError, match="no .xml"):
        load_voc_smears(root)
    (root / "Annotations" / "Img_0.xml").write_text(_voc_xml("Img_0.jpg", [
        _obj("WBC", (1, 1, 5, 5))]))
    (root / "Annotations" / "Img_1.xml").write_text("<annotation><object>")  # broken XML
    (root / "Annotations" / "Zzz.xml").write_text(_voc_xml("Zzz.jpg", []))  # no image
    with pytest.raises(DatasetError, match="Img_1.xml"):
        load_voc_smears(root)
    good = load_voc_smears(root, on_error="skip")
    assert [s.image_path.name for s in good] == ["Img_0.jpg"]
    (root / "Annotations" / "Img_1.xml").unlink()
    with pytest.raises(DatasetError, match="no image for annotation"):
        load_voc_smears(root)


# ----------------------------------------------------------------------------- MedMNIST


def _npz(path: Path, grey: bool = False, n: tuple[int, int, int] = (6, 3, 4), **extra
         ) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    arrays: dict[str, np.ndarray] = {}
    for split, k in zip(("train", "val", "test"), n, strict=True):
        shape = (k, 28, 28) if grey else (k, 28, 28, 3)
        arrays[f"{split}_images"] = rng.integers(0, 256, shape, dtype=np.uint8)
        arrays[f"{split}_labels"] = rng.integers(0, 8, (k, 1)).astype(np.uint8)
    arrays.update(extra)
    np.savez(path, **arrays)
    return arrays


def test_medmnist(tmp_path: Path) -> None:
    arrays = _npz(tmp_path / "bloodmnist.npz")
    data = load_medmnist(tmp_path / "bloodmnist.npz")
    assert set(data) == {"train", "val", "test"}
    x, y = data["train"]
    assert x.shape == (6, 28, 28, 3) and x.dtype == np.uint8 and x.flags.c_contiguous
    assert y.shape == (6,) and y.dtype == np.int64
    np.testing.assert_array_equal(y, arrays["train_labels"][:, 0])
    np.testing.assert_array_equal(data["test"][0], arrays["test_images"])


def test_medmnist_grey(tmp_path: Path) -> None:
    arrays = _npz(tmp_path / "g.npz", grey=True)
    x, _ = load_medmnist(tmp_path / "g.npz")["val"]
    assert x.shape == (3, 28, 28, 3)
    np.testing.assert_array_equal(x[..., 2], arrays["val_images"])


def test_medmnist_wrong_files(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        load_medmnist(tmp_path / "absent.npz")
    (tmp_path / "text.npz").write_text("not numpy")
    with pytest.raises(DatasetError, match="not a readable"):
        load_medmnist(tmp_path / "text.npz")
    np.savez(tmp_path / "other.npz", a=np.zeros(3), b=np.ones(2))
    with pytest.raises(DatasetError, match="not a MedMNIST file.*'a', 'b'"):
        load_medmnist(tmp_path / "other.npz")
    np.save(tmp_path / "single.npy", np.zeros(3))
    with pytest.raises(DatasetError, match="single .npy"):
        load_medmnist(tmp_path / "single.npy")
    np.savez(tmp_path / "half.npz", train_images=np.zeros((2, 4, 4, 3), np.uint8))
    with pytest.raises(DatasetError, match="train_labels"):
        load_medmnist(tmp_path / "half.npz")
    np.savez(tmp_path / "len.npz", train_images=np.zeros((2, 4, 4, 3), np.uint8),
             train_labels=np.zeros((3, 1), np.uint8))
    with pytest.raises(DatasetError, match="2 train images but 3 labels"):
        load_medmnist(tmp_path / "len.npz")
    np.savez(tmp_path / "multi.npz", train_images=np.zeros((2, 4, 4, 3), np.uint8),
             train_labels=np.zeros((2, 14), np.uint8))
    with pytest.raises(DatasetError, match="multi-label"):
        load_medmnist(tmp_path / "multi.npz")
    np.savez(tmp_path / "float.npz", train_images=np.zeros((2, 4, 4, 3), np.float32) + 0.5,
             train_labels=np.zeros((2, 1), np.uint8))
    with pytest.raises(DatasetError, match="dtype"):
        load_medmnist(tmp_path / "float.npz")
    with pytest.raises(DatasetError, match="folder"):
        load_medmnist(tmp_path)


# ----------------------------------------------------------------------------- real data


PBC_COUNTS = {"basophil": 486, "eosinophil": 1227, "erythroblast": 643, "ig": 1176,
              "lymphocyte": 524, "monocyte": 568, "neutrophil": 1294, "platelet": 931}


@pytest.mark.realdata
def test_real_pbc(pbc_dir: Path) -> None:
    ds = load_class_folders(pbc_dir)
    assert len(ds) == 6849
    assert ds.classes == PBC8_CLASSES
    assert ds.class_counts() == PBC_COUNTS
    assert all(p.suffix.lower() == ".jpg" for p in ds.paths)
    assert load_class_folders(pbc_dir).paths == ds.paths
    man = load_image_manifest(pbc_dir / "manifest.csv")
    assert man.class_counts() == PBC_COUNTS
    assert sorted(man.paths) == sorted(ds.paths)


@pytest.mark.realdata
def test_real_pbc5(pbc_dir: Path) -> None:
    ds = load_class_folders(pbc_dir, PBC5_CLASSES)
    assert ds.classes == PBC5_CLASSES
    assert len(ds) == sum(PBC_COUNTS[c] for c in PBC5_CLASSES) == 4099
    assert ds.class_counts() == {c: PBC_COUNTS[c] for c in PBC5_CLASSES}


@pytest.mark.realdata
def test_real_cellavision_seg(cellavision_dir: Path) -> None:
    s = load_segmentation_set(cellavision_dir)
    assert len(s) == 100
    assert all(x.label in PBC5_CLASSES for x in s)
    nucleus, cell = read_label_mask(s[0].mask_path)
    assert nucleus.shape == (300, 300) and nucleus.any() and cell.sum() > nucleus.sum()
    assert not np.any(nucleus & ~cell)
    assert len(load_segmentation_set(cellavision_dir, manifest=None)) == 100


@pytest.mark.realdata
def test_real_bccd(bccd_dir: Path) -> None:
    smears = load_voc_smears(bccd_dir)
    assert len(smears) == 364
    assert all(s.image_path.is_file() for s in smears)
    assert all(s.mask_path is not None for s in smears)
    with_wbc = [s for s in smears if len(s.wbc_boxes)]
    assert len(with_wbc) >= 350  # a few fields have no WBC box
    assert sum(len(s.wbc_boxes) for s in smears) >= 360
    for s in smears:
        b = s.wbc_boxes
        assert b.dtype == np.int64 and b.shape[1] == 4
        assert np.all(b[:, 2] > b[:, 0]) and np.all(b[:, 3] > b[:, 1])
        assert np.all(b >= 0) and np.all(b[:, 2] <= 640) and np.all(b[:, 3] <= 480)
    assert sum(len(s.get("RBC")) for s in smears) > 4000
