"""Xception (Chollet 2017): entry, middle and exit flows of depthwise-separable convolutions
with residual connections, written here (no ImageNet weights shipped).

``width`` scales every channel count (1.0 = the paper's 32-64-128-256-728-1024-1536-2048) and
``middle_blocks`` the middle flow depth (8 in the paper). Below 112 px the stem convolution
uses stride 1 so a 64 px image reaches the middle flow at 8x8 (paper, 299 px: 19x19).
"""

from __future__ import annotations

from torch import nn

from ..pretrained import apply_weights
from ._common import check_img_size, check_in_chans, check_num_classes, guarded, set_meta

__all__ = ["Xception", "SeparableConv2d", "xception"]


class SeparableConv2d(nn.Module):
    """Depthwise 3x3 convolution followed by a pointwise 1x1 convolution (no bias)."""

    def __init__(self, cin: int, cout: int, k: int = 3, stride: int = 1) -> None:
        super().__init__()
        self.depthwise = nn.Conv2d(cin, cin, k, stride, k // 2, groups=cin, bias=False)
        self.pointwise = nn.Conv2d(cin, cout, 1, bias=False)

    def forward(self, x):
        return self.pointwise(self.depthwise(x))


class _Block(nn.Module):
    """``reps`` x (ReLU, SepConv, BN), optional 3x3/2 max-pool, 1x1 projection shortcut."""

    def __init__(self, cin: int, cout: int, reps: int, stride: int, start_relu: bool = True,
                 grow_first: bool = True) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        c = cin
        for i in range(reps):
            out = cout if (grow_first and i == 0) or (not grow_first and i == reps - 1) else c
            if i > 0 or start_relu:
                layers.append(nn.ReLU(inplace=False))
            layers += [SeparableConv2d(c, out), nn.BatchNorm2d(out)]
            c = out
        if stride != 1:
            layers.append(nn.MaxPool2d(3, stride, 1))
        self.body = nn.Sequential(*layers)
        self.skip = None
        if stride != 1 or cin != cout:
            self.skip = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False),
                                      nn.BatchNorm2d(cout))

    def forward(self, x):
        return self.body(x) + (x if self.skip is None else self.skip(x))


class Xception(nn.Module):
    """Xception for ``img_size`` inputs (see module docstring)."""

    def __init__(self, num_classes: int = 8, img_size: int = 64, width: float = 1.0,
                 middle_blocks: int = 8, dropout: float = 0.2, in_chans: int = 3) -> None:
        super().__init__()

        def w(c: int) -> int:
            return max(8, int(round(c * width)))

        s = 2 if img_size >= 112 else 1
        self.stem = nn.Sequential(
            nn.Conv2d(in_chans, w(32), 3, s, 1, bias=False), nn.BatchNorm2d(w(32)), nn.ReLU(True),
            nn.Conv2d(w(32), w(64), 3, 1, 1, bias=False), nn.BatchNorm2d(w(64)), nn.ReLU(True))
        self.entry = nn.Sequential(
            _Block(w(64), w(128), 2, 2, start_relu=False),
            _Block(w(128), w(256), 2, 2),
            _Block(w(256), w(728), 2, 2 if img_size > 32 else 1))
        self.middle = nn.Sequential(*[_Block(w(728), w(728), 3, 1)
                                      for _ in range(middle_blocks)])
        self.exit = nn.Sequential(
            _Block(w(728), w(1024), 2, 2, grow_first=False),
            SeparableConv2d(w(1024), w(1536)), nn.BatchNorm2d(w(1536)), nn.ReLU(True),
            SeparableConv2d(w(1536), w(2048)), nn.BatchNorm2d(w(2048)), nn.ReLU(True))
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.head = nn.Sequential(nn.Flatten(), nn.Dropout(dropout),
                                  nn.Linear(w(2048), num_classes))
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    def forward(self, x):
        return self.head(self.pool(self.exit(self.middle(self.entry(self.stem(x))))))


def xception(*, num_classes: int = 8, weights=None, img_size: int = 64, in_chans: int = 3,
             width: float = 1.0, middle_blocks: int = 8, dropout: float = 0.2) -> nn.Module:
    """Build :class:`Xception` (no ImageNet weights; a state dict file may be given)."""
    check_num_classes("xception", num_classes)
    img_size = check_img_size("xception", img_size, 16)
    in_chans = check_in_chans("xception", in_chans)
    model = Xception(num_classes, img_size, width, middle_blocks, dropout, in_chans)
    apply_weights(model, weights, "xception", None, lambda m: None)
    set_meta(model, arch="xception", img_size=img_size, head="head", in_chans=in_chans)
    return guarded(model, "xception", 16)
