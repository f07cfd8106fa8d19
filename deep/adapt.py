"""Unsupervised shift and adaptation of a trained network: no label of the new images needed.

* :func:`energy_score` -- how unlike the training data an image looks to the network: the
  energy of its logits (Liu et al. 2020, "Energy-based out-of-distribution detection",
  NeurIPS), ``-T * logsumexp(z / T)``. A confident network has one large logit and a low
  (very negative) energy; an image unlike everything it was trained on gets small, flat
  logits and a higher energy. ``deep.predict`` writes it as the ``shift_score`` of
  checkpoints whose ``shift_method`` is ``"energy"`` (those from before
  :class:`FeatureShift`, and stacked ensembles).
* :class:`FeatureShift` -- the shift score of a checkpoint trained by this version: the
  Mahalanobis distance (Ledoit-Wolf, :mod:`wbc_classic.evaluation.shift`, the same as the
  classical family's) of what the network's head receives (:func:`penultimate_features`) to
  its training images' (Lee et al. 2018, "A simple unified framework for detecting
  out-of-distribution samples", NeurIPS, with one class-agnostic Gaussian). Measured by
  ``benchmarks.lolo_deep``, it separates another laboratory's cells from PBC's far better
  than the energy (AUROC 0.999-1.000 against 0.82-0.88 on jtsc_seg): the energy only sees
  how confident the network is, and a network is confidently wrong on another lab's stain.
  The checkpoint's ``shift_method`` says which score its ``shift_threshold`` is for;
  checkpoints from before it use the energy.
* :func:`adapt_norm_statistics` -- AdaBN (Li et al. 2016, "Revisiting batch normalization for
  practical domain adaptation", arXiv:1603.04779): another laboratory's stain, scanner and
  optics move the statistics of every layer's activations; a BatchNorm layer normalises with
  the *training* images' running mean and variance, so on a shifted batch its output is off
  and the errors grow layer by layer. Re-estimating those running statistics on the target
  images (forward passes only, the weights are not trained) puts every layer's input back on
  the scale the following weights were trained for. It needs a batch of target images (at
  least :data:`MIN_ADAPT_IMAGES`), no labels.

* :func:`standardize_head_inputs` -- the same idea one place later: what the classification
  head receives (:func:`head_inputs`) is moved, feature by feature, from the target images'
  mean and spread to the training images' (:class:`FeatureShift`'s ``center`` and ``scale``),
  by a :class:`HeadInputMap` in front of the head. The backbone is not changed, so it works
  for GroupNorm and LayerNorm networks too, and the shift score (of the backbone's features,
  before the map) stays that of the network as trained. Measured by
  ``benchmarks.lolo_deep`` on PBC-trained wbcnets (BatchNorm and GroupNorm), it lifted every
  other lab a little (cellavision_seg +0.01 to +0.03, jtsc_seg +0.05 to +0.21) where AdaBN
  lowered them. It assumes the batch holds the lab's usual mix of cells: a folder of one
  class is moved towards the average training cell. ``--method auto`` (the default) applies
  it when the network's shift warning flags at least half the images (the classical
  ``adapt``'s rule, :data:`wbc_classic.evaluation.shift.AUTO_MAP_FLAGGED`) and otherwise
  keeps the network as trained; older checkpoints without the training features' statistics
  get AdaBN. An adapted checkpoint is not adapted again (:func:`adapted_already`).

Command line (writes an adapted copy of a checkpoint; ``deep.predict --adapt`` does the same
for one batch without saving)::

    python -m deep.adapt --checkpoint runs/wbcnet64/best.pt --images lab2/cells/ \\
        --out runs/wbcnet64/best-lab2.pt

Exit codes (:mod:`wbc_classic.io.options`): 0 the adapted checkpoint was written from every
image; 1 written, but some images could not be read or held no leukocyte (listed, each
naming its file); 2 a bad option or device, an unusable checkpoint, no input image, too few
usable images (fewer than :data:`MIN_ADAPT_IMAGES`), or an ``--out`` that cannot be written
(checked before any work), a network without BatchNorm layers for ``--method bn``, or without
training feature statistics for ``--method features``.
"""

from __future__ import annotations

import argparse
import copy
import logging
import sys
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm

from .data import normalize_batch

__all__ = ["ADAPT_METHODS", "MIN_ADAPT_IMAGES", "MIN_FEATURE_IMAGES", "SHIFT_FIT_IMAGES",
           "SHIFT_QUANTILE", "FeatureShift", "HeadInputMap", "adapt_network",
           "adapt_norm_statistics", "adaptation_records", "adapted_already",
           "batchnorm_layers", "energy_score", "head_input_map", "head_inputs", "main",
           "penultimate_features", "resolve_adapt_method", "set_head_input_map",
           "standardize_head_inputs"]

