"""Garbage collection: what nothing refers to goes after the grace period."""

from __future__ import annotations

import os
import time

from sqlalchemy import insert, select

from shipyard.store._tables import artifacts, blobs
from tests.store.conftest import Store, sha

HOUR = 3600.0


def stored(store: Store) -> set[str]:
    with store.parts.catalog.db.read() as conn:
        return set(conn.execute(select(blobs.c.digest)).scalars())


class TestCollection:
    """One pass of the collector, with the clock moved."""

    def test_unreferenced_blobs_go_after_the_grace_period(self, store: Store) -> None:
        """A blob nothing uses survives the grace period, then goes (row and file)."""
        digest = store.put(b"loose")
        assert store.parts.gc.collect().blobs == 0
        store.clock.advance(HOUR + 1)
        report = store.parts.gc.collect()
        assert (report.blobs, report.bytes) == (1, 5)
        assert stored(store) == set()
        assert not store.blob_path(digest).exists()
        assert store.http.head(f"/blobs/{digest}").status_code == 404

    def test_referenced_blobs_stay(self, store: Store) -> None:
        """Blobs of an artifact, a cache entry or a log are kept however old."""
        a, c = store.put(b"artifact"), store.put(b"cache")
        store.http.post("/artifacts", json={"pipeline_id": 1, "name": "x", "digest": a, "size": 8})
        store.http.post("/caches", json={"repo": "r", "key": "k", "version": "v", "digest": c, "size": 5})
        store.http.put("/logs/9", content=b"log")
        store.clock.advance(100 * HOUR)
        assert store.parts.gc.collect().blobs == 0
        assert stored(store) == {a, c, sha(b"log")}

    def test_expired_artifacts_go_and_then_their_blobs(self, store: Store) -> None:
        """An artifact past retention is deleted; its blob, now unreferenced, goes too."""
        digest = store.put(b"zip")
        store.http.post("/artifacts", json={"pipeline_id": 1, "name": "x", "digest": digest, "size": 3,
                                            "retention_days": 1})  # fmt: skip
        store.clock.advance(86400 + 1)
        report = store.parts.gc.collect()
        assert (report.expired_artifacts, report.blobs) == (1, 1)
        with store.parts.catalog.db.read() as conn:
            assert conn.execute(select(artifacts)).all() == []

    def test_a_replaced_log_frees_its_old_blob(self, store: Store) -> None:
        """After a log is uploaded again, the first upload's bytes are collected."""
        store.http.put("/logs/1", content=b"first")
        store.http.put("/logs/1", content=b"second")
        store.clock.advance(HOUR + 1)
        store.parts.gc.collect()
        assert stored(store) == {sha(b"second")}

    def test_files_without_a_row_and_dead_temp_files_are_removed(self, store: Store) -> None:
        """Leftovers of a crash (bytes moved in, row never committed; a half upload) go."""
        orphan = sha(b"orphan")
        path = store.blob_path(orphan)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"orphan")
        temp = store.blob_root / "tmp" / "up-dead"
        temp.write_bytes(b"half")
        old = time.time() - 2 * HOUR
        os.utime(path, (old, old))
        os.utime(temp, (old, old))
        report = store.parts.gc.collect()
        assert (report.orphan_files, report.temp_files) == (1, 1)
        assert not path.exists()
        assert not temp.exists()

    def test_the_grace_period_is_a_constructor_parameter(self, store: Store) -> None:
        """A collector with a shorter grace removes younger blobs."""
        from shipyard.store import GarbageCollector

        store.put(b"young")
        store.clock.advance(61)
        assert GarbageCollector(store.parts.records, grace=60, clock=store.clock).collect().blobs == 1

    def test_a_blob_recorded_while_collecting_is_kept(self, store: Store) -> None:
        """The collector re-checks references under the blob's lock before deleting."""
        digest = store.put(b"raced")
        store.clock.advance(HOUR + 1)
        catalog = store.parts.catalog
        cutoff = store.clock() - HOUR
        # The collector listed the blob as unreferenced; an artifact on it lands before
        # the collector takes the blob's lock.
        with catalog.db.write() as conn:
            catalog.require(conn, digest, 5)
            conn.execute(insert(artifacts).values(
                pipeline_id=1, name="x", digest=digest, size=5, files=[], created_at=0.0, expires_at=None
            ))  # fmt: skip
        assert catalog.remove_if_unreferenced(digest, cutoff) is None
        assert digest in stored(store)
