"""Checkpoints: a state dict plus JSON-able metadata, read back with ``weights_only=True``.

File layout (a plain dict, so ``torch.load(path, weights_only=True)`` reads it and never runs
code from an untrusted file)::

    {"format": "wbc-deep-checkpoint", "version": 1,
     "meta": "<JSON string>",    # model, model_kwargs, classes, img_size, mean, std, epoch
     "state_dict": {name: tensor},
     "optimizer": {...} | None,          # for resuming
     "extra": "<JSON string>"}           # training state (best loss, history, counters)
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import torch
from torch import nn

__all__ = ["CheckpointError", "load_checkpoint", "load_model", "save_checkpoint"]

FORMAT = "wbc-deep-checkpoint"


class CheckpointError(ValueError):
    """A checkpoint file is missing, corrupt or not one of ours."""


def _unwrap(model: nn.Module) -> nn.Module:
    return model.module if hasattr(model, "module") else model


def save_checkpoint(path: str | os.PathLike[str], model: nn.Module, meta: dict[str, Any], *,
                    optimizer: torch.optim.Optimizer | None = None,
                    extra: dict[str, Any] | None = None) -> Path:
    """Write a checkpoint atomically (a killed run keeps the previous file intact).

    Parameters
    ----------
    path : path-like
    model : nn.Module
        Its ``state_dict()`` is stored (a DDP wrapper is unwrapped).
    meta : dict
        JSON-able: at least ``model``, ``classes``, ``img_size``, ``mean``, ``std``.
    optimizer : torch.optim.Optimizer, optional
    extra : dict, optional
        JSON-able training state for resuming.
    """
    from wbc_classic.io.atomic import atomic_path

    for key in ("model", "classes", "img_size", "mean", "std"):
        if key not in meta:
            raise ValueError(f"checkpoint metadata needs {key!r}")
    state = {k: v.detach().cpu() for k, v in _unwrap(model).state_dict().items()}
    obj = {"format": FORMAT, "version": 1, "meta": json.dumps(meta), "state_dict": state,
           "optimizer": optimizer.state_dict() if optimizer is not None else None,
           "extra": json.dumps(extra or {})}
    path = Path(path)
    with atomic_path(path) as tmp:
        torch.save(obj, tmp)
    return path


def load_checkpoint(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read a checkpoint with ``weights_only=True``; return a dict with parsed ``meta``/``extra``.

    Raises
    ------
    FileNotFoundError
        The file does not exist.
    CheckpointError
        The file is corrupt, truncated, not a wbc-classic deep checkpoint, or would need
        arbitrary code to unpickle (refused).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint not found: {path}")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise CheckpointError(
            f"cannot read checkpoint {path}: the file is corrupt, truncated or holds objects "
            f"that are refused for safety (weights_only=True) ({type(exc).__name__}: "
            f"{str(exc).splitlines()[0] if str(exc) else ''})") from exc
    if not isinstance(obj, dict) or obj.get("format") != FORMAT:
        raise CheckpointError(f"{path} is not a wbc-classic deep checkpoint "
                              f"(expected format {FORMAT!r})")
    try:
        obj["meta"] = json.loads(obj["meta"])
        obj["extra"] = json.loads(obj.get("extra") or "{}")
    except (KeyError, TypeError, json.JSONDecodeError) as exc:
        raise CheckpointError(f"checkpoint {path} has damaged metadata: {exc}") from exc
    return obj


def load_model(path: str | os.PathLike[str], device: str | torch.device = "cpu"
               ) -> tuple[nn.Module, dict[str, Any]]:
    """Rebuild the model recorded in a checkpoint and load its weights (eval mode).

    Returns
    -------
    model : nn.Module
    meta : dict
        The checkpoint metadata (classes, img_size, mean, std, ...).
    """
    from .models import get_model

    ckpt = load_checkpoint(path)
    meta = ckpt["meta"]
    if not isinstance(meta, dict):
        raise CheckpointError(f"checkpoint {path} has damaged metadata: not a mapping")
    missing = [k for k in ("model", "classes", "img_size", "mean", "std") if k not in meta]
    if missing:
        raise CheckpointError(f"checkpoint {path} lacks {', '.join(map(repr, missing))} in "
                              f"its metadata; it cannot be used for prediction")
    classes = meta["classes"]
    if not isinstance(classes, list) or not classes or \
            not all(isinstance(c, str) and c for c in classes) or len(set(classes)) != len(classes):
        raise CheckpointError(f"checkpoint {path} has invalid 'classes' {classes!r}: expected a "
                              f"list of distinct class names")
    kwargs = meta.get("model_kwargs") or {}
    if not isinstance(kwargs, dict):
        raise CheckpointError(f"checkpoint {path} has invalid 'model_kwargs' {kwargs!r}: "
                              f"expected a mapping")
    try:
        size = int(meta["img_size"])
        channels = int(kwargs.get("in_chans", 3))
        if not 8 <= size <= 4096 or len(meta["mean"]) != channels \
                or len(meta["std"]) != channels:
            raise ValueError
    except (TypeError, ValueError):
        raise CheckpointError(f"checkpoint {path} has an invalid img_size/mean/std in its "
                              f"metadata") from None
    try:
        model = get_model(meta["model"], num_classes=len(classes), weights=None,
                          img_size=size, **kwargs)
    except (TypeError, ValueError, KeyError) as exc:
        raise CheckpointError(f"checkpoint {path}: cannot build model {meta['model']!r} with "
                              f"model_kwargs {kwargs!r}: {str(exc).splitlines()[0]}") from None
    try:
        model.load_state_dict(ckpt["state_dict"])
    except RuntimeError as exc:
        raise CheckpointError(f"checkpoint {path} does not match model {meta['model']!r}: "
                              f"{str(exc).splitlines()[0]}") from exc
    model.eval()
    return model.to(device), meta
