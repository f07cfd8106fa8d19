"""Leave-one-lab-out for networks: the LOLO protocol of :mod:`benchmarks.lolo`, trained here.

Issue 12, item 6: the deep family on the same grid as the classical one. For every training
set in ``--train`` (labs joined by ``+``, PBC meaning its 80/20 training part, as in
:mod:`benchmarks.lolo`) and every normalisation in ``--norms`` (the builders' ``norm``:
``batch``, ``group``, ``layer``), one network is trained (:func:`deep.train.train_on_split`,
a time budget of ``--max-minutes``; with ``--recipe lab`` the lab-randomising augmentation)
and scored on every lab outside its training set, and on PBC's test part when PBC is in it.

Each row is also scored with the test-time adaptations of ``--adapt`` (default
``none,bn,features,auto``), on the test lab's unlabelled images: ``bn``, the network's
BatchNorm statistics re-estimated (:func:`deep.adapt.adapt_norm_statistics`, AdaBN; a network
without BatchNorm has no such row), ``features``, the features its head receives
standardised to the training images' (:func:`deep.adapt.standardize_head_inputs`), and
``auto``, what ``deep.predict --adapt`` does (``features`` when the network's shift warning
flags at least half the lab's images, else none). Every row reports the network's own shift
score, the one ``deep.predict`` writes (the checkpoint's ``shift_method``: the Mahalanobis
distance of its penultimate features, :class:`deep.adapt.FeatureShift`): its AUROC between
PBC's test cells and the test lab's cells (when the network was trained on PBC and the test lab
is another one), the share of the test lab's cells flagged by the threshold stored in the
checkpoint, and the accuracy on the unflagged ones (selective accuracy). Beside it, for
comparison, the AUROC of the energy of the logits (:func:`deep.adapt.energy_score`).

``--fewshot K ...`` adds the few-shot curve of the networks trained on ``pbc`` alone: for each
other lab, K and seed, ``min(K, n_c - 1)`` labelled cells per class of that lab (the pick of
:func:`benchmarks.fewshot.pick_per_class`) plus as many PBC training cells per class
(``--fewshot-replay`` times as many; so that PBC is not forgotten) fine-tune the PBC network
for ``--fewshot-epochs`` epochs (batch ``--fewshot-batch-size``, rate ``--fewshot-lr``, no
warm-up, no validation part),
which is then scored on the lab's remaining cells (mean and 95 % t-interval over seeds).

Everything a run trains is kept under ``--out`` (``nets/<key>/best.pt``; key: training set,
settings, images), so a re-run scores without training again.

Example::

    python -m benchmarks.lolo_deep --model wbcnet --norms batch,group --crop cell \\
        --recipe lab --max-minutes 8 --train pbc,pbc+cellavision_seg,pbc+jtsc_seg \\
        --fewshot 5 10 25 --out runs/lolo-deep
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.lolo import (
    CLASSES5,
    DEFAULT_DATA,
    LABS,
    Pair,
    load_labs,
    lolo_pairs,
    markdown,
    score_predictions,
)

__all__ = ["NORMS", "ADAPT", "NetSpec", "train_network", "prepare_images", "score_network",
           "fewshot_rows", "main"]

#: The normalisations compared (the builders' ``norm`` keyword).
NORMS = ("batch", "group", "layer")
#: Test-time adaptations of a network: none, BatchNorm statistics of the test lab (AdaBN), its
#: head's input features standardised to the training images' (``features``), or ``auto``
#: (``features`` when the shift warning flags at least half the lab's images, else none: what
#: ``deep.predict --adapt`` does).
ADAPT = ("none", "bn", "features", "auto")


@dataclasses.dataclass(frozen=True)
class NetSpec:
    """What a LOLO network is: its training settings (the cache key holds all of them)."""

    model: str = "wbcnet"
    norm: str = "batch"
    width: float = 0.75
    img_size: int = 64
    crop: str = "cell"
    recipe: str = "lab"
    max_minutes: float = 8.0
    epochs: int = 300
    threads: int = 1
    seed: int = 0
    stain: str = "none"
    align_weight: float = 0.0

    @property
    def name(self) -> str:
        """Row label: model, normalisation, crop, recipe, a stain normaliser and the
        feature-alignment weight if any."""
        return f"{self.model}-{self.norm}-{self.crop}-{self.recipe}" + \
            (f"-{self.stain}" if self.stain != "none" else "") + \
            (f"-coral{self.align_weight:g}" if self.align_weight > 0 else "")

    def train_config(self, cache_dir: str | None) -> Any:
        """The :class:`deep.train.TrainConfig` (recipe applied)."""
        from deep.train import config_with_recipe

        kwargs: dict[str, Any] = {"norm": self.norm}
        if self.model == "wbcnet":
            kwargs["width"] = self.width
        return config_with_recipe(
            self.recipe, model=self.model, model_kwargs=kwargs, img_size=self.img_size,
            crop=self.crop, epochs=self.epochs, max_minutes=self.max_minutes, patience=0,
            threads=self.threads, seed=self.seed, split_seed=self.seed, progress=False,
            cache_dir=cache_dir, device="cpu", tta=False, stain=self.stain,
            align_weight=self.align_weight)


def _key(spec: NetSpec, paths: Sequence[str], y: np.ndarray, extra: str = "") -> str:
    fields = dataclasses.asdict(spec)
    # the keys of the networks trained before these options
    if fields["stain"] == "none":
        del fields["stain"]
    if fields["align_weight"] == 0:
        del fields["align_weight"]
    h = hashlib.sha256(json.dumps(fields, sort_keys=True).encode())
    h.update("\n".join(paths).encode())
    h.update(np.asarray(y, np.int64).tobytes())
    h.update(extra.encode())
    return h.hexdigest()[:12]


def _all_train(n: int):
    from wbc_classic.data.split import Split

    # every image is in the train part, of which train_on_split holds out 10 % for
    # validation; a Split needs a test part, so row n (a copy of row 0 that the caller
    # appends) is one: train_on_split never reads it
    return Split(train=np.arange(n), val=np.zeros(0, np.int64), test=np.array([n]),
                 seed=0, scheme="lolo")


def train_network(spec: NetSpec, paths: Sequence[str], y: np.ndarray, *, out: Path,
                  cache_dir: str | None = None, pretrained: str | None = None,
                  overrides: dict[str, Any] | None = None, label: str = "",
                  align_paths: Sequence[str] | None = None) -> tuple[Any, Any, Path]:
    """Train (or read back) one network on ``paths``/``y``; returns ``(model, meta, run)``,
    ``run`` the folder holding its ``best.pt``.

    The network is kept as ``out/nets/<key>/best.pt`` with a ``done.json`` beside it: a key
    that is done is loaded, not trained again. ``pretrained`` (a checkpoint) and
    ``overrides`` (:class:`deep.train.TrainConfig` fields) make a fine-tuning run;
    ``align_paths``, the unlabelled images a network with ``spec.align_weight`` aligns its
    features to (in the key).
    """
    from deep.checkpoint import load_checkpoint, load_model
    from deep.train import train_on_split
    from wbc_classic.io.atomic import atomic_write_text

    paths = [str(p) for p in paths]
    y = np.asarray(y, np.int64)
    extra = json.dumps({"pretrained": pretrained, **(overrides or {})}, sort_keys=True)
    if align_paths is not None:
        extra += "\nalign:" + "\n".join(str(p) for p in align_paths)
    run = Path(out) / "nets" / _key(spec, paths, y, extra)
    done = run / "done.json"
    if done.is_file() and (run / "best.pt").is_file():
        model, meta = load_model(run / "best.pt")
        return model, meta, run
    cfg = spec.train_config(cache_dir)
    if pretrained or overrides:
        cfg = dataclasses.replace(cfg, pretrained=pretrained, **(overrides or {}))
    # a fine-tuned network sees its images through the stain normaliser it was trained with
    stain = load_checkpoint(pretrained)["meta"].get("stain") if pretrained else None
    t0 = time.time()
    res = train_on_split(cfg, [*paths, paths[0]], np.r_[y, y[:1]], _all_train(len(y)),
                         classes=list(CLASSES5), out=run, stain=stain,
                         align_images=None if align_paths is None else list(align_paths))
    if res.skipped:
        print(f"  {len(res.skipped)} unreadable training image(s) skipped, e.g. "
              f"{next(iter(res.skipped))}", flush=True)
    atomic_write_text(done, json.dumps({"label": label, "meta": res.meta.to_dict(),
                                        "seconds": round(time.time() - t0, 1)}, indent=1))
    model, meta = load_model(run / "best.pt")
    return model, meta, run


def prepare_images(paths: Sequence[str], meta: Any, cache_dir: str | None
                   ) -> tuple[np.ndarray, np.ndarray]:
    """Test images as the network sees them (decode, its crop, resize; cached) and the
    mask of the readable ones."""
    from deep.cache import build_cache, deep_cache_dir
    from wbc_classic.preprocess.stain import normalizer_from_dict

    stain = normalizer_from_dict(meta["stain"]) if meta.get("stain") else None
    cached = build_cache(list(paths), int(meta["img_size"]), cache_dir=deep_cache_dir(cache_dir),
                         crop=meta.get("crop") or "center",
                         crop_options=meta.get("crop_options"), stain=stain, on_error="skip")
    return np.asarray(cached.images), np.asarray(cached.ok, bool)


def _adapted_proba(model: Any, meta: Any, images: np.ndarray, method: str,
                   shift: np.ndarray) -> tuple[np.ndarray, dict[str, Any]]:
    """Class probabilities of ``images`` after adapting the network to them by ``method``
    (:func:`deep.adapt.adapt_network`; ``shift``: the images' shift scores by the network as
    trained), and what the adaptation did."""
    from deep.adapt import adapt_network
    from deep.predict import predict_proba

    adapted, info = adapt_network(model, images, meta, method=method, shift=shift)
    return predict_proba(adapted, images, meta), info


def score_network(model: Any, meta: Any, spec: NetSpec, pairs: Sequence[Pair], *,
                  adaptations: Sequence[str], cache_dir: str | None, seed: int = 0,
                  n_resamples: int = 1000) -> list[dict]:
    """Rows of one trained network on each of ``pairs`` (its test labs), per adaptation."""

    from benchmarks.shift import auroc
    from deep.adapt import (
        MIN_FEATURE_IMAGES,
        batchnorm_layers,
        energy_score,
        resolve_adapt_method,
    )
    from deep.predict import predict_logits, predict_proba

    rows = []
    pbc_scores: tuple[np.ndarray, np.ndarray] | None = None  # (own score, energy) of PBC test
    thr = meta.get("shift_threshold")
    # PBC's test part first: the other labs' AUROC needs its scores
    for pair in sorted(pairs, key=lambda p: p.test != "pbc"):
        images, ok = prepare_images(pair.test_paths, meta, cache_dir)
        # the shift scores are the network's as trained, as deep.predict (--adapt) writes them
        as_trained, shift = predict_proba(model, images[ok], meta, return_shift=True)
        for adapt in adaptations:
            if (adapt == "bn" and not batchnorm_layers(model)) or \
                    (adapt in ("features", "auto")
                     and resolve_adapt_method(model, "auto") != "features"):
                continue  # nothing that method can adapt
            if adapt in ("features", "auto") and int(ok.sum()) < MIN_FEATURE_IMAGES:
                print(f"  {pair.test}: {int(ok.sum())} images are too few for --adapt "
                      f"{adapt} (at least {MIN_FEATURE_IMAGES}); no row", flush=True)
                continue
            proba, info = (as_trained, {}) if adapt == "none" else \
                _adapted_proba(model, meta, images[ok], adapt, shift)
            pred = np.full(len(pair.test_y), -1, np.int64)
            pred[ok] = proba.argmax(axis=1)
            row: dict[str, Any] = {
                "family": "deep", "model": spec.name + ("" if adapt == "none" else f"+{adapt}"),
                "features": "-", "adaptation": adapt, "norm": spec.norm,
                "train": pair.train_name, "test": pair.test, "unreadable": int((~ok).sum()),
                "shift_method": meta.get("shift_method", "energy"),
                **({"auto_chose": info["method"]} if adapt == "auto" else {}),
                **score_predictions(pair.test_y, pred, seed=seed, n_resamples=n_resamples)}
            # the warning a user gets comes from the network as trained: PBC's test cells
            # against this lab's, both without adaptation
            if adapt == "none":
                energy = energy_score(predict_logits(model, images[ok], meta["mean"],
                                                     meta["std"]))
                if pair.test == "pbc":
                    pbc_scores = (shift, energy)
                elif pbc_scores is not None:
                    row["shift_auroc"] = auroc(pbc_scores[0], shift)
                    row["energy_auroc"] = auroc(pbc_scores[1], energy)
            if thr is not None:
                flag = shift > float(thr)
                yk = pair.test_y[ok]
                row["flagged"] = float(flag.mean())
                row["selective_accuracy"] = (float(np.mean(pred[ok][~flag] == yk[~flag]))
                                             if (~flag).any() else None)
            rows.append(row)
            print(f"{pair.train_name:>30s} -> {pair.test:15s} {row['model']:32s} acc "
                  f"{row['accuracy']['value']:.3f}  bal {row['balanced_accuracy']['value']:.3f}"
                  + (f"  shift AUROC {row['shift_auroc']:.3f} (energy "
                     f"{row['energy_auroc']:.3f})" if "shift_auroc" in row else ""),
                  flush=True)
    return rows


def fewshot_rows(spec: NetSpec, base_ckpt: str, labs: dict, ks: Sequence[int],
                 seeds: Sequence[int], *, epochs: int, lr: float, batch_size: int,
                 out: Path, cache_dir: str | None, replay: int = 1) -> list[dict]:
    """The few-shot curve of the PBC-trained network (see the module docstring);
    ``replay``: PBC training cells per class, as a multiple of the target's k."""
    from benchmarks.fewshot import interval, pick_per_class
    from deep.predict import predict_proba

    pbc = labs["pbc"]
    rows = []
    for target in [t for t in labs if t != "pbc"]:
        t = labs[target]
        tpaths, ty = np.asarray(t.test_paths), np.asarray(t.test_y)
        for k in ks:
            accs = []
            for s in seeds:
                pick = pick_per_class(ty, k, len(CLASSES5), s)
                rest = np.setdiff1d(np.arange(len(ty)), pick)
                replay_rows = pick_per_class(np.asarray(pbc.train_y), replay * max(k, 1),
                                             len(CLASSES5), 1000 + s)
                paths = [*tpaths[pick], *np.asarray(pbc.train_paths)[replay_rows]]
                y = np.r_[ty[pick], np.asarray(pbc.train_y)[replay_rows]]
                model, meta, _ = train_network(
                    spec, paths, y, out=out, cache_dir=cache_dir, pretrained=base_ckpt,
                    label=f"fewshot {target} k={k} seed={s}",
                    overrides={"epochs": epochs, "max_minutes": None, "lr": lr,
                               "batch_size": batch_size, "warmup_epochs": 0.0,
                               "val_fraction": 0.0})
                images, ok = prepare_images(list(tpaths[rest]), meta, cache_dir)
                pred = predict_proba(model, images[ok], meta).argmax(axis=1)
                accs.append(float(np.mean(pred == ty[rest][ok])))
            m, lo, hi = interval(accs)
            rows.append({"model": spec.name, "target": target, "k": int(k), "mean": m,
                         "ci95": [lo, hi], "accuracy": accs, "seeds": list(seeds),
                         "epochs": epochs, "lr": lr, "batch_size": batch_size,
                         "replay": replay})
            print(f"few-shot {target:16s} k={k:3d}  acc {m:.3f} [{lo:.3f}, {hi:.3f}] "
                  f"({len(accs)} seeds)", flush=True)
    return rows


