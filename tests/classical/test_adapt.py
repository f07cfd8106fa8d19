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


# ------------------------------------------------------ few labelled cells: class-mean map

def _lab_pair(seed=0, n_ref=600, per_class=10, n_test=300, n_features=4):
    """A reference set and a lab whose every feature is stretched and shifted, with another
    class mix; the lab's few labelled cells and its other cells (features beyond the
    fourth are noise)."""
    rng = np.random.default_rng(seed)
    centres = np.zeros((3, n_features))
    centres[:, :4] = [[0.0, 0.0, 0.0, 0.0], [3.0, 0.0, 1.0, -1.0], [0.0, 3.0, -1.0, 1.0]]
    y_ref = rng.integers(0, 3, n_ref)
    X_ref = centres[y_ref] + rng.normal(size=(n_ref, n_features))
    slope = np.resize([2.0, 0.5, 1.5, 0.8], n_features)
    offset = np.resize([5.0, -4.0, 2.0, 0.3], n_features)

    def lab(y):
        return (centres[y] + rng.normal(size=(len(y), n_features))) * slope + offset

    y_few = np.repeat(np.arange(3), per_class)
    y_test = rng.choice(3, n_test, p=[0.7, 0.2, 0.1])  # not the reference's mix
    return X_ref, y_ref, lab(y_few), y_few, lab(y_test), y_test, slope, offset


def test_class_mean_map_undoes_a_per_feature_affine_shift():
    from wbc_classic.classical.adapt import class_mean_map

    X_ref, y_ref, X_few, y_few, X_test, y_test, slope, offset = _lab_pair(per_class=200)
    a, b = class_mean_map(X_few, y_few, X_ref, y_ref, shrink=0.0)
    np.testing.assert_allclose(a, 1 / slope, rtol=0.1)
    mapped = X_few * a + b
    for c in range(3):
        np.testing.assert_allclose(mapped[y_few == c].mean(0), X_ref[y_ref == c].mean(0),
                                   atol=0.2)
    # the map is the lab's, not its class mix's: the other cells land on the reference too
    assert _nearest_centroid_accuracy(X_ref, y_ref, X_test * a + b, y_test) > 0.8
    assert _nearest_centroid_accuracy(X_ref, y_ref, X_test, y_test) < 0.6
    # the prior pulls a feature without class information to a slope of 1
    flat = X_few.copy()
    flat[:, 0] = 7.0
    a_flat, _ = class_mean_map(flat, y_few, X_ref, y_ref, shrink=1.0)
    assert a_flat[0] == pytest.approx(1.0)


def test_class_mean_map_refuses_what_it_cannot_fit():
    from wbc_classic.classical.adapt import class_mean_map

    X_ref, y_ref, X_few, y_few, *_ = _lab_pair()
    with pytest.raises(ValueError, match="at least 2 classes"):
        class_mean_map(X_few[y_few == 0], y_few[y_few == 0], X_ref, y_ref)
    with pytest.raises(ValueError, match="shapes"):
        class_mean_map(X_few[:, :3], y_few, X_ref, y_ref)
    with pytest.raises(ValueError, match="shrink"):
        class_mean_map(X_few, y_few, X_ref, y_ref, shrink=-1)


def test_affine_alignment_round_trips_as_plain_data():
    from wbc_classic.classical.adapt import FeatureAlignment

    al = FeatureAlignment.from_affine(np.array([2.0, 0.5]), np.array([1.0, -1.0]), n_cells=9)
    Z = np.array([[0.0, 0.0], [1.0, 2.0]])
    np.testing.assert_allclose(al.apply(Z), Z * [2.0, 0.5] + [1.0, -1.0])
    back = FeatureAlignment.from_dict(al.to_dict())
    assert back.method == "class-means" and back.n_cells == 9
    np.testing.assert_allclose(back.apply(Z), al.apply(Z))
    with pytest.raises(ValueError, match="positive"):
        FeatureAlignment.from_affine(np.array([0.0, 1.0]), np.zeros(2))


def _extractor():
    from features import FeatureExtractor

    return FeatureExtractor(families=("geometry",))


N_GEOMETRY = len(_extractor().get_feature_names_out())


def _model(**kw):
    from wbc_classic.classical.model import WBCModel

    return WBCModel("logreg", extractor=_extractor(), classes=["a", "b", "c"], cv=0, seed=0,
                    **kw)


