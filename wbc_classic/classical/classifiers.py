"""Classical classifiers over leukocyte feature vectors, each a scikit-learn ``Pipeline``.

Every pipeline is ``StandardScaler -> [feature selection] -> classifier``:

========================  ==========================================================
name                      classifier
========================  ==========================================================
``"svm"``                 RBF :class:`~sklearn.svm.SVC`, sigmoid-calibrated probabilities
``"linear-svm"``          :class:`~sklearn.svm.LinearSVC`, sigmoid-calibrated probabilities
``"knn"``                 :class:`~sklearn.neighbors.KNeighborsClassifier` (distance-weighted)
``"logreg"``              multinomial :class:`~sklearn.linear_model.LogisticRegression`
``"naive-bayes"``         :class:`~sklearn.naive_bayes.GaussianNB`
``"xgboost"``             :class:`xgboost.XGBClassifier` (``tree_method="hist"``, seeded)
``"random-forest"``       :class:`~sklearn.ensemble.RandomForestClassifier`
``"mlp"``                 :class:`~sklearn.neural_network.MLPClassifier` (early stopping)
========================  ==========================================================

Class imbalance: with ``class_weight="balanced"`` the estimators that take a
``class_weight`` get it directly; the others (naive Bayes, XGBoost, MLP) are wrapped in
:class:`BalancedClassifier`, which passes balanced ``sample_weight`` to ``fit``, so the
pipeline stays a plain estimator that ``cross_val_score`` and ``GridSearchCV`` can fit
without metadata routing.  kNN has no notion of weights and is left as it is.

Example
-------
>>> import numpy as np
>>> from wbc_classic.classical.classifiers import make_classifier
>>> rng = np.random.default_rng(0)
>>> X, y = rng.normal(size=(60, 8)), np.repeat([0, 1, 2], 20)
>>> clf = make_classifier("logreg").fit(X, y)
>>> clf.predict_proba(X).shape
(60, 3)
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin, MetaEstimatorMixin, clone
from sklearn.preprocessing import LabelEncoder, StandardScaler
from sklearn.utils import get_tags
from sklearn.utils.class_weight import compute_sample_weight
from sklearn.utils.validation import check_is_fitted

__all__ = [
    "CLASSIFIERS",
    "PARAM_GRIDS",
    "BalancedClassifier",
    "FeatureClassifier",
    "is_search",
    "make_classifier",
    "final_estimator",
]


class BalancedClassifier(MetaEstimatorMixin, ClassifierMixin, BaseEstimator):
    """Fit ``estimator`` with per-sample weights that balance the classes.

    For estimators without a ``class_weight`` parameter (XGBoost, Gaussian naive Bayes,
    MLP).  Labels are encoded to ``0..K-1`` internally, so any label type works
    (XGBoost requires consecutive integers).

    Parameters
    ----------
    estimator : classifier
        Unfitted estimator whose ``fit`` accepts ``sample_weight``.
    class_weight : "balanced", dict or None, default="balanced"
        As in scikit-learn; None fits without weights.

    Attributes
    ----------
    estimator_ : classifier
        The fitted clone of ``estimator``.
    classes_ : ndarray, shape (K,)
        Class labels in sorted order.
    """

    def __init__(self, estimator: Any, class_weight: str | dict | None = "balanced"):
        self.estimator = estimator
        self.class_weight = class_weight

    def fit(self, X: np.ndarray, y: np.ndarray, sample_weight: np.ndarray | None = None):
        """Fit the wrapped estimator on balanced per-sample weights.

        Parameters
        ----------
        X : array-like of float, shape (n, F)
        y : array-like, shape (n,)
            Class labels (any hashable type); a continuous target is refused.
        sample_weight : array-like of float, shape (n,), optional
            Multiplies the class weights. The balancing itself counts each class by its
            total sample weight (not its row count), so a weight of 2 is the same as a
            repeated row, as in scikit-learn's own ``class_weight="balanced"``.

        Returns
        -------
        self
        """
        from sklearn.utils.multiclass import check_classification_targets
        from sklearn.utils.validation import _check_sample_weight, validate_data

        X, y = validate_data(self, X, y, accept_sparse=False, dtype=None,
                             ensure_all_finite=False)
        check_classification_targets(y)
        self._le = LabelEncoder().fit(y)
        self.classes_ = self._le.classes_
        yy = self._le.transform(y)
        weight = None if sample_weight is None else _check_sample_weight(sample_weight, X)
        if self.class_weight is not None:
            weight = _balanced_weights(self.class_weight, y, yy, len(self.classes_), weight)
        self.estimator_ = clone(self.estimator)
        if weight is None:
            self.estimator_.fit(X, yy)
        else:
            self.estimator_.fit(X, yy, sample_weight=weight)
        return self

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        """Class probabilities, float array of shape (n, K) in ``classes_`` order."""
        from sklearn.utils.validation import validate_data

        check_is_fitted(self, "estimator_")
        X = validate_data(self, X, reset=False, accept_sparse=False, dtype=None,
                          ensure_all_finite=False)
        return self.estimator_.predict_proba(X)

    def predict(self, X: np.ndarray) -> np.ndarray:
        """Predicted labels, shape (n,)."""
        from sklearn.utils.validation import validate_data

        check_is_fitted(self, "estimator_")
        X = validate_data(self, X, reset=False, accept_sparse=False, dtype=None,
                          ensure_all_finite=False)
        return self.classes_[np.asarray(self.estimator_.predict(X), dtype=np.int64).ravel()]

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        # X is validated as a dense array before it reaches the wrapped estimator; NaN
        # handling is the wrapped estimator's own (XGBoost takes NaN, GaussianNB refuses it)
        tags.input_tags.sparse = False
        tags.input_tags.allow_nan = get_tags(self.estimator).input_tags.allow_nan
        return tags


def _balanced_weights(class_weight: str | dict, y: np.ndarray, yy: np.ndarray, n_classes: int,
                      sample_weight: np.ndarray | None) -> np.ndarray:
    """Per-sample weights: class weight (``"balanced"`` or a dict over labels) x sample weight.

    ``"balanced"`` is ``total weight / (K * weight of the class)``; with unit sample weights
    that is scikit-learn's ``n / (K * n_c)`` (:func:`~sklearn.utils.class_weight.
    compute_sample_weight`), so unweighted fits are unchanged.
    """
    if isinstance(class_weight, dict):
        weight = compute_sample_weight(class_weight, y)
    elif class_weight == "balanced":
        sw = np.ones(yy.shape[0]) if sample_weight is None else sample_weight
        per_class = np.bincount(yy, weights=sw, minlength=n_classes)
        # a class of zero total weight has no row that counts: its weight stays 0
        per_class_weight = np.divide(sw.sum(), n_classes * per_class,
                                     out=np.zeros(n_classes), where=per_class > 0)
        weight = per_class_weight[yy]
        if sample_weight is None:
            return weight
    else:
        raise ValueError(f"class_weight must be 'balanced', a dict or None, "
                         f"got {class_weight!r}")
    return weight if sample_weight is None else weight * sample_weight


# --------------------------------------------------------------------------- builders
# Each builder: (class_weight, seed, n_jobs) -> unfitted classifier (last pipeline step).

def _svm(class_weight, seed, n_jobs):
    from sklearn.calibration import CalibratedClassifierCV
    from sklearn.svm import SVC

    # SVC(probability=True) is deprecated since scikit-learn 1.9; an internally
    # cross-validated sigmoid calibration of one SVC refitted on all data is its successor.
    svc = SVC(kernel="rbf", C=10.0, gamma="scale", class_weight=class_weight,
              decision_function_shape="ovr", cache_size=500, random_state=seed)
    return CalibratedClassifierCV(svc, method="sigmoid", cv=5, ensemble=False, n_jobs=n_jobs)


def _linear_svm(class_weight, seed, n_jobs):
    from sklearn.calibration import CalibratedClassifierCV
    from sklearn.svm import LinearSVC

    svc = LinearSVC(C=0.1, class_weight=class_weight, dual="auto", max_iter=5000,
                    random_state=seed)
    return CalibratedClassifierCV(svc, method="sigmoid", cv=5, ensemble=False, n_jobs=n_jobs)


def _knn(class_weight, seed, n_jobs):
    from sklearn.neighbors import KNeighborsClassifier

    return KNeighborsClassifier(n_neighbors=7, weights="distance", n_jobs=n_jobs)


def _logreg(class_weight, seed, n_jobs):
    from sklearn.linear_model import LogisticRegression

    # lbfgs fits the multinomial (softmax) model for K > 2 classes. Its default tol (1e-4)
    # stops it after ~40-60 iterations on the leukocyte features, far from the optimum:
    # an early stop that transfers to other labs better than the optimum does, but whose
    # cross-lab scores move by up to 0.13 with 1e-5 noise in the features
    # (benchmarks.stability, README "How stable are the cross-lab numbers").
    return LogisticRegression(C=1.0, solver="lbfgs", max_iter=3000,
                              class_weight=class_weight, random_state=seed)


def _naive_bayes(class_weight, seed, n_jobs):
    from sklearn.naive_bayes import GaussianNB

    nb = GaussianNB(var_smoothing=1e-6)
    return BalancedClassifier(nb, class_weight) if class_weight is not None else nb


def _xgboost(class_weight, seed, n_jobs):
    from xgboost import XGBClassifier

    xgb = XGBClassifier(
        n_estimators=300, learning_rate=0.1, max_depth=5, subsample=0.9,
        colsample_bytree=0.5, min_child_weight=1.0, reg_lambda=1.0,
        tree_method="hist", max_bin=128, random_state=seed, n_jobs=n_jobs,
        eval_metric="mlogloss", verbosity=0,
    )
    # always wrapped: it also encodes labels to 0..K-1 as XGBoost requires
    return BalancedClassifier(xgb, class_weight)


def _random_forest(class_weight, seed, n_jobs):
    from sklearn.ensemble import RandomForestClassifier

    cw = "balanced_subsample" if class_weight == "balanced" else class_weight
    return RandomForestClassifier(n_estimators=300, min_samples_leaf=1, max_features="sqrt",
                                  class_weight=cw, random_state=seed, n_jobs=n_jobs)


def _mlp(class_weight, seed, n_jobs):
    from sklearn.neural_network import MLPClassifier

    mlp = MLPClassifier(hidden_layer_sizes=(256, 128), alpha=1e-3, batch_size=128,
                        learning_rate_init=1e-3, max_iter=300, early_stopping=True,
                        n_iter_no_change=15, validation_fraction=0.1, random_state=seed)
    return BalancedClassifier(mlp, class_weight) if class_weight is not None else mlp


CLASSIFIERS: dict[str, Callable[[Any, int, int], Any]] = {
    "svm": _svm,
    "linear-svm": _linear_svm,
    "knn": _knn,
    "logreg": _logreg,
    "naive-bayes": _naive_bayes,
    "xgboost": _xgboost,
    "random-forest": _random_forest,
    "mlp": _mlp,
}
"""Registry: classifier name -> builder ``(class_weight, seed, n_jobs) -> estimator``."""

# Hyper-parameter grids, keyed on the *final estimator* (the step named "clf",
# unwrapped from calibration / balancing); prefixed at search time.
PARAM_GRIDS: dict[str, dict[str, list]] = {
    "svm": {"C": [1.0, 10.0, 100.0], "gamma": ["scale", 0.001, 0.003, 0.01]},
    "linear-svm": {"C": [0.01, 0.1, 1.0]},
    "knn": {"n_neighbors": [3, 5, 7, 11, 15], "weights": ["uniform", "distance"]},
    "logreg": {"C": [0.1, 1.0, 10.0]},
    "naive-bayes": {"var_smoothing": [1e-9, 1e-6, 1e-3]},
    "xgboost": {"max_depth": [3, 5, 7], "learning_rate": [0.05, 0.1],
                "n_estimators": [200, 400]},
    "random-forest": {"n_estimators": [300, 600], "min_samples_leaf": [1, 2],
                      "max_features": ["sqrt", 0.2]},
    "mlp": {"hidden_layer_sizes": [(128,), (256, 128)], "alpha": [1e-4, 1e-3, 1e-2]},
}


def _inner_prefix(step: Any) -> str:
    """Parameter prefix from the ``clf`` step down to the bare estimator."""
    from sklearn.calibration import CalibratedClassifierCV

    prefix = "clf__"
    while isinstance(step, (CalibratedClassifierCV, BalancedClassifier)):
        prefix += "estimator__"
        step = step.estimator
    return prefix


def final_estimator(pipeline: Any) -> Any:
    """The bare classifier inside a pipeline from :func:`make_classifier` (fitted if it is).

    Unwraps a search (``best_estimator_``), calibration and balancing wrappers.
    """
    from sklearn.calibration import CalibratedClassifierCV

    est = getattr(pipeline, "best_estimator_", pipeline)
    est = est.steps[-1][1] if hasattr(est, "steps") else est
    while True:
        if isinstance(est, CalibratedClassifierCV):
            fitted = getattr(est, "calibrated_classifiers_", None)
            est = fitted[0].estimator if fitted else est.estimator
        elif isinstance(est, BalancedClassifier):
            est = getattr(est, "estimator_", est.estimator)
        else:
            return est


def make_classifier(
    name: str,
    *,
    class_weight: str | dict | None = "balanced",
    feature_selection: str | None = None,
    k: int | str = 60,
    search: bool | str = False,
    cv: int = 5,
    seed: int = 0,
    n_jobs: int = 1,
    params: dict[str, Any] | None = None,
) -> Any:
    """Build an unfitted classification pipeline for leukocyte feature vectors.

    Parameters
    ----------
    name : str
        One of :data:`CLASSIFIERS`: ``"svm"``, ``"linear-svm"``, ``"knn"``, ``"logreg"``,
        ``"naive-bayes"``, ``"xgboost"``, ``"random-forest"``, ``"mlp"``.
    class_weight : "balanced", dict or None, default="balanced"
        Class weighting for imbalanced classes (see the module docstring).
    feature_selection : None, "univariate" or "sfs", default=None
        ``"univariate"``: :class:`~sklearn.feature_selection.SelectKBest` with the ANOVA F
        score; ``"sfs"``: forward :class:`~sklearn.feature_selection.SequentialFeatureSelector`
        scored by a fast multinomial logistic regression (3-fold, stratified) -- slow on
        hundreds of features, meant for small sets.
    k : int or "all", default=60
        Number of features to keep (``SelectKBest`` keeps all when ``k`` exceeds the
        number of features; ``"sfs"`` needs ``k`` smaller than it).
    search : bool or "grid" or "halving", default=False
        Tune :data:`PARAM_GRIDS` ``[name]`` (plus ``k`` with univariate selection) by
        stratified, shuffled, seeded ``cv``-fold cross-validation. True means ``"grid"``
        (:class:`~sklearn.model_selection.GridSearchCV`); ``"halving"`` uses
        :class:`~sklearn.model_selection.HalvingGridSearchCV`.
    cv : int, default=5
        Folds of the search.
    seed : int, default=0
        Seed of every random part (estimators, folds).
    n_jobs : int, default=1
        Parallel jobs of the estimator (kNN, XGBoost, random forest, calibration) or of
        the search when ``search`` is set (the estimator then runs single-threaded).
    params : dict, optional
        Overrides of the bare classifier's parameters, e.g. ``{"C": 30.0}`` for
        ``"svm"`` or ``{"n_estimators": 100}`` for ``"xgboost"`` (set through the
        calibration / balancing wrappers).

    Returns
    -------
    estimator : Pipeline or GridSearchCV
        A :class:`~sklearn.pipeline.Pipeline` with steps ``"scale"``, optionally
        ``"select"``, and ``"clf"``; with ``search`` the pipeline wrapped in the search
        object (its ``best_estimator_`` is the fitted Pipeline).  Both have ``fit``,
        ``predict`` and ``predict_proba`` (columns in sorted label order).

    Raises
    ------
    ValueError
        For an unknown ``name``, ``feature_selection`` or ``search`` value; the message
        lists the valid choices.
    """
    from sklearn.pipeline import Pipeline

    if name not in CLASSIFIERS:
        raise ValueError(f"unknown classifier {name!r}; valid names are: "
                         + ", ".join(CLASSIFIERS))
    if feature_selection not in (None, "univariate", "sfs"):
        raise ValueError(f"unknown feature_selection {feature_selection!r}; "
                         "valid values are: None, 'univariate', 'sfs'")
    if search not in (False, True, "grid", "halving"):
        raise ValueError(f"unknown search {search!r}; valid values are: False, True, "
                         "'grid', 'halving'")
    inner_jobs = 1 if search else n_jobs
    clf = CLASSIFIERS[name](class_weight, seed, inner_jobs)
    steps: list[tuple[str, Any]] = [("scale", StandardScaler())]
    if feature_selection == "univariate":
        from sklearn.feature_selection import SelectKBest, f_classif

        steps.append(("select", SelectKBest(f_classif, k=k)))
    elif feature_selection == "sfs":
        from sklearn.feature_selection import SequentialFeatureSelector
        from sklearn.linear_model import LogisticRegression
        from sklearn.model_selection import StratifiedKFold

        proxy = LogisticRegression(max_iter=300, class_weight=class_weight)
        steps.append(("select", SequentialFeatureSelector(
            proxy, n_features_to_select=k, direction="forward",
            cv=StratifiedKFold(3, shuffle=True, random_state=seed), n_jobs=inner_jobs)))
    steps.append(("clf", clf))
    pipe = Pipeline(steps)
    if params:
        prefix = _inner_prefix(clf)
        pipe.set_params(**{prefix + key: value for key, value in params.items()})
    if not search:
        return pipe

    from sklearn.model_selection import StratifiedKFold

    prefix = _inner_prefix(clf)
    grid = {prefix + key: list(values) for key, values in PARAM_GRIDS[name].items()}
    if feature_selection == "univariate" and isinstance(k, int):
        grid["select__k"] = sorted({max(1, k // 2), k, 2 * k})
    folds = StratifiedKFold(n_splits=cv, shuffle=True, random_state=seed)
    if search == "halving":
        from sklearn.experimental import enable_halving_search_cv  # noqa: F401
        from sklearn.model_selection import HalvingGridSearchCV

        return HalvingGridSearchCV(pipe, grid, cv=folds, scoring="accuracy",
                                   random_state=seed, n_jobs=n_jobs, refit=True)
    from sklearn.model_selection import GridSearchCV

    return GridSearchCV(pipe, grid, cv=folds, scoring="accuracy", n_jobs=n_jobs, refit=True)


# --------------------------------------------------------------------------- feature level

class FeatureClassifier(ClassifierMixin, BaseEstimator):
    """A registry classifier over leukocyte feature vectors: the feature half of ``WBCModel``.

    :class:`wbc_classic.classical.model.WBCModel` takes images (arrays or files) and owns
    the front end (pixel scale, stain normaliser, segmentation, features, augmentation); it
    holds one of these, fitted on the feature matrix, as ``estimator_``. Keeping the two
    apart is deliberate: a ``WBCModel`` that also took 2-D float arrays as "already
    extracted features" would make one ``X`` mean two things (a batch of grey images or a
    feature matrix), and its behaviour would depend on guessing which. Here ``X`` is always
    a feature matrix, so the estimator keeps the whole scikit-learn contract
    (``check_estimator`` runs on it in the tests) and benchmarks can score the classifier
    on cached features with the very object a saved model predicts with.

    Parameters
    ----------
    classifier : str or estimator, default="svm"
        A :data:`CLASSIFIERS` name (built by :func:`make_classifier`), or an unfitted
        scikit-learn classifier/pipeline with ``predict_proba`` (cloned at fit).
    classifier_params : dict, optional
        Keyword arguments of :func:`make_classifier` (``class_weight``,
        ``feature_selection``, ``k``, ``search``, ``cv``, ``params``); ``seed`` and
        ``n_jobs`` default to this estimator's.
    n_jobs : int, default=1
        Parallel jobs of the classifier.
    seed : int, default=0
        Seed of the classifier (and of its hyper-parameter search folds).

    Attributes
    ----------
    pipeline_ : sklearn estimator
        The fitted pipeline (the best one of a search), fitted on ``0..K-1`` codes of
        ``classes_``.
    classes_ : ndarray, shape (K,)
        The labels seen in ``fit``, sorted.
    search_ : dict or None
        ``{"best_score": float, "best_params": dict}`` when the classifier is a
        hyper-parameter search, else None.
    n_features_in_ : int
    """

    def __init__(self, classifier: str | Any = "svm", *,
                 classifier_params: dict | None = None, n_jobs: int = 1, seed: int = 0):
        self.classifier = classifier
        self.classifier_params = classifier_params
        self.n_jobs = n_jobs
        self.seed = seed

    def make_estimator(self) -> Any:
        """The unfitted classifier this estimator fits (a fresh object on every call)."""
        if isinstance(self.classifier, str):
            params = dict(self.classifier_params or {})
            params.setdefault("seed", self.seed)
            params.setdefault("n_jobs", self.n_jobs)
            return make_classifier(self.classifier, **params)
        return clone(self.classifier)

    def fit(self, X: np.ndarray, y: np.ndarray,
            sample_weight: np.ndarray | None = None) -> FeatureClassifier:
        """Fit the classifier.

        Parameters
        ----------
        X : array-like of float, shape (n, F)
            Finite feature values (cast to float32, the dtype of the feature cache).
        y : array-like, shape (n,)
            Class labels of any sortable type; a continuous target is refused.
        sample_weight : array-like of float, shape (n,), optional
            Per-row weights, passed to the pipeline's final step (``clf__sample_weight``);
            ValueError for a classifier that takes none (kNN).

        Returns
        -------
        self
        """
        from sklearn.utils.multiclass import check_classification_targets
        from sklearn.utils.validation import validate_data

        X, y = validate_data(self, X, y, dtype=np.float32)
        check_classification_targets(y)
        self.classes_, codes = np.unique(y, return_inverse=True)
        estimator = self.make_estimator()
        if sample_weight is None:
            estimator.fit(X, codes)
        else:
            import inspect

            pipe = getattr(estimator, "estimator", estimator)  # a search wraps the pipeline
            last = pipe.steps[-1] if hasattr(pipe, "steps") else (None, pipe)
            if "sample_weight" not in inspect.signature(last[1].fit).parameters:
                raise ValueError(f"classifier {self.classifier!r} cannot use sample weights")
            key = "sample_weight" if last[0] is None else f"{last[0]}__sample_weight"
            estimator.fit(X, codes, **{key: np.asarray(sample_weight, dtype=np.float64)})
        if is_search(estimator):
            self.search_: dict[str, Any] | None = {"best_score": float(estimator.best_score_),
                            "best_params": dict(estimator.best_params_)}
            self.pipeline_ = estimator.best_estimator_
        else:
            self.search_ = None
            self.pipeline_ = estimator
        return self

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        """Class probabilities, ndarray of float64, shape (n, K), columns in ``classes_``
        order."""
        from sklearn.utils.validation import validate_data

        check_is_fitted(self, "pipeline_")
        X = validate_data(self, X, reset=False, dtype=np.float32)
        return np.asarray(self.pipeline_.predict_proba(X), dtype=np.float64)

    def predict(self, X: np.ndarray) -> np.ndarray:
        """The most probable label of each row, shape (n,)."""
        proba = self.predict_proba(X)
        return self.classes_[proba.argmax(axis=1)]

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.sparse = False
        return tags


def is_search(estimator: Any) -> bool:
    """Whether ``estimator`` is a hyper-parameter search (fitted or not)."""
    return hasattr(estimator, "best_estimator_") or hasattr(estimator, "param_grid")
