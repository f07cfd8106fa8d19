"""Per-domain standardisation and CORAL on synthetic shifted feature matrices."""

from __future__ import annotations

import numpy as np
import pytest

from wbc_classic.classical.adapt import coral, standardize_per_domain


def _domains(seed=0, n=300):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 3, n)
    centres = np.array([[0.0, 0.0, 0.0], [3.0, 0.0, 1.0], [0.0, 3.0, -1.0]])
    Xs = centres[y] + rng.normal(size=(n, 3))
    # the target lab: the same classes, each feature shifted, stretched and mixed
    A = np.array([[2.0, 0.3, 0.0], [0.0, 0.5, 0.2], [0.1, 0.0, 1.5]])
    yt = rng.integers(0, 3, n)
    Xt = (centres[yt] + rng.normal(size=(n, 3))) @ A + np.array([5.0, -4.0, 2.0])
    return Xs, y, Xt, yt


def _nearest_centroid_accuracy(Xtr, ytr, Xte, yte):
    cents = np.stack([Xtr[ytr == c].mean(axis=0) for c in range(3)])
    pred = np.argmin(((Xte[:, None] - cents[None]) ** 2).sum(-1), axis=1)
    return float(np.mean(pred == yte))


def test_standardize_per_domain_gives_each_domain_zero_mean_unit_std():
    Xs, _, Xt, _ = _domains()
    X = np.vstack([Xs, Xt])
    d = np.array(["pbc"] * len(Xs) + ["jtsc"] * len(Xt))
    Z = standardize_per_domain(X, d)
    for dom in ("pbc", "jtsc"):
        np.testing.assert_allclose(Z[d == dom].mean(axis=0), 0.0, atol=1e-9)
        np.testing.assert_allclose(Z[d == dom].std(axis=0), 1.0, atol=1e-4)


def test_adaptation_recovers_a_shifted_lab():
    Xs, y, Xt, yt = _domains()
    before = _nearest_centroid_accuracy(Xs, y, Xt, yt)
    Z = standardize_per_domain(np.vstack([Xs, Xt]), [0] * len(Xs) + [1] * len(Xt))
    standardised = _nearest_centroid_accuracy(Z[:len(Xs)], y, Z[len(Xs):], yt)
    aligned = _nearest_centroid_accuracy(coral(Xs, Xt), y, Xt, yt)
    assert before < 0.5
    assert standardised > 0.75 and aligned > 0.75


def test_coral_matches_the_target_moments():
    Xs, _, Xt, _ = _domains(1)
    A = coral(Xs, Xt, eps=1e-6)
    np.testing.assert_allclose(A.mean(axis=0), Xt.mean(axis=0), atol=1e-8)
    np.testing.assert_allclose(np.cov(A, rowvar=False), np.cov(Xt, rowvar=False), rtol=1e-3,
                               atol=1e-3)


def test_bad_input_is_refused_with_a_clear_message():
    Xs, _, Xt, _ = _domains()
    with pytest.raises(ValueError, match="domain 'b' has 3 sample"):
        standardize_per_domain(np.vstack([Xs, Xt[:3]]), ["a"] * len(Xs) + ["b"] * 3)
    with pytest.raises(ValueError, match="Xt has 3 sample"):
        coral(Xs, Xt[:3])
    with pytest.raises(ValueError, match="features"):
        coral(Xs, Xt[:, :2])
    with pytest.raises(ValueError, match="NaN"):
        coral(Xs, np.where(Xt > 100, np.nan, np.nan))
    with pytest.raises(ValueError, match="shape"):
        standardize_per_domain(Xs, [0, 1])


def test_coral_matrix_moves_one_covariance_onto_the_other():
    from wbc_classic.classical.adapt import coral_matrix

    rng = np.random.default_rng(3)
    A = rng.normal(size=(4, 4))
    B = rng.normal(size=(4, 4))
    C_from, C_to = A @ A.T + np.eye(4), B @ B.T + np.eye(4)
    M = coral_matrix(C_from, C_to)
    np.testing.assert_allclose(M.T @ C_from @ M, C_to, rtol=1e-8, atol=1e-8)
