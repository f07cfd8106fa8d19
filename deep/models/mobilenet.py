"""torchvision MobileNetV2 adapted to small inputs (stride-1 first convolution below 112 px;
ImageNet weights still fit)."""

from __future__ import annotations

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

__all__ = ["mobilenet_v2"]


def mobilenet_v2(*, num_classes: int = 8, weights=None, img_size: int = 64,
                 in_chans: int = 3, width_mult: float = 1.0, dropout: float = 0.2
                 ) -> nn.Module:
    """MobileNetV2 (torchvision) for ``img_size`` inputs.

    ImageNet weights exist only for ``width_mult=1.0``.
    """
    check_num_classes("mobilenet_v2", num_classes)
    img_size = check_img_size("mobilenet_v2", img_size, 16)
    in_chans = check_in_chans("mobilenet_v2", in_chans)
    model = tvm.mobilenet_v2(weights=None, width_mult=width_mult, dropout=dropout)
    if img_size < 112:
        submodule(model, "features.0.0", nn.Conv2d).stride = (1, 1)

    def head(m: nn.Module) -> None:
        replace_submodule(m, "classifier.1", nn.Linear(
            submodule(m, "classifier.1", nn.Linear).in_features, num_classes))
        adapt_input_conv(m, "features.0.0", in_chans)

    apply_weights(model, weights, "mobilenet_v2", tvm.MobileNet_V2_Weights.IMAGENET1K_V1, head)
    set_meta(model, arch="mobilenet_v2", img_size=img_size, head="classifier",
             in_chans=in_chans, **imagenet_norm(weights, in_chans))
    return guarded(model, "mobilenet_v2", 16)
