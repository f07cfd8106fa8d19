"""The seven-block CNN of Asghar et al. (2024): seven 3x3 convolution blocks with
32-64-64-64-128-256-256 filters, dense 128, class layer (softmax at inference).

* ``sevenblock`` -- the published form as issue 13 reads the paper: every one of the seven
  blocks is convolution, batch norm, ReLU, 2x2 max-pooling with stride ``pool_stride`` (2) and
  dropout 0.25; then the map is flattened into dense 128, ReLU, dropout 0.25, class layer.
  The pooling uses "same" (ceil) rounding, as Keras' ``padding="same"`` does, so seven
  stride-2 pools fit any input (64 px: 32-16-8-4-2-1-1). The paper text could not be consulted
  while this was written: the pooling stride, the dropout rate after the dense layer and the
  presence of batch norm are our reading (all three are arguments); check them against the
  paper before quoting a comparison.
* ``sevenblock_gap`` -- the project's variant: 2x2/2 max-pooling only while the map is still
  >= 2 px (six pools at 64 px, four at 28 px), no dropout inside the convolutional part,
  global average pooling, dropout 0.25 before and after dense 128.

``batch_norm=True`` (default) adds BN after each convolution; ``width`` scales the filters.
"""

from __future__ import annotations

from torch import nn

from ..pretrained import apply_weights
from ._common import check_img_size, check_in_chans, check_num_classes, guarded, set_meta

__all__ = ["SevenBlockCNN", "sevenblock", "sevenblock_gap"]

FILTERS = (32, 64, 64, 64, 128, 256, 256)


def _conv(cin: int, c: int, batch_norm: bool) -> list[nn.Module]:
    layers: list[nn.Module] = [nn.Conv2d(cin, c, 3, 1, 1, bias=not batch_norm)]
    if batch_norm:
        layers.append(nn.BatchNorm2d(c))
    layers.append(nn.ReLU(inplace=True))
    return layers


class SevenBlockCNN(nn.Module):
    """See module docstring (``published=False`` builds the project's variant)."""

    def __init__(self, num_classes: int = 8, img_size: int = 64, width: float = 1.0,
                 batch_norm: bool = True, dropout: float = 0.25, *, in_chans: int = 3,
                 published: bool = True, pool_stride: int = 2) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        cin, side = in_chans, img_size
        for f in FILTERS:
            c = max(4, int(round(f * width)))
            layers += _conv(cin, c, batch_norm)
            if published:
                layers += [nn.MaxPool2d(2, pool_stride, ceil_mode=True), nn.Dropout(dropout)]
                side = max(1, -(-(side - 2) // pool_stride) + 1)
            elif side >= 2:
                layers.append(nn.MaxPool2d(2))
                side //= 2
            cin = c
        self.features = nn.Sequential(*layers)
        if published:
            self.pool: nn.Module = nn.Identity()
            self.head = nn.Sequential(nn.Flatten(), nn.Linear(cin * side * side, 128),
                                      nn.ReLU(inplace=True), nn.Dropout(dropout),
                                      nn.Linear(128, num_classes))
        else:
            self.pool = nn.AdaptiveAvgPool2d(1)
            self.head = nn.Sequential(nn.Flatten(), nn.Dropout(dropout), nn.Linear(cin, 128),
                                      nn.ReLU(inplace=True), nn.Dropout(dropout),
                                      nn.Linear(128, num_classes))

    def forward(self, x):
        return self.head(self.pool(self.features(x)))


def sevenblock(*, num_classes: int = 8, weights=None, img_size: int = 64, in_chans: int = 3,
               width: float = 1.0, batch_norm: bool = True, dropout: float = 0.25,
               pool_stride: int = 2) -> nn.Module:
    """The seven-block CNN as published (see the module docstring); the dense layer's input
    depends on ``img_size``, so only that size is accepted."""
    check_num_classes("sevenblock", num_classes)
    img_size = check_img_size("sevenblock", img_size, 8)
    in_chans = check_in_chans("sevenblock", in_chans)
    if pool_stride not in (1, 2):
        raise ValueError(f"sevenblock: pool_stride must be 1 or 2, got {pool_stride}")
    model = SevenBlockCNN(num_classes, img_size, width, batch_norm, dropout, in_chans=in_chans,
                          published=True, pool_stride=pool_stride)
    apply_weights(model, weights, "sevenblock", None, lambda m: None)
    set_meta(model, arch="sevenblock", img_size=img_size, head="head", in_chans=in_chans)
    return guarded(model, "sevenblock", img_size)


def sevenblock_gap(*, num_classes: int = 8, weights=None, img_size: int = 64,
                   in_chans: int = 3, width: float = 1.0, batch_norm: bool = True,
                   dropout: float = 0.25) -> nn.Module:
    """The project's seven-block variant (global average pooling; any size >= 8 px)."""
    check_num_classes("sevenblock_gap", num_classes)
    img_size = check_img_size("sevenblock_gap", img_size, 8)
    in_chans = check_in_chans("sevenblock_gap", in_chans)
    model = SevenBlockCNN(num_classes, img_size, width, batch_norm, dropout, in_chans=in_chans,
                          published=False)
    apply_weights(model, weights, "sevenblock_gap", None, lambda m: None)
    set_meta(model, arch="sevenblock_gap", img_size=img_size, head="head", in_chans=in_chans)
    return guarded(model, "sevenblock_gap", 8)
