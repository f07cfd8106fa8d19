"""Train a zoo model on the project's shared Split: the one deep training entry.

Python API
----------
``train_on_split(cfg, images_or_paths, labels, split, classes=...)`` -- the one entry that
every caller uses (this module's CLI, ``benchmarks.run``, ``benchmarks.cross_lab``): it builds
the network, fits the stain normaliser and decodes+resizes once into the cache (when given
paths), holds out a validation part when the Split has none, trains with early stopping and
returns a :class:`TrainResult` (model with its best weights,
:class:`deep.checkpoint.CheckpointMeta`, per-epoch history). ``train(TrainConfig(...))`` --
the command's pipeline around it (load class folders, make/load the Split, score the test
part, write ``result.json``).
``fit(model, train_ds, val_ds, config, ...)`` -- the training loop alone over any
:class:`deep.data.ArrayDataset`.

Command line
------------
::

    python -m deep.train --data ../shared/data/pbc --model wbcnet --img-size 64 \\
        --epochs 30 --out runs/wbcnet64

    # several processes (CPU: gloo, GPU: nccl)
    torchrun --nproc_per_node 2 -m deep.train --data ../shared/data/pbc --out runs/ddp

    # for one lab: align the features to its unlabelled images while training (Deep CORAL)
    python -m deep.train --data ../shared/data/pbc --recipe lab --crop cell \
        --align-weight 1 --align-data my_lab/cells/ --out runs/wbcnet-mylab

Every flag is one :class:`TrainConfig` field (``--img-size`` is ``img_size``; ``--help`` lists
them with their defaults). Outputs in ``--out``: ``best.pt`` (lowest validation loss),
``last.pt`` (resumable with ``--resume``), ``metrics.jsonl`` (one JSON line per epoch),
``result.json`` (test scores), ``split.json`` (the Split used), ``config.json``.
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import json
import logging
import math
import os
import random
import sys
import tempfile
import time
import typing
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import numpy as np
import torch
import torch.distributed as dist
from torch import nn
from torch.utils.data import DataLoader, DistributedSampler

from wbc_classic.data.split import scheme_argument
from wbc_classic.io.options import (
    EXIT_FAILED_INPUTS,
    EXIT_OK,
    EXIT_USAGE,
    NamesAction,
    float_range,
    int_range,
    json_object,
    log_to_stderr,
)

from .adapt import SHIFT_QUANTILE, energy_score
from .checkpoint import CheckpointMeta, load_checkpoint, save_checkpoint, update_meta
from .data import (
    ArrayDataset,
    build_augmentation,
    channel_stats,
    class_weights,
    normalize_batch,
    stratified_holdout,
)
from .models import get_model
from .predict import predict_logits

logger = logging.getLogger(__name__)

__all__ = ["TrainConfig", "TrainResult", "accel_settings", "build_parser", "evaluate", "fit",
           "main", "model_cost", "predict_logits", "set_seed", "shift_calibration",
           "still_improving", "train", "train_on_split"]


def _opt(default: Any = None, help: str = "", *, factory: Any = None, **cli: Any) -> Any:
    """A :class:`TrainConfig` field with its command-line help (and flag options) attached."""
    meta = {"help": help, **cli}
    if factory is not None:
        return field(default_factory=factory, metadata=meta)
    return field(default=default, metadata=meta)


@dataclass
class TrainConfig:
    """Every setting of a training run (JSON-able; saved as ``config.json``).

    The ``python -m deep.train`` flags are built from these fields (:func:`build_parser`):
    each field's ``metadata["help"]`` is its help text.
    """

    data: str | None = _opt(None, "root with one folder per class, or a MedMNIST .npz (e.g. "
                            "bloodmnist_64.npz: its official train/val/test split)",
                            required=True)
    out: str = _opt("runs/deep", "output directory")
    model: str = _opt("wbcnet", "zoo model name (deep.models.list_models())")
    model_kwargs: dict[str, Any] = _opt(
        factory=dict, help='builder keyword arguments as JSON, e.g. \'{"width": 0.5}\'')
    img_size: int = _opt(64, "input side in pixels", type=int_range(8, 1024))
    crop: str = _opt("center", "'center': centre square; 'none': stretched image; 'cell': "
                     "fixed-size square around the segmented leukocyte, surroundings blanked "
                     "(cross-lab robustness)", choices="crops")
    crop_options: dict[str, Any] = _opt(
        factory=dict, help='JSON options of the cell crop (wbc_classic.preprocess.cellcrop), '
                           'e.g. \'{"side_um": 25}\'')
    stain: str = _opt("none", "stain normalisation fitted on 50 training images, stored in "
                      "the checkpoint and applied by deep.predict", choices="stains")
    classes: list[str] | None = _opt(None, "class folders to use, in label order, space- or "
                                     "comma-separated (default: every folder)",
                                     action=NamesAction, metavar="CLASS")
    split: str = _opt("80/20", "split scheme: 80/20, 90/10 or 50/25/25", type=scheme_argument)
    split_seed: int = _opt(0, "seed of the split and of the validation hold-out",
        type=int_range(0, 2**32 - 1))
    split_file: str | None = _opt(None, "a saved Split JSON to reuse (split.json of a run)")
    val_fraction: float = _opt(0.1, "fraction of the train part held out for early stopping "
                               "when the split has no validation part", type=float_range(0, 0.9))
    epochs: int = _opt(30, "maximum number of epochs", type=int_range(1, 100_000))
    batch_size: int = _opt(64, "training batch size", type=int_range(1, 65_536))
    optimizer: str = _opt("adamw", "optimiser", choices=("adamw", "adam", "sgd"))
    lr: float = _opt(2e-3, "peak learning rate (after warm-up)",
        type=float_range(0, 10, lo_open=True))
    weight_decay: float = _opt(0.05, "weight decay of the weights (not of biases and norms)",
        type=float_range(0, 10))
    warmup_epochs: float = _opt(1.0, "linear learning-rate warm-up, in epochs",
        type=float_range(0, 1000))
    scheduler: str = _opt("cosine", "learning-rate schedule after warm-up ('step': times "
                          "--lr-gamma at each of --lr-milestones)",
                          choices=("cosine", "plateau", "step", "none"))
    min_lr_ratio: float = _opt(0.01, "final learning rate of the cosine, as a fraction of lr")
    patience: int = _opt(8, "early stopping patience in epochs on the validation loss "
                         "(0 = off)", type=int_range(0))
    label_smoothing: float = _opt(0.1, "label smoothing of the training loss",
        type=float_range(0, 1, hi_open=True))
    align_weight: float = _opt(0.0, "weight of the feature-alignment loss (Deep CORAL: the "
                               "mean and covariance of what the head receives) between the "
                               "training images and unlabelled images of the target lab "
                               "(train_on_split's align_images); 0 = off",
                               type=float_range(0))
    align_data: str | None = _opt(None, "folder of unlabelled images of the lab the network "
                                  "is for (with --align-weight; prepared as the training "
                                  "images are)")
    use_class_weights: bool = _opt(False, "weight the loss by balanced class weights",
                                   flag="--class-weights")
    augment: dict[str, Any] = _opt(
        factory=dict, help='JSON kwargs of deep.data.build_augmentation, e.g. '
                           '\'{"rotation": 90}\'')
    no_augment: bool = _opt(False, "train without augmentation")
    pretrained: str | None = _opt(None, "'imagenet' (from the local torch hub cache) or a "
                                  ".pth file")
    freeze_epochs: int = _opt(0, "with --pretrained: epochs training the head only",
        type=int_range(0))
    unfreeze_last: int = _opt(0, "phase 2: train the last N layers (0 = all)", type=int_range(0))
    seed: int = _opt(0, "seed of weights, shuffling and augmentation", type=int_range(0, 2**32 - 1))
    num_workers: int = _opt(0, "DataLoader worker processes", type=int_range(0, 256))
    cache_dir: str | None = _opt(None, "decoded-image cache folder (default $WBC_CACHE_DIR "
                                 "or .wbc_cache)")
    resume: bool = _opt(False, "continue from OUT/last.pt (same learning-rate schedule)")
    max_minutes: float | None = _opt(None, "training time budget in minutes: the cosine "
                                     "follows elapsed time, training stops at the budget",
        type=float_range(0, lo_open=True))
    tta: bool = _opt(True, "score the test part also with 4-flip test-time augmentation")
    amp: bool = _opt(True, "mixed precision (CUDA only)")
    channels_last: bool = _opt(True, "channels-last memory format (CUDA only)")
    device: str | None = _opt(None, "cpu, cuda, cuda:1 (default: cuda when available)")
    threads: int | None = _opt(None, "torch CPU threads", type=int_range(1, 1024))
    progress: bool = _opt(True, "progress bars")
    recipe: str = _opt("default", "named training settings of a paper (deep.recipes: "
                       "default, medmnist-v2, aljader, lab); flags given explicitly override "
                       "it",
                       choices="recipes")
    lr_milestones: list[float] = _opt(
        factory=list, help="--scheduler step: fractions of the training (0..1) after which "
                           "the rate is multiplied by --lr-gamma", type=float)
    lr_gamma: float = _opt(0.1, "--scheduler step: factor at each milestone")

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


# ----------------------------------------------------------------------------- utilities

def set_seed(seed: int) -> None:
    """Seed python, numpy and torch (all devices)."""
    random.seed(seed)
    np.random.seed(seed % (2**32))  # noqa: NPY002 -- third-party code may use the global RNG
    torch.manual_seed(seed)


def _dist_info() -> tuple[int, int, int]:
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", 0))
    return 0, 1, 0


def _maybe_init_distributed(device: str | None) -> None:
    if int(os.environ.get("WORLD_SIZE", "1")) > 1 and not dist.is_initialized():
        use_cuda = torch.cuda.is_available() and (device is None or device.startswith("cuda"))
        dist.init_process_group(backend="nccl" if use_cuda else "gloo")
        if use_cuda:
            torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", 0)))


def _device(name: str | None) -> torch.device:
    if name:
        return torch.device(name)
    if torch.cuda.is_available():
        return torch.device("cuda", _dist_info()[2])
    return torch.device("cpu")


#: Fraction of a time budget by which the warm-up is over, however few steps that is: a
#: network that gets less than its warm-up epoch in its budget still trains at its full rate.
TIME_WARMUP = 0.05


def lr_factor(step: int, total: int, warmup: int, min_ratio: float = 0.01,
              cosine: bool = True, progress: float | None = None,
              milestones: Sequence[float] | None = None, gamma: float = 0.1) -> float:
    """Linear warm-up for ``warmup`` steps, then cosine annealing to ``min_ratio`` (or, with
    ``milestones``, a step schedule: ``gamma`` per milestone passed, as fractions of training).

    ``progress`` (0..1, e.g. the elapsed fraction of a time budget) overrides ``step / total``
    when it is further along, so a time-budgeted run still anneals fully before it stops; it
    also ends the warm-up once it reaches :data:`TIME_WARMUP`.
    """
    if warmup > 0 and step < warmup:
        f = (step + 1) / warmup
        if progress is None:
            return f
        if progress < TIME_WARMUP:
            return max(f, progress / TIME_WARMUP)
    if milestones is not None:
        frac = max(step / max(1, total), progress or 0.0)
        return float(gamma ** sum(frac >= m for m in milestones))
    if not cosine:
        return 1.0
    t = (step - warmup) / max(1, total - warmup)
    if progress is not None:
        w = warmup / max(1, total)
        t = max(t, (progress - w) / max(1e-9, 1 - w))
    t = min(max(t, 0.0), 1.0)
    return min_ratio + (1 - min_ratio) * 0.5 * (1 + math.cos(math.pi * t))


def head_parameters(model: nn.Module) -> list[nn.Parameter]:
    """Parameters of the classification head (``model.head_name``)."""
    base = cast(nn.Module, model.module) if hasattr(model, "module") else model
    head = base.get_submodule(getattr(base, "head_name", "head"))
    return list(head.parameters())


def set_trainable(model: nn.Module, phase: str, last_n: int = 0) -> int:
    """Two-phase fine-tuning: ``"head"`` freezes all but the head; ``"last"`` also unfreezes
    the last ``last_n`` parameterised leaf layers (``last_n=0``: everything). Returns the number
    of trainable tensors."""
    base = cast(nn.Module, model.module) if hasattr(model, "module") else model
    if phase == "all" or (phase == "last" and last_n <= 0):
        for p in base.parameters():
            p.requires_grad_(True)
    else:
        for p in base.parameters():
            p.requires_grad_(False)
        for p in head_parameters(base):
            p.requires_grad_(True)
        if phase == "last":
            leaves = [m for m in base.modules()
                      if not list(m.children()) and any(True for _ in m.parameters(False))]
            for m in leaves[-last_n:]:
                for p in m.parameters():
                    p.requires_grad_(True)
    return sum(p.requires_grad for p in base.parameters())


def _make_optimizer(cfg: TrainConfig, model: nn.Module) -> torch.optim.Optimizer:
    decay: list[nn.Parameter] = []
    no_decay: list[nn.Parameter] = []
    for n, p in model.named_parameters():
        (no_decay if p.ndim <= 1 or n.endswith(".bias") else decay).append(p)
    groups = [{"params": decay, "weight_decay": cfg.weight_decay},
              {"params": no_decay, "weight_decay": 0.0}]
    if cfg.optimizer.lower() == "adamw":
        return torch.optim.AdamW(groups, lr=cfg.lr)
    if cfg.optimizer.lower() == "adam":
        return torch.optim.Adam(groups, lr=cfg.lr)
    if cfg.optimizer.lower() == "sgd":
        return torch.optim.SGD(groups, lr=cfg.lr, momentum=0.9, nesterov=True)
    raise ValueError(f"unknown optimizer {cfg.optimizer!r} (adamw, adam, sgd)")


def accel_settings(device: torch.device | str, *, amp: bool = True,
                   channels_last: bool = True) -> tuple[bool, bool]:
    """Whether training on ``device`` uses mixed precision and the channels-last layout.

    Both pay off on CUDA only (tensor cores, cuDNN's NHWC kernels); on the CPU they are off
    whatever is asked, so a command written for a GPU runs unchanged on a laptop.

    Returns
    -------
    amp, channels_last : bool
    """
    is_cuda = torch.device(device).type == "cuda"
    return bool(is_cuda and amp), bool(is_cuda and channels_last)


@torch.no_grad()
def evaluate(model: nn.Module, ds: ArrayDataset, mean: Sequence[float], std: Sequence[float],
             criterion: nn.Module, device: torch.device | str,
             batch_size: int = 256) -> dict[str, float]:
    """Mean loss and accuracy of ``model`` over the (unaugmented) samples of ``ds``.

    The logits come from :func:`deep.predict.predict_logits`, the one prediction loop.
    """
    z = predict_logits(model, np.asarray(ds.images[ds.indices]), mean, std,
                       batch_size=batch_size, device=device)
    y = torch.from_numpy(ds.labels)
    if len(y) == 0:
        return {"loss": 0.0, "acc": 0.0}
    zt = torch.from_numpy(z)
    return {"loss": float(criterion(zt, y)), "acc": float((zt.argmax(1) == y).float().mean())}


def still_improving(history: Sequence[Mapping[str, Any]], last: int = 2) -> bool:
    """True when the monitored loss (validation, else training) reached its minimum within
    the ``last`` epochs: the network was still learning when training stopped."""
    key = "val_loss" if history and "val_loss" in history[-1] else "train_loss"
    losses = [float(r[key]) for r in history if key in r]
    if len(losses) < 2:
        return True
    return int(np.argmin(losses)) >= len(losses) - last


def model_cost(name: str, *, num_classes: int, img_size: int,
               **kwargs: Any) -> dict[str, int]:
    """Parameters and forward FLOPs (one image) of zoo model ``name`` at ``img_size``.

    FLOPs are counted by ``torch.utils.flop_counter`` (a multiply-add is 2 FLOPs), on the CPU,
    so they do not depend on the machine: a stable measure of a network's cost (the
    benchmark shares a time budget by it).

    Returns
    -------
    dict
        ``{"n_parameters": int, "flops": int}``.
    """
    from torch.utils.flop_counter import FlopCounterMode

    model = get_model(name, num_classes=num_classes, img_size=img_size, **kwargs).eval()
    x = torch.zeros(1, 3, img_size, img_size)
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        model(x)
    return {"n_parameters": int(sum(p.numel() for p in model.parameters())),
            "flops": int(counter.get_total_flops())}


# ----------------------------------------------------------------------------- the loop

def coral_loss(source: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Deep CORAL's distance of two batches of features, with the distance of their means.

    ``||C_s - C_t||_F^2 / (4 F^2) + ||m_s - m_t||^2 / F`` for feature batches of F columns,
    ``C`` their covariances and ``m`` their means (Sun & Saenko 2016, "Deep CORAL:
    correlation alignment for deep domain adaptation", ECCV workshops; the mean term is the
    linear-kernel MMD). Differentiable in both.

    Parameters
    ----------
    source, target : tensor of float, shapes (n, F) and (m, F), n, m >= 2

    Returns
    -------
    tensor, shape ()
    """
    f = source.shape[1]

    def cov(x: torch.Tensor) -> torch.Tensor:
        c = x - x.mean(0, keepdim=True)
        return c.T @ c / (x.shape[0] - 1)

    return (((cov(source) - cov(target)) ** 2).sum() / (4 * f * f)
            + ((source.mean(0) - target.mean(0)) ** 2).sum() / f)


