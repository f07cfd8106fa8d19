"""Model cards: written beside every saved model and inside it, shown by ``wbc-classic info``."""

from __future__ import annotations

import json

import pytest

from wbc_classic.cli import main
from wbc_classic.data.synthetic_sets import write_class_folders
from wbc_classic.io.modelcard import (
    CARD_FIELDS,
    card_markdown,
    card_path,
    make_card,
    missing_fields,
)

CLASSES = ("eosinophil", "lymphocyte", "neutrophil")


def test_card_has_every_field_and_renders_them():
    card = make_card(family="classical", architecture="logreg", classes=CLASSES,
                     file="m.skops", sources=["/data/pbc"], counts={"eosinophil": 3},
                     split={"scheme": "80/20", "seed": 0},
                     in_lab={"data": "pbc test", "n": 9, "accuracy": 0.5},
                     versions={"wbc_classic": "1"})
    assert missing_fields(card) == []
    assert set(CARD_FIELDS) <= set(card)
    text = card_markdown(card)
    for section in ("## Training data", "## Split", "## Scores", "## Versions",
                    "## Intended use", "## Limits"):
        assert section in text
    assert "accuracy 0.5000" in text and "Other lab:** not measured" in text
    assert card_path("runs/x/model.skops").name == "model.card.md"
    with pytest.raises(ValueError, match="family"):
        make_card(family="other", architecture="x", classes=CLASSES)


def test_classical_train_writes_the_card_beside_and_inside(tmp_path, capsys):
    data = write_class_folders(tmp_path / "data", 6, classes=CLASSES, size=96, seed=0)
    model = tmp_path / "m.skops"
    assert main(["train", "--data", str(data), "--classes", *CLASSES, "--classifier",
                 "logreg", "--out", str(model), "--no-cache", "--cv", "2", "--split",
                 "70/30", "--seed", "0"]) == 0
    capsys.readouterr()
    md = tmp_path / "m.card.md"
    assert md.is_file() and "## Scores" in md.read_text()
    from wbc_classic.classical.modelfile import load

    card = load(model).metadata_["card"]
    assert missing_fields(card) == []
    assert card["model"]["family"] == "classical" and card["classes"] == list(CLASSES)
    assert sum(card["training_data"]["counts"].values()) == card["split"]["n_train"]
    assert card["split"]["scheme"] == "70/30"
    assert 0 <= card["scores"]["in_lab"]["accuracy"] <= 1
    assert main(["info", str(model), "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == card
    assert main(["info", str(model)]) == 0
    assert capsys.readouterr().out.strip() == md.read_text().strip()


def test_info_on_a_bad_file_is_one_line(tmp_path, capsys):
    bad = tmp_path / "x.skops"
    bad.write_bytes(b"not a zip")
    assert main(["info", str(bad)]) == 2
    assert "x.skops" in capsys.readouterr().err
    assert main(["info", str(tmp_path / "missing.pt")]) == 2
    assert "no such model file" in capsys.readouterr().err


def test_deep_train_writes_the_card_and_info_reads_it(tmp_path, capsys):
    pytest.importorskip("torch")
    from deep.train import main as train

    data = write_class_folders(tmp_path / "data", 5, classes=CLASSES, size=40, seed=0)
    out = tmp_path / "run"
    assert train(["--data", str(data), "--out", str(out), "--model", "wbcnet", "--img-size",
                  "32", "--epochs", "1", "--batch-size", "4", "--no-progress",
                  "--no-amp", "--threads", "1"]) == 0
    capsys.readouterr()
    assert (out / "best.card.md").is_file()
    assert main(["info", str(out / "best.pt"), "--json"]) == 0
    card = json.loads(capsys.readouterr().out)
    assert missing_fields(card) == [] and card["model"]["family"] == "deep"
    assert card["classes"] == list(CLASSES) and "torch" in card["versions"]
    assert sum(card["training_data"]["counts"].values()) == card["split"]["n_train"]
    # the checkpoint still loads for prediction with the card in its metadata
    from deep.checkpoint import load_model

    _, meta = load_model(out / "best.pt")
    assert meta["card"] == card
