"""Fixtures shared by the whole suite."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from shipyard.service import Settings
from tests.helpers.databases import BACKENDS, service_settings


@pytest.fixture(params=BACKENDS)
def settings(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Settings]:
    """Settings of a service under test, once on SQLite and once on PostgreSQL."""
    with service_settings(request.param, tmp_path / "data") as s:
        yield s


@pytest.fixture
def sqlite_settings(tmp_path: Path) -> Iterator[Settings]:
    """Settings on SQLite only, for tests whose subject is not the database."""
    with service_settings("sqlite", tmp_path / "data") as s:
        yield s
