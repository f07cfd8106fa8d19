"""The project's main job: both model families on one Split, one table, one report.

::

    python -m benchmarks.run                       # embedded default: synthetic cells, < 3 min
    python -m benchmarks.run --preset pbc8         # PBC, 8 classes (../shared/data/pbc)
    python -m benchmarks.run --preset pbc5 --models classical,wbcnet --split kfold:5
    python -m benchmarks.run --data cells/ --test-data ../shared/data/cellavision_seg
    python -m benchmarks.run --config runs/benchmark-pbc8-0/config.yaml   # repeat a run

What a run does, stage by stage (each stage logs a line with its wall time to stderr):

1. **data** -- the synthetic preset renders labelled cells with :mod:`wbc_classic.data.synthetic`
   into ``<cache>/synthetic/`` as PNG class folders (once; re-runs reuse them) and says plainly
   in the report that the data are synthetic; otherwise a class-per-folder set is read
   (:func:`wbc_classic.data.datasets.load_class_folders`). ``--test-data`` adds another lab's set
   (class folders, or a segmentation-set layout whose ``manifest.csv`` gives the labels):
   the model is trained on all of ``--data`` and tested on all of it (domain shift).
2. **split** -- one :class:`wbc_classic.data.split.Split` (``make_split``, seeded) or the ``k``
   folds of ``kfold_splits``; every model of both families is trained on its train part and
   scored on *the same* test indices.
3. **leakage** -- exact and near-duplicate images between train and test
   (:func:`wbc_classic.evaluation.leakage.find_leakage`); the count is in the table header and a run
   with duplicates is flagged in the report.
4. **segmentation** -- Dice and IoU of :func:`segmentation.segment` against ground-truth
   masks (a generated set for the synthetic preset, ``cellavision_seg`` for the real ones).
5. **classical** -- read + segment + features for every image
   (:func:`wbc_classic.classical.extraction.extract_features`, parallel, cached per image under
   ``--cache-dir``), then each classifier as a :class:`wbc_classic.classical.model.WBCModel` fitted
   on the
   cached features of the train part (saved under ``<out>/models/``).
6. **deep** -- decode + resize once (:func:`deep.cache.build_cache`, cached), then each zoo
   model trained with :func:`deep.train.train_on_split` (torch is imported only here; without
   it the deep models are skipped with a note). Each training is cached under
   ``<out>/deep/`` by model, settings and split: a killed run continues where it stopped.
7. **report** -- :func:`benchmarks.report.write_report`: ``results.csv``, ``results.json``,
   ``report.md``, ``report.html`` (plots, galleries, environment), plus ``config.yaml``
   (the effective settings; ``--config`` reads it back) and ``environment.json``.

Scoring conventions
-------------------
* Every metric comes from :func:`wbc_classic.evaluation.metrics.evaluate` with a 95% percentile
bootstrap
  CI (``n_resamples`` resamples, same seed for every model: paired resamples).
* **Images that fail** (unreadable file, segmenter or feature error; undecodable image for the
  deep path) are never dropped: they are listed in the report and *scored as errors* -- the
  prediction is set to a wrong class (``(y + 1) mod K``) with uniform class probabilities --
  so a model cannot look better by failing on hard images. Failed *training* images are left
  out of training (and counted). A cell the segmenter does not find is not a failure: the
  classifier still predicts from its (empty-mask) features, and the count is reported.
* **k-fold** (``--split kfold:K``): every model is trained K times; the out-of-fold predictions
  are **pooled**, so each image is predicted once by a model that did not see it and the one
  table (with bootstrap CIs and McNemar) covers all images. The per-fold accuracies, with their
  mean +- sd, are in an extra table. Training time is the sum over the folds.
* **Training time**: classical -- the classifier fit on cached features (feature extraction is
  a separate stage, shown with its time per image); deep -- the training loop.
* **Throughput (cells/s)**: end to end, from the image file to the class. The front end is
  timed once per family on ``throughput_images`` test files in one process (classical: decode
  + segment + features; deep: decode + resize) and added to the model's own prediction time
  on the whole test set (classical: median of 3 timed calls; deep: the one timed pass that
  also makes the test predictions, since a heavy network takes minutes per pass on a CPU).
* **Peak memory**: the process's resident-set high-water mark during the model's training and
  prediction calls (:func:`wbc_classic.evaluation.profiling.measure_call`), so it includes the
  baseline
  of the process (Python, NumPy, torch, ...).
* **Model size**: the saved ``.skops`` file (classical) or the serialized state dict (deep).
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
import sys
import time
import warnings
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.config import (
    BenchmarkConfig,
    build_config,
    load_config_file,
    resolve_models,
    save_config,
    shared_data_root,
)
from benchmarks.report import (
    DatasetInfo,
    LeakageSummary,
    Misclassified,
    ModelResult,
    Section,
    write_report,
)

__all__ = ["LoadedData", "RunOutput", "StageLog", "build_parser", "compute_threads", "main",
           "run"]

logger = logging.getLogger("benchmarks.run")

EXAMPLE = """examples:
  python -m benchmarks.run                                  # synthetic default, < 3 min
  python -m benchmarks.run --quick --no-deep                # smoke test, seconds
  python -m benchmarks.run --preset pbc8 --n-jobs 2         # PBC 8 classes
  python -m benchmarks.run --preset pbc5 --models classical,wbcnet --split kfold:5
  python -m benchmarks.run --data ../shared/data/pbc --classes pbc5 \\
      --test-data ../shared/data/cellavision_seg            # train on PBC, test on another lab
  python -m benchmarks.run --config runs/benchmark-pbc8-0/config.yaml
  python -m benchmarks.run --preset pbc8 --models seeds --deep-budget-minutes 95 \\
      --deep-budget-boost wbcnet=8,resnet18=2.5 --epochs 300 --out runs/seeds  # resumable
"""


# --------------------------------------------------------------------------------------------
# progress: stage log lines with timings
# --------------------------------------------------------------------------------------------
class StageLog:
    """Stage log lines with wall times on stderr; the timings also go into the report."""

    def __init__(self, stream: Any = None) -> None:
        self.stream = stream if stream is not None else sys.stderr
        self.t0 = time.perf_counter()
        self.rows: list[dict[str, Any]] = []

    def say(self, text: str) -> None:
        """One line prefixed with the elapsed run time."""
        print(f"[{time.perf_counter() - self.t0:7.1f}s] {text}", file=self.stream, flush=True)

    @contextmanager
    def stage(self, name: str) -> Iterator[dict[str, Any]]:
        """Time a stage; put a short result into the yielded dict's ``"detail"``."""
        from wbc_classic.io.progress import Progress

        info: dict[str, Any] = {"detail": ""}
        self.say(f"{name} ...")
        t = time.perf_counter()
        # in a log (not a terminal, where the stages draw their own bars) a line every few
        # seconds says the stage is still working
        try:
            tty = bool(self.stream.isatty())
        except (AttributeError, ValueError):
            tty = False
        beat = None if tty else Progress(desc=f"  {name}", heartbeat=True, file=self.stream)
        try:
            yield info
        finally:
            if beat is not None:
                beat.close(final_line=False)
            dt = time.perf_counter() - t
            self.rows.append({"stage": name, "seconds": round(dt, 2), "detail": info["detail"]})
            self.say(f"{name} done in {dt:.1f} s" + (f": {info['detail']}" if info["detail"]
                                                       else ""))


# --------------------------------------------------------------------------------------------
# data
# --------------------------------------------------------------------------------------------
@dataclass
class LoadedData:
    """The images of a run: ``paths[:n_data]`` from ``--data``, the rest from ``--test-data``.

    Attributes
    ----------
    paths : list of Path, length N
    y : ndarray of int64, shape (N,)
    classes : tuple of str, length K
    n_data : int
        Items that came from the main data set.
    name, description, root, test_name : str
    synthetic : bool
    notes : list of str
        Excluded items, subsampling, ...
    official_split : Split or None
        The data set's own train/val/test split (MedMNIST ``.npz``), used instead of
        ``--split``.
    """

    paths: list[Path]
    y: np.ndarray
    classes: tuple[str, ...]
    n_data: int
    name: str
    synthetic: bool
    description: str = ""
    root: str | None = None
    test_name: str | None = None
    notes: list[str] = field(default_factory=list)
    official_split: Any = None
    #: the second synthetic laboratory: paths[n_data:] are its cells, all in the test part
    other_lab: str | None = None

    def rel(self, i: int) -> str:
        """Short name of item ``i`` (path relative to its data root)."""
        p = self.paths[i]
        for base in (self.root, self.test_name):
            if base:
                try:
                    return p.relative_to(base).as_posix()
                except ValueError:
                    pass
        return p.name


def _generator_version() -> str:
    """Fingerprint of the synthetic generator's code: part of every generated set's folder
    name, so a changed generator never reuses images rendered by an older one."""
    from wbc_classic.io.fingerprint import code_fingerprint

    return code_fingerprint("wbc_classic.data.synthetic")[:10]