def test_fit_features_aligns_the_lab_rows_and_maps_every_later_input(tmp_path):
    X_ref, y_ref, X_few, y_few, X_test, y_test, *_ = _lab_pair(n_features=N_GEOMETRY)
    X = np.vstack([X_ref, X_few]).astype(np.float32)
    y = np.r_[y_ref, y_few]
    target = np.r_[np.zeros(len(y_ref), bool), np.ones(len(y_few), bool)]
    w = np.r_[np.ones(len(y_ref)), np.full(len(y_few), 10.0)]
    plain = _model().fit_features(X, y, sample_weight=w)
    aligned = _model().fit_features(X, y, sample_weight=w, align_rows=target)
    ad = aligned.metadata_["adaptation"]
    assert ad["method"] == "class-means" and ad["n_cells"] == 30 and ad["applied"]
    assert ad["check"]["accuracy_aligned"] > ad["check"]["accuracy_as_is"]
    assert aligned.alignment_.method == "class-means"
    acc = lambda m: float(np.mean(m.predict_proba_features(X_test).argmax(1) == y_test))  # noqa: E731
    assert acc(aligned) > 0.85 > acc(plain) + 0.1
    # a model aligned by labelled cells is not adapted again (that would drop its map)
    with pytest.raises(ValueError, match="train --align"):
        aligned.adapt_features(X_test)
    with pytest.raises(ValueError, match="train --align"):  # nor from images, before any work
        aligned.adapt([np.zeros((8, 8, 3), np.uint8)] * 20)
    # the map travels in the model file
    from wbc_classic.classical.modelfile import load, save

    back = load(save(aligned, tmp_path / "lab.skops"))
    np.testing.assert_allclose(back.predict_proba_features(X_test),
                               aligned.predict_proba_features(X_test), atol=1e-6)
    # a refit without align_rows starts again from the rows as they are
    again = aligned.fit_features(X, y, sample_weight=w)
    assert "alignment_" not in again.__dict__ and "adaptation" not in again.metadata_


def test_aligned_features_are_what_the_classifier_receives():
    X_ref, y_ref, X_few, y_few, X_test, *_ = _lab_pair(n_features=N_GEOMETRY)
    X = np.vstack([X_ref, X_few]).astype(np.float32)
    target = np.r_[np.zeros(len(y_ref), bool), np.ones(len(y_few), bool)]
    plain = _model().fit_features(X, np.r_[y_ref, y_few])
    aligned = _model().fit_features(X, np.r_[y_ref, y_few], align_rows=target,
                                    align_check=False)
    X64 = np.asarray(X_test, np.float64)
    out = plain.aligned_features(X64)          # no map: the rows as they are, in float32
    assert out.dtype == np.float32 and np.array_equal(out, X64.astype(np.float32))
    assert aligned.aligned_features(X64[:0]).shape == (0, X64.shape[1])
    moved = aligned.aligned_features(X64)
    assert moved.dtype == np.float32 and not np.allclose(moved, X64)
    # the model's probabilities are its classifier's on the moved rows
    np.testing.assert_allclose(aligned.predict_proba_features(X64),
                               aligned.estimator_.predict_proba(moved), atol=1e-6)


def test_the_check_drops_a_map_that_does_not_help():
    """A lab like the reference: the map can only add noise, and the cross-validation on
    the lab's cells decides; without the check the map is always kept."""
    X_ref, y_ref, *_ = _lab_pair(n_features=N_GEOMETRY)
    rng = np.random.default_rng(5)
    few = rng.choice(len(y_ref), 12, replace=False)  # 'lab' cells drawn from the reference
    X = np.vstack([X_ref, X_ref[few] + rng.normal(scale=0.01, size=(12, N_GEOMETRY))]
                  ).astype(np.float32)
    y = np.r_[y_ref, y_ref[few]]
    target = np.r_[np.zeros(len(y_ref), bool), np.ones(12, bool)]
    checked = _model().fit_features(X, y, align_rows=target)
    ad = checked.metadata_["adaptation"]
    # cells of the reference itself: the map cannot predict them better, so it is dropped
    assert ad["check"]["accuracy_aligned"] <= ad["check"]["accuracy_as_is"]
    assert not ad["applied"] and "alignment_" not in checked.__dict__
    forced = _model().fit_features(X, y, align_rows=target, align_check=False)
    assert forced.metadata_["adaptation"]["applied"] and forced.alignment_ is not None
    # one labelled cell per class: nothing to cross-validate, so the map is not kept
    one = np.r_[np.zeros(len(y_ref), bool), np.zeros(12, bool)]
    one[len(y_ref) + np.unique(y[target], return_index=True)[1]] = True
    few_cells = _model().fit_features(X, y, align_rows=one)
    assert not few_cells.metadata_["adaptation"]["applied"]
    assert "too few" in few_cells.metadata_["adaptation"]["check"]["reason"]
    # a lab with cells of one class: no map to fit, recorded, not raised
    mono = target & (y == y[target][0])
    one_class = _model().fit_features(X, y, align_rows=mono)
    assert not one_class.metadata_["adaptation"]["applied"]
    assert "2 classes" in one_class.metadata_["adaptation"]["check"]["reason"]
    with pytest.raises(ValueError, match="align_rows"):
        _model().fit_features(X, y, align_rows=np.ones(len(y), bool))
    with pytest.raises(ValueError, match="align_rows"):
        _model().fit_features(X, y, align_rows=target[:-1])


