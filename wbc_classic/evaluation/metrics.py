"""One scoring module for both model families and the benchmark.

Everything here works on plain integer label vectors and probability matrices, so a classical
pipeline, a deep model and the benchmark runner compute their numbers the same way.

Conventions (applied everywhere, including inside every bootstrap resample)
--------------------------------------------------------------------------
* Labels are integers ``0 .. K-1``; ``K`` is ``n_classes`` (or ``len(class_names)``).
* Per class ``k`` from the confusion matrix ``C`` (rows = true, columns = predicted):
  ``TP = C[k, k]``, ``FP = sum(C[:, k]) - TP``, ``FN = sum(C[k, :]) - TP``,
  ``TN = n - TP - FP - FN``.
  precision ``TP / (TP + FP)``, sensitivity (recall) ``TP / (TP + FN)``,
  specificity ``TN / (TN + FP)``, F1 ``2 TP / (2 TP + FP + FN)``.
  **A ratio whose denominator is zero is 0** (scikit-learn's ``zero_division=0``).
* *Macro* precision, sensitivity, specificity and F1 average over the classes that occur in
  ``y_true`` or ``y_pred`` (scikit-learn's default label set); a class absent from both says
  nothing about the model and is left out.
* Balanced accuracy is the mean sensitivity over the classes present in ``y_true``
  (scikit-learn's :func:`~sklearn.metrics.balanced_accuracy_score`).
* Cohen's kappa ``(p_o - p_e) / (1 - p_e)``; 0 when ``p_e == 1`` (a single class in both vectors).
* Macro one-vs-rest ROC AUC averages the per-class AUCs of the classes that have both positive
  and negative samples in ``y_true``; ties count one half (Mann-Whitney). It is NaN, with a note,
  when no scores are given or no class qualifies.
* Confidence intervals: percentile bootstrap over test images. Resample indices are drawn once
  per call from ``numpy.random.default_rng(seed)``, so two models scored on the same test set with
  the same seed see the *same* resamples (paired intervals).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = [
    "METRIC_NAMES",
    "METRIC_LABELS",
    "MetricResult",
    "PerClassMetrics",
    "Evaluation",
    "McNemarResult",
    "confusion_matrix",
    "per_class_metrics",
    "overall_metrics",
    "bootstrap_metrics",
    "evaluate",
    "roc_curves",
    "mcnemar_test",
    "flatten_metrics",
]

#: Names of the overall metrics, in table order.
METRIC_NAMES: tuple[str, ...] = (
    "accuracy",
    "balanced_accuracy",
    "precision_macro",
    "sensitivity_macro",
    "specificity_macro",
    "f1_macro",
    "roc_auc_macro",
    "cohen_kappa",
)

#: Human-readable column headers for :data:`METRIC_NAMES`.
METRIC_LABELS: dict[str, str] = {
    "accuracy": "Accuracy",
    "balanced_accuracy": "Balanced acc.",
    "precision_macro": "Precision (macro)",
    "sensitivity_macro": "Sensitivity (macro)",
    "specificity_macro": "Specificity (macro)",
    "f1_macro": "F1 (macro)",
    "roc_auc_macro": "ROC AUC (macro OvR)",
    "cohen_kappa": "Cohen's kappa",
}

_BOOT_CHUNK_ELEMS = 4_000_000  # resample-index elements held at once (~32 MB of int64)


# --------------------------------------------------------------------------------------------
# result types
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class MetricResult:
    """A point estimate with its bootstrap confidence interval.

    Attributes
    ----------
    value : float
        The metric on the full test set (NaN when undefined).
    low, high : float
        Percentile-bootstrap bounds (NaN when no resample gave a defined value).
    """

    value: float
    low: float
    high: float

    def to_dict(self) -> dict[str, float | None]:
        """``{"value", "low", "high"}`` with NaN turned into ``None`` (valid JSON)."""
        return {k: _json_float(getattr(self, k)) for k in ("value", "low", "high")}

    def format(self, digits: int = 3) -> str:
        """``"0.912 [0.897, 0.925]"``; ``"n/a"`` when undefined."""
        if not math.isfinite(self.value):
            return "n/a"
        if not (math.isfinite(self.low) and math.isfinite(self.high)):
            return f"{self.value:.{digits}f}"
        return f"{self.value:.{digits}f} [{self.low:.{digits}f}, {self.high:.{digits}f}]"


@dataclass(frozen=True)
class PerClassMetrics:
    """Per-class scores, one entry per class ``0 .. K-1``.

    Attributes
    ----------
    class_names : tuple of str, length K
    precision, sensitivity, specificity, f1 : ndarray of float64, shape (K,)
        Zero where the denominator is zero (see module docstring).
    support : ndarray of int64, shape (K,)
        Number of true samples of each class.
    """

    class_names: tuple[str, ...]
    precision: np.ndarray
    sensitivity: np.ndarray
    specificity: np.ndarray
    f1: np.ndarray
    support: np.ndarray

    def rows(self) -> list[dict[str, Any]]:
        """One dict per class: ``class, precision, sensitivity, specificity, f1, support``."""
        return [
            {
                "class": name,
                "precision": float(self.precision[k]),
                "sensitivity": float(self.sensitivity[k]),
                "specificity": float(self.specificity[k]),
                "f1": float(self.f1[k]),
                "support": int(self.support[k]),
            }
            for k, name in enumerate(self.class_names)
        ]

    def to_dict(self) -> list[dict[str, Any]]:
        """Same as :meth:`rows` (JSON-ready)."""
        return self.rows()


@dataclass(frozen=True)
class Evaluation:
    """Everything :func:`evaluate` computes for one model on one test set.

    Attributes
    ----------
    metrics : dict of str to MetricResult
        Keys are :data:`METRIC_NAMES`, in that order.
    per_class : PerClassMetrics
    confusion : ndarray of int64, shape (K, K)
        Rows are true classes, columns predicted classes.
    class_names : tuple of str, length K
    n_samples : int
    n_resamples : int
    confidence : float
    seed : int or None
    notes : tuple of str
        Why a metric is NaN, which classes were left out, and so on.
    """

    metrics: dict[str, MetricResult]
    per_class: PerClassMetrics
    confusion: np.ndarray
    class_names: tuple[str, ...]
    n_samples: int
    n_resamples: int
    confidence: float
    seed: int | None
    notes: tuple[str, ...] = ()

    def values(self) -> dict[str, float]:
        """Point estimates only: ``{name: value}``."""
        return {k: m.value for k, m in self.metrics.items()}

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready nested dict (NaN -> ``None``)."""
        return {
            "metrics": {k: m.to_dict() for k, m in self.metrics.items()},
            "per_class": self.per_class.to_dict(),
            "confusion": self.confusion.tolist(),
            "class_names": list(self.class_names),
            "n_samples": self.n_samples,
            "n_resamples": self.n_resamples,
            "confidence": self.confidence,
            "seed": self.seed,
            "notes": list(self.notes),
        }


