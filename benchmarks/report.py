"""Write the benchmark outputs: results.csv, results.json, report.md and an HTML report.

The runner collects one :class:`ModelResult` per model (either family, scored with
:func:`wbc_classic.evaluation.metrics.evaluate` on the same test images) and calls
:func:`write_report`.
Every file is written atomically; plots are drawn with matplotlib's Agg canvas (no pyplot, no
display) and embedded in the HTML as base64 PNGs.
"""

from __future__ import annotations

import base64
import csv
import dataclasses
import datetime as _dt
import html
import io
import json
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

from benchmarks.environment import format_environment
from wbc_classic.evaluation.metrics import (
    METRIC_LABELS,
    METRIC_NAMES,
    Evaluation,
    McNemarResult,
    mcnemar_test,
    roc_curves,
)
from wbc_classic.io.atomic import atomic_write_bytes, atomic_write_text

__all__ = [
    "Misclassified",
    "ModelResult",
    "LeakageSummary",
    "DatasetInfo",
    "Section",
    "Comparison",
    "compare_best",
    "write_report",
    "results_rows",
    "format_bytes",
    "plot_confusion",
    "plot_roc",
    "plot_per_class",
    "plot_metric_intervals",
]

FAMILIES = ("classical", "deep")
# Cool colours for the classical family, warm ones for the deep family, every entry clearly
# different from every other (hue and lightness), so that no two models share a colour in the
# per-class chart; beyond these, _model_colours generates more of the family's hue range.
_FAMILY_COLOURS = {"classical": ("#1f77b4", "#17becf", "#2ca02c", "#9467bd", "#08306b",
                                 "#9ecae1", "#74c476", "#00441b", "#7b4173", "#3f007d"),
                   "deep": ("#d95f02", "#e31a1c", "#fdae6b", "#7f2704", "#e7298a",
                            "#fb9a99", "#bf812d", "#ffd92f", "#67001f", "#f768a1")}
_OTHER_COLOURS = ("#7f7f7f", "#bcbd22", "#8c564b", "#000000")
_FAMILY_HUES = {"classical": (0.42, 0.80), "deep": (0.93, 1.15)}  # extra colours (HSV hue)


# --------------------------------------------------------------------------------------------
# input types
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Misclassified:
    """One wrongly classified test cell for the gallery.

    Attributes
    ----------
    image : ndarray (H, W, 3) or (H, W) or str or Path
        The cell image (uint8, or float in [0, 1]) or a path to it.
    true, predicted : int or str
        Class index (into the report's class names) or class name.
    score : float, optional
        The model's probability for the predicted class.
    label : str, optional
        An identifier shown under the thumbnail (e.g. the file name).
    """

    image: Any
    true: int | str
    predicted: int | str
    score: float | None = None
    label: str | None = None


@dataclass
class ModelResult:
    """Everything the report needs about one model.

    Attributes
    ----------
    name : str
    family : {"classical", "deep"}
    evaluation : wbc_classic.evaluation.metrics.Evaluation
        Metrics with CIs, per-class table and confusion matrix.
    y_pred : ndarray of int, shape (n,), optional
        Test predictions (for McNemar and results.json).
    y_score : ndarray of float, shape (n, K), optional
        Class probabilities on the test set (for ROC curves).
    y_true : ndarray of int, shape (n,), optional
        Test labels, when not given once to :func:`write_report`.
    train_seconds : float, optional
        Wall time to fit (features excluded or included: say so in ``notes``).
    throughput : float, optional
        Inference throughput in cells per second.
    model_bytes : int, optional
        Serialized model size.
    peak_memory_bytes : int, optional
        Peak resident memory while training/predicting (see
        ``wbc_classic.evaluation.profiling.Measurement``).
    misclassified : sequence of Misclassified or (image, true, predicted) tuples
    params : mapping
        Hyper-parameters or settings worth showing.
    notes : sequence of str
    history : sequence of mapping
        Deep models: one row per epoch (``train_loss``, ``val_loss``, ``train_acc``,
        ``val_acc``, ...; the ``metrics.jsonl`` lines), drawn as training curves.
    """

    name: str
    family: str
    evaluation: Evaluation
    y_pred: np.ndarray | None = None
    y_score: np.ndarray | None = None
    y_true: np.ndarray | None = None
    train_seconds: float | None = None
    throughput: float | None = None
    model_bytes: int | None = None
    peak_memory_bytes: int | None = None
    misclassified: Sequence[Any] = ()
    params: Mapping[str, Any] = field(default_factory=dict)
    notes: Sequence[str] = ()
    history: Sequence[Mapping[str, Any]] = ()


@dataclass(frozen=True)
class LeakageSummary:
    """Result of the train/test duplicate search.

    Attributes
    ----------
    exact : int
        Exact-duplicate (identical pixels) train/test pairs.
    near : int
        Near-duplicate train/test pairs (perceptual-hash distance under a threshold), exact
        pairs not counted again.
    method : str
        How duplicates were searched (hash, threshold).
    checked : bool
        False when the check was not run (then the report says so).
    leaked_test : int or None
        Test images with at least one match, when known.
    examples : sequence of (str, str)
        A few (train, test) identifier pairs.
    """

    exact: int = 0
    near: int = 0
    method: str = ""
    checked: bool = True
    leaked_test: int | None = None
    examples: Sequence[tuple[str, ...]] = ()

    @property
    def total(self) -> int:
        """``exact + near``."""
        return int(self.exact) + int(self.near)

    @property
    def flagged(self) -> bool:
        """True when any duplicate was found."""
        return self.total > 0 or bool(self.leaked_test)

    def headline(self) -> str:
        """One line for the table header."""
        if not self.checked:
            return "leakage check: NOT RUN"
        text = (f"leakage check: {self.exact} exact and {self.near} near-duplicate "
                f"train/test pairs")
        if self.leaked_test is not None and self.flagged:
            text += f" ({self.leaked_test} test images affected)"
        return text + (" -- LEAKAGE" if self.flagged else "")

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict."""
        return {"exact": int(self.exact), "near": int(self.near), "method": self.method,
                "checked": self.checked, "flagged": self.flagged,
                "leaked_test": self.leaked_test,
                "examples": [list(p) for p in self.examples]}

    @classmethod
    def from_any(cls, obj: Any) -> LeakageSummary:
        """Build from whatever the leakage check returned.

        Accepts a LeakageSummary; a :class:`wbc_classic.evaluation.leakage.LeakageReport` or its
        ``to_dict()``; a mapping or object with ``exact``/``near`` (or ``n_exact``/``n_near``)
        counts or pair lists; or None (check not run).
        """
        if isinstance(obj, cls):
            return obj
        if obj is None:
            return cls(checked=False)

        def get(*keys: str, default: Any = None) -> Any:
            for key in keys:
                if isinstance(obj, Mapping):
                    if key in obj:
                        return obj[key]
                elif hasattr(obj, key):
                    return getattr(obj, key)
            return default

        def count(v: Any) -> int:
            if isinstance(v, (list, tuple, set, np.ndarray)):
                return len(v)
            return int(v or 0)

        method = str(get("method", default="") or "")
        hash_name = get("hash_name", "hash")
        if not method and hash_name:
            method = f"{hash_name} Hamming distance <= {get('max_distance', default='?')}/64"
        def seq(key: str) -> list[Any]:
            v = get(key)
            return [] if v is None else list(v)

        examples = [tuple(map(str, p)) for p in seq("examples")]
        if not examples:
            train_names, test_names = seq("train_names"), seq("test_names")
            for key in ("exact_pairs", "near_pairs"):
                for pair in seq(key)[:5]:
                    i, j = int(pair[0]), int(pair[1])
                    examples.append((train_names[i] if i < len(train_names) else f"train #{i}",
                                     test_names[j] if j < len(test_names) else f"test #{j}"))
        leaked = get("n_leaked_test", "leaked_test")
        return cls(exact=count(get("exact", "n_exact", "exact_pairs", default=0)),
                   near=count(get("near", "n_near", "near_pairs", default=0)),
                   method=method, checked=bool(get("checked", default=True)),
                   leaked_test=None if leaked is None else count(leaked),
                   examples=tuple(examples[:10]))


@dataclass(frozen=True)
class DatasetInfo:
    """What was trained and tested on.

    Attributes
    ----------
    name : str
    synthetic : bool
        True for generated cells; the report then says so at the top.
    description : str
    root : str, optional
        Where the data were read from.
    test_name : str, optional
        Name of a separate test set (domain-shift runs).
    n_train, n_val, n_test : int, optional
    """

    name: str
    synthetic: bool
    description: str = ""
    root: str | None = None
    test_name: str | None = None
    n_train: int | None = None
    n_val: int | None = None
    n_test: int | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict."""
        return dataclasses.asdict(self)