def test_unlabelled_class_means_and_auto_adaptation(tmp_path):
    """``adapt --method class-means`` needs no labels: the model's own confident predictions
    stand in; ``auto`` fits it only when the shift warning flags most of the lab's cells,
    and otherwise leaves the model as it is."""
    from wbc_classic.classical.modelfile import load, save

    X_ref, y_ref, _, _, X_test, y_test, *_ = _lab_pair(n_features=N_GEOMETRY)
    model = _model().fit_features(X_ref.astype(np.float32), y_ref)
    assert model.class_means_.shape == (3, N_GEOMETRY)
    np.testing.assert_allclose(model.class_means_[1], X_ref[y_ref == 1].mean(0), rtol=1e-5,
                               atol=1e-5)
    def acc_on(m, X, y):
        return float(np.mean(m.predict_proba_features(X).argmax(1) == y))

    def acc(m):
        return acc_on(m, X_test, y_test)

    aligned = model._with_alignment(model._fit_alignment(X_test, "class-means"))
    standardized = model._with_alignment(model._fit_alignment(X_test, "standardize"))
    assert acc(aligned) > 0.85 and acc(aligned) > acc(standardized) > acc(model)
    # an adapted model is not adapted again (auto would judge the cells through its map,
    # and none would drop it): adapt the model as trained
    once = model.adapt_features(X_test, method="class-means")
    with pytest.raises(ValueError,
                       match=f"adapted already .method class-means on {len(X_test)} cells"):
        once.adapt_features(X_test)
    chosen, info = model._choose_alignment(X_test, "auto")
    assert info["flagged"] >= 0.5 and info["flagged"] == model.shift_scores(X_test)[1].mean()
    assert info["chosen"] == "class-means" and chosen is not None
    assert info["median_shift"]["class-means"] < info["median_shift"]["none"]
    # new cells of the training distribution: few are flagged, and no map is fitted for them
    like, y_like, *_ = _lab_pair(seed=10, n_features=N_GEOMETRY)
    like = like.astype(np.float32)

    def no_map(X, method):
        raise AssertionError("auto fitted a map for cells like the training cells")

    model._fit_alignment = no_map  # instance attribute: this model only
    none, info = model._choose_alignment(like, "auto")
    assert info["flagged"] < 0.5 and info["chosen"] == "none" and none is None
    assert set(info["median_shift"]) == {"none"}
    del model._fit_alignment
    # the class means travel in the model file; a file without them says so for
    # class-means, and auto falls back to the former default, standardize, saying why
    back = load(save(model, tmp_path / "m.skops"))
    np.testing.assert_array_equal(back.class_means_, model.class_means_)
    del back.__dict__["class_means_"]
    with pytest.raises(ValueError, match="class means"):
        back._fit_alignment(X_test, "class-means")
    old = back.adapt_features(X_test)
    assert old.metadata_["adaptation"]["chosen"] == "standardize"
    assert "older version" in old.metadata_["adaptation"]["note"]
    assert old.alignment_.method == "standardize"
    # a model that calls every cell one class has no class means to align: auto says so
    one = _model()._with_alignment(None)
    one.__dict__.update(model.__dict__)
    far = np.full_like(X_test, 50.0)
    info = one.adapt_features(far).metadata_["adaptation"]
    assert info["chosen"] == "none" and "one class" in info.get("note", "")