logger = logging.getLogger(__name__)

#: fewest target images :func:`adapt_norm_statistics` accepts: a BatchNorm layer's running
#: variance from fewer is mostly noise (and a layer after global pooling sees one value per
#: image and channel), so the "adapted" network would be worse than the original
MIN_ADAPT_IMAGES = 8

#: fewest target images :func:`standardize_head_inputs` accepts: each feature's mean and spread
#: over the batch stands for the lab's, so the batch must hold the lab's usual mix of cells
#: (as for the classical ``adapt``, at least 20)
MIN_FEATURE_IMAGES = 20

#: quantile of the validation images' shift scores used as a checkpoint's ``shift_threshold``
#: (:func:`deep.train.shift_calibration`): about 1 % of images like the training data are
#: flagged, as with the classical ``ShiftScorer(quantile=0.99)``
SHIFT_QUANTILE = 0.99

#: most training images a :class:`FeatureShift` is fitted on (a seeded sample): one forward
#: pass each, which for an ImageNet-size network at 224 px on a CPU is the cost that matters;
#: the Ledoit-Wolf shrinkage keeps the covariance well conditioned with fewer images than
#: features
SHIFT_FIT_IMAGES = 2000

#: the unsupervised adaptations of a network: ``features`` (:func:`standardize_head_inputs`),
#: ``bn`` (AdaBN, :func:`adapt_norm_statistics`) and ``auto`` (``features`` when the network
#: carries its training features' statistics, else ``bn``: :func:`resolve_adapt_method`)
ADAPT_METHODS = ("auto", "features", "bn")

#: bounds of a :class:`HeadInputMap`'s per-feature slope: a feature nearly constant on the
#: target images (a unit that stays off) must not be blown up to the training spread
MAP_SLOPE_RANGE = (0.1, 10.0)


def energy_score(logits: np.ndarray | torch.Tensor, temperature: float = 1.0) -> np.ndarray:
    """Energy of each row of logits: ``-T * logsumexp(z / T)``; higher = less like training.

    Parameters
    ----------
    logits : ndarray or tensor, shape (N, K)
        A network's raw outputs (not probabilities: the energy of log-probabilities is 0).
    temperature : float, default 1.0
        ``T > 0``; Liu et al. use 1.

    Returns
    -------
    ndarray of float64, shape (N,)
        Computed in float64 with a stable log-sum-exp (no overflow for logits of 1e4).
    """
    from scipy.special import logsumexp

    if not temperature > 0:
        raise ValueError(f"temperature must be > 0, got {temperature!r}")
    z = logits.detach().cpu().numpy() if isinstance(logits, torch.Tensor) else logits
    z = np.asarray(z, dtype=np.float64)
    if z.ndim != 2 or z.shape[1] == 0:
        raise ValueError(f"logits must have shape (N, K) with K >= 1, got {z.shape}")
    t = float(temperature)
    return -t * logsumexp(z / t, axis=1)


def batchnorm_layers(model: nn.Module) -> list[_BatchNorm]:
    """The BatchNorm layers of ``model`` (any ``_BatchNorm``): what AdaBN can re-estimate;
    empty for LayerNorm/GroupNorm networks."""
    return [m for m in model.modules() if isinstance(m, _BatchNorm)]


@contextmanager
def head_inputs(model: nn.Module) -> Iterator[list[torch.Tensor]]:
    """Collect what a zoo model's classification head receives during the forward passes
    made inside the block: one ``(batch, F)`` CPU tensor per pass, flattened.

    The head is the module named by the builder's ``head_name`` (``model.head`` for wbcnet,
    ``fc`` for the ResNets ...). What is collected is the backbone's output, before a
    :class:`HeadInputMap` (:func:`set_head_input_map`) moves it.

    Raises
    ------
    ValueError
        The model has no ``head_name`` (not built by :func:`deep.models.get_model`).
    """
    head = getattr(model, "head_name", None)
    if not head:
        raise ValueError(f"{type(model).__name__} has no head_name: penultimate features need "
                         f"a model built by deep.models.get_model")
    grabbed: list[torch.Tensor] = []
    # prepended: the backbone's own output, before any HeadInputMap moves it
    hook = model.get_submodule(head).register_forward_pre_hook(
        lambda _m, inputs: grabbed.append(inputs[0].detach().flatten(1).cpu()), prepend=True)
    try:
        yield grabbed
    finally:
        hook.remove()


