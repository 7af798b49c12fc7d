"""The store service's app: blobs, artifacts, caches and logs over HTTP."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

import anyio
import anyio.to_thread
from fastapi import FastAPI

from shipyard.service import Database, ServiceState, Settings, TokenSigner
from shipyard.service import create_app as create_service_app
from shipyard.store._blobs import BlobBackend, FileBlobBackend
from shipyard.store._catalog import BlobCatalog, StoreMetrics
from shipyard.store._gc import GarbageCollector
from shipyard.store._parts import StoreParts
from shipyard.store._records import Records
from shipyard.store._routes_bytes import router as bytes_router
from shipyard.store._routes_records import router as records_router
from shipyard.store._tables import metadata

__all__ = ["create_app"]

_DESCRIPTION = """\
Content-addressed blobs (by sha256) and what refers to them: pipeline artifacts,
caches shared between runs (GitHub's lookup rule, LRU eviction), and job logs.
Blobs nothing refers to are collected after a grace period.
"""


def create_app(
    settings: Settings,
    *,
    backend: BlobBackend | None = None,
    gc_grace: float = 3600.0,
    gc_interval: float = 600.0,
    clock: Callable[[], float] = time.time,
) -> FastAPI:
    """The store's app, its database migrated.

    Blobs live in ``backend`` (files under ``<data_dir>/blobs`` by default). The garbage
    collector runs every ``gc_interval`` seconds while the app is up, removing blobs
    unreferenced and older than ``gc_grace`` seconds; ``app.state.store.gc.collect()``
    runs it at once. ``clock`` gives the time (tests move it forward).
    """
    db = Database(*settings.database_for("store"))
    db.migrate("shipyard.store:migrations", metadata)
    state = ServiceState("store", settings, db, TokenSigner(settings.signing_key()))
    blob_backend = backend if backend is not None else FileBlobBackend(settings.data_dir / "blobs")
    catalog = BlobCatalog(db, blob_backend, StoreMetrics(state.metrics, db), clock=clock)
    records = Records(catalog, cache_size_limit=settings.cache_size_limit, clock=clock)
    gc = GarbageCollector(records, grace=gc_grace, clock=clock)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        # Uploads cut off by the last shutdown or crash left temp files: remove them.
        await anyio.to_thread.run_sync(blob_backend.sweep_temp)
        async with anyio.create_task_group() as tg:

            async def collect_periodically() -> None:
                await anyio.sleep(gc_interval)
                await gc.run(gc_interval)

            tg.start_soon(collect_periodically)
            yield
            tg.cancel_scope.cancel()

    app = create_service_app(
        state,
        title="Shipyard store",
        description=_DESCRIPTION,
        lifespan=lifespan,
        upload_prefixes=("/blobs/", "/logs/"),
    )
    app.state.store = StoreParts(blob_backend, catalog, records, gc)
    app.include_router(bytes_router)
    app.include_router(records_router)
    return app
