"""The model zoo: ``get_model(name, *, num_classes=..., weights=None, img_size=64, in_chans=3)``.

Every builder follows torchvision's convention ``name(*, num_classes=..., weights=None, ...)``
(keyword-only), takes ``img_size`` (28, 64 -- the default --, 128, 224 are tested) to adapt
strides/pooling to small inputs, and ``in_chans`` (3 = RGB) like timm. Models return logits;
softmax is applied at inference (:func:`deep.predict.predict_proba`). Each model carries
``arch``, ``img_size``, ``in_chans`` and ``head_name`` attributes (the head is what phase 1 of
fine-tuning trains) and ``model.transforms()``, its preprocessing (:mod:`deep.transforms`).

Where a network comes from a paper, the paper's form has the paper's name and the project's
own variant a name of its own (``vgg16`` / ``vgg16_gap``, ``ndlm`` / ``ndlm_bn``,
``sevenblock`` / ``sevenblock_gap``, ``risodkar_cnn`` / ``smallcnn``). ``list_models(detail=True)``
says which is which:

* ``published`` -- the architecture as its paper describes it (small-input rules aside);
* ``adapted`` -- the published architecture with documented changes for small inputs (a
  stride-1 stem below 112 px, ...), unchanged at 224 px;
* ``variant`` -- the project's change of a published network (``variant_of`` names it);
* ``project`` -- designed here.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal, overload

from torch import nn

__all__ = ["MODELS", "ModelInfo", "get_builder", "get_model", "list_models", "model_info"]


@dataclass(frozen=True)
class ModelInfo:
    """What one zoo entry is and where it comes from."""

    name: str
    module: str
    builder: str
    form: str  # "published" | "adapted" | "variant" | "project"
    reference: str
    description: str
    variant_of: str | None = None
    imagenet: bool = False


_ENTRIES = [
    ModelInfo("vgg16", "vgg", "vgg16", "published",
              "Simonyan & Zisserman 2015 (config D); Asghar et al., MedMNIST+",
              "3x3 convs without BN, five 2x2/2 pools, FC 4096-4096 head on the flattened map",
              imagenet=True),
    ModelInfo("vgg19", "vgg", "vgg19", "published",
              "Simonyan & Zisserman 2015 (config E); Hussien & Kareem 2025, Asghar et al.",
              "3x3 convs without BN, five 2x2/2 pools, FC 4096-4096 head on the flattened map",
              imagenet=True),
    ModelInfo("vgg16_gap", "vgg", "vgg16_gap", "variant", "project",
              "VGG-16 with BN, global average pooling and a 512-512 head", "vgg16", True),
    ModelInfo("vgg19_gap", "vgg", "vgg19_gap", "variant", "project",
              "VGG-19 with BN, global average pooling and a 512-512 head", "vgg19", True),
    *[ModelInfo(n, "resnet", n, "adapted", "He et al. 2016 (torchvision)",
                "stride-1 7x7 stem below 112 px, no stem max-pool at <= 32 px; norm='group' or "
                "'layer' swaps BatchNorm for GroupNorm/LayerNorm (no ImageNet weights then)",
                imagenet=True)
      for n in ("resnet18", "resnet50", "resnet101", "resnet152")],
    *[ModelInfo(n, "densenet", n, "adapted", "Huang et al. 2017 (torchvision)",
                "stride-1 stem below 112 px, no stem max-pool at <= 32 px", imagenet=True)
      for n in ("densenet121", "densenet201")],
    ModelInfo("mobilenet_v2", "mobilenet", "mobilenet_v2", "adapted",
              "Sandler et al. 2018 (torchvision)", "stride-1 first convolution below 112 px",
              imagenet=True),
    ModelInfo("inception_v3", "inception", "inception_v3", "adapted",
              "Szegedy et al. 2016 (torchvision)",
              "inputs below 75 px upsampled inside the model; no auxiliary head", imagenet=True),
    ModelInfo("vit", "vit", "vit_small", "variant", "Dosovitskiy et al. 2021",
              "small ViT (dim 192, depth 6, 3 heads, patch 4/8/16 by size), not the papers' "
              "ViT-B/16 (not in the zoo)"),
    ModelInfo("xception", "xception", "xception", "adapted", "Chollet 2017",
              "entry/middle/exit flows as published; stride-1 stem below 112 px"),
    ModelInfo("unet", "unet", "unet_classifier", "project",
              "Ronneberger et al. 2015; used as a classifier by Hussien & Kareem 2025",
              "U-Net encoder-decoder; the classification head (avg+max pooling of decoder "
              "output and bottleneck, MLP) is ours"),
    ModelInfo("ndlm", "ndlm", "ndlm", "published", "Al-Jader et al.",
              "BN, 5x5 conv x10, 5x5/5 max-pool, LRN, FC (no activation, unpadded conv: the "
              "paper's list is silent on both)"),
    ModelInfo("ndlm_bn", "ndlm", "ndlm_bn", "variant", "project",
              "NDLM with ReLU, same padding and BN before every layer", "ndlm"),
    ModelInfo("sevenblock", "sevenblock", "sevenblock", "published", "Asghar et al. 2024",
              "seven 3x3 conv blocks 32-64-64-64-128-256-256, each BN, ReLU, 2x2/2 pool, "
              "dropout 0.25; flatten, dense 128 (pool stride and BN: our reading)"),
    ModelInfo("sevenblock_gap", "sevenblock", "sevenblock_gap", "variant", "project",
              "seven-block CNN pooling only while >= 2 px, GAP, dropout only in the head",
              "sevenblock"),
    ModelInfo("risodkar_cnn", "smallcnn", "risodkar_cnn", "published", "Risodkar et al.",
              "three convs 64-256-128, each ReLU and 2x2/2 pool, flatten, dense 256 (kernel "
              "3x3, stride 1, unpadded: our reading)"),
    ModelInfo("smallcnn", "smallcnn", "smallcnn", "variant", "project",
              "three same-padded 3x3 convs 64-256-128, 4x4 adaptive pool, dense 256",
              "risodkar_cnn"),
    ModelInfo("wbcnet", "wbcnet", "wbcnet", "project", "project",
              "light residual CNN 32-64-128-256 for 64 px crops on a CPU; norm='batch' "
              "(default), 'group' or 'layer'"),
    ModelInfo("ensemble", "ensemble", "ensemble", "published", "Hussien & Kareem 2025",
              "soft voting (mean of softmax outputs) or a linear stacker over trained members"),
]

#: name -> (module, builder function)
MODELS: dict[str, tuple[str, str]] = {e.name: (e.module, e.builder) for e in _ENTRIES}
_INFO: dict[str, ModelInfo] = {e.name: e for e in _ENTRIES}

_ALIASES = {"vgg-16": "vgg16", "vgg-19": "vgg19", "resnet-18": "resnet18",
            "resnet-50": "resnet50", "resnet-101": "resnet101", "resnet-152": "resnet152",
            "densenet-121": "densenet121", "densenet-201": "densenet201",
            "mobilenetv2": "mobilenet_v2", "inceptionv3": "inception_v3",
            "inception": "inception_v3", "vit_small": "vit", "u-net": "unet",
            "seven_block": "sevenblock", "asghar": "sevenblock", "small_cnn": "smallcnn",
            "risodkar": "risodkar_cnn", "threeconv": "risodkar_cnn",
            "three_conv": "risodkar_cnn", "al_jader": "ndlm"}


def _key(name: str) -> str:
    key = _ALIASES.get(name.lower(), name.lower())
    if key not in MODELS:
        raise ValueError(f"unknown model {name!r}; available: {', '.join(list_models(True))}")
    return key


@overload
def list_models(include_ensemble: bool = ..., *, detail: Literal[False] = ...,
                form: str | None = ...) -> list[str]: ...
@overload
def list_models(include_ensemble: bool = ..., *, detail: Literal[True],
                form: str | None = ...) -> list[ModelInfo]: ...
def list_models(include_ensemble: bool = False, *, detail: bool = False,
                form: str | None = None) -> list[str] | list[ModelInfo]:
    """Names accepted by :func:`get_model` (the ensemble needs members, so it is opt-in).

    Parameters
    ----------
    include_ensemble : bool
    detail : bool
        Return :class:`ModelInfo` entries (form, reference, variant_of, description) instead
        of names.
    form : {"published", "adapted", "variant", "project"}, optional
        Only entries of that form.
    """
    forms = ("published", "adapted", "variant", "project")
    if form is not None and form not in forms:
        raise ValueError(f"form must be one of {forms}, got {form!r}")
    entries = [e for e in _ENTRIES if (include_ensemble or e.name != "ensemble")
               and (form is None or e.form == form)]
    return entries if detail else [e.name for e in entries]


def model_info(name: str) -> ModelInfo:
    """The :class:`ModelInfo` of a zoo name (aliases accepted)."""
    return _INFO[_key(name)]


def get_builder(name: str) -> Callable[..., nn.Module]:
    """The builder function registered under ``name`` (case-insensitive, a few aliases)."""
    mod, fn = MODELS[_key(name)]
    return getattr(importlib.import_module(f"{__name__}.{mod}"), fn)


def get_model(name: str, *, num_classes: int = 8, weights: str | None = None,
              img_size: int = 64, in_chans: int = 3, **kwargs: Any) -> nn.Module:
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
    in_chans : int
        Input channels (3 = RGB).
    **kwargs
        Builder-specific options (e.g. ``width`` for the small CNNs, ``norm`` -- "batch",
        "group" or "layer" -- for ``wbcnet`` and the ResNets).

    Returns
    -------
    torch.nn.Module
        Maps a float batch (N, in_chans, img_size, img_size) to logits (N, num_classes).
    """
    return get_builder(name)(num_classes=num_classes, weights=weights, img_size=img_size,
                             in_chans=in_chans, **kwargs)
