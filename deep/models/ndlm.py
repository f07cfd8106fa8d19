"""NDLM: the shallow "batch norm before each layer" network.

BN -> 5x5 convolution, 10 filters -> ReLU -> BN -> 5x5 max-pooling, stride 5 -> cross-channel
local response normalisation -> BN -> fully connected -> (softmax at inference, applied by
:func:`deep.predict.predict_proba` like for every zoo model; training uses logits with
cross-entropy).
"""

from __future__ import annotations

from torch import nn

from ..pretrained import apply_weights
from ._common import check_img_size, check_num_classes, guarded, set_meta

__all__ = ["NDLM", "ndlm"]


class NDLM(nn.Module):
    """See module docstring; ``filters`` = 10 in the original design."""

    def __init__(self, num_classes: int = 8, img_size: int = 64, filters: int = 10,
                 dropout: float = 0.0) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.BatchNorm2d(3),
            nn.Conv2d(3, filters, 5, 1, 2),
            nn.ReLU(inplace=True),
            nn.BatchNorm2d(filters),
            nn.MaxPool2d(5, 5),
            nn.LocalResponseNorm(size=5, alpha=1e-4, beta=0.75, k=2.0),
        )
        side = img_size // 5
        self.head = nn.Sequential(nn.Flatten(), nn.BatchNorm1d(filters * side * side),
                                  nn.Dropout(dropout), nn.Linear(filters * side * side,
                                                                 num_classes))

    def forward(self, x):
        return self.head(self.features(x))


def ndlm(num_classes: int = 8, weights=None, img_size: int = 64, filters: int = 10,
         dropout: float = 0.0) -> nn.Module:
    """Build :class:`NDLM` for ``img_size`` (>= 5) inputs (the FC size depends on it)."""
    check_num_classes("ndlm", num_classes)
    img_size = check_img_size("ndlm", img_size, 5)
    model = NDLM(num_classes, img_size, filters, dropout)
    apply_weights(model, weights, "ndlm", None, lambda m: None)
    set_meta(model, arch="ndlm", img_size=img_size, head="head")
    return guarded(model, "ndlm", img_size)
