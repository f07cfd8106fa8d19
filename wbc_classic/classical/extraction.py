"""Dataset-level feature extraction: read -> segment -> extract, in parallel, cached on disk.

:func:`extract_features` turns a list of image files (or arrays) into a float32 feature matrix.
For each item it

1. computes the content key (SHA-256 of the file's bytes, or of the array; for an augmented
   copy, of the source, the augmentation's settings and the seed),
2. looks for a cached row in ``cache_dir`` under a key made of that content hash, the
   segmenter's settings, the extractor's settings and the package version,
3. otherwise reads the image (:func:`wbc_classic.io.images.read_image`), segments it (any callable
   ``image -> Segmentation``, default :func:`segmentation.segment`), extracts the features
   (:class:`features.FeatureExtractor`) and writes the row to the cache atomically
   (:mod:`wbc_classic.io.atomic`): a killed run loses nothing, a second run only reads the cache.

A file that cannot be read, or on which the segmenter or the extractor raises, does not stop
the batch: its row is left at zeros, ``ok`` is False for it and it is listed in ``failures``
with the stage and the reason. Nothing is dropped silently. A cell the segmenter does not find
(``found=False``) is not a failure: its features are zeros with ``segmentation_found = 0``.

Cache format
------------
One ``.npz`` per image, ``<cache_dir>/<key[:2]>/<key>.npz``, holding ``x`` (float32 (F,)),
``names`` (unicode (F,)), ``found`` (bool ()) and ``settings`` (the JSON of the key's parts).
It holds no pickled objects and is read with ``np.load(allow_pickle=False)``; an unreadable or
mismatching entry is recomputed and overwritten. The segmenter's settings are taken from its
``get_params()`` when it has one, else its qualified name and default arguments (and the
arguments of a :func:`functools.partial`). The key also holds a fingerprint of the source of
the packages defining the segmenter and the extractor (:func:`code_fingerprint`), so editing
their code invalidates the cache; with an explicit ``segmenter_key`` the segmenter's
fingerprint is left out (the key is then the caller's responsibility).

Parallelism and clusters
------------------------
``n_jobs`` processes share the work: this one and ``n_jobs - 1`` workers of joblib's *loky*
executor (:mod:`wbc_classic.classical.workers`; the segmenter and the extractor must then be
picklable -- module-level functions, partials and estimators are); inside another joblib
backend (``joblib.parallel_backend``) the chunks go through :class:`joblib.Parallel`. When a
data set outgrows one machine, the same code runs on a Dask cluster through joblib's Dask
backend: pass ``scheduler="tcp://host:8786"`` (or a
``distributed.Client``), or wrap the call yourself::

    from distributed import Client
    import joblib

    client = Client("tcp://scheduler:8786")        # pip install "dask[distributed]"
    with joblib.parallel_backend("dask"):
        result = extract_features(paths, n_jobs=-1, cache_dir="/shared/cache")

The workers must see the image paths and ``cache_dir`` at the same locations (a shared file
system), and have this package installed.

Examples
--------
>>> from wbc_classic.classical.extraction import extract_features
>>> result = extract_features(paths, n_jobs=2, cache_dir="cache/features")  # doctest: +SKIP
>>> X, ok = result                        # float32 (n, F), bool (n,)  # doctest: +SKIP
>>> print(result.summary())               # doctest: +SKIP
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import inspect
import itertools
import json
import logging
import os
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from wbc_classic import __version__
from wbc_classic.io.atomic import atomic_open
from wbc_classic.io.fingerprint import code_fingerprint
from wbc_classic.preprocess.augment import AugmentedImage

__all__ = ["ExtractionFailure", "ExtractionResult", "Segmented", "extract_features", "cache_key",
           "segmenter_settings", "extractor_settings", "code_fingerprint", "CACHE_FORMAT"]

logger = logging.getLogger(__name__)

#: Version of the on-disk cache layout; part of every key.
CACHE_FORMAT = 1



@dataclass(frozen=True)
class Segmented:
    """An image that is already segmented (e.g. a leukocyte cut out of a smear field by
    :func:`segmentation.segment_field`): :func:`extract_features` skips the read, rescale
    and segment stages for it and never caches it (the masks are not part of any key).

    Attributes
    ----------
    image : ndarray of uint8, shape (H, W, 3)
    segmentation : segmentation.Segmentation
        Masks in ``image``'s pixel grid.
    """

    image: np.ndarray
    segmentation: Any


Item = str | os.PathLike | np.ndarray | AugmentedImage | Segmented


@dataclass(frozen=True)
class ExtractionFailure:
    """One item whose features could not be computed.

    Attributes
    ----------
    index : int
        Position in the input sequence.
    source : str
        The file path, or ``"<array i>"`` for an in-memory image.
    stage : str
        ``"read"``, ``"segment"`` or ``"extract"``.
    reason : str
    """

    index: int
    source: str
    stage: str
    reason: str

    def __str__(self) -> str:
        return f"{self.source}: {self.stage} failed: {self.reason}"


@dataclass
class ExtractionResult:
    """Output of :func:`extract_features`; unpacks as ``X, ok = result``.

    Attributes
    ----------
    X : ndarray of float32, shape (n_items, n_features)
        One row per input item, in input order; rows of failed items are zeros.
    ok : ndarray of bool, shape (n_items,)
        False for failed items.
    found : ndarray of bool, shape (n_items,)
        True where the segmenter found a cell (False for failures too).
    feature_names : ndarray of str, shape (n_features,)
    failures : list of ExtractionFailure
        Every failed item, in input order (``len(failures) == (~ok).sum()``).
    n_cached : int
        Rows read from the cache instead of computed.
    """

    X: np.ndarray
    ok: np.ndarray
    found: np.ndarray
    feature_names: np.ndarray
    failures: list[ExtractionFailure] = field(default_factory=list)
    n_cached: int = 0

    def __iter__(self) -> Iterator[np.ndarray]:
        return iter((self.X, self.ok))

    def __len__(self) -> int:
        return int(self.X.shape[0])

    def summary(self, max_listed: int = 10) -> str:
        """Counts, then up to ``max_listed`` failures, one per line."""
        n = len(self)
        lines = [f"features for {int(self.ok.sum())}/{n} image(s) "
                 f"({self.n_cached} from cache, {int((self.ok & ~self.found).sum())} without a "
                 f"segmented cell), {len(self.failures)} failed"]
        lines += [f"  {f}" for f in self.failures[:max_listed]]
        if len(self.failures) > max_listed:
            lines.append(f"  ... and {len(self.failures) - max_listed} more")
        return "\n".join(lines)


# -- settings and keys -------------------------------------------------------------------------
def _jsonable(obj: Any) -> Any:
    """A JSON-serialisable, deterministic stand-in for ``obj``."""
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in sorted(obj.items(), key=lambda kv: str(kv[0]))}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return {"ndarray": hashlib.sha256(np.ascontiguousarray(obj).tobytes()).hexdigest(),
                "shape": list(obj.shape), "dtype": str(obj.dtype)}
    if isinstance(obj, (np.generic,)):
        return obj.item()
    if obj is None or isinstance(obj, (bool, int, float, str)):
        if isinstance(obj, float) and not np.isfinite(obj):
            return repr(obj)
        return obj
    if hasattr(obj, "get_params"):
        return {"class": _qualname(type(obj)), "params": _jsonable(obj.get_params(deep=False))}
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {"class": _qualname(type(obj)),
                "fields": {f.name: _jsonable(getattr(obj, f.name))
                           for f in dataclasses.fields(obj)}}
    if callable(obj):
        return _qualname(obj)
    return f"{type(obj).__module__}.{type(obj).__qualname__}"


def _qualname(obj: Any) -> str:
    return f"{getattr(obj, '__module__', '?')}.{getattr(obj, '__qualname__', type(obj).__name__)}"


def segmenter_settings(segmenter: Callable[..., Any]) -> Any:
    """JSON-able description of a segmenter, used in the cache key.

    ``get_params()`` for estimator-like objects; for a :func:`functools.partial`, the wrapped
    function plus its bound arguments; for a function, its qualified name and default
    argument values; else the type's qualified name.
    """
    if isinstance(segmenter, functools.partial):
        return {"partial": segmenter_settings(segmenter.func),
                "args": _jsonable(list(segmenter.args)),
                "kwargs": _jsonable(dict(segmenter.keywords))}
    if hasattr(segmenter, "get_params"):
        return _jsonable(segmenter)
    if inspect.isfunction(segmenter) or inspect.isbuiltin(segmenter):
        defaults = {}
        try:
            for name, p in inspect.signature(segmenter).parameters.items():
                if p.default is not inspect.Parameter.empty:
                    defaults[name] = _jsonable(p.default)
        except (TypeError, ValueError):  # pragma: no cover - builtins without a signature
            pass
        return {"function": _qualname(segmenter), "defaults": defaults}
    return {"callable": _qualname(type(segmenter))}


@functools.lru_cache(maxsize=64)
def _module_of(obj: Any) -> str:
    if isinstance(obj, functools.partial):
        return _module_of(obj.func)
    module = getattr(obj, "__module__", None) if (inspect.isfunction(obj) or inspect.isclass(
        obj) or inspect.isbuiltin(obj)) else type(obj).__module__
    return module or "?"


def extractor_settings(extractor: Any) -> Any:
    """JSON-able description of a feature extractor (class and ``get_params()``)."""
    return _jsonable(extractor)


def cache_key(content_sha256: str, settings: Any) -> str:
    """Cache key (hex SHA-256) of one image's content hash and the pipeline settings."""
    text = json.dumps({"content": content_sha256, "settings": settings}, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()


# -- one item ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class _Job:
    segmenter: Callable[[np.ndarray], Any]
    extractor: Any
    names: tuple[str, ...]
    settings: Any
    cache_dir: str | None
    max_pixels: int | None
    stain: Any = None
    rescale: float = 1.0


def _cache_path(cache_dir: str, key: str) -> Path:
    return Path(cache_dir) / key[:2] / f"{key}.npz"


def _load_cached(path: Path, names: tuple[str, ...]) -> tuple[np.ndarray, bool] | None:
    try:
        with np.load(path, allow_pickle=False) as data:
            x = np.asarray(data["x"], dtype=np.float32)
            cached_names = tuple(str(n) for n in data["names"])
            found = bool(data["found"])
    except FileNotFoundError:
        return None
    except Exception as exc:  # corrupt / foreign file: recompute and overwrite
        logger.warning("ignoring unreadable cache entry %s: %s", path, exc)
        return None
    if cached_names != names or x.shape != (len(names),) or not np.isfinite(x).all():
        return None
    return x, found


def _save_cached(path: Path, x: np.ndarray, names: tuple[str, ...], found: bool,
                 settings: Any) -> None:
    try:
        # no fsync: an entry lost or cut short by a crash is unreadable and recomputed
        with atomic_open(path, "wb", fsync=False) as fh:
            np.savez(fh, x=x.astype(np.float32), names=np.asarray(names, dtype=str),
                     found=np.asarray(found), settings=np.asarray(json.dumps(settings)))
    except OSError as exc:  # a full or read-only cache must not fail the extraction
        logger.warning("could not write cache entry %s: %s", path, exc)


def _source(index: int, item: Item) -> str:
    if isinstance(item, Segmented):
        return f"<segmented cell {index}>"
    return f"<array {index}>" if isinstance(item, np.ndarray) else str(item)


def _lookup(index: int, item: Item, job: _Job) -> tuple[tuple | None, str | None]:
    """(finished result or None, content hash) of one item: a cache hit or a hashing failure
    is finished here; otherwise the item still has to be computed."""
    from wbc_classic.io.images import ImageReadError, array_sha256, image_sha256

    if isinstance(item, Segmented):
        return None, None
    try:
        if isinstance(item, np.ndarray):
            content = array_sha256(item)
        elif isinstance(item, AugmentedImage):
            content = item.content_sha256()
        else:
            content = image_sha256(item)
    except ImageReadError as exc:
        return (index, None, False, ExtractionFailure(index, _source(index, item), "read",
                                                      exc.reason), False), None
    if job.cache_dir is not None:
        hit = _load_cached(_cache_path(job.cache_dir, cache_key(content, job.settings)),
                           job.names)
        if hit is not None:
            return (index, hit[0], hit[1], None, True), content
    return None, content


def _process(index: int, item: Item, job: _Job, content: str | None = None
             ) -> tuple[int, np.ndarray | None, bool, ExtractionFailure | None, bool]:
    """(index, row or None, found, failure or None, from_cache) for one item.

    ``content`` is the item's hash when the caller already looked it up in the cache."""
    from wbc_classic.io.images import ImageReadError, read_image

    source = _source(index, item)
    path = None
    if isinstance(item, Segmented):
        image, seg = item.image, item.segmentation
    else:
        if content is None:
            done, content = _lookup(index, item, job)
            if done is not None:
                return done
        # only a Segmented item or a finished lookup leave no hash
        assert content is not None
        if job.cache_dir is not None:
            path = _cache_path(job.cache_dir, cache_key(content, job.settings))
        try:
            if isinstance(item, np.ndarray):
                image = item
            elif isinstance(item, AugmentedImage):
                image = item.read(max_pixels=job.max_pixels)
            else:
                image = read_image(item, max_pixels=job.max_pixels)
            if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
                raise ValueError(f"expected an (H, W, 3) uint8 RGB image, got {image.shape} "
                                 f"{image.dtype}")
        except (ImageReadError, ValueError) as exc:
            reason = exc.reason if isinstance(exc, ImageReadError) else str(exc)
            return index, None, False, ExtractionFailure(index, source, "read", reason), False
        try:
            if job.rescale != 1.0:
                from wbc_classic.preprocess.scale import rescale_image

                image = rescale_image(image, job.rescale)
            seg = job.segmenter(image)
        except Exception as exc:
            return index, None, False, ExtractionFailure(
                index, source, "segment", f"{type(exc).__name__}: {exc}"), False
    try:
        # the masks come from the raw pixels; only what the features measure is normalised
        pixels = image if job.stain is None else job.stain.transform(image)
        x = np.asarray(job.extractor.transform([(pixels, seg)]), dtype=np.float32).reshape(-1)
        if x.shape != (len(job.names),):
            raise ValueError(f"extractor returned {x.shape[0]} values, expected "
                             f"{len(job.names)}")
    except Exception as exc:
        return index, None, False, ExtractionFailure(
            index, source, "extract", f"{type(exc).__name__}: {exc}"), False
    found = bool(getattr(seg, "found", True))
    if path is not None:
        _save_cached(path, x, job.names, found, job.settings)
    return index, x, found, None, False


def _process_chunk(chunk: Sequence[tuple[int, Item, str | None]], job: _Job) -> list[tuple]:
    return [_process(i, item, job, content) for i, item, content in chunk]


# -- public entry point ------------------------------------------------------------------------
def _default_segmenter() -> Callable[[np.ndarray], Any]:
    try:
        from segmentation import segment
    except ImportError as exc:  # pragma: no cover - depends on the segmentation package
        raise ImportError("segmentation.segment is not available; pass segmenter=") from exc
    return segment


def _as_items(images: Any) -> list[Item]:
    if isinstance(images, np.ndarray):
        if images.ndim == 4:
            return list(images)
        if images.ndim == 3:
            raise ValueError("a single (H, W, 3) array was given; pass a list of images")
    if isinstance(images, (str, os.PathLike)):
        raise TypeError("pass a sequence of paths, not a single path")
    return list(images)


def extract_features(
    images: Sequence[Item] | np.ndarray,
    *,
    segmenter: Callable[[np.ndarray], Any] | None = None,
    extractor: Any = None,
    n_jobs: int = 1,
    cache_dir: str | os.PathLike | None = None,
    progress: bool | str = True,
    scheduler: Any = None,
    segmenter_key: str | None = None,
    max_pixels: int | None = None,
    chunk_size: int = 8,
    stain: Any = None,
    rescale: float = 1.0,
) -> ExtractionResult:
    """Segment every image and extract its features, in parallel, with an on-disk cache.

    Parameters
    ----------
    images : sequence of path, ndarray, AugmentedImage or Segmented, or ndarray (N, H, W, 3)
        Image files (read with :func:`wbc_classic.io.images.read_image`), in-memory uint8 RGB
        arrays (H, W, 3), augmented training copies
        (:func:`wbc_classic.preprocess.augment.augmented_copies`) and/or already segmented
        cells (:class:`Segmented`, not cached); sizes may differ.
    segmenter : callable, optional
        ``image -> Segmentation``; default :func:`segmentation.segment`.
    extractor : features.FeatureExtractor, optional
        Default ``FeatureExtractor()`` (all families).
    n_jobs : int, default 1
        Processes (-1: all cores): this one and ``n_jobs - 1`` workers
        (:func:`wbc_classic.classical.workers.run_chunks`); all Dask workers inside
        ``joblib.parallel_backend("dask")``. 1 runs in this process, whatever the backend.
    cache_dir : path, optional
        Directory of the per-image cache (created if needed); None disables caching.
    progress : bool or str, default True
        Report progress (:class:`wbc_classic.io.progress.Progress`: redrawn on a terminal,
        a plain line every few seconds in a log), labelled "features" or by the string
        given.
    scheduler : str or distributed.Client, optional
        Address of a Dask scheduler (or a client): run the items on that cluster through
        joblib's Dask backend (see the module docstring). ``n_jobs`` is then ignored.
    segmenter_key : str, optional
        Replaces the automatic description of the segmenter in the cache key.
    max_pixels : int, optional
        Passed to ``read_image`` (its default limit when None).
    chunk_size : int, default 8
        Items per parallel task (the last tasks get fewer, so that the processes finish
        together).
    stain : wbc_classic.preprocess.stain.StainNormalizer, optional
        A fitted normaliser applied to each image after segmentation and before the
        features (its fitted state is part of the cache key).
    rescale : float, default 1.0
        Resize factor applied to each image after reading and before segmentation
        (:func:`wbc_classic.preprocess.scale.rescale_image`; e.g. to a model's training pixel
        scale). Part of the cache key when it is not 1; not applied to :class:`Segmented`
        items, which are segmented already.

    Returns
    -------
    ExtractionResult
        ``X`` float32 (n, F), ``ok`` bool (n,), ``found``, ``feature_names``, ``failures``,
        ``n_cached``; ``X, ok = result`` unpacks.
    """
    from wbc_classic.io.progress import Progress

    if extractor is None:
        from features import FeatureExtractor

        extractor = FeatureExtractor()
    if segmenter is None:
        segmenter = _default_segmenter()
    if max_pixels is None:
        from wbc_classic.io.images import DEFAULT_MAX_PIXELS

        max_pixels = DEFAULT_MAX_PIXELS
    if not (np.isfinite(rescale) and rescale > 0):
        raise ValueError(f"rescale must be a positive number, got {rescale!r}")
    items = _as_items(images)
    names = tuple(str(n) for n in extractor.get_feature_names_out())
    settings = {
        "format": CACHE_FORMAT,
        "version": __version__,
        "segmenter": segmenter_key if segmenter_key is not None else segmenter_settings(segmenter),
        "extractor": extractor_settings(extractor),
        **({"stain": stain.to_dict()} if stain is not None else {}),
        # left out at 1 so the keys of unscaled runs stay those written before it existed
        **({"rescale": float(rescale)} if rescale != 1.0 else {}),
        "code": {"segmenter": None if segmenter_key is not None else code_fingerprint(
            _module_of(segmenter)), "extractor": code_fingerprint(_module_of(extractor))},
    }
    job = _Job(segmenter=segmenter, extractor=extractor, names=names, settings=settings,
               cache_dir=None if cache_dir is None else os.fspath(cache_dir),
               max_pixels=max_pixels, stain=stain, rescale=float(rescale))
    if job.cache_dir is not None:
        Path(job.cache_dir).mkdir(parents=True, exist_ok=True)

    n = len(items)
    X = np.zeros((n, len(names)), dtype=np.float32)
    ok = np.zeros(n, dtype=bool)
    found = np.zeros(n, dtype=bool)
    failures: list[ExtractionFailure] = []
    n_cached = 0
    chunk_size = max(1, int(chunk_size))
    label = progress if isinstance(progress, str) else "features"
    with Progress(total=n, desc=label, unit="img", disable=not progress) as bar:
        todo: list[tuple[int, Item, str | None]] = []
        finished: list[tuple] = []
        if job.cache_dir is not None and (n_jobs != 1 or scheduler is not None):
            # look the items up here first: a warm cache then starts no worker at all
            for i, item in enumerate(items):
                done, content = _lookup(i, item, job)
                if done is None:
                    todo.append((i, item, content))
                else:
                    finished.append(done)
        else:
            todo = [(i, item, None) for i, item in enumerate(items)]
        chunks = _chunks(todo, chunk_size, 1 if n_jobs == 1 and scheduler is None
                         else _n_processes(n_jobs))
        for results in itertools.chain([finished] if finished else [],
                                       _run(chunks, job, n_jobs, scheduler)):
            for index, x, fnd, failure, cached in results:
                if failure is not None:
                    failures.append(failure)
                else:
                    X[index] = x
                    ok[index] = True
                    found[index] = fnd
                    n_cached += int(cached)
            bar.update(len(results))
    failures.sort(key=lambda f: f.index)
    result = ExtractionResult(X=X, ok=ok, found=found,
                              feature_names=np.asarray(names, dtype=object),
                              failures=failures, n_cached=n_cached)
    if failures:
        logger.warning("%s", result.summary())
    return result


def _n_processes(n_jobs: int) -> int:
    import joblib

    return max(1, joblib.effective_n_jobs(n_jobs))


def _chunks(todo: list, chunk_size: int, n_processes: int) -> list[list]:
    """``todo`` cut into chunks of ``chunk_size`` items, the last ones smaller on several
    processes: a chunk is at most a quarter of what is left per process, so that the
    processes run out of work at about the same time instead of one of them waiting for
    the other's last full chunks (up to ~0.5 s on 2 cores with 8 images a chunk)."""
    chunks, i = [], 0
    while i < len(todo):
        left = len(todo) - i
        size = chunk_size if n_processes <= 1 else max(
            1, min(chunk_size, left // (4 * n_processes)))
        chunks.append(todo[i:i + size])
        i += size
    return chunks


def _run(chunks: list, job: _Job, n_jobs: int, scheduler: Any) -> Iterator[list]:
    """Yield the result lists of the chunks (in any order): here, on the worker processes
    and here (:mod:`wbc_classic.classical.workers`), or through joblib / Dask."""
    import joblib

    if not chunks:  # everything came from the cache: no workers, no cluster connection
        return
    if scheduler is not None:
        try:
            from distributed import Client
        except ImportError as exc:
            raise ImportError('scheduler= needs dask.distributed: pip install '
                              '"dask[distributed]"') from exc
        own = not isinstance(scheduler, Client)
        client = Client(scheduler) if own else scheduler
        try:
            with joblib.parallel_backend("dask", client=client):
                yield from joblib.Parallel(n_jobs=-1, return_as="generator")(
                    joblib.delayed(_process_chunk)(c, job) for c in chunks)
        finally:
            if own:
                client.close()
        return
    if n_jobs == 1:  # plain loop in this process: no pickling, no worker start-up
        for c in chunks:
            yield _process_chunk(c, job)
        return
    from wbc_classic.classical.workers import own_pool, run_chunks

    n_workers = own_pool(n_jobs)
    if n_workers is None:  # another joblib backend is active (joblib.parallel_backend)
        yield from joblib.Parallel(n_jobs=n_jobs, return_as="generator")(
            joblib.delayed(_process_chunk)(c, job) for c in chunks)
    elif n_workers == 0 or len(chunks) == 1:  # one core, or one chunk: no worker needed
        for c in chunks:
            yield _process_chunk(c, job)
    else:
        yield from run_chunks(_process_chunk, chunks, job, n_workers)
