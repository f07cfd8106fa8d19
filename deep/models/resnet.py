"""torchvision ResNet-18/50/101/152 adapted to small inputs.

Below 112 px the 7x7 stem convolution keeps its kernel (so ImageNet weights still fit) but uses
stride 1; at <= 32 px the stem max-pool is dropped too. At >= 112 px the network is unchanged.
So a 64 px image reaches ``layer1`` at 32x32 (ImageNet: 56x56 from 224 px).

``norm`` replaces every BatchNorm by GroupNorm (``"group"``) or LayerNorm (``"layer"``) through
torchvision's ``norm_layer`` (:func:`deep.models._common.norm_layer`); ImageNet weights need
the default ``"batch"``.
"""

from __future__ import annotations

from functools import partial

from torch import nn
from torchvision import models as tvm

from ..pretrained import apply_weights
from ._common import (
    adapt_input_conv,
    check_img_size,
    check_in_chans,
    check_norm,
    check_num_classes,
    guarded,
    imagenet_norm,
    norm_layer,
    replace_submodule,
    set_meta,
    submodule,
)

__all__ = ["resnet18", "resnet50", "resnet101", "resnet152"]

_WEIGHTS = {
    "resnet18": tvm.ResNet18_Weights.IMAGENET1K_V1,
    "resnet50": tvm.ResNet50_Weights.IMAGENET1K_V2,
    "resnet101": tvm.ResNet101_Weights.IMAGENET1K_V2,
    "resnet152": tvm.ResNet152_Weights.IMAGENET1K_V2,
}


def adapt_stem(model: nn.Module, img_size: int, conv: str, pool: str | None) -> None:
    """Stride-1 stem below 112 px; drop the stem max-pool at <= 32 px (in place)."""
    if img_size < 112:
        submodule(model, conv, nn.Conv2d).stride = (1, 1)
        if pool is not None and img_size <= 32:
            replace_submodule(model, pool, nn.Identity())


def _build(name: str, num_classes: int, weights, img_size: int, in_chans: int,
           norm: str) -> nn.Module:
    check_num_classes(name, num_classes)
    img_size = check_img_size(name, img_size, 16)
    in_chans = check_in_chans(name, in_chans)
    norm = check_norm(name, norm, weights)
    # a partial of a module-level function (not a lambda): the model stays picklable
    model = getattr(tvm, name)(weights=None, num_classes=1000,
                               norm_layer=partial(norm_layer, norm))
    adapt_stem(model, img_size, "conv1", "maxpool")

    def head(m: nn.Module) -> None:
        replace_submodule(m, "fc", nn.Linear(submodule(m, "fc", nn.Linear).in_features,
                                             num_classes))
        adapt_input_conv(m, "conv1", in_chans)

    apply_weights(model, weights, name, _WEIGHTS[name], head)
    set_meta(model, arch=name, img_size=img_size, head="fc", in_chans=in_chans,
             **imagenet_norm(weights, in_chans))
    return guarded(model, name, 16)


def resnet18(*, num_classes: int = 8, weights=None, img_size: int = 64,
             in_chans: int = 3, norm: str = "batch") -> nn.Module:
    """ResNet-18 (torchvision) adapted to ``img_size``; see the module docstring.
    ``norm``: "batch", "group" or "layer"."""
    return _build("resnet18", num_classes, weights, img_size, in_chans, norm)


def resnet50(*, num_classes: int = 8, weights=None, img_size: int = 64,
             in_chans: int = 3, norm: str = "batch") -> nn.Module:
    """ResNet-50 (torchvision) adapted to ``img_size``. ``norm``: "batch", "group" or "layer"."""
    return _build("resnet50", num_classes, weights, img_size, in_chans, norm)


def resnet101(*, num_classes: int = 8, weights=None, img_size: int = 64,
              in_chans: int = 3, norm: str = "batch") -> nn.Module:
    """ResNet-101 (torchvision) adapted to ``img_size``. ``norm``: "batch", "group" or "layer"."""
    return _build("resnet101", num_classes, weights, img_size, in_chans, norm)


def resnet152(*, num_classes: int = 8, weights=None, img_size: int = 64,
              in_chans: int = 3, norm: str = "batch") -> nn.Module:
    """ResNet-152 (torchvision) adapted to ``img_size``. ``norm``: "batch", "group" or "layer"."""
    return _build("resnet152", num_classes, weights, img_size, in_chans, norm)
