"""Deterministic stratified splits shared by the classical and the deep model families.

A :class:`Split` is made once from the labels and a seed, saved as JSON, and used by both
families, so they are trained and scored on exactly the same files.

Schemes
-------
* ``"a/b"``: train/test percentages (``"80/20"``, ``"90/10"``), empty validation set;
* ``"a/b/c"``: train/val/test percentages (``"50/25/25"``, ``"70/15/15"``);
  the numbers must sum to 100 (decimals allowed, ``"87.5/12.5"``);
* ``"kfold:k"``: stratified k-fold; fold ``i`` tests on the i-th part and trains on the rest
  (:func:`kfold_splits` gives all folds, :func:`make_split` one of them).

Determinism: all randomness comes from one ``numpy.random.default_rng(seed)``
(no global state); classes are processed in sorted order and per-class counts use exact
rational arithmetic, so the same labels and seed give the same split on every run and
machine.  NumPy does not promise identical random streams across *major* versions, so keep
the saved JSON as the reference copy of a split.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from wbc_classic.io.atomic import atomic_write_text

__all__ = [
    "ParsedScheme",
    "Split",
    "kfold_splits",
    "label_digest",
    "make_split",
    "make_splits",
    "parse_scheme",
    "scheme_argument",
]

PathLike = str | os.PathLike[str]
_FORMAT = "wbc-classic-split"
_VERSION = 1
_PARTS = ("train", "val", "test")


class ParsedScheme(NamedTuple):
    """A parsed split scheme.

    Attributes
    ----------
    kind : {"holdout", "kfold"}
    fractions : tuple of Fraction
        ``(train, val, test)`` shares summing to 1 (holdout); ``(k-1, 0, 1)/k`` for k-fold.
    k : int or None
        Number of folds (k-fold only).
    text : str
        The canonical scheme string (``"80/20"``, ``"50/25/25"``, ``"kfold:5"``).
    """

    kind: str
    fractions: tuple[Fraction, Fraction, Fraction]
    k: int | None
    text: str


def parse_scheme(scheme: str) -> ParsedScheme:
    """Parse ``"80/20"``, ``"50/25/25"``, ``"kfold:5"`` (also ``"5-fold"``, ``"kfold5"``).

    Raises
    ------
    ValueError
        Unknown syntax, numbers not summing to 100, a non-positive train or test share, or
        k < 2.
    """
    if not isinstance(scheme, str):
        raise TypeError(f"scheme must be a string, got {type(scheme).__name__}")
    s = scheme.strip().lower().replace(" ", "")
    m = re.fullmatch(r"(?:kfold[:=_-]?|k=)(\d+)|(\d+)-?fold", s)
    if m:
        k = int(m.group(1) or m.group(2))
        if k < 2:
            raise ValueError(f"k-fold needs k >= 2, got {scheme!r}")
        return ParsedScheme("kfold", (Fraction(k - 1, k), Fraction(0), Fraction(1, k)), k,
                            f"kfold:{k}")
    parts = s.split("/")
    if len(parts) not in (2, 3) or not all(re.fullmatch(r"\d+(\.\d+)?", p) for p in parts):
        raise ValueError(f"unknown split scheme {scheme!r}: use 'a/b' (train/test), 'a/b/c' "
                         f"(train/val/test) percentages summing to 100, or 'kfold:k'")
    nums = [Fraction(p) for p in parts]
    if sum(nums) != 100:
        raise ValueError(f"split scheme {scheme!r} sums to {float(sum(nums)):g}, not 100")
    if len(nums) == 2:
        nums = [nums[0], Fraction(0), nums[1]]
    if nums[0] <= 0 or nums[2] <= 0:
        raise ValueError(f"split scheme {scheme!r} needs positive train and test shares")
    text = "/".join(_fmt_num(n) for n in (nums if len(parts) == 3 else [nums[0], nums[2]]))
    return ParsedScheme("holdout", tuple(n / 100 for n in nums), None, text)  # type: ignore


def scheme_argument(text: str) -> str:
    """An argparse ``type=`` for a split scheme option (``--test-split``, ``--split``): the
    text when :func:`parse_scheme` accepts it, else argparse's one-line error (exit code 2)."""
    import argparse

    try:
        parse_scheme(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return text


def _fmt_num(x: Fraction) -> str:
    return str(int(x)) if x.denominator == 1 else f"{float(x):g}"


def _as_labels(y: Sequence[Any] | np.ndarray) -> np.ndarray:
    """Any 1-D label array -> int64 codes 0..C-1 in sorted label order."""
    arr = np.asarray(y)
    if arr.ndim == 2 and arr.shape[1] == 1:
        arr = arr[:, 0]
    if arr.ndim != 1:
        raise ValueError(f"y must be 1-D, got shape {arr.shape}")
    if arr.size == 0:
        raise ValueError("y is empty: nothing to split")
    _, codes = np.unique(arr, return_inverse=True)
    return codes.reshape(-1).astype(np.int64)


def label_digest(y: Sequence[Any] | np.ndarray) -> str:
    """Short SHA-256 digest of the label sequence (as int64 codes), stored in a Split.

    Lets :meth:`Split.check` notice a split being applied to a different or re-ordered
    data set.
    """
    codes = _as_labels(y)
    return hashlib.sha256(codes.astype("<i8").tobytes()).hexdigest()[:16]


def _freeze(a: Any, name: str) -> np.ndarray:
    arr = np.asarray(a if a is not None else [], dtype=np.int64).reshape(-1)
    arr = np.array(arr, dtype=np.int64, copy=True)  # own the memory before freezing it
    if arr.size and np.any(arr[1:] <= arr[:-1]):
        if np.unique(arr).size != arr.size:
            raise ValueError(f"Split.{name} holds duplicate indices")
        arr.sort()
    arr.flags.writeable = False
    return arr


@dataclass(frozen=True, eq=False)
class Split:
    """Train/validation/test indices into one data set, made once and shared.

    Attributes
    ----------
    train, val, test : ndarray of int64
        Sorted, disjoint, read-only index arrays that together cover ``range(n_samples)``.
        ``val`` is empty for two-way schemes and k-fold.
    seed : int or None
        The seed the split was made with.
    scheme : str
        Canonical scheme string (``"80/20"``, ``"50/25/25"``, ``"kfold:5"``).
    n_samples : int
        Size of the data set (``-1`` at construction means "infer from the indices").
    fold : int or None
        Fold number for k-fold splits.
    label_digest : str or None
        :func:`label_digest` of the labels the split was made from.
    """

    train: np.ndarray
    val: np.ndarray
    test: np.ndarray
    seed: int | None
    scheme: str
    n_samples: int = -1
    fold: int | None = None
    label_digest: str | None = None

    def __post_init__(self) -> None:
        for name in _PARTS:
            object.__setattr__(self, name, _freeze(getattr(self, name), name))
        n = int(self.n_samples)
        if n < 0:
            n = sum(len(getattr(self, p)) for p in _PARTS)
        object.__setattr__(self, "n_samples", n)
        self.check()

    # ------------------------------------------------------------------ checks
    def check(self, y: Sequence[Any] | np.ndarray | None = None) -> None:
        """Verify the indices are in range, disjoint and cover ``range(n_samples)``.

        Parameters
        ----------
        y : array-like, optional
            Labels of the data set the split is about to be used with: also checks its
            length and (when stored) its :func:`label_digest`.

        Raises
        ------
        ValueError
            With a message saying which property is violated.
        """
        n = self.n_samples
        allidx = np.concatenate([self.train, self.val, self.test])
        if allidx.size and (allidx.min() < 0 or allidx.max() >= n):
            raise ValueError(f"split indices out of range [0, {n})")
        if np.unique(allidx).size != allidx.size:
            pairs = [(a, b) for a, b in (("train", "val"), ("train", "test"), ("val", "test"))
                     if np.intersect1d(getattr(self, a), getattr(self, b)).size]
            raise ValueError(f"split parts overlap: {pairs}")
        if allidx.size != n:
            raise ValueError(f"split covers {allidx.size} of {n} samples")
        if len(self.train) == 0 or len(self.test) == 0:
            raise ValueError("split has an empty train or test part")
        if y is not None:
            n_y = len(y)
            if n_y != n:
                raise ValueError(f"split was made for {n} samples, the data set has {n_y}")
            if self.label_digest is not None and label_digest(y) != self.label_digest:
                raise ValueError("split was made for different labels (label digest "
                                 "mismatch): the data set changed or is ordered differently")

    # ------------------------------------------------------------------ helpers
    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Split):
            return NotImplemented
        return (self.scheme == other.scheme and self.seed == other.seed
                and self.n_samples == other.n_samples and self.fold == other.fold
                and all(np.array_equal(getattr(self, p), getattr(other, p)) for p in _PARTS))

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        fold = f", fold={self.fold}" if self.fold is not None else ""
        return (f"Split(scheme={self.scheme!r}, seed={self.seed}{fold}, n={self.n_samples}: "
                f"train={len(self.train)}, val={len(self.val)}, test={len(self.test)})")

    @property
    def sizes(self) -> dict[str, int]:
        """``{"train": n, "val": n, "test": n}``."""
        return {p: len(getattr(self, p)) for p in _PARTS}

    def part(self, name: str) -> np.ndarray:
        """Indices of ``"train"``, ``"val"`` or ``"test"``."""
        if name not in _PARTS:
            raise KeyError(f"unknown split part {name!r}; use one of {_PARTS}")
        return getattr(self, name)

    def assignment(self) -> np.ndarray:
        """Per-sample part name: ndarray of str, shape (n_samples,)."""
        out = np.empty(self.n_samples, dtype="<U5")
        for p in _PARTS:
            out[getattr(self, p)] = p
        return out

    # ------------------------------------------------------------------ persistence
    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict (index arrays as lists of int)."""
        return {
            "format": _FORMAT, "version": _VERSION, "scheme": self.scheme, "seed": self.seed,
            "n_samples": self.n_samples, "fold": self.fold, "label_digest": self.label_digest,
            **{p: getattr(self, p).tolist() for p in _PARTS},
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Split:
        """Inverse of :meth:`to_dict` (validates the content)."""
        if not isinstance(d, dict) or d.get("format") != _FORMAT:
            raise ValueError("not a wbc-classic split (missing format marker)")
        if int(d.get("version", 0)) > _VERSION:
            raise ValueError(f"split file version {d.get('version')} is newer than supported "
                             f"({_VERSION})")
        try:
            return cls(train=np.asarray(d["train"], dtype=np.int64),
                       val=np.asarray(d.get("val", []), dtype=np.int64),
                       test=np.asarray(d["test"], dtype=np.int64),
                       seed=None if d.get("seed") is None else int(d["seed"]),
                       scheme=str(d["scheme"]), n_samples=int(d["n_samples"]),
                       fold=None if d.get("fold") is None else int(d["fold"]),
                       label_digest=d.get("label_digest"))
        except KeyError as exc:
            raise ValueError(f"split dict lacks field {exc}") from None

    def save(self, path: PathLike) -> Path:
        """Write the split as JSON, atomically.  Returns the path."""
        p = Path(path)
        atomic_write_text(p, json.dumps(self.to_dict(), separators=(",", ":")) + "\n")
        return p

    @classmethod
    def load(cls, path: PathLike) -> Split:
        """Read a split written by :meth:`save`.

        Raises
        ------
        FileNotFoundError
            The file does not exist.
        ValueError
            The file is not a valid split (message names the file).
        """
        p = Path(path)
        try:
            d = json.loads(p.read_text(encoding="utf-8"))
        except json.JSONDecodeError as exc:
            raise ValueError(f"{str(p)!r} is not valid JSON: {exc}") from None
        try:
            return cls.from_dict(d)
        except (ValueError, TypeError) as exc:
            raise ValueError(f"{str(p)!r}: {exc}") from None


def _py(x: Any) -> Any:
    """NumPy scalar -> Python scalar (for readable messages)."""
    return x.item() if isinstance(x, np.generic) else x


def _largest_remainder(n: int, fractions: Sequence[Fraction],
                       excess: Sequence[Fraction] | None = None) -> list[int]:
    """Integer counts summing to ``n``, proportional to ``fractions`` (Hamilton's method).

    Equal remainders go first to the part with the smallest running ``excess`` (how far
    earlier classes already pushed that part above its ideal size), then to the earlier part,
    so ties do not pile up in one part across classes.
    """
    ideal = [n * f for f in fractions]
    counts = [int(q.numerator // q.denominator) for q in ideal]
    rest = n - sum(counts)
    ex = list(excess) if excess is not None else [Fraction(0)] * len(fractions)
    order = sorted(range(len(fractions)), key=lambda i: (-(ideal[i] - counts[i]), ex[i], i))
    for i in order[:rest]:
        counts[i] += 1
    return counts


def _holdout_counts(n_c: int, fr: Sequence[Fraction], cname: Any,
                    excess: Sequence[Fraction]) -> list[int]:
    """Per-class part sizes with at least one member in each part of positive share."""
    needed = [i for i, f in enumerate(fr) if f > 0]
    if n_c < len(needed):
        raise ValueError(
            f"class {_py(cname)!r} has only {n_c} member(s); a stratified "
            f"{'three' if len(needed) == 3 else 'two'}-way split needs at least {len(needed)} "
            f"per class (drop or merge the class, or pass stratify=False)"
        )
    counts = _largest_remainder(n_c, fr, excess)
    for i in needed:
        while counts[i] == 0:
            donor = max(needed, key=lambda j: (counts[j], -j))
            counts[donor] -= 1
            counts[i] += 1
    return counts


def make_split(
    y: Sequence[Any] | np.ndarray,
    scheme: str = "80/20",
    seed: int = 0,
    *,
    fold: int = 0,
    stratify: bool = True,
) -> Split:
    """Make a deterministic (stratified) split of ``len(y)`` samples.

    Parameters
    ----------
    y : array-like, shape (N,)
        Class labels (ints or strings); only used for stratification.
    scheme : str, optional
        ``"80/20"`` (default), ``"90/10"``, ``"50/25/25"``, any ``"a/b"``/``"a/b/c"``
        percentages summing to 100, or ``"kfold:k"`` (then ``fold`` picks the fold).
    seed : int, optional
        Seed of the ``numpy.random.default_rng`` that shuffles each class.
    fold : int, optional
        Fold index for ``"kfold:k"`` schemes.
    stratify : bool, optional
        Keep class proportions in every part (default).  With ``False`` all samples are
        shuffled together.

    Returns
    -------
    Split
        Per class, the shares follow the scheme with the largest-remainder rounding, and
        every part with a positive share receives at least one member of every class.

    Raises
    ------
    ValueError
        Bad scheme, or a class too small for a stratified split (fewer members than parts).
    """
    parsed = parse_scheme(scheme)
    if parsed.kind == "kfold":
        folds = kfold_splits(y, k=parsed.k, seed=seed, stratify=stratify)  # type: ignore
        if not 0 <= fold < len(folds):
            raise ValueError(f"fold must lie in [0, {len(folds)}), got {fold}")
        return folds[fold]
    codes = _as_labels(y)
    n = len(codes)
    seed = _check_seed(seed)
    rng = np.random.default_rng(seed)
    parts: list[list[np.ndarray]] = [[], [], []]
    groups = ([np.flatnonzero(codes == c) for c in range(codes.max() + 1)] if stratify
              else [np.arange(n, dtype=np.int64)])
    raw = np.unique(np.asarray(y).reshape(n, -1)[:, 0]) if stratify else ["all"]
    excess = [Fraction(0)] * 3
    for cname, idx in zip(raw, groups, strict=True):
        counts = _holdout_counts(len(idx), parsed.fractions, cname, excess)
        excess = [e + c - len(idx) * f for e, c, f in zip(excess, counts, parsed.fractions,
                                                          strict=True)]
        perm = rng.permutation(idx)
        bounds = np.cumsum([0, *counts])
        for k in range(3):
            parts[k].append(perm[bounds[k]:bounds[k + 1]])
    arrays = [np.sort(np.concatenate(p)) if p else np.zeros(0, np.int64) for p in parts]
    return Split(arrays[0], arrays[1], arrays[2], seed, parsed.text, n, None, label_digest(y))


def _check_seed(seed: Any) -> int:
    if isinstance(seed, bool) or not isinstance(seed, int | np.integer) or seed < 0:
        raise ValueError(f"seed must be a non-negative int, got {seed!r}")
    return int(seed)


def kfold_splits(
    y: Sequence[Any] | np.ndarray, k: int = 5, seed: int = 0, *, stratify: bool = True
) -> list[Split]:
    """Stratified k-fold: ``k`` splits whose test parts partition the data.

    Each class is shuffled (one ``default_rng(seed)``, classes in sorted order) and dealt
    round-robin into the folds, continuing where the previous class stopped, so fold sizes
    differ by at most one and class proportions are as even as possible.

    Parameters
    ----------
    y : array-like, shape (N,)
    k : int, optional
        Number of folds (>= 2, <= N).
    seed : int, optional
    stratify : bool, optional

    Returns
    -------
    list of Split
        ``k`` splits, scheme ``"kfold:k"``, ``fold`` 0..k-1, empty ``val``.

    Warns
    -----
    UserWarning
        When a class has fewer than ``k`` members (some test folds then lack it).
    """
    if isinstance(k, bool) or not isinstance(k, int | np.integer) or k < 2:
        raise ValueError(f"k must be an int >= 2, got {k!r}")
    k = int(k)
    codes = _as_labels(y)
    n = len(codes)
    if n < k:
        raise ValueError(f"cannot make {k} folds from {n} samples")
    seed = _check_seed(seed)
    rng = np.random.default_rng(seed)
    fold_of = np.empty(n, dtype=np.int64)
    groups = ([np.flatnonzero(codes == c) for c in range(codes.max() + 1)] if stratify
              else [np.arange(n, dtype=np.int64)])
    raw = np.unique(np.asarray(y).reshape(n, -1)[:, 0]) if stratify else ["all"]
    small = [(_py(c), len(g)) for c, g in zip(raw, groups, strict=True) if len(g) < k]
    if small:
        warnings.warn(f"classes with fewer members than k={k}: {small}; some test folds will "
                      f"not contain them", UserWarning, stacklevel=2)
    offset = 0
    for idx in groups:
        perm = rng.permutation(idx)
        fold_of[perm] = (offset + np.arange(len(perm))) % k
        offset = (offset + len(perm)) % k
    digest = label_digest(y)
    out = []
    for f in range(k):
        test = np.flatnonzero(fold_of == f)
        train = np.flatnonzero(fold_of != f)
        out.append(Split(train, np.zeros(0, np.int64), test, seed, f"kfold:{k}", n, f, digest))
    return out


def make_splits(y: Sequence[Any] | np.ndarray, scheme: str = "80/20", seed: int = 0, *,
                stratify: bool = True) -> list[Split]:
    """All splits of a scheme: the ``k`` folds of ``"kfold:k"``, else a list of one Split."""
    parsed = parse_scheme(scheme)
    if parsed.kind == "kfold":
        return kfold_splits(y, k=parsed.k, seed=seed, stratify=stratify)  # type: ignore
    return [make_split(y, scheme, seed, stratify=stratify)]