def penultimate_features(model: nn.Module, images: np.ndarray | torch.Tensor,
                         mean: Sequence[float], std: Sequence[float], *, batch_size: int = 256,
                         device: str | torch.device = "cpu") -> np.ndarray:
    """What a network's classification head receives, one row per image.

    The input of the head (:func:`head_inputs`), flattened, from the prediction loop
    (:func:`deep.predict.predict_logits`): the representation :class:`FeatureShift` works on.
    The model's training mode is restored afterwards.

    Parameters
    ----------
    model : nn.Module
        A zoo model (built by :func:`deep.models.get_model`, so it has ``head_name``).
    images : ndarray (N, S, S, 3) uint8, or tensor (N, 3, S, S) uint8
        At the model's input size.
    mean, std : sequence of float
        The checkpoint's normalisation.

    Returns
    -------
    ndarray of float64, shape (N, F)

    Raises
    ------
    ValueError
        The model has no ``head_name`` (not a zoo model).
    """
    from .predict import predict_logits

    was_training = model.training
    try:
        _, features = predict_logits(model, images, mean, std, batch_size=batch_size,
                                     device=device, return_features=True)
    finally:
        model.train(was_training)
    return features


@dataclass(frozen=True, eq=False)
class FeatureShift:
    """Mahalanobis shift score on a network's penultimate features, as a checkpoint stores it.

    Attributes
    ----------
    center, scale : ndarray of float32, shape (F,)
        Per-feature mean and standard deviation of the training images' features.
    precision : ndarray of float32, shape (F, F)
        Inverse Ledoit-Wolf covariance of the standardised features
        (:func:`wbc_classic.evaluation.shift.fit_mahalanobis`). Stored in float32, so the
        scores of a model in memory and of its saved checkpoint are the same.
    """

    center: np.ndarray
    scale: np.ndarray
    precision: np.ndarray

    @classmethod
    def fit(cls, features: np.ndarray) -> FeatureShift:
        """Fit on training images' features, ndarray of float, shape (n, F), n >= 2."""
        from wbc_classic.evaluation.shift import fit_mahalanobis

        center, scale, precision = fit_mahalanobis(features)
        return cls(center.astype(np.float32), scale.astype(np.float32),
                   precision.astype(np.float32))

    @property
    def n_features(self) -> int:
        """F, the width of the features it scores."""
        return int(self.center.shape[0])

    def score(self, features: np.ndarray) -> np.ndarray:
        """Shift score of each row of ``features`` (n, F): ndarray of float64, shape (n,),
        about 1 for a typical training image, higher = less like the training images."""
        from wbc_classic.evaluation.shift import mahalanobis_score

        return mahalanobis_score(features, self.center.astype(np.float64),
                                 self.scale.astype(np.float64),
                                 self.precision.astype(np.float64))

    def to_state(self) -> dict[str, torch.Tensor]:
        """Plain tensors for a checkpoint (read back with ``weights_only=True``)."""
        return {"center": torch.from_numpy(self.center), "scale": torch.from_numpy(self.scale),
                "precision": torch.from_numpy(self.precision)}

    @classmethod
    def from_state(cls, state: Mapping[str, torch.Tensor]) -> FeatureShift:
        """Inverse of :meth:`to_state`.

        Raises
        ------
        ValueError
            A key is missing or the shapes do not fit together.
        """
        try:
            arrays = [np.asarray(state[k].detach().cpu().numpy(), np.float32)
                      for k in ("center", "scale", "precision")]
        except (KeyError, AttributeError, TypeError) as exc:
            raise ValueError(f"feature shift state needs tensors center, scale and "
                             f"precision ({exc})") from None
        center, scale, precision = arrays
        F = center.shape[0] if center.ndim == 1 else -1
        if F < 1 or scale.shape != (F,) or precision.shape != (F, F):
            raise ValueError(f"feature shift state has shapes {center.shape}, {scale.shape}, "
                             f"{precision.shape}; expected (F,), (F,), (F, F)")
        return cls(center, scale, precision)


