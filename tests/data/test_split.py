"""Tests for wbc_classic.data.split: schemes, determinism, stratification, k-fold, persistence."""

from __future__ import annotations

import json
import subprocess
import sys
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest

from wbc_classic.data.split import (
    Split,
    kfold_splits,
    label_digest,
    make_split,
    make_splits,
    parse_scheme,
)


def _labels(counts: dict[str, int], seed: int = 0) -> np.ndarray:
    y = np.concatenate([[c] * n for c, n in counts.items()])
    return np.random.default_rng(seed).permutation(y)


Y = _labels({"a": 100, "b": 37, "c": 250, "d": 13})


# ----------------------------------------------------------------------------- parsing


@pytest.mark.parametrize("text, fr, canon", [
    ("80/20", (Fraction(4, 5), 0, Fraction(1, 5)), "80/20"),
    (" 90 / 10 ", (Fraction(9, 10), 0, Fraction(1, 10)), "90/10"),
    ("50/25/25", (Fraction(1, 2), Fraction(1, 4), Fraction(1, 4)), "50/25/25"),
    ("70/15/15", (Fraction(7, 10), Fraction(3, 20), Fraction(3, 20)), "70/15/15"),
    ("87.5/12.5", (Fraction(7, 8), 0, Fraction(1, 8)), "87.5/12.5"),
    ("80/0/20", (Fraction(4, 5), 0, Fraction(1, 5)), "80/0/20"),
])
def test_parse_holdout(text: str, fr: tuple, canon: str) -> None:
    p = parse_scheme(text)
    assert p.kind == "holdout" and p.k is None
    assert p.fractions == tuple(Fraction(f) for f in fr)
    assert sum(p.fractions) == 1
    assert p.text == canon


@pytest.mark.parametrize("text", ["kfold:5", "KFold:5", "kfold5", "5-fold", "5fold", "k=5"])
def test_parse_kfold(text: str) -> None:
    p = parse_scheme(text)
    assert p.kind == "kfold" and p.k == 5 and p.text == "kfold:5"


@pytest.mark.parametrize("bad", ["80/30", "100", "80-20", "a/b", "0/100", "100/0",
                                 "50/50/0", "kfold:1", "kfold:", "", "80/20/0/0", "-10/110"])
def test_parse_errors(bad: str) -> None:
    with pytest.raises(ValueError):
        parse_scheme(bad)


def test_parse_type_error() -> None:
    with pytest.raises(TypeError):
        parse_scheme(80)  # type: ignore[arg-type]


# ----------------------------------------------------------------------------- holdout


def _check_partition(s: Split, n: int) -> None:
    assert s.n_samples == n
    for part in (s.train, s.val, s.test):
        assert part.dtype == np.int64
        assert np.all(np.diff(part) > 0)  # sorted, unique
        assert not part.flags.writeable
    allidx = np.concatenate([s.train, s.val, s.test])
    np.testing.assert_array_equal(np.sort(allidx), np.arange(n))


@pytest.mark.parametrize("scheme", ["80/20", "90/10", "50/25/25", "70/15/15", "60/40"])
def test_holdout_partition_and_stratification(scheme: str) -> None:
    s = make_split(Y, scheme, seed=3)
    _check_partition(s, len(Y))
    fr = parse_scheme(scheme).fractions
    for cls in np.unique(Y):
        members = np.flatnonzero(Y == cls)
        n_c = len(members)
        for part, f in zip((s.train, s.val, s.test), fr, strict=True):
            got = np.isin(members, part).sum()
            assert abs(got - float(f) * n_c) < 1.0 + 1e-9, (cls, scheme)
            if f > 0:
                assert got >= 1
    total = {k: float(f) * len(Y) for k, f in zip(("train", "val", "test"), fr, strict=True)}
    for k, v in s.sizes.items():
        assert abs(v - total[k]) <= 4  # at most one per class away
    assert s.scheme == parse_scheme(scheme).text and s.seed == 3 and s.fold is None
    if fr[1] == 0:
        assert len(s.val) == 0


def test_exact_proportions_when_divisible() -> None:
    y = np.repeat([0, 1, 2], [100, 50, 20])
    s = make_split(y, "80/20", seed=0)
    assert s.sizes == {"train": 136, "val": 0, "test": 34}
    np.testing.assert_array_equal(np.bincount(y[s.test]), [20, 10, 4])
    s3 = make_split(y, "50/25/25", seed=0)
    # 12.5 per part for class 1: the tie goes to val; class 2's tie (5 each) is exact
    np.testing.assert_array_equal(np.bincount(y[s3.val]), [25, 13, 5])
    np.testing.assert_array_equal(np.bincount(y[s3.test]), [25, 12, 5])
    # a second tied class gives its extra member to the other part
    y4 = np.repeat([0, 1], [50, 50])
    s4 = make_split(y4, "50/25/25", seed=0)
    assert s4.sizes == {"train": 50, "val": 25, "test": 25}


