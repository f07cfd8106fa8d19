"""Classify images with a trained deep checkpoint; the same CSV as ``wbc-classic predict``.

::

    python -m deep.predict --checkpoint runs/wbcnet64/best.pt cells/ extra.jpg --out preds.csv

CSV columns: ``path, status, predicted_class, p_<class>... (checkpoint class order), error,
note, shift_score, shift_flag``. ``shift_score`` says how unlike the training images an image
is (higher = less like them), by the checkpoint's ``shift_method``: ``mahalanobis`` (every
checkpoint trained by this version) the Mahalanobis distance of the network's penultimate
features to its training images' (:class:`deep.adapt.FeatureShift`, the same distance as the
classical family's), ``energy`` (older checkpoints) the energy of its logits
(:func:`deep.adapt.energy_score`). ``shift_flag`` is 1 above the checkpoint's
``shift_threshold`` (the 0.99 quantile of its validation images' scores), empty for a
checkpoint without one; a summary line says how many images are flagged, as ``wbc-classic
predict`` does. For a soft-voting ensemble the score is the vote-weighted mean of the members'
scores and the threshold the largest of theirs, so an image that no member flags is never
flagged. ``--adapt [--method auto|features|bn]`` first adapts the network to the batch's own
readable images with a leukocyte (the checkpoint file is not changed), as ``python -m
deep.adapt`` does (:func:`deep.adapt.adapt_network`): ``features`` moves what the head
receives onto the training images' per-feature mean and spread (at least 20 images, of the
lab's usual mix of cells), ``bn`` re-estimates the BatchNorm statistics (at least 8),
``auto`` (the default) is ``features`` when the checkpoint holds its training features'
statistics and its shift warning flags at least half the images, no adaptation when it flags
fewer, and ``bn`` for older checkpoints; a line says what was done. An adapted checkpoint is
not adapted again. An unreadable image gets ``status=error``
with its message and the batch goes on. An image without a leukocyte gets
``status=no_cell``, no class and empty probabilities (:mod:`wbc_classic.io.predictions`);
``--cell-check`` decides how that is found out:

``segment`` (default)  the classical segmenter's ``found`` flag
                       (:func:`wbc_classic.preprocess.cellcrop.leukocyte_found`), the same
                       decision as ``wbc-classic predict``; costs about 45 ms per 360 px image;
``contrast``           only blank or uniform images (the 1st-99th percentile range of the grey
                       levels below 8 of 255): cheap, but an image of red cells alone is
                       still classified;
``off``                every readable image is classified.

Exit codes (:mod:`wbc_classic.io.options`): 0 every image was classified; 1 some failed or
held no leukocyte; 2 a bad option or device, an unusable checkpoint, no input image, or an
``--out`` that cannot be written (checked before any work), too few images for ``--adapt``.
The CSV is written atomically.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Literal, overload

import numpy as np
import torch
from torch import nn

from wbc_classic.io.options import EXIT_FAILED_INPUTS, EXIT_OK, EXIT_USAGE, int_range
from wbc_classic.io.predictions import (
    batch_report,
    batch_summary,
    expand_inputs,
    write_predictions_csv,
)

from .adapt import ADAPT_METHODS, adapt_network, adaptation_records, energy_score
from .checkpoint import CheckpointMeta
from .data import normalize_batch
from .inputs import CELL_CHECKS, no_cell_reason

__all__ = ["CELL_CHECKS", "expand_inputs", "load_predictor", "main", "no_cell_reason",
           "predict_logits", "predict_paths", "predict_proba", "soft_vote",
           "write_predictions_csv"]

@overload
def predict_logits(model: nn.Module, images: np.ndarray | torch.Tensor, mean: Sequence[float],
                   std: Sequence[float], *, batch_size: int = ...,
                   device: str | torch.device = ..., tta: bool = ...,
                   return_features: Literal[False] = ...) -> np.ndarray: ...


@overload
def predict_logits(model: nn.Module, images: np.ndarray | torch.Tensor, mean: Sequence[float],
                   std: Sequence[float], *, batch_size: int = ...,
                   device: str | torch.device = ..., tta: bool = ...,
                   return_features: Literal[True]) -> tuple[np.ndarray, np.ndarray]: ...


@torch.no_grad()
def predict_logits(model: nn.Module, images: np.ndarray | torch.Tensor, mean: Sequence[float],
                   std: Sequence[float], *, batch_size: int = 256,
                   device: str | torch.device = "cpu", tta: bool = False,
                   return_features: bool = False
                   ) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
    """The deep prediction loop: logits of ``model`` for a batch of images.

    Every deep prediction (validation loss in training, test scores, ``deep.predict``, the
    benchmark, the shift score's features) goes through here.

    Parameters
    ----------
    model : nn.Module
    images : ndarray, shape (N, H, W, 3), uint8, or a tensor (N, 3, H, W)
        RGB, already at the model's size.
    mean, std : sequence of 3 float
        Normalisation of the training images (``CheckpointMeta.mean``/``std``).
    batch_size : int
    device : str or torch.device
    tta : bool
        Average the logits of the 4 flips (identity, h, v, hv).
    return_features : bool
        Also return what the head receives (:func:`deep.adapt.head_inputs`), from the
        unflipped image; the model must be a zoo model.

    Returns
    -------
    logits : ndarray, shape (N, n_classes), float32
    features : ndarray, shape (N, F), float64
        Only with ``return_features``.
    """
    from .adapt import head_inputs

    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    model.eval()
    device = torch.device(device)
    out, feats = [], []
    for s in range(0, len(images), batch_size):
        xb = images[s:s + batch_size]
        xb = torch.from_numpy(np.ascontiguousarray(xb)) if isinstance(xb, np.ndarray) else xb
        x = normalize_batch(xb.to(device), mean, std)
        if return_features:
            with head_inputs(model) as grabbed:
                z = model(x)
            feats.append(grabbed[0])
        else:
            z = model(x)
        if tta:
            z = (z + model(x.flip(3)) + model(x.flip(2)) + model(x.flip(2, 3))) / 4
        out.append(z.float().cpu())
    logits = torch.cat(out).numpy() if out else np.zeros((0, 0), np.float32)
    if not return_features:
        return logits
    return logits, torch.cat(feats).double().numpy() if feats else np.zeros((0, 0))


def _soft_vote_members(model: nn.Module) -> tuple[list[nn.Module], np.ndarray] | None:
    """The members and vote weights of a soft-voting ensemble, or None for any other model."""
    from .models.ensemble import Ensemble

    if isinstance(model, Ensemble) and model.mode == "soft":
        return list(model.members), model.vote_weights.detach().cpu().double().numpy()
    return None


@overload
def predict_proba(model: nn.Module, images: np.ndarray, meta: CheckpointMeta | Mapping[str, Any],
                  *, batch_size: int = ..., device: str | torch.device = ..., tta: bool = ...,
                  return_shift: Literal[False] = ...) -> np.ndarray: ...


@overload
def predict_proba(model: nn.Module, images: np.ndarray, meta: CheckpointMeta | Mapping[str, Any],
                  *, batch_size: int = ..., device: str | torch.device = ..., tta: bool = ...,
                  return_shift: Literal[True]) -> tuple[np.ndarray, np.ndarray]: ...


def predict_proba(model: nn.Module, images: np.ndarray, meta: CheckpointMeta | Mapping[str, Any],
                  *, batch_size: int = 64, device: str | torch.device = "cpu",
                  tta: bool = False, return_shift: bool = False
                  ) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
    """Class probabilities (softmax of :func:`predict_logits`) for images at the model's size.

    Parameters
    ----------
    model : nn.Module
        A network, or a soft-voting :class:`deep.models.ensemble.Ensemble`: its members'
        probabilities are averaged with the vote weights (:func:`soft_vote`, the ensemble's own
        rule; with ``tta`` each member's logits are averaged over the flips first).
    images : ndarray, shape (N, S, S, 3), uint8
        RGB, ``S == meta["img_size"]`` (use :func:`deep.cache.prepare_image` with the
        checkpoint's ``crop`` and ``crop_options``).
    meta : CheckpointMeta or dict
        Checkpoint metadata (``mean``, ``std``, ``img_size``, ``classes``).
    tta : bool
        Average the logits over the 4 flips.
    return_shift : bool
        Also return each image's shift score, by the checkpoint's ``shift_method``:
        ``"mahalanobis"`` (checkpoints trained by this version) the network's
        :class:`deep.adapt.FeatureShift` score of its penultimate features, ``"energy"``
        (older checkpoints) the energy of its logits (:func:`deep.adapt.energy_score`); for
        a soft-voting ensemble the vote-weighted mean of the members' scores (the energy of
        the ensemble's log-probabilities would be 0).

    Returns
    -------
    proba : ndarray, shape (N, n_classes), float32
    shift : ndarray, shape (N,), float64
        Only with ``return_shift``; higher = less like the training images.

    Raises
    ------
    ValueError
        Images of the wrong shape, or ``shift_method`` is ``"mahalanobis"`` and a network
        carries no ``feature_shift``.
    """
    images = np.asarray(images)
    s = int(meta["img_size"])
    if images.ndim != 4 or images.shape[-1] != 3:
        raise ValueError(f"expected uint8 images of shape (N, {s}, {s}, 3), got {images.shape}")
    if images.shape[1:3] != (s, s):
        raise ValueError(f"images are {images.shape[1]}x{images.shape[2]} px but the model "
                         f"expects {s}x{s}: prepare them with deep.cache.prepare_image")
    n_classes = len(meta["classes"])
    if len(images) == 0:
        proba, shift = np.zeros((0, n_classes), np.float32), np.zeros(0)
        return (proba, shift) if return_shift else proba
    soft = _soft_vote_members(model)
    members, weights = soft if soft is not None else ([model], np.ones(1))
    by_features = return_shift and meta.get("shift_method", "energy") == "mahalanobis"
    scorers = [getattr(m, "feature_shift", None) for m in members]
    if by_features and any(fs is None for fs in scorers):
        raise ValueError("the checkpoint's shift_method is 'mahalanobis' but its network "
                         "carries no feature_shift (load it with deep.checkpoint.load_model)")
    zs, scores = [], []
    for m, fs in zip(members, scorers, strict=True):
        if fs is not None and by_features:
            z, features = predict_logits(m, images, meta["mean"], meta["std"],
                                         batch_size=batch_size, device=device, tta=tta,
                                         return_features=True)
            scores.append(fs.score(features))
        else:
            z = predict_logits(m, images, meta["mean"], meta["std"], batch_size=batch_size,
                               device=device, tta=tta)
            if return_shift:
                scores.append(energy_score(z))
        zs.append(z)
    probas = [torch.softmax(torch.from_numpy(z), 1).numpy() for z in zs]
    proba = probas[0] if soft is None else soft_vote(probas, list(weights)).astype(np.float32)
    if not return_shift:
        return proba
    return proba, np.tensordot(weights, np.stack(scores), axes=1)


def soft_vote(probas: Sequence[np.ndarray], weights: Sequence[float] | None = None
              ) -> np.ndarray:
    """Soft voting: the (weighted) mean of several models' class probabilities.

    The same rule as :class:`deep.models.ensemble.Ensemble` with ``mode="soft"`` (whose
    output is the log of this mean), for predictions already made -- e.g. the cached test
    predictions of a benchmark's networks.

    Parameters
    ----------
    probas : sequence of ndarray, each shape (N, n_classes)
    weights : sequence of float, optional
        One non-negative weight per member (default equal), normalised to sum 1.

    Returns
    -------
    ndarray, shape (N, n_classes), float64
    """
    if not probas:
        raise ValueError("soft_vote: give at least one member's probabilities")
    stack = np.stack([np.asarray(p, np.float64) for p in probas])
    w = np.ones(len(stack)) if weights is None else np.asarray(weights, np.float64)
    if w.shape != (len(stack),) or (w < 0).any() or w.sum() <= 0:
        raise ValueError("soft_vote: weights must be non-negative, one per member")
    return np.tensordot(w / w.sum(), stack, axes=1)


def predict_paths(model: nn.Module, meta: Mapping[str, Any],
                  paths: Sequence[str | os.PathLike], *, batch_size: int = 64,
                  device: str | torch.device = "cpu", tta: bool = False,
                  cell_check: str = "segment", adapt: bool | str | None = None,
                  on_batch: Any = None, on_adapt: Any = None) -> list[dict[str, Any]]:
    """Read, resize and classify image files; one row dict per path, errors included.

    Row keys: ``path, status ("ok"|"no_cell"|"error"), predicted_class, proba (list), error,
    note``, and for ``ok`` rows ``shift_score`` (float: :func:`predict_proba`'s shift score) and
    ``shift_flag`` (bool, score above ``meta["shift_threshold"]``; None when the checkpoint
    has none). The files are read by :func:`deep.inputs.read_inputs` (``cell_check``: see
    :func:`deep.inputs.no_cell_reason`). ``on_batch(n)`` is called after each batch of ``n``
    paths has been read (progress).

    ``adapt`` (one of :data:`deep.adapt.ADAPT_METHODS`, or True for ``"auto"``): read every
    file first, adapt ``model`` to the usable images (:func:`deep.adapt.adapt_network`;
    ValueError when there are too few, or when the checkpoint is adapted already) and
    classify them with it; ``on_adapt(info)`` then receives what the adaptation did
    (:func:`deep.adapt.adapt_network`'s ``info``).
    """
    from .adapt import adapted_already
    from .inputs import read_inputs

    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    method = "auto" if adapt is True else (adapt or None)
    done_before = adapted_already(meta) if method else ""
    if done_before:
        raise ValueError(f"the checkpoint is adapted already ({done_before}); "
                         "adapt the checkpoint as trained instead")
    rows: list[dict[str, Any]] = []
    waiting: list[np.ndarray] = []  # --adapt: every image is read before the first is classified
    for start in range(0, len(paths), batch_size):
        chunk_rows, images = read_inputs(paths[start:start + batch_size], meta,
                                         cell_check=cell_check)
        rows += chunk_rows
        if method:
            waiting.append(images)
        else:
            _classify(model, meta, chunk_rows, images, batch_size=batch_size, device=device,
                      tta=tta)
        if on_batch is not None:
            on_batch(len(chunk_rows))
    if method:
        images = np.concatenate(waiting) if waiting else np.zeros((0, 1, 1, 3), np.uint8)
        # the warning is the network's as trained (its scorer was fitted on its features);
        # auto decides by the same scores
        shift = predict_proba(model, images, meta, batch_size=batch_size, device=device,
                              return_shift=True)[1]
        adapted, info = adapt_network(model, images, meta, method=method,
                                      batch_size=batch_size, device=device, shift=shift)
        _classify(adapted, meta, rows, images, batch_size=batch_size, device=device, tta=tta,
                  shift=shift)
        if on_adapt is not None:
            on_adapt(info)
    return rows


def _bn_adapted(meta: Mapping[str, Any]) -> bool:
    """Whether a checkpoint (or an ensemble member) was adapted by AdaBN."""
    return any(r.get("method") == "bn-statistics" for r in adaptation_records(meta))


def _classify(model: nn.Module, meta: Mapping[str, Any], rows: list[dict[str, Any]],
              images: np.ndarray, shift: np.ndarray | None = None, **kw: Any) -> None:
    """Fill in the class, probabilities and shift score of ``rows``' ``ok`` rows (the rows of
    :func:`deep.inputs.read_inputs`, whose ``images`` are in the same order).

    ``shift``: the images' shift scores, when they do not come from ``model`` -- for
    ``--adapt`` those of the network as trained (of the unflipped images): the scorer was
    fitted on its features, and AdaBN moves them even on images like the training ones (the
    BatchNorm statistics of the augmented training images are not those of plain ones), so
    the adapted network's features would be flagged whatever the batch."""
    ok = [r for r in rows if r["status"] == "ok"]
    if not ok:
        return
    classes = list(meta["classes"])
    given = shift is not None
    if shift is None:
        proba, shift = predict_proba(model, images, meta, return_shift=True, **kw)
    else:
        proba = predict_proba(model, images, meta, **kw)
    # an AdaBN checkpoint's features are not those its scorer was fitted on (a head input
    # map leaves them as they are: the score is of the backbone's features)
    meaningless = _bn_adapted(meta) and not given \
        and meta.get("shift_method") == "mahalanobis"
    threshold = meta.get("shift_threshold")
    for row, pr, e in zip(ok, proba, shift, strict=True):
        row.update(predicted_class=classes[int(pr.argmax())], proba=[float(v) for v in pr],
                   shift_score=None if meaningless else float(e),
                   shift_flag=None if threshold is None else bool(e > threshold))


EXAMPLE = """example:
  python -m deep.predict --checkpoint runs/wbcnet64/best.pt cells/ extra.jpg --out preds.csv
  # soft-voting ensemble (Hussien & Kareem: VGG19 + Xception + U-Net)
  python -m deep.predict --checkpoint vgg19/best.pt --checkpoint xception/best.pt \\
      --checkpoint unet/best.pt cells/ --out ensemble.csv
"""


def load_predictor(checkpoints: Sequence[str | os.PathLike[str]], *,
                   vote_weights: Sequence[float] | None = None,
                   device: str | torch.device = "cpu") -> tuple[nn.Module, dict[str, Any]]:
    """The model of one checkpoint, or the soft-voting ensemble of several.

    Returns
    -------
    model : nn.Module
        In eval mode on ``device``.
    meta : dict
        Checkpoint metadata (classes, img_size, mean, std, crop, stain...); an ensemble's
        members must share classes, image size and normalisation (trained on one Split).
    """
    from .checkpoint import load_model

    paths = list(checkpoints)
    if len(paths) == 1 and vote_weights is None:
        return load_model(paths[0], device=device)
    from .models.ensemble import ensemble_from_checkpoints

    model, meta = ensemble_from_checkpoints(paths, mode="soft", vote_weights=vote_weights)
    return model.eval().to(device), meta


def build_parser() -> argparse.ArgumentParser:
    """The ``python -m deep.predict`` argument parser."""
    p = argparse.ArgumentParser(prog="python -m deep.predict", epilog=EXAMPLE,
                                formatter_class=argparse.RawDescriptionHelpFormatter,
                                description="Classify images with a deep checkpoint.")
    p.add_argument("--checkpoint", required=True, type=Path, action="append",
                   help="best.pt / last.pt; repeat it for the soft-voting ensemble of "
                        "several")
    p.add_argument("--vote-weights", type=float, nargs="+", default=None,
                   help="ensemble: one weight per checkpoint (default equal)")
    p.add_argument("inputs", nargs="+", metavar="IMAGES_OR_DIRS",
                   help="image files and/or folders (searched recursively for images)")
    p.add_argument("--out", required=True, type=Path, help="CSV file (written atomically)")
    p.add_argument("--batch-size", type=int_range(1, 4096), default=64,
                   help="images per forward pass (default 64)")
    p.add_argument("--tta", action="store_true", help="average over the 4 flips")
    p.add_argument("--device", default=None, help="cpu / cuda (default: cuda if present)")
    p.add_argument("--cell-check", choices=CELL_CHECKS, default="segment",
                   help="how an image without a leukocyte is recognised (status no_cell): "
                        "segment (default, the classical segmenter), contrast (blank "
                        "images only, cheap) or off")
    p.add_argument("--adapt", action="store_true",
                   help="first adapt the network to this batch's own images (the lab's usual "
                        "mix of cells, not a folder of one class), as python -m deep.adapt "
                        "does, then classify them; the checkpoint is not changed")
    p.add_argument("--method", choices=ADAPT_METHODS, default="auto",
                   help="with --adapt: features (the head's input features standardised to "
                        "the training images'; at least 20 images), bn (AdaBN; at least 8) "
                        "or auto (the default: features when the checkpoint holds its "
                        "training features' statistics and its shift warning flags at least "
                        "half the images, no adaptation when it flags fewer, bn for older "
                        "checkpoints)")
    return p


def main(argv: list[str] | None = None) -> int:
    """Entry point; exit code 0 all ok, 1 some images failed or held no leukocyte, 2 usage."""
    from wbc_classic.io.atomic import OutputError, check_output_file
    from wbc_classic.io.options import log_to_stderr
    from wbc_classic.io.progress import Progress

    from .device import resolve_device

    a = build_parser().parse_args(argv)
    if a.vote_weights is not None and len(a.vote_weights) != len(a.checkpoint):
        print(f"error: --vote-weights needs {len(a.checkpoint)} values, one per checkpoint",
              file=sys.stderr)
        return 2
    try:
        check_output_file(a.out, "--out")
        device = resolve_device(a.device)
        model, meta = load_predictor(a.checkpoint, vote_weights=a.vote_weights, device=device)
    except (OutputError, FileNotFoundError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    paths = expand_inputs(a.inputs)
    if not paths:
        print(f"error: no image files found in {' '.join(a.inputs)} (empty folder?)",
              file=sys.stderr)
        return EXIT_USAGE
    from .adapt import adapted_already

    done_before = adapted_already(meta) if a.adapt else ""
    if done_before:
        print(f"error: --adapt: {' '.join(map(str, a.checkpoint))} is adapted already "
              f"({done_before}); predict with it as it is, or adapt the checkpoint "
              "as trained", file=sys.stderr)
        return EXIT_USAGE
    t0 = time.perf_counter()
    adapt_info: dict[str, Any] = {}
    try:
        with Progress(total=len(paths), desc="read" if a.adapt else "predict",
                      unit="img") as bar, log_to_stderr():
            rows = predict_paths(model, meta, paths, batch_size=a.batch_size, device=device,
                                 tta=a.tta, cell_check=a.cell_check,
                                 adapt=a.method if a.adapt else None, on_batch=bar.update,
                                 on_adapt=adapt_info.update)
    except ValueError as exc:  # --adapt on too few usable images
        print(f"error: --adapt: cannot adapt to these {len(paths)} images: {exc}",
              file=sys.stderr)
        return EXIT_USAGE
    dt = time.perf_counter() - t0
    write_predictions_csv(a.out, rows, meta["classes"])
    summary, problems = batch_report(rows, a.out, dt)
    print(summary)
    if adapt_info:
        print(f"adapt: {adapt_info['method']}"
              + (f" ({adapt_info['note']})" if adapt_info.get("note") else ""))
    for line in problems:
        print(line, file=sys.stderr)
    flags = [r["shift_flag"] for r in rows if r["status"] == "ok"]
    if flags and meta.get("shift_threshold") is not None:
        print(batch_summary(np.array(flags), what="images", expected=0.01, family="deep",
                            adapted=adapt_info.get("method", "none") != "none"
                            or bool(adapted_already(meta))))
    elif flags and _bn_adapted(meta):
        print("shift: no image is flagged: this checkpoint was adapted (python -m "
              "deep.adapt), so its features are not those its shift scorer was fitted on; "
              "for a shift warning, predict with the checkpoint as trained, or with --adapt")
    elif flags:
        print("shift: scores written; this checkpoint has no shift threshold (trained "
              "without a validation part, or before shift scores), so no image is flagged")
    return EXIT_FAILED_INPUTS if any(r["status"] != "ok" for r in rows) else EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
