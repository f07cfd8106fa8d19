"""Time, memory and size of models: how long a call takes, how much memory it peaks at, how
large a model is on disk.

Split from :mod:`wbc_classic.evaluation.metrics` (which scores predictions); both families and
the benchmark runner measure their models with these functions.
"""

from __future__ import annotations

import contextlib
import io
import os
import pickle
import resource
import sys
import time
import tracemalloc
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["Measurement", "measure_call", "time_inference", "model_size_bytes"]


@dataclass(frozen=True)
class Measurement:
    """Wall time and memory of one call.

    Attributes
    ----------
    seconds : float
        Wall-clock time (``time.perf_counter``); for :func:`time_inference` the median of
        the timed repeats.
    cpu_seconds : float
        Process CPU time (all threads) during the same call(s).
    n_items : int or None
        Items processed per call (images).
    throughput : float or None
        ``n_items / seconds`` (items per second).
    rss_peak_bytes : int or None
        Peak resident set size of the process during the call. On Linux the kernel's high-water
        mark is reset before the call (``/proc/self/clear_refs``), so this is the true peak of
        the call; elsewhere it is the process lifetime peak (``ru_maxrss``). Covers everything:
        Python, NumPy, OpenCV, torch (CPU), XGBoost.
    rss_increase_bytes : int or None
        ``rss_peak_bytes`` minus the resident size just before the call: the extra memory the
        call needed at its worst moment. None when only ``ru_maxrss`` is available and the
        call did not raise the lifetime peak (then the increase is unknown, not zero).
    python_peak_bytes : int or None
        Peak of memory allocated through Python's allocators, NumPy arrays included
        (``tracemalloc``); None when not traced. Does not see torch, OpenCV or XGBoost
        native buffers, nor GPU memory.
    """

    seconds: float
    cpu_seconds: float
    n_items: int | None = None
    throughput: float | None = None
    rss_peak_bytes: int | None = None
    rss_increase_bytes: int | None = None
    python_peak_bytes: int | None = None
    notes: tuple[str, ...] = field(default_factory=tuple)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict."""
        d = {k: getattr(self, k) for k in ("seconds", "cpu_seconds", "n_items", "throughput",
                                           "rss_peak_bytes", "rss_increase_bytes",
                                           "python_peak_bytes")}
        d["notes"] = list(self.notes)
        return d


def _read_status_kib(key: str) -> int | None:
    try:
        with open("/proc/self/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith(key + ":"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        return None
    return None


def _reset_rss_peak() -> bool:
    """Reset the kernel's resident high-water mark (Linux >= 4.0); True on success."""
    try:
        with open("/proc/self/clear_refs", "w", encoding="ascii") as fh:
            fh.write("5")
        return True
    except OSError:
        return False


def _ru_maxrss_bytes() -> int:
    r = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return int(r) if sys.platform == "darwin" else int(r) * 1024


class _MemoryProbe:
    """Context manager measuring the RSS peak (and optionally the tracemalloc peak)."""

    def __init__(self, trace_python: bool) -> None:
        self.trace_python = trace_python
        self.rss_peak: int | None = None
        self.rss_increase: int | None = None
        self.python_peak: int | None = None
        self.notes: list[str] = []

    def __enter__(self) -> _MemoryProbe:
        self._rss_before = _read_status_kib("VmRSS")
        self._hwm = self._rss_before is not None and _reset_rss_peak()
        self._maxrss_before = _ru_maxrss_bytes()
        self._started_trace = False
        if self.trace_python:
            if tracemalloc.is_tracing():
                tracemalloc.reset_peak()
            else:
                tracemalloc.start()
                self._started_trace = True
            self._traced_before = tracemalloc.get_traced_memory()[0]
        return self

    def __exit__(self, *exc: object) -> None:
        if self.trace_python:
            _, peak = tracemalloc.get_traced_memory()
            self.python_peak = int(max(0, peak - self._traced_before))
            if self._started_trace:
                tracemalloc.stop()
        hwm = _read_status_kib("VmHWM") if self._hwm else None
        if hwm is not None and self._rss_before is not None:
            self.rss_peak = hwm
            self.rss_increase = max(0, hwm - self._rss_before)
        else:
            after = _ru_maxrss_bytes()
            self.rss_peak = after
            if after > self._maxrss_before:
                self.rss_increase = after - self._maxrss_before
            self.notes.append("rss from ru_maxrss (process lifetime peak)")


