"""What the store knows about its blobs, and the blobs' life and death.

:class:`BlobCatalog` pairs the ``blobs`` table with a :class:`BlobBackend`. A blob's
row and its bytes change together, under a lock on the row (``SELECT ... FOR UPDATE``
on PostgreSQL; SQLite serialises every writer), so a put, a garbage collection and a
quarantine of the same digest never interleave: a row exists exactly when the bytes do.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from sqlalchemy import Connection, delete, func, insert, select, text

from shipyard.errors import InvalidRequestError
from shipyard.service import Database
from shipyard.store._blobs import BlobBackend, BlobReader, StagedBlob
from shipyard.store._tables import artifacts, blobs, caches, logs

__all__ = ["BlobCatalog", "BlobInfo", "StoreMetrics"]

log = logging.getLogger("shipyard.store")


@dataclass(frozen=True, slots=True)
class BlobInfo:
    """A stored blob."""

    digest: str
    size: int
    created_at: float


class StoreMetrics:
    """The store's own Prometheus metrics, on the service's registry."""

    def __init__(self, registry: CollectorRegistry, db: Database) -> None:
        self.cache_hits = Counter(
            "shipyard_store_cache_hits", "Cache lookups that found an entry", registry=registry
        )
        self.cache_misses = Counter(
            "shipyard_store_cache_misses", "Cache lookups that found nothing", registry=registry
        )
        self.cache_evictions = Counter(
            "shipyard_store_cache_evictions", "Cache entries evicted past the size limit",
            registry=registry,
        )
        self.quarantined = Counter(
            "shipyard_store_blobs_quarantined", "Blobs found corrupt and moved aside",
            registry=registry,
        )
        self.collected = Counter(
            "shipyard_store_blobs_collected", "Unreferenced blobs removed by garbage collection",
            registry=registry,
        )
        registry.register(_StoredCollector(db))


class _StoredCollector(Collector):
    """Bytes and blobs stored, counted in the database when scraped (exact across replicas)."""

    def __init__(self, db: Database) -> None:
        self._db = db

    def collect(self) -> Iterator[Metric]:
        try:
            with self._db.read() as conn:
                count, total = conn.execute(
                    select(func.count(), func.coalesce(func.sum(blobs.c.size), 0))
                ).one()
        except Exception:  # a scrape must not fail because the database is down
            log.warning("cannot count stored blobs for /metrics", exc_info=True)
            return
        bytes_family = GaugeMetricFamily("shipyard_store_bytes", "Bytes of blobs stored")
        bytes_family.add_metric([], float(total))
        yield bytes_family
        count_family = GaugeMetricFamily("shipyard_store_blobs", "Blobs stored")
        count_family.add_metric([], float(count))
        yield count_family

    def describe(self) -> Iterable[Metric]:
        return []  # nothing at registration: the database is queried on scrape only


class BlobCatalog:
    """The ``blobs`` table and the backend holding the bytes, kept in step."""

    def __init__(
        self,
        db: Database,
        backend: BlobBackend,
        metrics: StoreMetrics,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.db = db
        self.backend = backend
        self.metrics = metrics
        self.clock = clock

    def get(self, digest: str) -> BlobInfo | None:
        """The blob's row, if it is stored."""
        with self.db.read() as conn:
            row = conn.execute(select(blobs).where(blobs.c.digest == digest)).one_or_none()
        return None if row is None else BlobInfo(row.digest, row.size, row.created_at)

    def lock(self, conn: Connection, digest: str) -> BlobInfo | None:
        """Take the digest's lock until ``conn``'s transaction ends; the blob's row, if any.

        Every change of a blob's row or bytes, and every new record referring to a blob,
        happens under it. On PostgreSQL it is an advisory lock on the digest (it works
        before a row exists); SQLite already serialises all writers.
        """
        if not self.db.is_sqlite:
            conn.execute(text("SELECT pg_advisory_xact_lock(hashtextextended(:d, 0))"), {"d": digest})
        row = conn.execute(
            select(blobs).where(blobs.c.digest == digest).with_for_update()
        ).one_or_none()
        return None if row is None else BlobInfo(row.digest, row.size, row.created_at)

    def require(self, conn: Connection, digest: str, size: int | None = None) -> BlobInfo:
        """The locked row of a blob a new record refers to; 400 when it is not stored."""
        info = self.lock(conn, digest)
        if info is None:
            raise InvalidRequestError(
                f"blob {digest} is not stored: upload it first (PUT /blobs/{digest})"
            )
        if size is not None and size != info.size:
            raise InvalidRequestError(
                f"blob {digest} is {info.size} bytes, not {size} as the request says"
            )
        return info

    def add(
        self, staged: StagedBlob, then: Callable[[Connection, BlobInfo], None] | None = None
    ) -> bool:
        """Make a staged blob visible; true when it was new, false when already stored.

        ``then`` runs in the same transaction, with the blob's lock held, to record what
        refers to the blob (so it cannot be collected in between). ``staged`` is
        consumed either way (committed or discarded).
        """
        try:
            with self.db.write() as conn:
                existing = self.lock(conn, staged.digest)
                if existing is not None and self._size(staged.digest) == existing.size:
                    self.backend.discard(staged)
                    info = existing
                else:
                    # New, or a row whose bytes went missing: these (checked) bytes heal it.
                    self.backend.commit(staged)
                    info = BlobInfo(staged.digest, staged.size, self.clock())
                    if existing is None:
                        conn.execute(insert(blobs).values(
                            digest=info.digest, size=info.size, created_at=info.created_at
                        ))  # fmt: skip
                if then is not None:
                    then(conn, info)
                return existing is None
        finally:
            self.backend.discard(staged)  # nothing to do once committed

    def open(self, digest: str, start: int = 0, length: int | None = None) -> BlobReader | None:
        """Open a stored blob's bytes; None (and the row dropped) when they are gone."""
        reader = self.backend.open(digest, start, length)
        if reader is None:
            self.forget_missing(digest)
        return reader

    def forget_missing(self, digest: str) -> None:
        """Drop the row of a blob whose bytes are not in the backend."""
        with self.db.write() as conn:
            if self.lock(conn, digest) is not None and self.backend.stat(digest) is None:
                conn.execute(delete(blobs).where(blobs.c.digest == digest))
                log.error("blob %s was recorded but its bytes are missing; forgot it", digest)

    def quarantine(self, digest: str, reason: str) -> None:
        """Move a corrupt blob aside and forget it.

        Cache entries on it go too: they could never be restored and, being immutable,
        would stop the cache from being saved again. Artifacts and logs keep their
        reference, so uploading the same bytes again heals them.
        """
        with self.db.write() as conn:
            self.lock(conn, digest)
            moved = self.backend.quarantine(digest)
            conn.execute(delete(blobs).where(blobs.c.digest == digest))
            dropped = conn.execute(delete(caches).where(caches.c.digest == digest)).rowcount
        self.metrics.quarantined.inc()
        log.error(
            "blob %s is corrupt (%s); %s; cache entries on it dropped: %d",
            digest, reason, "quarantined" if moved else "already gone", dropped,
        )  # fmt: skip

    def remove_if_unreferenced(self, digest: str, older_than: float) -> int | None:
        """Delete a blob nothing refers to, created before ``older_than``; its size, or None."""
        with self.db.write() as conn:
            info = self.lock(conn, digest)
            if info is None or info.created_at >= older_than:
                return None
            # Checked after taking the lock: a record created meanwhile is seen.
            for table in (artifacts, caches, logs):
                used = conn.execute(
                    select(table.c.digest).where(table.c.digest == digest).limit(1)
                ).first()
                if used is not None:
                    return None
            self.backend.delete(digest)
            conn.execute(delete(blobs).where(blobs.c.digest == digest))
        self.metrics.collected.inc()
        return info.size

    def remove_orphan_file(self, digest: str, older_than: float) -> bool:
        """Delete bytes with no row (left by a crash between the two), written before
        ``older_than``; true when removed."""
        with self.db.write() as conn:
            if self.lock(conn, digest) is not None:
                return False
            # Looked at again under the lock: a put of the same digest may have just landed.
            stat = self.backend.stat(digest)
            if stat is None or stat.written_at >= older_than:
                return False
            return self.backend.delete(digest)

    def _size(self, digest: str) -> int | None:
        stat = self.backend.stat(digest)
        return None if stat is None else stat.size
