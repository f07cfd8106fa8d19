"""The lightest baseline: three 3x3 convolutions (64-256-128 filters, each followed by ReLU and
2x2 max-pooling), 4x4 adaptive average pooling, dense 256, dropout, class layer."""

from __future__ import annotations

from torch import nn

from ..pretrained import apply_weights
from ._common import check_img_size, check_num_classes, guarded, set_meta

__all__ = ["SmallCNN", "smallcnn"]


class SmallCNN(nn.Module):
    """See module docstring; ``width`` scales the filters."""

    def __init__(self, num_classes: int = 8, width: float = 1.0, dropout: float = 0.3) -> None:
        super().__init__()
        c1, c2, c3 = (max(4, int(round(c * width))) for c in (64, 256, 128))
        self.features = nn.Sequential(
            nn.Conv2d(3, c1, 3, 1, 1), nn.ReLU(True), nn.MaxPool2d(2),
            nn.Conv2d(c1, c2, 3, 1, 1), nn.ReLU(True), nn.MaxPool2d(2),
            nn.Conv2d(c2, c3, 3, 1, 1), nn.ReLU(True), nn.MaxPool2d(2),
            nn.AdaptiveAvgPool2d(4))
        self.head = nn.Sequential(nn.Flatten(), nn.Linear(c3 * 16, 256), nn.ReLU(True),
                                  nn.Dropout(dropout), nn.Linear(256, num_classes))

    def forward(self, x):
        return self.head(self.features(x))


def smallcnn(num_classes: int = 8, weights=None, img_size: int = 64, width: float = 1.0,
             dropout: float = 0.3) -> nn.Module:
    """Build :class:`SmallCNN` (any ``img_size`` >= 8)."""
    check_num_classes("smallcnn", num_classes)
    img_size = check_img_size("smallcnn", img_size, 8)
    model = SmallCNN(num_classes, width, dropout)
    apply_weights(model, weights, "smallcnn", None, lambda m: None)
    set_meta(model, arch="smallcnn", img_size=img_size, head="head")
    return guarded(model, "smallcnn", 8)
