"""Classical classifier pipelines on small random feature matrices."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from sklearn.pipeline import Pipeline

from wbc_classic.classical.classifiers import (
    CLASSIFIERS,
    PARAM_GRIDS,
    BalancedClassifier,
    final_estimator,
    make_classifier,
)


@pytest.fixture(scope="module")
def data():
    """Imbalanced 4-class Gaussian blobs, 12 features, string of labels 0..3."""
    rng = np.random.default_rng(0)
    y = np.repeat(np.arange(4), [12, 24, 16, 16])
    centres = rng.normal(scale=2.0, size=(4, 12))
    X = centres[y] + rng.normal(size=(y.size, 12))
    return X.astype(np.float32), y


#: keep the ensembles small so the tests stay fast
SMALL = {"random-forest": {"n_estimators": 20}, "xgboost": {"n_estimators": 30}}


@pytest.mark.parametrize("name", list(CLASSIFIERS))
def test_every_classifier_fits_and_predicts(name, data):
    X, y = data
    clf = make_classifier(name, seed=0, params=SMALL.get(name))
    assert isinstance(clf, Pipeline)
    assert [s for s, _ in clf.steps] == ["scale", "clf"]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # e.g. MLP convergence on 68 samples
        clf.fit(X, y)
    proba = clf.predict_proba(X)
    assert proba.shape == (len(y), 4)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, atol=1e-6)
    pred = clf.predict(X)
    assert set(np.unique(pred)) <= {0, 1, 2, 3}
    # well-separated blobs: every model should do far better than chance
    assert (pred == y).mean() > 0.7, name
    assert final_estimator(clf) is not None


def test_deterministic_with_seed(data):
    X, y = data
    p1 = make_classifier("xgboost", seed=3, params=SMALL["xgboost"]).fit(X, y).predict_proba(X)
    p2 = make_classifier("xgboost", seed=3, params=SMALL["xgboost"]).fit(X, y).predict_proba(X)
    np.testing.assert_array_equal(p1, p2)


def test_unknown_name_lists_valid_ones():
    with pytest.raises(ValueError, match="unknown classifier 'rbf'.*svm.*xgboost"):
        make_classifier("rbf")
    with pytest.raises(ValueError, match="feature_selection"):
        make_classifier("svm", feature_selection="pca")


@pytest.mark.parametrize("selection", ["univariate", "sfs"])
def test_feature_selection_step(selection, data):
    X, y = data
    clf = make_classifier("logreg", feature_selection=selection, k=4).fit(X[:, :6], y)
    assert [s for s, _ in clf.steps] == ["scale", "select", "clf"]
    assert clf.named_steps["select"].get_support().sum() == 4
    assert clf.predict_proba(X[:, :6]).shape == (len(y), 4)


def test_search_is_seeded_stratified_and_refits(data):
    X, y = data
    search = make_classifier("knn", search=True, cv=3, seed=0).fit(X, y)
    assert set(search.best_params_) == {"clf__n_neighbors", "clf__weights"}
    assert isinstance(search.best_estimator_, Pipeline)
    assert search.predict_proba(X).shape == (len(y), 4)
    # the grids name parameters of the bare estimator
    for name, grid in PARAM_GRIDS.items():
        assert name in CLASSIFIERS and grid


def test_search_reaches_wrapped_estimators(data):
    X, y = data
    search = make_classifier("naive-bayes", search="halving", cv=2, seed=0).fit(X, y)
    assert "clf__estimator__var_smoothing" in search.best_params_


def test_balanced_wrapper_weights_classes():
    from sklearn.naive_bayes import GaussianNB

    # 90 / 10 imbalance: balanced weights make the priors uniform
    rng = np.random.default_rng(1)
    y = np.array(["a"] * 90 + ["b"] * 10)
    X = rng.normal(size=(100, 3))
    bal = BalancedClassifier(GaussianNB()).fit(X, y)
    np.testing.assert_allclose(bal.estimator_.class_prior_, [0.5, 0.5])
    assert list(bal.classes_) == ["a", "b"]
    assert set(bal.predict(X)) <= {"a", "b"}
    plain = BalancedClassifier(GaussianNB(), class_weight=None).fit(X, y)
    np.testing.assert_allclose(plain.estimator_.class_prior_, [0.9, 0.1])


def test_params_override_the_bare_estimator():
    assert final_estimator(make_classifier("svm", params={"C": 3.0})).C == 3.0
    assert final_estimator(make_classifier("xgboost", params={"max_depth": 2})).max_depth == 2
    with pytest.raises(ValueError):
        make_classifier("knn", params={"no_such_parameter": 1})


def test_class_weight_reaches_estimators():
    assert final_estimator(make_classifier("logreg")).class_weight == "balanced"
    assert final_estimator(make_classifier("logreg", class_weight=None)).class_weight is None
    assert make_classifier("xgboost").named_steps["clf"].class_weight == "balanced"