@dataclass(frozen=True, eq=False)
class HeadInputMap:
    """A per-feature affine map ``x' = slope * x + offset`` of what a network's head receives.

    Set in front of the head by :func:`set_head_input_map` (a forward pre-hook), stored in a
    checkpoint as plain tensors (``head_input_map``), and fitted by
    :func:`standardize_head_inputs`.

    Attributes
    ----------
    slope, offset : ndarray of float32, shape (F,)
        F is the width of the head's flattened input.
    """

    slope: np.ndarray
    offset: np.ndarray

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        """``x`` (N, ...) with F values per row after flattening, mapped; same shape."""
        flat = x.flatten(1)
        if flat.shape[1] != self.slope.shape[0]:
            raise ValueError(f"the head receives {flat.shape[1]} features but the map is for "
                             f"{self.slope.shape[0]}")
        slope = torch.as_tensor(self.slope, device=x.device, dtype=x.dtype)
        offset = torch.as_tensor(self.offset, device=x.device, dtype=x.dtype)
        return (flat * slope + offset).reshape(x.shape)

    def to_state(self) -> dict[str, torch.Tensor]:
        """Plain tensors for a checkpoint (read back with ``weights_only=True``)."""
        return {"slope": torch.from_numpy(self.slope), "offset": torch.from_numpy(self.offset)}

    @classmethod
    def from_state(cls, state: Mapping[str, torch.Tensor]) -> HeadInputMap:
        """Inverse of :meth:`to_state`.

        Raises
        ------
        ValueError
            A key is missing, the shapes differ, or a value is not finite.
        """
        try:
            slope, offset = (np.asarray(state[k].detach().cpu().numpy(), np.float32)
                             for k in ("slope", "offset"))
        except (KeyError, AttributeError, TypeError) as exc:
            raise ValueError(f"head input map state needs tensors slope and offset "
                             f"({exc})") from None
        if slope.ndim != 1 or slope.shape != offset.shape or slope.size == 0:
            raise ValueError(f"head input map has shapes {slope.shape} and {offset.shape}; "
                             f"expected (F,) and (F,)")
        if not (np.isfinite(slope).all() and np.isfinite(offset).all()):
            raise ValueError("head input map holds NaN or inf")
        return cls(slope, offset)


def _map_head_input(head: nn.Module, inputs: tuple[Any, ...]) -> tuple[Any, ...] | None:
    """Forward pre-hook of a head: apply its ``input_map`` (None: pass through)."""
    mapping = vars(head).get("input_map")
    if mapping is None:
        return None
    return (mapping(inputs[0]), *inputs[1:])


def _networks(model: nn.Module) -> list[nn.Module]:
    """The zoo networks of ``model``: its members for an ensemble, else itself."""
    from .models.ensemble import Ensemble

    return list(model.members) if isinstance(model, Ensemble) else [model]


def _head(model: nn.Module) -> nn.Module:
    head = getattr(model, "head_name", None)
    if not head:
        raise ValueError(f"{type(model).__name__} has no head_name: a head input map needs a "
                         f"model built by deep.models.get_model")
    return model.get_submodule(head)


def set_head_input_map(model: nn.Module, mapping: HeadInputMap | None) -> None:
    """Put ``mapping`` in front of a zoo network's head (None removes it), in place.

    Raises
    ------
    ValueError
        The model has no ``head_name`` (not built by :func:`deep.models.get_model`).
    """
    from .models._common import set_plain_attrs

    head = _head(model)
    if not vars(head).get("_input_map_hooked"):
        head.register_forward_pre_hook(_map_head_input)
        set_plain_attrs(head, _input_map_hooked=True)
    set_plain_attrs(head, input_map=mapping)


def head_input_map(model: nn.Module) -> HeadInputMap | None:
    """The :class:`HeadInputMap` in front of a zoo network's head, or None."""
    head = getattr(model, "head_name", None)
    return vars(model.get_submodule(head)).get("input_map") if head else None


