"""torchvision VGG-16/19: the published network and the project's GAP-head variant.

* ``vgg16`` / ``vgg19`` -- as published (Simonyan & Zisserman 2015, configurations D and E):
  3x3 convolutions without batch norm (``batch_norm=True`` for torchvision's BN version),
  five 2x2/2 max-pools, then FC-4096, ReLU, dropout 0.5, FC-4096, ReLU, dropout 0.5, FC-classes
  (softmax at inference). The first FC layer takes the flattened map the image really gives
  (7x7x512 at 224 px, exactly the paper and torchvision; 2x2x512 at 64 px) rather than
  torchvision's adaptive pooling to 7x7, which at small sizes would copy each pixel into a
  7x7 grid. With ``weights="imagenet"`` every layer is torchvision's ImageNet one except the
  class layer (and FC-1 below 224 px, whose input size differs).
* ``vgg16_gap`` / ``vgg19_gap`` -- the project's variant: batch norm by default, global average
  pooling and a 512-512-classes head (about 15 M instead of 120 M head parameters at 224 px),
  easier to train on a CPU.

In both, trailing max-pools are dropped while the feature map would shrink below 1 px (28 px
keeps 4 of the 5 pools).
"""

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

__all__ = ["vgg16", "vgg16_gap", "vgg19", "vgg19_gap"]

_WEIGHTS = {("vgg16", True): tvm.VGG16_BN_Weights.IMAGENET1K_V1,
            ("vgg16", False): tvm.VGG16_Weights.IMAGENET1K_V1,
            ("vgg19", True): tvm.VGG19_BN_Weights.IMAGENET1K_V1,
            ("vgg19", False): tvm.VGG19_Weights.IMAGENET1K_V1}


def _build(name: str, num_classes: int, weights, img_size: int, in_chans: int,
           batch_norm: bool, dropout: float, head_kind: str) -> nn.Module:
    arch = name if head_kind == "published" else f"{name}_gap"
    check_num_classes(arch, num_classes)
    img_size = check_img_size(arch, img_size, 16)
    in_chans = check_in_chans(arch, in_chans)
    model = getattr(tvm, name + ("_bn" if batch_norm else ""))(weights=None, dropout=dropout)
    feats = list(model.features)
    pools = [i for i, m in enumerate(feats) if isinstance(m, nn.MaxPool2d)]
    keep = len(pools)
    while keep > 0 and img_size // (2 ** keep) < 1:
        keep -= 1
    for i in pools[keep:]:
        feats[i] = nn.Identity()
    model.features = nn.Sequential(*feats)
    side = img_size // (2 ** keep)

    def head(m: nn.Module) -> None:
        if head_kind == "published":
            m.avgpool = nn.Identity()
            if submodule(m, "classifier.0", nn.Linear).in_features != 512 * side * side:
                replace_submodule(m, "classifier.0", nn.Linear(512 * side * side, 4096))
            replace_submodule(m, "classifier.6", nn.Linear(4096, num_classes))
        else:
            m.avgpool = nn.AdaptiveAvgPool2d(1)
            m.classifier = nn.Sequential(
                nn.Flatten(), nn.Linear(512, 512), nn.ReLU(inplace=True), nn.Dropout(dropout),
                nn.Linear(512, num_classes))
        adapt_input_conv(m, "features.0", in_chans)

    apply_weights(model, weights, arch, _WEIGHTS[(name, batch_norm)], head)
    set_meta(model, arch=arch, img_size=img_size, head="classifier", in_chans=in_chans,
             **imagenet_norm(weights, in_chans))
    return guarded(model, arch, 16)


def vgg16(*, num_classes: int = 8, weights=None, img_size: int = 64, in_chans: int = 3,
          batch_norm: bool = False, dropout: float = 0.5) -> nn.Module:
    """VGG-16 as published (no BN, 4096-4096 head); see the module docstring."""
    return _build("vgg16", num_classes, weights, img_size, in_chans, batch_norm, dropout,
                  "published")


def vgg19(*, num_classes: int = 8, weights=None, img_size: int = 64, in_chans: int = 3,
          batch_norm: bool = False, dropout: float = 0.5) -> nn.Module:
    """VGG-19 as published (no BN, 4096-4096 head); see the module docstring."""
    return _build("vgg19", num_classes, weights, img_size, in_chans, batch_norm, dropout,
                  "published")


def vgg16_gap(*, num_classes: int = 8, weights=None, img_size: int = 64, in_chans: int = 3,
              batch_norm: bool = True, dropout: float = 0.5) -> nn.Module:
    """The project's VGG-16 variant: BN, global average pooling, 512-512 head."""
    return _build("vgg16", num_classes, weights, img_size, in_chans, batch_norm, dropout,
                  "gap")


def vgg19_gap(*, num_classes: int = 8, weights=None, img_size: int = 64, in_chans: int = 3,
              batch_norm: bool = True, dropout: float = 0.5) -> nn.Module:
    """The project's VGG-19 variant: BN, global average pooling, 512-512 head."""
    return _build("vgg19", num_classes, weights, img_size, in_chans, batch_norm, dropout,
                  "gap")
