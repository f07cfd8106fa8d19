"""Train a zoo model on a class-folder image set with the project's shared Split.

Python API
----------
``train(TrainConfig(...))`` -- the whole pipeline (load class folders, make/load the Split,
decode+resize once into the cache, train with early stopping, score the test part, write
checkpoints and metrics); ``fit(model, train_ds, val_ds, config, ...)`` -- the training loop
alone over any :class:`deep.data.ArrayDataset`.

Command line
------------
::

    python -m deep.train --data ../shared/data/pbc --model wbcnet --img-size 64 \\
        --epochs 30 --out runs/wbcnet64

    # several processes (CPU: gloo, GPU: nccl)
    torchrun --nproc_per_node 2 -m deep.train --data ../shared/data/pbc --out runs/ddp

Outputs in ``--out``: ``best.pt`` (lowest validation loss), ``last.pt`` (resumable with
``--resume``), ``metrics.jsonl`` (one JSON line per epoch), ``result.json`` (test scores),
``split.json`` (the Split used), ``config.json``.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import random
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from torch import nn
from torch.utils.data import DataLoader, DistributedSampler

from wbc_classic.io.options import (
    EXIT_FAILED_INPUTS,
    EXIT_OK,
    EXIT_USAGE,
    float_range,
    int_range,
    json_object,
)

from .checkpoint import load_checkpoint, save_checkpoint
from .data import (
    ArrayDataset,
    build_augmentation,
    channel_stats,
    class_weights,
    normalize_batch,
    stratified_holdout,
)
from .models import get_model

__all__ = ["TrainConfig", "evaluate", "fit", "main", "predict_logits", "set_seed", "train"]


@dataclass
class TrainConfig:
    """Every setting of a training run (JSON-able; saved as ``config.json``)."""

    data: str | None = None
    out: str = "runs/deep"
    model: str = "wbcnet"
    model_kwargs: dict[str, Any] = field(default_factory=dict)
    img_size: int = 64
    crop: str = "center"  # center | none | cell (see deep.cache.prepare_image)
    crop_options: dict[str, Any] = field(default_factory=dict)  # preprocess.cellcrop.CellCropper
    stain: str = "none"  # wbc_classic.preprocess.stain.make_normalizer name, fitted on train images
    classes: list[str] | None = None
    split: str = "80/20"
    split_seed: int = 0
    split_file: str | None = None
    val_fraction: float = 0.1
    epochs: int = 30
    batch_size: int = 64
    optimizer: str = "adamw"
    lr: float = 2e-3
    weight_decay: float = 0.05
    warmup_epochs: float = 1.0
    scheduler: str = "cosine"  # cosine | plateau | none
    min_lr_ratio: float = 0.01
    patience: int = 8  # early stopping on validation loss; 0 disables
    label_smoothing: float = 0.1
    use_class_weights: bool = False
    augment: dict[str, Any] = field(default_factory=dict)  # build_augmentation kwargs
    no_augment: bool = False
    pretrained: str | None = None  # None | "imagenet" | path
    freeze_epochs: int = 0  # phase 1: train the head only
    unfreeze_last: int = 0  # phase 2: also train the last N parameterised layers (0 = all)
    seed: int = 0
    num_workers: int = 0
    cache_dir: str | None = None
    resume: bool = False
    max_minutes: float | None = None  # time budget: cosine follows elapsed time, then stop
    tta: bool = True
    amp: bool = True  # CUDA only
    channels_last: bool = True  # CUDA only
    device: str | None = None
    threads: int | None = None
    progress: bool = True

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


def lr_factor(step: int, total: int, warmup: int, min_ratio: float = 0.01,
              cosine: bool = True, progress: float | None = None) -> float:
    """Linear warm-up for ``warmup`` steps, then cosine annealing to ``min_ratio``.

    ``progress`` (0..1, e.g. the elapsed fraction of a time budget) overrides ``step / total``
    when it is further along, so a time-budgeted run still anneals fully before it stops.
    """
    if warmup > 0 and step < warmup:
        return (step + 1) / warmup
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
    base = model.module if hasattr(model, "module") else model
    head = base.get_submodule(getattr(base, "head_name", "head"))
    return list(head.parameters())


def set_trainable(model: nn.Module, phase: str, last_n: int = 0) -> int:
    """Two-phase fine-tuning: ``"head"`` freezes all but the head; ``"last"`` also unfreezes
    the last ``last_n`` parameterised leaf layers (``last_n=0``: everything). Returns the number
    of trainable tensors."""
    base = model.module if hasattr(model, "module") else model
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
    decay, no_decay = [], []
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


@torch.no_grad()
def predict_logits(model: nn.Module, images: np.ndarray | torch.Tensor, mean, std, *,
                   batch_size: int = 256, device: torch.device | str = "cpu",
                   tta: bool = False) -> np.ndarray:
    """Logits for uint8 images (N, H, W, 3) (or a loader-ready tensor), shape (N, C) float32.

    ``tta=True`` averages the logits of the 4 flips (identity, h, v, hv).
    """
    model.eval()
    device = torch.device(device)
    out = []
    for s in range(0, len(images), batch_size):
        xb = images[s:s + batch_size]
        xb = torch.from_numpy(np.ascontiguousarray(xb)) if isinstance(xb, np.ndarray) else xb
        x = normalize_batch(xb.to(device), mean, std)
        if tta:
            z = (model(x) + model(x.flip(3)) + model(x.flip(2)) + model(x.flip(2, 3))) / 4
        else:
            z = model(x)
        out.append(z.float().cpu())
    return torch.cat(out).numpy() if out else np.zeros((0, 0), np.float32)


@torch.no_grad()
def evaluate(model: nn.Module, loader: DataLoader, mean, std, criterion: nn.Module,
             device: torch.device) -> dict[str, float]:
    """Mean loss and accuracy of ``model`` over ``loader`` (no augmentation)."""
    model.eval()
    tot_loss, tot_ok, n = 0.0, 0, 0
    for xb, yb in loader:
        x = normalize_batch(xb.to(device, non_blocking=True), mean, std)
        yb = yb.to(device)
        z = model(x)
        tot_loss += float(criterion(z.float(), yb)) * len(yb)
        tot_ok += int((z.argmax(1) == yb).sum())
        n += len(yb)
    return {"loss": tot_loss / max(n, 1), "acc": tot_ok / max(n, 1)}


# ----------------------------------------------------------------------------- the loop

def fit(model: nn.Module, train_ds: ArrayDataset, val_ds: ArrayDataset | None,
        cfg: TrainConfig, *, meta: dict[str, Any], out: str | os.PathLike[str] | None = None,
        device: torch.device | None = None) -> dict[str, Any]:
    """Train ``model`` in place; return ``{"history": [...], "best_epoch", "best_val_loss"}``.

    Parameters
    ----------
    model : nn.Module
        Maps normalised float (N, 3, H, W) to logits.
    train_ds, val_ds : ArrayDataset
        uint8 samples; ``train_ds.transform`` holds the augmentation. ``val_ds`` may be None
        (then the training loss drives checkpoint selection and early stopping is off).
    cfg : TrainConfig
    meta : dict
        Checkpoint metadata (``model``, ``classes``, ``img_size``, ``mean``, ``std``, ...).
    out : path-like, optional
        Directory for ``best.pt``, ``last.pt`` and ``metrics.jsonl`` (rank 0 only).
    device : torch.device, optional
    """
    rank, world, _ = _dist_info()
    device = device or _device(cfg.device)
    is_cuda = device.type == "cuda"
    model.to(device)
    if is_cuda and cfg.channels_last:
        model.to(memory_format=torch.channels_last)
    mean, std = meta["mean"], meta["std"]
    n_classes = len(meta["classes"])
    weight = None
    if cfg.use_class_weights:
        weight = torch.from_numpy(class_weights(train_ds.labels, n_classes)).to(device)
    criterion = nn.CrossEntropyLoss(weight=weight, label_smoothing=cfg.label_smoothing)
    val_criterion = nn.CrossEntropyLoss()
    ddp_model: nn.Module = model
    if world > 1:
        ddp_model = nn.parallel.DistributedDataParallel(
            model, device_ids=[device.index] if is_cuda else None)
    sampler = DistributedSampler(train_ds, shuffle=True, seed=cfg.seed, drop_last=True) \
        if world > 1 else None
    g = torch.Generator()
    g.manual_seed(cfg.seed)
    loader = DataLoader(train_ds, batch_size=cfg.batch_size, shuffle=sampler is None,
                        sampler=sampler, num_workers=cfg.num_workers, drop_last=len(train_ds)
                        > cfg.batch_size, generator=g, pin_memory=is_cuda,
                        persistent_workers=cfg.num_workers > 0)
    val_loader = DataLoader(val_ds, batch_size=256, shuffle=False, num_workers=0) \
        if val_ds is not None and len(val_ds) else None
    optimizer = _make_optimizer(cfg, ddp_model)
    plateau = torch.optim.lr_scheduler.ReduceLROnPlateau(optimizer, factor=0.3, patience=2) \
        if cfg.scheduler == "plateau" else None
    steps_per_epoch = max(1, len(loader))
    total_steps = cfg.epochs * steps_per_epoch
    warmup = int(round(cfg.warmup_epochs * steps_per_epoch))
    scaler = torch.amp.GradScaler("cuda", enabled=is_cuda and cfg.amp)
    out = Path(out) if out is not None else None
    state = {"epoch": 0, "best_val_loss": float("inf"), "best_epoch": -1, "bad_epochs": 0,
             "history": [], "train_seconds": 0.0}
    if cfg.resume and out is not None and (out / "last.pt").is_file():
        ck = load_checkpoint(out / "last.pt")
        model.load_state_dict(ck["state_dict"])
        if ck.get("optimizer"):
            optimizer.load_state_dict(ck["optimizer"])
        state.update(ck["extra"])
        if rank == 0:
            print(f"resumed from {out / 'last.pt'} at epoch {state['epoch']}", file=sys.stderr)
    base_lrs = [grp["lr"] for grp in optimizer.param_groups]
    if cfg.pretrained and cfg.freeze_epochs > 0:
        set_trainable(model, "head")
    t_start = time.perf_counter() - state["train_seconds"]
    for epoch in range(state["epoch"], cfg.epochs):
        if cfg.pretrained and cfg.freeze_epochs > 0 and epoch == cfg.freeze_epochs:
            set_trainable(model, "last", cfg.unfreeze_last)
        if sampler is not None:
            sampler.set_epoch(epoch)
        ddp_model.train()
        t0, c0 = time.perf_counter(), time.process_time()
        run_loss, run_ok, run_n = 0.0, 0, 0
        bar = loader
        if cfg.progress and rank == 0:
            from tqdm.auto import tqdm

            bar = tqdm(loader, desc=f"epoch {epoch + 1}/{cfg.epochs}", leave=False,
                       unit="batch", file=sys.stderr)
        for i, (xb, yb) in enumerate(bar):
            step = epoch * steps_per_epoch + i
            if plateau is None:
                prog = None
                if cfg.max_minutes:
                    prog = (time.perf_counter() - t_start) / (60 * cfg.max_minutes)
                f = lr_factor(step, total_steps, warmup, cfg.min_lr_ratio,
                              cosine=cfg.scheduler == "cosine", progress=prog)
                for grp, lr0 in zip(optimizer.param_groups, base_lrs, strict=True):
                    grp["lr"] = lr0 * f
            x = normalize_batch(xb.to(device, non_blocking=True), mean, std)
            if is_cuda and cfg.channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            yb = yb.to(device, non_blocking=True)
            with torch.autocast(device.type, enabled=is_cuda and cfg.amp):
                z = ddp_model(x)
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
            if bar is not loader:
                bar.set_postfix(loss=f"{run_loss / run_n:.3f}")
        row = {"epoch": epoch + 1, "train_loss": run_loss / max(run_n, 1),
               "train_acc": run_ok / max(run_n, 1), "lr": optimizer.param_groups[0]["lr"]}
        if val_loader is not None:
            v = evaluate(model, val_loader, mean, std, val_criterion, device)
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
        if rank == 0:
            msg = " ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}"
                           for k, v in row.items())
            print(msg, file=sys.stderr, flush=True)
            if out is not None:
                out.mkdir(parents=True, exist_ok=True)
                with open(out / "metrics.jsonl", "a", encoding="utf-8") as fh:
                    fh.write(json.dumps(row) + "\n")
                m = dict(meta, epoch=epoch + 1)
                if improved:
                    save_checkpoint(out / "best.pt", model, m, extra={})
                save_checkpoint(out / "last.pt", model, m, optimizer=optimizer,
                                extra=state)
        stop = (cfg.patience > 0 and val_loader is not None
                and state["bad_epochs"] >= cfg.patience)
        # stop when another epoch would overrun the time budget
        if cfg.max_minutes is not None and \
                row["elapsed_seconds"] + row["epoch_seconds"] > 60 * cfg.max_minutes:
            stop = True
            if rank == 0:
                print(f"time budget of {cfg.max_minutes} min reached", file=sys.stderr)
        if world > 1:  # every rank must take the same decision
            flag = torch.tensor([int(stop)], device=device)
            dist.broadcast(flag, 0)
            stop = bool(flag.item())
        if stop:
            break
    return {"history": state["history"], "best_epoch": state["best_epoch"],
            "best_val_loss": state["best_val_loss"], "train_seconds": state["train_seconds"]}


# ----------------------------------------------------------------------------- pipeline

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

    split = Split.load(cfg.split_file) if cfg.split_file else make_split(
        y, cfg.split, seed=cfg.split_seed)
    train_idx = np.asarray(split.train, np.int64)
    val_idx = np.asarray(split.val, np.int64)
    if len(val_idx) == 0 and cfg.val_fraction > 0:
        keep, hold = stratified_holdout(y[train_idx], cfg.val_fraction, seed=cfg.split_seed)
        train_idx, val_idx = train_idx[keep], train_idx[hold]
    return split, train_idx, val_idx, np.asarray(split.test, np.int64)


def _fit_stain(cfg: TrainConfig, train_paths: list[Any], n_ref: int = 50) -> Any:
    """The ``cfg.stain`` normaliser fitted on up to ``n_ref`` training images (seeded), or None."""
    from wbc_classic.preprocess.stain import fit_normalizer

    return fit_normalizer(cfg.stain, train_paths, n_ref=n_ref, seed=cfg.seed)


def train(cfg: TrainConfig | dict[str, Any]) -> dict[str, Any]:
    """Run the whole pipeline; return the result dict (also written to ``out/result.json``).

    The Split is the project's shared one (``wbc_classic.data.split.make_split(y, cfg.split,
    seed=cfg.split_seed)`` or ``cfg.split_file``), so test images are the same as the
    classical path's; when it has no validation part, ``cfg.val_fraction`` of the train part
    (stratified) is held out for early stopping.
    """
    if isinstance(cfg, dict):
        cfg = TrainConfig(**cfg)
    _maybe_init_distributed(cfg.device)
    rank, world, _ = _dist_info()
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    set_seed(cfg.seed + rank)
    device = _device(cfg.device)
    out = Path(cfg.out)
    iset, classes = _load_data(cfg)
    # build the model early: missing pretrained weights fail before any decoding
    model = get_model(cfg.model, num_classes=len(classes), weights=cfg.pretrained,
                      img_size=cfg.img_size, **cfg.model_kwargs)
    split, tr, va, te = _make_split(cfg, iset.y)
    from .cache import build_cache, deep_cache_dir

    stain = _fit_stain(cfg, [iset.paths[i] for i in tr])
    # an unreadable image is skipped, reported and counted (as benchmarks.run does)
    cache = build_cache(iset.paths, cfg.img_size, cache_dir=deep_cache_dir(cfg.cache_dir),
                        on_error="skip", crop=cfg.crop, crop_options=cfg.crop_options,
                        stain=stain, progress=cfg.progress and rank == 0)
    skipped = {str(iset.paths[i]): msg for i, msg in sorted(cache.errors.items())}
    if skipped:
        readable = np.asarray(cache.ok, bool)
        tr, va, te = tr[readable[tr]], va[readable[va]], te[readable[te]]
        if rank == 0:
            print(f"warning: {len(skipped)} of {len(iset.paths)} images cannot be read and are "
                  f"skipped:", file=sys.stderr)
            for path, msg in list(skipped.items())[:10]:
                print(f"  {msg if path in msg else f'{path}: {msg}'}", file=sys.stderr)
            if len(skipped) > 10:
                print(f"  ... and {len(skipped) - 10} more (result.json)", file=sys.stderr)
    images, y = cache.images, np.asarray(iset.y, np.int64)
    missing = [c for i, c in enumerate(classes) if not np.any(y[tr] == i)]
    if missing:
        raise ValueError(f"no training images for class(es) {', '.join(missing)}")
    mean, std = channel_stats(images[np.sort(tr)])
    aug = None if cfg.no_augment else build_augmentation(**cfg.augment)
    train_ds = ArrayDataset(images, y, tr, transform=aug)
    val_ds = ArrayDataset(images, y, va) if len(va) else None
    meta = {"model": cfg.model, "model_kwargs": cfg.model_kwargs, "classes": classes,
            "img_size": cfg.img_size, "mean": list(mean), "std": list(std),
            "normalization": "x/255 then (x - mean) / std per RGB channel",
            "crop": cfg.crop, "crop_options": cfg.crop_options,
            "stain": None if stain is None else stain.to_dict(),
            "resize": "deep.cache.prepare_image(crop, crop_options), area resize",
            "data": str(cfg.data),
            "split": {"scheme": getattr(split, "scheme", cfg.split),
                      "seed": getattr(split, "seed", cfg.split_seed)}}
    if rank == 0:
        out.mkdir(parents=True, exist_ok=True)
        from wbc_classic.io.atomic import atomic_write_text

        atomic_write_text(out / "config.json", json.dumps(cfg.to_json(), indent=2))
        if hasattr(split, "save"):
            split.save(out / "split.json")
        if not cfg.resume and (out / "metrics.jsonl").exists():
            (out / "metrics.jsonl").unlink()
    hist = fit(model, train_ds, val_ds, cfg, meta=meta, out=out, device=device)
    result: dict[str, Any] = {"model": cfg.model, "img_size": cfg.img_size,
                              "classes": classes, "n_train": int(len(tr)),
                              "n_val": int(len(va)), "n_test": int(len(te)),
                              "epochs_run": len(hist["history"]),
                              "best_epoch": hist["best_epoch"],
                              "train_seconds": hist["train_seconds"],
                              "n_skipped": len(skipped), "skipped": skipped}
    if rank == 0 and len(te):
        from .checkpoint import load_checkpoint as _lc

        best = out / "best.pt"
        if best.is_file():
            model.load_state_dict(_lc(best)["state_dict"])
        test_imgs = np.asarray(images[te])
        for tta in sorted({False, bool(cfg.tta)}):
            z = predict_logits(model, test_imgs, mean, std, device=device, tta=tta)
            pred = z.argmax(1)
            key = "test_tta" if tta else "test"
            result[key] = _scores(y[te], pred, len(classes))
        from wbc_classic.io.atomic import atomic_write_text

        atomic_write_text(out / "result.json", json.dumps(result, indent=2))
        print(json.dumps(result), flush=True)
    if world > 1:
        dist.barrier()
    return result


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


def build_parser() -> argparse.ArgumentParser:
    """The ``python -m deep.train`` argument parser."""
    from wbc_classic.data.split import scheme_argument
    from wbc_classic.preprocess.stain import available_normalizers

    from .cache import CROPS

    d = TrainConfig()
    p = argparse.ArgumentParser(
        prog="python -m deep.train", epilog=EXAMPLE,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Train a deep model on class folders with the shared Split.")
    p.add_argument("--data", required=True, help="root with one folder per class")
    p.add_argument("--out", default=d.out, help="output directory (default %(default)s)")
    p.add_argument("--model", default=d.model, help="zoo model name (default %(default)s)")
    p.add_argument("--model-kwargs", type=json_object, default={},
                   help='JSON, e.g. \'{"width": 0.5}\'')
    p.add_argument("--img-size", type=int_range(8, 1024), default=d.img_size)
    p.add_argument("--crop", default=d.crop, choices=CROPS,
                   help="'cell': fixed-size square around the segmented leukocyte, "
                        "surroundings blanked (cross-lab robustness); default %(default)s")
    p.add_argument("--crop-options", type=json_object, default={},
                   help='JSON options of the cell crop, e.g. \'{"side_um": 25}\'')
    p.add_argument("--stain", default=d.stain,
                   choices=available_normalizers(),
                   help="stain normalisation fitted on 50 training images, stored in the "
                        "checkpoint and applied by deep.predict (default %(default)s)")
    p.add_argument("--classes", nargs="+", default=None, help="class folders to use, in order")
    p.add_argument("--split", default=d.split, type=scheme_argument,
                   help="80/20, 90/10 or 50/25/25")
    p.add_argument("--split-seed", type=int_range(0, 2**32 - 1), default=d.split_seed)
    p.add_argument("--split-file", default=None, help="a saved Split JSON to reuse")
    p.add_argument("--val-fraction", type=float_range(0, 0.9), default=d.val_fraction)
    p.add_argument("--epochs", type=int_range(1, 100_000), default=d.epochs)
    p.add_argument("--batch-size", type=int_range(1, 65_536), default=d.batch_size)
    p.add_argument("--optimizer", default=d.optimizer, choices=["adamw", "adam", "sgd"])
    p.add_argument("--lr", type=float_range(0, 10, lo_open=True), default=d.lr)
    p.add_argument("--weight-decay", type=float_range(0, 10), default=d.weight_decay)
    p.add_argument("--warmup-epochs", type=float_range(0, 1000), default=d.warmup_epochs)
    p.add_argument("--scheduler", default=d.scheduler, choices=["cosine", "plateau", "none"])
    p.add_argument("--patience", type=int_range(0), default=d.patience,
                   help="early stopping patience in epochs (0 = off)")
    p.add_argument("--label-smoothing", type=float_range(0, 1, hi_open=True),
                   default=d.label_smoothing)
    p.add_argument("--class-weights", action="store_true", help="balanced class weights")
    p.add_argument("--augment", type=json_object, default={},
                   help='JSON kwargs of deep.data.build_augmentation, e.g. \'{"rotation": 90}\'')
    p.add_argument("--no-augment", action="store_true")
    p.add_argument("--pretrained", default=None,
                   help="'imagenet' (from the local torch hub cache) or a .pth file")
    p.add_argument("--freeze-epochs", type=int_range(0), default=0,
                   help="with --pretrained: epochs training the head only")
    p.add_argument("--unfreeze-last", type=int_range(0), default=0,
                   help="phase 2: train the last N layers (0 = all)")
    p.add_argument("--seed", type=int_range(0, 2**32 - 1), default=d.seed)
    p.add_argument("--num-workers", type=int_range(0, 256), default=d.num_workers)
    p.add_argument("--cache-dir", default=None,
                   help="cache folder (default $WBC_CACHE_DIR, else ~/.cache/wbc_classic); "
                        "decoded images go to its deep/ sub-folder")
    p.add_argument("--resume", action="store_true", help="continue from OUT/last.pt")
    p.add_argument("--max-minutes", type=float_range(0, lo_open=True), default=None,
                   help="training time budget")
    p.add_argument("--no-tta", action="store_true", help="no flip test-time augmentation")
    p.add_argument("--no-amp", action="store_true")
    p.add_argument("--device", default=None, help="cpu, cuda, cuda:1 (default: auto)")
    p.add_argument("--threads", type=int_range(1, 1024), default=None,
                   help="torch CPU threads")
    p.add_argument("--no-progress", action="store_true")
    return p


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``python -m deep.train``: exit code 0 done, 1 done but some images could
    not be read (skipped and listed), 2 usage or configuration error."""
    from wbc_classic.io.atomic import OutputError, check_output_dir

    from .device import resolve_device

    a = build_parser().parse_args(argv)
    try:
        check_output_dir(a.out, "--out")  # before any decoding or training
        resolve_device(a.device)
    except (OutputError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    try:
        cfg = TrainConfig(
            data=a.data, out=a.out, model=a.model, model_kwargs=a.model_kwargs,
            img_size=a.img_size, crop=a.crop, crop_options=a.crop_options,
            stain=a.stain,
            classes=a.classes, split=a.split, split_seed=a.split_seed,
            split_file=a.split_file, val_fraction=a.val_fraction, epochs=a.epochs,
            batch_size=a.batch_size, optimizer=a.optimizer, lr=a.lr,
            weight_decay=a.weight_decay, warmup_epochs=a.warmup_epochs,
            scheduler=a.scheduler, patience=a.patience, label_smoothing=a.label_smoothing,
            use_class_weights=a.class_weights, augment=a.augment,
            no_augment=a.no_augment, pretrained=a.pretrained, freeze_epochs=a.freeze_epochs,
            unfreeze_last=a.unfreeze_last, seed=a.seed, num_workers=a.num_workers,
            cache_dir=a.cache_dir, resume=a.resume, max_minutes=a.max_minutes,
            tta=not a.no_tta, amp=not a.no_amp, device=a.device, threads=a.threads,
            progress=not a.no_progress)
        result = train(cfg)
    except (ValueError, FileNotFoundError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    finally:
        if dist.is_available() and dist.is_initialized():
            dist.destroy_process_group()
    return EXIT_FAILED_INPUTS if result.get("n_skipped") else EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