def standardize_head_inputs(model: nn.Module, images: np.ndarray | torch.Tensor,
                            mean: Sequence[float], std: Sequence[float], *,
                            batch_size: int = 256, device: str | torch.device = "cpu"
                            ) -> nn.Module:
    """A copy of ``model`` whose head receives the target images' features moved onto the
    training images' per-feature mean and spread.

    For each feature of the head's input (:func:`head_inputs`, the backbone's output), the
    target images' mean ``mu`` and standard deviation ``sd`` are measured, and a
    :class:`HeadInputMap` with ``slope = scale / sd`` (bounded by :data:`MAP_SLOPE_RANGE`) and
    ``offset = center - slope * mu`` is set in front of the head, ``center`` and ``scale``
    being the training images' (the network's :class:`FeatureShift`). Per-lab feature
    standardisation (as ``wbc-classic adapt --method standardize`` does for the classical
    features), one layer before the classifier; the backbone is untouched. An ensemble's
    members are mapped one by one. A map already in place is replaced, not composed.

    Parameters
    ----------
    model : nn.Module
        A zoo network (or an ensemble of them) carrying ``feature_shift`` (checkpoints trained
        by this version). Left untouched.
    images : ndarray (N, S, S, 3) uint8, or tensor (N, 3, S, S) uint8
        The target images at the model's size, ``N >= MIN_FEATURE_IMAGES``, in the lab's
        usual mix of cell types: the map gives the batch the training images' mean, so a
        batch of one cell type (a folder sorted by class) is moved towards the average
        training cell and misclassified.
    mean, std : sequence of float
        The checkpoint's normalisation.
    batch_size : int, default 256
    device : str or torch.device

    Returns
    -------
    nn.Module
        The adapted copy on ``device``, in eval mode.

    Raises
    ------
    ValueError
        Fewer than :data:`MIN_FEATURE_IMAGES` images, or a network without ``head_name`` or
        without ``feature_shift``.
    """
    n = len(images)
    if n < MIN_FEATURE_IMAGES:
        raise ValueError(f"a target batch of {n} image{'s' if n != 1 else ''} is too few to "
                         "estimate each feature's mean and spread; need at least "
                         f"{MIN_FEATURE_IMAGES}, of the lab's usual mix of cells")
    new = copy.deepcopy(model).to(torch.device(device)).eval()
    for net in _networks(new):
        fs = getattr(net, "feature_shift", None)
        if fs is None:
            raise ValueError(f"{getattr(net, 'arch', type(net).__name__)} carries no "
                             "statistics of its training images' features (feature_shift: "
                             "checkpoints trained before them); use the BatchNorm "
                             "adaptation (method 'bn') or retrain")
        set_head_input_map(net, None)  # measure the backbone's own features
        features = penultimate_features(net, images, mean, std, batch_size=batch_size,
                                        device=device)
        if features.shape[1] != fs.n_features:
            raise ValueError(f"the head receives {features.shape[1]} features but the "
                             f"network's feature statistics are for {fs.n_features}")
        mu, sd = features.mean(axis=0), features.std(axis=0)
        slope = np.clip(fs.scale.astype(np.float64) / np.maximum(sd, 1e-12), *MAP_SLOPE_RANGE)
        offset = fs.center.astype(np.float64) - slope * mu
        set_head_input_map(net, HeadInputMap(slope.astype(np.float32),
                                             offset.astype(np.float32)))
    logger.info("standardised the head inputs of %d network(s) on %d images",
                len(_networks(new)), n)
    return new.eval()


