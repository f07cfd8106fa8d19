"""``wbc-classic features``: the per-cell measurement table and its column dictionary."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from features import FAMILIES, FeatureExtractor
from segmentation.result import Segmentation
from wbc_classic.cli import main
from wbc_classic.data.datasets import read_label_mask
from wbc_classic.data.synthetic_sets import write_segmentation_set
from wbc_classic.io.images import read_image


def _rows(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


@pytest.fixture(scope="module")
def seg_set(tmp_path_factory) -> Path:
    return write_segmentation_set(tmp_path_factory.mktemp("feat") / "set", 3, seed=1, size=128)


def test_every_feature_has_a_unit_family_and_meaning():
    fx = FeatureExtractor(families=FAMILIES)
    entries = fx.describe_features()
    assert [e["name"] for e in entries] == list(fx.get_feature_names_out())
    assert all(e["unit"] and e["meaning"] and e["family"] in (*FAMILIES, "flags")
               for e in entries)
    assert len({e["meaning"] for e in entries}) == len(entries)  # each one says what it is
    units = {e["name"]: e["unit"] for e in entries}
    assert units["cell_area"] == "px^2" and units["nucleus_perimeter"] == "px"
    assert units["nucleus_circularity"] == "1"
    physical = {e["name"]: e["unit"] for e in
                FeatureExtractor(families=FAMILIES, um_per_pixel=0.1).describe_features()}
    assert physical["cell_area"] == "um^2" and physical["cell_major_axis"] == "um"


def test_describe_prints_the_dictionary(capsys):
    assert main(["features", "--describe", "--json"]) == 0
    entries = json.loads(capsys.readouterr().out)
    assert {"name", "unit", "family", "meaning"} == set(entries[0])
    assert main(["features", "--describe", "--families", "geometry"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].split()[:3] == ["name", "unit", "family"]
    assert any(line.startswith("cell_area ") for line in out)


def test_table_one_row_per_image_in_physical_units(seg_set, tmp_path, capsys):
    out = tmp_path / "t.csv"
    assert main(["features", str(seg_set / "images"), "--out", str(out), "--families",
                 "geometry", "--um-per-pixel", "0.5", "--no-cache", "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["n_images"] == 3 and summary["ok"] == 3 and summary["um_per_pixel"] == 0.5
    rows = _rows(out)
    assert [Path(r["path"]).name for r in rows] == ["001.png", "002.png", "003.png"]
    px = tmp_path / "px.csv"
    assert main(["features", str(seg_set / "images"), "--out", str(px), "--families",
                 "geometry", "--no-cache"]) == 0
    # an area in um^2 is the area in px^2 times (um/px)^2
    for a, b in zip(rows, _rows(px), strict=True):
        assert float(a["cell_area"]) == pytest.approx(float(b["cell_area"]) * 0.25, rel=1e-5)
        assert float(a["nucleus_circularity"]) == pytest.approx(float(b["nucleus_circularity"]))


def test_masks_are_measured_instead_of_the_segmenter(seg_set, tmp_path, capsys):
    out = tmp_path / "m.csv"
    assert main(["features", str(seg_set / "images"), "--masks", str(seg_set / "masks"),
                 "--out", str(out), "--families", "geometry", "colour"]) == 0
    rows = _rows(out)
    # the ground-truth mask's own area, counted directly
    nucleus, cell = read_label_mask(seg_set / "masks" / "002.png")
    assert float(rows[1]["cell_area"]) == float(cell.sum())
    assert float(rows[1]["nucleus_area"]) == float(nucleus.sum())
    # the same numbers as the library on a Segmentation built from the mask
    image = read_image(seg_set / "images" / "002.png")
    expected = FeatureExtractor(families=("geometry", "colour")).extract_one(
        image, Segmentation(nucleus=nucleus, cell=cell))
    for key in ("nucleus_solidity", "colour_cytoplasm_r_mean", "gran_nucleus_r2"):
        assert float(rows[1][key]) == pytest.approx(expected[key], rel=1e-5, abs=1e-6)


def test_bad_rows_are_reported_and_the_batch_goes_on(seg_set, tmp_path, capsys):
    masks = tmp_path / "masks"
    masks.mkdir()
    for name in ("001.png", "002.png"):
        (masks / name).write_bytes((seg_set / "masks" / name).read_bytes())
    Image.fromarray(np.zeros((10, 10), np.uint8)).save(masks / "003.png")  # wrong size
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"not a png")
    empty = tmp_path / "empty.png"
    Image.fromarray(np.full((64, 64, 3), 230, np.uint8)).save(empty)
    Image.fromarray(np.zeros((64, 64), np.uint8)).save(masks / "empty.png")
    out = tmp_path / "t.csv"
    code = main(["features", str(seg_set / "images"), str(bad), str(empty), "--masks",
                 str(masks), "--out", str(out), "--families", "geometry"])
    assert code == 1
    by_name = {Path(r["path"]).name: r for r in _rows(out)}
    assert by_name["001.png"]["status"] == "ok"
    assert by_name["003.png"]["status"] == "error" and "10x10" in by_name["003.png"]["error"]
    assert by_name["bad.png"]["status"] == "error" and "no mask" in by_name["bad.png"]["error"]
    assert by_name["empty.png"]["status"] == "no_cell"
    err = capsys.readouterr().err
    assert "003.png" in err and "bad.png" in err


@pytest.mark.parametrize("argv_tail, needle", [
    (["--out", "t.xlsx"], "unknown table format"),
    ([], "--out"),
    (["--out", "t.csv", "--um-per-pixel", "-1"], "--um-per-pixel"),
    (["--out", "t.csv", "--masks", "nowhere"], "not a folder"),
])
def test_usage_errors_exit_2(seg_set, tmp_path, capsys, argv_tail, needle, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(["features", str(seg_set / "images"), *argv_tail]) == 2
    assert needle in capsys.readouterr().err
    assert not list(tmp_path.glob("t.*"))


def test_parquet_round_trip_or_clear_message(seg_set, tmp_path, capsys):
    out = tmp_path / "t.parquet"
    try:
        import pandas as pd
        import pyarrow  # noqa: F401
    except ImportError:
        assert main(["features", str(seg_set / "images"), "--out", str(out)]) == 2
        assert "pip install pandas pyarrow" in capsys.readouterr().err
        return
    assert main(["features", str(seg_set / "images"), "--out", str(out), "--families",
                 "ldp", "--no-cache"]) == 0
    frame = pd.read_parquet(out)
    assert len(frame) == 3 and frame["ldpri_nucleus_0"].dtype == np.float64
    assert list(frame.columns[:3]) == ["path", "status", "error"]