def _forever(loader: DataLoader) -> Any:
    """The loader's batches, epoch after epoch."""
    while True:
        yield from loader


def fit(model: nn.Module, train_ds: ArrayDataset, val_ds: ArrayDataset | None,
        cfg: TrainConfig, *, meta: CheckpointMeta | Mapping[str, Any],
        out: str | os.PathLike[str] | None = None,
        device: torch.device | None = None,
        align_ds: ArrayDataset | None = None) -> dict[str, Any]:
    """Train ``model`` in place; return ``{"history", "best_epoch", "best_val_loss",
    "train_seconds", "stop_reason", "epochs_run"}``.

    Parameters
    ----------
    model : nn.Module
        Maps normalised float (N, 3, H, W) to logits.
    train_ds, val_ds : ArrayDataset
        uint8 samples; ``train_ds.transform`` holds the augmentation. ``val_ds`` may be None
        (then the training loss drives checkpoint selection and early stopping is off).
    cfg : TrainConfig
    meta : CheckpointMeta or dict
        Checkpoint metadata (``model``, ``classes``, ``img_size``, ``mean``, ``std``, ...).
    out : path-like, optional
        Directory for ``best.pt``, ``last.pt`` and ``metrics.jsonl`` (rank 0 only).
        ``cfg.resume`` continues from ``out/last.pt``: weights, optimiser state and the
        position in the learning-rate schedule.
    device : torch.device, optional
    align_ds : ArrayDataset, optional
        Unlabelled images of the lab the network is for (labels ignored; the training
        augmentation applies). With ``cfg.align_weight > 0`` every step also forwards a
        batch of them, and ``cfg.align_weight`` times :func:`coral_loss` between the two
        batches' head inputs joins the loss: the backbone learns features whose statistics
        are the same in both labs.

    Notes
    -----
    With ``cfg.max_minutes`` the run stops at the budget, also in the middle of an epoch
    (single process): that last epoch's row has ``"fraction"`` < 1 and is still validated
    and checkpointed. ``stop_reason`` is ``"epochs"``, ``"early_stopping"`` or
    ``"time_budget"``.
    """
    meta = CheckpointMeta.from_dict(meta)
    rank, world, _ = _dist_info()
    device = device or _device(cfg.device)
    is_cuda = device.type == "cuda"
    use_amp, use_cl = accel_settings(device, amp=cfg.amp, channels_last=cfg.channels_last)
    model.to(device)
    if use_cl:
        model.to(memory_format=torch.channels_last)
    mean, std = meta.mean, meta.std
    n_classes = len(meta.classes)
    weight = None
    if cfg.use_class_weights:
        weight = torch.from_numpy(class_weights(train_ds.labels, n_classes)).to(device)
    criterion = nn.CrossEntropyLoss(weight=weight, label_smoothing=cfg.label_smoothing)
    val_criterion = nn.CrossEntropyLoss()
    ddp_model: nn.Module = model
    if world > 1:
        ddp_model = nn.parallel.DistributedDataParallel(
            model, device_ids=[device.index] if is_cuda else None)
    sampler: DistributedSampler | None = (
        DistributedSampler(train_ds, shuffle=True, seed=cfg.seed, drop_last=True)
        if world > 1 else None)
    g = torch.Generator()
    g.manual_seed(cfg.seed)
    loader = DataLoader(train_ds, batch_size=cfg.batch_size, shuffle=sampler is None,
                        sampler=sampler, num_workers=cfg.num_workers, drop_last=len(train_ds)
                        > cfg.batch_size, generator=g, pin_memory=is_cuda,
                        persistent_workers=cfg.num_workers > 0)
    has_val = val_ds is not None and len(val_ds) > 0
    aligning = align_ds is not None and len(align_ds) > 1 and cfg.align_weight > 0
    head_in: list[torch.Tensor] = []
    if aligning:
        assert align_ds is not None
        if world > 1:
            raise ValueError("feature alignment (align_weight) runs in one process")
        g_align = torch.Generator()
        g_align.manual_seed(cfg.seed + 1)
        align_batches = _forever(DataLoader(
            align_ds, batch_size=min(cfg.batch_size, len(align_ds)), shuffle=True,
            drop_last=True, generator=g_align, num_workers=cfg.num_workers))
        head_name = getattr(model, "head_name", None)
        if not head_name:
            raise ValueError(f"{type(model).__name__} has no head_name: feature alignment "
                             "needs a model built by deep.models.get_model")
        # what the head receives, with its gradient (deep.adapt.head_inputs detaches)
        hook = model.get_submodule(head_name).register_forward_pre_hook(
            lambda _m, inputs: head_in.append(inputs[0].flatten(1)))
    optimizer = _make_optimizer(cfg, ddp_model)
    # the schedule's base rates come from the settings, never from a (resumed) optimiser
    # whose rates are already scaled by the schedule
    base_lrs = [grp["lr"] for grp in optimizer.param_groups]
    plateau = torch.optim.lr_scheduler.ReduceLROnPlateau(optimizer, factor=0.3, patience=2) \
        if cfg.scheduler == "plateau" else None
    steps_per_epoch = max(1, len(loader))
    total_steps = cfg.epochs * steps_per_epoch
    warmup = int(round(cfg.warmup_epochs * steps_per_epoch))
    scaler = torch.amp.GradScaler("cuda", enabled=use_amp)
    out = Path(out) if out is not None else None
    state: dict[str, Any] = {"epoch": 0, "best_val_loss": float("inf"), "best_epoch": -1,
                             "bad_epochs": 0, "history": [], "train_seconds": 0.0,
                             "stop_reason": ""}
    if cfg.resume and out is not None:
        if (out / "last.pt").is_file():
            ck = load_checkpoint(out / "last.pt")
            model.load_state_dict(ck["state_dict"])
            if ck.get("optimizer"):
                optimizer.load_state_dict(ck["optimizer"])
            state.update(ck["extra"])
            if plateau is not None and "plateau" in ck["extra"]:
                plateau.load_state_dict(ck["extra"]["plateau"])
            if rank == 0:
                logger.info("resumed from %s at epoch %s", out / "last.pt", state["epoch"])
        elif rank == 0:
            logger.warning("--resume: no %s yet, starting from scratch", out / "last.pt")
    if cfg.pretrained and cfg.freeze_epochs > 0:
        set_trainable(model, "head")
    budget = 60 * cfg.max_minutes if cfg.max_minutes is not None else None
    t_start = time.perf_counter() - state["train_seconds"]
    first_epoch = int(math.ceil(state["epoch"]))
    if budget is not None and state["train_seconds"] >= budget:
        first_epoch = cfg.epochs  # the budget was used up before the interruption
        state["stop_reason"] = state["stop_reason"] or "time_budget"
    for epoch in range(first_epoch, cfg.epochs):
        if cfg.pretrained and cfg.freeze_epochs > 0 and epoch == cfg.freeze_epochs:
            set_trainable(model, "last", cfg.unfreeze_last)
        if sampler is not None:
            sampler.set_epoch(epoch)
        ddp_model.train()
        t0, c0 = time.perf_counter(), time.process_time()
        run_loss, run_ok, run_n = 0.0, 0, 0
        steps_done = 0
        over_budget = False
        bar: Any = loader
        if cfg.progress and rank == 0:
            from tqdm.auto import tqdm

            bar = tqdm(loader, desc=f"epoch {epoch + 1}/{cfg.epochs}", leave=False,
                       unit="batch", file=sys.stderr)
        for i, (xb, yb) in enumerate(bar):
            step = epoch * steps_per_epoch + i
            if plateau is None:
                prog = None
                if budget is not None:
                    prog = (time.perf_counter() - t_start) / budget
                f = lr_factor(step, total_steps, warmup, cfg.min_lr_ratio,
                              cosine=cfg.scheduler == "cosine", progress=prog,
                              milestones=cfg.lr_milestones if cfg.scheduler == "step"
                              else None, gamma=cfg.lr_gamma)
                for grp, lr0 in zip(optimizer.param_groups, base_lrs, strict=True):
                    grp["lr"] = lr0 * f
            x = normalize_batch(xb.to(device, non_blocking=True), mean, std)
            if use_cl:
                x = x.contiguous(memory_format=torch.channels_last)
            yb = yb.to(device, non_blocking=True)
            if aligning:
                head_in.clear()
                xt = normalize_batch(next(align_batches)[0].to(device, non_blocking=True),
                                     mean, std)
                if use_cl:
                    xt = xt.contiguous(memory_format=torch.channels_last)
                x = torch.cat([x, xt])
            with torch.autocast(device.type, enabled=use_amp):
                z = ddp_model(x)
                if aligning:
                    n_src = len(yb)
                    feats = head_in.pop()
                    z = z[:n_src]
                    loss = criterion(z.float(), yb) + cfg.align_weight * coral_loss(
                        feats[:n_src].float(), feats[n_src:].float())
                else:
                    loss = criterion(z.float(), yb)
            if not torch.isfinite(loss):
                raise FloatingPointError(f"training loss became {float(loss)} at epoch "
                                         f"{epoch + 1}, step {i}: lower the learning rate")
            optimizer.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            scaler.step(optimizer)
            scaler.update()
            run_loss += float(loss.detach()) * len(yb)
            run_ok += int((z.detach().argmax(1) == yb).sum())
            run_n += len(yb)
            steps_done = i + 1
            if bar is not loader:
                bar.set_postfix(loss=f"{run_loss / run_n:.3f}")
            # one process only: several ranks would have to agree on the step to stop at
            if budget is not None and world == 1 and steps_done < steps_per_epoch \
                    and time.perf_counter() - t_start >= budget:
                over_budget = True
                break
        if bar is not loader:
            bar.close()
        row: dict[str, Any] = {"epoch": epoch + 1, "train_loss": run_loss / max(run_n, 1),
                               "train_acc": run_ok / max(run_n, 1),
                               "lr": optimizer.param_groups[0]["lr"]}
        if over_budget:
            row["fraction"] = steps_done / steps_per_epoch
        if has_val:
            assert val_ds is not None
            v = evaluate(model, val_ds, mean, std, val_criterion, device)
            row.update(val_loss=v["loss"], val_acc=v["acc"])
            monitor = v["loss"]
        else:
            monitor = row["train_loss"]
        if plateau is not None:
            plateau.step(monitor)
        row["epoch_seconds"] = time.perf_counter() - t0
        # process CPU time: the cost of the epoch independent of other load on the machine
        row["epoch_cpu_seconds"] = time.process_time() - c0
        row["elapsed_seconds"] = time.perf_counter() - t_start
        improved = monitor < state["best_val_loss"] - 1e-4
        if improved:
            state.update(best_val_loss=monitor, best_epoch=epoch + 1, bad_epochs=0)
        else:
            state["bad_epochs"] += 1
        state["epoch"] = epoch + 1
        state["train_seconds"] = row["elapsed_seconds"]
        state["history"].append(row)
        stop = (cfg.patience > 0 and has_val and state["bad_epochs"] >= cfg.patience)
        if stop:
            state["stop_reason"] = "early_stopping"
        # stop when another epoch would overrun the time budget
        if budget is not None and (over_budget or
                                   row["elapsed_seconds"] + row["epoch_seconds"] > budget):
            stop = True
            state["stop_reason"] = "time_budget"
            if rank == 0:
                logger.info("time budget of %s min reached", cfg.max_minutes)
        if world > 1:  # every rank must take the same decision
            flag = torch.tensor([int(stop)], device=device)
            dist.broadcast(flag, 0)
            stop = bool(flag.item())
        if not stop and epoch + 1 == cfg.epochs:
            state["stop_reason"] = "epochs"
        if plateau is not None:
            state["plateau"] = plateau.state_dict()
        if rank == 0:
            msg = " ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}"
                           for k, v in row.items())
            logger.info("%s", msg)
            if out is not None:
                out.mkdir(parents=True, exist_ok=True)
                with open(out / "metrics.jsonl", "a", encoding="utf-8") as fh:
                    fh.write(json.dumps(row) + "\n")
                m = dataclasses.replace(meta, epoch=epoch + 1)
                if improved:
                    save_checkpoint(out / "best.pt", model, m, extra={})
                save_checkpoint(out / "last.pt", model, m, optimizer=optimizer,
                                extra=state)
        if stop:
            break
    if aligning:
        hook.remove()
    epochs_run = sum(float(r.get("fraction", 1.0)) for r in state["history"])
    return {"history": state["history"], "best_epoch": state["best_epoch"],
            "best_val_loss": state["best_val_loss"], "train_seconds": state["train_seconds"],
            "stop_reason": state["stop_reason"] or "epochs", "epochs_run": epochs_run}


