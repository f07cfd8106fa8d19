"""Progress of long work, readable on a terminal and in a log file alike.

One small helper for every command (``train``, ``predict``, ``count``, the deep image cache,
``benchmarks.run``):

* on a terminal, one line redrawn in place (``\\r``) at most ten times a second;
* otherwise (a log file, a pipe, CI), a plain line every ``interval`` seconds (default 5,
  ``$WBC_PROGRESS_INTERVAL`` overrides) and a last line when the work is done, so a log never
  shows minutes of silence and never fills with carriage returns.

``Progress(total=n, desc="features", unit="img", disable=not progress)`` takes tqdm's
arguments of the same names, so code written for tqdm switches by changing its import.
With ``heartbeat=True`` a background thread also prints a line every ``interval`` seconds
while nothing calls :meth:`Progress.update` (work whose items cannot be counted from outside).
"""

from __future__ import annotations

import os
import sys
import threading
import time
from collections.abc import Iterable, Iterator
from typing import IO, Any, TypeVar

__all__ = ["Progress", "progress"]

T = TypeVar("T")


def _interval() -> float:
    try:
        return max(0.1, float(os.environ.get("WBC_PROGRESS_INTERVAL", "5")))
    except ValueError:
        return 5.0


def _duration(seconds: float) -> str:
    seconds = max(0, int(round(seconds)))
    if seconds < 60:
        return f"{seconds}s"
    m, s = divmod(seconds, 60)
    if m < 60:
        return f"{m}m{s:02d}s"
    h, m = divmod(m, 60)
    return f"{h}h{m:02d}m"


class Progress:
    """Count finished items and report them (see the module docstring).

    Parameters
    ----------
    total : int, optional
        Number of items expected (None: unknown, no percentage or time left).
    desc : str
        What is being done, e.g. ``"features"``.
    unit : str
        Name of one item, e.g. ``"img"``.
    disable : bool
        Report nothing (tqdm's name for it).
    file : file object, optional
        Default ``sys.stderr``.
    interval : float, optional
        Seconds between lines when the output is not a terminal.
    tty : bool, optional
        Force terminal (True) or log (False) behaviour; default ``file.isatty()``.
    heartbeat : bool
        Also report every ``interval`` seconds from a background thread while no update
        arrives.
    """

    def __init__(self, total: int | None = None, desc: str = "", unit: str = "it", *,
                 disable: bool = False, file: IO[str] | None = None,
                 interval: float | None = None, tty: bool | None = None,
                 heartbeat: bool = False, **_ignored: Any) -> None:
        self.total = None if total is None else int(total)
        self.desc = desc
        self.unit = unit
        self.disable = bool(disable)
        self.file = file if file is not None else sys.stderr
        self.interval = _interval() if interval is None else float(interval)
        if tty is None:
            try:
                tty = bool(self.file.isatty())
            except (AttributeError, ValueError):
                tty = False
        self.tty = tty
        self.n = 0
        self.t0 = time.perf_counter()
        self._last = self.t0
        self._lock = threading.Lock()
        self._closed = False
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        if heartbeat and not self.disable:
            self._thread = threading.Thread(target=self._beat, daemon=True)
            self._thread.start()

    # ------------------------------------------------------------------ text
    def status(self) -> str:
        """The current progress line (without line ending)."""
        dt = time.perf_counter() - self.t0
        rate = self.n / dt if dt > 0 else 0.0
        head = f"{self.desc}: " if self.desc else ""
        if not self.n and self.total is None:  # a heartbeat: nothing counted from outside
            return f"{head}{'done after' if self._closed else 'working,'} {_duration(dt)}" \
                + ("" if self._closed else " elapsed")
        if self.total:
            pct = 100.0 * self.n / self.total
            text = f"{head}{self.n}/{self.total} {self.unit} ({pct:.0f}%)"
        else:
            text = f"{head}{self.n} {self.unit}"
        text += f", {_duration(dt)} elapsed"
        if self.n:
            text += f", {rate:.1f} {self.unit}/s"
            if self.total and self.n < self.total and rate > 0:
                text += f", ~{_duration((self.total - self.n) / rate)} left"
        return text

    def _emit(self, final: bool = False) -> None:
        line = self.status()
        try:
            if self.tty:
                self.file.write("\r" + line + ("\n" if final else "\x1b[K"))
            else:
                done = final and (self.n or self.total is not None)
                self.file.write(line + (" -- done" if done else "") + "\n")
            self.file.flush()
        except (OSError, ValueError):  # a closed or broken stream must not stop the work
            pass

    def _beat(self) -> None:
        while not self._stop.wait(self.interval):
            with self._lock:
                if self._closed:
                    return
                if time.perf_counter() - self._last >= self.interval * 0.99:
                    self._last = time.perf_counter()
                    self._emit()

    # ------------------------------------------------------------------ counting
    def update(self, n: int = 1) -> None:
        """``n`` more items are done."""
        if self.disable:
            return
        with self._lock:
            self.n += int(n)
            now = time.perf_counter()
            every = 0.1 if self.tty else self.interval
            if now - self._last >= every:
                self._last = now
                self._emit()

    def set_postfix(self, *args: Any, **kwargs: Any) -> None:
        """Accepted for tqdm compatibility; ignored."""

    def close(self, final_line: bool = True) -> None:
        """Stop; print the final line (once) unless ``final_line`` is False."""
        if self._closed:
            return
        self._stop.set()
        with self._lock:
            self._closed = True
            if not self.disable and final_line:
                self._emit(final=True)

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def progress(iterable: Iterable[T], total: int | None = None, desc: str = "",
             unit: str = "it", **kwargs: Any) -> Iterator[T]:
    """Iterate over ``iterable`` while reporting with :class:`Progress`."""
    if total is None:
        try:
            total = len(iterable)  # type: ignore[arg-type]
        except TypeError:
            total = None
    with Progress(total=total, desc=desc, unit=unit, **kwargs) as bar:
        for item in iterable:
            yield item
            bar.update(1)
