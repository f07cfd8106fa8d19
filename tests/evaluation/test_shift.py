"""The Mahalanobis shift score both families use (wbc_classic/evaluation/shift.py)."""

from __future__ import annotations

import numpy as np
import pytest

from wbc_classic.evaluation.shift import fit_mahalanobis, mahalanobis_score


def test_score_is_the_scaled_mahalanobis_distance():
    """On plenty of rows the shrinkage vanishes: the score is sqrt(d2 / F) with the sample
    covariance of the standardised rows."""
    rng = np.random.default_rng(0)
    X = rng.normal(size=(5000, 3)) @ np.array([[2.0, 0, 0], [1.0, 1.0, 0], [0, 0.5, 3.0]])
    center, scale, precision = fit_mahalanobis(X)
    np.testing.assert_allclose(center, X.mean(0))
    Z = (X - X.mean(0)) / X.std(0)
    q = rng.normal(size=(4, 3)) * 3
    zq = (q - X.mean(0)) / X.std(0)
    d2 = np.einsum("ij,jk,ik->i", zq, np.linalg.inv(np.cov(Z.T, bias=True)), zq)
    np.testing.assert_allclose(mahalanobis_score(q, center, scale, precision),
                               np.sqrt(d2 / 3), rtol=0.02)
    # a typical training row scores about 1; a far one much more
    assert 0.9 < np.mean(mahalanobis_score(X, center, scale, precision) ** 2) < 1.1
    assert mahalanobis_score(X[:1] + 100, center, scale, precision)[0] > 10


def test_constant_features_few_rows_and_bad_input():
    X = np.c_[np.random.default_rng(1).normal(size=(3, 4)), np.ones(3)]  # F > n, a constant
    params = fit_mahalanobis(X)
    s = mahalanobis_score(np.r_[X, np.full((1, 5), np.nan)], *params)
    assert np.isfinite(s[:3]).all() and np.isnan(s[3])
    with pytest.raises(ValueError, match="at least 2 rows"):
        fit_mahalanobis(X[:1])
    with pytest.raises(ValueError, match="NaN or inf"):
        fit_mahalanobis(np.r_[X, np.full((1, 5), np.inf)])
    with pytest.raises(ValueError, match=r"\(n, 5\)"):
        mahalanobis_score(X[:, :4], *params)
