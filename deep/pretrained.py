"""Loading ImageNet (or user-supplied) weights without ever executing code from the file.

``weights`` accepted by every builder:

* ``None`` -- random initialisation (training from scratch, the default);
* ``"imagenet"`` -- torchvision's ImageNet weights for that architecture, looked up in the
  torch hub cache (``torch.hub.get_dir()/checkpoints``, i.e. ``$TORCH_HOME``) by the file name
  of torchvision's download URL; downloaded only when ``WBC_ALLOW_DOWNLOAD=1`` is set. When the
  file is absent a :class:`PretrainedWeightsUnavailable` error says which file to put where;
* a path to a ``.pth``/``.pt`` state dict (loaded with ``torch.load(weights_only=True)``).

Weights are copied tensor by tensor where names and shapes agree; layers changed for small
inputs or for ``num_classes`` (the head) keep their fresh initialisation, and the skipped names
are stored in ``model.skipped_pretrained``.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import torch
from torch import nn

__all__ = ["PretrainedWeightsUnavailable", "load_custom_weights", "load_imagenet",
           "load_state_dict_file", "hub_checkpoint_dir"]


class PretrainedWeightsUnavailable(FileNotFoundError):
    """ImageNet weights were requested but are not available locally (and no download)."""


def hub_checkpoint_dir() -> Path:
    """The torch hub checkpoint directory where torchvision caches downloaded weights."""
    return Path(torch.hub.get_dir()) / "checkpoints"


def load_state_dict_file(path: str | os.PathLike[str]) -> dict[str, torch.Tensor]:
    """Read a state dict with ``weights_only=True`` (no code execution), with clear errors.

    A full training checkpoint (``{"state_dict": ..., ...}``) is accepted too.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"weights file not found: {path}")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # pickle errors, truncated zip, refused globals ...
        raise ValueError(f"cannot load weights file {path}: it is corrupt or not a plain "
                         f"PyTorch state dict ({type(exc).__name__}: {exc})") from exc
    if isinstance(obj, dict) and "state_dict" in obj and isinstance(obj["state_dict"], dict):
        obj = obj["state_dict"]
    if not isinstance(obj, dict) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise ValueError(f"weights file {path} does not hold a state dict of tensors")
    return obj


def _copy_matching(model: nn.Module, state: dict[str, torch.Tensor],
                   rename: Callable[[str], str] | None = None) -> list[str]:
    own = model.state_dict()
    loadable, skipped = {}, []
    for k, v in state.items():
        k2 = rename(k) if rename is not None else k
        if k2 in own and own[k2].shape == v.shape:
            loadable[k2] = v
        else:
            skipped.append(k)
    if not loadable:
        raise ValueError("none of the tensors in the weights match this model "
                         "(wrong architecture?)")
    model.load_state_dict(loadable, strict=False)
    skipped += [k for k in own if k not in loadable and not k.endswith("num_batches_tracked")]
    names = sorted(set(skipped))
    # torch types Module attributes as Tensor | Module; a plain list attribute is intended
    model.skipped_pretrained = names  # type: ignore[assignment]
    return names


def load_imagenet(model: nn.Module, weights_enum, name: str,
                  rename: Callable[[str], str] | None = None) -> nn.Module:
    """Copy torchvision's ImageNet weights ``weights_enum`` into ``model`` (see module doc)."""
    url = weights_enum.url
    fname = url.rsplit("/", 1)[-1]
    path = hub_checkpoint_dir() / fname
    if not path.is_file():
        if os.environ.get("WBC_ALLOW_DOWNLOAD") == "1":
            try:
                state = torch.hub.load_state_dict_from_url(url, map_location="cpu",
                                                           weights_only=True, progress=False)
            except Exception as exc:
                raise PretrainedWeightsUnavailable(
                    f"ImageNet weights for {name} could not be downloaded from {url} "
                    f"({type(exc).__name__}: {exc}). Copy {fname} into {path.parent} "
                    f"or pass weights=<path to the .pth file>.") from exc
            _copy_matching(model, state, rename)
            return model
        raise PretrainedWeightsUnavailable(
            f"ImageNet weights for {name} are not available offline: {fname} is not in the "
            f"torch hub cache {path.parent}. Download {url} on a machine with internet, copy "
            f"it there (or set TORCH_HOME), or pass weights=<path to the .pth file> (CLI: "
            f"--pretrained PATH); set "
            f"WBC_ALLOW_DOWNLOAD=1 to let the program download it. Without --pretrained the "
            f"model trains from scratch.")
    _copy_matching(model, load_state_dict_file(path), rename)
    return model


def load_custom_weights(model: nn.Module, weights, name: str, weights_enum=None,
                        rename: Callable[[str], str] | None = None) -> nn.Module:
    """Apply the ``weights`` argument of a builder (None, "imagenet" or a file path)."""
    if weights is None or weights is False:
        return model
    if isinstance(weights, str) and weights.lower() in ("imagenet", "default", "true"):
        if weights_enum is None:
            raise PretrainedWeightsUnavailable(
                f"no ImageNet weights exist for {name!r}: train it from scratch "
                f"(weights=None) or pass weights=<path to a state dict>")
        return load_imagenet(model, weights_enum, name, rename)
    if isinstance(weights, str | os.PathLike):
        _copy_matching(model, load_state_dict_file(weights), rename)
        return model
    if hasattr(weights, "url"):  # a torchvision WeightsEnum member
        return load_imagenet(model, weights, name, rename)
    raise ValueError(f"{name}: weights must be None, 'imagenet' or a file path, got {weights!r}")


def _is_imagenet(weights) -> bool:
    return (isinstance(weights, str) and weights.lower() in ("imagenet", "default", "true")) \
        or hasattr(weights, "url")


def apply_weights(model: nn.Module, weights, name: str, weights_enum,
                  set_head: Callable[[nn.Module], None],
                  rename: Callable[[str], str] | None = None) -> nn.Module:
    """Load ImageNet weights *before* ``set_head`` replaces the 1000-class head, or a user's
    own state dict (same head) *after* it."""
    if _is_imagenet(weights):
        load_custom_weights(model, weights, name, weights_enum, rename)
    set_head(model)
    if weights is not None and weights is not False and not _is_imagenet(weights):
        load_custom_weights(model, weights, name, weights_enum, rename)
    return model