# --------------------------------------------------------------------------------------------
# input checking
# --------------------------------------------------------------------------------------------
def _as_labels(y: Any, name: str) -> np.ndarray:
    arr = np.asarray(y)
    if arr.ndim != 1:
        raise ValueError(f"{name} must be 1-D, got shape {arr.shape}")
    if arr.size and not np.issubdtype(arr.dtype, np.integer):
        if np.issubdtype(arr.dtype, np.floating) and np.all(arr == np.round(arr)):
            arr = arr.astype(np.int64)
        else:
            raise ValueError(f"{name} must hold integer class indices, got dtype {arr.dtype}")
    return arr.astype(np.int64, copy=False)


def _check_inputs(
    y_true: Any, y_pred: Any, y_score: Any | None, n_classes: int | None,
    class_names: Sequence[str] | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None, int]:
    yt = _as_labels(y_true, "y_true")
    yp = _as_labels(y_pred, "y_pred")
    if yt.shape != yp.shape:
        raise ValueError(f"y_true and y_pred differ in length: {yt.shape[0]} != {yp.shape[0]}")
    if yt.size == 0:
        raise ValueError("cannot score an empty test set")
    ys = None
    if y_score is not None:
        ys = np.asarray(y_score, dtype=np.float64)
        if ys.ndim != 2 or ys.shape[0] != yt.shape[0]:
            raise ValueError(f"y_score must have shape (n, K) = ({yt.shape[0]}, K), "
                             f"got {ys.shape}")
        if not np.all(np.isfinite(ys)):
            raise ValueError("y_score contains NaN or infinite values")
    if n_classes is None and class_names is not None:
        n_classes = len(class_names)
    if n_classes is None:
        n_classes = int(max(yt.max(), yp.max())) + 1
        if ys is not None:
            n_classes = max(n_classes, ys.shape[1])
    n_classes = int(n_classes)
    if class_names is not None and len(class_names) != n_classes:
        raise ValueError(f"{len(class_names)} class names for {n_classes} classes")
    for arr, name in ((yt, "y_true"), (yp, "y_pred")):
        if arr.min() < 0 or arr.max() >= n_classes:
            raise ValueError(f"{name} has labels outside 0..{n_classes - 1}")
    if ys is not None and ys.shape[1] != n_classes:
        raise ValueError(f"y_score has {ys.shape[1]} columns for {n_classes} classes")
    return yt, yp, ys, n_classes