# ----------------------------------------------------------------------------- the entry

@dataclass
class TrainResult:
    """What :func:`train_on_split` returns.

    Attributes
    ----------
    model : nn.Module
        The network with the weights of its best epoch (lowest validation loss), eval mode.
    meta : CheckpointMeta
        Inference metadata plus what the training got (epochs, minutes, parameters, ...).
    history : list of dict
        One row per epoch: ``train_loss``, ``train_acc``, ``val_loss``, ``val_acc``, ``lr``,
        ``epoch_seconds``, ... (the lines of ``metrics.jsonl``).
    images : ndarray, shape (N, S, S, 3), uint8
        The prepared images the network was trained on (all rows, test ones included), so
        the caller scores the test part on exactly what the network saw.
    train_idx, val_idx : ndarray of int64
        Rows used for training and for early stopping.
    train_seconds : float
    out : Path or None
        Where ``best.pt``, ``last.pt`` and ``metrics.jsonl`` are (None: not kept).
    skipped : dict of str to str
        Image files that could not be read (path -> reason): skipped, left out of training,
        validation and test.
    """

    model: nn.Module
    meta: CheckpointMeta
    history: list[dict[str, Any]]
    images: np.ndarray
    train_idx: np.ndarray
    val_idx: np.ndarray
    train_seconds: float
    out: Path | None = None
    skipped: dict[str, str] = field(default_factory=dict)


