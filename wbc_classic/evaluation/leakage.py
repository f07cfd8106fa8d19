"""Train/test leakage checks: exact and near-duplicate images across the two sides of a split.

* **Exact duplicates**: equal SHA-256 of the decoded pixels (shape + RGB bytes), so a PNG and
  a BMP of the same pixels match, as do byte-identical files under different names.
* **Near duplicates**: perceptual hashes compared by Hamming distance.  The default is pHash
  (grey -> 32x32 area-average resize -> 2-D DCT-II -> top-left 8x8 low frequencies -> bit set where
  the coefficient exceeds the block median -> 64-bit integer); dHash (9x8 grey, sign of
  horizontal gradient) is available too.  A JPEG re-encode or a slight brightness change
  moves pHash by a few bits; different cells are typically 20+ bits apart.

All hashes are ``uint64``; distances are computed for all train x test pairs at once with
a vectorised XOR + popcount (``np.bitwise_count`` on NumPy >= 2, a byte lookup table
otherwise), in row chunks so memory stays bounded for large sets.
"""

from __future__ import annotations

import functools
import hashlib
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import cv2
import numpy as np
from scipy.fft import dctn

from wbc_classic.io.images import DEFAULT_MAX_PIXELS, ImageReadError, ReadFailure, read_image

__all__ = [
    "Fingerprints",
    "LeakageReport",
    "dhash",
    "fingerprint",
    "find_duplicates",
    "find_leakage",
    "hamming_distances",
    "phash",
    "pixel_sha256",
    "popcount64",
]

PathLike = str | os.PathLike[str]
HashName = Literal["phash", "dhash"]

_POP8 = np.array([bin(i).count("1") for i in range(256)], dtype=np.uint8)
_HAS_BITWISE_COUNT = hasattr(np, "bitwise_count")  # NumPy >= 2.0


# ----------------------------------------------------------------------------- hashing


def _to_grey(image: np.ndarray) -> np.ndarray:
    """(H, W) or (H, W, 3|4) array of any real dtype -> (H, W) float32 luma (ITU-R 601)."""
    a = np.asarray(image)
    if a.ndim == 3 and a.shape[2] == 1:
        a = a[..., 0]
    if a.ndim == 3 and a.shape[2] in (3, 4):
        if a.dtype == np.uint8:  # fast path (rounds luma to integers: irrelevant for hashes)
            return cv2.cvtColor(np.ascontiguousarray(a[..., :3]),
                                cv2.COLOR_RGB2GRAY).astype(np.float32)
        a = a[..., :3].astype(np.float32, copy=False)
        return a[..., 0] * 0.299 + a[..., 1] * 0.587 + a[..., 2] * 0.114
    if a.ndim == 2:
        return a.astype(np.float32, copy=False)
    raise ValueError(f"expected an image of shape (H, W) or (H, W, 3), got {a.shape}")


@functools.lru_cache(maxsize=64)
def _area_matrix(n_in: int, n_out: int) -> np.ndarray:
    """(n_out, n_in) float32 area-averaging weights (box filter of the exact footprint)."""
    scale = n_in / n_out
    edges = np.arange(n_out + 1, dtype=np.float64) * scale
    pix = np.arange(n_in, dtype=np.float64)
    lo = np.maximum(edges[:-1, None], pix[None, :])
    hi = np.minimum(edges[1:, None], pix[None, :] + 1.0)
    w = np.clip(hi - lo, 0.0, None) / scale
    w.flags.writeable = False
    return w.astype(np.float32)


def _resize_grey(grey: np.ndarray, width: int, height: int) -> np.ndarray:
    """Area-average resize of a (H, W) array to (height, width) float32.

    Written as two small matrix products (exact box-filter footprints), which is both
    anti-aliased and faster than a generic resampler for thumbnail sizes.
    """
    if grey.shape[0] < 1 or grey.shape[1] < 1:
        raise ValueError("cannot hash an empty image")
    g = np.asarray(grey, dtype=np.float32)
    return _area_matrix(g.shape[0], height) @ g @ _area_matrix(g.shape[1], width).T


def _pack64(bits: np.ndarray) -> np.ndarray:
    """(N, 64) bool -> (N,) uint64, first bit most significant."""
    packed = np.packbits(bits.reshape(len(bits), 64).astype(np.uint8), axis=1)
    return packed.view(">u8").reshape(-1).astype(np.uint64)


