"""wbc_classic.io.atomic: what atomic_open flushes."""

from __future__ import annotations

import os

from wbc_classic.io import atomic
from wbc_classic.io.atomic import atomic_open


def test_atomic_open_fsyncs_unless_told_not_to(tmp_path, monkeypatch):
    calls = []
    real = os.fsync
    monkeypatch.setattr(atomic.os, "fsync", lambda fd: (calls.append(fd), real(fd)))
    with atomic_open(tmp_path / "a.txt") as fh:
        fh.write("a")
    assert len(calls) == 1
    with atomic_open(tmp_path / "b.bin", "wb", fsync=False) as fh:
        fh.write(b"b")
    assert len(calls) == 1  # no flush to the disk, the file is still complete
    assert (tmp_path / "a.txt").read_text() == "a"
    assert (tmp_path / "b.bin").read_bytes() == b"b"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.txt", "b.bin"]
