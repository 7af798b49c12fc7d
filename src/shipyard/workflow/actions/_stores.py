"""Where a run's artifacts and the caches shared between runs are kept.

:class:`ArtifactStore` and :class:`CacheStore` are the plug-in points (the store service
implements them over HTTP); ``LocalArtifactStore`` and ``LocalCacheStore`` (in their own
modules, on the plumbing below) keep everything in files under one root directory. Both:

- write every file to ``<root>/tmp`` first, fsync it and rename it into place, and make
  an entry visible only by renaming its metadata file last, so a crash never leaves a
  partial entry visible;
- record the sha256 of each blob and check it on every read;
- serialise changes with an ``flock`` on ``<root>/lock``, so any number of threads and
  processes can use one root at once.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import tempfile
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Protocol

from shipyard.errors import StoreError

__all__ = [
    "Artifact",
    "ArtifactStore",
    "CacheEntry",
    "CacheStore",
    "StoreError",
]

_CHUNK = 1 << 20
_STALE_TEMP_SECONDS = 24 * 3600


@dataclass(frozen=True, slots=True)
class Artifact:
    """One uploaded artifact: a zip of files with relative paths."""

    id: int
    run_id: str
    name: str
    size: int  # bytes of the zip
    digest: str  # sha256 hex of the zip
    created_at: float
    expires_at: float | None
    files: tuple[str, ...]  # relative POSIX paths, in upload order


@dataclass(frozen=True, slots=True)
class CacheEntry:
    """One saved cache: an archive under a key, for one cache version."""

    key: str
    version: str
    size: int
    digest: str  # sha256 hex of the archive
    created_at: float
    last_accessed_at: float
    seq: int  # orders entries saved in the same clock tick


class ArtifactStore(Protocol):
    """Artifacts of runs. Names are unique within a run."""

    def upload(
        self,
        run_id: str,
        name: str,
        files: Iterable[tuple[str, Path]],
        *,
        overwrite: bool = False,
        retention_days: int | None = None,
        compression_level: int = 6,
    ) -> Artifact:
        """Store ``files`` (relative path, file on disk) as artifact ``name`` of the run.

        Raises :class:`StoreError` when the name is invalid or already taken and
        ``overwrite`` is false; with ``overwrite`` the old artifact is replaced.
        """
        ...

    def list(self, run_id: str) -> list[Artifact]:
        """The run's artifacts that have not expired, oldest first."""
        ...

    def get(self, run_id: str, name: str) -> Artifact | None:
        """The run's artifact called ``name``, if there is one."""
        ...

    def download(self, run_id: str, name: str, dest: Path) -> Artifact:
        """Extract artifact ``name`` into ``dest`` after checking its digest."""
        ...

    def delete(self, run_id: str, name: str) -> bool:
        """Remove an artifact; false when there was none."""
        ...


class CacheStore(Protocol):
    """Caches shared between runs, immutable once saved, evicted least recently used."""

    def lookup(self, key: str, restore_keys: Sequence[str], version: str) -> CacheEntry | None:
        """Find the entry to restore, as GitHub does.

        Only entries of ``version`` count. First an entry whose key is exactly ``key``;
        then the most recently saved entry whose key starts with ``key``; then, for each
        restore key in order, the most recently saved entry whose key starts with it.
        """
        ...

    def open(self, entry: CacheEntry) -> IO[bytes]:
        """The entry's archive, positioned at its start, after checking its digest.

        Marks the entry as used now (for eviction). Raises :class:`StoreError` when the
        entry is gone or its bytes do not match the recorded digest.
        """
        ...

    def save(self, key: str, version: str, archive: Path) -> CacheEntry | None:
        """Store a copy of ``archive`` under (key, version).

        Returns ``None`` without changing anything when that key and version already
        exist (entries are immutable). Raises :class:`StoreError` for an invalid key or
        an archive larger than the store's limit.
        """
        ...

    def entries(self) -> list[CacheEntry]:
        """Every entry, oldest first."""
        ...


# -- shared file plumbing -------------------------------------------------------------


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class _Root:
    """The directory layout and locking shared by both local stores."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.tmp = self.root / "tmp"
        self.blobs = self.root / "blobs"
        for d in (self.root, self.tmp, self.blobs):
            d.mkdir(parents=True, exist_ok=True)
        self._lock_path = self.root / "lock"
        self._seq_path = self.root / "seq"

    @contextlib.contextmanager
    def locked(self) -> Iterator[None]:
        # flock locks belong to the open file description, so separate opens exclude
        # each other across threads of one process as well as across processes.
        with open(self._lock_path, "a+b") as f:
            fcntl.flock(f.fileno(), fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(f.fileno(), fcntl.LOCK_UN)

    def next_seq(self) -> int:
        """A number never handed out before in this root. Call with the lock held."""
        try:
            current = int(self._seq_path.read_text() or "0")
        except FileNotFoundError:
            current = 0
        self.write_atomic(self._seq_path, str(current + 1).encode())
        return current + 1

    def temp_file(self) -> tuple[int, Path]:
        fd, name = tempfile.mkstemp(dir=self.tmp, prefix="part-")
        return fd, Path(name)

    def write_atomic(self, dest: Path, data: bytes) -> None:
        fd, tmp = self.temp_file()
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, dest)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        _fsync_dir(dest.parent)

    def copy_in(self, src: Path) -> tuple[Path, str, int]:
        """Copy ``src`` to a synced temp file; return it with its sha256 and size."""
        fd, tmp = self.temp_file()
        digest = hashlib.sha256()
        size = 0
        try:
            with os.fdopen(fd, "wb") as out, open(src, "rb") as f:
                while chunk := f.read(_CHUNK):
                    digest.update(chunk)
                    out.write(chunk)
                    size += len(chunk)
                out.flush()
                os.fsync(out.fileno())
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        return tmp, digest.hexdigest(), size

    def commit_blob(self, tmp: Path, name: str) -> Path:
        dest = self.blobs / name
        os.replace(tmp, dest)
        _fsync_dir(self.blobs)
        return dest

    def sweep_temp(self, now: float) -> None:
        """Remove temp files left by writers that died long ago."""
        for p in self.tmp.iterdir():
            with contextlib.suppress(FileNotFoundError):
                if now - p.stat().st_mtime > _STALE_TEMP_SECONDS:
                    p.unlink()


def _verified_open(path: Path, digest: str, what: str) -> IO[bytes]:
    try:
        f = open(path, "rb")  # noqa: SIM115 - handed to the caller
    except FileNotFoundError:
        raise StoreError(f"{what} is missing from the store") from None
    h = hashlib.sha256()
    while chunk := f.read(_CHUNK):
        h.update(chunk)
    if h.hexdigest() != digest:
        f.close()
        raise StoreError(f"{what} is corrupt: its sha256 is {h.hexdigest()}, expected {digest}")
    f.seek(0)
    return f


def _read_json(path: Path) -> dict[str, Any] | None:
    try:
        data: dict[str, Any] = json.loads(path.read_bytes())
    except FileNotFoundError:
        return None
    return data
