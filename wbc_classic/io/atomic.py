"""Atomic file writing: a reader never sees a half-written file.

A write goes to a temporary file beside the target, named
``.<stem>.<host>-<pid>.<random>.tmp<suffix>``, and is renamed onto the target when complete.
A run killed with ``kill -9`` cannot remove its temporary file; :func:`clean_stale_temporaries`
removes such leftovers on the next run (those of a process that no longer exists on this
host, and any older than a day), so a cache folder does not fill up with them.
"""

from __future__ import annotations

import contextlib
import os
import re
import socket
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import IO

__all__ = ["OutputError", "atomic_path", "atomic_open", "atomic_write_bytes",
           "atomic_write_text", "check_output_dir", "check_output_file",
           "clean_stale_temporaries"]

_HOST = re.sub(r"[^A-Za-z0-9_]", "_", socket.gethostname() or "host")[:40]
# .<stem>.<host>-<pid>.<mkstemp random>.tmp<suffix>; the host-pid part is absent in files
# written before it was added
_TMP_NAME = re.compile(r"^\.(?P<stem>.*?)\.(?:(?P<host>[A-Za-z0-9_]+)-(?P<pid>\d+)\.)?"
                       r"[A-Za-z0-9_]{6,}\.tmp(?:\.[^.]*)?$")


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    except OSError:
        return True
    return True


def clean_stale_temporaries(folder: str | os.PathLike[str], *, max_age: float = 86400.0,
                            legacy_age: float = 3600.0) -> list[Path]:
    """Remove temporary files left in ``folder`` by killed :func:`atomic_path` writes.

    A temporary file is removed when the process that wrote it no longer runs on this host,
    when it is older than ``max_age`` seconds (a writer on another host sharing the folder),
    or, for names without a host and pid (older versions), older than ``legacy_age``.
    A live writer's file is never touched.  Errors (a file already gone, no permission)
    are ignored.

    Returns
    -------
    list of Path
        The removed files.
    """
    removed: list[Path] = []
    folder = Path(folder)
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return removed
    now = time.time()
    for entry in entries:
        m = _TMP_NAME.match(entry.name)
        if m is None or not entry.is_file(follow_symlinks=False):
            continue
        try:
            age = now - entry.stat(follow_symlinks=False).st_mtime
        except OSError:
            continue
        if m.group("pid") is None:
            stale = age > legacy_age
        elif m.group("host") == _HOST:
            stale = not _pid_alive(int(m.group("pid"))) or age > max_age
        else:
            stale = age > max_age
        if stale:
            with contextlib.suppress(OSError):
                os.unlink(entry.path)
                removed.append(Path(entry.path))
    return removed


class OutputError(OSError):
    """An output path cannot be written; the message names it and says why."""


def _nearest_existing(path: Path) -> Path:
    p = path
    while not p.exists() and p != p.parent:
        p = p.parent
    return p


def _probe_dir(folder: Path, target: Path, what: str) -> None:
    """Raise OutputError unless a file can be created in ``folder`` (for ``target``)."""
    if not folder.is_dir():
        raise OutputError(f"cannot write {what} {str(target)!r}: {str(folder)!r} is a file, "
                          f"not a folder")
    try:  # os.access is wrong for root and some network file systems: really try
        fd, probe = tempfile.mkstemp(prefix=".write-probe.", dir=folder)
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise OutputError(f"cannot write {what} {str(target)!r}: folder {str(folder)!r} is "
                          f"not writable ({exc.strerror or exc})") from None


def check_output_file(path: str | os.PathLike[str], what: str = "output") -> Path:
    """Check, before any work starts, that the file ``path`` can be written atomically.

    It must not be an existing folder, and its folder (or the nearest existing ancestor, in
    which the missing folders will be created) must be a writable folder.  Nothing is created.

    Raises
    ------
    OutputError
        One line naming the path and the problem.
    """
    p = Path(path)
    if p.is_dir():
        raise OutputError(f"cannot write {what} {str(p)!r}: it is an existing folder; give a "
                          f"file name")
    if str(p).endswith(("/", os.sep)):
        raise OutputError(f"cannot write {what} {str(p)!r}: a file name is needed, not a "
                          f"folder")
    _probe_dir(_nearest_existing(p.parent if str(p.parent) else Path(".")), p, what)
    return p


def check_output_dir(path: str | os.PathLike[str], what: str = "output folder") -> Path:
    """Check, before any work starts, that ``path`` is (or can be made) a writable folder.

    Raises
    ------
    OutputError
        When it is an existing file, or it (or its nearest existing ancestor) is not writable.
    """
    p = Path(path)
    if p.exists() and not p.is_dir():
        raise OutputError(f"cannot write {what} {str(p)!r}: it is an existing file, not a "
                          f"folder")
    _probe_dir(_nearest_existing(p), p, what)
    return p


def _default_mode() -> int:
    # mkstemp creates 0600 files; give results the permissions a plain open() would.
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success rename it onto ``path``.

    Use it with writers that want a file name (``np.save``, ``fig.savefig``, ``skops``).
    On an exception the temporary file is removed and ``path`` is left untouched.
    The temporary name keeps ``path``'s suffix so format sniffing by extension still works.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}.{_HOST}-{os.getpid()}.",
                               suffix=f".tmp{path.suffix}", dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        os.chmod(tmp_path, _default_mode())
        os.replace(tmp_path, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp_path.unlink()
        raise


@contextlib.contextmanager
def atomic_open(path: str | os.PathLike[str], mode: str = "w",
                encoding: str | None = "utf-8", newline: str | None = None, *,
                fsync: bool = True) -> Iterator[IO]:
    """Open a temporary file for writing and move it onto ``path`` when the block succeeds.

    ``fsync=False`` skips flushing the file to the disk before the rename: a reader still
    never sees a half-written file, but after a power cut the file may be empty or lost.
    For entries that are recomputed when unreadable (the feature cache), where the flush
    costs more than the work it protects (~3 ms per file).
    """
    if "b" in mode:
        encoding = None
    with atomic_path(path) as tmp, open(tmp, mode, encoding=encoding, newline=newline) as fh:
        yield fh
        fh.flush()
        if fsync:
            os.fsync(fh.fileno())


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes) -> None:
    """Write ``data`` to ``path`` atomically."""
    with atomic_open(path, "wb") as fh:
        fh.write(data)


def atomic_write_text(path: str | os.PathLike[str], text: str) -> None:
    """Write ``text`` (UTF-8) to ``path`` atomically."""
    with atomic_open(path, "w") as fh:
        fh.write(text)
