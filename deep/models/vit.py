"""A small Vision Transformer (torchvision ``VisionTransformer``) sized for 28-224 px.

Default: hidden dim 192, depth 6, 3 heads, MLP 768 (about 2.7 M parameters), patch size 4
at <= 32 px, 8 up to 96 px (64 tokens at 64 px) and 16 above. ImageNet weights exist for
ViT-B/16 only, which is a different configuration, so ``weights="imagenet"`` is refused
with a message; a state dict file of the same configuration can be loaded.
"""

from __future__ import annotations

from torch import nn
from torchvision.models.vision_transformer import VisionTransformer

from ..pretrained import apply_weights
from ._common import check_img_size, check_in_chans, check_num_classes, guarded, set_meta

__all__ = ["vit_small", "default_patch_size"]


def default_patch_size(img_size: int) -> int:
    """4 at <= 32 px, 8 at <= 96 px, else 16."""
    return 4 if img_size <= 32 else 8 if img_size <= 96 else 16


def vit_small(*, num_classes: int = 8, weights=None, img_size: int = 64, in_chans: int = 3,
              patch_size: int | None = None, hidden_dim: int = 192, depth: int = 6,
              num_heads: int = 3, mlp_dim: int = 768, dropout: float = 0.0,
              attention_dropout: float = 0.0) -> nn.Module:
    """Small ViT for ``img_size`` inputs (must be a multiple of the patch size)."""
    check_num_classes("vit", num_classes)
    img_size = check_img_size("vit", img_size, 16)
    in_chans = check_in_chans("vit", in_chans)
    p = patch_size or default_patch_size(img_size)
    if img_size % p:
        raise ValueError(f"vit: img_size={img_size} is not a multiple of patch_size={p}")
    if hidden_dim % num_heads:
        raise ValueError(f"vit: hidden_dim={hidden_dim} not divisible by num_heads={num_heads}")
    model = VisionTransformer(image_size=img_size, patch_size=p, num_layers=depth,
                              num_heads=num_heads, hidden_dim=hidden_dim, mlp_dim=mlp_dim,
                              dropout=dropout, attention_dropout=attention_dropout,
                              num_classes=num_classes)
    if in_chans != 3:
        model.conv_proj = nn.Conv2d(in_chans, hidden_dim, p, p)
    apply_weights(model, weights, "vit", None, lambda m: None)
    set_meta(model, arch="vit", img_size=img_size, head="heads", in_chans=in_chans)
    # a ViT needs exactly img_size inputs (fixed position embeddings)
    return guarded(model, "vit", img_size)
