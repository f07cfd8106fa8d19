"""torchvision DenseNet-121/201 adapted to small inputs (stride-1 7x7 stem below 112 px, no
stem max-pool at <= 32 px; ImageNet weights still fit)."""

from __future__ import annotations

import re

from torch import nn
from torchvision import models as tvm

from ..pretrained import apply_weights
from ._common import (
    adapt_input_conv,
    check_img_size,
    check_in_chans,
    check_num_classes,
    guarded,
    imagenet_norm,
    replace_submodule,
    set_meta,
    submodule,
)
from .resnet import adapt_stem

__all__ = ["densenet121", "densenet201"]

_WEIGHTS = {"densenet121": tvm.DenseNet121_Weights.IMAGENET1K_V1,
            "densenet201": tvm.DenseNet201_Weights.IMAGENET1K_V1}


def _build(name: str, num_classes: int, weights, img_size: int, in_chans: int,
           memory_efficient: bool = False) -> nn.Module:
    check_num_classes(name, num_classes)
    img_size = check_img_size(name, img_size, 16)
    in_chans = check_in_chans(name, in_chans)
    model = getattr(tvm, name)(weights=None, num_classes=1000,
                               memory_efficient=memory_efficient)
    adapt_stem(model, img_size, "features.conv0", "features.pool0")

    def head(m: nn.Module) -> None:
        replace_submodule(m, "classifier", nn.Linear(
            submodule(m, "classifier", nn.Linear).in_features, num_classes))
        adapt_input_conv(m, "features.conv0", in_chans)

    apply_weights(model, weights, name, _WEIGHTS[name], head, rename=_legacy_key)
    set_meta(model, arch=name, img_size=img_size, head="classifier", in_chans=in_chans,
             **imagenet_norm(weights, in_chans))
    return guarded(model, name, 16)


_LEGACY = re.compile(r"^(.*denselayer\d+\.(?:norm|relu|conv))\.((?:[12])\.(?:weight|bias|"
                     r"running_mean|running_var))$")


def _legacy_key(k: str) -> str:
    """torchvision's DenseNet files use old names ("norm.1.weight" -> "norm1.weight")."""
    return _LEGACY.sub(r"\1\2", k)


def densenet121(*, num_classes: int = 8, weights=None, img_size: int = 64,
                in_chans: int = 3, memory_efficient: bool = False) -> nn.Module:
    """DenseNet-121 (torchvision) adapted to ``img_size``."""
    return _build("densenet121", num_classes, weights, img_size, in_chans, memory_efficient)


def densenet201(*, num_classes: int = 8, weights=None, img_size: int = 64,
                in_chans: int = 3, memory_efficient: bool = False) -> nn.Module:
    """DenseNet-201 (torchvision) adapted to ``img_size``."""
    return _build("densenet201", num_classes, weights, img_size, in_chans, memory_efficient)