def _names(class_names: Sequence[str] | None, k: int) -> tuple[str, ...]:
    return tuple(class_names) if class_names is not None else tuple(str(i) for i in range(k))


def _safe_div(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    num = np.asarray(num, dtype=np.float64)
    den = np.asarray(den, dtype=np.float64)
    out = np.zeros(np.broadcast(num, den).shape, dtype=np.float64)
    np.divide(num, den, out=out, where=den != 0)
    return out


def _json_float(x: float) -> float | None:
    x = float(x)
    return x if math.isfinite(x) else None


# --------------------------------------------------------------------------------------------
# confusion-matrix based metrics, vectorised over a leading batch axis
# --------------------------------------------------------------------------------------------
def confusion_matrix(y_true: Any, y_pred: Any, n_classes: int | None = None) -> np.ndarray:
    """Confusion matrix with rows = true class, columns = predicted class.

    Parameters
    ----------
    y_true, y_pred : array_like of int, shape (n,)
    n_classes : int, optional
        K; defaults to ``max(label) + 1``.

    Returns
    -------
    ndarray of int64, shape (K, K)
    """
    yt, yp, _, k = _check_inputs(y_true, y_pred, None, n_classes)
    return _confusion(yt, yp, k)


def _confusion(yt: np.ndarray, yp: np.ndarray, k: int) -> np.ndarray:
    """(K, K) int64 confusion matrix of checked labels: the one place it is counted."""
    return np.bincount(yt * k + yp, minlength=k * k).reshape(k, k).astype(np.int64)


def _batched_confusion(yt: np.ndarray, yp: np.ndarray, idx: np.ndarray, k: int) -> np.ndarray:
    """Confusion matrices of the resamples ``idx`` (B, n) -> (B, K, K) int64, one bincount."""
    b = idx.shape[0]
    cell = (yt * k + yp)[idx]  # (B, n)
    cell += (np.arange(b, dtype=np.int64) * (k * k))[:, None]
    return np.bincount(cell.ravel(), minlength=b * k * k).reshape(b, k, k)


def _class_counts(cm: np.ndarray) -> tuple[np.ndarray, ...]:
    """TP, FP, FN, TN, support, predicted counts from (..., K, K) confusion matrices."""
    cm = np.asarray(cm, dtype=np.int64)
    tp = np.diagonal(cm, axis1=-2, axis2=-1)
    support = cm.sum(axis=-1)
    predicted = cm.sum(axis=-2)
    n = cm.sum(axis=(-2, -1))[..., None]
    fp = predicted - tp
    fn = support - tp
    tn = n - tp - fp - fn
    return tp, fp, fn, tn, support, predicted


def _per_class_from_cm(cm: np.ndarray) -> dict[str, np.ndarray]:
    tp, fp, fn, tn, support, predicted = _class_counts(cm)
    return {
        "precision": _safe_div(tp, tp + fp),
        "sensitivity": _safe_div(tp, tp + fn),
        "specificity": _safe_div(tn, tn + fp),
        "f1": _safe_div(2 * tp, 2 * tp + fp + fn),
        "support": support,
        "predicted": predicted,
    }


def _overall_from_cm(cm: np.ndarray) -> dict[str, np.ndarray]:
    """All confusion-matrix metrics for (..., K, K) matrices -> dict of (...,) float arrays."""
    cm = np.asarray(cm, dtype=np.int64)
    pc = _per_class_from_cm(cm)
    support, predicted = pc["support"], pc["predicted"]
    n = cm.sum(axis=(-2, -1)).astype(np.float64)
    tp = np.diagonal(cm, axis1=-2, axis2=-1)
    active = (support + predicted) > 0
    present = support > 0

    def macro(x: np.ndarray, mask: np.ndarray) -> np.ndarray:
        return _safe_div((x * mask).sum(axis=-1), mask.sum(axis=-1))

    po = _safe_div(tp.sum(axis=-1), n)
    pe = _safe_div((support.astype(np.float64) * predicted).sum(axis=-1), n * n)
    out = {
        "accuracy": po,
        "balanced_accuracy": macro(pc["sensitivity"], present),
        "precision_macro": macro(pc["precision"], active),
        "sensitivity_macro": macro(pc["sensitivity"], active),
        "specificity_macro": macro(pc["specificity"], active),
        "f1_macro": macro(pc["f1"], active),
        "cohen_kappa": _safe_div(po - pe, 1.0 - pe),
    }
    return out


# --------------------------------------------------------------------------------------------
# ROC AUC (rank based, weighted so bootstrap resamples are just count vectors)
# --------------------------------------------------------------------------------------------
def _auc_per_class(yt: np.ndarray, ys: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """One-vs-rest AUC of every class under sample weights.

    Parameters
    ----------
    yt : ndarray of int64, shape (n,)
    ys : ndarray of float64, shape (n, K)
    weights : ndarray of float64, shape (B, n)
        Multiplicity of each sample in each resample (all ones for the plain estimate).

    Returns
    -------
    ndarray of float64, shape (B, K)
        NaN where a class has no positive or no negative weight.
    """
    b, n = weights.shape
    k = ys.shape[1]
    auc = np.full((b, k), np.nan)
    for c in range(k):
        is_pos = yt == c
        if not is_pos.any() or is_pos.all():
            continue
        order = np.argsort(ys[:, c], kind="mergesort")
        s = ys[order, c]
        pos = is_pos[order]
        new_group = np.empty(n, dtype=bool)
        new_group[0] = True
        np.not_equal(s[1:], s[:-1], out=new_group[1:])
        starts = np.flatnonzero(new_group)
        group = np.cumsum(new_group) - 1
        w = weights[:, order]
        neg_w = np.where(pos, 0.0, w)
        g_neg = np.add.reduceat(neg_w, starts, axis=1)  # (B, G) negative weight per tie group
        credit = np.cumsum(g_neg, axis=1) - 0.5 * g_neg  # negatives below + half the ties
        pos_w = w[:, pos]
        num = (pos_w * credit[:, group[pos]]).sum(axis=1)
        den = pos_w.sum(axis=1) * neg_w.sum(axis=1)
        with np.errstate(invalid="ignore", divide="ignore"):
            auc[:, c] = np.where(den > 0, num / np.where(den > 0, den, 1.0), np.nan)
    return auc


def _macro_auc(auc: np.ndarray) -> np.ndarray:
    """Mean over the defined (non-NaN) classes; NaN when none is defined. (B, K) -> (B,)."""
    defined = np.isfinite(auc)
    cnt = defined.sum(axis=1)
    tot = np.where(defined, auc, 0.0).sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(cnt > 0, tot / np.maximum(cnt, 1), np.nan)


def _auc_notes(yt: np.ndarray, ys: np.ndarray | None, names: tuple[str, ...]) -> list[str]:
    if ys is None:
        return ["roc_auc_macro: no class scores given, AUC is undefined (NaN)"]
    counts = np.bincount(yt, minlength=len(names))
    n = yt.size
    left_out = [names[c] for c in range(len(names)) if counts[c] == 0 or counts[c] == n]
    used = len(names) - len(left_out)
    if used == 0:
        return ["roc_auc_macro: undefined (NaN): no class has both positive and negative "
                "samples in y_true"]
    if left_out:
        return [f"roc_auc_macro: averaged over {used} of {len(names)} classes; left out "
                f"(no positive or no negative test samples): {', '.join(left_out)}"]
    return []


def roc_curves(y_true: Any, y_score: Any, n_classes: int | None = None
               ) -> dict[int, tuple[np.ndarray, np.ndarray, float]]:
    """One-vs-rest ROC curve of every class that has positive and negative samples.

    Parameters
    ----------
    y_true : array_like of int, shape (n,)
    y_score : array_like of float, shape (n, K)
    n_classes : int, optional

    Returns
    -------
    dict
        ``{k: (fpr, tpr, auc)}`` with ``fpr``, ``tpr`` float64 arrays of equal length.
    """
    from sklearn.metrics import roc_curve

    yt, _, ys, k = _check_inputs(y_true, y_true, y_score, n_classes)
    assert ys is not None
    out: dict[int, tuple[np.ndarray, np.ndarray, float]] = {}
    auc = _auc_per_class(yt, ys, np.ones((1, yt.size)))[0]
    for c in range(k):
        if not math.isfinite(auc[c]):
            continue
        fpr, tpr, _ = roc_curve(yt == c, ys[:, c])
        out[c] = (fpr, tpr, float(auc[c]))
    return out


# --------------------------------------------------------------------------------------------
# public scoring functions
# --------------------------------------------------------------------------------------------
def per_class_metrics(
    y_true: Any, y_pred: Any, n_classes: int | None = None,
    class_names: Sequence[str] | None = None,
) -> PerClassMetrics:
    """Per-class precision, sensitivity, specificity, F1 and support.

    Parameters
    ----------
    y_true, y_pred : array_like of int, shape (n,)
    n_classes : int, optional
    class_names : sequence of str, length K, optional

    Returns
    -------
    PerClassMetrics
    """
    yt, yp, _, k = _check_inputs(y_true, y_pred, None, n_classes, class_names)
    pc = _per_class_from_cm(_confusion(yt, yp, k))
    return PerClassMetrics(
        class_names=_names(class_names, k),
        precision=pc["precision"], sensitivity=pc["sensitivity"],
        specificity=pc["specificity"], f1=pc["f1"], support=pc["support"].astype(np.int64),
    )


def overall_metrics(
    y_true: Any, y_pred: Any, y_score: Any | None = None, n_classes: int | None = None,
) -> dict[str, float]:
    """Point estimates of all :data:`METRIC_NAMES` (no bootstrap; cheap, for validation loops).

    Parameters
    ----------
    y_true, y_pred : array_like of int, shape (n,)
    y_score : array_like of float, shape (n, K), optional
        Class probabilities (or any per-class scores); needed for ROC AUC.
    n_classes : int, optional

    Returns
    -------
    dict of str to float
        Keys in :data:`METRIC_NAMES` order; ``roc_auc_macro`` is NaN without scores.
    """
    yt, yp, ys, k = _check_inputs(y_true, y_pred, y_score, n_classes)
    vals = {name: float(v) for name, v in _overall_from_cm(_confusion(yt, yp, k)).items()}
    if ys is not None:
        vals["roc_auc_macro"] = float(_macro_auc(_auc_per_class(yt, ys, np.ones((1, yt.size))))[0])
    else:
        vals["roc_auc_macro"] = float("nan")
    return {name: vals[name] for name in METRIC_NAMES}


def bootstrap_metrics(
    y_true: Any, y_pred: Any, y_score: Any | None = None, n_classes: int | None = None,
    *, n_resamples: int = 1000, confidence: float = 0.95, seed: int | None = 0,
) -> dict[str, MetricResult]:
    """All :data:`METRIC_NAMES` with percentile-bootstrap confidence intervals.

    Resample indices (``n_resamples`` x ``n``, with replacement) are drawn once from
    ``np.random.default_rng(seed)``; the confusion matrices of all resamples come from one
    ``np.bincount``; AUCs from weighted rank sums over the same resamples.

    Parameters
    ----------
    y_true, y_pred : array_like of int, shape (n,)
    y_score : array_like of float, shape (n, K), optional
    n_classes : int, optional
    n_resamples : int, default 1000
        0 gives NaN bounds.
    confidence : float, default 0.95
    seed : int or None, default 0

    Returns
    -------
    dict of str to MetricResult
        Keys in :data:`METRIC_NAMES` order. A metric undefined in some resamples (e.g. AUC of
        a rare class that a resample misses) is summarised over the resamples where it is
        defined.
    """
    yt, yp, ys, k = _check_inputs(y_true, y_pred, y_score, n_classes)
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    point = overall_metrics(yt, yp, ys, k)
    n = yt.size
    boot: dict[str, list[np.ndarray]] = {name: [] for name in METRIC_NAMES}
    rng = np.random.default_rng(seed)
    chunk = max(1, _BOOT_CHUNK_ELEMS // n)
    done = 0
    while done < n_resamples:
        b = min(chunk, n_resamples - done)
        idx = rng.integers(0, n, size=(b, n))
        for name, v in _overall_from_cm(_batched_confusion(yt, yp, idx, k)).items():
            boot[name].append(v)
        if ys is not None:
            w = np.bincount((idx + (np.arange(b) * n)[:, None]).ravel(),
                            minlength=b * n).reshape(b, n).astype(np.float64)
            boot["roc_auc_macro"].append(_macro_auc(_auc_per_class(yt, ys, w)))
        else:
            boot["roc_auc_macro"].append(np.full(b, np.nan))
        done += b
    alpha = 1.0 - confidence
    out: dict[str, MetricResult] = {}
    for name in METRIC_NAMES:
        vals = np.concatenate(boot[name]) if boot[name] else np.empty(0)
        vals = vals[np.isfinite(vals)]
        if vals.size:
            low, high = np.percentile(vals, [100 * alpha / 2, 100 * (1 - alpha / 2)])
        else:
            low = high = float("nan")
        out[name] = MetricResult(value=point[name], low=float(low), high=float(high))
    return out


def evaluate(
    y_true: Any, y_pred: Any, y_score: Any | None = None, *,
    n_classes: int | None = None, class_names: Sequence[str] | None = None,
    n_resamples: int = 1000, confidence: float = 0.95, seed: int | None = 0,
) -> Evaluation:
    """Score one model on one test set: metrics with CIs, per-class table, confusion matrix.

    Parameters
    ----------
    y_true, y_pred : array_like of int, shape (n,)
    y_score : array_like of float, shape (n, K), optional
        Class probabilities; without them ROC AUC is NaN (with a note).
    n_classes : int, optional
        Defaults to ``len(class_names)`` or the largest label + 1.
    class_names : sequence of str, length K, optional
    n_resamples, confidence, seed
        Bootstrap settings, see :func:`bootstrap_metrics`.

    Returns
    -------
    Evaluation
    """
    yt, yp, ys, k = _check_inputs(y_true, y_pred, y_score, n_classes, class_names)
    names = _names(class_names, k)
    metrics = bootstrap_metrics(yt, yp, ys, k, n_resamples=n_resamples,
                                confidence=confidence, seed=seed)
    cm = _confusion(yt, yp, k)
    notes = _auc_notes(yt, ys, names)
    counts = np.bincount(yt, minlength=k)
    missing = [names[c] for c in range(k) if counts[c] == 0]
    if missing:
        notes.append(f"classes with no test samples (sensitivity 0 by convention, left out of "
                     f"macro averages unless predicted): {', '.join(missing)}")
    return Evaluation(
        metrics=metrics, per_class=per_class_metrics(yt, yp, k, names), confusion=cm,
        class_names=names, n_samples=int(yt.size), n_resamples=int(n_resamples),
        confidence=float(confidence), seed=seed, notes=tuple(notes),
    )


# --------------------------------------------------------------------------------------------
# paired test
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class McNemarResult:
    """McNemar's test on paired predictions.

    Attributes
    ----------
    statistic : float
        Chi-square with continuity correction, or ``min(b, c)`` for the exact test.
    pvalue : float
        Two-sided.
    b : int
        Images model A got right and model B got wrong.
    c : int
        Images model A got wrong and model B got right.
    method : str
        ``"exact"`` (binomial) or ``"chi2-cc"`` (chi-square, continuity corrected).
    n : int
        Number of paired images.
    """

    statistic: float
    pvalue: float
    b: int
    c: int
    method: str
    n: int = 0

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict."""
        return {"statistic": _json_float(self.statistic), "pvalue": _json_float(self.pvalue),
                "b": self.b, "c": self.c, "method": self.method, "n": self.n}


def mcnemar_test(y_true: Any, pred_a: Any, pred_b: Any, *, exact: bool | None = None,
                 exact_below: int = 25) -> McNemarResult:
    """McNemar's paired test between two models' predictions on the same images.

    Parameters
    ----------
    y_true, pred_a, pred_b : array_like of int, shape (n,)
    exact : bool or None, default None
        Force the exact binomial test (True) or the chi-square (False); None chooses exact
        when the number of discordant pairs ``b + c`` is below ``exact_below``.
    exact_below : int, default 25

    Returns
    -------
    McNemarResult

    Notes
    -----
    ``b`` counts the images A got right and B wrong, ``c`` the reverse; only these
    discordant pairs carry evidence.

    * Exact: :func:`scipy.stats.binomtest` of ``min(b, c)`` successes in ``b + c`` trials at
      ``p = 1/2``, two-sided (for ``p = 1/2`` that is ``min(1, 2 * P[X <= min(b, c)])``);
      the statistic is ``min(b, c)``.
    * Chi-square with continuity correction: ``max(|b - c| - 1, 0)^2 / (b + c)``, p-value
      from :data:`scipy.stats.chi2` with one degree of freedom.

    **b = c** (the two models err on as many images each) gives statistic 0 and p = 1 under
    the chi-square (the correction never pushes ``|b - c| - 1`` below zero, so ``|b - c| = 1``
    gives p = 1 as well) and p = 1 under the exact test. **b = c = 0** (no discordant pair,
    the models agree on every image's correctness) is reported as statistic 0, p = 1 without
    calling either test: there is no evidence of a difference.
    """
    from scipy import stats

    yt = _as_labels(y_true, "y_true")
    pa = _as_labels(pred_a, "pred_a")
    pb = _as_labels(pred_b, "pred_b")
    if not (yt.shape == pa.shape == pb.shape):
        raise ValueError("y_true, pred_a and pred_b must have the same length")
    ok_a = pa == yt
    ok_b = pb == yt
    b = int(np.sum(ok_a & ~ok_b))
    c = int(np.sum(~ok_a & ok_b))
    m = b + c
    use_exact = (m < exact_below) if exact is None else bool(exact)
    method = "exact" if use_exact else "chi2-cc"
    if m == 0:
        return McNemarResult(0.0, 1.0, b, c, method, int(yt.size))
    if use_exact:
        lo = min(b, c)
        p = stats.binomtest(lo, m, 0.5, alternative="two-sided").pvalue
        return McNemarResult(float(lo), float(min(1.0, p)), b, c, method, int(yt.size))
    stat = max(abs(b - c) - 1.0, 0.0) ** 2 / m
    return McNemarResult(float(stat), float(stats.chi2.sf(stat, df=1)), b, c, method,
                         int(yt.size))


def flatten_metrics(results: Mapping[str, MetricResult]) -> dict[str, float]:
    """Flatten ``{name: MetricResult}`` to ``{name: value, name_low: low, name_high: high}``.

    Parameters
    ----------
    results : mapping of str to MetricResult

    Returns
    -------
    dict of str to float
    """
    out: dict[str, float] = {}
    for name, m in results.items():
        out[name] = m.value
        out[f"{name}_low"] = m.low
        out[f"{name}_high"] = m.high
    return out
