"""The git service's migrations build exactly the schema its tables declare."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from shipyard.git import metadata
from shipyard.service import Database, Settings


def test_migrated_schema_matches_the_metadata(settings: Settings) -> None:
    db = Database(*settings.database_for("git"))
    try:
        db.migrate("shipyard.git:migrations", metadata)
        db.migrate("shipyard.git:migrations", metadata)  # a second run is a no-op
        with db.engine.connect() as conn:
            context = MigrationContext.configure(conn, opts={"include_schemas": False})
            diffs = compare_metadata(context, metadata)
        assert diffs == []
        with db.read() as conn:
            tables = set(conn.dialect.get_table_names(conn, schema=db.schema))
        assert {"repos", "refs", "events", "alembic_version"} <= tables
    finally:
        db.dispose()