def _as_normalizer_dict(stain: Any) -> dict[str, Any] | None:
    if stain is None or isinstance(stain, dict):
        return stain
    return stain.to_dict() if hasattr(stain, "to_dict") else None


def _augmentation(settings: Mapping[str, Any]):
    """``build_augmentation(**settings)``; an unknown key is a ``ValueError`` naming it."""
    try:
        return build_augmentation(**settings)
    except TypeError as exc:  # unexpected keyword argument
        raise ValueError(f"augment {dict(settings)!r}: {exc}; the keys are the arguments of "
                         f"deep.data.build_augmentation") from None


def shift_calibration(model: nn.Module, images: np.ndarray, train_idx: np.ndarray,
                      val_idx: np.ndarray, mean: Sequence[float], std: Sequence[float], *,
                      seed: int = 0, device: torch.device | str = "cpu") -> dict[str, Any]:
    """The shift scorer and threshold of a trained network.

    A :class:`deep.adapt.FeatureShift` is fitted on the penultimate features of the training
    images (at most :data:`deep.adapt.SHIFT_FIT_IMAGES`, a seeded sample) and set as the
    network's ``feature_shift``; its scores of the validation images -- images the network
    and the scorer were not fitted on, from the training distribution -- give the threshold,
    their :data:`deep.adapt.SHIFT_QUANTILE` (0.99) quantile, above which ``deep.predict``
    flags an image, so about 1 % of such images are flagged (as the classical
    ``ShiftScorer``'s held-out threshold).

    Parameters
    ----------
    model : nn.Module
        A trained zoo model; gets the ``feature_shift`` attribute (a model without a
        ``head_name`` keeps the energy score).
    images : ndarray, shape (N, S, S, 3), uint8
    train_idx, val_idx : ndarray of int
        Rows of ``images``.

    Returns
    -------
    dict
        ``{"shift_method": "mahalanobis" | "energy", "shift_threshold": float | None,
        "shift_val_scores": [101 floats] | None}`` (the quantiles 0, 0.01, ..., 1); the
        threshold and quantiles are None when there are no validation images.
    """
    from .adapt import SHIFT_FIT_IMAGES, FeatureShift
    from .models._common import set_plain_attrs

    train_idx = np.sort(np.asarray(train_idx, np.int64))
    if len(train_idx) > SHIFT_FIT_IMAGES:
        rng = np.random.default_rng(seed)
        train_idx = np.sort(rng.choice(train_idx, SHIFT_FIT_IMAGES, replace=False))
    method = "mahalanobis" if getattr(model, "head_name", None) and len(train_idx) >= 2 \
        else "energy"
    scorer = None
    if method == "mahalanobis":
        _, features = predict_logits(model, np.asarray(images[train_idx]), mean, std,
                                     batch_size=256, device=device, return_features=True)
        try:
            scorer = FeatureShift.fit(features)
        except ValueError as exc:  # e.g. a diverged network's NaN features: keep the energy
            logger.warning("no feature shift scorer (%s); the shift score is the energy", exc)
            method = "energy"
        else:
            set_plain_attrs(model, feature_shift=scorer)
    if len(val_idx) == 0:
        return {"shift_method": method, "shift_threshold": None, "shift_val_scores": None}
    val_images = np.asarray(images[np.sort(val_idx)])
    if scorer is not None:
        _, features = predict_logits(model, val_images, mean, std, batch_size=256,
                                     device=device, return_features=True)
        scores = scorer.score(features)
    else:
        scores = energy_score(predict_logits(model, val_images, mean, std, batch_size=256,
                                             device=device))
    return {"shift_method": method, "shift_threshold": float(np.quantile(scores, SHIFT_QUANTILE)),
            "shift_val_scores": [float(v) for v in np.quantile(scores, np.linspace(0, 1, 101))]}


