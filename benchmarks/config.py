"""Settings of ``python -m benchmarks.run``: defaults, presets, config files, model groups.

One :class:`BenchmarkConfig` holds every setting. It is built in layers, each overriding the
one before:

1. the field defaults below;
2. the preset (``synthetic`` -- the default --, ``pbc8``, ``pbc5``, or ``custom`` when only
   ``--data`` is given), see :data:`PRESETS`;
3. ``quick: true`` shrinks the run (:data:`QUICK`) for settings not set explicitly below;
4. a YAML or TOML config file (``--config FILE``), with the same keys as the fields
   (dashes or underscores);
5. command-line flags.

The effective configuration is saved with the results as ``config.yaml``; passing that file
back with ``--config`` reproduces the run (:func:`load_config_file`, :func:`save_config`).

Example config file (TOML)::

    preset = "pbc5"
    models = ["classical", "wbcnet"]
    split = "kfold:5"
    img_size = 64
    epochs = 10
    n_jobs = 2
    seed = 1

    [deep_model_kwargs.wbcnet]
    width = 0.75
"""

from __future__ import annotations

import copy
import dataclasses
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from wbc_classic.data.labels import PBC5_CLASSES, PBC8_CLASSES

__all__ = [
    "BenchmarkConfig",
    "CLASSICAL_MODELS",
    "DEEP_MODELS",
    "PRESETS",
    "QUICK",
    "SEED_MODELS",
    "build_config",
    "deep_model_names",
    "default_cache_dir",
    "load_config_file",
    "resolve_models",
    "save_config",
    "share_budget",
    "shared_data_root",
]

REPO_ROOT = Path(__file__).resolve().parents[1]

#: Classical classifier names (:data:`wbc_classic.classical.classifiers.CLASSIFIERS`), in table
#: order.
CLASSICAL_MODELS: tuple[str, ...] = ("svm", "linear-svm", "knn", "logreg", "naive-bayes",
                                     "xgboost", "random-forest", "mlp")

#: Deep zoo names (:func:`deep.models.list_models`), known here without importing torch.
DEEP_MODELS: tuple[str, ...] = ("vgg16", "vgg19", "resnet18", "resnet50", "resnet101",
                                "resnet152", "densenet121", "densenet201", "mobilenet_v2",
                                "inception_v3", "vit", "xception", "unet", "ndlm",
                                "sevenblock", "risodkar_cnn", "smallcnn", "wbcnet")

#: Light deep models a CPU run can afford; the ``deep`` group of the presets.
LIGHT_DEEP: tuple[str, ...] = ("smallcnn", "sevenblock", "wbcnet")

#: The seed models of the comparative study (issue 13): every network the literature compares
#: plus the project's wbcnet; the ``seeds`` group (and the deep half of ``all``). Cheapest and
#: most promising first, so an interrupted CPU run has those rows before the heavy ones.
SEED_MODELS: tuple[str, ...] = ("wbcnet", "resnet18", "unet", "sevenblock", "risodkar_cnn",
                                "smallcnn",
                                "ndlm", "mobilenet_v2", "vit", "inception_v3", "densenet121",
                                "vgg16", "vgg19", "xception", "resnet50", "densenet201",
                                "resnet101", "resnet152")


