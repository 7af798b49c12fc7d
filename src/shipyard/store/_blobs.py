"""Where blob bytes live: the :class:`BlobBackend` plug-in point and its filesystem form.

Writing a blob is two steps so that the service can make it visible under its own
lock: :meth:`BlobBackend.stage` streams the bytes to a private temporary place while
hashing them (the whole blob is never in memory) and checks the digest;
:meth:`BlobBackend.commit` then moves them into place atomically, or
:meth:`BlobBackend.discard` drops them. A reader never sees a partial blob.

:class:`FileBlobBackend` keeps blobs under one directory::

    <root>/ab/cd/abcd...      a blob, by its sha256 (two levels of fan-out)
    <root>/tmp/up-*           uploads in progress, each flock-ed by its writer
    <root>/quarantine/        blobs whose bytes no longer match their digest

An upload cut short (the client went away, the process was killed) leaves at most a
temp file nobody holds a lock on; :meth:`FileBlobBackend.sweep_temp` removes those.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import logging
import os
import re
import tempfile
import time
from collections.abc import AsyncIterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Protocol

import anyio.to_thread

from shipyard.errors import InvalidRequestError

__all__ = [
    "BlobBackend",
    "BlobReader",
    "BlobStat",
    "FileBlobBackend",
    "StagedBlob",
    "check_digest",
    "is_digest",
]

log = logging.getLogger("shipyard.store")

_DIGEST = re.compile(r"[0-9a-f]{64}")
CHUNK = 1 << 20


def is_digest(text: str) -> bool:
    """Whether ``text`` is a sha256 digest as the store names blobs: 64 lowercase hex."""
    return _DIGEST.fullmatch(text) is not None


def check_digest(text: str) -> str:
    """``text`` when it is a digest; :class:`InvalidRequestError` (400) otherwise."""
    if not is_digest(text):
        shown = text if len(text) <= 80 else text[:80] + "..."
        raise InvalidRequestError(
            f"{shown!r} is not a blob digest: blobs are named by their sha256 "
            "as 64 lowercase hexadecimal characters"
        )
    return text


@dataclass(frozen=True, slots=True)
class BlobStat:
    """What a backend knows of a blob it holds."""

    size: int
    written_at: float  # Unix seconds


@dataclass(eq=False)
class StagedBlob:
    """Bytes received and hashed, not yet visible. ``handle`` belongs to the backend."""

    digest: str
    size: int
    handle: object = field(repr=False)


class BlobReader(Protocol):
    """An open blob (or a range of one), read front to back."""

    def read(self, size: int) -> bytes:
        """Up to ``size`` bytes; ``b""`` at the end of the blob or range."""
        ...

    def close(self) -> None: ...


class BlobBackend(Protocol):
    """Storage of blob bytes by digest. Methods other than :meth:`stage` block."""

    async def stage(
        self, chunks: AsyncIterable[bytes], expected: str | None = None
    ) -> StagedBlob:
        """Receive a blob from ``chunks`` into a private place, hashing as it comes.

        Raises :class:`InvalidRequestError` (nothing kept) when ``expected`` is given and
        the bytes' sha256 differs. Whatever ``chunks`` raises is raised, nothing kept.
        """
        ...

    def commit(self, staged: StagedBlob) -> None:
        """Make a staged blob readable under its digest, atomically."""
        ...

    def discard(self, staged: StagedBlob) -> None:
        """Drop a staged blob; nothing happens when it was already committed or dropped."""
        ...

    def open(self, digest: str, start: int = 0, length: int | None = None) -> BlobReader | None:
        """The blob's bytes from ``start`` (``length`` of them, or to the end); None when absent."""
        ...

    def stat(self, digest: str) -> BlobStat | None:
        """The blob's size and when it was written; None when absent."""
        ...

    def delete(self, digest: str) -> bool:
        """Remove a blob; false when there was none."""
        ...

    def quarantine(self, digest: str) -> bool:
        """Move a corrupt blob aside (kept for inspection, never served); false when absent."""
        ...

    def sweep_temp(self) -> int:
        """Remove what uploads that died left behind; return how many."""
        ...

    def stored(self) -> Iterator[tuple[str, float]]:
        """Every blob kept: its digest and when it was written (Unix seconds)."""
        ...


class _RangeReader:
    """A file read from its position for at most ``remaining`` bytes."""

    def __init__(self, f: IO[bytes], remaining: int | None) -> None:
        self._f = f
        self._remaining = remaining

    def read(self, size: int) -> bytes:
        if self._remaining is not None:
            size = min(size, self._remaining)
            if size <= 0:
                return b""
        data = self._f.read(size)
        if self._remaining is not None:
            self._remaining -= len(data)
        return data

    def close(self) -> None:
        self._f.close()