def train_on_split(cfg: TrainConfig | Mapping[str, Any],
                   data: Sequence[str | os.PathLike[str]] | np.ndarray,
                   labels: Sequence[int] | np.ndarray, split: Any, *,
                   classes: Sequence[str], out: str | os.PathLike[str] | None = None,
                   usable: np.ndarray | None = None, stain: Any = None,
                   device: torch.device | str | None = None,
                   align_images: Sequence[str | os.PathLike[str]] | np.ndarray | None = None
                   ) -> TrainResult:
    """Train ``cfg.model`` on the train part of ``split``: the one deep training entry.

    Parameters
    ----------
    cfg : TrainConfig or dict
        ``cfg.out`` is not used (see ``out``).
    data : sequence of path-like, or ndarray (N, S, S, 3) uint8
        Image files (then ``cfg.stain`` is fitted on up to 50 training images and every image
        is decoded, cropped (``cfg.crop``), stain-normalised and resized to ``cfg.img_size``
        once, cached in ``cfg.cache_dir``), or images already prepared that way.
    labels : array-like of int, shape (N,)
    split : wbc_classic.data.split.Split
        Its train part is trained on; its val part drives early stopping (when empty,
        ``cfg.val_fraction`` of the train part, stratified, seeded by ``cfg.split_seed``).
        The test part is not touched.
    classes : sequence of str
        Class names in label order.
    out : path-like, optional
        Folder for ``best.pt``, ``last.pt``, ``metrics.jsonl``, ``config.json`` and
        ``split.json``; with ``cfg.resume`` training continues from ``out/last.pt``. None:
        a temporary folder, removed afterwards.
    usable : ndarray of bool, shape (N,), optional
        False for images that could not be read: left out of training and validation.
    stain : StainNormalizer or dict, optional
        With prepared ``images``: the normaliser already applied to them (recorded in the
        metadata). With image files: a fitted normaliser to apply instead of fitting
        ``cfg.stain`` (fine-tuning keeps the one its network was trained with).
    device : torch.device or str, optional
    align_images : sequence of path-like, or ndarray (M, S, S, 3) uint8, optional
        Unlabelled images of the lab the network is for, prepared as ``data`` is (the same
        crop, stain normaliser and size); with ``cfg.align_weight > 0`` the training aligns
        the network's features of the two (:func:`fit`'s ``align_ds``). Unreadable ones are
        skipped.

    Returns
    -------
    TrainResult

    Raises
    ------
    ValueError
        A class has no training image, the split does not fit the labels, or
        ``cfg.align_weight > 0`` without ``align_images`` (or with fewer than 2 usable).
    """
    if not isinstance(cfg, TrainConfig):
        cfg = TrainConfig(**dict(cfg))
    rank, world, _ = _dist_info()
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    set_seed(cfg.seed + rank)
    device = torch.device(device) if device is not None else _device(cfg.device)
    y = np.asarray(labels, np.int64)
    classes = [str(c) for c in classes]
    split.check(y)
    # build the model first: missing pretrained weights fail before any decoding
    model = get_model(cfg.model, num_classes=len(classes), weights=cfg.pretrained,
                      img_size=cfg.img_size, **cfg.model_kwargs)
    aug = None if cfg.no_augment else _augmentation(cfg.augment)  # bad settings: no decoding
    tr = np.asarray(split.train, np.int64)
    va = np.asarray(split.val, np.int64)
    if usable is not None:
        usable = np.asarray(usable, bool)
        tr, va = tr[usable[tr]], va[usable[va]]
    if len(va) == 0 and cfg.val_fraction > 0:
        keep, hold = stratified_holdout(y[tr], cfg.val_fraction, seed=cfg.split_seed)
        tr, va = tr[keep], tr[hold]
    skipped: dict[str, str] = {}
    if isinstance(data, np.ndarray):
        images = data
        if images.ndim != 4 or images.shape[1:] != (cfg.img_size, cfg.img_size, 3):
            raise ValueError(f"images must have shape (N, {cfg.img_size}, {cfg.img_size}, 3), "
                             f"got {images.shape}")
        stain_dict = _as_normalizer_dict(stain)
    else:
        from wbc_classic.preprocess.stain import fit_normalizer

        paths = list(data)
        if stain is not None:
            from wbc_classic.preprocess.stain import normalizer_from_dict

            norm = normalizer_from_dict(stain) if isinstance(stain, dict) else stain
        else:
            norm = fit_normalizer(cfg.stain, [paths[i] for i in tr], n_ref=50, seed=cfg.seed)
        # an unreadable image is skipped, reported and counted (as benchmarks.run does)
        cache = _prepare(paths, cfg, norm, rank)
        skipped = {str(paths[i]): msg for i, msg in sorted(cache.errors.items())}
        if skipped:
            readable = np.asarray(cache.ok, bool)
            tr, va = tr[readable[tr]], va[readable[va]]
        images = cache.images
        stain_dict = _as_normalizer_dict(norm)
    if len(images) != len(y):
        raise ValueError(f"{len(images)} images but {len(y)} labels")
    missing = [c for i, c in enumerate(classes) if not np.any(y[tr] == i)]
    if missing:
        raise ValueError(f"no training images for class(es) {', '.join(missing)}")
    align_ds = None
    if cfg.align_weight > 0:
        target = _align_images(align_images, cfg, stain_dict, rank)
        align_ds = ArrayDataset(target, np.zeros(len(target), np.int64), transform=aug)
    mean, std = channel_stats(images[np.sort(tr)])
    train_ds = ArrayDataset(images, y, tr, transform=aug)
    val_ds = ArrayDataset(images, y, va) if len(va) else None
    meta = CheckpointMeta(
        model=cfg.model, model_kwargs=dict(cfg.model_kwargs), classes=classes,
        img_size=cfg.img_size, mean=list(mean), std=list(std), crop=cfg.crop,
        crop_options=dict(cfg.crop_options), stain=stain_dict, data=str(cfg.data),
        recipe=cfg.recipe,
        split={"scheme": getattr(split, "scheme", cfg.split),
               "seed": getattr(split, "seed", cfg.split_seed)},
        n_parameters=int(sum(p.numel() for p in model.parameters())))
    tmp = None
    if out is None:
        tmp = tempfile.TemporaryDirectory(prefix="wbc-deep-")
        run_dir = Path(tmp.name)
    else:
        run_dir = Path(out)
    try:
        if rank == 0:
            from wbc_classic.io.atomic import atomic_write_text

            run_dir.mkdir(parents=True, exist_ok=True)
            atomic_write_text(run_dir / "config.json", json.dumps(cfg.to_json(), indent=2))
            if hasattr(split, "save"):
                split.save(run_dir / "split.json")
            if not cfg.resume and (run_dir / "metrics.jsonl").exists():
                (run_dir / "metrics.jsonl").unlink()
        hist = fit(model, train_ds, val_ds, cfg, meta=meta, out=run_dir, device=device,
                   align_ds=align_ds)
        if world > 1:
            dist.barrier()  # rank 0 has written best.pt
        best = run_dir / "best.pt"
        if best.is_file():  # the epoch with the lowest validation loss
            model.load_state_dict(load_checkpoint(best)["state_dict"])
    finally:
        if tmp is not None:
            tmp.cleanup()
    model.eval()
    shift = shift_calibration(model, images, tr, va, mean, std, seed=cfg.seed, device=device)
    meta = dataclasses.replace(
        meta, epoch=int(hist["best_epoch"]), epochs_run=round(float(hist["epochs_run"]), 3),
        best_epoch=int(hist["best_epoch"]), train_minutes=hist["train_seconds"] / 60,
        stop_reason=hist["stop_reason"],
        converged=hist["stop_reason"] == "early_stopping" or not still_improving(
            hist["history"]), **shift)
    if rank == 0 and tmp is None and (run_dir / "best.pt").is_file():
        # deep.predict reads the scorer and its threshold there
        update_meta(run_dir / "best.pt", feature_shift=getattr(model, "feature_shift", None),
                    **shift)
    return TrainResult(model=model, meta=meta, history=hist["history"], images=images,
                       train_idx=tr, val_idx=va, train_seconds=hist["train_seconds"],
                       out=None if tmp is not None else run_dir, skipped=skipped)


