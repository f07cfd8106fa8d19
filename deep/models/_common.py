"""Shared helpers for the model zoo: input checks, size rules, head bookkeeping, ``in_chans``,
the normalisation layer choice (``norm``)."""

from __future__ import annotations

import copy
import math
from collections.abc import Sequence
from typing import Any, TypeVar

import torch
from torch import nn

M = TypeVar("M", bound=nn.Module)

#: torchvision's ImageNet normalisation (what ``weights="imagenet"`` models were trained with).
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

#: ``norm`` values of the builders that take one (``wbcnet``, ``resnet18/50/101/152``).
NORMS = ("batch", "group", "layer")
#: Most groups of ``norm="group"`` (Wu & He 2018's default).
MAX_GROUPS = 32


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


def check_in_chans(name: str, in_chans: int) -> int:
    """Validate ``in_chans`` (input channels: 3 for RGB, 1 for greyscale, ...)."""
    if int(in_chans) < 1:
        raise ValueError(f"{name}: in_chans must be >= 1, got {in_chans}")
    return int(in_chans)


def check_norm(name: str, norm: str, weights: Any = None) -> str:
    """Validate a builder's ``norm`` argument (one of :data:`NORMS`); return it.

    ImageNet weights were trained with BatchNorm, so ``weights="imagenet"`` is refused for
    any other ``norm`` (a user's own state dict of a group-norm network is fine).

    Raises
    ------
    ValueError
        An unknown ``norm`` (the message lists the valid ones) or ImageNet weights with
        ``norm != "batch"``.
    """
    from ..pretrained import _is_imagenet

    if norm not in NORMS:
        raise ValueError(f"{name}: unknown norm {norm!r}; valid: {', '.join(NORMS)}")
    if norm != "batch" and _is_imagenet(weights):
        raise ValueError(f"{name}: ImageNet weights were trained with BatchNorm and do not "
                         f"fit norm={norm!r}: use norm='batch' or train from scratch "
                         f"(weights=None)")
    return norm


