"""Preprocessing objects for the deep models, in the manner of torchvision's
``weights.transforms()`` and timm's ``create_transform``.

:class:`Preprocess` turns an RGB image (or a batch of them) into the normalised float tensor a
model expects: the checkpoint's stain normaliser and crop convention, resize to ``img_size``
(:func:`deep.cache.prepare_image`, the same code that fills the training cache), scale to
[0, 1], normalise with the checkpoint's mean/std. It is an ``nn.Module``, so it composes with
``torchvision.transforms.v2.Compose`` and ``nn.Sequential`` and prints its settings.

::

    from deep.transforms import from_checkpoint
    pre = from_checkpoint("runs/wbcnet64/best.pt")
    x = pre(rgb_uint8_image)            # (3, 64, 64) float32
    xb = pre(batch_of_images)           # (N, 3, 64, 64)

    model, meta = deep.checkpoint.load_model("runs/wbcnet64/best.pt")
    attach_transforms(model, meta)
    model.transforms()                  # the same object, like torchvision
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch import nn

__all__ = ["Preprocess", "attach_transforms", "from_checkpoint", "from_meta"]


class Preprocess(nn.Module):
    """Image(s) -> normalised float tensor for a zoo model.

    Parameters
    ----------
    img_size : int
        Output side in pixels.
    mean, std : sequence of float
        Per-channel normalisation in [0, 1] units, one value per model input channel (3 for
        RGB; 1 makes the output greyscale, ITU-R BT.601 luma).
    crop : {"center", "none", "cell"}
        Crop convention (see :func:`deep.cache.prepare_image`).
    crop_options : dict, optional
        Options of the cell crop (``crop="cell"``).
    stain : dict or fitted normaliser, optional
        The checkpoint's stain normaliser (its ``to_dict()`` form is accepted).

    Calling it on an ndarray (H, W, 3) uint8 or a PIL image gives a float32 tensor
    (C, img_size, img_size); on an ndarray (N, H, W, 3) or a sequence of images,
    (N, C, img_size, img_size).
    """

    def __init__(self, img_size: int, mean: Sequence[float], std: Sequence[float], *,
                 crop: str = "center", crop_options: dict | None = None,
                 stain: Any = None) -> None:
        super().__init__()
        if len(mean) != len(std) or len(mean) not in (1, 3):
            raise ValueError(f"mean and std need 1 or 3 values each, got {list(mean)} and "
                             f"{list(std)}")
        if any(float(s) <= 0 for s in std):
            raise ValueError(f"std must be positive, got {list(std)}")
        self.img_size = int(img_size)
        self.mean = tuple(float(v) for v in mean)
        self.std = tuple(float(v) for v in std)
        self.crop = crop
        self.crop_options = dict(crop_options) if crop_options else None
        if isinstance(stain, dict):
            from wbc_classic.preprocess.stain import normalizer_from_dict

            stain = normalizer_from_dict(stain)
        self.stain = stain

    @property
    def in_chans(self) -> int:
        """Channels of the output (the model's ``in_chans``)."""
        return len(self.mean)

    def _one(self, image: Any) -> torch.Tensor:
        from .cache import prepare_image

        arr = np.asarray(image)
        if arr.ndim == 2:
            arr = np.repeat(arr[..., None], 3, axis=2)
        if arr.ndim != 3 or arr.shape[2] != 3:
            raise ValueError(f"expected an RGB image of shape (H, W, 3), got shape {arr.shape}")
        if arr.dtype != np.uint8:
            raise ValueError(f"expected a uint8 image, got dtype {arr.dtype}")
        pix = prepare_image(arr, self.img_size, crop=self.crop, crop_options=self.crop_options,
                            stain=self.stain)
        x = torch.from_numpy(np.ascontiguousarray(pix)).permute(2, 0, 1).float().div_(255.0)
        if self.in_chans == 1:
            x = (0.299 * x[0] + 0.587 * x[1] + 0.114 * x[2]).unsqueeze(0)
        m = torch.tensor(self.mean).view(-1, 1, 1)
        s = torch.tensor(self.std).view(-1, 1, 1)
        return (x - m) / s

    def forward(self, images: Any) -> torch.Tensor:
        if isinstance(images, np.ndarray) and images.ndim == 4:
            return torch.stack([self._one(im) for im in images])
        if isinstance(images, list | tuple):
            if not images:
                return torch.zeros((0, self.in_chans, self.img_size, self.img_size))
            return torch.stack([self._one(im) for im in images])
        return self._one(images)

    def extra_repr(self) -> str:
        return (f"img_size={self.img_size}, crop={self.crop!r}, mean={self.mean}, "
                f"std={self.std}, stain={type(self.stain).__name__ if self.stain else None}")

    def describe(self) -> str:
        """One paragraph for docs and model cards (torchvision's ``describe()``)."""
        stain = f" {type(self.stain).__name__} stain normalisation;" if self.stain else ""
        return (f"Accepts RGB uint8 images (H, W, 3) or batches (N, H, W, 3).{stain} The image "
                f"is cropped ({self.crop!r}) and resized to {self.img_size}x{self.img_size} "
                f"px, scaled to [0, 1] and normalised with mean={list(self.mean)} and "
                f"std={list(self.std)}; output float32 ({self.in_chans}, {self.img_size}, "
                f"{self.img_size}).")

    def to_dict(self) -> dict[str, Any]:
        """JSON-able settings (``Preprocess(**d)`` rebuilds it, the stain as its dict form)."""
        stain = self.stain.to_dict() if self.stain is not None and hasattr(
            self.stain, "to_dict") else None
        return {"img_size": self.img_size, "mean": list(self.mean), "std": list(self.std),
                "crop": self.crop, "crop_options": self.crop_options, "stain": stain}


def from_meta(meta: dict[str, Any]) -> Preprocess:
    """The preprocessing of a checkpoint's metadata (``img_size``, ``mean``, ``std`` and, when
    present, ``crop``, ``crop_options``, ``stain``)."""
    for key in ("img_size", "mean", "std"):
        if key not in meta:
            raise ValueError(f"checkpoint metadata has no {key!r}: cannot build its transforms")
    return Preprocess(int(meta["img_size"]), meta["mean"], meta["std"],
                      crop=meta.get("crop") or "center", crop_options=meta.get("crop_options"),
                      stain=meta.get("stain"))


def from_checkpoint(path: str | os.PathLike[str]) -> Preprocess:
    """The preprocessing stored in a checkpoint file (read with ``weights_only=True``)."""
    from .checkpoint import load_checkpoint

    return from_meta(load_checkpoint(path)["meta"])


def attach_transforms(model: nn.Module, meta: dict[str, Any]) -> nn.Module:
    """Make ``model.transforms()`` return the checkpoint's :class:`Preprocess` (in place).

    Called once the checkpoint metadata is known (``deep.checkpoint.load_model``), so a loaded
    model carries its preprocessing the way a torchvision weights entry does.
    """
    from .models._common import TransformsFactory, set_plain_attrs

    pre = from_meta(meta)
    set_plain_attrs(model, transforms=TransformsFactory({"arch": meta.get("model"),
                                                         **pre.to_dict()}))
    return model