def _markdown_extra(rows: Sequence[dict], few: Sequence[dict]) -> str:
    lines = ["", "## Shift score and selective accuracy", "",
             "The network's own shift score (the checkpoint's `shift_method`, what "
             "`deep.predict` writes) and, for comparison, the energy of its logits.", "",
             "| model | train | test | accuracy | shift score | AUROC vs PBC test | "
             "energy AUROC | flagged | accuracy on unflagged |",
             "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        auc = f"{r['shift_auroc']:.3f}" if "shift_auroc" in r else "-"
        eauc = f"{r['energy_auroc']:.3f}" if "energy_auroc" in r else "-"
        fl = f"{r['flagged']:.2f}" if "flagged" in r else "-"
        sel = r.get("selective_accuracy")
        lines.append(f"| {r['model']} | {r['train']} | {r['test']} | "
                     f"{r['accuracy']['value']:.3f} | {r.get('shift_method', '-')} | {auc} | "
                     f"{eauc} | {fl} | {'-' if sel is None else f'{sel:.3f}'} |")
    if few:
        lines += ["", "## Few-shot: the PBC network fine-tuned on k labelled cells per class",
                  "", "| model | target | k | accuracy (mean over seeds) [95 % CI] |",
                  "|---|---|---|---|"]
        lines += [f"| {r['model']} | {r['target']} | {r['k']} | {r['mean']:.3f} "
                  f"[{r['ci95'][0]:.3f}, {r['ci95'][1]:.3f}] |" for r in few]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.lolo_deep",
                                 description=__doc__.split("\n")[0],
                                 epilog=__doc__[__doc__.index("Example::"):],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=DEFAULT_DATA,
                    help="folder holding the labs' folders (default ../shared/data)")
    ap.add_argument("--labs", default=",".join(LABS), help="labs of the grid, comma-separated")
    ap.add_argument("--train", default="pbc",
                    help="training sets, comma-separated, labs joined by '+' (default pbc)")
    ap.add_argument("--model", default="wbcnet")
    ap.add_argument("--width", type=float, default=0.75, help="wbcnet width")
    ap.add_argument("--norms", default="batch", help="normalisations, comma-separated: "
                    + ", ".join(NORMS))
    ap.add_argument("--adapt", default="none,bn,features,auto",
                    help="test-time adaptations, comma-separated: " + ", ".join(ADAPT))
    ap.add_argument("--crop", default="cell", choices=("center", "none", "cell"))
    ap.add_argument("--recipe", default="lab", help="training recipe (deep.recipes)")
    ap.add_argument("--stain", default="none",
                    help="stain normaliser fitted on the training images and applied to every "
                         "image the networks see (deep.train --stain)")
    ap.add_argument("--align-weight", type=float, default=0.0,
                    help="train each network with a feature-alignment loss (Deep CORAL, "
                         "deep.train's align_weight) to the held-out lab's unlabelled images: "
                         "one network per held-out lab, scored on it and on PBC's test part")
    ap.add_argument("--img-size", type=int, default=64)
    ap.add_argument("--max-minutes", type=float, default=8.0,
                    help="training budget of each network (default 8)")
    ap.add_argument("--epochs", type=int, default=300,
                    help="epoch limit (default 300: the time budget decides)")
    ap.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    ap.add_argument("--fewshot", type=int, nargs="*", default=[],
                    help="k values of the few-shot curve (labelled target cells per class)")
    ap.add_argument("--fewshot-seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--fewshot-epochs", type=int, default=30)
    ap.add_argument("--fewshot-lr", type=float, default=5e-4)
    ap.add_argument("--fewshot-batch-size", type=int, default=16,
                    help="batch size of the fine-tuning (default 16: a few dozen cells give "
                         "a few steps per epoch)")
    ap.add_argument("--fewshot-replay", type=int, default=1,
                    help="PBC training cells per class in the fine-tuning, as a multiple of "
                         "k (default 1)")
    ap.add_argument("--cache-dir", default=None, help="image cache (default $WBC_CACHE_DIR)")
    ap.add_argument("--n-resamples", type=int, default=1000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, required=True,
                    help="folder of the networks, results.json and report.md")
    args = ap.parse_args(argv)
    try:
        norms = [s for s in args.norms.split(",") if s]
        adapts = [s for s in args.adapt.split(",") if s]
        bad = [n for n in norms if n not in NORMS] + [a for a in adapts if a not in ADAPT]
        if bad:
            raise ValueError(f"unknown norms/adaptations {bad}; norms: {', '.join(NORMS)}; "
                             f"adaptations: {', '.join(ADAPT)}")
        from deep.recipes import get_recipe

        get_recipe(args.recipe)
        from wbc_classic.preprocess.stain import available_normalizers

        if args.stain not in available_normalizers():
            raise ValueError(f"unknown --stain {args.stain!r}; one of "
                             f"{', '.join(available_normalizers())}")
        labs = load_labs(args.data, [s for s in args.labs.split(",") if s], seed=args.seed)
        pairs = lolo_pairs(labs)
        trains = [s for s in args.train.split(",") if s]
        known = sorted({p.train_name for p in pairs})
        unknown = [t for t in trains if t not in known]
        if unknown:
            raise ValueError(f"unknown training sets {unknown}; one of {known}")
        if args.fewshot_replay < 1:
            raise ValueError(f"--fewshot-replay must be >= 1, got {args.fewshot_replay}")
        if args.align_weight < 0:
            raise ValueError(f"--align-weight must be >= 0, got {args.align_weight}")
        if args.align_weight > 0 and args.fewshot:
            raise ValueError("--fewshot fine-tunes a network trained without --align-weight")
        if args.fewshot and "pbc" not in trains:
            raise ValueError("--fewshot fine-tunes the network trained on pbc: add pbc to "
                             "--train")
    except (FileNotFoundError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    import torch

    torch.set_num_threads(args.threads)
    rows: list[dict] = []
    few: list[dict] = []
    for norm in norms:
        spec = NetSpec(model=args.model, norm=norm, width=args.width, img_size=args.img_size,
                       crop=args.crop, recipe=args.recipe, max_minutes=args.max_minutes,
                       epochs=args.epochs, threads=args.threads, seed=args.seed,
                       stain=args.stain, align_weight=args.align_weight)
        for train in trains:
            mine = [p for p in pairs if p.train_name == train]
            print(f"# {spec.name}: training on {train} ({len(mine[0].train_y)} cells)",
                  flush=True)
            if spec.align_weight > 0:
                # one network per held-out lab, aligned to its unlabelled images; scored on
                # it and on PBC's test part (what the alignment costs at home)
                home = [p for p in mine if p.test in p.train]
                for pair in (p for p in mine if p.test not in p.train):
                    model, meta, run = train_network(
                        spec, pair.train_paths, pair.train_y, out=args.out,
                        cache_dir=args.cache_dir, label=f"{train}, aligned to {pair.test}",
                        align_paths=pair.test_paths)
                    rows += score_network(model, meta, spec, [*home, pair],
                                          adaptations=adapts, cache_dir=args.cache_dir,
                                          seed=args.seed, n_resamples=args.n_resamples)
                continue
            model, meta, run = train_network(spec, mine[0].train_paths, mine[0].train_y,
                                             out=args.out, cache_dir=args.cache_dir,
                                             label=train)
            rows += score_network(model, meta, spec, mine, adaptations=adapts,
                                  cache_dir=args.cache_dir, seed=args.seed,
                                  n_resamples=args.n_resamples)
            if train == "pbc" and args.fewshot:
                few += fewshot_rows(spec, str(run / "best.pt"), labs, args.fewshot,
                                    args.fewshot_seeds, epochs=args.fewshot_epochs,
                                    lr=args.fewshot_lr,
                                    batch_size=args.fewshot_batch_size, out=args.out,
                                    cache_dir=args.cache_dir, replay=args.fewshot_replay)
    from wbc_classic.io.atomic import atomic_write_text

    args.out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(args.out / "results.json", json.dumps(
        {"protocol": "leave-one-lab-out, networks", "labs": list(labs),
         "classes": list(CLASSES5), "args": {k: (str(v) if isinstance(v, Path) else v)
                                             for k, v in vars(args).items()},
         "rows": rows, "fewshot": few}, indent=1))
    atomic_write_text(args.out / "report.md", markdown(rows) + "\n" + _markdown_extra(rows, few)
                      + "\n")
    print(f"wrote {args.out / 'report.md'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
