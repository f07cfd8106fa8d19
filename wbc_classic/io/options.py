"""Exit codes and checked option values shared by every command of the project.

Every entry point (``wbc-classic ...``, ``python -m deep.train|predict|export``,
``python -m benchmarks.run``) ends with one of three exit codes:

=====  =====================================================================================
``0``  done: every input was used.
``1``  done, but some inputs failed and were reported (an unreadable image, an image in
       which no leukocyte was found); their rows are in the output with a status saying why.
``2``  usage or configuration error: a bad option value, a missing or unusable model,
       checkpoint, data folder or cache, an output that cannot be written, no input at all.
       Nothing was computed (argparse's own errors use 2 as well).
=====  =====================================================================================

The range checks below turn a bad numeric option into one line naming the option, the value
and the valid range, before any work starts.  This module lives in ``io`` because that is the
one room every entry point (including ``deep`` and ``benchmarks``) may import.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import math
from collections.abc import Callable, Iterator
from typing import Any

__all__ = ["EXIT_FAILED_INPUTS", "EXIT_OK", "EXIT_USAGE", "NamesAction", "add_cache_options",
           "check_range", "deprecated_alias", "float_range", "int_range", "json_object",
           "log_to_stderr", "n_jobs_value", "split_names"]

#: every input was used
EXIT_OK: int = 0
#: some inputs failed and were reported (unreadable image, no leukocyte found)
EXIT_FAILED_INPUTS: int = 1
#: usage or configuration error; nothing was computed
EXIT_USAGE: int = 2


def _fmt_range(lo: float | None, hi: float | None, lo_open: bool, hi_open: bool) -> str:
    if lo is not None and hi is not None:
        return f"in {'(' if lo_open else '['}{lo:g}, {hi:g}{')' if hi_open else ']'}"
    if lo is not None:
        return f"{'>' if lo_open else '>='} {lo:g}"
    if hi is not None:
        return f"{'<' if hi_open else '<='} {hi:g}"
    return "a finite number"


def check_range(name: str, value: Any, lo: float | None = None, hi: float | None = None, *,
                lo_open: bool = False, hi_open: bool = False, integer: bool = False) -> Any:
    """Return ``value`` when it is a finite number within the bounds, else raise ValueError.

    Parameters
    ----------
    name : str
        Shown in the message, e.g. ``"--dpi"`` or ``"img_size"``.
    value : int or float
    lo, hi : float, optional
        Bounds (None: unbounded on that side).
    lo_open, hi_open : bool
        Exclude the bound itself.
    integer : bool
        Also require an integer (``bool`` is refused).

    Raises
    ------
    ValueError
        ``"--dpi must be in [10, 1200], got 5000"``.
    """
    bad = isinstance(value, bool) or not isinstance(value, (int, float))
    if not bad and integer and not float(value).is_integer():
        bad = True
    if not bad and not math.isfinite(float(value)):
        bad = True
    if not bad:
        v = float(value)
        bad = ((lo is not None and (v < lo or (lo_open and v == lo)))
               or (hi is not None and (v > hi or (hi_open and v == hi))))
    if bad:
        kind = "an integer " if integer else ""
        raise ValueError(f"{name} must be {kind}{_fmt_range(lo, hi, lo_open, hi_open)}, "
                         f"got {value!r}")
    return value


def int_range(lo: int | None = None, hi: int | None = None) -> Callable[[str], int]:
    """An argparse ``type=`` for an integer within ``[lo, hi]``.

    A bad value becomes argparse's one-line error (``argument --dpi: must be an integer in
    [10, 1200], got '5000'``) and exit code 2.
    """
    def parse(text: str) -> int:
        try:
            value = int(text)
        except (TypeError, ValueError):
            raise argparse.ArgumentTypeError(
                f"must be an integer {_fmt_range(lo, hi, False, False)}, got {text!r}") from None
        if (lo is not None and value < lo) or (hi is not None and value > hi):
            raise argparse.ArgumentTypeError(
                f"must be an integer {_fmt_range(lo, hi, False, False)}, got {text!r}")
        return value

    parse.__name__ = "integer"  # argparse names the type in some messages
    return parse


def float_range(lo: float | None = None, hi: float | None = None, *, lo_open: bool = False,
                hi_open: bool = False) -> Callable[[str], float]:
    """An argparse ``type=`` for a finite float within the bounds (see :func:`check_range`)."""
    def parse(text: str) -> float:
        try:
            value = float(text)
        except (TypeError, ValueError):
            value = None
        if value is None or not math.isfinite(value) or \
                (lo is not None and (value < lo or (lo_open and value == lo))) or \
                (hi is not None and (value > hi or (hi_open and value == hi))):
            raise argparse.ArgumentTypeError(
                f"must be a number {_fmt_range(lo, hi, lo_open, hi_open)}, got {text!r}")
        return value

    parse.__name__ = "number"
    return parse


def n_jobs_value(text: str) -> int:
    """An argparse ``type=`` for ``--n-jobs``: a positive count of workers, or -1 (all cores)."""
    try:
        value = int(text)
    except (TypeError, ValueError):
        value = 0
    if value == 0 or value < -1 or value > 1024:
        raise argparse.ArgumentTypeError(
            f"must be a number of workers in [1, 1024] or -1 (all cores), got {text!r}")
    return value


def add_cache_options(parser: argparse.ArgumentParser) -> None:
    """Add ``--cache-dir`` and ``--no-cache``, the feature cache options every command that
    extracts features shares (read by :func:`wbc_classic.io.cachedir.resolve_cache_dir`'s
    callers as ``args.cache_dir`` and ``args.no_cache``)."""
    from pathlib import Path

    parser.add_argument("--cache-dir", type=Path, default=None,
                        help="per-image feature cache (default $WBC_CACHE_DIR, else "
                             "~/.cache/wbc_classic; an unwritable folder falls back to a "
                             "temporary cache with a warning)")
    parser.add_argument("--no-cache", action="store_true", help="do not use the feature cache")


def json_object(text: str) -> dict[str, Any]:
    """An argparse ``type=`` for a JSON object option (``--model-kwargs '{"width": 0.5}'``)."""
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise argparse.ArgumentTypeError(f"is not valid JSON ({exc.msg} at character "
                                         f"{exc.pos}): {text!r}") from None
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError(f"must be a JSON object like '{{\"key\": 1}}', "
                                         f"got {text!r}")
    return value


def split_names(values: str | list[str] | tuple[str, ...]) -> list[str]:
    """Names given space- and/or comma-separated: ``["a,b", "c"]`` -> ``["a", "b", "c"]``."""
    items = [values] if isinstance(values, str) else list(values)
    return [name.strip() for item in items for name in str(item).split(",") if name.strip()]


class NamesAction(argparse.Action):
    """``--classes a b c`` and ``--classes a,b,c`` (or a mix) give the same list.

    Use with ``nargs="+"``; the stored value is a list of str.
    """

    def __call__(self, parser, namespace, values, option_string=None):
        names = split_names(values)
        if not names:
            parser.error(f"argument {option_string}: expected at least one name")
        setattr(namespace, self.dest, names)


def deprecated_alias(parser: argparse.ArgumentParser, old: str, new: str, *,
                     dest: str | None = None, **kwargs: Any) -> argparse.Action:
    """Add ``old`` as a hidden spelling of the option ``new`` that warns when used.

    The value goes to ``new``'s destination (``dest`` or derived from ``new``), through the
    same ``type``/``nargs`` given in ``kwargs``; a one-line ``warning: OLD is deprecated; use
    NEW`` goes to stderr. The alias is left out of ``--help``.
    """
    target = dest or new.lstrip("-").replace("-", "_")

    class _Deprecated(argparse.Action):
        def __call__(self, parser, namespace, values, option_string=None):
            logging.getLogger(__name__).warning("%s is deprecated; use %s", option_string, new)
            setattr(namespace, target, values)

    return parser.add_argument(old, dest=f"_deprecated_{target}", action=_Deprecated,
                               help=argparse.SUPPRESS, default=argparse.SUPPRESS, **kwargs)


class _CliFormatter(logging.Formatter):
    """``warning: message`` for warnings and errors, the bare message for information."""

    def format(self, record: logging.LogRecord) -> str:
        msg = record.getMessage()
        return msg if record.levelno < logging.WARNING else f"{record.levelname.lower()}: {msg}"


#: the project's packages, whose log records a command shows on stderr
PROJECT_LOGGERS = ("wbc_classic", "deep", "benchmarks", "segmentation", "features")


@contextlib.contextmanager
def log_to_stderr(level: int = logging.INFO) -> Iterator[None]:
    """Show the project's log records on stderr while a command runs.

    Library code logs (it never prints); a command's ``main`` wraps its work in this so that
    progress and warnings reach the user as one-line messages (``warning: ...``). The handler
    writes to the ``sys.stderr`` of the moment and is removed afterwards.
    """
    import sys

    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_CliFormatter())
    handler.setLevel(level)
    loggers = [logging.getLogger(name) for name in PROJECT_LOGGERS]
    old_levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.addHandler(handler)
        if lg.getEffectiveLevel() > level:
            lg.setLevel(level)
    try:
        yield
    finally:
        for lg, old in zip(loggers, old_levels, strict=True):
            lg.removeHandler(handler)
            lg.setLevel(old)
