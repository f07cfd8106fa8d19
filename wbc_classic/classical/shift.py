"""Shift warning: how unlike the training cells a cell's feature vector is.

:class:`ShiftScorer` is a Mahalanobis distance with a Ledoit-Wolf shrinkage covariance,
fitted on the training cells' feature vectors (those the classifier sees: after the
classifier pipeline's scaler and feature selection), with a flag threshold taken from the
training cells' own *held-out* scores (k-fold: each cell scored by a scorer fitted without
it), so a cell of the training distribution is flagged with probability about
``1 - quantile``.  ``wbc-classic predict`` and ``count`` write every cell's
``shift_score`` and ``shift_flag``; a batch with many flagged cells looks unlike the
training data, and its predictions should not be trusted without checking.

The distance itself is :mod:`wbc_classic.evaluation.shift` (shared with the networks' shift
score): ``sqrt(d2 / F)`` (``d2`` the squared Mahalanobis distance, ``F`` the number of
features), so it is near 1 for a typical training cell whatever the number of features.

Example
-------
>>> import numpy as np
>>> from wbc_classic.classical.shift import ShiftScorer
>>> rng = np.random.default_rng(0)
>>> scorer = ShiftScorer().fit(rng.normal(size=(500, 5)))
>>> bool(scorer.flag(rng.normal(size=(1, 5)) + 10)[0])
True
"""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.base import BaseEstimator
from sklearn.utils.validation import check_is_fitted

# the sentence about a batch's flags is shared with the deep family's predictions, so it lives
# with the prediction CSV (wbc_classic.io, which deep may import); re-exported here
from wbc_classic.evaluation.shift import fit_mahalanobis, mahalanobis_score
from wbc_classic.io.predictions import batch_summary

__all__ = ["ShiftScorer", "batch_summary"]


class ShiftScorer(BaseEstimator):
    """Mahalanobis (Ledoit-Wolf) distance to the training cells, with a flag threshold.

    Parameters
    ----------
    quantile : float, default=0.99
        Quantile of the training cells' held-out scores used as the flag threshold.
    cv : int, default=5
        Folds of those held-out scores (fewer when there are few rows; 0 or 1: the
        in-sample scores, which give a lower, stricter threshold).
    seed : int, default=0
        Seed of the folds.

    Attributes
    ----------
    center_ : ndarray of float64, shape (F,)
        Per-feature mean of the training rows.
    scale_ : ndarray of float64, shape (F,)
        Per-feature standard deviation (1 where it is 0).
    precision_ : ndarray of float64, shape (F, F)
        Inverse of the Ledoit-Wolf covariance of the standardised rows.
    threshold_ : float
        Scores above it are flagged.
    train_scores_ : ndarray of float64, shape (q,)
        Quantiles 0, 0.01, ..., 1 of the held-out training scores (for reports).
    n_features_in_ : int
    """

    def __init__(self, quantile: float = 0.99, cv: int = 5, seed: int = 0):
        self.quantile = quantile
        self.cv = cv
        self.seed = seed

    def fit(self, X: np.ndarray, y: Any = None, groups: np.ndarray | None = None
            ) -> ShiftScorer:
        """Fit on training feature vectors.

        Parameters
        ----------
        X : ndarray of float, shape (n, F), n >= 2, finite
        y : ignored
        groups : ndarray of int, shape (n,), optional
            Source image of each row (an image and its augmented copies share one): the
            held-out folds keep a group together, so near copies do not lower the threshold.

        Returns
        -------
        self
        """
        if not 0 < self.quantile < 1:
            raise ValueError(f"quantile must be in (0, 1), got {self.quantile!r}")
        X = np.asarray(X, dtype=np.float64)
        # the full fit first: it checks the rows (2-D, at least 2, finite) for the folds too
        center, scale, precision = fit_mahalanobis(X)
        n_groups = X.shape[0] if groups is None else len(np.unique(groups))
        folds = int(min(self.cv or 0, n_groups // 2))
        if folds >= 2:
            from sklearn.model_selection import GroupKFold, KFold

            held = np.empty(X.shape[0])
            kfold = KFold(folds, shuffle=True, random_state=self.seed) if groups is None \
                else GroupKFold(folds, shuffle=True, random_state=self.seed)
            for tr, te in kfold.split(X, groups=groups):
                held[te] = mahalanobis_score(X[te], *fit_mahalanobis(X[tr]))
        else:
            held = mahalanobis_score(X, center, scale, precision)
        self.center_, self.scale_, self.precision_ = center, scale, precision
        self.threshold_ = float(np.quantile(held, self.quantile))
        self.train_scores_ = np.quantile(held, np.linspace(0, 1, 101))
        self.n_features_in_ = X.shape[1]
        return self

    def score_samples(self, X: np.ndarray) -> np.ndarray:
        """Shift score of each row, ndarray of float64, shape (n,); higher = less like the
        training rows (NaN for a row with non-finite values)."""
        check_is_fitted(self, "precision_")
        X = np.asarray(X, dtype=np.float64)
        if X.ndim != 2 or X.shape[1] != self.n_features_in_:
            raise ValueError(f"X must be (n, {self.n_features_in_}), got {X.shape}")
        return mahalanobis_score(X, self.center_, self.scale_, self.precision_)

    def flag(self, X: np.ndarray) -> np.ndarray:
        """ndarray of bool, shape (n,): the score is above :attr:`threshold_` (or NaN)."""
        s = self.score_samples(X)
        return ~(s <= self.threshold_)
