"""A U-Net encoder-decoder used as a classifier.

Encoder: ``depth`` levels of (3x3 conv, BN, ReLU) x 2 with 2x2 max-pooling (widths ``base``,
2 ``base``, 4 ``base``, ...); bottleneck; decoder: 2x2 transposed convolution, concatenation
with the encoder feature map of the same level (skip connection), (conv, BN, ReLU) x 2, back to
full resolution. The head pools the full-resolution decoder output *and* the bottleneck
(global average + max) and classifies with a small MLP. Odd sizes (28 -> 14 -> 7 -> 3) are
handled by resizing the upsampled map to the skip's size.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..pretrained import apply_weights
from ._common import check_img_size, check_in_chans, check_num_classes, guarded, set_meta

__all__ = ["UNetClassifier", "unet_classifier"]


def _double(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin, cout, 3, 1, 1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(True),
        nn.Conv2d(cout, cout, 3, 1, 1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(True))


class UNetClassifier(nn.Module):
    """U-Net with a pooling classification head after the decoder."""

    def __init__(self, num_classes: int = 8, base: int = 16, depth: int = 4,
                 dropout: float = 0.2, in_chans: int = 3) -> None:
        super().__init__()
        widths = [base * 2 ** i for i in range(depth + 1)]
        self.down = nn.ModuleList()
        cin = in_chans
        for c in widths[:-1]:
            self.down.append(_double(cin, c))
            cin = c
        self.bottleneck = _double(widths[-2], widths[-1])
        self.up = nn.ModuleList()
        self.dec = nn.ModuleList()
        for c_hi, c_lo in zip(reversed(widths[1:]), reversed(widths[:-1]), strict=True):
            self.up.append(nn.ConvTranspose2d(c_hi, c_lo, 2, 2))
            self.dec.append(_double(2 * c_lo, c_lo))
        feat = 2 * widths[0] + 2 * widths[-1]
        self.head = nn.Sequential(nn.Dropout(dropout), nn.Linear(feat, 128), nn.ReLU(True),
                                  nn.Linear(128, num_classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        skips = []
        for block in self.down:
            x = block(x)
            skips.append(x)
            x = F.max_pool2d(x, 2)
        x = self.bottleneck(x)
        bott = x
        for up, dec, skip in zip(self.up, self.dec, reversed(skips), strict=True):
            x = up(x)
            if x.shape[-2:] != skip.shape[-2:]:
                x = F.interpolate(x, size=skip.shape[-2:], mode="nearest")
            x = dec(torch.cat([x, skip], 1))
        pooled = torch.cat([F.adaptive_avg_pool2d(x, 1).flatten(1),
                            F.adaptive_max_pool2d(x, 1).flatten(1),
                            F.adaptive_avg_pool2d(bott, 1).flatten(1),
                            F.adaptive_max_pool2d(bott, 1).flatten(1)], 1)
        return self.head(pooled)


def unet_classifier(*, num_classes: int = 8, weights=None, img_size: int = 64,
                    in_chans: int = 3, base: int = 16, depth: int = 4,
                    dropout: float = 0.2) -> nn.Module:
    """Build :class:`UNetClassifier`; ``img_size`` must allow ``depth`` poolings."""
    check_num_classes("unet", num_classes)
    img_size = check_img_size("unet", img_size, 2 ** depth)
    in_chans = check_in_chans("unet", in_chans)
    model = UNetClassifier(num_classes, base, depth, dropout, in_chans)
    apply_weights(model, weights, "unet", None, lambda m: None)
    set_meta(model, arch="unet", img_size=img_size, head="head", in_chans=in_chans)
    return guarded(model, "unet", 2 ** depth)
