"""The shift warning (issue 12 item 5) and the model layer's prediction rows (issue 14)."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import skops.io as sio

from features import FeatureExtractor
from wbc_classic.classical.model import WBCModel
from wbc_classic.classical.modelfile import load, to_dict
from wbc_classic.classical.modelfile import save as save_model
from wbc_classic.classical.shift import ShiftScorer, batch_summary
from wbc_classic.data.synthetic_sets import write_class_folders

CLASSES = ("eosinophil", "lymphocyte", "neutrophil")


def test_scorer_ranks_shifted_rows_higher_and_flags_about_one_percent_of_its_own():
    rng = np.random.default_rng(0)
    cov = np.diag(np.linspace(0.2, 5, 8))
    train = rng.multivariate_normal(np.zeros(8), cov, size=2000)
    scorer = ShiftScorer().fit(train)
    same = rng.multivariate_normal(np.zeros(8), cov, size=4000)
    moved = same + 2.0 * np.sqrt(np.diag(cov)).min()
    assert 0.003 < scorer.flag(same).mean() < 0.03  # the held-out 99th percentile
    assert np.median(scorer.score_samples(moved)) > np.median(scorer.score_samples(same))
    # the covariance matters: a move along a low-variance axis is a bigger shift
    low, high = np.zeros((1, 8)), np.zeros((1, 8))
    low[0, 0], high[0, -1] = 1.5, 1.5
    assert scorer.score_samples(low)[0] > scorer.score_samples(high)[0]
    assert np.isnan(scorer.score_samples(np.full((1, 8), np.nan)))[0]
    with pytest.raises(ValueError, match="at least 2 rows"):
        ShiftScorer().fit(train[:1])


def test_batch_summary_says_plainly_when_a_batch_is_shifted():
    assert batch_summary(np.r_[np.ones(60, bool), np.zeros(40, bool)]).startswith(
        "shift warning: 60 of 100 cells")
    assert "looks like the training data" in batch_summary(np.zeros(100, bool))
    assert "adapted to it already" in batch_summary(np.ones(10, bool), adapted=True)


@pytest.fixture(scope="module")
def fitted(tmp_path_factory):
    root = tmp_path_factory.mktemp("shift")
    data = write_class_folders(root / "data", 8, classes=CLASSES, size=96, seed=0)
    paths = sorted(str(p) for p in data.rglob("*.png"))
    y = [p.split("/")[-2] for p in paths]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = WBCModel("logreg", extractor=FeatureExtractor(families=("geometry",)),
                         classes=CLASSES, cv=0).fit(paths, y)
    return root, model, paths


def test_predict_paths_rows_carry_found_shift_and_no_cell(fitted, tmp_path):
    import cv2

    root, model, paths = fitted
    blank = tmp_path / "blank.png"
    cv2.imwrite(str(blank), np.full((96, 96, 3), 230, np.uint8))
    cache = tmp_path / "cache"
    rows = model.predict_paths([paths[0], str(blank)], cache_dir=cache)
    ok, empty = rows
    assert ok["status"] == "ok" and ok["found"] is True and np.isfinite(ok["shift_score"])
    assert isinstance(ok["shift_flag"], bool)
    assert empty["status"] == "no_cell" and empty["found"] is False
    assert empty["predicted_class"] == "" and np.isnan(empty["proba"]).all()
    assert "no leukocyte" in empty["error"] and str(blank) in empty["error"]
    assert list(cache.rglob("*.npz")), "predict_paths(cache_dir=) wrote no cache entry"
    again = model.predict_paths([paths[0]], cache_dir=cache)
    np.testing.assert_allclose(again[0]["proba"], ok["proba"])


def test_shift_scorer_travels_in_the_model_file_and_old_files_have_none(fitted, tmp_path):
    _, model, paths = fitted
    X = model.transform(paths[:4])
    again = load(save_model(model, tmp_path / "m.skops"))
    np.testing.assert_allclose(again.shift_scores(X)[0], model.shift_scores(X)[0])
    assert again.shift_.threshold_ == model.shift_.threshold_
    obj = to_dict(model)
    obj.update(format_version=2)
    del obj["shift"]
    sio.dump(obj, tmp_path / "v2.skops")
    old = load(tmp_path / "v2.skops")
    scores, flags = old.shift_scores(X)
    assert np.isnan(scores).all() and not flags.any()


def test_fit_sample_weight_changes_the_fit_and_is_checked(fitted):
    _, model, paths = fitted
    y = [p.split("/")[-2] for p in paths]
    w = np.where(np.array(y) == "neutrophil", 50.0, 1.0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        heavy = WBCModel("logreg", extractor=FeatureExtractor(families=("geometry",)),
                         classes=CLASSES, cv=2).fit(paths, y, sample_weight=w)
    X = model.transform(paths)
    assert not np.allclose(heavy.predict_proba_features(X), model.predict_proba_features(X))
    assert heavy.metadata_["weighted"] is True
    with pytest.raises(ValueError, match="sample_weight"):
        WBCModel("logreg", classes=CLASSES).fit(paths, y, sample_weight=w[:3])


def test_extract_features_reports_progress_through_the_one_helper(fitted, capsys):
    _, model, paths = fitted
    model.extract(paths[:3], progress=True)
    assert "features: 3/3 img" in capsys.readouterr().err


def test_scorer_fits_cells_whose_features_are_all_constant():
    """A tiny set where the segmenter found nothing (every feature constant, as on 28 px
    MedMNIST noise): the shrunk covariance is all zeros without the ridge; the scorer must
    still fit and score."""
    X = np.ones((32, 379))
    y = np.repeat(np.arange(4), 8)
    scorer = ShiftScorer().fit(X, y)
    s = scorer.score_samples(X)
    assert s.shape == (32,) and np.all(np.isfinite(s))