def _prepare(paths: Sequence[str | os.PathLike[str]], cfg: TrainConfig, norm: Any,
             rank: int) -> Any:
    """Image files as the network sees them: decoded, cropped (``cfg.crop``), stain-normalised
    by ``norm`` and resized to ``cfg.img_size`` once, cached; unreadable ones skipped."""
    from .cache import build_cache, deep_cache_dir

    return build_cache([str(p) for p in paths], cfg.img_size,
                       cache_dir=deep_cache_dir(cfg.cache_dir), on_error="skip",
                       crop=cfg.crop, crop_options=cfg.crop_options, stain=norm,
                       progress=cfg.progress and rank == 0)


def _align_images(align_images: Any, cfg: TrainConfig, stain: dict[str, Any] | None,
                  rank: int) -> np.ndarray:
    """The target lab's unlabelled images as the network sees them (see train_on_split)."""
    if align_images is None:
        raise ValueError("align_weight > 0 needs unlabelled images of the target lab "
                         "(align_images)")
    if isinstance(align_images, np.ndarray):
        target = align_images
    else:
        from wbc_classic.preprocess.stain import normalizer_from_dict

        cached = _prepare(align_images, cfg, normalizer_from_dict(stain) if stain else None,
                          rank)
        target = np.asarray(cached.images)[np.asarray(cached.ok, bool)]
    if target.ndim != 4 or target.shape[1:] != (cfg.img_size, cfg.img_size, 3) \
            or len(target) < 2:
        raise ValueError(f"align_images: need at least 2 usable images of shape "
                         f"({cfg.img_size}, {cfg.img_size}, 3), got {target.shape}")
    return target


