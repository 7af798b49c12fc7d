"""Artifacts, caches and logs: named records pointing at blobs.

Every new record takes its blob's lock (see :meth:`BlobCatalog.lock`) in the
transaction that inserts it, so garbage collection either sees the record or has
already removed the blob (and the request gets a 400 asking to upload it again).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

from sqlalchemy import ColumnElement, Connection, and_, delete, func, insert, or_, select, update
from sqlalchemy.exc import IntegrityError

from shipyard.errors import ConflictError, InvalidRequestError, NotFoundError
from shipyard.store._blobs import StagedBlob
from shipyard.store._catalog import BlobCatalog, BlobInfo
from shipyard.store._models import (
    ArtifactCreate,
    ArtifactOut,
    CacheCreate,
    CacheEntryOut,
    LogOut,
)
from shipyard.store._tables import artifacts, caches, logs

# The workflow library's own checks, so a name or key the local stores refuse is
# refused here too, with the same message.
from shipyard.workflow.actions import check_artifact_name, check_cache_key, check_member

__all__ = ["Records"]

_DAY = 86400.0
_EVICT_BATCH = 200


class Records:
    """The store's records, over a :class:`BlobCatalog`."""

    def __init__(
        self,
        catalog: BlobCatalog,
        *,
        cache_size_limit: int,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.catalog = catalog
        self.db = catalog.db
        self.metrics = catalog.metrics
        self.cache_size_limit = cache_size_limit
        self.clock = clock

    # -- artifacts ---------------------------------------------------------------------

    def _live(self) -> ColumnElement[bool]:
        now = self.clock()
        return or_(artifacts.c.expires_at.is_(None), artifacts.c.expires_at > now)

    def create_artifact(self, spec: ArtifactCreate) -> ArtifactOut:
        """Record an artifact; 409 when the name is taken (and not ``overwrite``)."""
        check_artifact_name(spec.name)
        files = [check_member(f) for f in spec.files]
        try:
            with self.db.write() as conn:
                self.catalog.require(conn, spec.digest, spec.size)
                where = and_(artifacts.c.pipeline_id == spec.pipeline_id, artifacts.c.name == spec.name)
                old = conn.execute(select(artifacts).where(where).with_for_update()).one_or_none()
                if old is not None:
                    expired = old.expires_at is not None and old.expires_at <= self.clock()
                    if not spec.overwrite and not expired:
                        raise self._taken(spec)
                    conn.execute(delete(artifacts).where(artifacts.c.id == old.id))
                now = self.clock()
                values = {
                    "pipeline_id": spec.pipeline_id, "name": spec.name, "digest": spec.digest,
                    "size": spec.size, "files": files, "created_at": now,
                    "expires_at": now + spec.retention_days * _DAY if spec.retention_days else None,
                }  # fmt: skip
                result = conn.execute(insert(artifacts).values(**values))
                new_id = result.inserted_primary_key[0]  # type: ignore[index]
        except IntegrityError:
            raise self._taken(spec) from None  # created at the same moment by someone else
        return ArtifactOut.model_validate({"id": new_id, **values})

    @staticmethod
    def _taken(spec: ArtifactCreate) -> ConflictError:
        return ConflictError(
            f"an artifact named {spec.name!r} already exists in pipeline {spec.pipeline_id}; "
            "choose another name or set overwrite"
        )

    def list_artifacts(self, pipeline_id: int, *, limit: int, after: int = 0) -> list[ArtifactOut]:
        """A pipeline's unexpired artifacts, oldest first, with ids above ``after``."""
        query = (
            select(artifacts)
            .where(artifacts.c.pipeline_id == pipeline_id, artifacts.c.id > after, self._live())
            .order_by(artifacts.c.id)
            .limit(limit)
        )
        with self.db.read() as conn:
            return [ArtifactOut.model_validate(r._mapping) for r in conn.execute(query)]

    def get_artifact(self, pipeline_id: int, name: str) -> ArtifactOut:
        """One unexpired artifact; 404 when there is none."""
        query = select(artifacts).where(
            artifacts.c.pipeline_id == pipeline_id, artifacts.c.name == name, self._live()
        )
        with self.db.read() as conn:
            row = conn.execute(query).one_or_none()
        if row is None:
            raise NotFoundError(f"no artifact named {name!r} in pipeline {pipeline_id}")
        return ArtifactOut.model_validate(row._mapping)

    def delete_artifact(self, pipeline_id: int, name: str) -> None:
        """Forget an artifact (its blob goes with the next collection); 404 when absent."""
        with self.db.write() as conn:
            count = conn.execute(
                delete(artifacts).where(artifacts.c.pipeline_id == pipeline_id, artifacts.c.name == name)
            ).rowcount
        if not count:
            raise NotFoundError(f"no artifact named {name!r} in pipeline {pipeline_id}")

    def delete_expired_artifacts(self) -> int:
        """Forget every artifact past its retention; how many."""
        with self.db.write() as conn:
            count: int = conn.execute(
                delete(artifacts).where(
                    artifacts.c.expires_at.is_not(None), artifacts.c.expires_at <= self.clock()
                )
            ).rowcount
        return count

    # -- caches ------------------------------------------------------------------------

    def lookup_cache(
        self, repo: str, key: str, restore_keys: Sequence[str], version: str
    ) -> CacheEntryOut | None:
        """The entry GitHub's rule picks, marked used now; None when nothing matches.

        Exact ``key`` first; then the newest entry whose key starts with ``key``; then,
        for each restore key in order, the newest entry whose key starts with it. Only
        entries of ``version`` count.
        """
        same = and_(caches.c.repo == repo, caches.c.version == version)
        newest = (caches.c.created_at.desc(), caches.c.id.desc())
        with self.db.write() as conn:
            row = conn.execute(select(caches).where(same, caches.c.key == key)).one_or_none()
            for prefix in (key, *restore_keys):
                if row is not None:
                    break
                if not prefix:
                    continue
                # substr, not LIKE: SQLite's LIKE ignores case and both treat % and _ specially.
                starts = func.substr(caches.c.key, 1, len(prefix)) == prefix
                row = conn.execute(
                    select(caches).where(same, starts).order_by(*newest).limit(1)
                ).one_or_none()
            if row is None:
                self.metrics.cache_misses.inc()
                return None
            now = self.clock()
            conn.execute(update(caches).where(caches.c.id == row.id).values(last_accessed_at=now))
        self.metrics.cache_hits.inc()
        entry = CacheEntryOut.model_validate(row._mapping)
        return entry.model_copy(update={"last_accessed_at": now})

    def save_cache(self, spec: CacheCreate) -> CacheEntryOut:
        """Record a cache entry, then evict the least recently used past the size limit.

        409 when (repo, key, version) exists: entries are immutable.
        """
        check_cache_key(spec.key)
        if spec.size > self.cache_size_limit:
            raise InvalidRequestError(
                f"a cache of {spec.size} bytes is over the store's limit of "
                f"{self.cache_size_limit} bytes; not saved"
            )
        try:
            with self.db.write() as conn:
                self.catalog.require(conn, spec.digest, spec.size)
                exists = conn.execute(
                    select(caches.c.id).where(
                        caches.c.repo == spec.repo, caches.c.key == spec.key,
                        caches.c.version == spec.version,
                    )
                ).first()  # fmt: skip
                if exists is not None:
                    raise self._cache_taken(spec)
                now = self.clock()
                values = {**spec.model_dump(), "created_at": now, "last_accessed_at": now}
                new_id = conn.execute(insert(caches).values(**values)).inserted_primary_key[0]  # type: ignore[index]
                self._evict(conn, keep=new_id)
        except IntegrityError:
            raise self._cache_taken(spec) from None
        return CacheEntryOut.model_validate({"id": new_id, **values})

    @staticmethod
    def _cache_taken(spec: CacheCreate) -> ConflictError:
        return ConflictError(
            f"a cache with key {spec.key!r} and version {spec.version[:16]}... already exists "
            f"for {spec.repo}; caches are immutable"
        )

    def _evict(self, conn: Connection, keep: int) -> None:
        total = conn.execute(select(func.coalesce(func.sum(caches.c.size), 0))).scalar_one()
        while total > self.cache_size_limit:
            victims = conn.execute(
                select(caches.c.id, caches.c.size)
                .where(caches.c.id != keep)
                .order_by(caches.c.last_accessed_at, caches.c.id)
                .limit(_EVICT_BATCH)
            ).all()
            if not victims:
                return
            chosen = []
            for victim in victims:
                if total <= self.cache_size_limit:
                    break
                chosen.append(victim.id)
                total -= victim.size
            conn.execute(delete(caches).where(caches.c.id.in_(chosen)))
            self.metrics.cache_evictions.inc(len(chosen))

    def list_caches(
        self, repo: str | None, *, limit: int, before: int | None = None
    ) -> list[CacheEntryOut]:
        """Cache entries (of one repository, or all), newest first, ids below ``before``."""
        query = select(caches).order_by(caches.c.id.desc()).limit(limit)
        if repo is not None:
            query = query.where(caches.c.repo == repo)
        if before is not None:
            query = query.where(caches.c.id < before)
        with self.db.read() as conn:
            return [CacheEntryOut.model_validate(r._mapping) for r in conn.execute(query)]

    def delete_cache(self, entry_id: int) -> None:
        """Forget one cache entry; 404 when absent."""
        with self.db.write() as conn:
            count = conn.execute(delete(caches).where(caches.c.id == entry_id)).rowcount
        if not count:
            raise NotFoundError(f"no cache entry {entry_id}")

    # -- logs --------------------------------------------------------------------------

    def put_log(self, job_id: int, staged: StagedBlob) -> LogOut:
        """Store a job's log and point the job at it (replacing an earlier one)."""

        def record(conn: Connection, blob: BlobInfo) -> None:
            values = {"digest": blob.digest, "size": blob.size, "created_at": self.clock()}
            found = conn.execute(
                select(logs.c.job_id).where(logs.c.job_id == job_id).with_for_update()
            ).first()
            if found is None:
                conn.execute(insert(logs).values(job_id=job_id, **values))
            else:
                conn.execute(update(logs).where(logs.c.job_id == job_id).values(**values))

        try:
            self.catalog.add(staged, then=record)
        except IntegrityError:
            raise ConflictError(
                f"the log of job {job_id} was uploaded twice at once; upload it again"
            ) from None
        return LogOut(job_id=job_id, digest=staged.digest, size=staged.size)

    def get_log(self, job_id: int) -> LogOut:
        """Where a job's log is; 404 when none was stored."""
        with self.db.read() as conn:
            row = conn.execute(select(logs).where(logs.c.job_id == job_id)).one_or_none()
        if row is None:
            raise NotFoundError(f"no log stored for job {job_id}")
        return LogOut(job_id=row.job_id, digest=row.digest, size=row.size)
