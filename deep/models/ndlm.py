"""NDLM of Al-Jader et al.: a shallow network with batch normalisation first.

* ``ndlm`` -- the layer order as published: batch norm of the input, 5x5 convolution with 10
  filters, 5x5 max-pooling with stride 5, cross-channel local response normalisation (window
  5, alpha 1e-4, beta 0.75, k 2), fully connected, softmax (applied at inference by
  :func:`deep.predict.predict_proba`, like for every zoo model; training uses the logits with
  cross-entropy). The published list has no activation layer and gives no convolution
  padding; we read the convolution as unpadded (stride 1) and add no activation
  (``relu=True`` and ``padding=2`` are options). Those two points are the paper's
  ambiguities, not ours to settle.
* ``ndlm_bn`` -- the project's variant: a ReLU after the convolution, "same" padding, and a
  batch norm before *every* layer (after the convolution and before the FC layer too), which
  trains more stably from scratch; optional dropout before the FC layer.
"""

from __future__ import annotations

from torch import nn

from ..pretrained import apply_weights
from ._common import check_img_size, check_in_chans, check_num_classes, guarded, set_meta

__all__ = ["NDLM", "ndlm", "ndlm_bn"]


class NDLM(nn.Module):
    """See module docstring; ``filters`` = 10 in the original design.

    Parameters
    ----------
    num_classes, img_size, in_chans : int
    filters : int
        Convolution filters (10 published).
    relu : bool
        ReLU after the convolution (not in the published layer list).
    padding : int
        Convolution padding (0 = unpadded, 2 = "same").
    extra_bn : bool
        Batch norm after the convolution and before the FC layer (the project's variant).
    dropout : float
        Dropout before the FC layer.
    """

    def __init__(self, num_classes: int = 8, img_size: int = 64, filters: int = 10,
                 dropout: float = 0.0, *, in_chans: int = 3, relu: bool = False,
                 padding: int = 0, extra_bn: bool = False) -> None:
        super().__init__()
        layers: list[nn.Module] = [nn.BatchNorm2d(in_chans),
                                   nn.Conv2d(in_chans, filters, 5, 1, padding)]
        if relu:
            layers.append(nn.ReLU(inplace=True))
        if extra_bn:
            layers.append(nn.BatchNorm2d(filters))
        layers += [nn.MaxPool2d(5, 5), nn.LocalResponseNorm(size=5, alpha=1e-4, beta=0.75, k=2.0)]
        self.features = nn.Sequential(*layers)
        side = (img_size + 2 * padding - 4) // 5
        n = filters * side * side
        head: list[nn.Module] = [nn.Flatten()]
        if extra_bn:
            head.append(nn.BatchNorm1d(n))
        head += [nn.Dropout(dropout), nn.Linear(n, num_classes)]
        self.head = nn.Sequential(*head)

    def forward(self, x):
        return self.head(self.features(x))


def _build(arch: str, num_classes: int, weights, img_size: int, in_chans: int, filters: int,
           dropout: float, relu: bool, padding: int, extra_bn: bool) -> nn.Module:
    check_num_classes(arch, num_classes)
    in_chans = check_in_chans(arch, in_chans)
    # the pooled map needs >= 1 px: conv output (img_size + 2 padding - 4) >= 5
    img_size = check_img_size(arch, img_size, max(5, 9 - 2 * padding))
    model = NDLM(num_classes, img_size, filters, dropout, in_chans=in_chans, relu=relu,
                 padding=padding, extra_bn=extra_bn)
    apply_weights(model, weights, arch, None, lambda m: None)
    set_meta(model, arch=arch, img_size=img_size, head="head", in_chans=in_chans)
    # the FC size depends on img_size, so only that size is accepted
    return guarded(model, arch, img_size)


def ndlm(*, num_classes: int = 8, weights=None, img_size: int = 64, in_chans: int = 3,
         filters: int = 10, relu: bool = False, padding: int = 0,
         dropout: float = 0.0) -> nn.Module:
    """NDLM as published (see the module docstring for the two ambiguous points)."""
    return _build("ndlm", num_classes, weights, img_size, in_chans, filters, dropout, relu,
                  padding, extra_bn=False)


def ndlm_bn(*, num_classes: int = 8, weights=None, img_size: int = 64, in_chans: int = 3,
            filters: int = 10, dropout: float = 0.0) -> nn.Module:
    """The project's NDLM variant: ReLU, same padding, batch norm before every layer."""
    return _build("ndlm_bn", num_classes, weights, img_size, in_chans, filters, dropout,
                  relu=True, padding=2, extra_bn=True)