def adaptation_records(meta: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The adaptations ``deep.adapt`` recorded in a checkpoint's metadata, an ensemble's
    members' included; empty for a checkpoint as trained (or one ``auto`` left so)."""
    ad = meta.get("adaptation") or {}
    if ad.get("method") == "members":
        return [r for m in ad.get("members") or [] for r in adaptation_records({"adaptation": m})]
    return [] if not ad or ad.get("method") == "none" else [dict(ad)]


def adapted_already(meta: Mapping[str, Any]) -> str:
    """How a checkpoint (or one of an ensemble's members) was adapted by ``deep.adapt``, or
    ``""`` when it is as trained: an adapted checkpoint is not adapted again, since its
    features are no longer those its statistics describe."""
    return "; ".join(f"{r.get('method')} on {r.get('source', 'another batch')}"
                     for r in adaptation_records(meta))


def resolve_adapt_method(model: nn.Module, method: str) -> str:
    """What ``method`` can mean for this network before any image is seen: ``method``
    itself, or for ``"auto"``: ``"features"`` when every network carries its training
    features' statistics (``feature_shift``), else ``"bn"`` (:func:`adapt_network` then
    decides on the images whether ``features`` is applied).

    Raises
    ------
    ValueError
        An unknown method.
    """
    if method not in ADAPT_METHODS:
        raise ValueError(f"unknown adaptation {method!r}; choose from {ADAPT_METHODS}")
    if method != "auto":
        return method
    has_stats = all(getattr(n, "feature_shift", None) is not None for n in _networks(model))
    return "features" if has_stats else "bn"


def adapt_network(model: nn.Module, images: np.ndarray | torch.Tensor,
                  meta: Mapping[str, Any], *, method: str = "auto", batch_size: int = 64,
                  device: str | torch.device = "cpu", shift: np.ndarray | None = None
                  ) -> tuple[nn.Module, dict[str, Any]]:
    """Adapt ``model`` to unlabelled target images by ``method`` (one of
    :data:`ADAPT_METHODS`): the one entry of ``deep.adapt`` and ``deep.predict --adapt``.

    ``features``: :func:`standardize_head_inputs`; ``bn``: :func:`adapt_norm_statistics`;
    ``auto``: ``bn`` for a network without its training features' statistics (a checkpoint
    from before them), else ``features`` when the network's shift warning flags at least
    :data:`wbc_classic.evaluation.shift.AUTO_MAP_FLAGGED` of the images (the rule of the
    classical ``adapt``), and otherwise the model as it is: standardising a batch's features
    assumes the batch has the training images' class mix, which costs more than it gives on a
    lab like the training one.

    Parameters
    ----------
    model : nn.Module
        Left untouched.
    images : ndarray (N, S, S, 3) uint8, or tensor (N, 3, S, S) uint8
    meta : mapping
        The checkpoint's metadata: ``mean``, ``std``, and for ``auto`` its
        ``shift_threshold`` (none: ``features`` is applied, and the info says why).
    shift : ndarray of float, shape (N,), optional
        The images' shift scores by ``model`` as trained, when the caller has them already
        (``auto`` needs them; computed here otherwise).

    Returns
    -------
    model : nn.Module
        The adapted copy, or ``model`` itself when ``auto`` chose no adaptation.
    info : dict
        ``method`` (``"features"``, ``"bn"`` or ``"none"``), for ``auto`` on a network with
        feature statistics ``flagged`` (the share of the images flagged, None without a
        threshold), and a ``note`` when a choice needs saying.

    Raises
    ------
    ValueError
        Too few images, an unknown method, or a network the method cannot adapt.
    """
    mean, std = meta["mean"], meta["std"]
    used = resolve_adapt_method(model, method)
    info: dict[str, Any] = {}
    if method == "auto" and used == "features":
        from wbc_classic.evaluation.shift import AUTO_MAP_FLAGGED

        from .predict import predict_proba

        threshold = meta.get("shift_threshold")
        if threshold is None:
            info.update(flagged=None, note="the checkpoint has no shift threshold to decide "
                                           "by, so the features were standardised")
        else:
            if shift is None:
                _, shift = predict_proba(model, np.asarray(images), meta,
                                         batch_size=batch_size, device=device,
                                         return_shift=True)
            info["flagged"] = float(np.mean(shift > float(threshold)))
            if info["flagged"] < AUTO_MAP_FLAGGED:
                info["note"] = (f"only {100 * info['flagged']:.0f} % of the images look "
                                "unlike the training images, so the network is used as "
                                "trained")
                return model, {"method": "none", **info}
    if used == "features":
        return standardize_head_inputs(model, images, mean, std, batch_size=batch_size,
                                       device=device), {"method": used, **info}
    return adapt_norm_statistics(model, images, mean, std, batch_size=max(2, batch_size),
                                 device=device), {"method": used, **info}


def adapt_norm_statistics(model: nn.Module, images: np.ndarray | torch.Tensor,
                          mean: Sequence[float], std: Sequence[float], *,
                          batch_size: int = 64, device: str | torch.device = "cpu"
                          ) -> nn.Module:
    """A copy of ``model`` whose BatchNorm statistics are re-estimated on ``images`` (AdaBN).

    Every BatchNorm layer (any ``torch.nn.modules.batchnorm._BatchNorm``) has its running
    mean and variance reset and recomputed as the plain average over the target images
    (``momentum=None``), by forward passes under ``torch.no_grad`` with only the BatchNorm
    layers in training mode: dropout and everything else stay in eval mode, so the
    statistics are those of the network as it predicts. The weights are not changed. The
    batches are of equal size (within one image), so every image weighs the same.

    Parameters
    ----------
    model : nn.Module
        Left untouched (its copy is adapted).
    images : ndarray, shape (N, S, S, 3), uint8, or tensor (N, 3, S, S) uint8
        RGB target images, already at the model's size (:func:`deep.inputs.read_inputs` or
        :func:`deep.cache.prepare_image`); ``N >= MIN_ADAPT_IMAGES``.
    mean, std : sequence of 3 float
        The checkpoint's normalisation, applied as in :func:`deep.predict.predict_logits`.
    batch_size : int, default 64
        Images per forward pass, >= 2.
    device : str or torch.device

    Returns
    -------
    nn.Module
        The adapted copy on ``device``, in eval mode. A model without BatchNorm layers (ViT's
        LayerNorm, GroupNorm variants, VGG without BN) comes back as an unchanged copy and a
        warning is logged.

    Raises
    ------
    ValueError
        Fewer than :data:`MIN_ADAPT_IMAGES` images, or ``batch_size < 2``.
    """
    n = len(images)
    if n < MIN_ADAPT_IMAGES:
        raise ValueError(f"a target batch of {n} image{'s' if n != 1 else ''} is too few to "
                         "estimate the BatchNorm statistics (running mean and variance); "
                         f"need at least {MIN_ADAPT_IMAGES}")
    if batch_size < 2:
        raise ValueError(f"batch_size must be >= 2 to estimate batch statistics, got "
                         f"{batch_size}")
    device = torch.device(device)
    new = copy.deepcopy(model).to(device).eval()
    for net in _networks(new):  # a head input map was fitted to the features AdaBN moves
        if head_input_map(net) is not None:
            set_head_input_map(net, None)
    layers = batchnorm_layers(new)
    if not layers:
        logger.warning("%s has no BatchNorm layer: there are no normalisation statistics to "
                       "adapt; the model is used unchanged",
                       getattr(model, "arch", type(model).__name__))
        return new
    momenta = [bn.momentum for bn in layers]
    for bn in layers:
        bn.reset_running_stats()
        bn.momentum = None  # cumulative average over the batches
        bn.train()
    # equal-sized batches: the cumulative average weighs each batch the same, so a small last
    # batch would weigh its few images more (and a batch of one has no variance)
    n_batches = -(-n // batch_size)
    with torch.no_grad():
        for idx in np.array_split(np.arange(n), n_batches):
            xb = images[int(idx[0]):int(idx[-1]) + 1]
            xb = torch.from_numpy(np.ascontiguousarray(xb)) if isinstance(xb, np.ndarray) \
                else xb
            new(normalize_batch(xb.to(device), mean, std))
    for bn, m in zip(layers, momenta, strict=True):
        bn.momentum = m
    logger.info("re-estimated the statistics of %d BatchNorm layers on %d images",
                len(layers), n)
    return new.eval()


# ----------------------------------------------------------------------------- command line

EXAMPLE = """example:
  python -m deep.adapt --checkpoint runs/wbcnet64/best.pt --images lab2/cells/ \\
      --out runs/wbcnet64/best-lab2.pt [--method auto|features|bn]
  python -m deep.predict --checkpoint runs/wbcnet64/best-lab2.pt lab2/cells/ --out preds.csv
"""


def build_parser() -> argparse.ArgumentParser:
    """The ``python -m deep.adapt`` argument parser."""
    from wbc_classic.io.options import int_range

    from .inputs import CELL_CHECKS

    p = argparse.ArgumentParser(
        prog="python -m deep.adapt", epilog=EXAMPLE,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Adapt a deep checkpoint to another laboratory's unlabelled images and "
                    "save a new checkpoint: move the features its head receives onto the "
                    "training images' mean and spread (features), or re-estimate its "
                    "BatchNorm statistics on them (bn, AdaBN).")
    p.add_argument("--checkpoint", required=True, type=Path, help="best.pt / last.pt to adapt")
    p.add_argument("--images", required=True, nargs="+", metavar="IMAGES_OR_DIRS",
                   help="the lab's unlabelled single-leukocyte images and/or folders "
                        f"(searched recursively; at least {MIN_ADAPT_IMAGES} usable)")
    p.add_argument("--out", required=True, type=Path,
                   help="adapted checkpoint to write (atomically)")
    p.add_argument("--method", choices=ADAPT_METHODS, default="auto",
                   help="features: standardise the head's input features to the training "
                        "images' (at least 20 images of the lab's usual mix); bn: AdaBN (at "
                        "least 8); auto (default): features when the checkpoint holds its "
                        "training features' statistics and its shift warning flags at least "
                        "half the images, the network as trained when it flags fewer, bn for "
                        "older checkpoints")
    p.add_argument("--batch-size", type=int_range(2, 4096), default=64,
                   help="images per forward pass (default 64)")
    p.add_argument("--device", default=None, help="cpu / cuda (default: cuda if present)")
    p.add_argument("--cell-check", choices=CELL_CHECKS, default="segment",
                   help="how an image without a leukocyte is recognised and left out: "
                        "segment (default, the classical segmenter), contrast (blank "
                        "images only, cheap) or off")
    return p


def main(argv: list[str] | None = None) -> int:
    """Entry point; exit code 0 written, 1 written but some images skipped, 2 usage."""
    from wbc_classic.io.atomic import OutputError, check_output_file
    from wbc_classic.io.options import (
        EXIT_FAILED_INPUTS,
        EXIT_OK,
        EXIT_USAGE,
        log_to_stderr,
    )
    from wbc_classic.io.predictions import expand_inputs, failed_lines
    from wbc_classic.io.progress import Progress

    from .checkpoint import load_model, save_checkpoint
    from .device import resolve_device
    from .inputs import read_inputs

    a = build_parser().parse_args(argv)
    try:
        check_output_file(a.out, "--out")
        device = resolve_device(a.device)
        model, meta = load_model(a.checkpoint, device=device)
    except (OutputError, FileNotFoundError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    done_before = adapted_already(meta)
    if done_before:
        print(f"error: {a.checkpoint} is adapted already ({done_before}); adapt the "
              "checkpoint as trained instead", file=sys.stderr)
        return EXIT_USAGE
    method = resolve_adapt_method(model, a.method)
    n_layers = len(batchnorm_layers(model))
    # nothing to adapt: say so before reading any image
    if method == "bn" and not n_layers:
        why = " (and no statistics of its training features for --method features: trained " \
              "before them)" if a.method == "auto" else ""
        print(f"error: {a.checkpoint}: {meta['model']} has no BatchNorm layer, so it has no "
              "normalisation statistics to adapt (LayerNorm/GroupNorm networks normalise "
              f"each image by itself){why}; use it as it is", file=sys.stderr)
        return EXIT_USAGE
    if method == "features" and resolve_adapt_method(model, "auto") != "features":
        print(f"error: {a.checkpoint}: {meta['model']} carries no statistics of its training "
              "images' features (a checkpoint trained before them), so --method features "
              "has nothing to map them onto; use --method bn or retrain", file=sys.stderr)
        return EXIT_USAGE
    paths = expand_inputs(a.images)
    source = " ".join(str(i) for i in a.images)
    if not paths:
        print(f"error: no image files found in {source} (empty folder?)", file=sys.stderr)
        return EXIT_USAGE
    rows, parts = [], []
    with Progress(total=len(paths), desc="read", unit="img") as bar:
        for s in range(0, len(paths), a.batch_size):
            chunk_rows, chunk = read_inputs(paths[s:s + a.batch_size], meta,
                                            cell_check=a.cell_check)
            rows += chunk_rows
            parts.append(chunk)
            bar.update(len(chunk_rows))
    images = np.concatenate(parts)
    skipped = failed_lines(rows)
    if skipped:
        print(f"{len(paths) - len(images)} of {len(paths)} images skipped:", file=sys.stderr)
        for line in skipped:
            print(line, file=sys.stderr)
    try:
        with log_to_stderr():
            new, info = adapt_network(model, images, meta, method=a.method,
                                      batch_size=a.batch_size, device=device)
    except ValueError as exc:
        print(f"error: cannot adapt to the {len(images)} usable of {len(paths)} images in "
              f"{source}: {exc}", file=sys.stderr)
        return EXIT_USAGE
    method = info["method"]
    record = {"n_images": int(len(images)), "source": source,
              "adapted_from": str(a.checkpoint),
              **({"flagged": info["flagged"]} if "flagged" in info else {})}
    if method == "none":  # auto: the images look like the training images
        meta = {**meta, "adaptation": {"method": "none", **record, "note": info["note"]}}
        done = f"not adapted (auto: {info['note']}) to {len(images)} unlabelled images"
    elif method == "bn":
        # the shift scorer was fitted on the trained network's features, and AdaBN moves them
        # even on images like the training ones: an adapted network's flags would mean nothing
        meta = {**meta, "shift_threshold": None,
                "adaptation": {"method": "bn-statistics", **record,
                               "n_layers": int(n_layers)}}
        done = f"BatchNorm statistics re-estimated (AdaBN) on {len(images)} unlabelled images"
    else:
        # the backbone is unchanged and the shift score is of its features (before the map):
        # the threshold still holds
        meta = {**meta, "adaptation": {"method": "head-inputs", **record}}
        done = (f"head input features standardised to the training images' on {len(images)} "
                "unlabelled images")
    if isinstance(meta.get("card"), dict):  # the card's scores are the unadapted network's
        card = dict(meta["card"])
        card["model"] = {**card.get("model", {}), "file": a.out.name}
        card["note"] = (f"{done} of {source} by python -m deep.adapt from {a.checkpoint}; the "
                        "scores are those of the network before adaptation")
        meta["card"] = card
    try:
        save_checkpoint(a.out, new, meta)
    except OSError as exc:
        print(f"error: cannot write {a.out}: {exc}", file=sys.stderr)
        return EXIT_USAGE
    if method == "none":
        print(f"not adapted: {info['note']} (auto); the checkpoint is written as it is, with "
              f"the check recorded -> {a.out}")
    else:
        what = f"{n_layers} BatchNorm layers" if method == "bn" else \
            "the head's input features"
        flagged = "" if info.get("flagged") is None else \
            f"; {100 * info['flagged']:.0f} % of them flagged by the shift warning"
        print(f"adapted {what} ({method}) to {len(images)} of {len(paths)} images{flagged} "
              f"-> {a.out}")
    return EXIT_FAILED_INPUTS if len(images) < len(paths) else EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
