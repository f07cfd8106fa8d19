"""ONNX export of the deep family against PyTorch: batches 1 and 7, max |dp| <= 1e-5, same
argmax, for a representative set of builders at tiny widths (the comparison runs: onnx,
onnxscript and onnxruntime are required here, they are in the 'deep' and 'test' extras)."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("torchvision")

from tests.conftest import REPO_ROOT  # noqa: E402

pytestmark = pytest.mark.torch

# name -> builder kwargs (tiny, architecture unchanged) and image size
CASES = {
    "wbcnet": ({"width": 0.25}, 32),
    "ndlm": ({}, 32),
    "ndlm_bn": ({}, 32),
    "sevenblock": ({"width": 0.25}, 32),
    "sevenblock_gap": ({"width": 0.25}, 32),
    "risodkar_cnn": ({"width": 0.25}, 32),
    "smallcnn": ({"width": 0.25}, 32),
    "resnet18": ({}, 32),
    "mobilenet_v2": ({"width_mult": 0.35}, 32),
    "vit": ({"hidden_dim": 48, "depth": 2, "num_heads": 2, "mlp_dim": 96}, 32),
    "xception": ({"width": 0.25, "middle_blocks": 1}, 32),
    "unet": ({"base": 4, "depth": 2}, 32),
}
CLASSES = ["eosinophil", "lymphocyte", "monocyte", "neutrophil"]


def _checkpoint(tmp_path, name, kwargs, size, in_chans=3):
    from deep.checkpoint import save_checkpoint
    from deep.models import get_model

    torch.manual_seed(0)
    model = get_model(name, num_classes=len(CLASSES), img_size=size, in_chans=in_chans,
                      **kwargs)
    model.train()
    with torch.no_grad():
        # some builders zero-initialise layers (ViT's head, residual BN gains): give those
        # random values so the probabilities are not uniform and the comparison means something
        for p in model.parameters():
            if not p.abs().max():
                p.normal_(0.0, 0.05)
        for _ in range(3):  # non-trivial batch-norm statistics
            model(torch.randn(8, in_chans, size, size) * 0.5 + 0.2)
    meta = {"model": name, "model_kwargs": {**kwargs, "in_chans": in_chans},
            "classes": CLASSES, "img_size": size,
            "mean": [0.6, 0.5, 0.7][:in_chans], "std": [0.2, 0.25, 0.15][:in_chans]}
    return save_checkpoint(tmp_path / f"{name}.pt", model, meta)


def _require_onnx():
    # not importorskip: a missing package must fail here, or the comparison never runs
    import onnx  # noqa: F401
    import onnxruntime  # noqa: F401
    import onnxscript  # noqa: F401


@pytest.mark.parametrize("name", list(CASES))
def test_onnx_matches_pytorch_at_batch_1_and_7(tmp_path, name):
    _require_onnx()
    import onnx

    from deep.checkpoint import load_model
    from deep.export import ExportWrapper, export_onnx, onnx_parity

    kwargs, size = CASES[name]
    ck = _checkpoint(tmp_path, name, kwargs, size)
    path = export_onnx(ck, tmp_path / f"{name}.onnx")
    model, meta = load_model(ck)
    wrapper = ExportWrapper(model, meta["mean"], meta["std"]).eval()
    par = onnx_parity(path, wrapper, img_size=size, batch_sizes=(1, 7), seed=1)
    assert [b["batch"] for b in par["batches"]] == [1, 7]
    assert par["max_abs_diff"] <= 1e-5 and par["argmax_equal"], par
    with torch.no_grad():  # the check is not vacuous: the classes differ between images
        p = wrapper(torch.rand(7, 3, size, size, generator=torch.Generator().manual_seed(1)))
    assert float(p.max() - p.min()) > 1e-3 and float(p.max()) < 0.9999  # nor saturated
    props = {p.key: p.value for p in onnx.load(str(path)).metadata_props}
    assert json.loads(props["classes"]) == CLASSES and props["img_size"] == str(size)


@pytest.mark.parametrize("name,kwargs", [("wbcnet", {"width": 0.25, "norm": "group"}),
                                         ("wbcnet", {"width": 0.25, "norm": "layer"}),
                                         ("resnet18", {"norm": "group"})])
def test_onnx_export_of_group_and_layer_norm_models(tmp_path, name, kwargs):
    _require_onnx()
    from torch import nn

    from deep.checkpoint import load_model
    from deep.export import ExportWrapper, export_onnx, onnx_parity

    ck = _checkpoint(tmp_path, name, kwargs, 32)
    path = export_onnx(ck, tmp_path / f"{name}.onnx")  # refused above 1e-5 from PyTorch
    model, meta = load_model(ck)
    assert any(isinstance(m, nn.GroupNorm) for m in model.modules())
    wrapper = ExportWrapper(model, meta["mean"], meta["std"]).eval()
    par = onnx_parity(path, wrapper, img_size=32, batch_sizes=(1, 7), seed=1)
    assert par["max_abs_diff"] <= 1e-5 and par["argmax_equal"], par


def test_onnx_export_of_a_one_channel_model(tmp_path):
    _require_onnx()
    import onnxruntime as ort

    from deep.export import export_onnx

    ck = _checkpoint(tmp_path, "smallcnn", {"width": 0.25}, 32, in_chans=1)
    path = export_onnx(ck, tmp_path / "grey.onnx")
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    assert sess.get_inputs()[0].shape[1] == 1
    p = sess.run(None, {"input": np.random.default_rng(0).random((3, 1, 32, 32), np.float32)})[0]
    assert p.shape == (3, len(CLASSES)) and np.allclose(p.sum(1), 1, atol=1e-5)


def test_parity_failure_is_an_error(tmp_path, monkeypatch):
    """A graph that drifts from PyTorch is refused, not written."""
    _require_onnx()
    from deep import export

    ck = _checkpoint(tmp_path, "ndlm", {}, 32)
    monkeypatch.setattr(export, "onnx_parity", lambda *a, **k: {
        "max_abs_diff": 3e-4, "argmax_equal": True, "batches": []})
    with pytest.raises(RuntimeError, match="differs from PyTorch by 0.0003"):
        export.export_onnx(ck, tmp_path / "bad.onnx")
    assert not (tmp_path / "bad.onnx").exists()


def test_export_cli_every_flag_has_help_and_runs(tmp_path):
    _require_onnx()
    from deep.export import build_parser

    for action in build_parser()._actions:
        assert action.help, f"deep.export flag {action.option_strings} has no help text"
    ck = _checkpoint(tmp_path, "smallcnn", {"width": 0.25}, 32)
    proc = subprocess.run([sys.executable, "-m", "deep.export", "--checkpoint", str(ck),
                           "--out", str(tmp_path / "m.onnx")], cwd=REPO_ROOT,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "ONNX matches PyTorch" in proc.stderr and (tmp_path / "m.onnx").is_file()
    bad = subprocess.run([sys.executable, "-m", "deep.export", "--checkpoint",
                          str(tmp_path / "missing.pt"), "--out", str(tmp_path / "x.onnx")],
                         cwd=REPO_ROOT, capture_output=True, text=True, timeout=300)
    assert bad.returncode == 2 and "checkpoint not found" in bad.stderr
