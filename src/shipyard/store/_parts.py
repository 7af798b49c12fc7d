"""The parts of one store app, as its routes reach them."""

from __future__ import annotations

from dataclasses import dataclass

from fastapi import Request

from shipyard.store._blobs import BlobBackend
from shipyard.store._catalog import BlobCatalog
from shipyard.store._gc import GarbageCollector
from shipyard.store._records import Records

__all__ = ["StoreParts", "parts_of"]


@dataclass(frozen=True, slots=True)
class StoreParts:
    """The store's backend, catalog, records and garbage collector (``app.state.store``)."""

    backend: BlobBackend
    catalog: BlobCatalog
    records: Records
    gc: GarbageCollector


def parts_of(request: Request) -> StoreParts:
    parts: StoreParts = request.app.state.store
    return parts
