"""Where every command keeps its on-disk caches: one rule, one function.

The cache folder is, in this order:

1. the ``--cache-dir DIR`` given to the command (``cache_dir=`` in Python);
2. else ``$WBC_CACHE_DIR``;
3. else the per-user cache folder: ``$XDG_CACHE_HOME/wbc_classic`` or
   ``~/.cache/wbc_classic``.

Never the current folder unless it is asked for.  Inside it, per-image features live at the
top level (``<key[:2]>/<key>.npz``, :mod:`wbc_classic.classical.extraction`), decoded and
resized network inputs under ``deep/`` and generated synthetic sets under ``synthetic/``.

A folder that cannot be created or written (read-only, a file in the way, no permission)
does not stop the run: :func:`resolve_cache_dir` warns on one line and uses a temporary
cache for this process instead, removed when it exits.  ``strict=True`` raises instead.
"""

from __future__ import annotations

import atexit
import contextlib
import logging
import os
import shutil
import tempfile
from pathlib import Path

logger = logging.getLogger(__name__)

__all__ = ["CacheDirError", "default_cache_root", "resolve_cache_dir"]

_TEMP_DIRS: dict[str, Path] = {}


class CacheDirError(OSError):
    """The cache folder cannot be used (``strict=True``)."""


def default_cache_root() -> Path:
    """``$WBC_CACHE_DIR`` if set, else ``$XDG_CACHE_HOME/wbc_classic`` or
    ``~/.cache/wbc_classic``."""
    env = os.environ.get("WBC_CACHE_DIR")
    if env:
        return Path(env).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".cache"
    return base / "wbc_classic"


def _unusable(path: Path) -> str | None:
    """Why ``path`` cannot serve as a cache folder, or None when it can."""
    try:
        path.mkdir(parents=True, exist_ok=True)
    except FileExistsError:
        return "a file of that name is in the way"
    except OSError as exc:
        return exc.strerror or str(exc)
    if not path.is_dir():
        return "not a folder"
    try:  # os.access lies for root and on some network file systems: really write
        fd, probe = tempfile.mkstemp(prefix=".probe.", dir=path)
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        return f"not writable ({exc.strerror or exc})"
    return None


def _temporary_cache() -> Path:
    key = str(os.getpid())
    if key not in _TEMP_DIRS:
        tmp = Path(tempfile.mkdtemp(prefix="wbc_cache_"))
        _TEMP_DIRS[key] = tmp
        atexit.register(shutil.rmtree, tmp, ignore_errors=True)
    return _TEMP_DIRS[key]


def resolve_cache_dir(cache_dir: str | os.PathLike[str] | None = None, *,
                      strict: bool = False, warn: bool = True) -> Path:
    """The cache folder by the module's rule, created and checked to be writable.

    Parameters
    ----------
    cache_dir : path-like, optional
        An explicit folder (``--cache-dir``); None applies ``$WBC_CACHE_DIR`` and then the
        per-user default.
    strict : bool
        Raise :class:`CacheDirError` when the folder cannot be used, instead of falling back
        to a temporary cache.
    warn : bool
        Print the one-line fallback warning to stderr.

    Returns
    -------
    Path
        A writable folder.
    """
    path = Path(cache_dir).expanduser() if cache_dir is not None else default_cache_root()
    why = _unusable(path)
    if why is None:
        return path
    if strict:
        raise CacheDirError(f"cache folder {str(path)!r} cannot be used: {why}")
    tmp = _temporary_cache()
    if warn:
        logger.warning("cache folder %r cannot be used (%s); using a temporary cache %r for "
                       "this run (set --cache-dir or WBC_CACHE_DIR)", str(path), why, str(tmp))
    with contextlib.suppress(OSError):
        tmp.mkdir(parents=True, exist_ok=True)
    return tmp
