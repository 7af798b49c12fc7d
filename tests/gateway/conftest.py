"""A gateway in front of three real upstream apps, all served on loopback."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from shipyard.gateway import create_app
from shipyard.service import Settings, TokenSigner
from tests.gateway._upstream import Probe, upstream_app
from tests.helpers.databases import TEST_SECRET
from tests.helpers.servers import free_port, serve_app


@dataclass
class Gate:
    url: str
    upstream_urls: dict[str, str]
    probes: dict[str, Probe]
    apps: dict[str, object]
    admin: str
    signer: TokenSigner

    def client(self, token: str | None = None, **kwargs: object) -> httpx.Client:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return httpx.Client(base_url=self.url, headers=headers, timeout=30, **kwargs)  # type: ignore[arg-type]


def gateway_settings(data_dir: Path, **urls: str) -> Settings:
    return Settings(data_dir=data_dir, secret=TEST_SECRET, **urls)


@pytest.fixture(scope="module")
def gate(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gate]:
    """git, store and ci stand-ins, and a gateway forwarding to them."""
    with ExitStack() as stack:
        probes = {name: Probe() for name in ("git", "store", "ci")}
        apps = {name: upstream_app(name, probes[name]) for name in probes}
        urls = {name: stack.enter_context(serve_app(apps[name])) for name in apps}  # type: ignore[arg-type]
        settings = gateway_settings(
            tmp_path_factory.mktemp("gateway"),
            git_url=urls["git"], store_url=urls["store"], ci_url=urls["ci"],
        )
        url = stack.enter_context(serve_app(create_app(settings)))
        signer = TokenSigner(settings.signing_key())
        yield Gate(url, urls, probes, apps, signer.issue("admin", ["admin"]), signer)  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def lonely_gate(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A gateway whose services are all down (their ports are closed)."""
    down = {f"{n}_url": f"http://127.0.0.1:{free_port()}" for n in ("git", "store", "ci")}
    settings = gateway_settings(tmp_path_factory.mktemp("lonely"), **down)
    with serve_app(create_app(settings)) as url:
        yield url
