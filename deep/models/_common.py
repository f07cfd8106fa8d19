"""Shared helpers for the model zoo: input checks, size rules, head bookkeeping."""

from __future__ import annotations

import torch
from torch import nn


def check_img_size(name: str, img_size: int, minimum: int = 16) -> int:
    """Validate ``img_size`` for a builder; return it as int."""
    img_size = int(img_size)
    if img_size < minimum:
        raise ValueError(f"{name}: img_size={img_size} is too small (minimum {minimum} px)")
    return img_size


def check_num_classes(name: str, num_classes: int) -> int:
    """Validate ``num_classes``."""
    if int(num_classes) < 2:
        raise ValueError(f"{name}: num_classes must be >= 2, got {num_classes}")
    return int(num_classes)


def check_batch(x: torch.Tensor, name: str, min_size: int = 1) -> None:
    """Raise a clear error for a batch that is not (N, 3, H, W) or too small."""
    if x.ndim != 4:
        raise ValueError(f"{name}: expected a 4-D batch (N, 3, H, W), got shape {tuple(x.shape)}")
    if x.shape[1] != 3:
        raise ValueError(f"{name}: expected 3 colour channels (N, 3, H, W), got "
                         f"{x.shape[1]} channels in a batch of shape {tuple(x.shape)}")
    if min(x.shape[2], x.shape[3]) < min_size:
        raise ValueError(f"{name}: images of {x.shape[2]}x{x.shape[3]} px are too small "
                         f"(minimum {min_size} px)")


def guarded(model: nn.Module, name: str, min_size: int = 1) -> nn.Module:
    """Register a forward pre-hook on ``model`` that validates the input batch."""

    def hook(_module: nn.Module, args: tuple) -> None:
        if args and isinstance(args[0], torch.Tensor) and not torch.jit.is_tracing() \
                and not torch.compiler.is_compiling():
            check_batch(args[0], name, min_size)

    model.register_forward_pre_hook(hook)
    return model


def set_meta(model: nn.Module, *, arch: str, img_size: int, head: str) -> nn.Module:
    """Attach plain-string metadata used by training (two-phase fine-tuning) and checkpoints."""
    model.arch = arch
    model.img_size = img_size
    model.head_name = head
    return model