@dataclass(eq=False)
class _TempFile:
    path: Path
    file: IO[bytes]
    done: bool = False


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class FileBlobBackend:
    """A :class:`BlobBackend` on the local filesystem under ``root``.

    ``temp_grace`` is how old (seconds since its last write) an unlocked temp file must
    be before :meth:`sweep_temp` removes it: the writer of a brand-new temp file holds
    its lock a moment after creating it.
    """

    def __init__(self, root: Path, *, temp_grace: float = 60.0, chunk_size: int = CHUNK) -> None:
        self.root = Path(root)
        self.tmp = self.root / "tmp"
        self.quarantined = self.root / "quarantine"
        for d in (self.root, self.tmp, self.quarantined):
            d.mkdir(parents=True, exist_ok=True)
        self.temp_grace = temp_grace
        self.chunk_size = chunk_size

    def path(self, digest: str) -> Path:
        """Where blob ``digest`` is kept."""
        return self.root / digest[:2] / digest[2:4] / digest

    async def stage(
        self, chunks: AsyncIterable[bytes], expected: str | None = None
    ) -> StagedBlob:
        """See :meth:`BlobBackend.stage`."""
        fd, name = tempfile.mkstemp(dir=self.tmp, prefix="up-")
        path = Path(name)
        f = os.fdopen(fd, "wb", buffering=0)
        hasher = hashlib.sha256()
        size = 0
        buffer = bytearray()

        def flush() -> None:
            hasher.update(buffer)
            f.write(buffer)

        try:
            # Held until commit or discard: the sweep leaves locked temp files alone.
            fcntl.flock(f.fileno(), fcntl.LOCK_EX)
            async for chunk in chunks:
                buffer += chunk
                size += len(chunk)
                if len(buffer) >= self.chunk_size:
                    # Write and hash off the event loop, a chunk at a time.
                    await anyio.to_thread.run_sync(flush)
                    buffer.clear()
            if buffer:
                await anyio.to_thread.run_sync(flush)
                buffer.clear()
            await anyio.to_thread.run_sync(os.fsync, f.fileno())
            digest = hasher.hexdigest()
            if expected is not None and digest != expected:
                raise InvalidRequestError(
                    f"the bytes sent do not match the digest: their sha256 is {digest}, "
                    f"not {expected}; nothing was stored"
                )
        except BaseException:
            f.close()
            path.unlink(missing_ok=True)
            raise
        return StagedBlob(digest, size, _TempFile(path, f))

    @staticmethod
    def _temp(staged: StagedBlob) -> _TempFile:
        handle = staged.handle
        if not isinstance(handle, _TempFile):
            raise TypeError("this blob was not staged by a FileBlobBackend")
        return handle

    def commit(self, staged: StagedBlob) -> None:
        """See :meth:`BlobBackend.commit`."""
        temp = self._temp(staged)
        if temp.done:
            raise ValueError("this staged blob was already committed or discarded")
        dest = self.path(staged.digest)
        try:
            dest.parent.mkdir(parents=True, exist_ok=True)
            os.replace(temp.path, dest)
            temp.done = True
            _fsync_dir(dest.parent)
        finally:
            temp.file.close()  # releases the lock
            if not temp.done:
                temp.path.unlink(missing_ok=True)
                temp.done = True

    def discard(self, staged: StagedBlob) -> None:
        """See :meth:`BlobBackend.discard`."""
        temp = self._temp(staged)
        if temp.done:
            return
        temp.done = True
        temp.path.unlink(missing_ok=True)  # while still locked: the sweep cannot race us
        temp.file.close()

    def open(self, digest: str, start: int = 0, length: int | None = None) -> BlobReader | None:
        """See :meth:`BlobBackend.open`."""
        try:
            f = open(self.path(digest), "rb")  # noqa: SIM115 - the reader owns it
        except FileNotFoundError:
            return None
        if start:
            f.seek(start)
        return _RangeReader(f, length)

    def stat(self, digest: str) -> BlobStat | None:
        """See :meth:`BlobBackend.stat`."""
        try:
            st = self.path(digest).stat()
        except FileNotFoundError:
            return None
        return BlobStat(st.st_size, st.st_mtime)

    def delete(self, digest: str) -> bool:
        """See :meth:`BlobBackend.delete`."""
        try:
            self.path(digest).unlink()
        except FileNotFoundError:
            return False
        return True

    def quarantine(self, digest: str) -> bool:
        """See :meth:`BlobBackend.quarantine`."""
        dest = self.quarantined / f"{digest}.{time.time_ns()}"
        try:
            os.replace(self.path(digest), dest)
        except FileNotFoundError:
            return False
        return True

    def sweep_temp(self) -> int:
        """See :meth:`BlobBackend.sweep_temp`."""
        removed = 0
        cutoff = time.time() - self.temp_grace
        for path in self.tmp.iterdir():
            with contextlib.suppress(FileNotFoundError):
                if path.stat().st_mtime > cutoff:
                    continue
                with open(path, "rb") as f:
                    try:
                        fcntl.flock(f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
                    except BlockingIOError:
                        continue  # a live upload
                    path.unlink()
                    removed += 1
        if removed:
            log.info("removed %d temp file(s) of interrupted uploads", removed)
        return removed

    def stored(self) -> Iterator[tuple[str, float]]:
        """See :meth:`BlobBackend.stored`."""
        for top in sorted(self.root.iterdir()):
            if len(top.name) != 2 or not top.is_dir():
                continue
            for mid in sorted(top.iterdir()):
                if not mid.is_dir():
                    continue
                for path in mid.iterdir():
                    if is_digest(path.name):
                        with contextlib.suppress(FileNotFoundError):
                            yield path.name, path.stat().st_mtime
