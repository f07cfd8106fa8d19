"""The three-convolution CNN of Risodkar et al. (64-256-128 filters, dense 256) and the
project's lighter variant of it.

* ``risodkar_cnn`` -- the published form: three convolutions with 64, 256 and 128 filters, each
  followed by ReLU and 2x2 max-pooling with stride 2, the map flattened into dense 256, ReLU,
  dropout, class layer (softmax at inference). The filters and the dense width are the
  paper's; its kernel sizes and strides could not be consulted while this was written, so
  they are arguments (``kernel_sizes``, ``conv_strides``) whose defaults are Keras' defaults
  for an unspecified ``Conv2D`` stack: 3x3, stride 1, unpadded ("valid"). Check them against
  the paper before quoting a comparison.
* ``smallcnn`` -- the project's variant: "same"-padded 3x3 convolutions, 4x4 adaptive average
  pooling before dense 256 (so any input size works and the dense layer stays small),
  dropout 0.3; ``width`` scales the filters.
"""

from __future__ import annotations

from collections.abc import Sequence

from torch import nn

from ..pretrained import apply_weights
from ._common import check_img_size, check_in_chans, check_num_classes, guarded, set_meta

__all__ = ["RisodkarCNN", "SmallCNN", "risodkar_cnn", "smallcnn"]


class SmallCNN(nn.Module):
    """The project's variant (see module docstring); ``width`` scales the filters."""

    def __init__(self, num_classes: int = 8, width: float = 1.0, dropout: float = 0.3,
                 in_chans: int = 3) -> None:
        super().__init__()
        c1, c2, c3 = (max(4, int(round(c * width))) for c in (64, 256, 128))
        self.features = nn.Sequential(
            nn.Conv2d(in_chans, c1, 3, 1, 1), nn.ReLU(True), nn.MaxPool2d(2),
            nn.Conv2d(c1, c2, 3, 1, 1), nn.ReLU(True), nn.MaxPool2d(2),
            nn.Conv2d(c2, c3, 3, 1, 1), nn.ReLU(True), nn.MaxPool2d(2),
            nn.AdaptiveAvgPool2d(4))
        self.head = nn.Sequential(nn.Flatten(), nn.Linear(c3 * 16, 256), nn.ReLU(True),
                                  nn.Dropout(dropout), nn.Linear(256, num_classes))

    def forward(self, x):
        return self.head(self.features(x))


class RisodkarCNN(nn.Module):
    """The published three-convolution CNN (see module docstring)."""

    def __init__(self, num_classes: int = 8, img_size: int = 64, width: float = 1.0,
                 dropout: float = 0.5, in_chans: int = 3,
                 kernel_sizes: Sequence[int] = (3, 3, 3),
                 conv_strides: Sequence[int] = (1, 1, 1)) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        cin, side = in_chans, img_size
        for f, k, s in zip((64, 256, 128), kernel_sizes, conv_strides, strict=True):
            c = max(4, int(round(f * width)))
            layers += [nn.Conv2d(cin, c, k, s), nn.ReLU(True), nn.MaxPool2d(2)]
            side = ((side - k) // s + 1) // 2
            if side < 1:
                raise ValueError(f"risodkar_cnn: img_size={img_size} is too small for kernels "
                                 f"{tuple(kernel_sizes)} and strides {tuple(conv_strides)}")
            cin = c
        self.features = nn.Sequential(*layers)
        self.head = nn.Sequential(nn.Flatten(), nn.Linear(cin * side * side, 256), nn.ReLU(True),
                                  nn.Dropout(dropout), nn.Linear(256, num_classes))

    def forward(self, x):
        return self.head(self.features(x))


def risodkar_cnn(*, num_classes: int = 8, weights=None, img_size: int = 64, in_chans: int = 3,
                 width: float = 1.0, dropout: float = 0.5,
                 kernel_sizes: Sequence[int] = (3, 3, 3),
                 conv_strides: Sequence[int] = (1, 1, 1)) -> nn.Module:
    """Build :class:`RisodkarCNN`; the dense layer's input depends on ``img_size``, so only
    that size is accepted."""
    check_num_classes("risodkar_cnn", num_classes)
    img_size = check_img_size("risodkar_cnn", img_size, 22)  # 22 -> 10 -> 4 -> 1 px
    in_chans = check_in_chans("risodkar_cnn", in_chans)
    if len(kernel_sizes) != 3 or len(conv_strides) != 3:
        raise ValueError("risodkar_cnn: kernel_sizes and conv_strides need 3 values each")
    model = RisodkarCNN(num_classes, img_size, width, dropout, in_chans, tuple(kernel_sizes),
                        tuple(conv_strides))
    apply_weights(model, weights, "risodkar_cnn", None, lambda m: None)
    set_meta(model, arch="risodkar_cnn", img_size=img_size, head="head", in_chans=in_chans)
    return guarded(model, "risodkar_cnn", img_size)


def smallcnn(*, num_classes: int = 8, weights=None, img_size: int = 64, in_chans: int = 3,
             width: float = 1.0, dropout: float = 0.3) -> nn.Module:
    """Build :class:`SmallCNN` (any ``img_size`` >= 8)."""
    check_num_classes("smallcnn", num_classes)
    img_size = check_img_size("smallcnn", img_size, 8)
    in_chans = check_in_chans("smallcnn", in_chans)
    model = SmallCNN(num_classes, width, dropout, in_chans)
    apply_weights(model, weights, "smallcnn", None, lambda m: None)
    set_meta(model, arch="smallcnn", img_size=img_size, head="head", in_chans=in_chans)
    return guarded(model, "smallcnn", 8)
