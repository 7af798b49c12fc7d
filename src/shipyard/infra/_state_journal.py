"""The journal: changes since the last version, durable one frame at a time.

The file ``journal`` is a sequence of *frames*, each ``@ <length> <checksum>\\n`` (the
checksum is the first 32 hex digits of the SHA-256 of the payload) followed by a payload
of JSON records, one per line. The first frame holds the ``begin`` record (the version
the journal applies to, who wrote it); each later frame holds the records of one group
commit (``put``, ``rm``, ``outputs``, ``restore``).

Writing is fast because the file is preallocated with zeros: appending a frame then
overwrites blocks that already exist, and ``fdatasync`` has only data to flush, no
file size or extent change (about a quarter of a millisecond here, against one to two
with a growing file). Threads that record at the same time share one ``fdatasync``
(group commit). A reader stops at the zeros. A frame cut short by a crash can only be the
last one written, since each frame is durable before the next is written: it is dropped.
A damaged frame with valid frames after it is corruption, and is reported.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from shipyard.errors import StateError
from shipyard.infra._state_codec import Corrupt, dumps

__all__ = [
    "GroupCommit",
    "JournalContents",
    "JournalFile",
    "frame",
    "fsync_dir",
    "parse_journal",
]

JOURNAL_FORMAT = "shipyard-infra-journal"
_HEADER = re.compile(rb"@ (\d{1,10}) ([0-9a-f]{32})\n")
_PREALLOCATE = 256 * 1024
_MAX_GROWTH = 16 * 1024 * 1024
_fdatasync: Callable[[int], None] = getattr(os, "fdatasync", os.fsync)


def frame(payload: bytes) -> bytes:
    """``payload`` with its frame header."""
    checksum = hashlib.sha256(payload).hexdigest()[:32].encode("ascii")
    return b"@ %d %s\n" % (len(payload), checksum) + payload


def _frame_at(data: bytes, pos: int) -> tuple[bytes, int] | None:
    """The payload of a valid frame at ``pos`` and the position after it, or None."""
    m = _HEADER.match(data, pos)
    if m is None:
        return None
    start = m.end()
    end = start + int(m.group(1))
    if end > len(data):
        return None
    payload = data[start:end]
    if hashlib.sha256(payload).hexdigest()[:32].encode("ascii") != m.group(2):
        return None
    return payload, end


def _valid_frame_after(data: bytes, pos: int) -> bool:
    i = data.find(b"@ ", pos + 1)
    while i >= 0:
        if _frame_at(data, i) is not None:
            return True
        i = data.find(b"@ ", i + 1)
    return False


@dataclass(slots=True)
class JournalContents:
    """A journal as read: its begin record, its change records, and a dropped torn tail."""

    begin: dict[str, Any]
    records: list[dict[str, Any]]
    torn_at: int | None  # byte offset of the torn last frame that was dropped


def parse_journal(data: bytes) -> JournalContents:
    """The records of a journal's bytes; Corrupt (with the byte offset) if damaged."""
    payloads: list[bytes] = []
    pos = 0
    torn_at: int | None = None
    while pos < len(data):
        got = _frame_at(data, pos)
        if got is None:
            if _valid_frame_after(data, pos):
                raise Corrupt(f"the frame at byte {pos} is damaged and valid frames follow it")
            if data.count(0, pos) != len(data) - pos:
                torn_at = pos
            break
        payload, pos = got
        payloads.append(payload)
    if not payloads:
        raise Corrupt("it has no begin record")
    records: list[dict[str, Any]] = []
    for payload in payloads:
        for line in payload.splitlines():
            try:
                rec = json.loads(line)
            except ValueError:
                raise Corrupt("a record with a valid checksum is not JSON") from None
            if not isinstance(rec, dict) or not isinstance(rec.get("op"), str):
                raise Corrupt("a record has no op")
            records.append(rec)
    begin = records[0]
    if begin.get("op") != "begin" or begin.get("format") != JOURNAL_FORMAT:
        raise Corrupt("its first record is not a begin record")
    if not isinstance(begin.get("base"), int) or not isinstance(begin.get("lineage"), str):
        raise Corrupt("its begin record has no base version or lineage")
    return JournalContents(begin, records[1:], torn_at)


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class JournalFile:
    """A journal being written by this process (a fresh file, never someone else's)."""

    def __init__(self, path: Path, fd: int, offset: int, size: int) -> None:
        self.path = path
        self._fd = fd
        self._offset = offset
        self._size = size

    @classmethod
    def create(cls, path: Path, begin: dict[str, Any], *, aside: Path | None) -> JournalFile:
        """Write a new journal (begin record, zeros) and rename it into place.

        The journal already there, if any, is moved to ``aside`` when given (a damaged
        one is kept for inspection), else replaced.
        """
        head = frame(dumps({**begin, "op": "begin", "format": JOURNAL_FORMAT}) + b"\n")
        size = max(_PREALLOCATE, len(head))
        tmp = path.with_name(f".{path.name}.{os.getpid()}.{os.urandom(4).hex()}.tmp")
        fd = os.open(tmp, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            _write_all(fd, head + bytes(size - len(head)), 0)
            os.fsync(fd)
            if aside is not None:
                with contextlib.suppress(FileNotFoundError):
                    os.replace(path, aside)
            os.replace(tmp, path)
            fsync_dir(path.parent)
        except BaseException:
            os.close(fd)
            tmp.unlink(missing_ok=True)
            raise
        return cls(path, fd, len(head), size)

    def write(self, data: bytes) -> None:
        """Append ``data`` and make it durable."""
        end = self._offset + len(data)
        if end > self._size:
            growth = max(end - self._size, min(self._size, _MAX_GROWTH))
            _write_all(self._fd, bytes(growth), self._size)
            self._size += growth
        _write_all(self._fd, data, self._offset)
        _fdatasync(self._fd)
        self._offset = end

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1


def _write_all(fd: int, data: bytes, offset: int) -> None:
    view = memoryview(data)
    while view:
        n = os.pwrite(fd, view, offset)
        view = view[n:]
        offset += n


class GroupCommit:
    """Appends records to a journal so that concurrent writers share one fdatasync.

    Every method is called with ``cond`` held. :meth:`wait` makes the caller the
    *leader* when no write is in progress: it takes every pending record, releases
    ``cond`` while it writes them as one frame, and wakes the others. A failed write
    poisons the journal (after a failed fsync the kernel's view of the file cannot be
    trusted); the session's next commit writes a version and starts a new journal.
    """

    def __init__(self, cond: threading.Condition, open_file: Callable[[], JournalFile]) -> None:
        self._cond = cond
        self._open_file = open_file
        self.file: JournalFile | None = None
        self._pending: list[bytes] = []
        self._enqueued = 0
        self._durable = 0
        self._flushing = False
        self._error: str | None = None

    def enqueue(self, record: bytes) -> int:
        """Queue ``record`` (one JSON object); its sequence number for :meth:`wait`."""
        if self._error is not None:
            raise StateError(self._error)
        self._pending.append(record + b"\n")
        self._enqueued += 1
        return self._enqueued

    def last(self) -> int:
        return self._enqueued

    def wait(self, seq: int) -> None:
        """Return once record ``seq`` (and every one before it) is durable."""
        while self._durable < seq:
            if self._error is not None:
                raise StateError(self._error)
            if self._flushing:
                self._cond.wait()
                continue
            batch, self._pending = self._pending, []
            upto = self._enqueued
            self._flushing = True
            self._cond.release()
            failure: BaseException | None = None
            try:
                if self.file is None:
                    self.file = self._open_file()
                self.file.write(frame(b"".join(batch)))
            except BaseException as e:
                failure = e
            finally:
                self._cond.acquire()
                self._flushing = False
                self._cond.notify_all()
            if failure is not None:
                where = self.file.path if self.file is not None else "the journal"
                self._error = f"cannot write {where}: {failure}"
                if not isinstance(failure, Exception):
                    raise failure
                raise StateError(self._error) from failure
            self._durable = upto

    def settle(self) -> None:
        """Wait for a write in progress; records still queued stay queued (a commit
        that writes a version does not need them in the journal)."""
        while self._flushing:
            self._cond.wait()
        if self._error is not None:
            raise StateError(self._error)

    def reset(self) -> None:
        """Forget the journal file (after a version made it redundant)."""
        if self.file is not None:
            self.file.close()
            self.file = None
        self._pending = []
        self._durable = self._enqueued
        self._error = None

    def close(self) -> None:
        """Close the journal file, leaving it for the next session to replay."""
        while self._flushing:
            self._cond.wait()
        if self.file is not None:
            self.file.close()
            self.file = None
        self._error = "the state session is closed"
