"""The seven-block CNN: seven 3x3 convolution blocks with 32-64-64-64-128-256-256 filters,
2x2 max-pooling after each block while the map is still >= 2 px (six pools at 64 px, four at
28 px), dropout 0.25, dense 128, then the class layer (softmax at inference).
``batch_norm=True`` (default) adds BN after each convolution; ``width`` scales the filters.
"""

from __future__ import annotations

from torch import nn

from ..pretrained import apply_weights
from ._common import check_img_size, check_num_classes, guarded, set_meta

__all__ = ["SevenBlockCNN", "sevenblock"]

FILTERS = (32, 64, 64, 64, 128, 256, 256)


class SevenBlockCNN(nn.Module):
    """See module docstring."""

    def __init__(self, num_classes: int = 8, img_size: int = 64, width: float = 1.0,
                 batch_norm: bool = True, dropout: float = 0.25) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        cin, side = 3, img_size
        for f in FILTERS:
            c = max(4, int(round(f * width)))
            layers.append(nn.Conv2d(cin, c, 3, 1, 1, bias=not batch_norm))
            if batch_norm:
                layers.append(nn.BatchNorm2d(c))
            layers.append(nn.ReLU(inplace=True))
            if side >= 2:
                layers.append(nn.MaxPool2d(2))
                side //= 2
            cin = c
        self.features = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.head = nn.Sequential(nn.Flatten(), nn.Dropout(dropout), nn.Linear(cin, 128),
                                  nn.ReLU(inplace=True), nn.Dropout(dropout),
                                  nn.Linear(128, num_classes))

    def forward(self, x):
        return self.head(self.pool(self.features(x)))


def sevenblock(num_classes: int = 8, weights=None, img_size: int = 64, width: float = 1.0,
               batch_norm: bool = True, dropout: float = 0.25) -> nn.Module:
    """Build :class:`SevenBlockCNN`."""
    check_num_classes("sevenblock", num_classes)
    img_size = check_img_size("sevenblock", img_size, 8)
    model = SevenBlockCNN(num_classes, img_size, width, batch_norm, dropout)
    apply_weights(model, weights, "sevenblock", None, lambda m: None)
    set_meta(model, arch="sevenblock", img_size=img_size, head="head")
    return guarded(model, "sevenblock", 8)