@dataclass
class BenchmarkConfig:
    """Every setting of a benchmark run (plain values; saved as ``config.yaml``).

    Attributes
    ----------
    preset : str
        ``"synthetic"``, ``"pbc8"``, ``"pbc5"`` or ``"custom"`` (a ``data`` folder).
    data : str or None
        Class-per-folder image set (or a segmentation-set layout with labels in
        ``manifest.csv``); None for the synthetic preset.
    test_data : str or None
        A separate test set (another lab: domain shift); ``data`` is then all training data.
    classes : list of str or None
        Classes to use, in label order (default: the preset's, or every class folder).
    models : list of str
        Classical classifier names, deep zoo names, or the groups ``"classical"``,
        ``"deep"`` (the preset's deep models), ``"seeds"`` (:data:`SEED_MODELS`, every
        network of the comparative study) and ``"all"`` (classical + seeds).
    deep_models : list of str
        What the ``"deep"`` group means for this run.
    split : str
        ``"80/20"``, ``"90/10"``, ``"50/25/25"`` or ``"kfold:K"``.
    img_size, epochs, batch_size, lr : deep training settings.
    deep_model_kwargs : dict of str to dict
        Extra builder arguments per deep model (e.g. ``{"smallcnn": {"width": 0.5}}``).
    deep_max_minutes : float or None
        Wall-clock training budget per deep model and fold (training stops at it, also in
        the middle of an epoch; the cosine schedule follows the elapsed time).
    deep_budget_minutes : float or None
        One training budget for all deep models, shared out by :func:`share_budget` (by
        each network's FLOPs, times ``deep_budget_boost``); overrides ``deep_max_minutes``.
    deep_budget_boost : dict of str to float
        Extra weight of some models in the shared budget (e.g. ``{"wbcnet": 6}``).
    recipe : str
        Training recipe of the deep models (:mod:`deep.recipes`): a paper's optimiser,
        schedule, epochs, batch size and augmentation; its split and image size (when it
        names them) apply to both families unless set explicitly. ``"default"``: the
        project's tuned settings.
    ensembles : list of str
        Soft-voting ensembles scored as rows of their own, members joined by ``+``
        (default Hussien & Kareem's ``vgg19+xception+unet``); an ensemble is scored when
        all its members were run. Made from the members' test predictions, no training.
    deep_crop : {"center", "none", "cell"}
        What the deep models see (:func:`deep.cache.prepare_image`): the centre square of
        each image, the stretched image, or a fixed-size square around the segmented
        leukocyte with its surroundings blanked (``"cell"``, for cross-lab tests).
    device : str or None
        Torch device (``"cpu"``, ``"cuda"``, ``"cuda:1"``); None picks CUDA when available.
    n_jobs : int
        Parallel workers for feature extraction and image hashing (-1: all cores).
    threads : int or None
        Threads of the classifiers (XGBoost, random forest, calibration folds) and of torch.
        None: 1 when the training set has fewer than 2,000 images (thread start-up and
        contention cost more than they give on small sets, badly so on a shared machine),
        else ``n_jobs``.
    seed : int
        Seed of the split, the synthetic data, the classifiers, the networks and the bootstrap.
    out : str or None
        Output folder; default ``runs/benchmark-<preset>-<seed>``.
    cache_dir : str or None
        Feature cache (shared with ``wbc-classic train``), decoded-image cache (``deep/``)
        and generated synthetic sets (``synthetic/``); default by the project's one rule
        (:mod:`wbc_classic.io.cachedir`): ``$WBC_CACHE_DIR``, else ``~/.cache/wbc_classic``;
        an unwritable folder falls back to a temporary cache with a warning.
    no_deep : bool
        Skip the deep models.
    quick : bool
        A small, fast run (tests, smoke checks).
    n_per_class : int
        Synthetic preset: generated cells per class.
    synthetic_size : int
        Synthetic preset: crop side in pixels.
    synthetic_ambiguity : float
        Synthetic preset: share of cells drawn part-way towards a confusable class
        (``make_cell(ambiguity=...)``): the errors a good model cannot avoid.
    synthetic_stain_jitter : float
        Synthetic preset: multiplier of the per-image stain variation.
    other_lab_per_class : int
        Synthetic preset: cells per class of a second synthetic "laboratory" (another stain,
        pixel scale and crop, :data:`OTHER_LAB`), scored beside the in-lab test part as
        the cross-lab accuracy; 0 leaves it out.
    seg_images : int
        Images of the segmentation-scoring set (synthetic set, or the first of
        ``cellavision_seg`` for the real presets); 0 skips segmentation scoring.
    seg_data : str or None
        Segmentation ground-truth set (``images/``, ``masks/``, ``manifest.csv``); default the
        generated one (synthetic) or ``<shared data>/cellavision_seg`` (real presets).
    max_per_class : int or None
        Use at most this many images per class (a seeded subsample), None for all.
    n_resamples : int
        Bootstrap resamples of the confidence intervals.
    leakage_max_distance : int
        pHash Hamming distance (of 64 bits) counted as a near duplicate.
    throughput_images : int
        Test images timed end to end (decode + segment + features, or decode + resize)
        for the throughput column.
    progress : bool
        Show progress bars (stage log lines are always written to stderr).
    """

    preset: str = "synthetic"
    data: str | None = None
    test_data: str | None = None
    classes: list[str] | None = None
    models: list[str] = field(default_factory=lambda: ["classical", "deep"])
    deep_models: list[str] = field(default_factory=lambda: ["smallcnn", "sevenblock"])
    split: str = "80/20"
    img_size: int = 48
    epochs: int = 8
    batch_size: int = 32
    lr: float = 2e-3
    deep_model_kwargs: dict[str, dict[str, Any]] = field(default_factory=dict)
    deep_max_minutes: float | None = None
    deep_budget_minutes: float | None = None
    deep_budget_boost: dict[str, float] = field(default_factory=dict)
    recipe: str = "default"
    ensembles: list[str] = field(default_factory=lambda: ["vgg19+xception+unet"])
    deep_crop: str = "center"
    device: str | None = None
    n_jobs: int = 2
    threads: int | None = None
    seed: int = 0
    out: str | None = None
    cache_dir: str | None = None
    no_deep: bool = False
    quick: bool = False
    n_per_class: int = 64
    synthetic_size: int = 96
    synthetic_ambiguity: float = 0.0
    synthetic_stain_jitter: float = 1.0
    other_lab_per_class: int = 0
    seg_images: int = 25
    seg_data: str | None = None
    max_per_class: int | None = None
    n_resamples: int = 1000
    leakage_max_distance: int = 4
    throughput_images: int = 32
    progress: bool = True

    def to_dict(self) -> dict[str, Any]:
        """Plain dict of every field (YAML/JSON-ready)."""
        return dataclasses.asdict(self)

    def resolved_out(self) -> Path:
        """The output folder (``out`` or ``runs/benchmark-<preset>-<seed>``)."""
        return Path(self.out) if self.out else Path("runs") / f"benchmark-{self.preset}-{self.seed}"

    def resolved_cache(self) -> Path:
        """The cache folder: ``cache_dir`` or :func:`default_cache_dir`, checked to be writable
        (:func:`wbc_classic.io.cachedir.resolve_cache_dir`)."""
        from wbc_classic.io.cachedir import resolve_cache_dir

        return resolve_cache_dir(self.cache_dir or None)