def group_count(channels: int, max_groups: int = MAX_GROUPS) -> int:
    """Groups of ``norm="group"`` for ``channels`` channels.

    The largest divisor of ``channels`` that is at most ``max_groups`` and leaves at least 2
    channels per group (so the layer never turns into InstanceNorm, which Wu & He 2018 found
    worse); 1 for a single channel. 64 channels -> 32 groups, 24 -> 12, 12 -> 6, 8 -> 4.
    """
    channels = int(channels)
    if channels < 1:
        raise ValueError(f"a normalisation layer needs >= 1 channel, got {channels}")
    top = max(1, min(int(max_groups), channels // 2))
    return next(g for g in range(top, 0, -1) if channels % g == 0)


def norm_layer(kind: str, channels: int) -> nn.Module:
    """The normalisation layer ``kind`` (one of :data:`NORMS`) over ``channels`` channels.

    * ``"batch"`` -- ``nn.BatchNorm2d(channels)``: statistics over the batch (and running
      averages at inference), the builders' default;
    * ``"group"`` -- ``nn.GroupNorm(group_count(channels), channels)``, per sample;
    * ``"layer"`` -- ``nn.GroupNorm(1, channels)``: LayerNorm over (C, H, W) per sample.

    Group and layer norm compute the same thing in training and at inference and never mix
    samples; Tsutsui et al. 2023 (issue 12) found BatchNorm ResNets to generalise poorly across
    labs and layer/group norm to help.
    Takes and returns (N, channels, H, W) float tensors.
    """
    if kind == "batch":
        return nn.BatchNorm2d(channels)
    if kind == "group":
        return nn.GroupNorm(group_count(channels), channels)
    if kind == "layer":
        return nn.GroupNorm(1, channels)
    raise ValueError(f"unknown norm {kind!r}; valid: {', '.join(NORMS)}")


def check_batch(x: torch.Tensor, name: str, min_size: int = 1, in_chans: int = 3) -> None:
    """Raise a clear error for a batch that is not (N, in_chans, H, W) or too small."""
    if x.ndim != 4:
        raise ValueError(f"{name}: expected a 4-D batch (N, {in_chans}, H, W), got shape "
                         f"{tuple(x.shape)}")
    if x.shape[1] != in_chans:
        what = "colour channels" if in_chans == 3 else "channels"
        raise ValueError(f"{name}: expected {in_chans} {what} (N, {in_chans}, H, W), got "
                         f"{x.shape[1]} channels in a batch of shape {tuple(x.shape)}")
    if min(x.shape[2], x.shape[3]) < min_size:
        raise ValueError(f"{name}: images of {x.shape[2]}x{x.shape[3]} px are too small "
                         f"(minimum {min_size} px)")


def guarded(model: M, name: str, min_size: int = 1) -> M:
    """Register a forward pre-hook on ``model`` that validates the input batch.

    The expected channel count is ``model.in_chans`` (set by :func:`set_meta`; 3 if unset).
    """
    chans = int(getattr(model, "in_chans", 3))

    def hook(_module: nn.Module, args: tuple) -> None:
        if args and isinstance(args[0], torch.Tensor) and not torch.jit.is_tracing() \
                and not torch.compiler.is_compiling():
            check_batch(args[0], name, min_size, chans)

    model.register_forward_pre_hook(hook)
    return model


class TransformsFactory:
    """``model.transforms(...)``: the preprocessing object of a zoo model.

    A picklable callable (not a bound method, so the model holds no reference to itself)
    returning a :class:`deep.transforms.Preprocess` for the model's ``img_size`` and
    ``in_chans``. Its normalisation is the one the weights were trained with: ImageNet's for
    ``weights="imagenet"``, the checkpoint's once :func:`deep.transforms.attach_transforms`
    has run (``deep.checkpoint.load_model``), else it must be given (``mean=``, ``std=``).
    """

    def __init__(self, cfg: dict[str, Any]) -> None:
        self.cfg = dict(cfg)

    def __call__(self, **overrides: Any):
        from ..transforms import Preprocess

        cfg = {**self.cfg, **overrides}
        if cfg.get("mean") is None or cfg.get("std") is None:
            raise ValueError(
                f"{cfg.get('arch', 'model')}: this model has no normalisation of its own yet "
                f"(random weights): pass mean=..., std=... or build the transforms from a "
                f"trained checkpoint (deep.transforms.from_checkpoint)")
        cfg.pop("arch", None)
        return Preprocess(**cfg)

    def __repr__(self) -> str:
        return f"TransformsFactory({self.cfg!r})"


def set_meta(model: nn.Module, *, arch: str, img_size: int, head: str, in_chans: int = 3,
             mean: Sequence[float] | None = None,
             std: Sequence[float] | None = None) -> nn.Module:
    """Attach plain metadata used by training (two-phase fine-tuning), checkpoints and
    preprocessing: ``arch``, ``img_size``, ``head_name``, ``in_chans`` and ``transforms``."""
    factory = TransformsFactory(
        {"arch": arch, "img_size": img_size,
         "mean": None if mean is None else tuple(float(v) for v in mean),
         "std": None if std is None else tuple(float(v) for v in std)})
    set_plain_attrs(model, arch=arch, img_size=img_size, head_name=head, in_chans=in_chans,
                    transforms=factory)
    return model


def set_plain_attrs(model: nn.Module, **values: Any) -> None:
    """Set plain (non-tensor, non-module) attributes on ``model``.

    ``nn.Module.__setattr__`` ends in the instance dict for such values anyway; writing there
    directly keeps type checkers from reading every attribute as a tensor or submodule.
    """
    vars(model).update(values)


def submodule(model: nn.Module, path: str, kind: type[M]) -> M:
    """``model.get_submodule(path)``, checked to be a ``kind`` (e.g. the head's Linear)."""
    mod = model.get_submodule(path)
    if not isinstance(mod, kind):
        raise TypeError(f"{path} is a {type(mod).__name__}, not a {kind.__name__}")
    return mod


def replace_submodule(model: nn.Module, path: str, new: nn.Module) -> None:
    """Put ``new`` at the dotted ``path`` of ``model`` (in place)."""
    parent, _, leaf = path.rpartition(".")
    setattr(model.get_submodule(parent) if parent else model, leaf, new)


def imagenet_norm(weights: Any, in_chans: int) -> dict[str, tuple[float, ...] | None]:
    """``mean``/``std`` keyword arguments of :func:`set_meta` for a torchvision builder: the
    ImageNet statistics when ImageNet weights were loaded (averaged for one channel)."""
    from ..pretrained import _is_imagenet

    if not _is_imagenet(weights):
        return {"mean": None, "std": None}
    if in_chans == 3:
        return {"mean": IMAGENET_MEAN, "std": IMAGENET_STD}
    m, s = sum(IMAGENET_MEAN) / 3, sum(IMAGENET_STD) / 3
    return {"mean": (m,) * in_chans, "std": (s,) * in_chans}


def adapt_input_conv(model: nn.Module, path: str, in_chans: int) -> None:
    """Give the convolution at ``path`` ``in_chans`` input channels (in place).

    The weights of the 3-channel convolution are carried over the way timm does it, so an
    ImageNet stem stays useful: summed over RGB for one channel, repeated and rescaled by
    ``3 / in_chans`` for more. Nothing changes when ``in_chans == 3``.
    """
    if in_chans == 3:
        return
    conv = submodule(model, path, nn.Conv2d)
    if conv.groups != 1:
        raise TypeError(f"{path} is a grouped Conv2d: cannot change its input channels")
    new = copy.deepcopy(conv)  # same kernel, stride, padding, bias
    with torch.no_grad():
        w = conv.weight
        if in_chans == 1:
            w = w.sum(1, keepdim=True)
        else:
            w = w.repeat(1, math.ceil(in_chans / 3), 1, 1)[:, :in_chans] * (3.0 / in_chans)
    new.weight = nn.Parameter(w.clone())
    new.in_channels = in_chans
    replace_submodule(model, path, new)
