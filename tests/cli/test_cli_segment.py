"""CLI tests of `wbc-classic segment` and `wbc-classic eval-seg`."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from wbc_classic.cli import build_parser, main


def _cell_png(path):
    from wbc_classic.data.synthetic import make_cell

    Image.fromarray(make_cell("lymphocyte", size=128, rng=0).image).save(path)
    return path


def test_segment_help_has_example(capsys):
    with pytest.raises(SystemExit):
        build_parser().parse_args(["segment", "--help"])
    out = capsys.readouterr().out
    assert "example:" in out and "--steps" in out


def test_segment_writes_pngs(tmp_path, capsys):
    img = _cell_png(tmp_path / "cell.png")
    steps, mask, ov = tmp_path / "steps.png", tmp_path / "out" / "mask.png", tmp_path / "o.png"
    rc = main(["segment", str(img), "--steps", str(steps), "--out", str(mask),
               "--overlay", str(ov)])
    assert rc == 0
    m = np.asarray(Image.open(mask))
    assert m.shape == (128, 128) and set(np.unique(m)) == {0, 128, 255}
    with Image.open(steps) as im:
        assert im.width > 300 and im.height > 200
    assert np.asarray(Image.open(ov)).shape == (128, 128, 3)
    assert "leukocyte found" in capsys.readouterr().out
    assert not list(tmp_path.glob(".*tmp*"))  # atomic writes leave no temporaries


def test_segment_blank_and_unreadable(tmp_path, capsys):
    blank = tmp_path / "blank.png"
    Image.fromarray(np.full((64, 64, 3), 255, np.uint8)).save(blank)
    assert main(["segment", str(blank), "--out", str(tmp_path / "m.png"), "--json"]) == 1
    summary = json.loads(capsys.readouterr().out)
    assert summary["found"] is False and summary["message"]
    assert (tmp_path / "m.png").exists()
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"not an image")
    assert main(["segment", str(bad)]) == 1  # a failed input (README "Exit codes")
    assert "bad.png" in capsys.readouterr().err


def test_eval_seg_on_synthetic_set(tmp_path, capsys):
    from wbc_classic.data.synthetic_sets import write_segmentation_set

    root = write_segmentation_set(tmp_path / "seg", 3, seed=0, size=128)
    out = tmp_path / "r.json"
    assert main(["eval-seg", "--data", str(root), "--json", str(out)]) == 0
    text = capsys.readouterr().out
    assert "mean over 3 images" in text and "images/s" in text
    data = json.loads(out.read_text())
    assert data["summary"]["n_images"] == 3 and len(data["images"]) == 3
    trimmed = tmp_path / "t.json"
    assert main(["eval-seg", "--data", str(root), "--json", str(trimmed), "--quiet",
                 "--rim-max-od", "0.06"]) == 0
    cells = [r["cell_dice"] for r in json.loads(trimmed.read_text())["images"]]
    assert len(cells) == 3 and all(0.0 <= c <= 1.0 for c in cells)


def test_eval_seg_voc_and_bad_folder(tmp_path, capsys):
    from wbc_classic.data.synthetic_sets import write_smear_set

    root = write_smear_set(tmp_path / "voc", 1, seed=5, shape=(300, 400))
    assert main(["eval-seg", "--data", str(root), "--quiet"]) == 0
    assert "precision" in capsys.readouterr().out
    assert main(["eval-seg", "--data", str(tmp_path)]) == 2