@dataclass(frozen=True)
class Section:
    """An extra table for the report (e.g. segmentation scores).

    Attributes
    ----------
    title : str
    rows : sequence of mapping
        One dict per row; the keys of the first row are the columns.
    note : str
    """

    title: str
    rows: Sequence[Mapping[str, Any]]
    note: str = ""


@dataclass(frozen=True)
class Comparison:
    """McNemar's test between two named models."""

    model_a: str
    model_b: str
    metric: str
    result: McNemarResult

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict."""
        return {"model_a": self.model_a, "model_b": self.model_b, "selected_by": self.metric,
                **self.result.to_dict()}

    def sentence(self) -> str:
        """Plain-language summary."""
        r = self.result
        verdict = ("the two error rates differ significantly at the 5% level" if r.pvalue < 0.05
                   else "no significant difference at the 5% level")
        test = "exact binomial" if r.method == "exact" else "chi-square, continuity-corrected"
        return (f"McNemar ({test}) on {r.n} paired test images: {self.model_a} right / "
                f"{self.model_b} wrong b = {r.b}, {self.model_a} wrong / {self.model_b} right "
                f"c = {r.c}, statistic = {r.statistic:.3f}, {_fmt_p(r.pvalue)}: {verdict}.")


# --------------------------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------------------------
def format_bytes(n: float | None) -> str:
    """``1536 -> "1.5 KiB"``; empty for None."""
    if n is None or (isinstance(n, float) and not math.isfinite(n)):
        return ""
    n = float(n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(n) < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} GiB"


def _fmt_p(p: float) -> str:
    return "p < 0.0001" if p < 1e-4 else f"p = {p:.4f}"


def _fmt_num(x: Any, digits: int = 3) -> str:
    if x is None:
        return ""
    if isinstance(x, (bool, np.bool_)):
        return str(bool(x))
    if isinstance(x, (int, np.integer)):
        return str(int(x))
    if isinstance(x, (float, np.floating)):
        if not math.isfinite(float(x)):
            return "n/a"
        return f"{float(x):.{digits}f}"
    return str(x)


def _fmt_seconds(s: float | None) -> str:
    if s is None or not math.isfinite(s):
        return ""
    return f"{s:.2f}" if s < 100 else f"{s:.0f}"


def _fmt_rate(r: float | None) -> str:
    if r is None or not math.isfinite(r):
        return ""
    return f"{r:.1f}" if r < 100 else f"{r:.0f}"


def _jsonable(obj: Any) -> Any:
    """Recursively turn numpy/Path/dataclass values into JSON types; NaN -> None."""
    if hasattr(obj, "to_dict") and callable(obj.to_dict):
        return _jsonable(obj.to_dict())
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return _jsonable(dataclasses.asdict(obj))
    if isinstance(obj, Mapping):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple, set)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return _jsonable(obj.tolist())
    if isinstance(obj, (np.bool_, bool)):
        return bool(obj)
    if isinstance(obj, (np.integer, int)):
        return int(obj)
    if isinstance(obj, (np.floating, float)):
        f = float(obj)
        return f if math.isfinite(f) else None
    if isinstance(obj, Path):
        return str(obj)
    if obj is None or isinstance(obj, str):
        return obj
    return str(obj)


def _split_dict(split: Any) -> dict[str, Any]:
    if split is None:
        return {}
    if isinstance(split, str):
        return {"scheme": split}
    if isinstance(split, Mapping):
        return dict(split)
    out: dict[str, Any] = {}
    for key in ("scheme", "seed"):
        if hasattr(split, key):
            out[key] = getattr(split, key)
    for part in ("train", "val", "test"):
        if hasattr(split, part):
            out[f"n_{part}"] = int(len(getattr(split, part)))
    return out or {"description": str(split)}


def _class_name(v: int | str, names: Sequence[str]) -> str:
    if isinstance(v, (int, np.integer)) and 0 <= int(v) < len(names):
        return names[int(v)]
    return str(v)


def _as_misclassified(m: Any) -> Misclassified:
    if isinstance(m, Misclassified):
        return m
    if isinstance(m, Mapping):
        return Misclassified(**m)
    return Misclassified(*m)


def _check_results(results: Sequence[ModelResult], class_names: Sequence[str]) -> None:
    if not results:
        raise ValueError("no model results to report")
    seen = set()
    for r in results:
        if r.name in seen:
            raise ValueError(f"duplicate model name {r.name!r}")
        seen.add(r.name)
        if tuple(r.evaluation.class_names) != tuple(class_names):
            raise ValueError(f"model {r.name!r} was scored with classes "
                             f"{r.evaluation.class_names}, the report uses {tuple(class_names)}")


def compare_best(results: Sequence[ModelResult], y_true: Any | None = None, *,
                 metric: str = "balanced_accuracy") -> Comparison | None:
    """McNemar's test between the best classical and the best deep model.

    Parameters
    ----------
    results : sequence of ModelResult
        Models need ``y_pred`` (and ``y_true`` unless given here).
    y_true : array_like of int, shape (n,), optional
    metric : str, default "balanced_accuracy"
        Which point estimate picks "best" in each family.

    Returns
    -------
    Comparison or None
        None when a family has no model with predictions, or the test sets differ.
    """
    best: dict[str, ModelResult] = {}
    for fam in FAMILIES:
        cands = [r for r in results if r.family == fam and r.y_pred is not None
                 and math.isfinite(r.evaluation.metrics[metric].value)]
        if cands:
            best[fam] = max(cands, key=lambda r: r.evaluation.metrics[metric].value)
    if len(best) < 2:
        return None
    a, b = best["classical"], best["deep"]
    yt_a = a.y_true if a.y_true is not None else y_true
    yt_b = b.y_true if b.y_true is not None else y_true
    if yt_a is None or yt_b is None:
        return None
    yt_a, yt_b = np.asarray(yt_a), np.asarray(yt_b)
    if yt_a.shape != yt_b.shape or not np.array_equal(yt_a, yt_b):
        return None
    return Comparison(a.name, b.name, metric, mcnemar_test(yt_a, a.y_pred, b.y_pred))


#: Per-network columns of results.csv: what the training really got.
TRAINING_COLUMNS: tuple[str, ...] = ("recipe", "img_size", "n_parameters", "gflops",
                                     "max_minutes", "train_minutes", "epochs_run",
                                     "best_epoch", "stop_reason", "converged")


def results_rows(results: Sequence[ModelResult], leakage: LeakageSummary | None = None,
                 synthetic: bool | None = None) -> list[dict[str, Any]]:
    """The rows of results.csv: one per model, value and CI columns per metric.

    Returns
    -------
    list of dict
        Keys: ``model, family, n_test, <metric>, <metric>_low, <metric>_high, ...,
        train_seconds, throughput_cells_per_s, model_bytes, peak_memory_bytes``, what each
        network got (:data:`TRAINING_COLUMNS`, empty for the classical rows) and, when
        given, ``leakage_exact, leakage_near, synthetic_data``.
    """
    rows = []
    for r in results:
        row: dict[str, Any] = {"model": r.name, "family": r.family,
                               "n_test": r.evaluation.n_samples}
        for name in METRIC_NAMES:
            m = r.evaluation.metrics[name]
            row[name], row[f"{name}_low"], row[f"{name}_high"] = m.value, m.low, m.high
        row.update(train_seconds=r.train_seconds, throughput_cells_per_s=r.throughput,
                   model_bytes=r.model_bytes, peak_memory_bytes=r.peak_memory_bytes)
        if any(x.family == "deep" for x in results):
            for col in TRAINING_COLUMNS:
                v = r.params.get(col) if r.family == "deep" else None
                row[col] = json.dumps(v) if isinstance(v, (list, dict)) else v
        if leakage is not None:
            row.update(leakage_exact=leakage.exact if leakage.checked else None,
                       leakage_near=leakage.near if leakage.checked else None)
        if synthetic is not None:
            row["synthetic_data"] = bool(synthetic)
        rows.append(row)
    return rows


def _csv_text(rows: list[dict[str, Any]]) -> str:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(rows[0]), lineterminator="\n")
    writer.writeheader()
    for row in rows:
        out = {}
        for k, v in row.items():
            if v is None or (isinstance(v, float) and not math.isfinite(v)):
                out[k] = ""
            elif isinstance(v, float):
                out[k] = repr(round(v, 6))
            else:
                out[k] = v
        writer.writerow(out)
    return buf.getvalue()


# --------------------------------------------------------------------------------------------
# figures (matplotlib Agg canvas, no pyplot)
# --------------------------------------------------------------------------------------------
def _new_figure(w: float, h: float,
                layout: Literal["constrained", "compressed", "tight"] | None = "constrained"):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(w, h), dpi=100, layout=layout)
    FigureCanvasAgg(fig)
    return fig


def _png(fig, dpi: int = 100) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi)
    return buf.getvalue()


def _extra_colour(family: str, i: int, taken: set[str]) -> str:
    """The ``i``-th generated colour of a family's hue range, not in ``taken``."""
    import colorsys

    lo, hi = _FAMILY_HUES.get(family, (0.0, 1.0))
    k = i
    while True:
        hue = (lo + (hi - lo) * ((k * 0.618034) % 1.0)) % 1.0
        value = (0.45, 0.7, 0.9)[k % 3]
        sat = (0.9, 0.55)[(k // 3) % 2]
        r, g, b = colorsys.hsv_to_rgb(hue, sat, value)
        colour = f"#{round(255 * r):02x}{round(255 * g):02x}{round(255 * b):02x}"
        if colour not in taken:
            return colour
        k += 1


def _model_colours(results: Sequence[ModelResult]) -> dict[str, str]:
    """One colour per model, never shared: the family's palette in table order, then
    generated colours of the family's hue range."""
    colours: dict[str, str] = {}
    taken: set[str] = set()
    used: dict[str, int] = {}
    for r in results:
        if r.name in colours:
            continue
        pal = _FAMILY_COLOURS.get(r.family, _OTHER_COLOURS)
        i = used.get(r.family, 0)
        used[r.family] = i + 1
        colour = pal[i] if i < len(pal) and pal[i] not in taken else \
            _extra_colour(r.family, i, taken)
        colours[r.name] = colour
        taken.add(colour)
    return colours


def plot_confusion(cm: np.ndarray, class_names: Sequence[str], title: str):
    """Heat map of a confusion matrix: colour = row-normalised rate, text = count.

    Parameters
    ----------
    cm : ndarray of int, shape (K, K)
    class_names : sequence of str
    title : str

    Returns
    -------
    matplotlib.figure.Figure
    """
    k = len(class_names)
    label_in = 0.075 * max(len(str(c)) for c in class_names) + 0.55  # room for tick labels
    cell_in = 0.55 if k <= 10 else 0.4
    w = label_in + cell_in * k + 1.4
    h = label_in + cell_in * k + 0.45
    fig = _new_figure(w, h, layout=None)  # fixed margins: 3x faster than constrained layout
    ax = fig.add_axes((label_in / w, label_in / h, cell_in * k / w, cell_in * k / h))
    cax = fig.add_axes(((label_in + cell_in * k + 0.15) / w, label_in / h, 0.15 / w,
                        cell_in * k / h))
    rows = cm.sum(axis=1, keepdims=True)
    rate = np.divide(cm, rows, out=np.zeros(cm.shape, dtype=float), where=rows > 0)
    im = ax.imshow(rate, cmap="Blues", vmin=0, vmax=1)
    fs = 9 if k <= 8 else 7
    for i in range(k):
        for j in range(k):
            if cm[i, j] == 0 and i != j:
                continue
            colour = "white" if rate[i, j] > 0.55 else "black"
            ax.text(j, i, f"{cm[i, j]}\n{100 * rate[i, j]:.0f}%", ha="center", va="center",
                    fontsize=fs, color=colour)
    ax.set_xticks(range(k), class_names, rotation=45, ha="right")
    ax.set_yticks(range(k), class_names)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title, fontsize=10)
    fig.colorbar(im, cax=cax, label="fraction of true class")
    return fig


def plot_roc(y_true: np.ndarray, y_score: np.ndarray, class_names: Sequence[str], title: str):
    """One-vs-rest ROC curves, one line per class, AUC in the legend.

    Returns
    -------
    matplotlib.figure.Figure
    """
    import matplotlib as mpl

    fig = _new_figure(5.0, 4.6, layout=None)
    ax = fig.add_axes((0.12, 0.11, 0.84, 0.82))
    cmap = mpl.colormaps["tab10" if len(class_names) <= 10 else "tab20"]
    curves = roc_curves(y_true, y_score, len(class_names))
    for c, (fpr, tpr, auc) in curves.items():
        ax.plot(fpr, tpr, color=cmap(c % cmap.N), lw=1.5,
                label=f"{class_names[c]} (AUC {auc:.3f})")
    ax.plot([0, 1], [0, 1], color="0.6", lw=1, ls="--")
    ax.set_xlim(-0.01, 1.01)
    ax.set_ylim(-0.01, 1.01)
    ax.set_xlabel("false positive rate (1 - specificity)")
    ax.set_ylabel("true positive rate (sensitivity)")
    ax.set_title(title, fontsize=10)
    ax.legend(loc="lower right", fontsize=7.5, frameon=True)
    ax.grid(alpha=0.3)
    return fig


def plot_per_class(results: Sequence[ModelResult], class_names: Sequence[str]):
    """Grouped bars: per-class precision, sensitivity, specificity and F1 for every model.

    Returns
    -------
    matplotlib.figure.Figure
    """
    k, m = len(class_names), len(results)
    colours = _model_colours(results)
    width_in = max(7.0, 0.2 * k * max(m, 2) + 2.0)
    fig = _new_figure(min(width_in, 14.0), 8.0)
    axes = fig.subplots(4, 1, sharex=True)
    bar_w = 0.8 / m
    x = np.arange(k)
    attrs = ("precision", "sensitivity", "specificity", "f1")
    lowest = min(float(np.min(getattr(r.evaluation.per_class, a))) for r in results
                 for a in attrs)
    # all scores high: start the axis above 0 so differences stay visible (and say so)
    bottom = math.floor(10 * lowest - 1) / 10 if lowest > 0.6 else 0.0
    for ax, (attr, label) in zip(axes, (("precision", "precision"),
                                        ("sensitivity", "sensitivity (recall)"),
                                        ("specificity", "specificity"), ("f1", "F1")),
                                 strict=True):
        for i, r in enumerate(results):
            vals = getattr(r.evaluation.per_class, attr)
            ax.bar(x - 0.4 + bar_w * (i + 0.5), vals, width=bar_w, color=colours[r.name],
                   label=r.name, edgecolor="white", linewidth=0.3)
        ax.set_ylim(bottom, 1.0 + 0.05 * (1.0 - bottom))
        ax.set_ylabel(label, fontsize=9)
        ax.grid(axis="y", alpha=0.3)
    axes[-1].set_xticks(x, class_names, rotation=30, ha="right")
    if bottom > 0:
        fig.suptitle(f"note: value axes start at {bottom:.1f}", fontsize=8, x=0.99, ha="right",
                     color="0.35")
    axes[0].legend(loc="lower left", bbox_to_anchor=(0, 1.02), ncol=min(m, 5), fontsize=8,
                   frameon=False)
    return fig


def plot_metric_intervals(results: Sequence[ModelResult]):
    """Point estimates with 95% CIs, one panel per overall metric, one row per model.

    Returns
    -------
    matplotlib.figure.Figure
    """
    from matplotlib.ticker import MaxNLocator

    m = len(results)
    colours = _model_colours(results)
    n_rows = -(-len(METRIC_NAMES) // 4)
    fig = _new_figure(12, max(1.6 * n_rows, 0.6 * n_rows + 0.28 * m * n_rows))
    axes = fig.subplots(n_rows, 4, sharey=True, squeeze=False)
    y = np.arange(m)[::-1]
    for ax in axes.ravel()[len(METRIC_NAMES):]:
        ax.set_visible(False)
    for ax, name in zip(axes.ravel(), METRIC_NAMES, strict=False):
        for yi, r in zip(y, results, strict=True):
            mr = r.evaluation.metrics[name]
            if not math.isfinite(mr.value):
                ax.text(0.5, yi, "n/a", ha="center", va="center", fontsize=8, color="0.4",
                        transform=ax.get_yaxis_transform())
                continue
            lo = mr.value - mr.low if math.isfinite(mr.low) else 0
            hi = mr.high - mr.value if math.isfinite(mr.high) else 0
            ax.errorbar(mr.value, yi, xerr=[[lo], [hi]], fmt="o", color=colours[r.name],
                        ms=5, capsize=3)
        ax.set_title(METRIC_LABELS[name], fontsize=9)
        ax.grid(axis="x", alpha=0.3)
        ax.tick_params(labelsize=8)
        ax.xaxis.set_major_locator(MaxNLocator(nbins=4))
    axes[0, 0].set_yticks(y, [r.name for r in results], fontsize=8)
    axes[0, 0].set_ylim(-0.6, m - 0.4)
    return fig


def plot_training_curves(results: Sequence[ModelResult]):
    """Loss and accuracy by epoch (training and validation) of every model with a history.

    Returns
    -------
    matplotlib.figure.Figure or None
        None when no model has a history.
    """
    curves = [r for r in results if r.history]
    if not curves:
        return None
    colours = _model_colours(results)
    fig = _new_figure(12, 4.2)
    ax_loss, ax_acc = fig.subplots(1, 2)
    for r in curves:
        ep = np.cumsum([float(h.get("fraction", 1.0)) for h in r.history])
        c = colours[r.name]
        for ax, key in ((ax_loss, "loss"), (ax_acc, "acc")):
            tr = [h.get(f"train_{key}", np.nan) for h in r.history]
            va = [h.get(f"val_{key}", np.nan) for h in r.history]
            ax.plot(ep, tr, "--", color=c, lw=1, marker="." if len(ep) < 3 else None)
            ax.plot(ep, va, "-", color=c, lw=1.5, label=r.name,
                    marker="o" if len(ep) < 3 else None, ms=3)
    ax_loss.set(xlabel="epoch", ylabel="loss", title="Loss (dashed: training, solid: "
                "validation)")
    ax_acc.set(xlabel="epoch", ylabel="accuracy", title="Accuracy (dashed: training, solid: "
               "validation)")
    for ax in (ax_loss, ax_acc):
        ax.grid(alpha=0.3)
        ax.tick_params(labelsize=8)
        ax.title.set_fontsize(9)
    ax_acc.legend(fontsize=7, ncol=2, loc="lower right")
    return fig


def _paper_metrics_section(results: Sequence[ModelResult]) -> Section:
    rows = []
    for r in results:
        row: dict[str, Any] = {"model": r.name, "family": r.family}
        for n in PAPER_METRICS:
            row[METRIC_LABELS[n]] = r.evaluation.metrics[n].format(3)
        rows.append(row)
    return Section("Weighted averages and Matthews correlation", rows,
                   "Precision, recall and F1 averaged with the class supports as weights, and "
                   "the multiclass Matthews correlation coefficient, as the papers report "
                   "them; same test images and bootstrap as the main table.")


def _deep_training_section(results: Sequence[ModelResult]) -> Section | None:
    deep = [r for r in results if r.family == "deep" and r.params]
    if not deep:
        return None
    rows = []
    yes_no: dict[Any, str] = {True: "yes", False: "NO"}
    for r in deep:
        p = r.params
        gf = p.get("gflops")
        rows.append({
            "model": r.name, "recipe": p.get("recipe", "default"),
            "image size": p.get("img_size"),
            "parameters": f"{p['n_parameters']:,}" if p.get("n_parameters") else "",
            "GFLOPs/image": "" if gf is None else f"{gf:.3g}",
            "budget (min)": p.get("max_minutes") or "",
            "minutes": p.get("train_minutes", ""), "epochs": p.get("epochs_run", ""),
            "best epoch": p.get("best_epoch", ""), "stopped by": p.get("stop_reason", ""),
            "converged": yes_no.get(p.get("converged"), "")})
    return Section("Deep training", rows,
                   "What each network got: epochs (fractions: stopped inside an epoch by its "
                   "time budget), minutes of training, parameters and forward FLOPs per image "
                   "(torch.utils.flop_counter). 'converged: NO' -- the validation loss was "
                   "still falling over the last epochs, so more training would likely help.")


# --------------------------------------------------------------------------------------------
# gallery
# --------------------------------------------------------------------------------------------
def _load_image(img: Any) -> np.ndarray:
    if isinstance(img, (str, Path)):
        read_image: Callable[..., np.ndarray] | None
        try:
            from wbc_classic.io.images import read_image
        except ImportError:  # pragma: no cover - imageio module written elsewhere
            read_image = None
        if read_image is not None:
            return read_image(img)
        from PIL import Image

        with Image.open(img) as im:
            return np.asarray(im.convert("RGB"))
    return np.asarray(img)


def _thumbnail_jpeg(img: Any, size: int = 96) -> bytes:
    """A ``size`` px JPEG thumbnail (small: a gallery of 100 cells stays around 0.5 MB)."""
    from PIL import Image

    a = _load_image(img)
    if a.dtype != np.uint8:
        a = a.astype(np.float64)
        if a.size and a.max() <= 1.0:
            a = a * 255.0
        a = np.clip(a, 0, 255).astype(np.uint8)
    if a.ndim == 3 and a.shape[2] == 1:
        a = a[..., 0]
    if a.ndim == 3 and a.shape[2] == 4:
        a = a[..., :3]
    im = Image.fromarray(a).convert("RGB")
    im.thumbnail((size, size), Image.Resampling.LANCZOS)
    buf = io.BytesIO()
    im.save(buf, format="JPEG", quality=88)
    return buf.getvalue()


# --------------------------------------------------------------------------------------------
# markdown
# --------------------------------------------------------------------------------------------
def _md_table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    def cell(v: Any) -> str:
        return str(v).replace("|", "\\|").replace("\n", " ")

    lines = ["| " + " | ".join(cell(h) for h in header) + " |",
             "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


def _best_index(results: Sequence[ModelResult], name: str) -> set[int]:
    vals = [r.evaluation.metrics[name].value for r in results]
    finite = [v for v in vals if math.isfinite(v)]
    if len(results) < 2 or not finite:
        return set()
    best = max(finite)
    return {i for i, v in enumerate(vals) if math.isfinite(v) and v == best}


#: Metrics the papers of the comparative study report beside accuracy: their own table, so
#: the main one stays the width of a page.
PAPER_METRICS: tuple[str, ...] = ("precision_weighted", "sensitivity_weighted", "f1_weighted",
                                  "mcc")
#: Columns of the main results table.
MAIN_METRICS: tuple[str, ...] = tuple(n for n in METRIC_NAMES if n not in PAPER_METRICS)


def _main_table(results: Sequence[ModelResult], digits: int = 3, bold: str = "**"
                ) -> tuple[list[str], list[list[str]]]:
    header = ["Model", "Family"] + [METRIC_LABELS[n] for n in MAIN_METRICS] + [
        "Train time (s)", "Inference (cells/s)", "Model size", "Peak memory"]
    best = {n: _best_index(results, n) for n in MAIN_METRICS}
    rows = []
    for i, r in enumerate(results):
        row = [r.name, r.family]
        for n in MAIN_METRICS:
            text = r.evaluation.metrics[n].format(digits)
            row.append(f"{bold}{text}{bold}" if i in best[n] and bold else text)
        row += [_fmt_seconds(r.train_seconds), _fmt_rate(r.throughput),
                format_bytes(r.model_bytes), format_bytes(r.peak_memory_bytes)]
        rows.append(row)
    return header, rows


def _per_class_table(r: ModelResult) -> tuple[list[str], list[list[str]]]:
    header = ["Class", "Precision", "Sensitivity", "Specificity", "F1", "Support"]
    rows = [[row["class"], _fmt_num(row["precision"]), _fmt_num(row["sensitivity"]),
             _fmt_num(row["specificity"]), _fmt_num(row["f1"]), str(row["support"])]
            for row in r.evaluation.per_class.rows()]
    return header, rows


def _confusion_table(r: ModelResult) -> tuple[list[str], list[list[str]]]:
    names = r.evaluation.class_names
    header = ["true \\ predicted", *names]
    rows = [[names[i], *map(str, r.evaluation.confusion[i])] for i in range(len(names))]
    return header, rows


def _section_table(sec: Section) -> tuple[list[str], list[list[str]]]:
    if not sec.rows:
        return [], []
    header = list(sec.rows[0])
    for row in sec.rows[1:]:
        header += [k for k in row if k not in header]
    return header, [[_fmt_num(row.get(h)) for h in header] for row in sec.rows]


def _banners(dataset: DatasetInfo, leakage: LeakageSummary) -> list[tuple[str, str]]:
    """(kind, text) banners: kind in {"leak", "synthetic", "info"}."""
    out = []
    if leakage.flagged:
        affected = (f" ({leakage.leaked_test} test images affected)"
                    if leakage.leaked_test is not None else "")
        out.append(("leak", f"LEAKAGE FLAGGED: {leakage.exact} exact and {leakage.near} "
                            f"near-duplicate train/test image pairs{affected}. Test images "
                            f"also seen in training make the scores below optimistic; remove "
                            f"the duplicates and rerun."))
    elif not leakage.checked:
        out.append(("leak", "LEAKAGE CHECK NOT RUN: duplicates between train and test were "
                            "not searched for."))
    if dataset.synthetic:
        out.append(("synthetic", "SYNTHETIC DATA: every image in this run was generated by a "
                                 "program, none comes from a real blood smear. These numbers "
                                 "test the software; they say nothing about how the models "
                                 "would do on real cells."))
    return out


def _render_markdown(ctx: dict[str, Any]) -> str:
    results: Sequence[ModelResult] = ctx["results"]
    dataset: DatasetInfo = ctx["dataset"]
    leakage: LeakageSummary = ctx["leakage"]
    out = [f"# {ctx['title']}", ""]
    for _, text in _banners(dataset, leakage):
        out += [f"> **{text}**", ""]
    out += ["## Setup", ""]
    out += [_md_table(["", ""], ctx["setup_rows"]), ""]
    n_test = results[0].evaluation.n_samples
    ev0 = results[0].evaluation
    out += ["## Results", "",
            f"Test set: n = {n_test} images; {leakage.headline()}. "
            f"Values with {100 * ev0.confidence:.0f}% percentile-bootstrap confidence intervals "
            f"({ev0.n_resamples} resamples, seed {ev0.seed}); best value per column in bold.",
            ""]
    header, rows = _main_table(results)
    out += [_md_table(header, rows), ""]
    out += ["## Paired test", "", ctx["comparison_text"], ""]
    for sec in ctx["sections"]:
        header, rows = _section_table(sec)
        out += [f"## {sec.title}", ""]
        if sec.note:
            out += [sec.note, ""]
        if header:
            out += [_md_table(header, rows), ""]
    if any(r.history for r in results):
        out += ["## Training curves", "", "![training curves](figures/training_curves.png)", ""]
    out += ["## Per-class results", ""]
    for r in results:
        out += [f"### {r.name} ({r.family})", ""]
        out += [_md_table(*_per_class_table(r)), ""]
        out += ["Confusion matrix (rows true, columns predicted):", ""]
        out += [_md_table(*_confusion_table(r)), ""]
        notes = list(r.evaluation.notes) + list(r.notes)
        if r.params:
            notes.append("settings: " + ", ".join(f"{k}={v}" for k, v in r.params.items()))
        out += [f"- {n}" for n in notes]
        if notes:
            out.append("")
    if ctx["notes"]:
        out += ["## Notes", ""] + [f"- {n}" for n in ctx["notes"]] + [""]
    out += ["## Environment", "", _md_table(["", ""], ctx["env_rows"]), ""]
    out += ["Files: `results.csv` (one row per model), `results.json` (everything, with "
            "predictions), `report.html` (this report with plots).", ""]
    return "\n".join(out)


# --------------------------------------------------------------------------------------------
# HTML
# --------------------------------------------------------------------------------------------
_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Helvetica,Arial,sans-serif;margin:2em auto;
max-width:1400px;padding:0 1em;color:#222;line-height:1.4}
h1{margin-bottom:.2em} h2{border-bottom:1px solid #ddd;padding-bottom:.2em;margin-top:1.6em}
table{border-collapse:collapse;margin:.6em 0 1em;font-size:.82em}
th,td{border:1px solid #ccc;padding:2px 5px;text-align:right;white-space:nowrap}
th{background:#f3f3f3;white-space:normal;vertical-align:bottom;min-width:4em}
td small{color:#666;font-size:.85em} td:first-child,th:first-child{text-align:left}
td.best{font-weight:bold;background:#eef6ee}
.scroll{overflow-x:auto;max-width:100%;
background:linear-gradient(to right,#fff 30%,rgba(255,255,255,0)),
linear-gradient(to left,#fff 30%,rgba(255,255,255,0)) 100% 0,
linear-gradient(to right,rgba(0,0,0,.18),rgba(0,0,0,0)),
linear-gradient(to left,rgba(0,0,0,.18),rgba(0,0,0,0)) 100% 0;
background-repeat:no-repeat;background-size:40px 100%,40px 100%,12px 100%,12px 100%;
background-attachment:local,local,scroll,scroll}
table.kv{table-layout:fixed;width:100%}
table.kv td{white-space:normal;overflow-wrap:anywhere;word-break:break-word;text-align:left}
table.kv th:first-child,table.kv td:first-child{width:12em;overflow-wrap:normal}
.banner{padding:.8em 1em;margin:.8em 0;border-radius:4px;font-weight:bold;font-size:1.05em}
.leak{background:#fde2e1;border:2px solid #c62828;color:#8e0000}
.synthetic{background:#fff4d6;border:2px solid #e0a100;color:#6d4c00}
.caption{color:#555;font-size:.9em}
.figs{display:flex;flex-wrap:wrap;gap:10px}
.figs figure{margin:0;max-width:100%} img.plot{max-width:100%;height:auto;border:1px solid #eee}
.gallery{display:flex;flex-wrap:wrap;gap:6px;align-items:flex-start}
.cell{width:104px;min-width:0;box-sizing:border-box;font-size:.72em;text-align:center;
border:1px solid #ddd;padding:3px;border-radius:3px;overflow:hidden;overflow-wrap:anywhere}
.cell img{width:96px;height:96px;object-fit:contain;image-rendering:auto}
.cell .name{display:-webkit-box;-webkit-line-clamp:3;line-clamp:3;-webkit-box-orient:vertical;
overflow:hidden;overflow-wrap:anywhere;word-break:break-all;color:#555}
.true{color:#1b5e20} .pred{color:#b71c1c}
details{margin:.4em 0 1em} summary{cursor:pointer;font-weight:600}
@media print{.scroll{overflow:visible} table{font-size:.68em}}
"""


class _Raw(str):
    """Already-escaped HTML for a table cell."""


def _html_table(header: Sequence[str], rows: Sequence[Sequence[Any]],
                best: Mapping[int, set[int]] | None = None, *, kv: bool = False) -> str:
    """A table in a horizontally scrolling container; ``kv``: a two-column key/value table
    whose values wrap at the page width (long commands, paths, CPU names)."""
    cls = ' class="kv"' if kv else ""
    parts = [f'<div class="scroll"><table{cls}><thead><tr>']
    parts += [f"<th>{html.escape(str(h))}</th>" for h in header]
    parts.append("</tr></thead><tbody>")
    for i, row in enumerate(rows):
        parts.append("<tr>")
        for j, v in enumerate(row):
            cls = ' class="best"' if best and i in best.get(j, set()) else ""
            text = v if isinstance(v, _Raw) else html.escape(str(v))
            parts.append(f"<td{cls}>{text}</td>")
        parts.append("</tr>")
    parts.append("</tbody></table></div>")
    return "".join(parts)


def _img_tag(data: bytes, alt: str, cls: str = "plot", mime: str = "image/png") -> str:
    b64 = base64.b64encode(data).decode("ascii")
    return f'<img class="{cls}" alt="{html.escape(alt)}" src="data:{mime};base64,{b64}">'


def _render_html(ctx: dict[str, Any], figs: Mapping[str, bytes], galleries: Mapping[str, str]
                 ) -> str:
    results: Sequence[ModelResult] = ctx["results"]
    dataset: DatasetInfo = ctx["dataset"]
    leakage: LeakageSummary = ctx["leakage"]
    e = html.escape
    p = ["<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
         '<meta name="viewport" content="width=device-width, initial-scale=1">',
         f"<title>{e(ctx['title'])}</title><style>{_CSS}</style></head><body>",
         f"<h1>{e(ctx['title'])}</h1>",
         f'<p class="caption">{e(dataset.name)} &middot; generated '
         f'{e(ctx["created_utc"])}</p>']
    for kind, text in _banners(dataset, leakage):
        p.append(f'<div class="banner {kind}">{e(text)}</div>')
    p.append("<h2>Setup</h2>")
    p.append(_html_table(["", ""], ctx["setup_rows"], kv=True))
    ev0 = results[0].evaluation
    p.append("<h2>Results</h2>")
    p.append(f'<p class="caption">Test set: n = {ev0.n_samples} images; '
             f"<strong>{e(leakage.headline())}</strong>. "
             f"{100 * ev0.confidence:.0f}% percentile-bootstrap confidence intervals "
             f"({ev0.n_resamples} resamples, seed {e(str(ev0.seed))}); best value per column "
             f"highlighted.</p>")
    header, rows = _main_table(results, bold="")
    for row, r in zip(rows, results, strict=True):  # value on top, CI small underneath
        for j, n in enumerate(MAIN_METRICS):
            m = r.evaluation.metrics[n]
            if math.isfinite(m.value) and math.isfinite(m.low) and math.isfinite(m.high):
                row[2 + j] = _Raw(f"{m.value:.3f}<br><small>[{m.low:.3f}, {m.high:.3f}]"
                                  "</small>")
    best = {2 + j: _best_index(results, n) for j, n in enumerate(MAIN_METRICS)}
    p.append(_html_table(header, rows, best))
    if "intervals" in figs:
        p.append(_img_tag(figs["intervals"], "metrics with confidence intervals"))
    p.append("<h2>Paired test</h2>")
    p.append(f"<p>{e(ctx['comparison_text'])}</p>")
    for sec in ctx["sections"]:
        header, rows = _section_table(sec)
        p.append(f"<h2>{e(sec.title)}</h2>")
        if sec.note:
            p.append(f'<p class="caption">{e(sec.note)}</p>')
        if header:
            p.append(_html_table(header, rows))
    if "training_curves" in figs:
        p.append("<h2>Training curves</h2>")
        p.append('<p class="caption">Per network, from its metrics.jsonl (the first fold under '
                 "k-fold).</p>")
        p.append(_img_tag(figs["training_curves"], "training curves"))
    p.append("<h2>Confusion matrices</h2>")
    p.append('<p class="caption">Colour: fraction of each true class; text: count and '
             "percentage of the row.</p>")
    p.append('<div class="figs">')
    for r in results:
        p.append(f"<figure>{_img_tag(figs[f'confusion/{r.name}'], f'confusion {r.name}')}"
                 "</figure>")
    p.append("</div>")
    p.append("<h2>ROC curves (one vs rest)</h2>")
    roc_models = [r for r in results if f"roc/{r.name}" in figs]
    if roc_models:
        p.append('<div class="figs">')
        for r in roc_models:
            p.append(f"<figure>{_img_tag(figs[f'roc/{r.name}'], f'ROC {r.name}')}</figure>")
        p.append("</div>")
    missing = [r.name for r in results if r not in roc_models]
    if missing:
        p.append(f'<p class="caption">No class scores for: {e(", ".join(missing))}.</p>')
    p.append("<h2>Per-class results</h2>")
    if "per_class" in figs:
        p.append(_img_tag(figs["per_class"], "per-class bars"))
    for r in results:
        p.append(f"<details><summary>{e(r.name)} ({e(r.family)})</summary>")
        p.append(_html_table(*_per_class_table(r)))
        p.append(_html_table(*_confusion_table(r)))
        notes = list(r.evaluation.notes) + list(r.notes)
        if r.params:
            notes.append("settings: " + ", ".join(f"{k}={v}" for k, v in r.params.items()))
        if notes:
            p.append("<ul>" + "".join(f"<li>{e(n)}</li>" for n in notes) + "</ul>")
        p.append("</details>")
    p.append("<h2>Misclassified cells</h2>")
    any_gallery = False
    for r in results:
        if galleries.get(r.name):
            any_gallery = True
            p.append(f"<h3>{e(r.name)}</h3>{galleries[r.name]}")
    if not any_gallery:
        p.append('<p class="caption">No misclassified examples were passed to the report.</p>')
    if ctx["notes"]:
        p.append("<h2>Notes</h2><ul>" + "".join(f"<li>{e(n)}</li>" for n in ctx["notes"])
                 + "</ul>")
    p.append("<h2>Environment</h2>")
    p.append(_html_table(["", ""], ctx["env_rows"], kv=True))
    p.append("</body></html>")
    return "\n".join(p)


def _gallery_html(r: ModelResult, class_names: Sequence[str], limit: int) -> str:
    items = [_as_misclassified(m) for m in r.misclassified]
    if not items:
        return ""
    e = html.escape
    parts = ['<div class="gallery">']
    for m in items[:limit]:
        true, pred = _class_name(m.true, class_names), _class_name(m.predicted, class_names)
        try:
            img = _img_tag(_thumbnail_jpeg(m.image), f"{true} predicted {pred}", cls="thumb",
                           mime="image/jpeg")
        except Exception as exc:  # an unreadable file must not kill the report
            img = f'<div style="height:96px">cannot show: {e(type(exc).__name__)}</div>'
        score = f" ({m.score:.2f})" if m.score is not None else ""
        # long file names wrap inside the card (3 lines at most); the full name on hover
        label = (f'<span class="name" title="{e(m.label)}">{e(m.label)}</span>'
                 if m.label else "")
        parts.append(f'<div class="cell">{img}<br><span class="true">{e(true)}</span> &rarr; '
                     f'<span class="pred">{e(pred)}{score}</span>{label}</div>')
    parts.append("</div>")
    if len(items) > limit:
        parts.append(f'<p class="caption">showing {limit} of {len(items)} listed.</p>')
    return "".join(parts)


# --------------------------------------------------------------------------------------------
# entry point
# --------------------------------------------------------------------------------------------
def write_report(
    out_dir: str | Path,
    results: Sequence[ModelResult],
    *,
    class_names: Sequence[str],
    dataset: DatasetInfo,
    leakage: LeakageSummary | Mapping[str, Any] | None,
    split: Any = None,
    seed: int | None = None,
    command: str | None = None,
    environment: Mapping[str, Any] | None = None,
    y_true: Any | None = None,
    comparison: Comparison | None | Literal["auto"] = "auto",
    select_by: str = "balanced_accuracy",
    sections: Sequence[Section | tuple] = (),
    notes: Sequence[str] = (),
    config: Mapping[str, Any] | None = None,
    title: str = "wbc-classic benchmark",
    include_predictions: bool = True,
    save_figures: bool = True,
    gallery_limit: int = 24,
) -> dict[str, Path]:
    """Write results.csv, results.json, report.md and report.html into ``out_dir``.

    Parameters
    ----------
    out_dir : path
        Created if needed; existing files of the same names are replaced atomically.
    results : sequence of ModelResult
        All scored on the same test images, with the same class names.
    class_names : sequence of str, length K
    dataset : DatasetInfo
        ``dataset.synthetic`` puts a plain "synthetic data" banner at the top.
    leakage : LeakageSummary or mapping or None
        Duplicate counts between train and test; counts > 0 put a red LEAKAGE banner at the
        top of both reports and into the results table header. None means the check was
        not run (also bannered).
    split : Split or mapping or str, optional
        A :class:`wbc_classic.data.split.Split` (scheme, seed and sizes are reported) or a
        description.
    seed : int, optional
    command : str, optional
        The exact command line (default: ``environment["command"]``).
    environment : mapping, optional
        From :func:`benchmarks.environment.capture_environment`; captured here when None.
    y_true : array_like of int, shape (n,), optional
        Test labels shared by all models (for ROC curves and McNemar).
    comparison : Comparison or None or "auto", default "auto"
        "auto" runs :func:`compare_best` (best classical vs best deep by ``select_by``).
    select_by : str, default "balanced_accuracy"
    sections : sequence of Section or (title, rows[, note])
        Extra tables, e.g. segmentation scores.
    notes : sequence of str
        Run-level notes (skipped models, settings, ...).
    config : mapping, optional
        The run configuration, stored in results.json.
    title : str
    include_predictions : bool, default True
        Store ``y_true`` and every model's ``y_pred``/``y_score`` in results.json.
    save_figures : bool, default True
        Also write the plots as PNG files under ``out_dir/figures``.
    gallery_limit : int, default 24
        Misclassified thumbnails per model.

    Returns
    -------
    dict of str to Path
        ``{"csv", "json", "markdown", "html"}`` plus ``"figures"`` when saved.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    results = list(results)
    class_names = tuple(class_names)
    _check_results(results, class_names)
    leak = LeakageSummary.from_any(leakage)
    secs = [s if isinstance(s, Section) else Section(*s) for s in sections]
    deep_sec = _deep_training_section(results)
    secs = [_paper_metrics_section(results)] + ([deep_sec] if deep_sec else []) + secs
    if environment is None:
        from benchmarks.environment import capture_environment

        environment = capture_environment(seed=seed, command=command)
    command = command or environment.get("command")
    if seed is None:
        seed = environment.get("seed")
    if comparison == "auto":
        comparison = compare_best(results, y_true, metric=select_by)
    if comparison is None:
        fams = sorted({r.family for r in results})
        comp_text = ("No paired test: it needs predictions of at least one classical and one "
                     f"deep model on the same images (families here: {', '.join(fams)}).")
    else:
        comp_text = (f"Best classical ({comparison.model_a}) vs best deep ({comparison.model_b}), "
                     f"chosen by {comparison.metric.replace('_', ' ')}. "
                     + comparison.sentence())
    split_info = _split_dict(split)
    created = _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")

    env_rows = [(k, v) for k, v in format_environment(environment) if k not in ("Command", "Seed")]
    synthetic_tag = dataset.synthetic and "synthetic" not in dataset.name.lower()
    setup_rows = [("Data", f"{dataset.name} (SYNTHETIC)" if synthetic_tag else dataset.name)]
    if dataset.description:
        setup_rows.append(("Description", dataset.description))
    if dataset.root:
        setup_rows.append(("Read from", dataset.root))
    if dataset.test_name:
        setup_rows.append(("Test data", dataset.test_name))
    setup_rows.append(("Classes", f"{len(class_names)}: {', '.join(class_names)}"))
    sizes = [f"{part} {n}" for part, n in (("train", dataset.n_train), ("val", dataset.n_val),
                                           ("test", dataset.n_test)) if n is not None]
    if sizes:
        setup_rows.append(("Images", ", ".join(sizes)))
    if split_info:
        setup_rows.append(("Split", ", ".join(f"{k} {v}" for k, v in split_info.items())))
    setup_rows.append(("Seed", str(seed)))
    setup_rows.append(("Leakage", leak.headline() + (f" ({leak.method})" if leak.method else "")))
    if leak.examples:
        setup_rows.append(("Duplicate examples", "; ".join(f"{a} = {b}"
                                                             for a, b in leak.examples[:5])))
    setup_rows.append(("Command", str(command)))
    ctx = {"title": title, "results": results, "dataset": dataset, "leakage": leak,
           "comparison_text": comp_text, "sections": secs, "notes": list(notes),
           "setup_rows": setup_rows, "env_rows": env_rows, "created_utc": created}

    # ---- figures
    figs: dict[str, bytes] = {}
    figs["intervals"] = _png(plot_metric_intervals(results))
    figs["per_class"] = _png(plot_per_class(results, class_names))
    curves = plot_training_curves(results)
    if curves is not None:
        figs["training_curves"] = _png(curves)
    for r in results:
        figs[f"confusion/{r.name}"] = _png(plot_confusion(
            r.evaluation.confusion, class_names, f"{r.name} ({r.family})"))
        yt = r.y_true if r.y_true is not None else y_true
        if r.y_score is not None and yt is not None:
            figs[f"roc/{r.name}"] = _png(plot_roc(np.asarray(yt), np.asarray(r.y_score),
                                                  class_names, f"{r.name} ({r.family})"))
    galleries = {r.name: _gallery_html(r, class_names, gallery_limit) for r in results}

    # ---- files
    paths: dict[str, Path] = {}
    rows = results_rows(results, leak, dataset.synthetic)
    paths["csv"] = out / "results.csv"
    atomic_write_text(paths["csv"], _csv_text(rows))

    models_json = []
    for r in results:
        d: dict[str, Any] = {
            "name": r.name, "family": r.family, **r.evaluation.to_dict(),
            "train_seconds": r.train_seconds, "throughput_cells_per_s": r.throughput,
            "model_bytes": r.model_bytes, "peak_memory_bytes": r.peak_memory_bytes,
            "params": dict(r.params), "notes": list(r.notes),
            **({"history": [dict(h) for h in r.history]} if r.history else {}),
        }
        if include_predictions:
            if r.y_true is not None:
                d["y_true"] = np.asarray(r.y_true).tolist()
            if r.y_pred is not None:
                d["y_pred"] = np.asarray(r.y_pred).tolist()
            if r.y_score is not None:
                d["y_score"] = np.round(np.asarray(r.y_score, dtype=float), 6).tolist()
        models_json.append(d)
    doc = {
        "title": title, "created_utc": created, "synthetic_data": dataset.synthetic,
        "dataset": dataset.to_dict(), "class_names": list(class_names), "split": split_info,
        "seed": seed, "command": command, "leakage": leak.to_dict(),
        "comparison": comparison.to_dict() if comparison is not None else None,
        "models": models_json,
        "sections": [{"title": s.title, "note": s.note, "rows": list(s.rows)} for s in secs],
        "notes": list(notes), "config": dict(config) if config else None,
        "environment": dict(environment),
    }
    if include_predictions and y_true is not None:
        doc["y_true"] = np.asarray(y_true).tolist()
    paths["json"] = out / "results.json"
    atomic_write_text(paths["json"], json.dumps(_jsonable(doc), indent=1, allow_nan=False) + "\n")

    paths["markdown"] = out / "report.md"
    atomic_write_text(paths["markdown"], _render_markdown(ctx))
    paths["html"] = out / "report.html"
    atomic_write_text(paths["html"], _render_html(ctx, figs, galleries))

    if save_figures:
        fig_dir = out / "figures"
        written = set()
        for key, png in figs.items():
            safe = "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in key) + ".png"
            atomic_write_bytes(fig_dir / safe, png)
            written.add(safe)
        for old in fig_dir.glob("*.png"):  # plots of models no longer in the report
            if old.name not in written and old.name.startswith(("confusion_", "roc_")):
                old.unlink(missing_ok=True)
        paths["figures"] = fig_dir
    return paths