_FIELDS = {f.name: f for f in dataclasses.fields(BenchmarkConfig)}

#: Preset -> settings applied over the defaults.
PRESETS: dict[str, dict[str, Any]] = {
    "synthetic": {
        "deep_models": ["smallcnn", "sevenblock"],
        "deep_model_kwargs": {"smallcnn": {"width": 0.5}, "sevenblock": {"width": 0.5}},
        "img_size": 48, "epochs": 12,
        # a task on which models differ: ambiguous cells, stain variation, another lab
        "synthetic_ambiguity": 0.35, "synthetic_stain_jitter": 2.0,
        "other_lab_per_class": 20,
    },
    "pbc8": {"data": "@shared/pbc", "classes": list(PBC8_CLASSES), "deep_models": ["wbcnet"],
             "img_size": 64, "epochs": 10, "batch_size": 64, "n_jobs": 2, "seg_images": 100},
    "pbc5": {"data": "@shared/pbc", "classes": list(PBC5_CLASSES), "deep_models": ["wbcnet"],
             "img_size": 64, "epochs": 10, "batch_size": 64, "n_jobs": 2, "seg_images": 100},
    "custom": {"deep_models": ["wbcnet"], "img_size": 64, "epochs": 10, "batch_size": 64,
               "seg_images": 0},
}

#: The second synthetic laboratory of the default run: another stain (hue, saturation and
#: density shifted, :func:`wbc_classic.data.synthetic.make_cell`'s ``stain_shift``), pixel
#: scale (cells ~15 % larger in pixels) and crop (112 px with more surroundings).
OTHER_LAB: dict[str, Any] = {"stain_shift": (30.0, 1.4, 0.7), "size": 88, "scale": 0.8,
                             "position_jitter": 0.08, "blur": 1.0}

#: Settings of ``quick`` runs (applied unless the config file or a flag sets them).
QUICK: dict[str, Any] = {
    "models": ["logreg", "knn", "smallcnn"], "n_per_class": 12, "synthetic_size": 64,
    "epochs": 1, "img_size": 32, "seg_images": 4, "throughput_images": 8,
    "max_per_class": 20, "n_jobs": 1, "deep_model_kwargs": {"smallcnn": {"width": 0.25}},
    "other_lab_per_class": 4,
}


def shared_data_root() -> Path:
    """``$WBC_SHARED_DATA`` if set, else ``../shared/data`` beside the repository."""
    env = os.environ.get("WBC_SHARED_DATA")
    return Path(env) if env else REPO_ROOT.parent / "shared" / "data"


