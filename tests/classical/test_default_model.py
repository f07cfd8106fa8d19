"""The model shipped in the package: ``wbc_classic.load("default")``, ``--model default``."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

import wbc_classic
from wbc_classic.classical.modelfile import packaged_model_path
from wbc_classic.data.synthetic import make_cells

MODELS = Path(wbc_classic.__file__).parent / "models"


def test_default_model_loads_by_name_is_small_and_has_a_card():
    path = packaged_model_path("default")
    assert path == MODELS / "default.skops" and path.is_file()
    assert path.stat().st_size <= 5 * 2**20
    model = wbc_classic.load("default")
    assert list(model.classes_) == ["basophil", "eosinophil", "lymphocyte", "monocyte",
                                    "neutrophil"]
    assert model.shift_ is not None
    labs = {s["lab"] for s in model.metadata_["data"]["sources"]}
    assert labs == {"pbc", "cellavision_seg", "jtsc_seg"}
    card = json.loads((MODELS / "default.json").read_text())
    assert "bccd" in card["never_trained_on"]
    scores = card["evaluation"]["candidates"][card["classifier"]]
    assert {"pbc_test", "jtsc_seg_held_out", "cellavision_seg_held_out"} <= set(scores)
    assert (MODELS / "default.md").is_file()


def test_predict_model_default_works_without_training(tmp_path):
    import cv2

    from wbc_classic.cli import main

    images = make_cells(1, size=128, seed=0)[0]
    for i, img in enumerate(images):
        cv2.imwrite(str(tmp_path / f"{i}.png"), cv2.cvtColor(np.asarray(img), cv2.COLOR_RGB2BGR))
    out = tmp_path / "p.csv"
    assert main(["predict", "--model", "default", str(tmp_path), "--out", str(out),
                 "--no-cache"]) in (0, 1)
    assert out.read_text().count("\n") == len(images) + 1


def test_a_file_named_default_wins_over_the_packaged_model(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "default").write_bytes(b"not a model")
    assert packaged_model_path("default") == Path("default")
