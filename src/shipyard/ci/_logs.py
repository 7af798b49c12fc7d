"""Job logs on local disk: ``<data_dir>/logs/<job_id>.log``, appended by byte offset.

A runner sends its log in pieces, each at the offset it starts at. A piece that starts
below the current size (a retried upload) has its already-stored part skipped, so
nothing is written twice; one that starts past the size would leave a hole and is
refused with the size, so the runner resends from there.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path

__all__ = ["LogGap", "LogStore"]

_STRIPES = 64


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

    def append(self, job_id: int, offset: int, data: bytes) -> int:
        """Write ``data`` at ``offset`` (skipping what is already there); the new size."""
        with self._lock(job_id):
            size = self.size(job_id)
            if offset > size:
                raise LogGap(size)
            skip = size - offset
            if skip < len(data):
                with self.path(job_id).open("ab") as fh:
                    fh.write(data[skip:])
                size += len(data) - skip
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