def _phash_grey32(stack: np.ndarray) -> np.ndarray:
    """(N, 32, 32) float grey -> (N,) uint64 pHash."""
    coeffs = dctn(stack.astype(np.float64, copy=False), type=2, norm="ortho", axes=(1, 2))
    low = coeffs[:, :8, :8].reshape(len(stack), 64)
    med = np.median(low, axis=1, keepdims=True)
    return _pack64(low > med)


def phash(image: np.ndarray) -> np.uint64:
    """64-bit DCT perceptual hash of one image.

    Parameters
    ----------
    image : ndarray, shape (H, W) or (H, W, 3)
        Any real dtype (the hash is scale-invariant in intensity).

    Returns
    -------
    numpy.uint64
    """
    return _phash_grey32(_resize_grey(_to_grey(image), 32, 32)[None])[0]


def dhash(image: np.ndarray) -> np.uint64:
    """64-bit difference hash: sign of horizontal gradients of a 9x8 grey thumbnail.

    Parameters
    ----------
    image : ndarray, shape (H, W) or (H, W, 3)

    Returns
    -------
    numpy.uint64
    """
    g = _resize_grey(_to_grey(image), 9, 8)
    return _pack64((g[:, 1:] > g[:, :-1])[None])[0]


def pixel_sha256(image: np.ndarray) -> str:
    """SHA-256 of an array's shape, dtype and C-order bytes (exact-duplicate key)."""
    a = np.ascontiguousarray(image)
    h = hashlib.sha256(f"{a.shape}|{a.dtype.str}|".encode())
    h.update(a.tobytes())
    return h.hexdigest()


def popcount64(x: np.ndarray) -> np.ndarray:
    """Number of set bits of each element of a uint64 array (same shape, uint8)."""
    x = np.asarray(x, dtype=np.uint64)
    if _HAS_BITWISE_COUNT:
        return np.bitwise_count(x).astype(np.uint8, copy=False)
    b = np.ascontiguousarray(x).view(np.uint8).reshape(*x.shape, 8)
    return _POP8[b].sum(axis=-1, dtype=np.uint8)


