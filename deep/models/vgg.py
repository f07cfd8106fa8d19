"""torchvision VGG-16/19 (with batch norm by default) adapted to small inputs.

The convolutional part is torchvision's; trailing max-pools are removed while the feature map
would shrink below 1 px (28 px keeps 4 of the 5 pools). The 7x7x512 -> 4096 -> 4096 head
(~120 M parameters) is replaced by global average pooling and a 512 -> 512 -> classes head,
which suits 28-224 px inputs and keeps the model trainable on a CPU.
"""

from __future__ import annotations

from torch import nn
from torchvision import models as tvm

from ..pretrained import apply_weights
from ._common import check_img_size, check_num_classes, guarded, set_meta

__all__ = ["vgg16", "vgg19"]

_WEIGHTS = {("vgg16", True): tvm.VGG16_BN_Weights.IMAGENET1K_V1,
            ("vgg16", False): tvm.VGG16_Weights.IMAGENET1K_V1,
            ("vgg19", True): tvm.VGG19_BN_Weights.IMAGENET1K_V1,
            ("vgg19", False): tvm.VGG19_Weights.IMAGENET1K_V1}


def _build(name: str, num_classes: int, weights, img_size: int, batch_norm: bool,
           dropout: float) -> nn.Module:
    check_num_classes(name, num_classes)
    img_size = check_img_size(name, img_size, 16)
    model = getattr(tvm, name + ("_bn" if batch_norm else ""))(weights=None)
    # drop trailing max-pools that would take the map below 1 px
    feats = list(model.features)
    pools = [i for i, m in enumerate(feats) if isinstance(m, nn.MaxPool2d)]
    keep = len(pools)
    while keep > 0 and img_size // (2 ** keep) < 1:
        keep -= 1
    for i in pools[keep:]:
        feats[i] = nn.Identity()
    model.features = nn.Sequential(*feats)

    def head(m: nn.Module) -> None:
        m.avgpool = nn.AdaptiveAvgPool2d(1)
        m.classifier = nn.Sequential(
            nn.Flatten(), nn.Linear(512, 512), nn.ReLU(inplace=True), nn.Dropout(dropout),
            nn.Linear(512, num_classes))

    apply_weights(model, weights, name, _WEIGHTS[(name, batch_norm)], head)
    set_meta(model, arch=name, img_size=img_size, head="classifier")
    return guarded(model, name, 16)


def vgg16(num_classes: int = 8, weights=None, img_size: int = 64, batch_norm: bool = True,
          dropout: float = 0.5) -> nn.Module:
    """VGG-16 (torchvision, BN by default) with a GAP head; see the module docstring."""
    return _build("vgg16", num_classes, weights, img_size, batch_norm, dropout)


def vgg19(num_classes: int = 8, weights=None, img_size: int = 64, batch_norm: bool = True,
          dropout: float = 0.5) -> nn.Module:
    """VGG-19 (torchvision, BN by default) with a GAP head."""
    return _build("vgg19", num_classes, weights, img_size, batch_norm, dropout)
