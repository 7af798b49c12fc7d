"""The migrated schema is exactly the tables the code declares."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from shipyard.service import Database, Settings
from shipyard.store import create_app
from shipyard.store._tables import metadata


def test_migrations_match_the_metadata(settings: Settings) -> None:
    """Alembic finds no difference between the migrated database and the table metadata."""
    create_app(settings).state.service.db.dispose()  # migrated
    db = Database(*settings.database_for("store"))
    try:
        with db.engine.connect() as conn:
            diffs = compare_metadata(MigrationContext.configure(conn), metadata)
    finally:
        db.dispose()
    assert diffs == []


def test_migrating_twice_changes_nothing(settings: Settings) -> None:
    """A second start on the same database finds the schema current."""
    for _ in range(2):
        create_app(settings).state.service.db.dispose()