def test_determinism_same_seed() -> None:
    a = make_split(Y, "80/20", seed=7)
    b = make_split(list(Y), "80/20", seed=7)
    assert a == b
    np.testing.assert_array_equal(a.test, b.test)
    c = make_split(Y, "80/20", seed=8)
    assert a != c
    assert not np.array_equal(a.test, c.test)


def test_determinism_across_processes() -> None:
    code = ("import numpy as np; from wbc_classic.data.split import make_split;"
            "y=np.repeat(np.arange(4),[30,7,50,13]);"
            "print(make_split(y,'50/25/25',seed=11).test.tolist())")
    root = Path(__file__).resolve().parents[2]
    outs = [subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                           cwd=root, check=True).stdout for _ in range(2)]
    y = np.repeat(np.arange(4), [30, 7, 50, 13])
    assert outs[0] == outs[1] == str(make_split(y, "50/25/25", seed=11).test.tolist()) + "\n"


def test_does_not_touch_global_random_state() -> None:
    state = np.random.get_state()  # noqa: NPY002 - the legacy global state is the point
    make_split(Y, "80/20", seed=1)
    kfold_splits(Y, 3, seed=1)
    after = np.random.get_state()  # noqa: NPY002
    assert state[0] == after[0] and np.array_equal(state[1], after[1]) and state[2] == after[2]


def test_string_and_int_labels_agree() -> None:
    y_str = np.array(["x", "y", "x", "z", "y", "x", "z", "z", "y", "x"])
    y_int = np.searchsorted(np.unique(y_str), y_str)
    assert make_split(y_str, "80/20", seed=2) == make_split(y_int, "80/20", seed=2)
    assert make_split(y_int[:, None], "80/20", seed=2) == make_split(y_int, "80/20", seed=2)


def test_few_members() -> None:
    y = np.array([0] * 10 + [1, 1])
    s = make_split(y, "90/10", seed=0)
    assert np.isin(np.flatnonzero(y == 1), s.test).sum() == 1
    assert np.isin(np.flatnonzero(y == 1), s.train).sum() == 1
    y3 = np.array([0] * 10 + [1, 1, 1])
    s3 = make_split(y3, "80/10/10", seed=0)
    for part in (s3.train, s3.val, s3.test):
        assert np.isin(np.flatnonzero(y3 == 1), part).sum() == 1


def test_impossible_stratification_errors() -> None:
    y = np.array(["a"] * 10 + ["rare"])
    with pytest.raises(ValueError, match="'rare' has only 1 member"):
        make_split(y, "80/20")
    with pytest.raises(ValueError, match="at least 3 per class"):
        make_split(np.array([0] * 10 + [1, 1]), "50/25/25")
    s = make_split(y, "80/20", stratify=False)
    _check_partition(s, 11)
    assert s.sizes == {"train": 9, "val": 0, "test": 2}


def test_bad_inputs() -> None:
    with pytest.raises(ValueError, match="empty"):
        make_split([], "80/20")
    with pytest.raises(ValueError, match="1-D"):
        make_split(np.zeros((4, 2)), "80/20")
    with pytest.raises(ValueError, match="seed"):
        make_split(Y, "80/20", seed=-1)
    with pytest.raises(ValueError, match="seed"):
        make_split(Y, "80/20", seed=1.5)  # type: ignore[arg-type]


# ----------------------------------------------------------------------------- k-fold


@pytest.mark.parametrize("k", [2, 3, 5, 10])
def test_kfold(k: int) -> None:
    folds = kfold_splits(Y, k=k, seed=4)
    assert len(folds) == k
    tests = [f.test for f in folds]
    np.testing.assert_array_equal(np.sort(np.concatenate(tests)), np.arange(len(Y)))
    sizes = [len(t) for t in tests]
    assert max(sizes) - min(sizes) <= 1
    for i, f in enumerate(folds):
        _check_partition(f, len(Y))
        assert f.fold == i and f.scheme == f"kfold:{k}" and len(f.val) == 0
        for cls in np.unique(Y):
            n_c = (Y == cls).sum()
            got = np.isin(np.flatnonzero(Y == cls), f.test).sum()
            assert abs(got - n_c / k) < 1.0 + 1e-9


def test_kfold_determinism_and_make_split() -> None:
    a = kfold_splits(Y, 5, seed=9)
    b = kfold_splits(Y, 5, seed=9)
    assert a == b
    assert make_split(Y, "kfold:5", seed=9, fold=3) == a[3]
    assert make_splits(Y, "kfold:5", seed=9) == a
    assert make_splits(Y, "80/20", seed=9) == [make_split(Y, "80/20", seed=9)]
    with pytest.raises(ValueError, match="fold"):
        make_split(Y, "kfold:5", fold=5)


