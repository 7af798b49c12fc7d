"""Settings for a service under test, on SQLite or on the PostgreSQL scripts/test starts."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.pool import NullPool

from shipyard.service import Settings

BACKENDS = ("sqlite", "postgres")
TEST_SECRET = "shipyard-test-secret-0123456789abcdef"


def postgres_url() -> str:
    url = os.environ.get("SHIPYARD_TEST_POSTGRES_URL")
    if not url:
        pytest.fail(
            "SHIPYARD_TEST_POSTGRES_URL is not set: run the suite through scripts/test, "
            "which starts PostgreSQL (scripts/postgres prints the URL)"
        )
    return url


def _drop_schemas(url: str, prefix: str) -> None:
    engine = create_engine("postgresql+psycopg://" + url.split("://", 1)[1], poolclass=NullPool)
    try:
        with engine.begin() as conn:
            names = conn.execute(
                text("SELECT nspname FROM pg_namespace WHERE nspname LIKE :p"),
                {"p": prefix.replace("_", r"\_") + "%"},
            ).scalars().all()
            for name in names:
                conn.execute(text(f'DROP SCHEMA "{name}" CASCADE'))
    finally:
        engine.dispose()


@contextmanager
def service_settings(backend: str, data_dir: Path, **overrides: Any) -> Iterator[Settings]:
    """Settings with a private data dir and, on PostgreSQL, private schemas dropped after."""
    prefix = f"t{uuid.uuid4().hex[:10]}_"
    url = postgres_url() if backend == "postgres" else ""
    settings = Settings(
        data_dir=data_dir,
        database_url=url,
        database_schema_prefix=prefix,
        secret=TEST_SECRET,
        **overrides,
    )
    try:
        yield settings
    finally:
        if url:
            _drop_schemas(url, prefix)
