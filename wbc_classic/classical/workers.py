"""The feature engine's worker processes: started early, and this process works too.

:func:`wbc_classic.classical.extraction.extract_features` with ``n_jobs`` > 1 runs its chunks
of images on ``n_jobs - 1`` worker processes *and in this process* (:func:`run_chunks`):
this process has already imported everything the work needs, while a new worker costs
about 1.5 s of CPU before its first image (an interpreter importing the segmenter, the
features and scikit-learn, then first-call set-up).  ``wbc-classic predict --n-jobs 2``
also starts its worker before loading the model (:func:`start_workers`), so that start-up
overlaps the model's loading instead of following it.  Results are unchanged: every chunk
goes through the same function, whichever process runs it.

The workers are a :mod:`loky` reusable executor (the one :mod:`joblib` ships and uses),
with joblib's limits on the threads of OpenMP/BLAS libraries per process.  When another
joblib backend is active (``with joblib.parallel_backend("dask"): ...``) none of this is
used and the engine goes through :class:`joblib.Parallel` as before (:func:`own_pool`).

This module imports nothing heavy, so a command can call :func:`start_workers` before its
own heavy imports.
"""

from __future__ import annotations

import logging
import os
import queue
from collections.abc import Callable, Iterator, Sequence
from typing import Any

__all__ = ["own_pool", "run_chunks", "start_workers", "stop_warm_up", "stop_workers",
           "wait_for_workers"]

logger = logging.getLogger(__name__)

#: thread-pool variables joblib limits in its workers (to cpu_count // processes)
_THREAD_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS",
                "BLIS_NUM_THREADS", "VECLIB_MAXIMUM_THREADS", "NUMBA_NUM_THREADS",
                "NUMEXPR_NUM_THREADS")
#: warm-up tasks of the last :func:`start_workers`, and their executor
_warming: list[Any] = []
_warming_executor: list[Any] = []
#: the executor :func:`_executor` returned last (for :func:`stop_workers`)
_made: list[Any] = []


def own_pool(n_jobs: int) -> int | None:
    """Worker processes :func:`run_chunks` uses beside this process for ``n_jobs``.

    ``n_jobs`` counts processes as joblib does (-1: all cores). Returns 0 when everything
    runs here, and None when another joblib backend than its default (loky) is active,
    e.g. inside ``joblib.parallel_backend("dask")``: the work then goes to that backend.
    """
    if n_jobs == 1:
        return 0
    from joblib.parallel import get_active_backend

    backend, _ = get_active_backend()
    if type(backend).__name__ != "LokyBackend":  # dask, threading, ...: joblib's business
        return None
    import joblib

    return max(0, joblib.effective_n_jobs(n_jobs) - 1)