def default_cache_dir() -> Path:
    """``$WBC_CACHE_DIR`` if set, else ``~/.cache/wbc_classic``: the one cache rule of every
    command (:func:`wbc_classic.io.cachedir.default_cache_root`)."""
    from wbc_classic.io.cachedir import default_cache_root

    return default_cache_root()


def resolve_data_path(value: str | None) -> str | None:
    """Expand the ``@shared/`` prefix of preset paths to :func:`shared_data_root`."""
    if value is None:
        return None
    if value.startswith("@shared/"):
        return str(shared_data_root() / value[len("@shared/"):])
    return value


def deep_model_names() -> tuple[str, ...]:
    """The deep zoo's model names: :func:`deep.models.list_models` when torch is installed."""
    try:
        from deep.models import list_models
    except ImportError:
        return DEEP_MODELS
    return tuple(list_models())


def resolve_models(names: Sequence[str], deep_group: Sequence[str] = LIGHT_DEEP
                   ) -> tuple[list[str], list[str]]:
    """Expand model names and groups into (classical, deep) lists, order kept, no repeats.

    Parameters
    ----------
    names : sequence of str
        Classifier names, zoo names, ``"classical"``, ``"deep"``, ``"all"``; comma-separated
        strings are split.
    deep_group : sequence of str
        What ``"deep"`` stands for (``"seeds"`` and the deep half of ``"all"`` are
        :data:`SEED_MODELS`).

    Returns
    -------
    classical, deep : list of str

    Raises
    ------
    ValueError
        An unknown name; the message lists the valid ones.
    """
    zoo = set(DEEP_MODELS)
    flat = [n.strip().lower() for raw in names for n in str(raw).split(",") if n.strip()]
    known = zoo | set(CLASSICAL_MODELS) | {"all", "classical", "deep", "seeds"}
    if any(n not in known and n.replace("-", "_") not in known
           and n.replace("_", "-") not in known for n in flat):
        zoo |= set(deep_model_names())  # a zoo model added after this list (imports torch)
    classical: list[str] = []
    deep: list[str] = []

    def add(lst: list[str], name: str) -> None:
        if name not in lst:
            lst.append(name)

    for raw in names:
        for name in (n.strip() for n in str(raw).split(",")):
            if not name:
                continue
            key = name.lower().replace("_", "-") if name.lower() not in zoo else name.lower()
            if key in ("all", "classical"):
                for c in CLASSICAL_MODELS:
                    add(classical, c)
            if key == "deep":
                for d in deep_group:
                    add(deep, d)
            if key in ("all", "seeds"):
                for d in SEED_MODELS:
                    add(deep, d)
            if key in ("all", "classical", "deep", "seeds"):
                continue
            if key in CLASSICAL_MODELS:
                add(classical, key)
            elif name.lower() in zoo:
                add(deep, name.lower())
            elif name.lower().replace("-", "_") in zoo:
                add(deep, name.lower().replace("-", "_"))
            else:
                raise ValueError(
                    f"unknown model {name!r}; classical: {', '.join(CLASSICAL_MODELS)}; deep: "
                    f"{', '.join(sorted(zoo))}; groups: classical, deep, seeds, all")
    return classical, deep


def share_budget(total_minutes: float, flops: Mapping[str, float],
                 boost: Mapping[str, float] | None = None, *,
                 floor_minutes: float = 1.0) -> dict[str, float]:
    """Share one training budget among networks by their cost.

    Each model's weight is ``sqrt(flops) * boost`` (a costlier network gets more time, less
    than in proportion: the square root keeps the light ones from getting seconds), every
    model gets at least ``floor_minutes``, and the shares add up to ``total_minutes``. The
    weights are FLOPs, not timings, so a re-run computes the same shares and finds its
    cached models (their cache key holds the budget).

    Parameters
    ----------
    total_minutes : float
    flops : mapping of str to float
        Forward FLOPs per image of each model (:func:`deep.train.model_cost`).
    boost : mapping of str to float, optional
        Extra weight per model (default 1).
    floor_minutes : float

    Returns
    -------
    dict of str to float
        Minutes per model, rounded to 0.01, in the order of ``flops``.
    """
    boost = dict(boost or {})
    names = list(flops)
    if not names:
        return {}
    floor = min(floor_minutes, total_minutes / len(names))
    w = {n: (max(float(flops[n]), 1.0) ** 0.5) * float(boost.get(n, 1.0)) for n in names}
    fixed: dict[str, float] = {}
    while True:  # models below the floor get the floor; the rest share what remains
        rest = [n for n in names if n not in fixed]
        left = total_minutes - floor * len(fixed)
        tot = sum(w[n] for n in rest)
        share = {n: left * w[n] / tot for n in rest}
        low = [n for n in rest if share[n] < floor]
        if not low:
            break
        fixed.update({n: floor for n in low})
    out = {**fixed, **share}
    return {n: round(out[n], 2) for n in names}


