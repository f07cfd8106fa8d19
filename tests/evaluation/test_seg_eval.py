"""Tests of wbc_classic.evaluation.seg_eval (Dice/IoU, box matching, set evaluation)."""

from __future__ import annotations

import numpy as np
import pytest

from wbc_classic.evaluation import seg_eval
from wbc_classic.evaluation.seg_eval import box_iou, dice, iou, match_boxes


def test_dice_iou_values():
    a = np.zeros((10, 10), bool)
    b = np.zeros((10, 10), bool)
    assert dice(a, b) == 1.0 and iou(a, b) == 1.0
    a[:5] = True
    assert dice(a, b) == 0.0 and iou(a, b) == 0.0
    b[:5] = True
    assert dice(a, b) == 1.0
    b[:] = False
    b[2:7] = True  # overlap rows 2..4 (30 px), |a|=|b|=50
    assert dice(a, b) == pytest.approx(0.6)
    assert iou(a, b) == pytest.approx(30 / 70)
    with pytest.raises(ValueError):
        dice(a, np.zeros((3, 3), bool))


def test_box_iou_and_matching():
    assert box_iou((0, 0, 10, 10), (0, 0, 10, 10)) == 1.0
    assert box_iou((0, 0, 10, 10), (5, 0, 15, 10)) == pytest.approx(50 / 150)
    assert box_iou((0, 0, 10, 10), (20, 20, 30, 30)) == 0.0
    pred = np.array([[0, 0, 10, 10], [1, 1, 11, 11], [50, 50, 60, 60]])
    truth = np.array([[0, 0, 10, 10], [100, 100, 110, 110]])
    m = match_boxes(pred, truth, 0.5)
    assert len(m) == 1 and m[0][:2] == (0, 0)  # one-to-one: the duplicate is a false positive
    assert match_boxes(np.zeros((0, 4)), truth) == []


def test_detect_layout(tmp_path):
    (tmp_path / "voc" / "Annotations").mkdir(parents=True)
    (tmp_path / "seg" / "images").mkdir(parents=True)
    (tmp_path / "seg" / "masks").mkdir()
    assert seg_eval.detect_layout(tmp_path / "voc") == "voc"
    assert seg_eval.detect_layout(tmp_path / "seg") == "seg"
    with pytest.raises(ValueError):
        seg_eval.detect_layout(tmp_path)


def test_evaluate_synthetic_segmentation_set(tmp_path):
    from wbc_classic.data.datasets import load_segmentation_set
    from wbc_classic.data.synthetic_sets import write_segmentation_set

    root = write_segmentation_set(tmp_path / "seg", 4, seed=1, size=128,
                                  classes=["neutrophil", "lymphocyte"])
    report = seg_eval.evaluate_segmentation_set(load_segmentation_set(root))
    s = report.summary
    assert s["n_images"] == 4 and s["found_rate"] == 1.0
    assert s["nucleus_dice"] > 0.85 and s["cell_dice"] > 0.8
    assert s["images_per_second"] > 0
    d = report.to_dict()
    assert d["kind"] == "segmentation" and len(d["images"]) == 4


def test_evaluate_synthetic_smears(tmp_path):
    from wbc_classic.data.datasets import load_voc_smears
    from wbc_classic.data.synthetic_sets import write_smear_set

    root = write_smear_set(tmp_path / "voc", 2, seed=3, shape=(360, 480))
    report = seg_eval.evaluate_smears(load_voc_smears(root))
    s = report.summary
    assert s["n_images"] == 2
    assert s["recall"] >= 0.5 and s["precision"] >= 0.5
    assert s["n_masks"] == 2 and s["mask_cell_dice"] > 0.5
    assert report.to_dict()["kind"] == "detection"
