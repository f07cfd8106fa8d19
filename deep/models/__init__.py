"""The model zoo: ``get_model(name, num_classes=..., weights=None, img_size=64)``.

Every builder follows torchvision's convention ``name(num_classes=..., weights=None, ...)`` and
takes ``img_size`` (28, 64 -- the default --, 128, 224 are tested) to adapt strides/pooling
to small inputs. Models return logits; softmax is applied at inference
(:func:`deep.predict.predict_proba`). Each model carries ``arch``, ``img_size`` and
``head_name`` attributes (the head is what phase 1 of fine-tuning trains).

=================  =============================================================  =========
name               what                                                           ImageNet
=================  =============================================================  =========
vgg16, vgg19       torchvision VGG (batch norm), GAP + 512-512 head               yes
resnet18/50/...    torchvision ResNet-18/50/101/152, stride-1 stem below 112 px   yes
densenet121/201    torchvision DenseNet, stride-1 stem below 112 px               yes
mobilenet_v2       torchvision MobileNetV2, stride-1 stem below 112 px            yes
inception_v3       torchvision Inception-v3, upsampled inside to >= 75 px         yes
vit                small ViT (patch 8 @64 px, dim 192, depth 6, 3 heads)          no
xception           Xception (depthwise-separable convs), stride-1 stem < 112 px   no
unet               U-Net encoder-decoder classifier (pool head after decoder)     no
ndlm               BN, 5x5 conv x10, 5x5/5 max-pool, LRN, FC                     no
sevenblock         seven 3x3 conv blocks 32-64-64-64-128-256-256, dense 128       no
smallcnn           three convs 64-256-128, dense 256                              no
wbcnet             light residual CNN (the project's fast CPU model)              no
=================  =============================================================  =========

``ensemble`` (:func:`deep.models.ensemble.ensemble`) combines trained members by soft voting
or stacking.
"""

from __future__ import annotations

import importlib

from torch import nn

__all__ = ["get_model", "list_models", "MODELS"]

# name -> (module, builder function)
MODELS: dict[str, tuple[str, str]] = {
    "vgg16": ("vgg", "vgg16"),
    "vgg19": ("vgg", "vgg19"),
    "resnet18": ("resnet", "resnet18"),
    "resnet50": ("resnet", "resnet50"),
    "resnet101": ("resnet", "resnet101"),
    "resnet152": ("resnet", "resnet152"),
    "densenet121": ("densenet", "densenet121"),
    "densenet201": ("densenet", "densenet201"),
    "mobilenet_v2": ("mobilenet", "mobilenet_v2"),
    "inception_v3": ("inception", "inception_v3"),
    "vit": ("vit", "vit_small"),
    "xception": ("xception", "xception"),
    "unet": ("unet", "unet_classifier"),
    "ndlm": ("ndlm", "ndlm"),
    "sevenblock": ("sevenblock", "sevenblock"),
    "smallcnn": ("smallcnn", "smallcnn"),
    "wbcnet": ("wbcnet", "wbcnet"),
    "ensemble": ("ensemble", "ensemble"),
}

_ALIASES = {"vgg-16": "vgg16", "vgg-19": "vgg19", "resnet-18": "resnet18",
            "resnet-50": "resnet50", "resnet-101": "resnet101", "resnet-152": "resnet152",
            "densenet-121": "densenet121", "densenet-201": "densenet201",
            "mobilenetv2": "mobilenet_v2", "inceptionv3": "inception_v3",
            "inception": "inception_v3", "vit_small": "vit", "u-net": "unet",
            "seven_block": "sevenblock", "small_cnn": "smallcnn"}


def list_models(include_ensemble: bool = False) -> list[str]:
    """Names accepted by :func:`get_model` (the ensemble needs members, so it is opt-in)."""
    return [n for n in MODELS if include_ensemble or n != "ensemble"]


def get_builder(name: str):
    """The builder function registered under ``name`` (case-insensitive, a few aliases)."""
    key = _ALIASES.get(name.lower(), name.lower())
    if key not in MODELS:
        raise ValueError(f"unknown model {name!r}; available: {', '.join(list_models(True))}")
    mod, fn = MODELS[key]
    return getattr(importlib.import_module(f"{__name__}.{mod}"), fn)


def get_model(name: str, num_classes: int = 8, weights: str | None = None,
              img_size: int = 64, **kwargs) -> nn.Module:
    """Build a zoo model by name.

    Parameters
    ----------
    name : str
        One of :func:`list_models` (or ``"ensemble"`` with ``members=[...]``).
    num_classes : int
    weights : None, "imagenet" or path
        See :mod:`deep.pretrained`.
    img_size : int
        Input side in pixels (square inputs).
    **kwargs
        Builder-specific options (e.g. ``width`` for the small CNNs).

    Returns
    -------
    torch.nn.Module
        Maps a float batch (N, 3, img_size, img_size) to logits (N, num_classes).
    """
    return get_builder(name)(num_classes=num_classes, weights=weights, img_size=img_size,
                             **kwargs)
