"""A seeded network reproduces its first epoch exactly (issue 14, item 8)."""

from __future__ import annotations

import json

import numpy as np
import pytest

torch = pytest.importorskip("torch")

pytestmark = pytest.mark.torch


def _run(tmp_path, data, name, seed=0):
    from deep.checkpoint import load_checkpoint
    from deep.train import TrainConfig, train

    out = tmp_path / name
    train(TrainConfig(data=str(data), out=str(out), model="smallcnn",
                      model_kwargs={"width": 0.25}, img_size=32, epochs=1, batch_size=8,
                      cache_dir=str(tmp_path / "cache"), progress=False, threads=1, seed=seed,
                      tta=False))
    history = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    state = load_checkpoint(out / "last.pt")["state_dict"]
    return history, state


def test_same_seed_same_first_epoch_bit_for_bit(tmp_path):
    from wbc_classic.data.synthetic_sets import write_class_folders

    data = write_class_folders(tmp_path / "cells", 6, size=40, seed=0,
                               classes=("lymphocyte", "neutrophil", "eosinophil"))
    h1, s1 = _run(tmp_path, data, "a")
    h2, s2 = _run(tmp_path, data, "b")
    for key in ("train_loss", "train_acc", "val_loss", "val_acc", "lr"):
        assert h1[0][key] == h2[0][key], key
    assert list(s1) == list(s2)
    for k in s1:
        assert torch.equal(s1[k], s2[k]), k
    h3, s3 = _run(tmp_path, data, "c", seed=1)  # and the seed matters
    assert any(not torch.equal(s1[k], s3[k]) for k in s1 if s1[k].is_floating_point())
    assert np.isfinite(h3[0]["train_loss"])
