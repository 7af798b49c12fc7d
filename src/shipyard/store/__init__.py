"""The store service: content-addressed blobs, and the artifacts, caches and logs on them.

``create_app(settings)`` builds the service (``shipyard serve store``); its API is the
"store" section of docs/api.md. Blob bytes live in a :class:`BlobBackend`
(:class:`FileBlobBackend` under ``<data_dir>/blobs`` by default); the database records
what is stored and what refers to it.

Clients: :class:`StoreClient` for blobs, artifacts, caches and logs over HTTP, and on
it :class:`RemoteArtifactStore` and :class:`RemoteCacheStore`, the workflow library's
``ArtifactStore`` and ``CacheStore`` for jobs that run against the server.
"""

from shipyard.store._app import create_app
from shipyard.store._blobs import BlobBackend, BlobReader, BlobStat, FileBlobBackend, StagedBlob
from shipyard.store._client import StoreClient
from shipyard.store._gc import GarbageCollector, GcReport
from shipyard.store._remote import RemoteArtifactStore, RemoteCacheStore

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
