"""Job logs on local disk: ``<data_dir>/logs/<job_id>.log``, appended by byte offset.

A runner sends its log in pieces, each at the offset it starts at. A piece that starts
below the current size (a retried upload) has its already-stored part skipped, so
nothing is written twice; one that starts past the size would leave a hole and is
refused with the size, so the runner resends from there. An append is written with one
``writev`` of the pieces its body arrived in, never joined into one buffer first.
Whether a job's log is still open for appends after the job ended is
:mod:`shipyard.ci._joblogs`'s business.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Sequence
from pathlib import Path

__all__ = ["LogGap", "LogStore"]

_STRIPES = 64
_IOV_MAX = 1024  # pieces one writev takes (Linux's limit)


class LogGap(Exception):
    """An append past the end of the log; ``size`` is where the runner must resume."""

    def __init__(self, size: int) -> None:
        super().__init__(f"the log holds {size} bytes; send from offset {size}")
        self.size = size


class LogStore:
    """Per-job log files under one folder."""

    def __init__(self, root: Path) -> None:
        self.root = root
        root.mkdir(parents=True, exist_ok=True)
        # Striped by job id: bounded, and appends to one log never interleave.
        self._stripes = [threading.Lock() for _ in range(_STRIPES)]

    def _lock(self, job_id: int) -> threading.Lock:
        return self._stripes[job_id % _STRIPES]

    def path(self, job_id: int) -> Path:
        return self.root / f"{job_id}.log"

    def size(self, job_id: int) -> int:
        try:
            return self.path(job_id).stat().st_size
        except FileNotFoundError:
            return 0

    def exists(self, job_id: int) -> bool:
        return self.path(job_id).exists()

    def append(self, job_id: int, offset: int, data: bytes | Sequence[bytes]) -> int:
        """Write ``data`` (bytes, or its pieces in order) at ``offset``, skipping what is
        already there; the new size. Pieces are written as they are, never joined."""
        pieces = [data] if isinstance(data, bytes) else data
        length = sum(len(p) for p in pieces)
        with self._lock(job_id):
            size = self.size(job_id)
            if offset > size:
                raise LogGap(size)
            skip = size - offset
            if skip < length:
                fd = os.open(self.path(job_id), os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
                try:
                    _write_all(fd, _after(pieces, skip))
                finally:
                    os.close(fd)
                size += length - skip
            return size

    def mark(self, job_id: int, line: str) -> int:
        """Append a line of ci's own (a retried job's marker); the new size."""
        with self._lock(job_id):
            size = self.size(job_id)
            text = line.encode()
            if size:
                with self.path(job_id).open("rb") as fh:
                    fh.seek(size - 1)
                    if fh.read(1) != b"\n":
                        text = b"\n" + text
            with self.path(job_id).open("ab") as fh:
                fh.write(text)
            return size + len(text)

    def sync(self, job_id: int) -> None:
        """Flush the log to disk (the job ended: it must survive a crash)."""
        with self._lock(job_id):
            try:
                fd = os.open(self.path(job_id), os.O_RDONLY)
            except FileNotFoundError:
                return
            try:
                os.fsync(fd)
            finally:
                os.close(fd)

    def read(self, job_id: int, offset: int, limit: int = 1 << 20) -> bytes:
        try:
            with self.path(job_id).open("rb") as fh:
                fh.seek(offset)
                return fh.read(limit)
        except FileNotFoundError:
            return b""

    def remove(self, job_id: int) -> None:
        with self._lock(job_id):
            self.path(job_id).unlink(missing_ok=True)


def _after(pieces: Sequence[bytes], skip: int) -> list[memoryview]:
    """The pieces less their first ``skip`` bytes, without copying."""
    out = []
    for piece in pieces:
        if skip >= len(piece):
            skip -= len(piece)
            continue
        out.append(memoryview(piece)[skip:])
        skip = 0
    return out


def _write_all(fd: int, views: list[memoryview]) -> None:
    """``os.writev`` until every byte is written (it may write less than asked)."""
    while views:
        written = os.writev(fd, views[:_IOV_MAX])
        while views and written >= len(views[0]):
            written -= len(views[0])
            views.pop(0)
        if written:
            views[0] = views[0][written:]
