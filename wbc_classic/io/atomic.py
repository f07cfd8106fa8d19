"""Atomic file writing: a reader never sees a half-written file, a killed run leaves none."""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO

__all__ = ["OutputError", "atomic_path", "atomic_open", "atomic_write_bytes",
           "atomic_write_text", "check_output_dir", "check_output_file"]


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
    fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=f".tmp{path.suffix}",
                               dir=path.parent)
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
                encoding: str | None = "utf-8", newline: str | None = None) -> Iterator[IO]:
    """Open a temporary file for writing and move it onto ``path`` when the block succeeds."""
    if "b" in mode:
        encoding = None
    with atomic_path(path) as tmp, open(tmp, mode, encoding=encoding, newline=newline) as fh:
        yield fh
        fh.flush()
        os.fsync(fh.fileno())


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes) -> None:
    """Write ``data`` to ``path`` atomically."""
    with atomic_open(path, "wb") as fh:
        fh.write(data)


def atomic_write_text(path: str | os.PathLike[str], text: str) -> None:
    """Write ``text`` (UTF-8) to ``path`` atomically."""
    with atomic_open(path, "w") as fh:
        fh.write(text)