# ----------------------------------------------------------------------------- files
def load_config_file(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read a YAML (``.yaml``/``.yml``) or TOML (``.toml``) config file into a dict.

    Keys may use dashes or underscores (``img-size`` = ``img_size``); unknown keys raise
    ``ValueError`` naming them and the file.
    """
    p = Path(path)
    text = p.read_text(encoding="utf-8")
    if p.suffix.lower() == ".toml":
        try:
            import tomllib
        except ModuleNotFoundError:  # Python 3.10
            import tomli as tomllib
        data = tomllib.loads(text)
    else:
        import yaml

        data = yaml.safe_load(text) or {}
    if not isinstance(data, Mapping):
        raise ValueError(f"{p}: a config file must hold a mapping of settings")
    out = {str(k).replace("-", "_"): v for k, v in data.items()}
    unknown = sorted(set(out) - set(_FIELDS) - {"config"})
    if unknown:
        raise ValueError(f"{p}: unknown setting(s) {unknown}; valid: {sorted(_FIELDS)}")
    out.pop("config", None)
    return out


def save_config(cfg: BenchmarkConfig, path: str | os.PathLike[str]) -> Path:
    """Write the configuration as YAML (atomically); ``--config`` reads it back."""
    import yaml

    from wbc_classic.io.atomic import atomic_write_text

    header = ("# Effective configuration of a wbc-classic benchmark run.\n"
              "# Re-run with: python -m benchmarks.run --config config.yaml\n")
    p = Path(path)
    atomic_write_text(p, header + yaml.safe_dump(cfg.to_dict(), sort_keys=False))
    return p


# ----------------------------------------------------------------------------- layering
def _coerce(name: str, value: Any) -> Any:
    """Normalise a value from a file or a flag to the field's type."""
    if value is None:
        return None
    if name in ("models", "deep_models", "classes", "ensembles"):
        if isinstance(value, str):
            value = [v.strip() for v in value.split(",") if v.strip()]
        value = [str(v) for v in value]
        if name == "classes" and len(value) == 1 and value[0].lower() in ("pbc8", "pbc5"):
            value = list(PBC8_CLASSES if value[0].lower() == "pbc8" else PBC5_CLASSES)
        return value
    if name == "deep_model_kwargs":
        if not isinstance(value, Mapping):
            raise ValueError("deep_model_kwargs must map model names to keyword dicts")
        return {str(k): dict(v or {}) for k, v in value.items()}
    if name in ("img_size", "epochs", "batch_size", "n_jobs", "threads", "seed", "n_per_class",
                "synthetic_size", "seg_images", "max_per_class", "n_resamples",
                "other_lab_per_class", "leakage_max_distance", "throughput_images"):
        if isinstance(value, bool) or int(value) != float(value):
            raise ValueError(f"{name} must be an integer, got {value!r}")
        return int(value)
    if name in ("lr", "deep_max_minutes", "deep_budget_minutes", "synthetic_ambiguity",
                "synthetic_stain_jitter"):
        return float(value)
    if name == "deep_budget_boost":
        if isinstance(value, str):  # "wbcnet=6,resnet18=2"
            try:
                value = dict(kv.split("=", 1) for kv in value.split(",") if kv.strip())
            except ValueError:
                raise ValueError(f"deep_budget_boost must look like 'wbcnet=6,resnet18=2', "
                                 f"got {value!r}") from None
        if not isinstance(value, Mapping):
            raise ValueError("deep_budget_boost must map model names to weights")
        return {str(k).strip(): float(v) for k, v in value.items()}
    if name in ("no_deep", "quick", "progress"):
        if isinstance(value, str):
            return value.strip().lower() in ("1", "true", "yes", "on")
        return bool(value)
    if name in ("split", "deep_crop", "recipe"):
        return str(value)
    return value if not isinstance(value, os.PathLike) else os.fspath(value)


def build_config(cli: Mapping[str, Any] | None = None,
                 file_settings: Mapping[str, Any] | None = None) -> BenchmarkConfig:
    """Layer defaults, preset, quick, config file and command-line settings.

    Parameters
    ----------
    cli : mapping
        Settings given on the command line (only those explicitly given).
    file_settings : mapping
        Settings from :func:`load_config_file`.

    Returns
    -------
    BenchmarkConfig
    """
    cli = {k: v for k, v in dict(cli or {}).items() if k in _FIELDS}
    file_settings = dict(file_settings or {})
    explicit = {**file_settings, **cli}
    preset = explicit.get("preset")
    if preset is None:
        preset = "custom" if explicit.get("data") else "synthetic"
    preset = str(preset).lower()
    if preset not in PRESETS:
        raise ValueError(f"unknown preset {preset!r}; valid: {', '.join(PRESETS)}")
    values: dict[str, Any] = BenchmarkConfig().to_dict()
    values.update(copy.deepcopy(PRESETS[preset]))
    values["preset"] = preset
    from deep.recipes import get_recipe  # torch-free module

    recipe = get_recipe(str(explicit.get("recipe", values.get("recipe", "default"))))
    # the recipe's run-level settings, under the config file and the flags
    for k in ("split", "img_size", "epochs", "batch_size", "lr"):
        if k in recipe.settings:
            values[k] = recipe.settings[k]
    quick = bool(_coerce("quick", explicit.get("quick", False)))
    if quick:
        for k, v in QUICK.items():
            if k not in explicit:
                values[k] = copy.deepcopy(v)
    for k, v in explicit.items():
        values[k] = _coerce(k, v)
    values["data"] = resolve_data_path(values.get("data"))
    cfg = BenchmarkConfig(**values)
    check_config(cfg)
    return cfg


def check_config(cfg: BenchmarkConfig) -> None:
    """Raise ``ValueError`` for settings that cannot work, before anything runs."""
    from wbc_classic.data.split import parse_scheme

    parse_scheme(cfg.split)
    resolve_models(cfg.models, cfg.deep_models)
    if cfg.preset != "synthetic" and not cfg.data:
        raise ValueError(f"preset {cfg.preset!r} needs a data folder (--data DIR)")
    from wbc_classic.io.options import check_range

    # bounds keep a typo from running for hours or exhausting memory (one line, exit 2)
    for name, lo, hi in (("img_size", 8, 1024), ("epochs", 1, 100_000),
                         ("batch_size", 1, 65_536), ("n_per_class", 2, 100_000),
                         ("synthetic_size", 32, 1024), ("seg_images", 0, 1_000_000),
                         ("n_resamples", 0, 1_000_000), ("throughput_images", 1, 100_000),
                         ("seed", 0, 2**32 - 1)):
        check_range(name, getattr(cfg, name), lo, hi, integer=True)
    check_range("lr", cfg.lr, 0, 10, lo_open=True)
    if cfg.deep_max_minutes is not None:
        check_range("deep_max_minutes", cfg.deep_max_minutes, 0, lo_open=True)
    if cfg.n_jobs != -1:
        check_range("n_jobs (-1: all cores)", cfg.n_jobs, 1, 1024, integer=True)
    if cfg.threads is not None:
        check_range("threads", cfg.threads, 1, 1024, integer=True)
    from deep.cache import CROPS  # torch-free module

    if cfg.deep_crop not in CROPS:
        raise ValueError(f"deep_crop must be one of {', '.join(CROPS)}, got {cfg.deep_crop!r}")
    for name in ("deep_max_minutes", "deep_budget_minutes"):
        if getattr(cfg, name) is not None and not getattr(cfg, name) > 0:
            raise ValueError(f"{name} must be > 0, got {getattr(cfg, name)}")
    if any(not w > 0 for w in cfg.deep_budget_boost.values()):
        raise ValueError("deep_budget_boost weights must be > 0")
    if cfg.max_per_class is not None and cfg.max_per_class < 2:
        raise ValueError("max_per_class must be >= 2")
    if not 0 <= cfg.leakage_max_distance <= 64:
        raise ValueError("leakage_max_distance must lie in [0, 64]")
