"""Scoring an outside model's predictions on a benchmark run's test images."""

from __future__ import annotations

import csv
import json

import pytest

import benchmarks.run as R
from benchmarks.score_predictions import main as score_main
from wbc_classic.data.synthetic_sets import write_class_folders


@pytest.mark.slow
def test_scores_a_predictions_csv_on_the_runs_test_images(tmp_path, capsys):
    data = write_class_folders(tmp_path / "data", 8, classes=("lymphocyte", "neutrophil"),
                               size=64, seed=0)
    run = tmp_path / "run"
    assert R.main(["--data", str(data), "--models", "logreg", "--no-deep", "--out", str(run),
                   "--cache-dir", str(tmp_path / "cache"), "--no-progress",
                   "--n-resamples", "100"]) == 0
    listing = tmp_path / "test.txt"
    assert score_main(["--run", str(run), "--data", str(data),
                       "--write-test-list", str(listing)]) == 0
    paths = listing.read_text().split()
    truth = json.loads((run / "results.json").read_text())["y_true"]
    classes = ("lymphocyte", "neutrophil")
    assert len(paths) == len(truth) == 4
    preds = tmp_path / "preds.csv"
    with open(preds, "w", newline="") as fh:  # right on all but the last, which is missing
        w = csv.writer(fh)
        w.writerow(["path", "status", "predicted_class", "p_lymphocyte", "p_neutrophil"])
        for p, t in zip(paths[:-1], truth[:-1], strict=True):
            w.writerow([p, "ok", classes[t], 1.0 - t, float(t)])
    out = tmp_path / "scores.json"
    assert score_main(["--run", str(run), "--data", str(data), "--predictions", str(preds),
                       "--name", "outside", "--out", str(out)]) == 0
    doc = json.loads(out.read_text())
    assert doc["n_failed"] == 1
    assert doc["evaluation"]["metrics"]["accuracy"]["value"] == pytest.approx(0.75)
    assert doc["mcnemar_vs"] == "logreg" and "(1 failed)" in capsys.readouterr().out


def test_wrong_data_is_refused(tmp_path, capsys):
    run = tmp_path / "run"
    run.mkdir()
    assert score_main(["--run", str(run), "--data", str(tmp_path)]) == 2
    assert "error:" in capsys.readouterr().err
