"""wbc_classic.evaluation.metrics against scikit-learn, hand-worked values and known bootstrap
cases."""

from __future__ import annotations

import math

import numpy as np
import pytest
from sklearn.metrics import (
    accuracy_score,
    balanced_accuracy_score,
    cohen_kappa_score,
    precision_recall_fscore_support,
    roc_auc_score,
)
from sklearn.metrics import confusion_matrix as sk_confusion_matrix

from wbc_classic.evaluation import metrics as M


def _random_case(seed: int, n: int = 300, k: int = 5, p_correct: float = 0.7,
                 round_scores: int | None = None):
    rng = np.random.default_rng(seed)
    yt = rng.integers(0, k, n)
    yp = np.where(rng.random(n) < p_correct, yt, rng.integers(0, k, n))
    logits = rng.normal(size=(n, k))
    logits[np.arange(n), yt] += 1.0
    score = np.exp(logits)
    score /= score.sum(axis=1, keepdims=True)
    if round_scores is not None:  # create ties
        score = np.round(score, round_scores)
    return yt, yp, score


# ------------------------------------------------------------------ against scikit-learn
@pytest.mark.parametrize("seed", range(6))
def test_overall_matches_sklearn(seed):
    k = 2 + seed % 4
    yt, yp, score = _random_case(seed, n=200 + 37 * seed, k=k)
    got = M.overall_metrics(yt, yp, score, n_classes=k)
    p, r, f, _ = precision_recall_fscore_support(yt, yp, average="macro", zero_division=0)
    assert got["accuracy"] == pytest.approx(accuracy_score(yt, yp))
    assert got["balanced_accuracy"] == pytest.approx(balanced_accuracy_score(yt, yp))
    assert got["precision_macro"] == pytest.approx(p)
    assert got["sensitivity_macro"] == pytest.approx(r)
    assert got["f1_macro"] == pytest.approx(f)
    assert got["cohen_kappa"] == pytest.approx(cohen_kappa_score(yt, yp))
    sk_auc = (roc_auc_score(yt, score[:, 1]) if k == 2
              else roc_auc_score(yt, score, multi_class="ovr", average="macro"))
    assert got["roc_auc_macro"] == pytest.approx(sk_auc)
    assert list(got) == list(M.METRIC_NAMES)


def test_auc_with_ties_matches_sklearn_per_class():
    yt, yp, score = _random_case(3, n=400, k=4, round_scores=1)  # heavy ties
    expected = np.mean([roc_auc_score(yt == c, score[:, c]) for c in range(4)])
    assert M.overall_metrics(yt, yp, score, 4)["roc_auc_macro"] == pytest.approx(expected)


def test_per_class_matches_sklearn_and_confusion():
    yt, yp, _ = _random_case(11, n=250, k=6)
    pc = M.per_class_metrics(yt, yp, 6, class_names=list("abcdef"))
    p, r, f, s = precision_recall_fscore_support(yt, yp, labels=range(6), zero_division=0)
    np.testing.assert_allclose(pc.precision, p)
    np.testing.assert_allclose(pc.sensitivity, r)
    np.testing.assert_allclose(pc.f1, f)
    np.testing.assert_array_equal(pc.support, s)
    np.testing.assert_array_equal(M.confusion_matrix(yt, yp, 6),
                                  sk_confusion_matrix(yt, yp, labels=range(6)))
    assert pc.rows()[2]["class"] == "c"


def test_missing_class_follows_sklearn_label_set():
    # class 3 never occurs in y_true, but is predicted once; class 4 occurs nowhere
    yt = np.array([0, 0, 1, 1, 2, 2, 2, 0])
    yp = np.array([0, 1, 1, 1, 2, 3, 2, 0])
    got = M.overall_metrics(yt, yp, n_classes=5)
    p, r, f, _ = precision_recall_fscore_support(yt, yp, average="macro", zero_division=0)
    assert got["precision_macro"] == pytest.approx(p)
    assert got["sensitivity_macro"] == pytest.approx(r)
    assert got["f1_macro"] == pytest.approx(f)
    with pytest.warns(UserWarning):
        ba = balanced_accuracy_score(yt, yp)
    assert got["balanced_accuracy"] == pytest.approx(ba)
    assert math.isnan(got["roc_auc_macro"])