def _executor(n_workers: int) -> Any:
    """The reusable executor of ``n_workers`` processes (the same one for the same count)."""
    from joblib.executor import get_memmapping_executor
    from joblib.externals.loky import cpu_count

    threads = str(max(cpu_count() // (n_workers + 1), 1))
    env = {var: os.environ.get(var, threads) for var in _THREAD_VARS}
    if "ENABLE_IPC" not in os.environ:  # TBB schedulers coordinate across processes
        env["ENABLE_IPC"] = "1"
    # joblib's own constructor of the reusable executor, not loky's: loky keeps one executor
    # per process, and joblib.Parallel (used elsewhere in the same process) reuses it and
    # needs the temporary-folder manager joblib attaches. No memmapping (max_nbytes=None):
    # a task's arrays (a model's, wbc-classic count's) are pickled with it, since the
    # shared-memory files of memmapped ones outlive workers killed by stop_workers
    executor = get_memmapping_executor(n_workers, timeout=300, env=env, max_nbytes=None)
    _made[:] = [executor]
    return executor


def _warm_up() -> int:
    """Run in a fresh worker: import the segmenter and the features and push one small drawn
    cell through both, so that their one-off start-up is over before the first image
    arrives.  Returns the worker's process id."""
    from wbc_classic.classical.imports import import_sklearn

    import_sklearn()  # before the features import it, without pandas
    import cv2
    import numpy as np

    from features import FeatureExtractor
    from segmentation import segment
    from wbc_classic.io.images import read_image  # noqa: F401 - imported for its cost

    _one_opencv_thread()  # as in the chunks to come
    image = np.full((96, 96, 3), (230, 200, 210), np.uint8)       # background
    cv2.circle(image, (48, 48), 30, (200, 190, 225), -1)          # cytoplasm
    cv2.circle(image, (48, 48), 16, (110, 60, 150), -1)           # nucleus
    FeatureExtractor().transform([(image, segment(image, keep_stages=False))])
    return os.getpid()


def start_workers(n_jobs: int) -> None:
    """Start the worker processes of a later ``extract_features(..., n_jobs=n_jobs)`` in
    the background and return at once.

    Nothing is started when that call would use none (:func:`own_pool`). A failure is
    only logged: the real call then reports its own errors.

    Parameters
    ----------
    n_jobs : int
        As in :func:`~wbc_classic.classical.extraction.extract_features` (-1: all cores).
    """
    n_workers = own_pool(n_jobs)
    if not n_workers:
        return
    try:
        executor = _executor(n_workers)
        _warming[:] = [executor.submit(_warm_up) for _ in range(n_workers)]
        _warming_executor[:] = [executor]
    except Exception as exc:  # noqa: BLE001 - the real call reports the problem
        logger.debug("starting the workers failed: %s", exc)


def wait_for_workers() -> list[int]:
    """Block until the warm-up of :func:`start_workers` is done (at once if there is none).

    Returns
    -------
    list of int
        Process ids of the workers that warmed up (empty when none was started or the
        start failed).
    """
    pids = set()
    for future in _warming:
        try:
            pids.add(future.result())
        except Exception as exc:  # noqa: BLE001 - the real call reports the problem
            logger.debug("a worker's warm-up failed: %s", exc)
    return sorted(pids)


def stop_warm_up() -> bool:
    """Kill the workers of :func:`start_workers` if they are still warming up.

    For a command that ends before it uses them (a usage error found after the start):
    its exit would otherwise wait for their start-up to finish (~1.5 s).  Workers that
    are ready are left alone.  Returns True when workers were killed.
    """
    busy = any(not future.done() for future in _warming)
    if busy and _warming_executor:
        _warming_executor[0].shutdown(wait=False, kill_workers=True)
    _warming.clear()
    _warming_executor.clear()
    return busy


def _one_opencv_thread() -> int:
    """Make OpenCV run single-threaded; returns its previous thread count.

    With a process per core, OpenCV's own pool of one thread per core only adds
    hand-over costs (about 10 % of the segmentation's and the features' CPU time on 2
    cores); its results do not depend on the thread count."""
    import cv2

    before = cv2.getNumThreads()
    if before != 1:
        cv2.setNumThreads(1)
    return before


def _in_worker(func: Callable[[Any, Any], Any], chunk: Any, arg: Any) -> Any:
    """``func(chunk, arg)`` in a worker process, OpenCV single-threaded."""
    _one_opencv_thread()
    return func(chunk, arg)


def stop_workers() -> None:
    """Kill the worker processes of the executor made here, if any, without waiting.

    For a process about to end: the workers are idle then, and killing them spares the
    half second or so that waiting for each one's orderly exit (the executor's own exit
    handler) takes.  A later call of :func:`run_chunks` starts new workers.
    """
    if _made:
        _made.pop().shutdown(wait=False, kill_workers=True)
    _warming.clear()
    _warming_executor.clear()


def run_chunks(func: Callable[[Any, Any], Any], chunks: Sequence[Any], arg: Any,
               n_workers: int) -> Iterator[Any]:
    """``func(chunk, arg)`` of every chunk, on ``n_workers`` worker processes and here.

    Each worker has one chunk running and one waiting, topped up between the chunks this
    process runs itself, so neither side waits for the other until the chunks run out.
    OpenCV runs single-threaded meanwhile, in the workers and here (its thread count is
    restored here afterwards).

    Parameters
    ----------
    func : callable
        A module-level function (it is pickled by reference).
    chunks : sequence
    arg : object
        Passed to every call (pickled once per worker task).
    n_workers : int
        Worker processes, >= 1 (:func:`own_pool`).

    Yields
    ------
    object
        The results, in the order they finish (not the order of ``chunks``).
    """
    executor = _executor(n_workers)
    todo = iter(chunks)
    finished: queue.SimpleQueue = queue.SimpleQueue()
    pending: set[Any] = set()

    def top_up() -> bool:
        """Give the workers chunks up to two each; False once there are none left."""
        while len(pending) < 2 * n_workers:
            chunk = next(todo, None)
            if chunk is None:
                return False
            future = executor.submit(_in_worker, func, chunk, arg)
            pending.add(future)
            future.add_done_callback(finished.put)
        return True

    threads = _one_opencv_thread()
    try:
        more = top_up()
        while more:
            chunk = next(todo, None)
            if chunk is None:
                break
            yield func(chunk, arg)
            while not finished.empty():
                future = finished.get()
                pending.discard(future)
                yield future.result()
            more = top_up()
        while pending:
            future = finished.get()
            pending.discard(future)
            yield future.result()
    finally:
        for future in pending:  # an error or an abandoned generator: drop what waits
            future.cancel()
        if threads != 1:
            import cv2

            cv2.setNumThreads(threads)