# ----------------------------------------------------------------------------- pipeline

def _load_npz(cfg: TrainConfig) -> tuple[np.ndarray, np.ndarray, Any, list[str], Any]:
    """A MedMNIST ``.npz``: images prepared at ``cfg.img_size`` (crop, stain fitted on the
    train part), labels, the official train/val/test Split, class names, the normaliser."""
    from wbc_classic.data.datasets import load_medmnist_split
    from wbc_classic.preprocess.stain import fit_normalizer

    from .cache import prepare_image

    ms = load_medmnist_split(str(cfg.data))
    classes = list(ms.classes)
    if cfg.classes and list(cfg.classes) != classes:
        raise ValueError(f"{cfg.data} has the classes {', '.join(classes)}; --classes cannot "
                         "choose among them")
    x = ms.images
    norm = fit_normalizer(cfg.stain, list(x[ms.split.train]), n_ref=50, seed=cfg.seed)
    if x.shape[1:3] == (cfg.img_size, cfg.img_size) and cfg.crop != "cell" and norm is None:
        images = x
    else:
        images = np.stack([prepare_image(im, cfg.img_size, crop=cfg.crop,
                                         crop_options=cfg.crop_options, stain=norm)
                           for im in x])
    return images, ms.y, ms.split, classes, norm


def _load_data(cfg: TrainConfig):
    from wbc_classic.data.datasets import load_class_folders

    if not cfg.data:
        raise ValueError("no data directory given (--data DIR with one folder per class)")
    root = Path(cfg.data)
    if not root.is_dir():
        raise FileNotFoundError(f"data directory not found: {root}")
    iset = load_class_folders(root, classes=cfg.classes)
    classes = list(iset.classes)
    counts = np.bincount(iset.y, minlength=len(classes))
    empty = [c for c, n in zip(classes, counts, strict=True) if n == 0]
    if empty:
        raise ValueError(f"class folder(s) without images in {root}: {', '.join(empty)}")
    return iset, classes


def _make_split(cfg: TrainConfig, y: np.ndarray):
    from wbc_classic.data.split import Split, make_split

    return Split.load(cfg.split_file) if cfg.split_file else make_split(
        y, cfg.split, seed=cfg.split_seed)


def train(cfg: TrainConfig | dict[str, Any]) -> dict[str, Any]:
    """Run the whole pipeline; return the result dict (also written to ``out/result.json``).

    The Split is the project's shared one (``wbc_classic.data.split.make_split(y, cfg.split,
    seed=cfg.split_seed)`` or ``cfg.split_file``), so test images are the same as the
    classical path's; a MedMNIST ``.npz`` (``cfg.data`` ending in ``.npz``, e.g.
    ``bloodmnist_64.npz``) brings its official train/val/test split instead. Training is
    :func:`train_on_split`.
    """
    if isinstance(cfg, dict):
        cfg = TrainConfig(**cfg)
    _maybe_init_distributed(cfg.device)
    rank, world, _ = _dist_info()
    out = Path(cfg.out)
    align = None
    if cfg.align_weight > 0:
        from wbc_classic.io.predictions import expand_inputs

        if not cfg.align_data:
            raise ValueError("--align-weight needs --align-data, a folder of unlabelled "
                             "images of the lab the network is for")
        align = [str(p) for p in expand_inputs([cfg.align_data])]
    if str(cfg.data).lower().endswith(".npz"):
        images, y, split, classes, norm = _load_npz(cfg)
        res = train_on_split(cfg, images, y, split, classes=classes, out=out, stain=norm,
                             align_images=align)
    else:
        iset, classes = _load_data(cfg)
        split = _make_split(cfg, iset.y)
        res = train_on_split(cfg, iset.paths, iset.y, split, classes=classes, out=out,
                             align_images=align)
        y = np.asarray(iset.y, np.int64)
    te = np.asarray(split.test, np.int64)
    skipped = res.skipped
    if skipped:
        bad = {i for i, p in enumerate(iset.paths) if str(p) in skipped}
        te = np.array([i for i in te if i not in bad], np.int64)
        if rank == 0:
            logger.warning("%d of %d images cannot be read and are skipped:", len(skipped),
                           len(iset.paths))
            for path, msg in list(skipped.items())[:10]:
                logger.warning("  %s", msg if path in msg else f"{path}: {msg}")
            if len(skipped) > 10:
                logger.warning("  ... and %d more (result.json)", len(skipped) - 10)
    result: dict[str, Any] = {"model": cfg.model, "img_size": cfg.img_size,
                              "classes": classes, "n_train": int(len(res.train_idx)),
                              "n_val": int(len(res.val_idx)), "n_test": int(len(te)),
                              "epochs_run": len(res.history),
                              "best_epoch": res.meta.best_epoch,
                              "train_seconds": res.train_seconds,
                              "stop_reason": res.meta.stop_reason,
                              "converged": res.meta.converged,
                              "n_skipped": len(skipped), "skipped": skipped}
    if rank == 0 and len(te):
        from .predict import predict_proba

        device = next(res.model.parameters()).device
        test_imgs = np.asarray(res.images[te])
        for tta in sorted({False, bool(cfg.tta)}):
            pred = predict_proba(res.model, test_imgs, res.meta, batch_size=256,
                                 device=device, tta=tta).argmax(1)
            result["test_tta" if tta else "test"] = _scores(y[te], pred, len(classes))
        from wbc_classic.io.atomic import atomic_write_text

        atomic_write_text(out / "result.json", json.dumps(result, indent=2))
    if rank == 0 and (out / "best.pt").is_file():
        _write_card(out / "best.pt", res.meta.to_dict(), result, y[res.train_idx], te)
    if world > 1:
        dist.barrier()
    return result