def hamming_distances(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """All pairwise Hamming distances between two sets of 64-bit hashes.

    Parameters
    ----------
    a : ndarray of uint64, shape (n,)
    b : ndarray of uint64, shape (m,)

    Returns
    -------
    ndarray of uint8, shape (n, m)
    """
    a = np.asarray(a, dtype=np.uint64).reshape(-1)
    b = np.asarray(b, dtype=np.uint64).reshape(-1)
    return popcount64(a[:, None] ^ b[None, :])


def _close_pairs(a: np.ndarray, b: np.ndarray, max_distance: int,
                 chunk_elems: int = 1 << 23) -> np.ndarray:
    """(k, 3) int64 rows ``(i, j, d)`` with ``d = hamming(a[i], b[j]) <= max_distance``."""
    a = np.asarray(a, dtype=np.uint64)
    b = np.asarray(b, dtype=np.uint64)
    out = []
    if len(a) == 0 or len(b) == 0:
        return np.zeros((0, 3), dtype=np.int64)
    rows = max(1, chunk_elems // len(b))
    for start in range(0, len(a), rows):
        d = hamming_distances(a[start:start + rows], b)
        i, j = np.nonzero(d <= max_distance)
        if i.size:
            out.append(np.stack([i + start, j, d[i, j]], axis=1).astype(np.int64))
    return np.concatenate(out) if out else np.zeros((0, 3), dtype=np.int64)


# ----------------------------------------------------------------------------- fingerprints


@dataclass
class Fingerprints:
    """Hashes of a collection of images.

    Attributes
    ----------
    sha : list of str or None, length N
        :func:`pixel_sha256` per item (None when the item could not be read).
    phash, dhash : ndarray of uint64, shape (N,)
        Perceptual hashes (0 for unreadable items; use ``ok``).
    ok : ndarray of bool, shape (N,)
        Which items were read.
    names : list of str, length N
        File paths, or ``"#i"`` for arrays.
    failures : list of ReadFailure
        Unreadable items (never dropped silently).
    """

    sha: list[str | None]
    phash: np.ndarray
    dhash: np.ndarray
    ok: np.ndarray
    names: list[str]
    failures: list[ReadFailure] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.sha)


def _hash_one(image: np.ndarray) -> tuple[str, np.uint64, np.uint64]:
    grey = _to_grey(image)
    ph = _phash_grey32(_resize_grey(grey, 32, 32)[None])[0]
    g9 = _resize_grey(grey, 9, 8)
    dh = _pack64((g9[:, 1:] > g9[:, :-1])[None])[0]
    return pixel_sha256(image), ph, dh


def _hash_items(items: Sequence[Any], is_path: bool, max_pixels: int | None
                ) -> list[tuple[str, np.uint64, np.uint64] | str]:
    out: list[tuple[str, np.uint64, np.uint64] | str] = []
    for it in items:
        try:
            img = read_image(it, max_pixels=max_pixels) if is_path else np.asarray(it)
            out.append(_hash_one(img))
        except ImageReadError as exc:
            out.append(exc.reason)
        except ValueError as exc:  # bad array shape
            out.append(str(exc))
    return out


def _as_items(items: Any) -> tuple[list[Any], bool]:
    """Normalise input: paths (incl. an ImageSet) or images -> (list, is_path)."""
    if hasattr(items, "paths") and not isinstance(items, np.ndarray):
        return list(items.paths), True
    if isinstance(items, np.ndarray):
        if items.ndim == 2 and items.dtype.kind in "iuf":  # a single grey image is ambiguous
            raise ValueError("got a 2-D array: pass a stack (N, H, W[, 3]) or a list of images")
        if items.dtype.kind in "iufb":
            return list(items), False
        return [Path(p) for p in items.tolist()], True
    items = list(items)
    if items and isinstance(items[0], np.ndarray) and items[0].dtype.kind in "iufb":
        return items, False
    return [Path(p) for p in items], True



def _hash_all(seq: Sequence[Any], is_path: bool, max_pixels: int | None,
              n_workers: int) -> list:
    """Hash every item, in ``n_workers`` threads when there is more than one."""
    n = len(seq)
    if n_workers > 1 and n > 1:
        from joblib import Parallel, delayed

        n_chunks = min(n, n_workers * 8)
        bounds = np.linspace(0, n, n_chunks + 1).astype(int)
        chunks = Parallel(n_jobs=n_workers, prefer="threads")(
            delayed(_hash_items)(seq[bounds[k]:bounds[k + 1]], is_path, max_pixels)
            for k in range(n_chunks)
        )
        return [r for c in chunks for r in c]
    return _hash_items(seq, is_path, max_pixels)


def fingerprint(items: Any, *, n_jobs: int = 1,
                max_pixels: int | None = DEFAULT_MAX_PIXELS) -> Fingerprints:
    """Hash a collection of images (file paths, an ImageSet, a stack or list of arrays).

    Parameters
    ----------
    items : sequence of paths, ImageSet, ndarray (N, H, W[, 3]) or list of ndarray
    n_jobs : int, optional
        Threads for reading/hashing files (Pillow and OpenCV release the GIL while
        decoding and resizing).  ``-1`` uses all cores.
    max_pixels : int or None, optional
        Passed to :func:`wbc_classic.io.images.read_image`.

    Returns
    -------
    Fingerprints
    """
    seq, is_path = _as_items(items)
    n = len(seq)
    names = [str(p) for p in seq] if is_path else [f"#{i}" for i in range(n)]
    n_workers = (os.cpu_count() or 1) if n_jobs is None or n_jobs < 0 else max(1, n_jobs)
    # Hashing does tiny DCTs per image: a multi-threaded BLAS only spins on them (measured
    # 30x slower on a busy 2-core machine), so keep it on one thread here.
    from threadpoolctl import threadpool_limits

    with threadpool_limits(1):
        results = _hash_all(seq, is_path, max_pixels, n_workers)
    sha: list[str | None] = []
    ph = np.zeros(n, dtype=np.uint64)
    dh = np.zeros(n, dtype=np.uint64)
    ok = np.zeros(n, dtype=bool)
    failures: list[ReadFailure] = []
    for i, r in enumerate(results):
        if isinstance(r, str):
            sha.append(None)
            failures.append(ReadFailure(i, Path(names[i]), r))
        else:
            sha.append(r[0])
            ph[i], dh[i], ok[i] = r[1], r[2], True
    return Fingerprints(sha, ph, dh, ok, names, failures)


# ----------------------------------------------------------------------------- reports


@dataclass
class LeakageReport:
    """Duplicates between a train set and a test set (or within one set).

    Attributes
    ----------
    n_train, n_test : int
        Sizes of the two inputs (for :func:`find_duplicates` both are the set size).
    exact_pairs : ndarray of int64, shape (k, 2)
        ``(train_index, test_index)`` with identical decoded pixels.
    near_pairs : ndarray of int64, shape (m, 3)
        ``(train_index, test_index, distance)`` with hash distance <= ``max_distance``,
        excluding exact pairs; sorted by distance then indices.
    max_distance : int
    hash_name : str
        ``"phash"`` or ``"dhash"``.
    seconds : float
        Wall time of the check (hashing included).
    train_names, test_names : list of str
        Paths (or ``"#i"``) of the inputs, for messages.
    train_failures, test_failures : list of ReadFailure
        Inputs that could not be read (they take part in no pair).
    """

    n_train: int
    n_test: int
    exact_pairs: np.ndarray
    near_pairs: np.ndarray
    max_distance: int
    hash_name: str
    seconds: float = 0.0
    train_names: list[str] = field(default_factory=list, repr=False)
    test_names: list[str] = field(default_factory=list, repr=False)
    train_failures: list[ReadFailure] = field(default_factory=list)
    test_failures: list[ReadFailure] = field(default_factory=list)

    @property
    def n_exact(self) -> int:
        """Number of exact-duplicate pairs."""
        return len(self.exact_pairs)

    @property
    def n_near(self) -> int:
        """Number of near-duplicate (non-exact) pairs."""
        return len(self.near_pairs)

    @property
    def leaked_test(self) -> np.ndarray:
        """Sorted int64 indices of test items with at least one exact or near match."""
        return np.unique(np.concatenate([self.exact_pairs[:, 1], self.near_pairs[:, 1]]))

    @property
    def n_leaked_test(self) -> int:
        """Number of test items with a match in train."""
        return len(self.leaked_test)

    @property
    def is_clean(self) -> bool:
        """True when no pair was found."""
        return self.n_exact == 0 and self.n_near == 0

    def summary(self, max_listed: int = 5) -> str:
        """Human-readable multi-line summary with a few example pairs."""
        lines = [
            f"leakage check ({self.hash_name}, Hamming <= {self.max_distance}/64): "
            f"{self.n_train} train x {self.n_test} test images in {self.seconds:.2f} s",
            f"  exact duplicates: {self.n_exact} pair(s); near duplicates: {self.n_near} "
            f"pair(s); test images with a match: {self.n_leaked_test} "
            f"({100.0 * self.n_leaked_test / max(self.n_test, 1):.2f}%)",
        ]

        def name(names: list[str], i: int) -> str:
            return names[i] if i < len(names) else f"#{i}"

        for i, j in self.exact_pairs[:max_listed]:
            lines.append(f"  exact: {name(self.train_names, i)} == {name(self.test_names, j)}")
        for i, j, d in self.near_pairs[:max_listed]:
            lines.append(f"  near (d={d}): {name(self.train_names, i)} ~ "
                         f"{name(self.test_names, j)}")
        n_fail = len(self.train_failures) + len(self.test_failures)
        if n_fail:
            lines.append(f"  unreadable: {len(self.train_failures)} train, "
                         f"{len(self.test_failures)} test")
            for f in (self.train_failures + self.test_failures)[:max_listed]:
                lines.append(f"    {f}")
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.summary()

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready summary (pairs as lists, failures as strings)."""
        return {
            "n_train": self.n_train, "n_test": self.n_test, "hash": self.hash_name,
            "max_distance": self.max_distance, "seconds": self.seconds,
            "n_exact": self.n_exact, "n_near": self.n_near,
            "n_leaked_test": self.n_leaked_test,
            "exact_pairs": self.exact_pairs.tolist(), "near_pairs": self.near_pairs.tolist(),
            "train_failures": [str(f) for f in self.train_failures],
            "test_failures": [str(f) for f in self.test_failures],
        }


def _check_args(max_distance: int, hash_name: str) -> None:
    if hash_name not in ("phash", "dhash"):
        raise ValueError(f"hash must be 'phash' or 'dhash', got {hash_name!r}")
    if not 0 <= int(max_distance) <= 64:
        raise ValueError(f"max_distance must lie in [0, 64], got {max_distance}")


def _sort_pairs(p: np.ndarray, cols: int) -> np.ndarray:
    if len(p) == 0:
        return np.zeros((0, cols), dtype=np.int64)
    keys = tuple(p[:, c] for c in reversed(range(cols)))
    return p[np.lexsort(keys)] if cols == 2 else p[np.lexsort((p[:, 1], p[:, 0], p[:, 2]))]


def find_leakage(
    train: Any,
    test: Any,
    *,
    max_distance: int = 4,
    n_jobs: int = 1,
    hash: HashName = "phash",  # noqa: A002 - mirrors the report field
    max_pixels: int | None = DEFAULT_MAX_PIXELS,
) -> LeakageReport:
    """Find test images that duplicate (exactly or nearly) a train image.

    Parameters
    ----------
    train, test : sequence of paths, ImageSet, ndarray (N, H, W[, 3]) or list of ndarray
        The two sides of a split.  Files that cannot be read are reported in
        ``train_failures``/``test_failures`` and otherwise ignored.
    max_distance : int, optional
        Largest Hamming distance (of 64 bits) counted as a near duplicate.  Default 4.
    n_jobs : int, optional
        Threads used to read and hash files.
    hash : {"phash", "dhash"}, optional
        Perceptual hash for near duplicates.
    max_pixels : int or None, optional
        Passed to :func:`wbc_classic.io.images.read_image`.

    Returns
    -------
    LeakageReport
    """
    _check_args(max_distance, hash)
    t0 = time.perf_counter()
    fa = fingerprint(train, n_jobs=n_jobs, max_pixels=max_pixels)
    fb = fingerprint(test, n_jobs=n_jobs, max_pixels=max_pixels)

    by_sha: dict[str, list[int]] = {}
    for i, s in enumerate(fa.sha):
        if s is not None:
            by_sha.setdefault(s, []).append(i)
    exact = [(i, j) for j, s in enumerate(fb.sha) if s is not None for i in by_sha.get(s, ())]
    exact_arr = _sort_pairs(np.asarray(exact, dtype=np.int64).reshape(-1, 2), 2)

    ia, ib = np.flatnonzero(fa.ok), np.flatnonzero(fb.ok)
    ha = getattr(fa, hash)[ia]
    hb = getattr(fb, hash)[ib]
    close = _close_pairs(ha, hb, int(max_distance))
    if len(close):
        close[:, 0], close[:, 1] = ia[close[:, 0]], ib[close[:, 1]]
        if len(exact_arr):
            ex = {(int(i), int(j)) for i, j in exact_arr}
            keep = np.array([(int(i), int(j)) not in ex for i, j, _ in close], dtype=bool)
            close = close[keep]
    near_arr = _sort_pairs(close, 3)
    return LeakageReport(len(fa), len(fb), exact_arr, near_arr, int(max_distance), hash,
                         time.perf_counter() - t0, fa.names, fb.names, fa.failures,
                         fb.failures)


def find_duplicates(
    items: Any,
    *,
    max_distance: int = 4,
    n_jobs: int = 1,
    hash: HashName = "phash",  # noqa: A002
    max_pixels: int | None = DEFAULT_MAX_PIXELS,
) -> LeakageReport:
    """Find exact and near duplicates *within* one collection (pairs ``i < j``).

    Same parameters as :func:`find_leakage`; in the report both "train" and "test" refer to
    ``items`` and every pair has ``i < j``.
    """
    _check_args(max_distance, hash)
    t0 = time.perf_counter()
    f = fingerprint(items, n_jobs=n_jobs, max_pixels=max_pixels)
    by_sha: dict[str, list[int]] = {}
    for i, s in enumerate(f.sha):
        if s is not None:
            by_sha.setdefault(s, []).append(i)
    exact = [(a, b) for group in by_sha.values() for k, a in enumerate(group)
             for b in group[k + 1:]]
    exact_arr = _sort_pairs(np.asarray(exact, dtype=np.int64).reshape(-1, 2), 2)
    idx = np.flatnonzero(f.ok)
    h = getattr(f, hash)[idx]
    close = _close_pairs(h, h, int(max_distance))
    close = close[close[:, 0] < close[:, 1]]
    if len(close):
        close[:, 0], close[:, 1] = idx[close[:, 0]], idx[close[:, 1]]
        if len(exact_arr):
            ex = {(int(a), int(b)) for a, b in exact_arr}
            close = close[np.array([(int(a), int(b)) not in ex for a, b, _ in close],
                                   dtype=bool)]
    return LeakageReport(len(f), len(f), exact_arr, _sort_pairs(close, 3), int(max_distance),
                         hash, time.perf_counter() - t0, f.names, f.names, f.failures, [])
