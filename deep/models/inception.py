"""torchvision Inception-v3 for small inputs.

torchvision's Inception-v3 needs at least 75 px (its stem alone reduces by 8 with valid
convolutions). Rather than re-designing the stem (which would break the ImageNet weights),
inputs smaller than ``min_size`` (75 px by default) are bilinearly upsampled inside the model,
as the first layer; larger inputs pass unchanged. The auxiliary classifier is off
(``aux_logits=False``) so the model returns plain logits like every other zoo model.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
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

__all__ = ["InceptionV3Small", "inception_v3"]


class InceptionV3Small(nn.Module):
    """Upsample to ``min_size`` if needed, then torchvision's Inception-v3 (``net``)."""

    def __init__(self, net: nn.Module, min_size: int = 75) -> None:
        super().__init__()
        self.net = net
        self.min_size = int(min_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2:]
        if min(h, w) < self.min_size:
            s = self.min_size / min(h, w)
            x = F.interpolate(x, size=(max(self.min_size, round(h * s)),
                                       max(self.min_size, round(w * s))),
                              mode="bilinear", align_corners=False)
        out = self.net(x)
        return out.logits if hasattr(out, "logits") else out


def inception_v3(*, num_classes: int = 8, weights=None, img_size: int = 64,
                 in_chans: int = 3, min_size: int = 75, dropout: float = 0.5) -> nn.Module:
    """Inception-v3 (torchvision) that accepts ``img_size`` >= 16 (see module docstring)."""
    check_num_classes("inception_v3", num_classes)
    img_size = check_img_size("inception_v3", img_size, 16)
    in_chans = check_in_chans("inception_v3", in_chans)
    if min_size < 75:
        raise ValueError(f"inception_v3: min_size must be >= 75, got {min_size}")
    net = tvm.inception_v3(weights=None, aux_logits=False, init_weights=True,
                           transform_input=False, dropout=dropout)

    def head(m: nn.Module) -> None:
        replace_submodule(m, "fc", nn.Linear(submodule(m, "fc", nn.Linear).in_features,
                                             num_classes))
        adapt_input_conv(m, "Conv2d_1a_3x3.conv", in_chans)

    apply_weights(net, weights, "inception_v3", tvm.Inception_V3_Weights.IMAGENET1K_V1, head)
    model = InceptionV3Small(net, min_size)
    set_meta(model, arch="inception_v3", img_size=img_size, head="net.fc", in_chans=in_chans,
             **imagenet_norm(weights, in_chans))
    return guarded(model, "inception_v3", 16)
