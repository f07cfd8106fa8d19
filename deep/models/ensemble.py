"""Ensembles of zoo models: soft voting or stacking.

``Ensemble`` returns *log* of the combined class probabilities, so it plugs into the same
cross-entropy training (stacking) and softmax inference (``softmax(log p) = p``) as every model.

* ``mode="soft"``: mean of the members' softmax probabilities (optionally weighted); nothing to
  train -- build it from trained checkpoints with :func:`ensemble_from_checkpoints`.
* ``mode="stack"``: a linear layer over the concatenated member log-probabilities, trained while
  the members stay frozen (``freeze_members=True``).
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ._common import check_img_size, check_in_chans, check_num_classes, guarded, set_meta

__all__ = ["Ensemble", "ensemble", "ensemble_from_checkpoints"]


class Ensemble(nn.Module):
    """Combine member models (each mapping (N, 3, H, W) -> logits (N, C))."""

    vote_weights: torch.Tensor
    stack: nn.Linear | None

    def __init__(self, members: Sequence[nn.Module], num_classes: int, mode: str = "soft",
                 weights: Sequence[float] | None = None, freeze_members: bool = True) -> None:
        super().__init__()
        if not members:
            raise ValueError("ensemble: give at least one member model")
        if mode not in ("soft", "stack"):
            raise ValueError(f"ensemble: mode must be 'soft' or 'stack', got {mode!r}")
        self.members = nn.ModuleList(members)
        self.mode = mode
        w = torch.ones(len(members)) if weights is None else torch.as_tensor(weights,
                                                                             dtype=torch.float)
        if len(w) != len(members) or (w < 0).any() or w.sum() <= 0:
            raise ValueError("ensemble: weights must be non-negative, one per member")
        self.register_buffer("vote_weights", w / w.sum())
        self.stack = nn.Linear(len(members) * num_classes, num_classes) if mode == "stack" \
            else None
        self.freeze_members = freeze_members
        if freeze_members and mode == "stack":
            for p in self.members.parameters():
                p.requires_grad_(False)

    def train(self, mode: bool = True):
        super().train(mode)
        if self.freeze_members and self.mode == "stack":
            self.members.eval()  # frozen members keep their BN statistics
        return self

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        logp = [F.log_softmax(m(x).float(), dim=1) for m in self.members]
        if self.mode == "soft":
            p = torch.zeros_like(logp[0])
            for w, lp in zip(self.vote_weights, logp, strict=True):
                p = p + w * lp.exp()
            return torch.log(p.clamp_min(1e-12))
        assert self.stack is not None  # mode == "stack"
        return self.stack(torch.cat(logp, 1))


def ensemble(*, num_classes: int = 8, weights=None, img_size: int = 64, in_chans: int = 3,
             members: Sequence[str | nn.Module] = ("vgg19", "xception", "unet"),
             mode: str = "soft", vote_weights: Sequence[float] | None = None,
             member_kwargs: Sequence[dict] | None = None,
             freeze_members: bool = True) -> nn.Module:
    """Build an ensemble of zoo models (names are built untrained; pass trained modules or use
    :func:`ensemble_from_checkpoints`). ``weights`` may be a state dict file of the ensemble."""
    from ..pretrained import apply_weights
    from . import get_model

    check_num_classes("ensemble", num_classes)
    img_size = check_img_size("ensemble", img_size, 8)
    in_chans = check_in_chans("ensemble", in_chans)
    kw = list(member_kwargs) if member_kwargs is not None else [{} for _ in members]
    if len(kw) != len(members):
        raise ValueError("ensemble: member_kwargs needs one dict per member")
    mods = [get_model(m, num_classes=num_classes, img_size=img_size,
                      **{"in_chans": in_chans, **k})
            if isinstance(m, str) else m for m, k in zip(members, kw, strict=True)]
    for m in mods:
        if int(getattr(m, "in_chans", 3)) != in_chans:
            raise ValueError(f"ensemble: member {getattr(m, 'arch', type(m).__name__)} takes "
                             f"{getattr(m, 'in_chans', 3)} input channels, not {in_chans}")
    model = Ensemble(mods, num_classes, mode, vote_weights, freeze_members)
    apply_weights(model, weights, "ensemble", None, lambda m: None)
    set_meta(model, arch="ensemble", img_size=img_size,
             head="stack" if mode == "stack" else "members", in_chans=in_chans)
    return guarded(model, "ensemble", 8)


def ensemble_from_checkpoints(paths: Sequence[str | os.PathLike[str]], mode: str = "soft",
                              vote_weights: Sequence[float] | None = None
                              ) -> tuple[nn.Module, dict]:
    """Soft-voting/stacking ensemble of trained checkpoints (same classes and image size).

    Returns the ensemble and checkpoint metadata whose ``model_kwargs`` rebuild it (so
    :func:`deep.checkpoint.save_checkpoint` / ``load_model`` round-trip it). Members keep their
    own normalisation only if it matches: all members must share mean/std (they do when trained
    on the same Split). The metadata's ``shift_threshold`` is the largest of the members' (None
    when a member has none, or when the members' ``shift_method`` differ: their thresholds are
    then in different units, and the ensemble's score falls back to the energy, which every
    member can give).
    """
    from ..checkpoint import load_model

    loaded = [load_model(p) for p in paths]
    metas = [m for _, m in loaded]
    ref = metas[0]
    for p, m in zip(paths, metas, strict=True):
        if list(m["classes"]) != list(ref["classes"]) or m["img_size"] != ref["img_size"]:
            raise ValueError(f"ensemble: {p} has different classes or image size than {paths[0]}")
        if any(abs(a - b) > 1e-3 for a, b in zip(m["mean"] + m["std"],
                                                  ref["mean"] + ref["std"], strict=True)):
            raise ValueError(f"ensemble: {p} was trained with a different normalisation")
    member_kwargs: list[dict] = [m.get("model_kwargs", {}) for m in metas]
    in_chans = int(getattr(loaded[0][0], "in_chans", 3))
    kwargs = {"members": [m["model"] for m in metas], "mode": mode,
              "vote_weights": list(vote_weights) if vote_weights is not None else None,
              "member_kwargs": member_kwargs, "in_chans": in_chans}
    model = ensemble(num_classes=len(ref["classes"]), img_size=ref["img_size"],
                     in_chans=in_chans, members=[m for m, _ in loaded], mode=mode,
                     vote_weights=vote_weights, member_kwargs=member_kwargs)
    # an image no member flags is never flagged: the ensemble's shift score is the
    # vote-weighted mean of the members' scores (deep.predict.predict_proba), at most the
    # largest threshold when every member is below its own
    methods = {m.get("shift_method", "energy") for m in metas}
    thresholds = [m.get("shift_threshold") for m in metas]
    threshold = None if None in thresholds or len(methods) > 1 else \
        max(float(t) for t in thresholds if t is not None)
    if mode != "soft":  # a stacked ensemble is one network: its members' scorers do not apply
        methods, threshold = {"energy"}, None
    adapted = [m.get("adaptation") for m in metas]
    meta = dict(ref, model="ensemble", model_kwargs=kwargs, shift_val_scores=None,
                shift_threshold=threshold,
                shift_method=methods.pop() if len(methods) == 1 else "energy",
                adaptation={"method": "members", "members": adapted} if any(adapted)
                else None)
    return model, meta
