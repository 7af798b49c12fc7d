"""The store service: content-addressed blobs, and the artifacts, caches and logs on them.

``create_app(settings)`` builds the service (``shipyard serve store``); its API is the
"store" section of docs/api.md. Blob bytes live in a :class:`BlobBackend`
(:class:`FileBlobBackend` under ``<data_dir>/blobs`` by default); the database records
what is stored and what refers to it.

Clients: :class:`StoreClient` for blobs, artifacts, caches and logs over HTTP, and on
it :class:`RemoteArtifactStore` and :class:`RemoteCacheStore`, the workflow library's
``ArtifactStore`` and ``CacheStore`` for jobs that run against the server.
"""

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from shipyard.store._app import create_app
    from shipyard.store._blobs import BlobBackend, BlobReader, BlobStat, FileBlobBackend, StagedBlob
    from shipyard.store._client import StoreClient
    from shipyard.store._gc import GarbageCollector, GcReport
    from shipyard.store._remote import RemoteArtifactStore, RemoteCacheStore

# Imported on first use: a runner needs the clients, not the service (FastAPI and
# SQLAlchemy would cost its process about 40 MB and its first job half a second).
_WHERE = {
    "create_app": "_app",
    "BlobBackend": "_blobs", "BlobReader": "_blobs", "BlobStat": "_blobs",
    "FileBlobBackend": "_blobs", "StagedBlob": "_blobs",
    "StoreClient": "_client",
    "GarbageCollector": "_gc", "GcReport": "_gc",
    "RemoteArtifactStore": "_remote", "RemoteCacheStore": "_remote",
}


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(f"shipyard.store.{module}"), name)


__all__ = [
    "BlobBackend",
    "BlobReader",
    "BlobStat",
    "FileBlobBackend",
    "GarbageCollector",
    "GcReport",
    "RemoteArtifactStore",
    "RemoteCacheStore",
    "StagedBlob",
    "StoreClient",
    "create_app",
]