# ------------------------------------------------------------------ hand-worked values
def test_hand_worked_three_class():
    # confusion matrix (rows true, cols predicted):
    #        A  B  C
    #   A  [ 5, 1, 0 ]
    #   B  [ 2, 3, 1 ]
    #   C  [ 0, 1, 7 ]      n = 20
    cm = np.array([[5, 1, 0], [2, 3, 1], [0, 1, 7]])
    yt = np.repeat(np.repeat([0, 1, 2], 3), cm.ravel())
    yp = np.repeat(np.tile([0, 1, 2], 3), cm.ravel())
    np.testing.assert_array_equal(M.confusion_matrix(yt, yp, 3), cm)
    pc = M.per_class_metrics(yt, yp, 3)
    # A: TP 5, FP 2, FN 1, TN 12 ; B: TP 3, FP 2, FN 3, TN 12 ; C: TP 7, FP 1, FN 1, TN 11
    np.testing.assert_allclose(pc.specificity, [12 / 14, 12 / 14, 11 / 12])
    np.testing.assert_allclose(pc.precision, [5 / 7, 3 / 5, 7 / 8])
    np.testing.assert_allclose(pc.sensitivity, [5 / 6, 3 / 6, 7 / 8])
    np.testing.assert_allclose(pc.f1, [10 / 13, 6 / 11, 14 / 16])
    np.testing.assert_array_equal(pc.support, [6, 6, 8])
    got = M.overall_metrics(yt, yp, n_classes=3)
    assert got["accuracy"] == pytest.approx(15 / 20)
    assert got["specificity_macro"] == pytest.approx((12 / 14 + 12 / 14 + 11 / 12) / 3)
    # kappa: po = .75, pe = (6*7 + 6*5 + 8*8) / 400 = 136/400
    pe = 136 / 400
    assert got["cohen_kappa"] == pytest.approx((0.75 - pe) / (1 - pe))


def test_zero_division_is_zero():
    yt = np.array([0, 0, 0, 1])
    yp = np.array([0, 0, 0, 0])  # class 1 never predicted: precision 0/0 -> 0
    pc = M.per_class_metrics(yt, yp, 2)
    assert pc.precision[1] == 0.0 and pc.f1[1] == 0.0 and pc.sensitivity[1] == 0.0
    # one class everywhere: specificity TN/(TN+FP) = 0/0 -> 0, kappa p_e = 1 -> 0
    one = np.zeros(5, dtype=int)
    pc = M.per_class_metrics(one, one, 2)
    assert pc.specificity[0] == 0.0
    assert M.overall_metrics(one, one, n_classes=2)["cohen_kappa"] == 0.0


def test_input_validation():
    with pytest.raises(ValueError, match="differ in length"):
        M.overall_metrics([0, 1], [0])
    with pytest.raises(ValueError, match="outside"):
        M.overall_metrics([0, 3], [0, 1], n_classes=3)
    with pytest.raises(ValueError, match="columns"):
        M.overall_metrics([0, 1], [0, 1], np.ones((2, 3)), n_classes=2)
    with pytest.raises(ValueError, match="integer"):
        M.overall_metrics([0.5, 1], [0, 1])


# ------------------------------------------------------------------ bootstrap
def test_bootstrap_bernoulli_accuracy():
    rng = np.random.default_rng(123)
    n = 1000
    yt = rng.integers(0, 2, n)
    correct = rng.random(n) < 0.8
    yp = np.where(correct, yt, 1 - yt)
    res = M.bootstrap_metrics(yt, yp, n_classes=2, n_resamples=1000, seed=0)["accuracy"]
    assert res.low <= 0.8 <= res.high
    expected_width = 2 * 1.96 * math.sqrt(0.16 / n)
    assert (res.high - res.low) == pytest.approx(expected_width, rel=0.15)
    assert res.low <= res.value <= res.high


def test_bootstrap_perfect_classifier_is_one():
    yt, _, _ = _random_case(5, n=200, k=4)
    onehot = np.eye(4)[yt]
    res = M.bootstrap_metrics(yt, yt, onehot, 4, n_resamples=200, seed=1)
    for name in M.METRIC_NAMES:
        assert (res[name].value, res[name].low, res[name].high) == (1.0, 1.0, 1.0), name


def test_bootstrap_deterministic_and_seed_dependent():
    yt, yp, score = _random_case(7, n=300, k=3)
    a = M.bootstrap_metrics(yt, yp, score, 3, n_resamples=300, seed=42)
    b = M.bootstrap_metrics(yt, yp, score, 3, n_resamples=300, seed=42)
    c = M.bootstrap_metrics(yt, yp, score, 3, n_resamples=300, seed=43)
    assert a == b
    assert a["accuracy"] != c["accuracy"] or a["f1_macro"] != c["f1_macro"]


