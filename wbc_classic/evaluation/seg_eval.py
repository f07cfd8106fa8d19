"""Evaluation of the classical segmenter against ground truth.

* Single-cell sets (``cellavision_seg`` layout: ``images/``, ``masks/`` 255/128/0): Dice and
  IoU of the nucleus and of the whole cell, per image and averaged, and throughput.
* Smear fields (Pascal-VOC layout: ``Annotations/``, ``JPEGImages/``, optional ``Masks/``):
  leukocyte detection precision and recall (greedy one-to-one matching at box IoU >= 0.5)
  and, where masks exist, Dice of the union of the detected cells' masks.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from segmentation import FieldCell, SegmenterParams, segment, segment_field

__all__ = [
    "dice",
    "iou",
    "box_iou",
    "match_boxes",
    "field_cell_box",
    "detect_layout",
    "SegImageResult",
    "SegReport",
    "DetectionReport",
    "evaluate_segmentation_set",
    "evaluate_smears",
]


def dice(pred: np.ndarray, truth: np.ndarray) -> float:
    """Dice coefficient ``2|A&B| / (|A|+|B|)`` of two bool masks; 1.0 when both are empty."""
    pred = np.asarray(pred, dtype=bool)
    truth = np.asarray(truth, dtype=bool)
    if pred.shape != truth.shape:
        raise ValueError(f"mask shapes differ: {pred.shape} vs {truth.shape}")
    s = int(pred.sum()) + int(truth.sum())
    return 1.0 if s == 0 else 2.0 * int((pred & truth).sum()) / s


def iou(pred: np.ndarray, truth: np.ndarray) -> float:
    """Jaccard index ``|A&B| / |A|B|`` of two bool masks; 1.0 when both are empty."""
    pred = np.asarray(pred, dtype=bool)
    truth = np.asarray(truth, dtype=bool)
    if pred.shape != truth.shape:
        raise ValueError(f"mask shapes differ: {pred.shape} vs {truth.shape}")
    union = int((pred | truth).sum())
    return 1.0 if union == 0 else int((pred & truth).sum()) / union


def box_iou(a: Sequence[float] | np.ndarray, b: Sequence[float] | np.ndarray) -> float:
    """IoU of two boxes ``(xmin, ymin, xmax, ymax)`` (max exclusive, as areas are w*h)."""
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return float(inter / union) if union > 0 else 0.0


def match_boxes(pred: np.ndarray, truth: np.ndarray,
                min_iou: float = 0.5) -> list[tuple[int, int, float]]:
    """Greedy one-to-one matching of boxes by decreasing IoU.

    Parameters
    ----------
    pred, truth : array-like, shape (n, 4) / (m, 4)
        Boxes ``(xmin, ymin, xmax, ymax)``.
    min_iou : float
        Pairs below this IoU never match.

    Returns
    -------
    list of (pred_index, truth_index, iou)
        The matches; unmatched predictions are false positives, unmatched truths misses.
    """
    pred = np.asarray(pred, dtype=np.float64).reshape(-1, 4)
    truth = np.asarray(truth, dtype=np.float64).reshape(-1, 4)
    pairs = [(box_iou(p, t), i, j) for i, p in enumerate(pred) for j, t in enumerate(truth)]
    pairs.sort(reverse=True)
    used_p: set[int] = set()
    used_t: set[int] = set()
    out = []
    for v, i, j in pairs:
        if v < min_iou:
            break
        if i in used_p or j in used_t:
            continue
        used_p.add(i)
        used_t.add(j)
        out.append((i, j, v))
    return out


def field_cell_box(cell: FieldCell) -> tuple[int, int, int, int]:
    """Tight box of a detected leukocyte in field coordinates, ``(xmin, ymin, xmax, ymax)``."""
    bb = cell.segmentation.bbox
    r0, c0 = cell.bbox[0], cell.bbox[1]
    if bb is None:
        return (c0, r0, cell.bbox[3], cell.bbox[2])
    return (c0 + bb[1], r0 + bb[0], c0 + bb[3], r0 + bb[2])


def detect_layout(root: str | Path) -> str:
    """``"voc"`` for a Pascal-VOC smear set (``Annotations/``), ``"seg"`` for an
    ``images/`` + ``masks/`` segmentation set.

    Raises
    ------
    ValueError
        When neither layout is found.
    """
    root = Path(root)
    if (root / "Annotations").is_dir():
        return "voc"
    if (root / "images").is_dir() and (root / "masks").is_dir():
        return "seg"
    if (root / "manifest.csv").is_file() and (root / "masks").is_dir():
        return "seg"
    raise ValueError(f"{root}: neither a VOC smear set (Annotations/) nor a segmentation set "
                     "(images/ + masks/)")


@dataclass
class SegImageResult:
    """Scores of one image (NaN scores when the segmenter found nothing count as 0)."""

    image: str
    label: str | None
    found: bool
    nucleus_dice: float
    nucleus_iou: float
    cell_dice: float
    cell_iou: float
    seconds: float
    cpu_seconds: float = float("nan")


@dataclass
class SegReport:
    """Per-image results and their means for a single-cell segmentation set."""

    rows: list[SegImageResult] = field(default_factory=list)
    #: "<file>: <problem>" of every sample that could not be read (skipped, not scored)
    failures: list[str] = field(default_factory=list)

    def _mean(self, key: str) -> float:
        return float(np.mean([getattr(r, key) for r in self.rows])) if self.rows else float("nan")

    @property
    def summary(self) -> dict[str, float]:
        """Mean scores, found-rate, images per second (segmentation time only).

        ``images_per_second`` is wall-clock; ``images_per_second_cpu`` uses the CPU time of
        this process, i.e. the per-core rate when other processes compete for the cores.
        """
        total = sum(r.seconds for r in self.rows)
        cpu = sum(r.cpu_seconds for r in self.rows)
        return {
            "n_images": len(self.rows),
            "found_rate": self._mean("found"),
            "nucleus_dice": self._mean("nucleus_dice"),
            "nucleus_iou": self._mean("nucleus_iou"),
            "cell_dice": self._mean("cell_dice"),
            "cell_iou": self._mean("cell_iou"),
            "median_seconds": float(np.median([r.seconds for r in self.rows]))
            if self.rows else float("nan"),
            "images_per_second": len(self.rows) / total if total > 0 else float("nan"),
            "images_per_second_cpu": len(self.rows) / cpu if cpu > 0 else float("nan"),
        }

    def to_dict(self) -> dict:
        return {"kind": "segmentation", "summary": self.summary,
                "images": [asdict(r) for r in self.rows], "failures": list(self.failures)}


@dataclass
class DetectionReport:
    """Leukocyte detection counts and mask scores for VOC smear fields."""

    tp: int = 0
    fp: int = 0
    fn: int = 0
    rows: list[dict] = field(default_factory=list)
    #: "<file>: <problem>" of every field that could not be read (skipped, not scored)
    failures: list[str] = field(default_factory=list)
    mask_nucleus_dice: list[float] = field(default_factory=list)
    mask_cell_dice: list[float] = field(default_factory=list)
    seconds: float = 0.0
    min_iou: float = 0.5

    @property
    def precision(self) -> float:
        return self.tp / (self.tp + self.fp) if self.tp + self.fp else float("nan")

    @property
    def recall(self) -> float:
        return self.tp / (self.tp + self.fn) if self.tp + self.fn else float("nan")

    @property
    def summary(self) -> dict[str, float]:
        n = len(self.rows)
        return {
            "n_images": n,
            "min_iou": self.min_iou,
            "tp": self.tp, "fp": self.fp, "fn": self.fn,
            "precision": self.precision,
            "recall": self.recall,
            "n_masks": len(self.mask_cell_dice),
            "mask_nucleus_dice": float(np.mean(self.mask_nucleus_dice))
            if self.mask_nucleus_dice else float("nan"),
            "mask_cell_dice": float(np.mean(self.mask_cell_dice))
            if self.mask_cell_dice else float("nan"),
            "images_per_second": n / self.seconds if self.seconds > 0 else float("nan"),
        }

    def to_dict(self) -> dict:
        return {"kind": "detection", "summary": self.summary, "images": self.rows,
                "failures": list(self.failures)}


def evaluate_segmentation_set(samples: Sequence, params: SegmenterParams | None = None,
                              *, limit: int | None = None,
                              callback: Callable[[SegImageResult], None] | None = None
                              ) -> SegReport:
    """Segment every sample and score it against its ground-truth mask.

    Parameters
    ----------
    samples : sequence of wbc_classic.data.datasets.SegSample
    params : SegmenterParams, optional
    limit : int, optional
        Only the first ``limit`` samples.
    callback : callable, optional
        Called with each :class:`SegImageResult` as it is produced (progress printing).
    """
    from wbc_classic.data.datasets import read_label_mask
    from wbc_classic.io.images import read_image

    report = SegReport()
    for s in list(samples)[:limit]:
        try:  # a bad file is reported and skipped; the set goes on
            image = read_image(s.image_path)
            nuc_t, cell_t = read_label_mask(s.mask_path)
            if nuc_t.shape != image.shape[:2]:
                raise ValueError(f"{s.mask_path}: mask {nuc_t.shape} does not match image "
                                 f"{image.shape[:2]}")
        except ValueError as exc:  # ImageReadError is a ValueError naming the file
            report.failures.append(str(exc) if str(s.image_path) in str(exc)
                                   or str(s.mask_path) in str(exc)
                                   else f"{s.image_path}: {exc}")
            continue
        t0, c0 = time.perf_counter(), time.process_time()
        seg = segment(image, params)
        dt, dc = time.perf_counter() - t0, time.process_time() - c0
        row = SegImageResult(
            image=str(s.image_path), label=getattr(s, "label", None), found=bool(seg.found),
            nucleus_dice=dice(seg.nucleus, nuc_t), nucleus_iou=iou(seg.nucleus, nuc_t),
            cell_dice=dice(seg.cell, cell_t), cell_iou=iou(seg.cell, cell_t), seconds=dt,
            cpu_seconds=dc)
        report.rows.append(row)
        if callback is not None:
            callback(row)
    return report


def evaluate_smears(annotations: Sequence, params: SegmenterParams | None = None, *,
                    min_iou: float = 0.5, object_name: str = "WBC", limit: int | None = None,
                    callback: Callable[[dict], None] | None = None) -> DetectionReport:
    """Detect leukocytes in smear fields and score them against the VOC boxes.

    Parameters
    ----------
    annotations : sequence of wbc_classic.data.datasets.SmearAnnotation
    params : SegmenterParams, optional
    min_iou : float
        Box IoU for a detection to count as correct.
    object_name : str
        VOC object name of the leukocytes.
    limit : int, optional
        Only the first ``limit`` fields.
    callback : callable, optional
        Called with each per-image row dict.
    """
    from wbc_classic.data.datasets import read_label_mask
    from wbc_classic.io.images import read_image

    report = DetectionReport(min_iou=min_iou)
    for ann in list(annotations)[:limit]:
        try:  # a bad file is reported and skipped; the set goes on
            image = read_image(ann.image_path)
        except ValueError as exc:
            report.failures.append(str(exc))
            continue
        t0 = time.perf_counter()
        cells = segment_field(image, params)
        report.seconds += time.perf_counter() - t0
        pred = np.array([field_cell_box(c) for c in cells], dtype=np.float64).reshape(-1, 4)
        truth = np.asarray(ann.get(object_name), dtype=np.float64).reshape(-1, 4)
        matches = match_boxes(pred, truth, min_iou)
        tp = len(matches)
        report.tp += tp
        report.fp += len(pred) - tp
        report.fn += len(truth) - tp
        row: dict[str, Any] = {"image": str(ann.image_path), "n_truth": len(truth),
                               "n_pred": len(pred), "tp": tp,
                               "boxes": pred.astype(int).tolist()}
        if ann.mask_path is not None:
            nuc_t, cell_t = read_label_mask(ann.mask_path)
            if nuc_t.shape == image.shape[:2]:
                nuc_p = np.zeros_like(nuc_t)
                cell_p = np.zeros_like(cell_t)
                for c in cells:
                    r0, c0, r1, c1 = c.bbox
                    nuc_p[r0:r1, c0:c1] |= c.segmentation.nucleus
                    cell_p[r0:r1, c0:c1] |= c.segmentation.cell
                if cell_t.any() or cell_p.any():
                    row["nucleus_dice"] = dice(nuc_p, nuc_t)
                    row["cell_dice"] = dice(cell_p, cell_t)
                    report.mask_nucleus_dice.append(row["nucleus_dice"])
                    report.mask_cell_dice.append(row["cell_dice"])
        report.rows.append(row)
        if callback is not None:
            callback(row)
    return report
