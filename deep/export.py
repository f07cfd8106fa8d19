"""ONNX export of a trained checkpoint.

The exported graph takes ``input``: float32 (N, 3, S, S) RGB in [0, 1] (i.e. ``uint8 / 255``)
and returns ``probabilities`` (N, n_classes): the checkpoint's normalisation and the softmax
are baked in, so a consumer only has to resize and scale. The batch dimension is dynamic.
Class names, image size and normalisation are written into the ONNX metadata.

::

    python -m deep.export --checkpoint runs/wbcnet64/best.pt --out wbcnet64.onnx
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

import torch
from torch import nn

__all__ = ["ExportWrapper", "export_onnx", "main"]


class ExportWrapper(nn.Module):
    """``[0, 1]`` RGB batch -> normalise -> model -> softmax."""

    def __init__(self, model: nn.Module, mean, std) -> None:
        super().__init__()
        self.model = model
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32).view(1, 3, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.softmax(self.model((x - self.mean) / self.std), dim=1)


def _onnx_requirements() -> None:
    try:
        import onnx  # noqa: F401
    except ImportError as exc:
        raise ImportError("ONNX export needs the 'onnx' package: pip install onnx "
                          "(or pip install wbc-classic[deep])") from exc
    try:
        import onnxscript  # noqa: F401
    except ImportError as exc:
        raise ImportError(f"torch {torch.__version__}'s ONNX exporter (torch.onnx.export, "
                          f"dynamo=True) needs the 'onnxscript' package: pip install "
                          f"onnxscript") from exc


def export_onnx(checkpoint: str | os.PathLike[str], out: str | os.PathLike[str], *,
                opset: int = 18, check: bool = True) -> Path:
    """Export ``checkpoint`` to an ONNX file at ``out`` (written atomically).

    Returns the path. With ``check`` the file is validated with ``onnx.checker`` and, when
    ``onnxruntime`` is installed, its output compared with PyTorch's on a random batch.
    """
    from wbc_classic.io.atomic import atomic_path

    from .checkpoint import load_model

    _onnx_requirements()
    import onnx

    model, meta = load_model(checkpoint)
    s = int(meta["img_size"])
    wrapper = ExportWrapper(model, meta["mean"], meta["std"]).eval()
    x = torch.rand(2, 3, s, s)
    out = Path(out)
    with atomic_path(out) as tmp:
        prog = torch.onnx.export(
            wrapper, (x,), input_names=["input"], output_names=["probabilities"],
            dynamic_shapes={"x": {0: torch.export.Dim("batch", min=1, max=4096)}},
            opset_version=opset, dynamo=True, external_data=False)
        prog.save(str(tmp))
        proto = onnx.load(str(tmp))
        for k, v in {"classes": json.dumps(meta["classes"]), "img_size": str(s),
                     "mean": json.dumps(meta["mean"]), "std": json.dumps(meta["std"]),
                     "model": meta["model"],
                     "input": "float32 (N,3,S,S) RGB in [0,1]"}.items():
            entry = proto.metadata_props.add()
            entry.key, entry.value = k, v
        onnx.save(proto, str(tmp))
        if check:
            onnx.checker.check_model(str(tmp))
            try:
                import onnxruntime as ort
            except ImportError:
                ort = None
            if ort is not None:
                sess = ort.InferenceSession(str(tmp), providers=["CPUExecutionProvider"])
                xb = torch.rand(3, 3, s, s)
                got = sess.run(None, {"input": xb.numpy()})[0]
                with torch.no_grad():
                    ref = wrapper(xb).numpy()
                if abs(got - ref).max() > 1e-3:
                    raise RuntimeError("ONNX output differs from PyTorch by "
                                       f"{abs(got - ref).max():.2g}")
    return out


def main(argv: list[str] | None = None) -> int:
    """``python -m deep.export --checkpoint C --out model.onnx``."""
    p = argparse.ArgumentParser(
        prog="python -m deep.export", description="Export a deep checkpoint to ONNX.",
        epilog="example:\n  python -m deep.export --checkpoint runs/wbcnet64/best.pt "
               "--out wbcnet64.onnx", formatter_class=argparse.RawDescriptionHelpFormatter)
    from wbc_classic.io.atomic import OutputError, check_output_file
    from wbc_classic.io.options import EXIT_USAGE, int_range

    p.add_argument("--checkpoint", required=True,
                   help="checkpoint written by python -m deep.train (best.pt)")
    p.add_argument("--out", required=True, help="ONNX file to write (atomically)")
    p.add_argument("--opset", type=int_range(18, 23), default=18,
                   help="ONNX opset, 18-23 (the dynamo exporter's range; default 18)")
    a = p.parse_args(argv)
    try:
        check_output_file(a.out, "--out")  # before loading and tracing the model
        path = export_onnx(a.checkpoint, a.out, opset=a.opset)
    except (OutputError, FileNotFoundError, ValueError, ImportError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