def test_bootstrap_matches_naive_loop():
    """The vectorised resamples equal a plain loop with sklearn over the same indices."""
    yt, yp, score = _random_case(9, n=120, k=3)
    b = 50
    res = M.bootstrap_metrics(yt, yp, score, 3, n_resamples=b, seed=5, confidence=0.9)
    idx = np.random.default_rng(5).integers(0, yt.size, size=(b, yt.size))
    acc = [accuracy_score(yt[i], yp[i]) for i in idx]
    f1 = [precision_recall_fscore_support(yt[i], yp[i], average="macro", zero_division=0)[2]
          for i in idx]
    auc = [roc_auc_score(yt[i], score[i], multi_class="ovr") for i in idx]
    for name, vals in (("accuracy", acc), ("f1_macro", f1), ("roc_auc_macro", auc)):
        lo, hi = np.percentile(vals, [5, 95])
        assert res[name].low == pytest.approx(lo) and res[name].high == pytest.approx(hi), name


def test_evaluate_structure_and_speed():
    import time

    yt, yp, score = _random_case(2, n=1370, k=8)
    t0 = time.perf_counter()
    ev = M.evaluate(yt, yp, score, class_names=[f"c{i}" for i in range(8)], seed=0)
    assert time.perf_counter() - t0 < 10
    assert set(ev.metrics) == set(M.METRIC_NAMES)
    assert ev.confusion.shape == (8, 8) and ev.confusion.sum() == 1370
    d = ev.to_dict()
    assert d["metrics"]["accuracy"]["low"] <= d["metrics"]["accuracy"]["value"]
    assert len(d["per_class"]) == 8
    flat = M.flatten_metrics(ev.metrics)
    assert flat["accuracy_low"] == ev.metrics["accuracy"].low


def test_evaluate_without_scores_notes_auc():
    yt, yp, _ = _random_case(4, n=100, k=3)
    ev = M.evaluate(yt, yp, n_resamples=50)
    assert math.isnan(ev.metrics["roc_auc_macro"].value)
    assert ev.metrics["roc_auc_macro"].to_dict()["value"] is None
    assert any("roc_auc" in note for note in ev.notes)
    assert ev.metrics["roc_auc_macro"].format() == "n/a"


def test_auc_left_out_class_noted():
    yt = np.array([0, 1, 0, 1, 0, 1])
    score = np.tile([0.5, 0.3, 0.2], (6, 1))
    score[yt == 1] = [0.2, 0.6, 0.2]
    ev = M.evaluate(yt, yt, score, class_names=["a", "b", "c"], n_resamples=20)
    assert ev.metrics["roc_auc_macro"].value == 1.0
    assert any("2 of 3" in note and "c" in note for note in ev.notes)


def test_roc_curves():
    yt, _, score = _random_case(8, n=200, k=3)
    curves = M.roc_curves(yt, score, 3)
    assert set(curves) == {0, 1, 2}
    fpr, tpr, auc = curves[1]
    assert fpr[0] == 0 and tpr[-1] == 1
    assert auc == pytest.approx(roc_auc_score(yt == 1, score[:, 1]))


# ------------------------------------------------------------------ McNemar
def test_mcnemar_hand_worked_exact():
    # b = 1 (A right, B wrong), c = 6 (A wrong, B right), 3 both right, 2 both wrong
    yt = np.zeros(12, dtype=int)
    a = np.array([0, 1, 1, 1, 1, 1, 1, 0, 0, 0, 1, 1])
    b = np.array([1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 1])
    r = M.mcnemar_test(yt, a, b)
    assert (r.b, r.c, r.method) == (1, 6, "exact")
    # P[X <= 1], X ~ Bin(7, .5) = (1 + 7) / 128 ; two-sided = 16/128
    assert r.pvalue == pytest.approx(16 / 128)
    assert r.statistic == 1


def test_mcnemar_chi2_hand_worked_and_scipy():
    from scipy import stats

    b_, c_ = 40, 20
    yt = np.zeros(100, dtype=int)
    a = np.r_[np.zeros(b_), np.ones(c_), np.zeros(30), np.ones(10)].astype(int)
    b = np.r_[np.ones(b_), np.zeros(c_), np.zeros(30), np.ones(10)].astype(int)
    r = M.mcnemar_test(yt, a, b)
    assert (r.b, r.c, r.method, r.n) == (40, 20, "chi2-cc", 100)
    assert r.statistic == pytest.approx((20 - 1) ** 2 / 60)
    assert r.pvalue == pytest.approx(stats.chi2.sf((20 - 1) ** 2 / 60, 1))
    ex = M.mcnemar_test(yt, a, b, exact=True)
    assert ex.pvalue == pytest.approx(stats.binomtest(20, 60, 0.5).pvalue)


