"""Checkpoints: a state dict plus JSON-able metadata, read back with ``weights_only=True``.

File layout (a plain dict, so ``torch.load(path, weights_only=True)`` reads it and never runs
code from an untrusted file)::

    {"format": "wbc-deep-checkpoint", "version": 1,
     "meta": "<JSON string>",    # model, model_kwargs, classes, img_size, mean, std, epoch
     "state_dict": {name: tensor},
     "optimizer": {...} | None,          # for resuming
     "extra": "<JSON string>",           # training state (best loss, history, counters)
     "feature_shift": {module: {name: tensor}},   # optional, see below
     "head_input_map": {module: {name: tensor}}}  # optional

A network with a ``feature_shift`` attribute (:class:`deep.adapt.FeatureShift`, set by
training) is saved with it (under the module name ``""``; an ensemble's members under
``"members.0"`` ...), and :func:`load_model` gives it back on the rebuilt network; likewise
the :class:`deep.adapt.HeadInputMap` in front of a network's head (``deep.adapt --method
features``).
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import torch
from torch import nn

__all__ = ["CheckpointError", "CheckpointMeta", "load_checkpoint", "load_model",
           "save_checkpoint", "set_model_card", "update_meta"]

FORMAT = "wbc-deep-checkpoint"


class CheckpointError(ValueError):
    """A checkpoint file is missing, corrupt or not one of ours."""


@dataclass
class CheckpointMeta:
    """Everything a trained network needs at inference, and what its training got.

    Stored as JSON inside every checkpoint (:func:`save_checkpoint`) and returned by
    :func:`deep.train.train_on_split`. ``to_dict`` gives the plain dict that
    :func:`load_model` returns, so ``meta["classes"]`` works on both sides.

    Attributes
    ----------
    model : str
        Zoo name (:func:`deep.models.get_model`).
    classes : list of str
        Class names in output order.
    img_size : int
        Input side in pixels.
    mean, std : list of float
        Per-RGB-channel statistics of the training images in [0, 1] units.
    model_kwargs : dict
        Extra builder arguments.
    crop : str
        :func:`deep.cache.prepare_image` crop (``"center"``, ``"none"``, ``"cell"``).
    crop_options : dict
        Options of the ``"cell"`` crop.
    stain : dict or None
        ``StainNormalizer.to_dict()`` of the normaliser fitted on training images.
    recipe : str
        Name of the training recipe that produced the weights.
    epoch : int
        Epoch these weights come from (set per checkpoint file).
    epochs_run : float
        Epochs the training ran (a fraction when a time budget stopped it mid-epoch).
    best_epoch : int
        Epoch with the lowest validation loss (the weights returned).
    train_minutes : float
        Wall-clock minutes of the training loop.
    n_parameters : int
        Trainable and frozen parameters of the network.
    stop_reason : str
        ``"epochs"``, ``"early_stopping"`` or ``"time_budget"``.
    converged : bool or None
        False when the validation loss was still falling at the end (see
        :func:`deep.train.still_improving`).
    data, split : provenance (data folder, split scheme and seed).
    normalization, resize : human-readable notes on the input pipeline.
    shift_method : str
        Which shift score ``deep.predict`` writes: ``"mahalanobis"`` (what training sets:
        :class:`deep.adapt.FeatureShift` on the penultimate features, stored in the file's
        ``feature_shift``) or ``"energy"`` (:func:`deep.adapt.energy_score`; checkpoints
        from before the feature score, hence the default when the key is missing).
    shift_threshold : float or None
        Score (of ``shift_method``) above which ``deep.predict`` flags an image as unlike the
        training data: the 0.99 quantile of the validation images' scores. None: no
        validation part, or a checkpoint from before shift scores.
    shift_val_scores : list of float or None
        Quantiles 0, 0.01, ..., 1 (101 values) of those validation scores, for reports.
    adaptation : dict or None
        How the weights were adapted after training without labels, e.g.
        ``{"method": "bn-statistics", "n_images": 40, "source": "lab2/"}``
        (:func:`deep.adapt.adapt_norm_statistics`); None: as trained.
    """

    model: str
    classes: list[str]
    img_size: int
    mean: list[float]
    std: list[float]
    model_kwargs: dict[str, Any] = field(default_factory=dict)
    crop: str = "center"
    crop_options: dict[str, Any] = field(default_factory=dict)
    stain: dict[str, Any] | None = None
    recipe: str = "default"
    epoch: int = 0
    epochs_run: float = 0
    best_epoch: int = -1
    train_minutes: float = 0.0
    n_parameters: int = 0
    stop_reason: str = ""
    converged: bool | None = None
    data: str | None = None
    split: dict[str, Any] | None = None
    normalization: str = "x/255 then (x - mean) / std per RGB channel"
    resize: str = "deep.cache.prepare_image(crop, crop_options), area resize"
    shift_method: str = "energy"
    shift_threshold: float | None = None
    shift_val_scores: list[float] | None = None
    adaptation: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able dict of every field."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any] | CheckpointMeta) -> CheckpointMeta:
        """Build from a checkpoint's metadata dict; unknown keys (older or newer files) are
        ignored, missing optional ones take their defaults.

        Raises
        ------
        CheckpointError
            A required key (``model``, ``classes``, ``img_size``, ``mean``, ``std``) is missing.
        """
        if isinstance(d, CheckpointMeta):
            return d
        missing = [k for k in _REQUIRED if k not in d]
        if missing:
            raise CheckpointError(f"checkpoint metadata lacks {', '.join(missing)}")
        names = {f.name for f in dataclasses.fields(cls)}
        kw = {k: v for k, v in d.items() if k in names}
        kw["classes"] = [str(c) for c in kw["classes"]]
        kw["mean"], kw["std"] = list(kw["mean"]), list(kw["std"])
        kw["img_size"] = int(kw["img_size"])
        kw["model_kwargs"] = dict(kw.get("model_kwargs") or {})
        kw["crop_options"] = dict(kw.get("crop_options") or {})
        return cls(**kw)

    def get(self, key: str, default: Any = None) -> Any:
        """Mapping-style access (``meta.get("crop")``), so code written for the checkpoint's
        dict also takes the dataclass."""
        return getattr(self, key, default)

    def __getitem__(self, key: str) -> Any:
        try:
            return getattr(self, key)
        except AttributeError:
            raise KeyError(key) from None


_REQUIRED = ("model", "classes", "img_size", "mean", "std")


def _unwrap(model: nn.Module) -> nn.Module:
    return cast(nn.Module, model.module) if hasattr(model, "module") else model


def save_checkpoint(path: str | os.PathLike[str], model: nn.Module,
                    meta: CheckpointMeta | Mapping[str, Any], *,
                    optimizer: torch.optim.Optimizer | None = None,
                    extra: dict[str, Any] | None = None) -> Path:
    """Write a checkpoint atomically (a killed run keeps the previous file intact).

    Parameters
    ----------
    path : path-like
    model : nn.Module
        Its ``state_dict()`` is stored (a DDP wrapper is unwrapped).
    meta : CheckpointMeta or dict
        JSON-able: at least ``model``, ``classes``, ``img_size``, ``mean``, ``std``.
    optimizer : torch.optim.Optimizer, optional
    extra : dict, optional
        JSON-able training state for resuming.
    """
    from wbc_classic.io.atomic import atomic_path

    if isinstance(meta, CheckpointMeta):
        meta = meta.to_dict()
    for key in _REQUIRED:
        if key not in meta:
            raise ValueError(f"checkpoint metadata needs {key!r}")
    state = {k: v.detach().cpu() for k, v in _unwrap(model).state_dict().items()}
    obj = {"format": FORMAT, "version": 1, "meta": json.dumps(meta), "state_dict": state,
           "optimizer": optimizer.state_dict() if optimizer is not None else None,
           "extra": json.dumps(extra or {})}
    shifts = {name: m.feature_shift.to_state() for name, m in _unwrap(model).named_modules()
              if getattr(m, "feature_shift", None) is not None}
    if shifts:
        obj["feature_shift"] = shifts
    elif meta.get("shift_method") == "mahalanobis":
        raise ValueError("checkpoint metadata says shift_method 'mahalanobis' but the network "
                         "has no feature_shift to store with it")
    from .adapt import head_input_map

    maps = {name: mapping.to_state() for name, m in _unwrap(model).named_modules()
            if getattr(m, "head_name", None) and (mapping := head_input_map(m)) is not None}
    if maps:
        obj["head_input_map"] = maps
    path = Path(path)
    with atomic_path(path) as tmp:
        torch.save(obj, tmp)
    return path


def load_checkpoint(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read a checkpoint with ``weights_only=True``; return a dict with parsed ``meta``/``extra``.

    Raises
    ------
    FileNotFoundError
        The file does not exist.
    CheckpointError
        The file is corrupt, truncated, not a wbc-classic deep checkpoint, or would need
        arbitrary code to unpickle (refused).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint not found: {path}")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise CheckpointError(
            f"cannot read checkpoint {path}: the file is corrupt, truncated or holds objects "
            f"that are refused for safety (weights_only=True) ({type(exc).__name__}: "
            f"{str(exc).splitlines()[0] if str(exc) else ''})") from exc
    if not isinstance(obj, dict) or obj.get("format") != FORMAT:
        raise CheckpointError(f"{path} is not a wbc-classic deep checkpoint "
                              f"(expected format {FORMAT!r})")
    try:
        obj["meta"] = json.loads(obj["meta"])
        obj["extra"] = json.loads(obj.get("extra") or "{}")
    except (KeyError, TypeError, json.JSONDecodeError) as exc:
        raise CheckpointError(f"checkpoint {path} has damaged metadata: {exc}") from exc
    return obj


def load_model(path: str | os.PathLike[str], device: str | torch.device = "cpu"
               ) -> tuple[nn.Module, dict[str, Any]]:
    """Rebuild the model recorded in a checkpoint and load its weights (eval mode).

    Returns
    -------
    model : nn.Module
    meta : dict
        The checkpoint metadata (classes, img_size, mean, std, ...).
    """
    from .models import get_model

    ckpt = load_checkpoint(path)
    meta = ckpt["meta"]
    if not isinstance(meta, dict):
        raise CheckpointError(f"checkpoint {path} has damaged metadata: not a mapping")
    missing = [k for k in ("model", "classes", "img_size", "mean", "std") if k not in meta]
    if missing:
        raise CheckpointError(f"checkpoint {path} lacks {', '.join(map(repr, missing))} in "
                              f"its metadata; it cannot be used for prediction")
    classes = meta["classes"]
    if not isinstance(classes, list) or not classes or \
            not all(isinstance(c, str) and c for c in classes) or len(set(classes)) != len(classes):
        raise CheckpointError(f"checkpoint {path} has invalid 'classes' {classes!r}: expected a "
                              f"list of distinct class names")
    kwargs = meta.get("model_kwargs") or {}
    if not isinstance(kwargs, dict):
        raise CheckpointError(f"checkpoint {path} has invalid 'model_kwargs' {kwargs!r}: "
                              f"expected a mapping")
    try:
        size = int(meta["img_size"])
        channels = int(kwargs.get("in_chans", 3))
        if not 8 <= size <= 4096 or len(meta["mean"]) != channels \
                or len(meta["std"]) != channels:
            raise ValueError
    except (TypeError, ValueError):
        raise CheckpointError(f"checkpoint {path} has an invalid img_size/mean/std in its "
                              f"metadata") from None
    try:
        model = get_model(meta["model"], num_classes=len(classes), weights=None,
                          img_size=size, **kwargs)
    except (TypeError, ValueError, KeyError) as exc:
        raise CheckpointError(f"checkpoint {path}: cannot build model {meta['model']!r} with "
                              f"model_kwargs {kwargs!r}: {str(exc).splitlines()[0]}") from None
    try:
        model.load_state_dict(ckpt["state_dict"])
    except RuntimeError as exc:
        raise CheckpointError(f"checkpoint {path} does not match model {meta['model']!r}: "
                              f"{str(exc).splitlines()[0]}") from exc
    if meta.get("shift_method", "energy") not in ("energy", "mahalanobis"):
        raise CheckpointError(f"checkpoint {path} has an unknown shift_method "
                              f"{meta['shift_method']!r}: expected 'energy' or 'mahalanobis'")
    if ckpt.get("feature_shift"):
        from .adapt import FeatureShift
        from .models._common import set_plain_attrs

        try:
            for name, state in dict(ckpt["feature_shift"]).items():
                set_plain_attrs(model.get_submodule(name),
                                feature_shift=FeatureShift.from_state(state))
        except (ValueError, AttributeError, TypeError) as exc:
            raise CheckpointError(f"checkpoint {path} has a damaged feature_shift: "
                                  f"{exc}") from None
    elif meta.get("shift_method") == "mahalanobis":
        raise CheckpointError(f"checkpoint {path} says shift_method 'mahalanobis' but holds no "
                              f"feature_shift; it cannot score shift")
    if ckpt.get("head_input_map"):
        from .adapt import HeadInputMap, set_head_input_map

        try:
            for name, state in dict(ckpt["head_input_map"]).items():
                net, mapping = model.get_submodule(name), HeadInputMap.from_state(state)
                stats = getattr(net, "feature_shift", None)
                if stats is None or stats.n_features != mapping.slope.shape[0]:
                    raise ValueError(f"its map for {name or 'the network'} is for "
                                     f"{mapping.slope.shape[0]} features, the network's head "
                                     f"receives {'?' if stats is None else stats.n_features}")
                set_head_input_map(net, mapping)
        except (ValueError, AttributeError, TypeError) as exc:
            raise CheckpointError(f"checkpoint {path} has a damaged head_input_map: "
                                  f"{exc}") from None
    model.eval()
    return model.to(device), meta


def update_meta(path: str | os.PathLike[str], *, feature_shift: Any = None,
                **fields: Any) -> Path:
    """Set metadata fields of a checkpoint file in place (atomically); the weights, optimiser
    state and training state are left as they are.

    Parameters
    ----------
    path : path-like
    feature_shift : deep.adapt.FeatureShift, optional
        Also store this shift scorer, the network's own (replacing the file's).
    **fields
        JSON-able values, e.g. ``shift_threshold=3.2`` or ``card={...}``.

    Returns
    -------
    pathlib.Path
    """
    from wbc_classic.io.atomic import atomic_path

    path = Path(path)
    obj = load_checkpoint(path)
    if feature_shift is not None:
        obj["feature_shift"] = {"": feature_shift.to_state()}
    obj["meta"] = json.dumps({**obj["meta"], **fields})
    obj["extra"] = json.dumps(obj.get("extra") or {})
    with atomic_path(path) as tmp:
        torch.save(obj, tmp)
    return path


def set_model_card(path: str | os.PathLike[str], card: dict[str, Any]) -> Path:
    """Store a model card (:mod:`wbc_classic.io.modelcard`) in a checkpoint's ``meta["card"]``
    and write it beside the file as Markdown; the weights are left as they are.

    Returns
    -------
    pathlib.Path
        The ``.card.md`` file.
    """
    from wbc_classic.io.modelcard import write_card

    update_meta(path, card=card)
    return write_card(card, Path(path))
