"""The pseudo-label schemes benchmark on tiny synthetic labs (fast, no real data)."""

from __future__ import annotations

import argparse

import numpy as np
import pytest

from benchmarks import pseudo_labels
from benchmarks.labcells import add_lab_arguments, load_labs
from tests.benchmarks.conftest import json_report
from wbc_classic.classical.adapt import confident_rows

ARGS = ["--targets", "jtsc_seg", "--classifiers", "logreg", "--rounds", "2", "--weights",
        "2", "--neighbours", "5"]
SCHEMES = {"as trained", "class-means", "self-training, weight 2", "lab-own",
           "label-spreading, 5 neighbours"}


@pytest.fixture(scope="module")
def labs(pbc_and_jtsc):
    return pbc_and_jtsc


@pytest.fixture(scope="module")
def cells(labs):
    ap = argparse.ArgumentParser()
    add_lab_arguments(ap)
    (Xp, yp, _), target = load_labs(ap, ap.parse_args(
        ["--data", str(labs), "--targets", "jtsc_seg", "--cache-dir", str(labs / "cache")]))
    return Xp, yp, target["jtsc_seg"].X, target["jtsc_seg"].y


@pytest.fixture(scope="module")
def report(labs, tmp_path_factory):
    return json_report(pseudo_labels.main, labs, ARGS, tmp_path_factory.mktemp("pl") / "p.json")


def test_every_scheme_is_scored_on_every_cell(report, cells):
    res = report["results"]["logreg"]["jtsc_seg"]
    assert set(res) == SCHEMES
    assert len(res["self-training, weight 2"]["accuracy"]) == 2
    for r in res.values():
        if r["last"] is not None:
            assert r["last"]["n_test"] == len(cells[3])
            assert r["last"]["accuracy"]["value"] == pytest.approx(r["accuracy"][-1])


def test_the_schemes_never_see_the_labs_labels(cells):
    Xp, yp, Xt, _ = cells
    kw = dict(rounds=2, weights=[2.0], neighbours=[5])
    a = pseudo_labels.predictions("logreg", Xp, yp, Xt, **kw)
    b = pseudo_labels.predictions("logreg", Xp, yp, Xt, **kw)
    assert set(a) == SCHEMES
    for scheme in a:   # nothing but features goes in; the same features, the same answers
        assert all(np.array_equal(p, q) for p, q in zip(a[scheme], b[scheme], strict=True))
    y = np.random.default_rng(0).permutation(len(Xt)) % 5
    scored = pseudo_labels.scores(a, y)
    assert scored["class-means"]["accuracy"] == [float(np.mean(a["class-means"][0] == y))]


def test_self_training_pools_the_lab_on_the_training_scale(cells, monkeypatch):
    from wbc_classic.classical.model import WBCModel
    from wbc_classic.data.labels import PBC5_CLASSES

    Xp, yp, Xt, _ = cells
    recipe = WBCModel("logreg", classes=PBC5_CLASSES, cv=0)
    from sklearn.base import clone

    adapted = clone(recipe).fit_features(Xp, yp).adapt_features(Xt, method="class-means")
    seen = []
    real = WBCModel.fit_features

    def spy(self, X, y, **kw):
        seen.append((X.copy(), np.asarray(y).copy(), kw["sample_weight"].copy()))
        return real(self, X, y, **kw)

    monkeypatch.setattr(WBCModel, "fit_features", spy)
    pseudo_labels.self_training(recipe, adapted, Xp, yp, Xt, weight=3.0, rounds=1)
    (X, y, w), = seen
    rows, labels = pseudo_labels.seeds(adapted.predict_proba_features(Xt))
    aligned = adapted.aligned_features(Xt)
    assert not np.allclose(aligned, Xt)           # the map moves the lab's cells
    np.testing.assert_array_equal(X[:len(Xp)], Xp)
    np.testing.assert_array_equal(X[len(Xp):], aligned[rows])
    np.testing.assert_array_equal(y, np.r_[yp, labels])
    np.testing.assert_array_equal(w, np.r_[np.ones(len(yp)), np.full(rows.size, 3.0)])


def test_the_schemes_start_from_the_confident_half_of_each_class():
    proba = np.array([[0.9, 0.1], [0.6, 0.4], [0.7, 0.3], [0.2, 0.8], [0.45, 0.55]])
    sure = confident_rows(proba)
    assert set(sure) == {0, 1}
    assert sure[0].tolist() == [0, 2]          # median of 0.9, 0.6, 0.7 is 0.7: ties kept
    assert sure[1].tolist() == [3]             # median of 0.8 and 0.55 is 0.675
    rows, labels = pseudo_labels.seeds(proba)
    assert rows.tolist() == [0, 2, 3] and labels.tolist() == [0, 0, 1]


def test_label_spreading_corrects_unsure_pseudo_labels_of_separable_clusters():
    rng = np.random.default_rng(0)
    X = np.concatenate([rng.normal(0, 0.3, (30, 4)), rng.normal(5, 0.3, (30, 4))])
    y = np.r_[np.zeros(30, int), np.ones(30, int)]
    proba = np.where(y[:, None] == np.arange(2), 0.9, 0.1)
    proba[::3] = np.where(y[::3, None] == np.arange(2), 0.4, 0.6)   # wrong, and unsure
    assert (proba.argmax(axis=1) != y).sum() == 20
    assert np.array_equal(pseudo_labels.label_spreading(proba, X, neighbours=5), y)


def test_lab_own_leaves_out_classes_with_too_few_pseudo_labels(cells):
    Xt = cells[2]
    n = len(Xt)
    first = np.where(np.arange(n) % 2 == 0, 2, 4)
    first[-4:] = 0                                     # 4 "basophils": 2 confident ones
    proba = np.full((n, 5), 0.02)
    proba[np.arange(n), first] = 0.9 - 0.01 * (np.arange(n) % 3)
    assert (pseudo_labels.seeds(proba)[1] == 0).sum() < pseudo_labels.MIN_CLASS_ROWS
    pred, = pseudo_labels.lab_own("logreg", proba, Xt, rounds=1)
    assert set(np.unique(pred)) <= {2, 4}
