"""ONNX export of a trained checkpoint, checked against PyTorch.

The exported graph takes ``input``: float32 (N, C, S, S) in [0, 1] (i.e. ``uint8 / 255``; C = 3
RGB channels unless the model was built with another ``in_chans``) and returns
``probabilities`` (N, n_classes): the checkpoint's normalisation and the softmax are baked in,
so a consumer only has to crop, resize and scale (:mod:`deep.transforms` describes how). The
batch dimension is dynamic. Class names, image size, channels and normalisation are written
into the ONNX metadata.

With ``check=True`` (the default) the file is validated with ``onnx.checker`` and, when
``onnxruntime`` is installed (it is in the ``test`` extra), run on random batches of 1 and 7
images: the largest probability difference to PyTorch must be <= ``atol`` (1e-5) and the
predicted classes the same, otherwise the export fails.

::

    python -m deep.export --checkpoint runs/wbcnet64/best.pt --out wbcnet64.onnx
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

__all__ = ["ExportWrapper", "export_model", "export_onnx", "main", "onnx_parity"]

log = logging.getLogger(__name__)

#: The batch sizes of the parity check (1 and an odd size catch batch-dependent graphs).
PARITY_BATCHES = (1, 7)


class ExportWrapper(nn.Module):
    """``[0, 1]`` image batch -> normalise -> model -> softmax."""

    mean: torch.Tensor
    std: torch.Tensor

    def __init__(self, model: nn.Module, mean: Sequence[float], std: Sequence[float]) -> None:
        super().__init__()
        self.model = model
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(1, -1, 1, 1))
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32).view(1, -1, 1, 1))

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


def onnx_parity(path: str | os.PathLike[str], wrapper: nn.Module, *, img_size: int,
                in_chans: int = 3, batch_sizes: Sequence[int] = PARITY_BATCHES,
                seed: int = 0) -> dict[str, Any]:
    """Run an exported file with onnxruntime and PyTorch on the same random batches.

    Parameters
    ----------
    path : path-like
        The ONNX file.
    wrapper : nn.Module
        The PyTorch module that was exported (eval mode).
    img_size, in_chans : int
        Input side and channels.
    batch_sizes : sequence of int
    seed : int
        Seed of the random inputs (uniform in [0, 1]).

    Returns
    -------
    dict
        ``max_abs_diff`` (float, over all batches), ``argmax_equal`` (bool) and ``batches``
        (one ``{"batch", "max_abs_diff", "argmax_equal"}`` per batch size).

    Raises
    ------
    ImportError
        onnxruntime is not installed.
    """
    try:
        import onnxruntime as ort
    except ImportError as exc:
        raise ImportError("the ONNX parity check needs onnxruntime: pip install onnxruntime "
                          "(it is in wbc-classic's 'test' extra)") from exc
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    gen = torch.Generator().manual_seed(seed)
    rows = []
    for n in batch_sizes:
        xb = torch.rand(n, in_chans, img_size, img_size, generator=gen)
        got = sess.run(None, {"input": xb.numpy()})[0]
        with torch.no_grad():
            ref = wrapper(xb).numpy()
        rows.append({"batch": int(n), "max_abs_diff": float(np.abs(got - ref).max()),
                     "argmax_equal": bool((got.argmax(1) == ref.argmax(1)).all())})
    return {"max_abs_diff": max(r["max_abs_diff"] for r in rows),
            "argmax_equal": all(r["argmax_equal"] for r in rows), "batches": rows}


def export_model(model: nn.Module, meta: dict[str, Any], out: str | os.PathLike[str], *,
                 opset: int = 18, check: bool = True, atol: float = 1e-5) -> Path:
    """Export an in-memory model with its checkpoint metadata (see :func:`export_onnx`)."""
    from wbc_classic.io.atomic import atomic_path

    _onnx_requirements()
    import onnx

    s = int(meta["img_size"])
    chans = int(getattr(model, "in_chans", len(meta["mean"])))
    wrapper = ExportWrapper(model, meta["mean"], meta["std"]).eval()
    x = torch.rand(2, chans, s, s)
    out = Path(out)
    with atomic_path(out) as tmp:
        prog = torch.onnx.export(
            wrapper, (x,), input_names=["input"], output_names=["probabilities"],
            dynamic_shapes={"x": {0: torch.export.Dim("batch", min=1, max=4096)}},
            opset_version=opset, dynamo=True, external_data=False, verbose=False)
        if prog is None:  # only the legacy (dynamo=False) exporter returns nothing
            raise RuntimeError(f"{out}: torch.onnx.export returned no program")
        prog.save(str(tmp))
        proto = onnx.load(str(tmp))
        for k, v in {"classes": json.dumps(meta["classes"]), "img_size": str(s),
                     "in_chans": str(chans), "mean": json.dumps(meta["mean"]),
                     "std": json.dumps(meta["std"]), "model": meta["model"],
                     "input": f"float32 (N,{chans},S,S) in [0,1]"}.items():
            entry = proto.metadata_props.add()
            entry.key, entry.value = k, v
        onnx.save(proto, str(tmp))
        if check:
            onnx.checker.check_model(str(tmp))
            try:
                par = onnx_parity(tmp, wrapper, img_size=s, in_chans=chans)
            except ImportError as exc:
                log.warning("%s: ONNX output not compared with PyTorch (%s)", out, exc)
            else:
                if par["max_abs_diff"] > atol or not par["argmax_equal"]:
                    raise RuntimeError(
                        f"{out}: ONNX output differs from PyTorch by "
                        f"{par['max_abs_diff']:.2g} (allowed {atol:g}), same predicted "
                        f"class: {par['argmax_equal']}")
                log.info("%s: ONNX matches PyTorch, max |dp| %.2g at batches %s", out,
                         par["max_abs_diff"], list(PARITY_BATCHES))
    return out


def export_onnx(checkpoint: str | os.PathLike[str], out: str | os.PathLike[str], *,
                opset: int = 18, check: bool = True, atol: float = 1e-5) -> Path:
    """Export ``checkpoint`` to an ONNX file at ``out`` (written atomically).

    Parameters
    ----------
    checkpoint : path-like
        A :mod:`deep.checkpoint` file.
    out : path-like
        The ONNX file to write.
    opset : int
        ONNX opset version.
    check : bool
        Validate the graph and compare it with PyTorch at batches 1 and 7 (when onnxruntime
        is installed); a difference above ``atol`` or another predicted class is an error.
    atol : float
        Largest allowed probability difference.

    Returns
    -------
    pathlib.Path
    """
    from .checkpoint import load_model

    model, meta = load_model(checkpoint)
    return export_model(model, meta, out, opset=opset, check=check, atol=atol)


def build_parser() -> argparse.ArgumentParser:
    """The ``python -m deep.export`` argument parser."""
    from wbc_classic.io.options import int_range

    p = argparse.ArgumentParser(
        prog="python -m deep.export", description="Export a deep checkpoint to ONNX "
        "(normalisation and softmax baked in; checked against PyTorch with onnxruntime).",
        epilog="example:\n  python -m deep.export --checkpoint runs/wbcnet64/best.pt "
               "--out wbcnet64.onnx", formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--checkpoint", required=True,
                   help="a checkpoint written by python -m deep.train (best.pt, last.pt)")
    p.add_argument("--out", required=True, help="the ONNX file to write (atomically)")
    p.add_argument("--opset", type=int_range(18, 23), default=18,
                   help="ONNX opset, 18-23 (the dynamo exporter's range; default 18)")
    p.add_argument("--atol", type=float, default=1e-5,
                   help="largest allowed |ONNX - PyTorch| probability difference in the "
                        "parity check (default 1e-5)")
    p.add_argument("--no-check", action="store_true",
                   help="skip onnx.checker and the onnxruntime parity check")
    return p


def main(argv: list[str] | None = None) -> int:
    """``python -m deep.export --checkpoint C --out model.onnx``."""
    from wbc_classic.io.atomic import OutputError, check_output_file
    from wbc_classic.io.options import EXIT_USAGE

    a = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        check_output_file(a.out, "--out")  # before loading and tracing the model
        path = export_onnx(a.checkpoint, a.out, opset=a.opset, check=not a.no_check,
                           atol=a.atol)
    except (OutputError, FileNotFoundError, ValueError, ImportError, RuntimeError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