def measure_call(fn: Callable[..., Any], *args: Any, n_items: int | None = None,
                 trace_python: bool = False, **kwargs: Any) -> tuple[Any, Measurement]:
    """Call ``fn(*args, **kwargs)`` once and measure wall time, CPU time and peak memory.

    Use it for training (``trace_python=False`` keeps tracemalloc's overhead out of the time).

    Parameters
    ----------
    fn : callable
    *args, **kwargs
        Passed to ``fn``.
    n_items : int, optional
        Items processed, for the throughput.
    trace_python : bool, default False
        Also record the tracemalloc peak (slows allocation-heavy Python code).

    Returns
    -------
    result : object
        What ``fn`` returned.
    measurement : Measurement
    """
    with _MemoryProbe(trace_python) as probe:
        t0, c0 = time.perf_counter(), time.process_time()
        result = fn(*args, **kwargs)
        seconds, cpu = time.perf_counter() - t0, time.process_time() - c0
    thr = (n_items / seconds) if (n_items is not None and seconds > 0) else None
    return result, Measurement(seconds=seconds, cpu_seconds=cpu, n_items=n_items, throughput=thr,
                               rss_peak_bytes=probe.rss_peak,
                               rss_increase_bytes=probe.rss_increase,
                               python_peak_bytes=probe.python_peak, notes=tuple(probe.notes))


def time_inference(predict: Callable[[Any], Any], X: Any, *, n_items: int | None = None,
                   repeats: int = 3, warmup: bool = True, trace_python: bool = True,
                   ) -> tuple[Any, Measurement]:
    """Inference throughput (items/s) and peak memory of ``predict(X)``.

    The optional warm-up call and ``repeats`` timed calls run untraced; the reported time is
    their median. Memory is measured on the first timed call (RSS high-water mark); when
    ``trace_python`` is set, one extra call runs under ``tracemalloc`` for the Python/NumPy
    peak, so tracing never inflates the time.

    Parameters
    ----------
    predict : callable
        ``predict(X)``; e.g. a pipeline's ``predict_proba`` or a deep model's predict function.
    X : object
        The inputs (array, list of images, paths, ...).
    n_items : int, optional
        Items in ``X``; defaults to ``len(X)``.
    repeats : int, default 3
    warmup : bool, default True
        One untimed call first (lazy initialisation, caches, JIT).
    trace_python : bool, default True

    Returns
    -------
    result : object
        The output of the last call.
    measurement : Measurement
        ``throughput`` in items per second.
    """
    if repeats < 1:
        raise ValueError("repeats must be >= 1")
    if n_items is None:
        n_items = len(X)
    if warmup:
        predict(X)
    times: list[float] = []
    cpus: list[float] = []
    result: Any = None
    first: _MemoryProbe | None = None
    for i in range(repeats):
        probe = _MemoryProbe(False)
        ctx = probe if i == 0 else contextlib.nullcontext()
        with ctx:
            t0, c0 = time.perf_counter(), time.process_time()
            result = predict(X)
            times.append(time.perf_counter() - t0)
            cpus.append(time.process_time() - c0)
        if i == 0:
            first = probe
    python_peak = None
    if trace_python:
        with _MemoryProbe(True) as tp:
            predict(X)
        python_peak = tp.python_peak
    assert first is not None
    sec = float(np.median(times))
    return result, Measurement(
        seconds=sec, cpu_seconds=float(np.median(cpus)), n_items=int(n_items),
        throughput=(n_items / sec) if sec > 0 else None,
        rss_peak_bytes=first.rss_peak, rss_increase_bytes=first.rss_increase,
        python_peak_bytes=python_peak, notes=tuple(first.notes),
    )


def model_size_bytes(model: Any) -> int:
    """Serialized size of a model in bytes.

    Parameters
    ----------
    model : object
        * a path (str or PathLike): size of the file, or total size of a directory's files;
        * ``bytes``: its length;
        * an object with ``state_dict()`` (a torch module): length of ``torch.save`` of the
          state dict (weights and buffers, what an exported checkpoint holds);
        * anything else: length of its pickle (protocol 5), as ``joblib``/``skops`` store it
          give or take a few percent.

    Returns
    -------
    int
    """
    if isinstance(model, (str, os.PathLike)):
        p = Path(model)
        if p.is_dir():
            return int(sum(f.stat().st_size for f in p.rglob("*") if f.is_file()))
        return int(p.stat().st_size)
    if isinstance(model, (bytes, bytearray, memoryview)):
        return len(model)
    if "torch" in sys.modules and hasattr(model, "state_dict"):
        import torch  # already imported by the caller; never imported here otherwise

        if isinstance(model, torch.nn.Module):
            buf = io.BytesIO()
            torch.save(model.state_dict(), buf)
            return buf.getbuffer().nbytes

    class _Counter(io.RawIOBase):
        n = 0

        def writable(self) -> bool:
            return True

        def write(self, b: Any) -> int:
            k = memoryview(b).nbytes
            self.n += k
            return k

    sink = _Counter()
    pickle.dump(model, sink, protocol=5)
    return int(sink.n)
