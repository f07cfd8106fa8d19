"""WBCNet: a light residual CNN designed for 64 px single-cell crops on a CPU.

A 3x3 stem, then four stages of basic residual blocks (widths ``32-64-128-256`` scaled by
``width``), each stage after the first halving the resolution, global average pooling,
dropout and a linear head. About 2.8 M parameters and ~0.1 GMAC per 64 px image at width 1;
it trains to the PBC 8-class target in well under 30 CPU minutes and infers > 500 images/s
on 2 cores (see ``deep/README.md``). ``norm`` chooses BatchNorm (default), GroupNorm or
LayerNorm (:func:`deep.models._common.norm_layer`).
"""

from __future__ import annotations

from torch import nn

from ._common import (
    check_img_size,
    check_in_chans,
    check_norm,
    check_num_classes,
    guarded,
    norm_layer,
    set_meta,
)

__all__ = ["WBCNet", "wbcnet"]


class _Block(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int, norm: str = "batch") -> None:
        super().__init__()
        # the names stay bn1/bn2 whatever the norm, so BatchNorm checkpoints load unchanged
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = norm_layer(norm, cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = norm_layer(norm, cout)
        self.relu = nn.ReLU(inplace=True)
        self.short = None
        if stride != 1 or cin != cout:
            self.short = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False),
                                       norm_layer(norm, cout))

    def forward(self, x):
        idt = x if self.short is None else self.short(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + idt)


class WBCNet(nn.Module):
    """Light residual CNN.

    Parameters
    ----------
    num_classes : int
    img_size : int
        Input side; the stem stride is 2 for inputs >= 48 px and 1 below (28 px MedMNIST),
        and one more stride-2 stage is added at >= 160 px.
    width : float
        Channel multiplier.
    blocks : tuple of int
        Residual blocks per stage.
    dropout : float
    in_chans : int
        Input channels (3 for RGB).
    norm : {"batch", "group", "layer"}
        Normalisation layers (:func:`deep.models._common.norm_layer`).
    """

    def __init__(self, num_classes: int = 8, img_size: int = 64, width: float = 1.0,
                 blocks: tuple[int, ...] = (1, 1, 2, 1), dropout: float = 0.2,
                 in_chans: int = 3, norm: str = "batch") -> None:
        super().__init__()
        chans = [max(8, int(round(c * width))) for c in (32, 64, 128, 256)]
        stem_stride = 2 if img_size >= 48 else 1
        stem = [nn.Conv2d(in_chans, chans[0] // 2 + 8, 3, 1, 1, bias=False),
                norm_layer(norm, chans[0] // 2 + 8), nn.ReLU(inplace=True),
                nn.Conv2d(chans[0] // 2 + 8, chans[0], 3, stem_stride, 1, bias=False),
                norm_layer(norm, chans[0]), nn.ReLU(inplace=True)]
        if img_size >= 160:
            stem.append(nn.MaxPool2d(3, 2, 1))
        self.stem = nn.Sequential(*stem)
        layers = []
        cin = chans[0]
        for i, (c, n) in enumerate(zip(chans, blocks, strict=True)):
            for j in range(n):
                layers.append(_Block(cin, c, 2 if (j == 0 and i > 0) else 1, norm))
                cin = c
        self.features = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.head = nn.Sequential(nn.Flatten(), nn.Dropout(dropout), nn.Linear(cin, num_classes))
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
        for m in self.modules():
            # each block starts as the identity (the last norm's scale at 0); GroupNorm and
            # BatchNorm both have an affine weight
            if isinstance(m, _Block) and isinstance(m.bn2.weight, nn.Parameter):
                nn.init.zeros_(m.bn2.weight)

    def forward(self, x):
        return self.head(self.pool(self.features(self.stem(x))))


def wbcnet(*, num_classes: int = 8, weights: str | None = None, img_size: int = 64,
           in_chans: int = 3, width: float = 1.0, blocks: tuple[int, ...] = (1, 1, 2, 1),
           dropout: float = 0.2, norm: str = "batch") -> WBCNet:
    """Build :class:`WBCNet` (no pretrained weights exist: ``weights`` must be None or a file).

    ``norm``: ``"batch"`` (default), ``"group"`` or ``"layer"``
    (:func:`deep.models._common.norm_layer`).
    """
    from ..pretrained import load_custom_weights

    check_num_classes("wbcnet", num_classes)
    img_size = check_img_size("wbcnet", img_size, 16)
    in_chans = check_in_chans("wbcnet", in_chans)
    norm = check_norm("wbcnet", norm)  # no ImageNet weights: load_custom_weights says so
    model = WBCNet(num_classes, img_size, width, tuple(blocks), dropout, in_chans, norm)
    set_meta(model, arch="wbcnet", img_size=img_size, head="head", in_chans=in_chans)
    load_custom_weights(model, weights, "wbcnet")
    return guarded(model, "wbcnet", 16)
