"""Start the feature engine's worker processes early, while this process starts up.

A worker process of :func:`wbc_classic.classical.extraction.extract_features` needs about a
second of CPU before its first image: a new interpreter importing the segmenter, the
features and scikit-learn, then first-call set-up.  ``wbc-classic predict --n-jobs 2`` used to
pay that after its own start-up (imports, loading the model file).  :func:`start_workers`
starts them in the background instead, so both start-ups overlap; the next parallel
``extract_features`` call waits for them (:func:`wait_for_workers`) and reuses them
(joblib's reusable executor).  Results are unchanged.

This module imports nothing heavy, so a command can call :func:`start_workers` before its
own heavy imports.
"""

from __future__ import annotations

import logging
import os
import threading

__all__ = ["start_workers", "wait_for_workers"]

logger = logging.getLogger(__name__)

#: the background start of the worker processes, joined before their first use
_starting: threading.Thread | None = None
#: process ids of the workers that warmed up in the last start
_warmed: list[int] = []


def _warm_up() -> int:
    """Run in a fresh worker: import the segmenter and the features and push one small drawn
    cell through both, so that their one-off start-up is over before the first image
    arrives.  Returns the worker's process id."""
    import cv2
    import numpy as np

    from features import FeatureExtractor
    from segmentation import segment
    from wbc_classic.io.images import read_image  # noqa: F401 - imported for its cost

    image = np.full((96, 96, 3), (230, 200, 210), np.uint8)       # background
    cv2.circle(image, (48, 48), 30, (200, 190, 225), -1)          # cytoplasm
    cv2.circle(image, (48, 48), 16, (110, 60, 150), -1)           # nucleus
    FeatureExtractor().transform([(image, segment(image, keep_stages=False))])
    return os.getpid()


def start_workers(n_jobs: int) -> None:
    """Start the worker processes of a later ``extract_features(..., n_jobs=n_jobs)`` in
    the background and return at once.

    Nothing is started for ``n_jobs`` 1 or while an earlier start is still running. A
    failure is only logged: the real call then starts its workers itself and reports
    its own errors.

    Parameters
    ----------
    n_jobs : int
        As in :func:`~wbc_classic.classical.extraction.extract_features` (-1: all cores).
    """
    global _starting

    if n_jobs == 1 or (_starting is not None and _starting.is_alive()):
        return

    def start() -> None:
        import joblib

        try:
            n = joblib.effective_n_jobs(n_jobs)
            pids = joblib.Parallel(n_jobs=n_jobs)(joblib.delayed(_warm_up)() for _ in range(n))
            _warmed[:] = sorted(set(pids))
        except Exception as exc:  # noqa: BLE001 - the real call reports the problem
            logger.debug("starting the workers failed: %s", exc)

    _warmed.clear()
    _starting = threading.Thread(target=start, name="wbc-start-workers", daemon=True)
    _starting.start()


def wait_for_workers() -> list[int]:
    """Block until a :func:`start_workers` start has finished (at once if there is none).

    Returns
    -------
    list of int
        Process ids of the workers that warmed up (empty when none was started or the
        start failed).
    """
    if _starting is not None:
        _starting.join()
    return list(_warmed)
