"""Training recipes: a paper's training settings under one name (no torch needed here).

A recipe fills :class:`deep.train.TrainConfig` fields (optimiser, learning rate and schedule,
epochs, batch size, augmentation, image size, split); settings given explicitly still win
over it. ``default`` is the project's own tuned recipe. Every checkpoint and benchmark row
records the recipe that produced it.

Each recipe says which of its settings come from its paper (``from_paper``); a paper that does
not state a setting leaves the project's value, and the recipe's ``note`` says so.

::

    python -m deep.train --data bloodmnist_64.npz --recipe medmnist-v2 --out runs/mm
    python -m benchmarks.run --preset pbc8 --models ndlm --recipe aljader
    python -m deep.train --data ../shared/data/pbc --model wbcnet --recipe lab --out runs/lab
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = ["LAB_AUGMENT", "RECIPES", "Recipe", "get_recipe", "recipe_names"]

#: Lab-randomising augmentation (issue 12; also ``deep.data.LAB_AUGMENT``): keyword arguments
#: of :func:`deep.data.build_augmentation` that vary what differs between laboratories --
#: magnification (zoom 0.3: scale 0.7..1.3), stain (HED scale sigma 0.2, shift 0.05),
#: illuminant and white balance (per-channel gain +-10 %), colour (saturation 0.3, hue 0.05,
#: brightness and contrast 0.2), optics and focus (blur sigma up to 1.5 px or sharpening 1.0,
#: each on half the images) and compression (JPEG quality 40..95 on half the images).
#: Rotation, flips, shift and shear stay at build_augmentation's defaults. Used by the
#: ``lab`` recipe.
LAB_AUGMENT: dict[str, float | int] = {
    "zoom": 0.3, "saturation": 0.3, "hue": 0.05, "brightness": 0.2, "contrast": 0.2,
    "hed_sigma": 0.2, "hed_bias": 0.05, "blur": 1.5, "sharpen": 1.0, "jpeg": 40, "tint": 0.1,
}


@dataclass(frozen=True)
class Recipe:
    """Named training settings.

    Attributes
    ----------
    name : str
    source : str
        Where the settings come from.
    settings : mapping
        :class:`deep.train.TrainConfig` field -> value (``split`` and ``img_size`` also set
        the benchmark's split and input size, for both families).
    from_paper : tuple of str
        The settings the source states; the others are the project's.
    note : str
    """

    name: str
    source: str
    settings: Mapping[str, Any] = field(default_factory=dict)
    from_paper: tuple[str, ...] = ()
    note: str = ""


RECIPES: dict[str, Recipe] = {r.name: r for r in (
    Recipe("default", "this project (tuned for PBC at 64 px on a CPU)", {}, (),
           "AdamW, lr 2e-3 after a 1-epoch warm-up, cosine to 1 % (following the elapsed "
           "fraction of a time budget when there is one), weight decay 0.05, label smoothing "
           "0.1, rotation/flip/affine/colour augmentation, early stopping on the validation "
           "loss (patience 8)"),
    Recipe("medmnist-v2", "Yang et al. 2023, MedMNIST v2, Scientific Data 10:41",
           {"optimizer": "adam", "lr": 1e-3, "batch_size": 128, "epochs": 100,
            "scheduler": "step", "lr_milestones": [0.5, 0.75], "lr_gamma": 0.1,
            "warmup_epochs": 0.0, "weight_decay": 0.0, "label_smoothing": 0.0,
            "no_augment": True, "patience": 0},
           ("optimizer", "lr", "batch_size", "epochs", "scheduler", "lr_milestones",
            "lr_gamma"),
           "Adam 1e-3, batch 128, 100 epochs, rate x0.1 after epochs 50 and 75; no weight "
           "decay, warm-up, label smoothing or augmentation (none is stated); the weights "
           "kept are those of the epoch with the lowest validation loss (the paper selects "
           "by validation AUC); use the official split of the .npz"),
    Recipe("aljader", "Al-Jader et al. (NDLM), PBC 5 classes",
           {"split": "50/25/25"}, ("split",),
           "the 50/25/25 train/validation/test split is the paper's; the optimiser, schedule "
           "and augmentation are the project's default (not stated in the sources at hand)"),
    Recipe("hussien-kareem", "Hussien & Kareem 2025 (VGG19, Xception, ResNet50, U-Net, ViT "
           "and their ensemble)",
           {"img_size": 64, "split": "80/20"}, ("img_size", "split"),
           "64 px inputs and the 80/20 split are the paper's (its figures come with bootstrap "
           "intervals, as every row here does); its optimiser, schedule, epochs and "
           "augmentation are not in the sources at hand, so they are the project's default"),
    Recipe("asghar", "Asghar et al. (VGG16/19, ResNet50/101/152, InceptionV3, MobileNetV2, "
           "DenseNet201, seven-block CNN)",
           {"pretrained": "imagenet"}, ("pretrained",),
           "ImageNet-initialised backbones, as the paper's 91.4-94.7 % figures are; the "
           "weights must be in the local torch hub cache (deep.pretrained says how to put "
           "them there; without them the run stops with that message). Its optimiser, "
           "schedule and augmentation are not in the sources at hand, so they are the "
           "project's default; use it with the ImageNet architectures only (the seven-block "
           "CNN has no ImageNet weights)"),
    Recipe("lab", "this project (issue 12: lab-randomising augmentation)",
           {"augment": LAB_AUGMENT}, (),
           "the default recipe with stronger augmentation of what differs between "
           "laboratories (deep.data.LAB_AUGMENT): zoom 0.3, HED stain jitter 0.2/0.05, "
           "per-channel tint 0.1, saturation 0.3, hue 0.05, brightness/contrast 0.2, blur "
           "up to 1.5 px or sharpening 1.0, JPEG quality 40..95; for cross-lab testing"),
)}


def recipe_names() -> list[str]:
    """Names accepted by ``--recipe``."""
    return list(RECIPES)


def get_recipe(name: str) -> Recipe:
    """The recipe called ``name``.

    Raises
    ------
    ValueError
        An unknown name; the message lists the known ones.
    """
    try:
        return RECIPES[name]
    except KeyError:
        raise ValueError(f"unknown recipe {name!r}; known: {', '.join(RECIPES)}") from None