def test_kfold_small_class_warns_and_errors() -> None:
    y = np.array([0] * 20 + [1, 1])
    with pytest.warns(UserWarning, match="fewer members than k=5"):
        folds = kfold_splits(y, 5)
    assert sum(np.isin([20, 21], f.test).sum() for f in folds) == 2
    with pytest.raises(ValueError, match="cannot make 5 folds from 3"):
        kfold_splits([0, 1, 0], 5)
    with pytest.raises(ValueError, match="k must be"):
        kfold_splits(Y, 1)


# ----------------------------------------------------------------------------- Split object


def test_split_is_frozen() -> None:
    s = make_split(Y, "80/20")
    with pytest.raises(AttributeError):
        s.seed = 5  # type: ignore[misc]
    with pytest.raises(ValueError):
        s.train[0] = 3
    with pytest.raises(TypeError):
        hash(s)


def test_split_validation() -> None:
    with pytest.raises(ValueError, match="overlap"):
        Split([0, 1], [], [1, 2], 0, "x", 3)
    with pytest.raises(ValueError, match="covers 3 of 4"):
        Split([0, 1], [], [2], 0, "x", 4)
    with pytest.raises(ValueError, match="out of range"):
        Split([0, 1], [], [5], 0, "x", 3)
    with pytest.raises(ValueError, match="duplicate"):
        Split([0, 0, 1], [], [2], 0, "x", 3)
    with pytest.raises(ValueError, match="empty train or test"):
        Split([0, 1, 2], [], [], 0, "x", 3)
    s = Split([2, 0], [], [1], 0, "x")  # unsorted input is sorted, n inferred
    np.testing.assert_array_equal(s.train, [0, 2])
    assert s.n_samples == 3 and s.train.dtype == np.int64


def test_check_against_labels() -> None:
    s = make_split(Y, "80/20")
    s.check(Y)
    with pytest.raises(ValueError, match="made for 400 samples"):
        s.check(Y[:-1])
    with pytest.raises(ValueError, match="digest"):
        s.check(np.roll(Y, 1))
    assert s.label_digest == label_digest(Y)


def test_save_load_roundtrip(tmp_path: Path) -> None:
    s = make_split(Y, "50/25/25", seed=5)
    p = s.save(tmp_path / "sub" / "split.json")
    assert p.is_file() and not list((tmp_path / "sub").glob(".*tmp*"))
    t = Split.load(p)
    assert t == s and t.label_digest == s.label_digest
    np.testing.assert_array_equal(t.val, s.val)
    d = json.loads(p.read_text())
    assert d["format"] == "wbc-classic-split" and d["scheme"] == "50/25/25" and d["seed"] == 5
    f = kfold_splits(Y, 3, seed=1)[2]
    f.save(tmp_path / "fold.json")
    assert Split.load(tmp_path / "fold.json").fold == 2


def test_load_errors(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        Split.load(tmp_path / "none.json")
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(ValueError, match="bad.json.*not valid JSON"):
        Split.load(tmp_path / "bad.json")
    (tmp_path / "other.json").write_text('{"a": 1}')
    with pytest.raises(ValueError, match="format marker"):
        Split.load(tmp_path / "other.json")
    d = make_split(Y, "80/20").to_dict()
    d["test"] = d["test"][:-1]
    (tmp_path / "broken.json").write_text(json.dumps(d))
    with pytest.raises(ValueError, match="broken.json.*covers"):
        Split.load(tmp_path / "broken.json")
    d = make_split(Y, "80/20").to_dict()
    del d["train"]
    (tmp_path / "nofield.json").write_text(json.dumps(d))
    with pytest.raises(ValueError, match="lacks field"):
        Split.load(tmp_path / "nofield.json")


def test_helpers() -> None:
    s = make_split(np.repeat([0, 1], 10), "50/25/25", seed=0)
    a = s.assignment()
    assert a.shape == (20,) and set(a) == {"train", "val", "test"}
    assert (a == "val").sum() == len(s.part("val"))
    with pytest.raises(KeyError):
        s.part("holdout")
    assert "train=10" in repr(s)


@pytest.mark.realdata
def test_real_pbc_split(pbc_dir: Path) -> None:
    from wbc_classic.data.datasets import load_class_folders

    ds = load_class_folders(pbc_dir)
    s = make_split(ds.y, "80/20", seed=0)
    assert s.sizes["train"] + s.sizes["test"] == 6849
    assert abs(s.sizes["test"] - 1370) <= 4
    counts = np.bincount(ds.y[s.test], minlength=8) / np.bincount(ds.y)
    assert np.all(np.abs(counts - 0.2) < 0.01)