def _synthetic_folder(cfg: BenchmarkConfig, cache: Path, classes: Sequence[str],
                      log: StageLog, *, n_per_class: int | None = None, seed: int | None = None,
                      lab: Mapping[str, Any] | None = None) -> Path:
    """Render (once) the synthetic class-folder set; return its root.

    ``lab`` holds the renderer settings of another synthetic laboratory
    (:data:`benchmarks.config.OTHER_LAB`; default: the main one)."""
    import hashlib

    from wbc_classic.data.synthetic_sets import write_class_folders
    from wbc_classic.io.atomic import atomic_write_text

    n = cfg.n_per_class if n_per_class is None else int(n_per_class)
    seed = cfg.seed if seed is None else int(seed)
    variation: dict[str, Any] = {"size": cfg.synthetic_size}
    if cfg.synthetic_ambiguity:
        variation["ambiguity"] = cfg.synthetic_ambiguity
    if cfg.synthetic_stain_jitter != 1.0:
        variation["stain_jitter"] = cfg.synthetic_stain_jitter
    variation.update(lab or {})
    extra = {k: v for k, v in variation.items() if k != "size"}
    # settings beyond the defaults are part of the folder name (as the size and seed are)
    vtag = "" if not extra else "-v" + hashlib.sha256(
        json.dumps(extra, sort_keys=True).encode()).hexdigest()[:8]
    tag = f"cells-{'-'.join(c[:3] for c in classes)}-n{n}-s{variation['size']}" \
          f"-seed{seed}{vtag}-{_generator_version()}"
    root = cache / "synthetic" / tag
    marker = root / "complete.json"
    if not marker.is_file():
        log.say(f"rendering {n} synthetic cells per class into {root}")
        write_class_folders(root, n, classes=classes, seed=seed, **variation)
        atomic_write_text(marker, json.dumps({"n_per_class": n, "seed": seed,
                                              "classes": list(classes), **variation}))
    else:
        log.say(f"reusing the synthetic cells in {root}")
    return root


