"""Fixtures for the built-in action tests: one run's stores and job hosts sharing them."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from shipyard.workflow.actions import LocalArtifactStore, LocalCacheStore, RunServices
from tests.workflow.actions._host import Host


@pytest.fixture
def services(tmp_path: Path) -> RunServices:
    return RunServices(
        artifacts=LocalArtifactStore(tmp_path / "store" / "artifacts"),
        caches=LocalCacheStore(tmp_path / "store" / "caches"),
    )


@pytest.fixture
def make_host(tmp_path: Path, services: RunServices) -> Callable[..., Host]:
    count = 0

    def make(**kwargs: Any) -> Host:
        nonlocal count
        count += 1
        return Host(tmp_path / f"job{count}", services, **kwargs)

    return make
