"""Garbage collection: expired artifacts, blobs nothing refers to, leftovers of crashes.

A blob becomes garbage when no artifact, cache entry or log refers to it and it was
stored more than ``grace`` seconds ago: the grace period covers the moment between a
client uploading a blob and recording the artifact or cache that uses it.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import anyio
import anyio.to_thread
from sqlalchemy import exists, select

from shipyard.store._catalog import BlobCatalog
from shipyard.store._records import Records
from shipyard.store._tables import artifacts, blobs, caches, logs

__all__ = ["GarbageCollector", "GcReport"]

log = logging.getLogger("shipyard.store")

_BATCH = 500


@dataclass(slots=True)
class GcReport:
    """What one collection removed."""

    expired_artifacts: int = 0
    blobs: int = 0
    bytes: int = 0
    orphan_files: int = 0
    temp_files: int = 0


class GarbageCollector:
    """Removes what the store no longer needs; :meth:`collect` once, :meth:`run` forever."""

    def __init__(
        self,
        records: Records,
        *,
        grace: float = 3600.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.records = records
        self.catalog: BlobCatalog = records.catalog
        self.grace = grace
        self.clock = clock

    def collect(self) -> GcReport:
        """One full pass. Safe while requests are served, and across replicas."""
        report = GcReport()
        report.expired_artifacts = self.records.delete_expired_artifacts()
        cutoff = self.clock() - self.grace
        for digest in self._unreferenced(cutoff):
            size = self.catalog.remove_if_unreferenced(digest, cutoff)
            if size is not None:
                report.blobs += 1
                report.bytes += size
        batch: list[str] = []
        for digest, written_at in self.catalog.backend.stored():
            if written_at < cutoff:
                batch.append(digest)
            if len(batch) >= _BATCH:
                report.orphan_files += self._remove_orphans(batch, cutoff)
                batch = []
        report.orphan_files += self._remove_orphans(batch, cutoff)
        report.temp_files = self.catalog.backend.sweep_temp()
        if report.expired_artifacts or report.blobs or report.orphan_files or report.temp_files:
            log.info(
                "garbage collection: %d expired artifact(s), %d blob(s) (%d bytes), "
                "%d orphan file(s), %d temp file(s) removed",
                report.expired_artifacts, report.blobs, report.bytes,
                report.orphan_files, report.temp_files,
            )  # fmt: skip
        return report

    def _unreferenced(self, cutoff: float) -> Iterator[str]:
        """Digests of blobs older than ``cutoff`` that nothing referred to when looked at."""
        after = ""
        while True:
            query = (
                select(blobs.c.digest)
                .where(
                    blobs.c.created_at < cutoff,
                    blobs.c.digest > after,
                    ~exists().where(artifacts.c.digest == blobs.c.digest),
                    ~exists().where(caches.c.digest == blobs.c.digest),
                    ~exists().where(logs.c.digest == blobs.c.digest),
                )
                .order_by(blobs.c.digest)
                .limit(_BATCH)
            )
            with self.catalog.db.read() as conn:
                page = list(conn.execute(query).scalars())
            yield from page
            if len(page) < _BATCH:
                return
            after = page[-1]

    def _remove_orphans(self, batch: list[str], cutoff: float) -> int:
        """Remove files in ``batch`` that have no row (a crash between writing the file
        and committing its row)."""
        if not batch:
            return 0
        with self.catalog.db.read() as conn:
            rows = set(conn.execute(select(blobs.c.digest).where(blobs.c.digest.in_(batch))).scalars())
        removed = 0
        for digest in batch:
            if digest not in rows and self.catalog.remove_orphan_file(digest, cutoff):
                removed += 1
        return removed

    async def run(self, interval: float) -> None:
        """Collect every ``interval`` seconds until cancelled; a failed pass is logged."""
        while True:
            try:
                await anyio.to_thread.run_sync(self.collect)
            except Exception:  # the next pass may well succeed: keep the loop alive
                log.exception("garbage collection failed")
            await anyio.sleep(interval)