def _write_card(path: Path, meta: dict[str, Any], result: dict[str, Any],
                y_train: np.ndarray, te: np.ndarray) -> None:
    """Store the model card in the best checkpoint's metadata and write it beside the file
    (:mod:`wbc_classic.io.modelcard`, :func:`deep.checkpoint.set_model_card`)."""
    import platform

    from wbc_classic import __version__
    from wbc_classic.io.modelcard import make_card

    from .checkpoint import set_model_card

    classes = meta["classes"]
    counts = np.bincount(y_train, minlength=len(classes))
    test = result.get("test")
    in_lab = None if not test else {
        "data": f"held-out {meta['split'].get('scheme')} test part of {meta['data']}",
        "n": int(len(te)), **{k: test[k] for k in ("accuracy", "balanced_accuracy",
                                                    "macro_f1")}}
    card = make_card(family="deep", architecture=f"{meta['model']} at {meta['img_size']} px",
                     classes=classes, file=path, sources=[meta["data"]],
                     counts=dict(zip(classes, counts.tolist(), strict=True)),
                     split={**meta["split"], "n_train": result["n_train"],
                            "n_val": result["n_val"], "n_test": result["n_test"]},
                     in_lab=in_lab, versions={"wbc_classic": __version__,
                                              "torch": torch.__version__,
                                              "python": platform.python_version()})
    set_model_card(path, card)


def _scores(y_true: np.ndarray, y_pred: np.ndarray, n_classes: int) -> dict[str, Any]:
    from wbc_classic.evaluation.metrics import confusion_matrix, overall_metrics

    m = overall_metrics(y_true, y_pred, n_classes=n_classes)
    return {"accuracy": m["accuracy"], "balanced_accuracy": m["balanced_accuracy"],
            "macro_f1": m["f1_macro"],
            "confusion": confusion_matrix(y_true, y_pred, n_classes).tolist()}


# ----------------------------------------------------------------------------- CLI

EXAMPLE = """example:
  python -m deep.train --data ../shared/data/pbc --model wbcnet --img-size 64 \\
      --epochs 30 --out runs/wbcnet64
  python -m deep.train --data ../shared/data/pbc --model resnet18 --pretrained imagenet \\
      --freeze-epochs 2 --unfreeze-last 10 --out runs/r18
  torchrun --nproc_per_node 2 -m deep.train --data ../shared/data/pbc --out runs/ddp
"""


def _lazy_choices(name: str | tuple[str, ...]) -> tuple[str, ...]:
    if name == "crops":
        from .cache import CROPS

        return tuple(CROPS)
    if name == "stains":
        from wbc_classic.preprocess.stain import available_normalizers

        return tuple(available_normalizers())
    if name == "recipes":
        from .recipes import recipe_names

        return tuple(recipe_names())
    return tuple(name)


def build_parser(*, only_given: bool = False) -> argparse.ArgumentParser:
    """The ``python -m deep.train`` argument parser: one flag per :class:`TrainConfig` field,
    with the field's type, default and ``metadata["help"]``.

    Booleans that default to False are ``--name`` switches, those that default to True are
    ``--no-name``; dicts are JSON objects; lists take several values. ``only_given=True``:
    no defaults, so the namespace holds the flags actually given (the recipe fills the rest).
    """
    p = argparse.ArgumentParser(
        prog="python -m deep.train", epilog=EXAMPLE,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        argument_default=argparse.SUPPRESS if only_given else None,
        description="Train a deep model on class folders with the shared Split.")
    hints = typing.get_type_hints(TrainConfig)
    for f in dataclasses.fields(TrainConfig):
        md = dict(f.metadata)
        help_text = md.pop("help")
        flag = md.pop("flag", None)
        choices = md.pop("choices", None)
        tp = hints[f.name]
        args = typing.get_args(tp)
        base = next((a for a in args if a is not type(None)), tp) if args and \
            type(None) in args else tp
        if f.default is not dataclasses.MISSING:
            default = f.default
        else:
            assert f.default_factory is not dataclasses.MISSING  # every field has a default
            default = f.default_factory()
        kw: dict[str, Any] = {"dest": f.name, "help": help_text, **md}
        if only_given:
            default = argparse.SUPPRESS
        if base is bool:
            kw["default"] = default
            if f.default:
                name = flag or f"--no-{f.name.replace('_', '-')}"
                p.add_argument(name, action="store_false", **kw)
            else:
                name = flag or f"--{f.name.replace('_', '-')}"
                p.add_argument(name, action="store_true", **kw)
            continue
        name = flag or f"--{f.name.replace('_', '-')}"
        if typing.get_origin(base) is dict:
            kw["type"] = json_object
            kw["metavar"] = "JSON"
        elif typing.get_origin(base) is list:
            kw["nargs"] = "+"
        elif base in (int, float):
            kw.setdefault("type", base)
        if choices is not None:
            kw["choices"] = _lazy_choices(choices)
        if not kw.get("required"):
            kw["default"] = default
            if default not in (None, {}, [], argparse.SUPPRESS):
                kw["help"] += " (default %(default)s)"
        p.add_argument(name, **kw)
    return p


def config_with_recipe(recipe: str = "default", **settings: Any) -> TrainConfig:
    """A :class:`TrainConfig` from ``recipe``'s settings (:mod:`deep.recipes`) overridden
    by ``settings``; the config records the recipe's name."""
    from .recipes import get_recipe

    r = get_recipe(recipe)
    # a copy: the config's dicts and lists must not be the recipe's (e.g. LAB_AUGMENT)
    return TrainConfig(**{**copy.deepcopy(dict(r.settings)), **settings, "recipe": recipe})


def config_from_args(argv: Sequence[str] | None = None) -> TrainConfig:
    """Parse ``python -m deep.train`` arguments into a :class:`TrainConfig`: defaults, then
    the ``--recipe``'s settings, then the flags given."""
    build_parser().parse_args(argv)  # full validation, --help and usage errors
    given = vars(build_parser(only_given=True).parse_args(argv))
    return config_with_recipe(given.pop("recipe", "default"), **given)


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``python -m deep.train``: exit code 0 done, 1 done but some images could
    not be read (skipped and listed), 2 usage or configuration error."""
    from wbc_classic.io.atomic import OutputError, check_output_dir

    from .device import resolve_device

    cfg = config_from_args(argv)
    try:
        check_output_dir(cfg.out, "--out")  # before any decoding or training
        resolve_device(cfg.device)
    except (OutputError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    try:
        with log_to_stderr():  # epoch lines and warnings, one line each
            result = train(cfg)
        if "test" in result:  # rank 0 scored the test part: the machine-readable result
            print(json.dumps(result), flush=True)
    except (ValueError, FileNotFoundError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    finally:
        if dist.is_available() and dist.is_initialized():
            dist.destroy_process_group()
    return EXIT_FAILED_INPUTS if result.get("n_skipped") else EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
