"""A store served on loopback, on each database, with a clock the tests move."""

from __future__ import annotations

import hashlib
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from shipyard.service import Settings, TokenSigner
from shipyard.store import StoreClient, create_app
from shipyard.store._parts import StoreParts
from tests.helpers.databases import service_settings
from tests.helpers.servers import serve_app


class Clock:
    """The real time plus an offset tests can move forward."""

    def __init__(self) -> None:
        self.offset = 0.0

    def __call__(self) -> float:
        return time.time() + self.offset

    def advance(self, seconds: float) -> None:
        self.offset += seconds


@dataclass
class Store:
    """One running store: its app, URL, clock, and ways to talk to it."""

    app: FastAPI
    url: str
    settings: Settings
    clock: Clock
    signer: TokenSigner
    http: httpx.Client  # authenticated as admin
    clients: list[StoreClient] = field(default_factory=list)  # closed when the store stops

    @property
    def parts(self) -> StoreParts:
        parts: StoreParts = self.app.state.store
        return parts

    @property
    def blob_root(self) -> Path:
        return self.settings.data_dir / "blobs"

    def token(self, *scopes: str, ttl: float | None = None) -> str:
        return self.signer.issue("test", scopes, ttl=ttl)

    def auth(self, *scopes: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token(*scopes)}"}

    def client(self, *scopes: str, **kwargs: Any) -> StoreClient:
        """A client holding a token with ``scopes`` (admin when none)."""
        client = StoreClient(self.url, self.token(*(scopes or ("admin",))), **kwargs)
        self.clients.append(client)
        return client

    def put(self, data: bytes) -> str:
        """Store ``data`` as a blob; its digest."""
        digest = sha(data)
        response = self.http.put(f"/blobs/{digest}", content=data)
        assert response.status_code in (200, 201), response.text
        return digest

    def blob_path(self, digest: str) -> Path:
        return self.blob_root / digest[:2] / digest[2:4] / digest

    def temp_files(self) -> list[Path]:
        return list((self.blob_root / "tmp").iterdir())


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@contextmanager
def running_store(settings: Settings, **kwargs: Any) -> Iterator[Store]:
    """Serve a store app for ``settings`` on a free loopback port."""
    clock = Clock()
    app = create_app(settings, clock=clock, **kwargs)
    signer = TokenSigner(settings.signing_key())
    admin = {"Authorization": f"Bearer {signer.issue('admin', ['admin'])}"}
    with serve_app(app) as url, httpx.Client(base_url=url, headers=admin, timeout=30) as http:
        store = Store(app, url, settings, clock, signer, http)
        try:
            yield store
        finally:
            for client in store.clients:
                client.close()


@pytest.fixture
def store(settings: Settings) -> Iterator[Store]:
    """A store on each database."""
    with running_store(settings) as s:
        yield s


@pytest.fixture(scope="module")
def shared_store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Store]:
    """One SQLite store shared by a module's tests that only read or are refused."""
    with service_settings("sqlite", tmp_path_factory.mktemp("store")) as s, running_store(s) as store:
        yield store


@pytest.fixture
def sqlite_store(sqlite_settings: Settings) -> Iterator[Store]:
    """A store on SQLite, for tests whose subject is not the database."""
    with running_store(sqlite_settings) as s:
        yield s
