"""The scikit-learn contract of the classical estimators (issue 11).

``BalancedClassifier`` and ``FeatureClassifier`` (the feature half of ``WBCModel``) run
scikit-learn's whole estimator check suite; ``WBCModel`` itself, whose samples are images,
is checked for what applies to it: ``clone``, ``is_classifier``, ``cross_val_score``,
parameters stored as given and no fitted state before ``fit``.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from sklearn.base import clone, is_classifier
from sklearn.model_selection import StratifiedKFold, cross_val_score
from sklearn.naive_bayes import GaussianNB
from sklearn.utils.estimator_checks import parametrize_with_checks

from features import FeatureExtractor
from wbc_classic.classical.classifiers import BalancedClassifier, FeatureClassifier
from wbc_classic.classical.model import WBCModel

_CALIBRATION = ("the SVMs' probabilities come from a 5-fold sigmoid calibration "
                "(CalibratedClassifierCV(cv=5)), which needs 5 samples per class; this check "
                "fits 10 samples, fewer per class, so the calibration refuses them with its "
                "own message, not one about the feature count")
_EARLY_STOPPING = ("the MLP holds out 10 % of the rows for early stopping; on the checks' "
                   "tiny data sets that split is smaller than the number of classes")

_WEIGHT_EQ = "check_sample_weight_equivalence_on_dense_data"
_NO_WEIGHTS = ("kNN has no notion of sample weights: FeatureClassifier('knn') refuses them "
               "with a ValueError instead of ignoring them silently")
_KNN_WEIGHT_CHECKS = ("check_sample_weights_pandas_series", "check_sample_weights_not_an_array",
                      "check_sample_weights_list", "check_all_zero_sample_weights_error",
                      "check_sample_weights_shape", "check_sample_weights_not_overwritten",
                      _WEIGHT_EQ, "check_classifiers_one_label_sample_weights")

#: checks that cannot pass, with the reason (every other check must pass)
EXPECTED_FAILED: dict[str, dict[str, str]] = {
    "logreg": {_WEIGHT_EQ: "class_weight='balanced' in scikit-learn's LogisticRegression "
                           "counts rows, not weights, so a weight of 2 and a repeated row "
                           "balance the classes differently"},
    "knn": dict.fromkeys(_KNN_WEIGHT_CHECKS, _NO_WEIGHTS),
    "xgboost": {_WEIGHT_EQ: "XGBoost's histogram bins are built from row quantiles, so "
                            "repeated rows move the bin edges and weights do not"},
    "svm": {"check_fit2d_1feature": _CALIBRATION,
            _WEIGHT_EQ: "the sigmoid calibration's 5 folds split repeated rows across folds "
                        "(a weighted row stays in one), so the calibrated probabilities "
                        "differ"},
    "mlp": {_WEIGHT_EQ: "early stopping holds out a random 10 % of the rows, a different "
                        "split for repeated rows than for weighted ones",
            "check_fit2d_1feature": _EARLY_STOPPING,
            "check_estimators_nan_inf": _EARLY_STOPPING,
            "check_classifiers_one_label": "MLPClassifier cannot be trained on one class "
                                           "(it refuses with ValueError, which the check "
                                           "does not accept)",
            # seen with scikit-learn 1.9.1: 4 of 60 probabilities differ by 6e-8
            "check_methods_sample_order_invariance": "the MLP computes in float32 (as the "
                                                     "saved models do): BLAS sums a batch "
                                                     "in blocks that depend on the row "
                                                     "order, so probabilities differ by "
                                                     "~1e-7, above the check's rtol 1e-7"},
}


def _expected_failures(estimator) -> dict[str, str]:
    return EXPECTED_FAILED.get(getattr(estimator, "classifier", None), {})


@parametrize_with_checks(
    [BalancedClassifier(GaussianNB()),
     FeatureClassifier("logreg"),
     FeatureClassifier("naive-bayes"),  # BalancedClassifier inside the registry pipeline
     FeatureClassifier("knn"),
     FeatureClassifier("svm"),
     FeatureClassifier("xgboost", classifier_params={"params": {"n_estimators": 10}}),
     FeatureClassifier("mlp")],
    expected_failed_checks=_expected_failures)
def test_sklearn_estimator_checks(estimator, check):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # convergence chatter on the checks' tiny data
        check(estimator)


def test_balanced_weights_count_sample_weight():
    """A weight of 2 balances like a repeated row (was: weights ignored by the balancing)."""
    rng = np.random.default_rng(0)
    X = rng.normal(size=(30, 3))
    y = np.repeat([0, 1], [10, 20])
    w = np.ones(30)
    w[:5] = 2.0
    weighted = BalancedClassifier(GaussianNB()).fit(X, y, sample_weight=w)
    repeated = BalancedClassifier(GaussianNB()).fit(np.concatenate([X, X[:5]]),
                                                   np.concatenate([y, y[:5]]))
    np.testing.assert_allclose(weighted.predict_proba(X), repeated.predict_proba(X),
                               rtol=1e-6)


def test_balanced_refuses_continuous_and_infinite_targets():
    X = np.zeros((6, 2))
    with pytest.raises(ValueError, match="Unknown label type"):
        BalancedClassifier(GaussianNB()).fit(X, np.linspace(0, 1, 6))
    with pytest.raises(ValueError):
        BalancedClassifier(GaussianNB()).fit(X, np.array([0, 1, np.inf, 0, 1, 0]))


def _cells(n: int = 4):
    from wbc_classic.data.synthetic import make_cells

    images, y, classes = make_cells(n, classes=("eosinophil", "lymphocyte"), size=64, seed=0)
    return list(images), np.asarray(classes)[y]


def _small_model(**kw) -> WBCModel:
    return WBCModel("logreg", extractor=FeatureExtractor(families=("geometry", "colour")),
                    cv=0, **kw)


def test_wbcmodel_parameters_are_stored_as_given_and_nothing_is_fitted_in_init():
    extractor = FeatureExtractor(families=("geometry",))
    model = WBCModel("svm", extractor=extractor, stain="reinhard", classes=("a", "b"))
    assert model.extractor is extractor and model.get_params()["stain"] == "reinhard"
    assert WBCModel().extractor is None  # no property fills it in
    assert not [k for k in vars(WBCModel()) if k.endswith("_")]
    assert is_classifier(model)
    cloned = clone(model)
    assert cloned.get_params(deep=False).keys() == model.get_params(deep=False).keys()
    assert cloned.extractor is not extractor
    assert cloned.extractor.get_params() == extractor.get_params()


def test_wbcmodel_fit_creates_the_fitted_state_and_clone_drops_it():
    images, labels = _cells()
    model = _small_model(stain="reinhard").fit(images, labels)
    for name in ("classes_", "estimator_", "extractor_", "feature_names_", "stain_",
                 "um_per_pixel_", "versions_", "metadata_"):
        assert hasattr(model, name), name
    assert model.stain_.name == "reinhard" and model.extractor_ is not model.extractor
    fresh = clone(model)
    assert not hasattr(fresh, "estimator_") and not hasattr(fresh, "stain_")
    with pytest.raises(RuntimeError, match="not fitted"):
        fresh.predict(images[:1])


def test_wbcmodel_cross_val_score_on_images():
    images, labels = _cells(6)
    scores = cross_val_score(_small_model(), images, labels,
                             cv=StratifiedKFold(3, shuffle=True, random_state=0))
    assert scores.shape == (3,) and np.all((scores >= 0) & (scores <= 1))
    # the same as fitting and scoring each fold by hand
    by_hand = []
    for tr, te in StratifiedKFold(3, shuffle=True, random_state=0).split(images, labels):
        m = _small_model().fit([images[i] for i in tr], labels[tr])
        by_hand.append(np.mean(m.predict([images[i] for i in te]) == labels[te]))
    np.testing.assert_allclose(scores, by_hand)


def test_fit_is_fit_features_on_the_engine_features():
    """``fit`` = scale + stain + features through the engine, then ``fit_features``."""
    images, labels = _cells()
    model = _small_model(stain="reinhard").fit(images, labels)
    X = model.transform(images)
    again = _small_model(stain="reinhard").fit_features(
        X, labels, stain_normalizer=model.stain_, um_per_pixel=model.um_per_pixel_)
    np.testing.assert_array_equal(again.predict_proba_features(X),
                                  model.predict_proba_features(X))
    with pytest.raises(ValueError, match="stain_normalizer"):
        _small_model(stain="reinhard").fit_features(X, labels)