def test_mcnemar_no_discordance():
    y = np.array([0, 1, 2])
    r = M.mcnemar_test(y, y, y)
    assert (r.b, r.c, r.pvalue) == (0, 0, 1.0)


def _pairs(b: int, c: int, both_right: int = 5, both_wrong: int = 3):
    """Labels and two models' predictions with ``b`` A-only and ``c`` B-only correct images."""
    yt = np.zeros(b + c + both_right + both_wrong, dtype=int)
    a = np.r_[np.zeros(b), np.ones(c), np.zeros(both_right), np.ones(both_wrong)].astype(int)
    p = np.r_[np.ones(b), np.zeros(c), np.zeros(both_right), np.ones(both_wrong)].astype(int)
    return yt, a, p


def test_mcnemar_reproduces_the_readme_figure():
    """README: best classical vs wbcnet, "b = 30, c = 16, p = 0.055"."""
    r = M.mcnemar_test(*_pairs(30, 16))
    assert (r.b, r.c, r.method) == (30, 16, "chi2-cc")
    assert r.statistic == pytest.approx(169 / 46)
    assert f"{r.pvalue:.3f}" == "0.055"
    # the closed form the module used before scipy: the same p-value
    assert r.pvalue == pytest.approx(math.erfc(math.sqrt(169 / 46 / 2.0)), rel=1e-12)


@pytest.mark.parametrize("b, c", [(7, 7), (30, 30), (12, 13), (0, 1)])
def test_mcnemar_b_equal_c_is_no_evidence(b, c):
    """b = c (and |b - c| = 1, where the continuity correction reaches 0) gives p = 1."""
    for exact in (False, True):
        r = M.mcnemar_test(*_pairs(b, c), exact=exact)
        if exact:
            assert r.statistic == min(b, c) and r.pvalue == pytest.approx(
                min(1.0, 2 * sum(math.comb(b + c, i) for i in range(min(b, c) + 1))
                    / 2 ** (b + c)))
            if b == c:
                assert r.pvalue == 1.0
        else:
            assert (r.statistic, r.pvalue) == (0.0, 1.0)


def test_mcnemar_exact_matches_the_binomial_sum():
    for b, c in ((1, 6), (3, 10), (0, 5), (9, 2)):
        r = M.mcnemar_test(*_pairs(b, c), exact=True)
        m = b + c
        old = min(1.0, 2.0 * sum(math.comb(m, i) for i in range(min(b, c) + 1)) / 2 ** m)
        assert r.pvalue == pytest.approx(old, rel=1e-12)


def test_confusion_matrix_is_counted_in_one_place():
    """No module but evaluation/metrics.py builds a confusion matrix (bincount of true * K +
    predicted, or scikit-learn's confusion_matrix)."""
    import ast
    import re

    from tests.conftest import REPO_ROOT

    found = []
    for package in ("wbc_classic", "deep", "benchmarks", "features", "segmentation"):
        for path in sorted((REPO_ROOT / package).rglob("*.py")):
            rel = str(path.relative_to(REPO_ROOT))
            text = path.read_text()
            for node in ast.walk(ast.parse(text)):
                if isinstance(node, ast.ImportFrom) and node.module == "sklearn.metrics" and \
                        any(a.name == "confusion_matrix" for a in node.names):
                    found.append(rel)
            if rel != "wbc_classic/evaluation/metrics.py" and re.search(
                    r"bincount\(\s*\w+\s*\*\s*(len\(|k\b|n_classes)", text):
                found.append(rel)
    assert not found, found
    assert open(REPO_ROOT / "wbc_classic/evaluation/metrics.py").read().count(
        "np.bincount(yt * k + yp") == 1


def test_callers_score_with_the_metrics_module():
    """cross_lab's per-class sensitivities: the metrics module's, -1 (unknown) counted wrong."""
    from benchmarks.cross_lab import per_class_accuracy

    y = np.array([0, 0, 0, 1, 1, 3, 3, 3, 3])
    p = np.array([0, -1, 2, 1, 1, 3, 0, -1, 3])
    assert per_class_accuracy(y, p) == {"basophil": 1 / 3, "eosinophil": 1.0,
                                        "monocyte": 0.5}
