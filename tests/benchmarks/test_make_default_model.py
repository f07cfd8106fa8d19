"""The default model's evaluation: augmented copies train, never test (synthetic rows)."""

from __future__ import annotations

import numpy as np

from benchmarks import make_default_model as mdm

N_FEATURES = 379  # the default extractor's width (fit_features checks it)


def _lab(rng, n, shift):
    y = np.arange(n) % 5
    X = (rng.normal(size=(n, N_FEATURES)) + y[:, None] * 0.8 + shift).astype(np.float32)
    return X, y


def test_copies_join_only_the_training_rows_of_their_source_cells(monkeypatch):
    rng = np.random.default_rng(0)
    feats = {"pbc": _lab(rng, 60, 0.0), "cellavision_seg": _lab(rng, 20, 0.1),
             "jtsc_seg": _lab(rng, 25, 1.0)}
    # a copy is its source cell plus a mark that says which lab and row it came from
    copies = {}
    for i, (name, (X, _)) in enumerate(feats.items()):
        source = np.tile(np.arange(len(X)), 2)
        Xc = X[source].copy()
        Xc[:, -1] = 1000 * (i + 1) + source
        copies[name] = (Xc, source)
    tr, te = np.arange(0, 60, 2), np.arange(1, 60, 2)
    fitted = []
    real = mdm._fit

    def spy(classifier, X, y, w, seed=0):
        fitted.append((X.copy(), y.copy(), w.copy()))
        return real(classifier, X, y, w, seed)

    monkeypatch.setattr(mdm, "_fit", spy)
    out = mdm.evaluate("logreg", feats, (tr, te), 5.0, copies)
    assert {"pbc_test", "jtsc_seg_held_out", "cellavision_seg_held_out_adapted"} <= set(out)
    X, y, w = fitted[0]          # the PBC-test fit: PBC's training part and both labs
    marks = X[:, -1]
    pbc_rows = marks[(marks >= 1000) & (marks < 2000)] - 1000
    assert set(pbc_rows.astype(int)) == set(tr)            # no copy of a PBC test cell
    assert (marks >= 2000).sum() == 2 * (20 + 25)           # every copy of the small labs
    assert len(X) == 3 * (len(tr) + 20 + 25)
    # a copy has its source's label and weight
    src = (marks[(marks >= 3000)] - 3000).astype(int)
    np.testing.assert_array_equal(y[marks >= 3000], feats["jtsc_seg"][1][src])
    assert np.all(w[marks >= 2000] == 5.0) and np.all(w[(marks >= 1000) & (marks < 2000)] == 1)
    # leave-one-lab-out: each fit has all of PBC and the other lab, with their copies, and
    # nothing of the left-out lab (mdm.LABS order: cellavision_seg, then jtsc_seg)
    assert mdm.LABS == ("cellavision_seg", "jtsc_seg") and len(fitted) == 3
    for (X, _, _), left, other, n_other in ((fitted[1], 2, 3, 25), (fitted[2], 3, 2, 20)):
        assert len(X) == 3 * (60 + n_other)     # the cells and 2 copies of each
        labs = np.floor(X[:, -1] / 1000)
        assert (labs == left).sum() == 0 and (labs == other).sum() > 0
        assert (labs == 1).sum() == 2 * 60


def test_without_copies_the_rows_are_the_cells():
    X = np.arange(12, dtype=np.float32).reshape(6, 2)
    y = np.arange(6) % 2
    Xr, yr = mdm._with_copies(X, y, np.array([1, 3]), None)
    np.testing.assert_array_equal(Xr, X[[1, 3]])
    np.testing.assert_array_equal(yr, y[[1, 3]])
