"""Fixtures of the provider tests: a Docker client, and what a Docker test made, removed after it."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import pytest


@pytest.fixture
def api() -> Iterator[Any]:
    """A Docker Engine API client."""
    import docker

    with docker.APIClient(version="auto") as client:
        yield client


@pytest.fixture
def made(api: Any) -> Iterator[dict[str, list[str]]]:
    """Containers, networks, volumes and images a test made: removed after it, whatever happened."""
    import docker.errors

    things: dict[str, list[str]] = {"containers": [], "networks": [], "volumes": [], "images": []}
    yield things
    for kind, remove in (
        ("containers", lambda n: api.remove_container(n, force=True, v=True)),
        ("networks", api.remove_network),
        ("volumes", api.remove_volume),
        ("images", lambda n: api.remove_image(n, force=True)),
    ):
        for name in things[kind]:
            with contextlib.suppress(docker.errors.NotFound):
                remove(name)