def _medmnist_folder(npz: Path, cache: Path, log: StageLog) -> LoadedData:
    """A MedMNIST ``.npz`` with its official split, written (once) as lossless PNG files
    under ``<cache>/medmnist/<name>-<digest>/<class>/`` so both families read it like any
    image set."""
    import hashlib
    import shutil
    import tempfile

    from PIL import Image

    from wbc_classic.data.datasets import load_medmnist_split

    ms = load_medmnist_split(npz)
    h = hashlib.sha256()
    with open(npz, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    root = cache / "medmnist" / f"{npz.stem}-{h.hexdigest()[:12]}"
    part = ms.split.assignment()
    paths = [root / ms.classes[int(lab)] / f"{part[i]}_{i:06d}.png"
             for i, lab in enumerate(ms.y)]
    if not (root / "complete.json").is_file():
        log.say(f"writing the {len(paths)} images of {npz} as PNG files into {root} (once)")
        root.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{root.name}.", dir=root.parent))
        for c in ms.classes:
            (tmp / c).mkdir()
        for img, p in zip(ms.images, paths, strict=True):
            Image.fromarray(img).save(tmp / p.relative_to(root))
        (tmp / "complete.json").write_text(json.dumps({"source": str(npz),
                                                       "sha256": h.hexdigest()}))
        if root.exists():  # an interrupted earlier build without its marker
            shutil.rmtree(root)
        tmp.rename(root)
    sizes = ms.split.sizes
    description = (f"{len(ms.classes)}-class MedMNIST set {npz.name} (official split: train "
                   f"{sizes['train']}, val {sizes['val']}, test {sizes['test']})")
    return LoadedData(paths, ms.y, ms.classes, len(paths), npz.stem, False, description,
                      str(root), None,
                      [f"MedMNIST file {npz.name}: its official train/val/test split is used"],
                      official_split=ms.split)


def _subsample(iset: Any, max_per_class: int | None, seed: int) -> tuple[Any, str | None]:
    if max_per_class is None:
        return iset, None
    rng = np.random.default_rng([seed, 1])
    keep = []
    for c in range(len(iset.classes)):
        idx = np.flatnonzero(iset.y == c)
        keep.append(np.sort(rng.choice(idx, max_per_class, replace=False))
                    if len(idx) > max_per_class else idx)
    sub = iset.subset(np.concatenate(keep))
    if len(sub) == len(iset):
        return iset, None
    return sub, (f"subsampled to at most {max_per_class} images per class (seeded): "
                 f"{len(sub)} of {len(iset)} images")


def _load_labelled(root: Path) -> tuple[list[Path], list[str]]:
    """Paths and label names of a class-folder or labelled segmentation-set layout."""
    from wbc_classic.data.datasets import load_labelled

    iset = load_labelled(root)
    return list(iset.paths), iset.labels


def load_data(cfg: BenchmarkConfig, cache: Path, log: StageLog) -> LoadedData:
    """Load (or render) the images of the run; see the module docstring."""
    from wbc_classic.data.datasets import ImageSet, is_segmentation_layout, load_class_folders
    from wbc_classic.data.labels import PBC5_CLASSES, canonical_label

    notes: list[str] = []
    if cfg.preset == "synthetic" and not cfg.data:
        classes = tuple(canonical_label(c) for c in (cfg.classes or PBC5_CLASSES))
        bad = [c for c in classes if c not in PBC5_CLASSES]
        if bad:
            raise ValueError(f"the synthetic generator has no class {bad}; it draws "
                             f"{', '.join(PBC5_CLASSES)}")
        root = _synthetic_folder(cfg, cache, classes, log)
        iset = load_class_folders(root, classes=classes)
        name = "synthetic"
        synthetic = True
        description = (f"SYNTHETIC cells drawn by wbc_classic.data.synthetic (seed {cfg.seed}): "
                       f"{cfg.n_per_class} per class, {cfg.synthetic_size} px PNG crops, "
                       f"{cfg.synthetic_ambiguity:.0%} of them ambiguous (part-way to a "
                       f"confusable class), stain jitter x{cfg.synthetic_stain_jitter:g}. "
                       "Not real blood: the numbers only show how the methods compare.")
    elif str(cfg.data).lower().endswith(".npz"):
        if cfg.test_data:
            raise ValueError("a MedMNIST .npz brings its own test part: --test-data cannot "
                             "be combined with it")
        if cfg.max_per_class is not None:
            raise ValueError("--max-per-class does not apply to a MedMNIST file (its "
                             "official split is used as it is)")
        assert cfg.data is not None  # str(None) does not end with .npz
        data = _medmnist_folder(Path(cfg.data), cache, log)
        if cfg.classes and tuple(cfg.classes) != data.classes:
            raise ValueError(f"{cfg.data} has the classes {', '.join(data.classes)}; "
                             "--classes cannot choose among them")
        return data
    else:
        root = Path(cfg.data)  # type: ignore[arg-type]
        if not root.is_dir():
            raise FileNotFoundError(f"data folder {root} does not exist"
                                    + (" (set WBC_SHARED_DATA or --data)"
                                       if cfg.preset in ("pbc8", "pbc5") else ""))
        if is_segmentation_layout(root):
            paths, labels = _load_labelled(root)
            names = tuple(cfg.classes) if cfg.classes else tuple(sorted(set(labels)))
            lookup = {c: i for i, c in enumerate(names)}
            keep = [i for i, lab in enumerate(labels) if lab in lookup]
            iset = ImageSet([paths[i] for i in keep],
                            np.array([lookup[labels[i]] for i in keep], np.int64), names, root)
        else:
            iset = load_class_folders(root, classes=cfg.classes)
        name = cfg.preset if cfg.preset in ("pbc8", "pbc5") else root.name
        synthetic = False
        description = (f"{len(iset.classes)}-class set from {root}"
                       + (" (PBC, Acevedo et al. 2020, CC BY 4.0; 40% sample)"
                          if cfg.preset in ("pbc8", "pbc5") else ""))
    iset, note = _subsample(iset, cfg.max_per_class, cfg.seed)
    if note:
        notes.append(note)
    paths, y, classes = list(iset.paths), np.asarray(iset.y, np.int64), tuple(iset.classes)
    n_data = len(paths)
    test_name = None
    other_lab = None
    if synthetic and cfg.other_lab_per_class > 0 and not cfg.test_data:
        from benchmarks.config import OTHER_LAB

        oroot = _synthetic_folder(cfg, cache, classes, log, n_per_class=cfg.other_lab_per_class,
                                  seed=cfg.seed + 1000, lab=OTHER_LAB)
        oset = load_class_folders(oroot, classes=classes)
        paths += list(oset.paths)
        y = np.concatenate([y, np.asarray(oset.y, np.int64)])
        other_lab = str(oroot)
        description += (f" A second synthetic laboratory ({cfg.other_lab_per_class} per class; "
                        + ", ".join(f"{k} {v}" for k, v in OTHER_LAB.items())
                        + ") is scored beside the in-lab test part (cross-lab).")
    if cfg.test_data:
        troot = Path(cfg.test_data)
        if not troot.is_dir():
            raise FileNotFoundError(f"test data folder {troot} does not exist")
        tpaths, tlabels = _load_labelled(troot)
        lookup = {c: i for i, c in enumerate(classes)}
        keep = [i for i, lab in enumerate(tlabels) if lab in lookup]
        dropped: dict[str, int] = {}
        for lab in tlabels:
            if lab not in lookup:
                dropped[lab] = dropped.get(lab, 0) + 1
        if dropped:
            notes.append("test images of classes the model was not trained on were left out: "
                         + ", ".join(f"{k} {v}" for k, v in sorted(dropped.items())))
        if not keep:
            raise ValueError(f"no test image in {troot} belongs to the training classes "
                             f"{classes}")
        paths += [tpaths[i] for i in keep]
        y = np.concatenate([y, np.array([lookup[tlabels[i]] for i in keep], np.int64)])
        test_name = str(troot)
        description += f"; tested on another set: {troot} ({len(keep)} images)"
    return LoadedData(paths, y, classes, n_data, name, synthetic, description,
                      str(iset.root) if iset.root else None, test_name, notes, other_lab=other_lab)


# --------------------------------------------------------------------------------------------
# split and leakage
# --------------------------------------------------------------------------------------------
def make_folds(cfg: BenchmarkConfig, data: LoadedData) -> list[Any]:
    """The run's Split(s): one holdout split, the k folds, or data/test-data."""
    from wbc_classic.data.split import Split, kfold_splits, make_split, parse_scheme

    n = len(data.paths)
    if data.official_split is not None:
        if parse_scheme(cfg.split).kind == "kfold":
            raise ValueError("--split kfold:K cannot be used with a data set that brings its "
                             "own train/val/test split (MedMNIST .npz)")
        return [data.official_split]
    if data.test_name is not None:
        if parse_scheme(cfg.split).kind == "kfold":
            raise ValueError("--split kfold:K cannot be combined with --test-data (the test "
                             "set is fixed)")
        return [Split(np.arange(data.n_data), np.zeros(0, np.int64),
                      np.arange(data.n_data, n), cfg.seed, "external-test", n)]
    parsed = parse_scheme(cfg.split)
    if data.other_lab is not None:
        # the split is made on the main lab's cells; the other lab's are all test images
        other = np.arange(data.n_data, n)
        if parsed.kind == "kfold":
            folds = kfold_splits(data.y[:data.n_data], k=parsed.k,  # type: ignore[arg-type]
                                 seed=cfg.seed)
        else:
            folds = [make_split(data.y[:data.n_data], cfg.split, seed=cfg.seed)]
        return [Split(f.train, f.val, np.concatenate([f.test, other]) if k == 0 else f.test,
                      f.seed, f.scheme, n, f.fold) for k, f in enumerate(folds)]
    if parsed.kind == "kfold":
        return kfold_splits(data.y, k=parsed.k, seed=cfg.seed)  # type: ignore[arg-type]
    return [make_split(data.y, cfg.split, seed=cfg.seed)]


def check_leakage(cfg: BenchmarkConfig, data: LoadedData, folds: Sequence[Any]
                  ) -> tuple[LeakageSummary, list[str]]:
    """Exact and near duplicates between the train and test sides of the split(s)."""
    from wbc_classic.evaluation.leakage import find_duplicates, find_leakage

    method = f"pixel SHA-256 (exact) + pHash Hamming <= {cfg.leakage_max_distance}/64 (near)"
    notes: list[str] = []
    if len(folds) == 1:
        f = folds[0]
        train = np.sort(np.concatenate([f.train, f.val]))
        rep = find_leakage([data.paths[i] for i in train], [data.paths[i] for i in f.test],
                           max_distance=cfg.leakage_max_distance, n_jobs=max(1, cfg.n_jobs))
        ex = [(data.rel(int(train[i])), data.rel(int(f.test[j])))
              for i, j in rep.exact_pairs[:5]]
        ex += [(data.rel(int(train[i])), data.rel(int(f.test[j])))
               for i, j, _ in rep.near_pairs[:5]]
        n_fail = len(rep.train_failures) + len(rep.test_failures)
        if n_fail:
            notes.append(f"leakage check: {n_fail} unreadable image(s) could not be compared")
        return LeakageSummary(exact=rep.n_exact, near=rep.n_near, method=method,
                              leaked_test=rep.n_leaked_test, examples=tuple(ex[:10])), notes
    # k-fold: duplicates within the whole set; a pair leaks when its two images are in
    # different folds (then one of them is in the training part of the other's fold).
    rep = find_duplicates(data.paths, max_distance=cfg.leakage_max_distance,
                          n_jobs=max(1, cfg.n_jobs))
    fold_of = np.empty(len(data.paths), np.int64)
    for k, f in enumerate(folds):
        fold_of[f.test] = k
    ex_pairs = [(int(i), int(j)) for i, j in rep.exact_pairs if fold_of[i] != fold_of[j]]
    near_pairs = [(int(i), int(j)) for i, j, _ in rep.near_pairs if fold_of[i] != fold_of[j]]
    leaked = {i for p in ex_pairs + near_pairs for i in p}
    examples = [(data.rel(i), data.rel(j)) for i, j in (ex_pairs + near_pairs)[:10]]
    within = rep.n_exact + rep.n_near - len(ex_pairs) - len(near_pairs)
    if within:
        notes.append(f"leakage check: {within} duplicate pair(s) fall inside one fold "
                     "(harmless for scoring)")
    return LeakageSummary(exact=len(ex_pairs), near=len(near_pairs),
                          method=method + ", across folds", leaked_test=len(leaked),
                          examples=tuple(examples)), notes


# --------------------------------------------------------------------------------------------
# segmentation scores
# --------------------------------------------------------------------------------------------
def segmentation_section(cfg: BenchmarkConfig, cache: Path, log: StageLog) -> Section | None:
    """Dice/IoU of the classical segmenter against ground-truth masks, as a report table."""
    if cfg.seg_images <= 0:
        return None
    from wbc_classic.data.datasets import load_segmentation_set
    from wbc_classic.evaluation.seg_eval import evaluate_segmentation_set

    if cfg.seg_data:
        root, what = Path(cfg.seg_data), f"ground truth from {cfg.seg_data}"
    elif cfg.preset == "synthetic" and not cfg.data:
        from wbc_classic.data.synthetic_sets import write_segmentation_set
        from wbc_classic.io.atomic import atomic_write_text

        root = cache / "synthetic" / (f"seg-n{cfg.seg_images}-s{cfg.synthetic_size}"
                                      f"-seed{cfg.seed}-{_generator_version()}")
        if not (root / "complete.json").is_file():
            write_segmentation_set(root, cfg.seg_images, seed=cfg.seed, size=cfg.synthetic_size)
            atomic_write_text(root / "complete.json", "{}")
        what = ("SYNTHETIC cells with exact masks (wbc_classic.data.synthetic."
                "write_segmentation_set)")
    else:
        root = shared_data_root() / "cellavision_seg"
        what = "cellavision_seg (Zheng et al. 2018, 255 nucleus / 128 cytoplasm masks)"
    if not root.is_dir():
        log.say(f"segmentation scoring skipped: {root} not found")
        return Section("Segmentation", [{"note": f"skipped: {root} not found"}])
    samples = load_segmentation_set(root)[:cfg.seg_images]
    rep = evaluate_segmentation_set(samples)
    keys = ("nucleus_dice", "nucleus_iou", "cell_dice", "cell_iou")

    def row(name: str, rows: list[Any]) -> dict[str, Any]:
        out: dict[str, Any] = {"images": name, "n": len(rows),
                               "found": f"{sum(r.found for r in rows)}/{len(rows)}"}
        for k in keys:
            v = np.array([getattr(r, k) for r in rows], float)
            out[k.replace("_", " ")] = (f"{v.mean():.3f} +- {v.std(ddof=1):.3f}" if len(v) > 1
                                        else f"{v.mean():.3f}")
        return out

    rows = [row("all", rep.rows)]
    labels = sorted({r.label for r in rep.rows if r.label})
    rows += [row(lab, [r for r in rep.rows if r.label == lab]) for lab in labels]
    s = rep.summary
    note = (f"segmentation.segment vs {what}: Dice and IoU per image, mean +- sd over images "
            f"(a cell not found scores 0). {s['images_per_second']:.1f} images/s "
            f"(segmentation only).")
    log.say(f"segmentation: nucleus Dice {s['nucleus_dice']:.3f}, cell Dice "
            f"{s['cell_dice']:.3f} on {s['n_images']} images")
    return Section("Segmentation scores", rows, note)


# --------------------------------------------------------------------------------------------
# shared helpers
# --------------------------------------------------------------------------------------------
def _score_failed(pred: np.ndarray, score: np.ndarray, idx: np.ndarray, y: np.ndarray) -> None:
    """Failed test images count as errors: a wrong class, uniform probabilities."""
    k = score.shape[1]
    pred[idx] = (y[idx] + 1) % k
    score[idx] = 1.0 / k


def _misclassified(data: LoadedData, test: np.ndarray, pred: np.ndarray, score: np.ndarray,
                   limit: int = 24) -> list[Misclassified]:
    wrong = test[pred[test] != data.y[test]][:limit]
    return [Misclassified(str(data.paths[i]), int(data.y[i]), int(pred[i]),
                          float(score[i, pred[i]]), data.rel(int(i))) for i in wrong]


@dataclass
class _Scored:
    """Pooled predictions of one model over all folds."""

    name: str
    family: str
    pred: np.ndarray
    score: np.ndarray
    train_seconds: float = 0.0
    predict_seconds: float = 0.0
    n_predicted: int = 0
    peak_rss: int = 0
    model_bytes: int | None = None
    fold_acc: list[float] = field(default_factory=list)
    params: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    history: list[list[dict[str, Any]]] = field(default_factory=list)

    def record_fold(self, y: np.ndarray, test: np.ndarray, test_ok: np.ndarray,
                    test_bad: np.ndarray, proba: np.ndarray, m_fit: Any, m_pred: Any) -> None:
        """Store one fold's test probabilities and timings; failed images count as errors."""
        self.score[test_ok] = proba
        self.pred[test_ok] = proba.argmax(1)
        _score_failed(self.pred, self.score, test_bad, y)
        self.train_seconds += m_fit.seconds
        self.predict_seconds += m_pred.seconds
        self.n_predicted += len(test_ok)
        self.peak_rss = max(self.peak_rss, _peak(m_fit, m_pred))
        self.fold_acc.append(float(np.mean(self.pred[test] == y[test])))


def _peak(*ms: Any) -> int:
    return max((m.rss_peak_bytes or 0) for m in ms)


def compute_threads(cfg: BenchmarkConfig, n_train: int) -> int:
    """Threads for classifiers and torch: ``cfg.threads``, else 1 for small training sets."""
    if cfg.threads is not None:
        return (os.cpu_count() or 1) if cfg.threads < 0 else max(1, cfg.threads)
    if n_train < 2000:
        return 1
    return (os.cpu_count() or 1) if cfg.n_jobs < 0 else max(1, cfg.n_jobs)


# --------------------------------------------------------------------------------------------
# classical family
# --------------------------------------------------------------------------------------------
def run_classical(cfg: BenchmarkConfig, names: Sequence[str], data: LoadedData,
                  folds: Sequence[Any], cache: Path, out: Path, log: StageLog,
                  failures: list[dict[str, Any]]) -> list[_Scored]:
    """Extract (cached) features once, then fit and score every classifier on every fold.

    The features come from :meth:`WBCModel.extract` (the model's own front end, with the
    feature cache) and every fold's classifier is a ``WBCModel`` fitted with
    :meth:`WBCModel.fit_features` on those rows: the benchmark orchestrates nothing below.
    """
    from wbc_classic.classical.model import WBCModel
    from wbc_classic.evaluation.profiling import measure_call, model_size_bytes, time_inference

    n, k = len(data.paths), len(data.classes)
    with log.stage("classical: read + segment + features") as st:
        t0 = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            ext = WBCModel(n_jobs=cfg.n_jobs, cache_dir=cache).extract(
                data.paths, progress=cfg.progress)
        dt = time.perf_counter() - t0
        not_found = int((ext.ok & ~ext.found).sum())
        st["detail"] = (f"{n} images, {ext.n_cached} from the cache, "
                        f"{len(ext.failures)} failed, {not_found} without a segmented cell, "
                        f"{ext.X.shape[1]} features ({dt / max(n, 1) * 1000:.1f} ms/image "
                        f"with {cfg.n_jobs} job(s))")
    for f in ext.failures:
        failures.append({"family": "classical", "file": data.rel(f.index), "stage": f.stage,
                         "reason": f.reason})
    ok = ext.ok
    X = ext.X

    # end-to-end front-end cost, measured once on a few test files (uncached, one process)
    test_all = np.unique(np.concatenate([f.test for f in folds]))
    probe = [int(i) for i in test_all if ok[i]][:cfg.throughput_images]
    front = float("nan")
    if probe:
        fe_model = WBCModel(n_jobs=1)
        t0 = time.perf_counter()
        fe_model.transform([data.paths[i] for i in probe])
        front = (time.perf_counter() - t0) / len(probe)
        log.say(f"classical front end (decode + segment + features): "
                f"{front * 1000:.1f} ms/image on {len(probe)} test images")

    results = []
    models_dir = out / "models"
    threads = compute_threads(cfg, max(len(f.train) + len(f.val) for f in folds))
    from wbc_classic.classical.shift import batch_summary

    for name in names:
        sc = _Scored(name, "classical", np.zeros(n, np.int64), np.zeros((n, k)))
        with log.stage(f"classical: {name}") as st:
            model = None
            flags: list[np.ndarray] = []
            for fold in folds:
                tr = np.sort(np.concatenate([fold.train, fold.val]))
                tr = tr[ok[tr]]
                te = fold.test
                te_ok, te_bad = te[ok[te]], te[~ok[te]]
                model = WBCModel(name, n_jobs=threads, seed=cfg.seed,
                                 classes=list(data.classes), cv=0)
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")  # convergence chatter of small folds
                    _, m_fit = measure_call(model.fit_features, X[tr], data.y[tr])
                    proba, m_pred = time_inference(model.predict_proba_features, X[te_ok],
                                                   repeats=3, trace_python=False)
                sc.record_fold(data.y, te, te_ok, te_bad, proba, m_fit, m_pred)
                found = te_ok[ext.found[te_ok]]
                flags.append(model.shift_scores(X[found])[1])
            assert model is not None
            assert model.shift_ is not None  # fit makes the shift scorer
            flags_all = np.concatenate(flags) if flags else np.zeros(0, bool)
            shift_note = batch_summary(flags_all, what="test cells",
                                       expected=1 - model.shift_.quantile)
            from wbc_classic.classical.modelfile import save as save_model

            path = save_model(model, models_dir / f"{name}.skops")
            sc.model_bytes = model_size_bytes(path)
            sc.params = {"classifier": name, "n_features": int(X.shape[1]),
                         "n_train": int(len(tr)), "threads": threads,
                         "saved_model": str(path), "shift_n_scored": int(flags_all.size),
                         "shift_n_flagged": int(flags_all.sum())}
            sc.notes.append(shift_note)
            sc.notes += ["training time: classifier fit on cached features (feature "
                         "extraction is the separate 'read + segment + features' stage)"]
            if any(len(f.val) for f in folds):
                sc.notes.append("fitted on the split's train and val parts together (no "
                                "early stopping to spend the val part on)")
            if len(folds) > 1:
                sc.notes.append(f"k-fold: {len(folds)} fits, out-of-fold predictions pooled; "
                                "the saved model is the last fold's")
            st["detail"] = (f"{'test (in-lab + other lab) ' if data.other_lab else ''}accuracy "
                            f"{np.mean(sc.fold_acc):.3f}, fit {sc.train_seconds:.2f} s")
        clf_per_img = sc.predict_seconds / max(sc.n_predicted, 1)
        sc.params["throughput_front_end_ms"] = round(front * 1000, 2) if math.isfinite(front) \
            else None
        sc.params["throughput_classifier_ms"] = round(clf_per_img * 1000, 4)
        sc.params["_throughput"] = 1.0 / (front + clf_per_img) if math.isfinite(front) else None
        results.append(sc)
    return results


# --------------------------------------------------------------------------------------------
# deep family
# --------------------------------------------------------------------------------------------
def _torch_available() -> str | None:
    """None when torch and torchvision import, else the reason."""
    try:
        import torch  # noqa: F401
        import torchvision  # noqa: F401
    except ImportError as exc:
        return f"{type(exc).__name__}: {exc}"
    return None


#: The TrainConfig fields when the deep cache key was introduced: they are always in the key.
#: A field added later is in the key only when it differs from its default, so adding a
#: setting does not orphan the networks an earlier run finished.
_KEY_FIELDS_V1 = frozenset(
    "model model_kwargs img_size crop crop_options stain classes split split_seed split_file "
    "val_fraction epochs batch_size optimizer lr weight_decay warmup_epochs scheduler "
    "min_lr_ratio patience label_smoothing use_class_weights augment no_augment pretrained "
    "freeze_epochs unfreeze_last seed max_minutes tta amp channels_last".split())


def _deep_key(name: str, tcfg: Any, image_key: str, fold: Any, ok: np.ndarray,
              device: str) -> str:
    """Cache key of one deep model's training: model, settings, images and split.

    No code fingerprint on purpose: a code edit must not throw away hours of finished
    training; a change of settings, data or split does."""
    import dataclasses
    import hashlib

    defaults = {}
    for f in dataclasses.fields(tcfg):
        if f.default is not dataclasses.MISSING:
            defaults[f.name] = f.default
        else:
            assert f.default_factory is not dataclasses.MISSING  # every field has a default
            defaults[f.name] = f.default_factory()
    settings = {k: v for k, v in tcfg.to_json().items()
                if k not in ("out", "progress", "threads", "num_workers", "cache_dir",
                             "resume", "data", "device")
                and (k in _KEY_FIELDS_V1 or v != defaults[k])}
    h = hashlib.sha256(json.dumps({
        "model": name, "settings": settings, "images": image_key,
        "device": str(device).split(":")[0],
        "split": [fold.scheme, fold.seed, fold.fold, fold.label_digest,
                  *(hashlib.sha256(np.asarray(getattr(fold, p), np.int64).tobytes())
                    .hexdigest() for p in ("train", "val", "test"))],
        "usable": hashlib.sha256(np.packbits(ok).tobytes()).hexdigest(),
    }, sort_keys=True, default=str).encode())
    return h.hexdigest()[:16]


def _deep_budgets(cfg: BenchmarkConfig, costs: dict[str, dict[str, int]]
                  ) -> dict[str, float | None]:
    """Training minutes per model and fold: the shared budget's shares, else the fixed one."""
    from benchmarks.config import share_budget

    if cfg.deep_budget_minutes is None:
        return {n: cfg.deep_max_minutes for n in costs}
    return dict(share_budget(cfg.deep_budget_minutes, {n: c["flops"] for n, c in costs.items()},
                             cfg.deep_budget_boost))


def run_deep(cfg: BenchmarkConfig, names: Sequence[str], data: LoadedData,
             folds: Sequence[Any], cache: Path, out: Path, log: StageLog,
             failures: list[dict[str, Any]]) -> list[_Scored]:
    """Decode + resize once (cached), then train (:func:`deep.train.train_on_split`) and
    score every deep model on every fold.

    Resumable: each model's checkpoints and test predictions live in
    ``<out>/deep/<model>[-fold<i>]-<key>/`` (the key: model, settings, images, split). A
    finished model (``done.json`` + ``test_predictions.npz``) is read back, never retrained;
    an interrupted one continues from its ``last.pt``.
    """
    import torch

    from deep.cache import build_cache, prepare_image
    from deep.predict import predict_proba
    from deep.recipes import get_recipe
    from deep.train import accel_settings, config_with_recipe, model_cost, train_on_split
    from wbc_classic.evaluation.profiling import measure_call, model_size_bytes
    from wbc_classic.io.atomic import atomic_path, atomic_write_text
    from wbc_classic.io.images import read_image
    from wbc_classic.io.predictions import batch_summary

    threads = compute_threads(cfg, max(len(f.train) + len(f.val) for f in folds))
    torch.set_num_threads(threads)
    device = cfg.device or ("cuda" if torch.cuda.is_available() else "cpu")
    amp, channels_last = accel_settings(device)
    n, k = len(data.paths), len(data.classes)
    with log.stage(f"deep: decode + {cfg.deep_crop} crop + resize to {cfg.img_size} px") as st:
        t0 = time.time()
        cached = build_cache(data.paths, cfg.img_size, cache_dir=cache / "deep",
                             crop=cfg.deep_crop, on_error="skip", progress=cfg.progress)
        reused = cached.path.stat().st_mtime < t0
        st["detail"] = (f"{n} images, {'read from the cache' if reused else 'decoded'}, "
                        f"{len(cached.errors)} failed")
    for i, msg in sorted(cached.errors.items()):
        failures.append({"family": "deep", "file": data.rel(i), "stage": "read",
                         "reason": msg})
    ok = np.asarray(cached.ok)
    images = cached.images

    test_all = np.unique(np.concatenate([f.test for f in folds]))
    probe = [int(i) for i in test_all if ok[i]][:cfg.throughput_images]
    front = float("nan")
    if probe:
        t0 = time.perf_counter()
        for i in probe:
            prepare_image(read_image(data.paths[i]), cfg.img_size, crop=cfg.deep_crop)
        front = (time.perf_counter() - t0) / len(probe)
        log.say(f"deep front end (decode + resize): {front * 1000:.1f} ms/image on "
                f"{len(probe)} test images")

    kwargs_of = {name: dict(cfg.deep_model_kwargs.get(name, {})) for name in names}
    costs = {name: model_cost(name, num_classes=k, img_size=cfg.img_size, **kwargs_of[name])
             for name in names}
    budgets = _deep_budgets(cfg, costs)
    if cfg.deep_budget_minutes is not None:
        log.say(f"deep: {cfg.deep_budget_minutes} min of training shared by FLOPs: "
                + ", ".join(f"{n} {m:.2f}" for n, m in budgets.items()))

    def one(name: str) -> _Scored:
        kwargs = kwargs_of[name]
        budget = budgets[name]
        sc = _Scored(name, "deep", np.zeros(n, np.int64), np.zeros((n, k)))
        with log.stage(f"deep: {name} ({cfg.epochs} epoch(s), {cfg.img_size} px, "
                       + (f"{budget} min, " if budget else "") + f"{device})") as st:
            epochs_run: list[float] = []
            metas: list[dict[str, Any]] = []
            flags: list[np.ndarray] = []  # the test images' shift flags, per fold
            reused_models = 0
            for fi, fold in enumerate(folds):
                te = fold.test
                te_ok, te_bad = te[ok[te]], te[~ok[te]]
                run_settings = {
                    "warmup_epochs": min(1.0, cfg.epochs / 4),
                    # a time budget anneals the rate to its end: no early stop
                    **({"patience": 0} if budget else {})}
                tcfg = config_with_recipe(
                    cfg.recipe, **{k: v for k, v in run_settings.items()
                                   if k not in get_recipe(cfg.recipe).settings},
                    model=name, model_kwargs=kwargs, img_size=cfg.img_size,
                    crop=cfg.deep_crop, epochs=cfg.epochs, batch_size=cfg.batch_size,
                    lr=cfg.lr, seed=cfg.seed, split_seed=cfg.seed, device=device,
                    progress=cfg.progress, max_minutes=budget, threads=threads)
                key = _deep_key(name, tcfg, cached.path.name, fold, ok, device)
                ck = out / "deep" / ((name if len(folds) == 1 else f"{name}-fold{fi}")
                                     + f"-{key}")
                done, preds = ck / "done.json", ck / "test_predictions.npz"
                if done.is_file() and preds.is_file():
                    info = json.loads(done.read_text(encoding="utf-8"))
                    with np.load(preds) as z:
                        idx, proba = z["indices"], z["proba"]
                        shift = z["shift"] if "shift" in z.files else None
                    if not np.array_equal(idx, te_ok):
                        raise ValueError(f"{preds} does not hold this split's test images")
                    reused_models += 1
                    log.say(f"deep: {name}: finished earlier, read from {ck}")
                else:
                    tcfg.resume = (ck / "last.pt").is_file()
                    if tcfg.resume:
                        log.say(f"deep: {name}: resuming from {ck / 'last.pt'}")
                    res, m_fit = measure_call(train_on_split, tcfg, images, data.y, fold,
                                              classes=list(data.classes), out=ck, usable=ok,
                                              device=torch.device(device))
                    # one timed pass over the test part: it is also the throughput figure
                    # (since the feature shift score, it includes scoring each image's shift)
                    (proba, shift), m_pred = measure_call(
                        predict_proba, res.model, np.asarray(images[te_ok]), res.meta,
                        batch_size=256, device=device, return_shift=True)
                    proba = np.asarray(proba, np.float64)
                    with atomic_path(preds) as tmp, open(tmp, "wb") as fh:
                        np.savez(fh, indices=te_ok, proba=proba, shift=shift)
                    info = {"key": key, "meta": res.meta.to_dict(), "history": res.history,
                            "train_seconds": res.train_seconds,
                            "predict_seconds": m_pred.seconds,
                            "peak_rss": _peak(m_fit, m_pred),
                            "model_bytes": model_size_bytes(res.model),
                            "n_train": int(len(res.train_idx)), "n_val": int(len(res.val_idx))}
                    atomic_write_text(done, json.dumps(info, default=float) + "\n")
                fit_m = _Seconds(info["train_seconds"], info["peak_rss"])
                pred_m = _Seconds(info["predict_seconds"], info["peak_rss"])
                sc.record_fold(data.y, te, te_ok, te_bad, proba, fit_m, pred_m)
                threshold = info["meta"].get("shift_threshold")
                if shift is not None and threshold is not None:
                    flags.append(np.asarray(shift) > float(threshold))
                epochs_run.append(info["meta"]["epochs_run"])
                metas.append(info)
            last = metas[-1]
            meta = last["meta"]
            sc.model_bytes = last["model_bytes"]
            not_converged = [m for m in metas if m["meta"]["converged"] is False]
            sc.params = {"img_size": cfg.img_size, "crop": cfg.deep_crop, "epochs": cfg.epochs,
                         "epochs_run": epochs_run if len(folds) > 1 else epochs_run[0],
                         "best_epoch": meta["best_epoch"],
                         "train_minutes": round(sum(m["train_seconds"] for m in metas) / 60,
                                                2),
                         "max_minutes": budget, "stop_reason": meta["stop_reason"],
                         "converged": not not_converged,
                         "batch_size": cfg.batch_size, "lr": cfg.lr,
                         "recipe": meta.get("recipe", "default"),
                         "n_parameters": costs[name]["n_parameters"],
                         "gflops": round(costs[name]["flops"] / 1e9, 4),
                         "n_train": last["n_train"], "n_val": last["n_val"],
                         "device": device, "amp": amp, "channels_last": channels_last,
                         "threads": threads, "checkpoint": str(ck / "best.pt"),
                         **({"kwargs": kwargs} if kwargs else {})}
            sc.history = [m["history"] for m in metas]
            if flags:  # the warning a user of the network would get on these test images
                flags_all = np.concatenate(flags)
                sc.params.update(shift_method=meta.get("shift_method", "energy"),
                                 shift_n_scored=int(flags_all.size),
                                 shift_n_flagged=int(flags_all.sum()))
                sc.notes.append(batch_summary(flags_all, what="test images",
                                              family="deep"))
            sc.notes.append("trained on the split's train part minus a stratified 10% "
                            "early-stopping hold-out (the split's val part when it has one); "
                            "weights of the epoch with the lowest validation loss")
            if not_converged:
                sc.notes.append(
                    f"did not converge within its budget: {epochs_run[-1]} epoch(s) in "
                    f"{sc.params['train_minutes']} min ({meta['stop_reason']}), validation "
                    "loss still falling at the end")
            if reused_models:
                sc.notes.append(f"{reused_models} training(s) read back from the run's cache "
                                "(finished in an earlier, interrupted run)")
            if len(folds) > 1:
                sc.notes.append(f"k-fold: {len(folds)} trainings, out-of-fold predictions "
                                "pooled")
            st["detail"] = (f"{'test (in-lab + other lab) ' if data.other_lab else ''}accuracy "
                            f"{np.mean(sc.fold_acc):.3f}, train "
                            f"{sc.train_seconds:.1f} s, epochs {epochs_run}"
                            + ("" if not not_converged else ", not converged"))
        per_img = sc.predict_seconds / max(sc.n_predicted, 1)
        sc.params["throughput_front_end_ms"] = round(front * 1000, 2) if math.isfinite(front) \
            else None
        sc.params["throughput_model_ms"] = round(per_img * 1000, 4)
        sc.params["_throughput"] = 1.0 / (front + per_img) if math.isfinite(front) else None
        return sc

    results = []
    for name in names:
        try:
            results.append(one(name))
        except (RuntimeError, ValueError, MemoryError, FloatingPointError) as exc:
            # one network that cannot train here (memory, numerics) must not sink the table;
            # a re-run tries it again
            msg = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
            log.say(f"deep: {name} failed and has no row: {msg}")
            failures.append({"family": "deep", "file": f"(network {name})",
                             "stage": "training", "reason": msg})
    te_bad = np.unique(np.concatenate([f.test[~ok[f.test]] for f in folds]))
    for spec in cfg.ensembles:
        sc = _soft_vote_row(spec, results, data, folds, te_bad, front)
        if sc is not None:
            log.say(f"deep: ensemble {sc.name}: accuracy {np.mean(sc.fold_acc):.3f} "
                    "(soft voting of the members' test predictions)")
            results.append(sc)
    return results


def _soft_vote_row(spec: str, scored: Sequence[_Scored], data: LoadedData,
                   folds: Sequence[Any], te_bad: np.ndarray, front: float) -> _Scored | None:
    """The soft-voting ensemble ``spec`` ("vgg19+xception+unet") of networks already scored,
    from their test probabilities (:func:`deep.predict.soft_vote`); None when a member is
    missing."""
    from deep.predict import soft_vote

    names = [m.strip() for m in spec.split("+") if m.strip()]
    by_name = {s.name: s for s in scored}
    if len(names) < 2 or any(m not in by_name for m in names):
        return None
    members = [by_name[m] for m in names]
    sc = _Scored("ensemble(" + "+".join(names) + ")", "deep",
                 np.zeros_like(members[0].pred), soft_vote([m.score for m in members]))
    sc.pred = sc.score.argmax(1)
    _score_failed(sc.pred, sc.score, te_bad, data.y)
    sc.fold_acc = [float(np.mean(sc.pred[f.test] == data.y[f.test])) for f in folds]
    sc.train_seconds = sum(m.train_seconds for m in members)
    sc.predict_seconds = sum(m.predict_seconds for m in members)
    sc.n_predicted = members[0].n_predicted
    sc.peak_rss = max(m.peak_rss for m in members)
    sc.model_bytes = sum(m.model_bytes or 0 for m in members)
    p0 = members[0].params
    sc.params = {"members": names, "vote": "soft (mean of the class probabilities)",
                 "img_size": p0.get("img_size"),
                 "n_parameters": sum(m.params.get("n_parameters", 0) for m in members),
                 "gflops": round(sum(m.params.get("gflops", 0) for m in members), 4),
                 "train_minutes": round(sum(m.params.get("train_minutes", 0)
                                            for m in members), 2),
                 "converged": all(m.params.get("converged", True) for m in members),
                 "recipe": p0.get("recipe", "default")}
    per_img = sc.predict_seconds / max(sc.n_predicted, 1)
    sc.params["_throughput"] = 1.0 / (front + per_img) if math.isfinite(front) else None
    sc.notes.append("soft voting of the members' test probabilities (no training of its "
                    "own; training time, size and FLOPs are the members' sums)")
    return sc


@dataclass
class _Seconds:
    """The two numbers :meth:`_Scored.record_fold` reads of a measurement (also for a
    training read back from the cache)."""

    seconds: float
    rss_peak_bytes: int | None


# --------------------------------------------------------------------------------------------
# the run
# --------------------------------------------------------------------------------------------
@dataclass
class RunOutput:
    """What :func:`run` produced.

    Attributes
    ----------
    out : Path
    paths : dict of str to Path
        ``csv, json, markdown, html, config, environment`` (and ``figures``).
    results : list of ModelResult
        One per model, in table order.
    test_indices : dict of str to ndarray of int64
        Per model, the data indices it was scored on (all identical by construction).
    split : list of Split
    data : LoadedData
    leakage : LeakageSummary
    stages : list of dict
        Stage timings.
    """

    out: Path
    paths: dict[str, Path]
    results: list[ModelResult]
    test_indices: dict[str, np.ndarray]
    split: list[Any]
    data: LoadedData
    leakage: LeakageSummary
    stages: list[dict[str, Any]]
    failures: list[dict[str, Any]] = field(default_factory=list)


def run(cfg: BenchmarkConfig, *, command: str | None = None, log: StageLog | None = None
        ) -> RunOutput:
    """Run the benchmark described by ``cfg`` and write its outputs.

    Parameters
    ----------
    cfg : BenchmarkConfig
    command : str, optional
        The command line to record (default: this process's).
    log : StageLog, optional

    Returns
    -------
    RunOutput
    """
    from threadpoolctl import threadpool_limits

    # BLAS on one thread: the matrices here are small, and OpenBLAS's spinning worker threads
    # make them 10-40x slower on a busy machine (measured: image hashing 120 -> 4 ms/image).
    with threadpool_limits(limits=1, user_api="blas"):
        return _run(cfg, command=command, log=log or StageLog())


def _run(cfg: BenchmarkConfig, *, command: str | None, log: StageLog) -> RunOutput:
    from benchmarks.environment import capture_environment
    from wbc_classic.evaluation.metrics import evaluate
    from wbc_classic.io.atomic import atomic_write_text

    out = cfg.resolved_out()
    cache = cfg.resolved_cache()
    out.mkdir(parents=True, exist_ok=True)
    cache.mkdir(parents=True, exist_ok=True)
    save_config(cfg, out / "config.yaml")
    classical_names, deep_names = resolve_models(cfg.models, cfg.deep_models)
    notes: list[str] = []
    sections: list[Section] = []
    failures: list[dict[str, Any]] = []
    # captured first: the git revision and versions the run started with
    env = capture_environment(seed=cfg.seed, command=command,
                              extra={"device": cfg.device or "auto", "n_jobs": cfg.n_jobs,
                                     "model_threads": cfg.threads})
    log.say(f"benchmark: preset {cfg.preset}, models {classical_names + deep_names}, "
            f"split {cfg.split}, seed {cfg.seed}, out {out}, cache {cache}")

    with log.stage("data") as st:
        data = load_data(cfg, cache, log)
        counts = np.bincount(data.y[:data.n_data], minlength=len(data.classes))
        st["detail"] = (f"{data.n_data} images, " + ", ".join(
            f"{c} {n}" for c, n in zip(data.classes, counts, strict=True))
            + (f"; {len(data.paths) - data.n_data} test images from {data.test_name}"
               if data.test_name else ""))
    notes += data.notes
    if data.synthetic:
        notes.insert(0, "SYNTHETIC DATA: every image was generated by wbc_classic.data.synthetic; "
                        "these numbers say nothing about performance on real blood smears.")

    with log.stage("split") as st:
        folds = make_folds(cfg, data)
        f0 = folds[0]
        st["detail"] = (f"{f0.scheme}: " + (f"{len(folds)} folds of ~{len(f0.test)} test "
                                             "images" if len(folds) > 1 else
                                             f"train {len(f0.train)}, val {len(f0.val)}, "
                                             f"test {len(f0.test)}"))
    test_idx = np.unique(np.concatenate([f.test for f in folds]))
    if len(folds) == 1:
        folds[0].save(out / "split.json")
    else:
        atomic_write_text(out / "split.json", json.dumps([f.to_dict() for f in folds]))

    with log.stage("leakage check") as st:
        leakage, leak_notes = check_leakage(cfg, data, folds)
        st["detail"] = leakage.headline()
    notes += leak_notes

    with log.stage("segmentation scores") as st:
        try:
            sec = segmentation_section(cfg, cache, log)
        except Exception as exc:  # noqa: BLE001 - the classification benchmark goes on
            sec = Section("Segmentation scores", [{"note": f"failed: {exc}"}])
            st["detail"] = f"failed: {exc}"
        if sec is not None:
            sections.append(sec)

    scored: list[_Scored] = []
    if classical_names:
        scored += run_classical(cfg, classical_names, data, folds, cache, out, log, failures)
    if deep_names:
        reason = "--no-deep was given" if cfg.no_deep else _torch_available()
        if reason is None:
            scored += run_deep(cfg, deep_names, data, folds, cache, out, log, failures)
        else:
            msg = (f"deep models skipped ({', '.join(deep_names)}): {reason}"
                   + ("" if cfg.no_deep else "; install them with pip install "
                      "'wbc-classic[deep]'"))
            notes.append(msg)
            log.say(msg)

    other_idx = np.zeros(0, np.int64)
    if data.other_lab is not None:  # main table: the in-lab test part; the other lab beside it
        other_idx = test_idx[test_idx >= data.n_data]
        test_idx = test_idx[test_idx < data.n_data]
    with log.stage("scoring") as st:
        y_true = data.y[test_idx]
        results = []
        test_indices: dict[str, np.ndarray] = {}
        cross_rows: list[dict[str, Any]] = []
        cross_evals: dict[str, Any] = {}
        for s in scored:
            ev = evaluate(y_true, s.pred[test_idx], s.score[test_idx],
                          class_names=data.classes, n_resamples=cfg.n_resamples,
                          seed=cfg.seed)
            if len(other_idx):
                xev = evaluate(data.y[other_idx], s.pred[other_idx], s.score[other_idx],
                               class_names=data.classes, n_resamples=cfg.n_resamples,
                               seed=cfg.seed)
                s.params["cross_lab_accuracy"] = round(xev.metrics["accuracy"].value, 4)
                cross_evals[s.name] = xev
                cross_rows.append(_cross_lab_row(s.name, s.family, ev, xev))
            thr = s.params.pop("_throughput", None)
            results.append(ModelResult(
                name=s.name, family=s.family, evaluation=ev, y_pred=s.pred[test_idx],
                y_score=s.score[test_idx], train_seconds=s.train_seconds, throughput=thr,
                model_bytes=s.model_bytes, peak_memory_bytes=s.peak_rss or None,
                misclassified=_misclassified(data, test_idx, s.pred, s.score),
                params=s.params, notes=s.notes, history=s.history[0] if s.history else ()))
            test_indices[s.name] = test_idx.copy()
        st["detail"] = f"{len(results)} model(s) on {len(test_idx)} test images" + (
            f" + {len(other_idx)} of the other lab" if len(other_idx) else "")
    with log.stage("model cards") as st:
        n_cards = write_model_cards(cfg, data, scored, results, cross_evals, folds, out)
        st["detail"] = f"{n_cards} card(s) beside the saved models"
    if cross_rows:
        sections.insert(0, Section(
            "In-lab and cross-lab accuracy", cross_rows,
            f"In-lab: the held-out {len(test_idx)} cells of the training laboratory (the main "
            f"table). Cross-lab: {len(other_idx)} cells of a second synthetic laboratory "
            "(another stain, pixel scale and crop) that no model saw in training. "
            "95% bootstrap CIs."))

    n_fail_test = {fam: sum(1 for f in failures if f["family"] == fam) for fam in
                   ("classical", "deep")}
    if failures:
        notes.append("images that failed are scored as errors (a wrong class, uniform "
                     "probabilities) and listed in the 'Failed images' table: "
                     + ", ".join(f"{fam} {n}" for fam, n in n_fail_test.items() if n))
        sections.append(Section("Failed images", failures[:200],
                                f"{len(failures)} failure(s); test images among them are "
                                "scored as errors, training images are left out of training"))
    if len(folds) > 1:
        sections.append(Section("Per-fold accuracy (k-fold)", [
            {"model": s.name, "family": s.family,
             **{f"fold {i}": round(a, 4) for i, a in enumerate(s.fold_acc)},
             "mean +- sd": f"{np.mean(s.fold_acc):.4f} +- {np.std(s.fold_acc, ddof=1):.4f}"}
            for s in scored],
            "The main table scores the pooled out-of-fold predictions (every image predicted "
            "once by a model that did not train on it); here each fold's accuracy."))
    notes.append("throughput = cells/s from the image file to the class: front end (decode + "
                 "segment + features, or decode + resize) timed on "
                 f"{cfg.throughput_images} test files in one process, plus the model's "
                 "prediction time on the whole test set")
    notes.append("peak memory = resident-set high-water mark of the process during the "
                 "model's training and prediction calls (includes the interpreter's baseline)")

    with log.stage("report") as st:
        stage_rows = [dict(r) for r in log.rows]
        sections.append(Section("Run stages", stage_rows,
                                "Wall time of each stage (a second run with the same "
                                "settings reads features and decoded images from the cache)."))
        split_info: Any = folds[0] if len(folds) == 1 else {
            "scheme": folds[0].scheme, "seed": cfg.seed, "folds": len(folds),
            "n_test_pooled": int(len(test_idx))}
        n_train = None if len(folds) > 1 else int(len(folds[0].train))
        n_val = None if len(folds) > 1 else int(len(folds[0].val))
        dataset = DatasetInfo(name=data.name, synthetic=data.synthetic,
                              description=data.description, root=data.root,
                              test_name=data.test_name, n_train=n_train, n_val=n_val,
                              n_test=int(len(test_idx)))
        if not results:
            raise RuntimeError("no model was run: " + "; ".join(notes[-3:]))
        paths = write_report(out, results, class_names=data.classes, dataset=dataset,
                             leakage=leakage, split=split_info, seed=cfg.seed,
                             command=env.get("command"), environment=env, y_true=y_true,
                             sections=sections, notes=notes, config=cfg.to_dict(),
                             title="wbc-classic benchmark"
                                   + (" (SYNTHETIC DATA)" if data.synthetic else ""))
        paths["config"] = out / "config.yaml"
        paths["environment"] = out / "environment.json"
        atomic_write_text(paths["environment"], json.dumps(env, indent=1, default=str) + "\n")
        st["detail"] = f"{out}"
    return RunOutput(out, paths, results, test_indices, list(folds), data, leakage, log.rows,
                     failures)


def write_model_cards(cfg: BenchmarkConfig, data: LoadedData, scored: Sequence[Any],
                      results: Sequence[ModelResult], cross_evals: Mapping[str, Any],
                      folds: Sequence[Any], out: Path) -> int:
    """A model card (:mod:`wbc_classic.io.modelcard`) for every model the run saved, with the
    run's in-lab and cross-lab scores: beside the file and inside its metadata."""
    from wbc_classic.io.modelcard import classical_card, make_card

    def score(ev: Any, where: str, n: int) -> dict[str, Any]:
        return {"data": where, "n": int(n),
                **{k: round(float(ev.metrics[k].value), 4)
                   for k in ("accuracy", "balanced_accuracy", "f1_macro")}}

    f0 = folds[0]
    split = {"scheme": f0.scheme, "seed": int(cfg.seed), "n_train": int(len(f0.train)),
             "n_val": int(len(f0.val)),
             "n_test": int(len(results[0].y_pred)) if results and results[0].y_pred is not None
             else None}
    counts = np.bincount(data.y[np.sort(np.concatenate([f0.train, f0.val]))],
                         minlength=len(data.classes))
    by_name = {r.name: r for r in results}
    n = 0
    for s in scored:
        r = by_name.get(s.name)
        if r is None:
            continue
        in_lab = score(r.evaluation, f"held-out {f0.scheme} test part of {data.name}",
                       len(r.y_pred) if r.y_pred is not None else 0)
        other = None
        if s.name in cross_evals:
            other = score(cross_evals[s.name], f"second synthetic laboratory {data.other_lab}",
                          int(cross_evals[s.name].confusion.sum()))
        common: dict[str, Any] = {
            "classes": data.classes, "sources": [data.root or data.name],
            "counts": dict(zip(data.classes, counts.tolist(), strict=True)),
            "split": split, "in_lab": in_lab, "other_lab": other}
        if s.family == "classical" and s.params.get("saved_model"):
            from wbc_classic.classical.modelfile import load

            path = Path(s.params["saved_model"])
            model = load(path)
            card = classical_card(model.metadata_, common["classes"], model.versions_, path)
            card.update(make_card(family="classical", architecture=s.name, file=path,
                                  versions=model.versions_, **common))
            model.metadata_["card"] = card
            from wbc_classic.classical.modelfile import save as save_model

            save_model(model, path)
            from wbc_classic.io.modelcard import write_card

            write_card(card, path)
            n += 1
        elif s.family == "deep" and len(folds) == 1:
            # the network's own cache folder, <out>/deep/<name>-<key>/ (the newest if the
            # run folder holds earlier settings too)
            found = sorted((out / "deep").glob(f"{s.name}-*/best.pt"),
                           key=lambda f: f.stat().st_mtime)
            path = found[-1] if found else out / "deep" / s.name / "best.pt"
            if path.is_file():
                from deep.checkpoint import set_model_card
                from wbc_classic.io.versions import installed_version

                set_model_card(path, make_card(
                    family="deep", architecture=f"{s.name} at {cfg.img_size} px", file=path,
                    versions={"torch": installed_version(["torch"]) or "?"}, **common))
                n += 1
    return n


def _cross_lab_row(name: str, family: str, ev: Any, xev: Any) -> dict[str, Any]:
    """One row of the in-lab / cross-lab table."""
    def ci(m: Any) -> str:
        return f"{m.value:.3f} [{m.low:.3f}, {m.high:.3f}]"

    a, x = ev.metrics["accuracy"], xev.metrics["accuracy"]
    return {"model": name, "family": family, "in-lab accuracy": ci(a),
            "cross-lab accuracy": ci(x),
            "cross-lab balanced accuracy": round(xev.metrics["balanced_accuracy"].value, 4),
            "drop": round(a.value - x.value, 4)}


def summary_table(results: Sequence[ModelResult]) -> str:
    """A plain-text table of the main numbers, for the terminal (``x-lab``: the accuracy on
    the other laboratory's cells, when the run has them)."""
    xlab = any("cross_lab_accuracy" in r.params for r in results)
    head = f"{'model':<14}{'family':<10}{'acc':>7}" + (f"{'x-lab':>7}" if xlab else "") + \
           f"{'bal.acc':>9}{'F1':>7}{'AUC':>7}{'kappa':>7}{'train s':>9}{'cells/s':>9}"
    lines = [head, "-" * len(head)]
    for r in results:
        m = r.evaluation.metrics

        def f(x: float) -> str:
            return f"{x:.3f}" if math.isfinite(x) else "n/a"

        x = f"{f(float(r.params.get('cross_lab_accuracy', float('nan')))):>7}" if xlab else ""
        lines.append(f"{r.name:<14}{r.family:<10}{f(m['accuracy'].value):>7}{x}"
                     f"{f(m['balanced_accuracy'].value):>9}{f(m['f1_macro'].value):>7}"
                     f"{f(m['roc_auc_macro'].value):>7}{f(m['cohen_kappa'].value):>7}"
                     f"{(r.train_seconds or 0):>9.2f}"
                     f"{(r.throughput or float('nan')):>9.1f}")
    return "\n".join(lines)


# --------------------------------------------------------------------------------------------
# command line
# --------------------------------------------------------------------------------------------
def build_parser() -> argparse.ArgumentParser:
    """The ``python -m benchmarks.run`` argument parser (every default is SUPPRESSed, so only
    the flags actually given override the preset and the config file)."""
    from deep.cache import CROPS  # torch-free module
    from wbc_classic.io.options import NamesAction

    p = argparse.ArgumentParser(
        prog="python -m benchmarks.run", argument_default=argparse.SUPPRESS,
        description="Benchmark the classical and the deep leukocyte classifiers on one split: "
                    "one table with 95% bootstrap CIs, per-class tables, confusion matrices, "
                    "McNemar, leakage check, segmentation scores; writes results.csv/json, "
                    "report.md/html, config.yaml. Without arguments: a synthetic-data run.",
        epilog=EXAMPLE, formatter_class=argparse.RawDescriptionHelpFormatter)
    a = p.add_argument
    a("--config", metavar="FILE", help="YAML or TOML file with the same settings as the flags "
      "(flags override it); the config.yaml of an earlier run repeats it")
    a("--preset", choices=["synthetic", "pbc8", "pbc5", "custom"],
      help="synthetic (default), pbc8/pbc5 (../shared/data/pbc or $WBC_SHARED_DATA, or --data)")
    a("--data", metavar="DIR|NPZ", help="class-per-folder image set, or a MedMNIST .npz "
      "(e.g. bloodmnist_64.npz; its official train/val/test split is used)")
    a("--test-data", metavar="DIR", help="separate test set (class folders or a segmentation "
      "set with labels in manifest.csv): train on --data, test here (domain shift)")
    a("--classes", nargs="+", action=NamesAction, metavar="CLASS",
      help="classes in label order, space- or comma-separated, or pbc8 / pbc5")
    a("--models", nargs="+", action=NamesAction, metavar="MODEL",
      help="space- or comma-separated: svm, linear-svm, knn, logreg, naive-bayes, xgboost, "
      "random-forest, mlp, any deep zoo name, or the groups classical, deep (the preset's "
      "networks), seeds (every network of the comparative study), all (classical + seeds)")
    a("--split", help="80/20 (default), 90/10, 50/25/25 or kfold:K (pooled out-of-fold)")
    a("--img-size", type=int, help="deep input side in pixels")
    a("--epochs", type=int, help="deep training epochs")
    a("--batch-size", type=int, help="deep batch size")
    a("--lr", type=float, help="deep learning rate")
    a("--deep-max-minutes", type=float, help="training time budget per deep model and fold")
    a("--deep-budget-minutes", type=float, help="one training budget for all deep models, "
      "shared out by their FLOPs (overrides --deep-max-minutes)")
    a("--recipe", help="training recipe of the deep models (deep.recipes: default, "
      "medmnist-v2, aljader, lab); its split and image size apply to both families unless "
      "given")
    a("--ensembles", help="soft-voting ensembles scored as rows, members joined by + and "
      "ensembles by commas (default vgg19+xception+unet; scored when all members ran)")
    a("--deep-budget-boost", metavar="NAME=W,...", help="extra weight of models in the shared "
      "budget, e.g. wbcnet=8,resnet18=2.5")
    a("--deep-crop", choices=CROPS,
      help="deep input: centre square (default), stretched image, or a fixed-size square "
           "around the segmented leukocyte with the surroundings blanked (cross-lab)")
    a("--device", help="torch device (cpu, cuda, cuda:1); default CUDA when available")
    a("--n-jobs", type=int, help="parallel workers (feature extraction, image hashing)")
    a("--threads", type=int, help="threads of the classifiers and torch (default: 1 below "
      "2,000 training images, else --n-jobs)")
    a("--seed", type=int, help="seed of split, data, models and bootstrap")
    a("--out", metavar="DIR", help="output folder (default runs/benchmark-<preset>-<seed>)")
    a("--cache-dir", metavar="DIR", help="cache folder (default $WBC_CACHE_DIR or .wbc_cache)")
    a("--no-deep", action="store_true", help="skip the deep models")
    a("--quick", action="store_true", help="a small fast run (smoke test)")
    a("--n-per-class", type=int, help="synthetic cells per class")
    a("--synthetic-size", type=int, help="synthetic crop side in pixels")
    a("--max-per-class", type=int, help="use at most N images per class (seeded subsample)")
    a("--seg-images", type=int, help="images for the segmentation scores (0 skips)")
    a("--seg-data", metavar="DIR", help="segmentation ground-truth set for the scores")
    a("--n-resamples", type=int, help="bootstrap resamples (default 1000)")
    a("--throughput-images", type=int, help="test files timed end to end")
    a("--no-progress", dest="progress", action="store_false", help="no progress bars")
    a("--print-config", action="store_true",
      help="print the effective configuration as YAML and exit")
    a("--json", action="store_true",
      help="print the machine-readable result (results.json) to stdout instead of the table")
    return p


def config_from_argv(argv: Sequence[str] | None = None) -> tuple[BenchmarkConfig, bool]:
    """Parse the command line into the effective config; also returns ``--print-config``."""
    ns = vars(build_parser().parse_args(argv))
    print_only = bool(ns.pop("print_config", False))
    ns.pop("json", None)  # output form only, not a setting of the run
    file_settings = load_config_file(ns.pop("config")) if "config" in ns else {}
    return build_config(ns, file_settings), print_only


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``python -m benchmarks.run``; returns the exit code."""
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        cfg, print_only = config_from_argv(argv)
    except (ValueError, FileNotFoundError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    as_json = bool(getattr(build_parser().parse_args(argv), "json", False))
    if print_only:
        import yaml

        print(yaml.safe_dump(cfg.to_dict(), sort_keys=False), end="")
        return 0
    from wbc_classic.io.atomic import OutputError, check_output_dir
    from wbc_classic.io.options import EXIT_FAILED_INPUTS, EXIT_OK, EXIT_USAGE

    try:
        check_output_dir(cfg.resolved_out(), "--out")  # before any work
        resolved_deep = resolve_models(cfg.models, cfg.deep_models)[1]
        if resolved_deep and not cfg.no_deep and cfg.device and _torch_available() is None:
            from deep.device import resolve_device

            resolve_device(cfg.device)
    except (OutputError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    command = None
    if argv is not None:
        from benchmarks.environment import command_line

        command = command_line([sys.executable, "-m", "benchmarks.run", *argv])
    try:
        res = run(cfg, command=command)
    except (ValueError, FileNotFoundError, OutputError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("interrupted: outputs already written are complete (atomic writes); the "
              "cache keeps every finished image", file=sys.stderr)
        return 130
    if as_json:  # stdout holds the JSON only
        print(Path(res.paths["json"]).read_text(encoding="utf-8").strip())
    else:
        print(res.leakage.headline())
        print(summary_table(res.results))
    print(f"\nreport: {res.paths['html']}\n        {res.paths['markdown']}\n"
          f"results: {res.paths['csv']}, {res.paths['json']}\nconfig: {res.paths['config']}",
          file=sys.stderr if as_json else sys.stdout)
    if res.failures:
        print(f"{len(res.failures)} image(s) failed and are listed in the report's 'Failed "
              f"images' table; exit code {EXIT_FAILED_INPUTS}", file=sys.stderr)
        return EXIT_FAILED_INPUTS
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
