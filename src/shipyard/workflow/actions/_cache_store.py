"""The cache store kept in files: :class:`LocalCacheStore`."""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import IO

from shipyard.workflow.actions._stores import (
    CacheEntry,
    StoreError,
    _read_json,
    _Root,
    _verified_open,
)

__all__ = ["LocalCacheStore"]


def check_cache_key(key: str) -> None:
    if not key:
        raise StoreError("cache key must not be empty")
    if len(key) > 512:
        raise StoreError(f"cache key is longer than 512 characters: {key[:40]}...")
    if "," in key:
        raise StoreError(f"cache key cannot contain commas: {key}")


class LocalCacheStore:
    """A :class:`CacheStore` in files under ``root``, holding at most ``limit`` bytes.

    Layout: ``entries/<id>.json`` (metadata, the entry's visible part) and
    ``blobs/<id>.tar``, where ``id`` is derived from the key and version. Past the limit,
    the least recently used entries are deleted after each save.
    """

    DEFAULT_LIMIT = 10 * 1024**3

    def __init__(
        self, root: Path, limit: int = DEFAULT_LIMIT, *, clock: Callable[[], float] = time.time
    ) -> None:
        self._fs = _Root(root)
        self._entries = self._fs.root / "entries"
        self._entries.mkdir(exist_ok=True)
        self.limit = limit
        self._clock = clock

    @staticmethod
    def _id(key: str, version: str) -> str:
        return hashlib.sha256(f"{version}\0{key}".encode()).hexdigest()[:40]

    def _meta_path(self, key: str, version: str) -> Path:
        return self._entries / (self._id(key, version) + ".json")

    def _blob_path(self, entry: CacheEntry) -> Path:
        return self._fs.blobs / (self._id(entry.key, entry.version) + ".tar")

    @staticmethod
    def _load(path: Path) -> CacheEntry | None:
        data = _read_json(path)
        return None if data is None else CacheEntry(**data)

    def entries(self) -> list[CacheEntry]:
        """See :meth:`CacheStore.entries`."""
        found = [self._load(p) for p in self._entries.glob("*.json")]
        return sorted((e for e in found if e is not None), key=lambda e: e.seq)

    def lookup(self, key: str, restore_keys: Sequence[str], version: str) -> CacheEntry | None:
        """See :meth:`CacheStore.lookup`."""
        exact = self._load(self._meta_path(key, version))
        if exact is not None:
            return exact
        candidates = [e for e in self.entries() if e.version == version]
        for prefix in (key, *restore_keys):
            if not prefix:
                continue
            matches = [e for e in candidates if e.key.startswith(prefix)]
            if matches:
                return max(matches, key=lambda e: (e.created_at, e.seq))
        return None

    def open(self, entry: CacheEntry) -> IO[bytes]:
        """See :meth:`CacheStore.open`."""
        f = _verified_open(self._blob_path(entry), entry.digest, f"cache entry {entry.key!r}")
        meta_path = self._meta_path(entry.key, entry.version)
        with self._fs.locked():
            current = self._load(meta_path)
            if current is not None and current.digest == entry.digest:
                data = asdict(current)
                data["last_accessed_at"] = self._clock()
                self._fs.write_atomic(meta_path, json.dumps(data).encode())
        return f

    def save(self, key: str, version: str, archive: Path) -> CacheEntry | None:
        """See :meth:`CacheStore.save`."""
        check_cache_key(key)
        size = archive.stat().st_size
        if size > self.limit:
            raise StoreError(
                f"cache of {size} bytes is over the store's limit of {self.limit} bytes; not saved"
            )
        meta_path = self._meta_path(key, version)
        if meta_path.exists():
            return None
        tmp, digest, size = self._fs.copy_in(archive)
        try:
            with self._fs.locked():
                if meta_path.exists():
                    return None
                now = self._clock()
                entry = CacheEntry(
                    key=key,
                    version=version,
                    size=size,
                    digest=digest,
                    created_at=now,
                    last_accessed_at=now,
                    seq=self._fs.next_seq(),
                )
                self._fs.commit_blob(tmp, self._id(key, version) + ".tar")
                self._fs.write_atomic(meta_path, json.dumps(asdict(entry)).encode())
                self._evict(keep=entry)
                self._fs.sweep_temp(now)
        finally:
            tmp.unlink(missing_ok=True)
        return entry

    def delete(self, key: str, version: str) -> bool:
        """Remove one entry; false when there was none."""
        with self._fs.locked():
            return self._remove(self._meta_path(key, version))

    def _remove(self, meta_path: Path) -> bool:
        entry = self._load(meta_path)
        if entry is None:
            return False
        # Metadata first: once it is gone the entry is invisible, whatever happens next.
        meta_path.unlink()
        self._blob_path(entry).unlink(missing_ok=True)
        return True

    def _evict(self, keep: CacheEntry) -> None:
        entries = self.entries()
        total = sum(e.size for e in entries)
        for victim in sorted(entries, key=lambda e: (e.last_accessed_at, e.seq)):
            if total <= self.limit:
                break
            if victim.key == keep.key and victim.version == keep.version:
                continue
            if self._remove(self._meta_path(victim.key, victim.version)):
                total -= victim.size
