"""The perturbation-stability benchmark on tiny synthetic labs (fast, no real data)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from benchmarks import stability
from tests.benchmarks.conftest import json_report

ARGS = ["--targets", "jtsc_seg", "--classifiers", "logreg", "--repeats", "2", "--noise",
        "1e-3"]


@pytest.fixture(scope="module")
def labs(pbc_and_jtsc):
    return pbc_and_jtsc


@pytest.fixture(scope="module")
def report(labs, tmp_path_factory):
    return json_report(stability.main, labs, ARGS,
                       tmp_path_factory.mktemp("stability") / "s.json")


def test_the_same_seed_gives_the_same_report(labs, report, tmp_path):
    out = tmp_path / "again.json"
    assert stability.main(["--data", str(labs), *ARGS, "--cache-dir", str(labs / "cache"),
                           "--out", str(out)]) == 0
    assert json.loads(out.read_text()) == report


def test_the_first_fit_is_unperturbed_and_the_others_perturbed(labs, monkeypatch):
    from benchmarks.labcells import add_lab_arguments, load_labs

    seen = []
    real = stability.scores

    def recording(X, yp, labs_, **kw):
        seen.append(X.copy())
        return real(X, yp, labs_, **kw)

    monkeypatch.setattr(stability, "scores", recording)
    assert stability.main(["--data", str(labs), *ARGS, "--cache-dir",
                           str(labs / "cache")]) == 0
    import argparse

    ap = argparse.ArgumentParser()
    add_lab_arguments(ap)
    (Xp, _, _), _ = load_labs(ap, ap.parse_args(["--data", str(labs), "--targets", "jtsc_seg",
                                                 "--cache-dir", str(labs / "cache")]))
    assert len(seen) == 3 and np.array_equal(seen[0], Xp)
    for X in seen[1:]:
        nz = Xp != 0
        rel = (X[nz] - Xp[nz]) / Xp[nz]
        assert 0.5e-3 < rel.std() < 2e-3
    assert not np.array_equal(seen[1], seen[2])


def test_params_reach_the_classifier():
    from sklearn.linear_model import LogisticRegression

    from features import FeatureExtractor
    from wbc_classic.classical.classifiers import final_estimator
    from wbc_classic.classical.model import WBCModel
    from wbc_classic.data.labels import PBC5_CLASSES

    rng = np.random.default_rng(0)
    y = np.repeat(np.arange(5), 8)
    width = len(FeatureExtractor().get_feature_names_out())
    X = rng.normal(size=(40, width)) + y[:, None]
    model = WBCModel("logreg", classes=PBC5_CLASSES, cv=0,
                     classifier_params={"params": {"C": 0.03, "max_iter": 7}}
                     ).fit_features(X, y)
    clf = final_estimator(model.estimator_.pipeline_)
    assert isinstance(clf, LogisticRegression) and clf.C == 0.03 and clf.max_iter == 7
    assert stability.solver_iterations(model) == int(np.max(clf.n_iter_))


def test_every_fit_is_scored_and_summarised(report):
    logreg = report["classifiers"]["logreg"]
    assert len(logreg["iterations"]) == 3 and all(i >= 1 for i in logreg["iterations"])
    for adapt in stability.ADAPTATIONS:
        s = logreg["scores"]["jtsc_seg"][adapt]
        assert len(s["values"]) == 3 and s["values"][0] == s["unperturbed"]
        assert s["min"] <= s["unperturbed"] <= s["max"]
        assert s["spread"] == pytest.approx(s["max"] - s["min"])


def test_the_perturbation_has_the_relative_size_asked_for():
    rng = np.random.default_rng(0)
    X = rng.uniform(1, 100, size=(400, 30)).astype(np.float32)
    Y = stability.perturbed(X, 1e-3, np.random.default_rng(1))
    rel = (Y - X) / X
    assert Y.dtype == np.float32 and abs(rel.std() - 1e-3) < 1e-4 and abs(rel.mean()) < 1e-4


def test_summary_of_runs():
    runs = [{"lab": {"none": 0.5, "class-means": 0.7}},
            {"lab": {"none": 0.4, "class-means": 0.7}},
            {"lab": {"none": 0.6, "class-means": 0.8}}]
    s = stability.summarise(runs)["lab"]
    assert s["none"]["unperturbed"] == 0.5 and s["none"]["spread"] == pytest.approx(0.2)
    assert s["class-means"]["min"] == 0.7 and s["class-means"]["max"] == 0.8


def test_bad_arguments_stop_before_any_work(labs, tmp_path, capsys):
    cases = [(["--data", str(labs), "--noise", "0"], "--noise"),
             (["--data", str(tmp_path)], "is not a folder"),
             (["--data", str(labs), "--params", "{bad"], "is not valid JSON"),
             (["--data", str(labs), "--params", "[1]"], "must be a JSON object"),
             (["--data", str(labs), "--classifiers", "logreg", "--params", '{"bogus": 1}'],
              "Invalid parameter 'bogus'"),
             (["--data", str(labs), "--params", '{"C": 1}'], "give one --classifiers")]
    for argv, message in cases:
        with pytest.raises(SystemExit) as exc:
            stability.main(argv)
        err = capsys.readouterr().err
        assert exc.value.code == 2 and message in err, (argv, err)
