"""postgres_grant against the real PostgreSQL server: privileges read from the catalogs."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg import sql

from shipyard.errors import ProviderError
from shipyard.infra.provider import REQUIRED, Context
from shipyard.infra.providers._postgres_grant import grant_id, parse_grant_id
from shipyard.infra.providers.postgres import PostgresGrant
from tests.helpers.databases import postgres_url

pytestmark = pytest.mark.postgres

GRANT = PostgresGrant()


@dataclass
class Target:
    """A private database (tables a, b; sequence s; schema app) and role for one test."""

    ctx: Context
    admin: psycopg.Connection[Any]  # to the admin database
    db: psycopg.Connection[Any]  # to the private database
    database: str
    role: str

    def props(self, **values: Any) -> dict[str, Any]:
        props = {k: p.default for k, p in GRANT.properties.items() if p.default is not REQUIRED}
        props.update(role=self.role, database=self.database)
        props.update(values)
        return props

    def privileges(self, table: str) -> set[str]:
        rows = self.db.execute(
            "SELECT privilege_type FROM information_schema.role_table_grants "
            "WHERE grantee = %s AND table_name = %s",
            (self.role, table),
        ).fetchall()
        return {r[0] for r in rows}


@pytest.fixture
def target(tmp_path: Path) -> Iterator[Target]:
    url = postgres_url()
    database, role = f"sy_g_{uuid.uuid4().hex[:10]}", f"sy_gr_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(url, autocommit=True) as admin:
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(database)))
        admin.execute(sql.SQL("CREATE ROLE {}").format(sql.Identifier(role)))
        try:
            info = psycopg.conninfo.conninfo_to_dict(url)
            info["dbname"] = database
            with psycopg.connect(psycopg.conninfo.make_conninfo(**info), autocommit=True) as db:
                db.execute("CREATE TABLE a (x int); CREATE TABLE b (x int); CREATE SEQUENCE s")
                db.execute("CREATE SCHEMA app; CREATE TABLE app.c (x int)")
                ctx = Context(config={"url": url}, stack_dir=tmp_path, data_dir=tmp_path)
                yield Target(ctx, admin, db, database, role)
        finally:
            admin.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(database))
            )
            if admin.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (role,)).fetchone():
                admin.execute(sql.SQL("DROP OWNED BY {}").format(sql.Identifier(role)))
                admin.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(role)))


def read(t: Target, props: dict[str, Any]) -> dict[str, Any]:
    observed = GRANT.read(t.ctx, grant_id(props), props, {})
    assert observed is not None
    return observed.properties


class TestGrant:
    def test_database_grant_reads_back_and_revoke_by_hand_is_drift(self, target: Target) -> None:
        t = target
        props = t.props(object_type="database", privileges=["connect", "TEMP"])
        created = GRANT.create(t.ctx, props)
        assert created.id == f"{t.role}/{t.database}/database"
        assert read(t, props) == props
        t.admin.execute(
            sql.SQL("REVOKE CONNECT ON DATABASE {} FROM {}").format(
                sql.Identifier(t.database), sql.Identifier(t.role)
            )
        )
        observed = GRANT.read(t.ctx, created.id, props, {})
        assert observed is not None
        assert observed.properties["privileges"] == ["TEMPORARY"]
        assert any("holds TEMPORARY" in note for note in observed.notes)

    def test_schema_grant_with_grant_option(self, target: Target) -> None:
        t = target
        props = t.props(
            object_type="schema", schema="app", privileges=["USAGE"], with_grant_option=True
        )
        GRANT.create(t.ctx, props)
        assert read(t, props) == props
        t.db.execute(
            sql.SQL("REVOKE GRANT OPTION FOR USAGE ON SCHEMA app FROM {}").format(
                sql.Identifier(t.role)
            )
        )
        assert read(t, props)["with_grant_option"] is False

    def test_named_tables_and_privilege_added_by_hand(self, target: Target) -> None:
        """The grant is authoritative: an extra privilege granted by hand is drift."""
        t = target
        props = t.props(object_type="table", objects=["a"], privileges=["SELECT", "INSERT"])
        GRANT.create(t.ctx, props)
        assert t.privileges("a") == {"SELECT", "INSERT"}
        assert t.privileges("b") == set()
        assert read(t, props) == props
        t.db.execute(sql.SQL("GRANT DELETE ON a TO {}").format(sql.Identifier(t.role)))
        assert read(t, props)["privileges"] == ["DELETE", "INSERT", "SELECT"]
        GRANT.update(t.ctx, grant_id(props), props, props, {})
        assert t.privileges("a") == {"SELECT", "INSERT"}

    def test_all_tables_then_a_new_table_is_drift_until_applied(self, target: Target) -> None:
        t = target
        props = t.props(object_type="table", privileges=["ALL"])
        GRANT.create(t.ctx, props)
        assert read(t, props) == props
        t.db.execute("CREATE TABLE later (x int)")
        observed = GRANT.read(t.ctx, grant_id(props), props, {})
        assert observed is not None
        assert observed.properties["privileges"] == []
        assert any("table later" in note for note in observed.notes)
        GRANT.update(t.ctx, grant_id(props), props, props, {})
        assert read(t, props) == props

    def test_update_moves_privileges_between_objects(self, target: Target) -> None:
        """Objects dropped from the list lose their privileges in the same transaction."""
        t = target
        before = t.props(object_type="table", objects=["a", "b"], privileges=["SELECT"])
        GRANT.create(t.ctx, before)
        after = {**before, "objects": ["b"], "privileges": ["UPDATE"]}
        GRANT.update(t.ctx, grant_id(before), before, after, {})
        assert t.privileges("a") == set()
        assert t.privileges("b") == {"UPDATE"}
        assert read(t, after) == after

    def test_sequence_grant_and_table_gone(self, target: Target) -> None:
        t = target
        props = t.props(object_type="sequence", objects=["s"], privileges=["USAGE", "SELECT"])
        GRANT.create(t.ctx, props)
        assert read(t, props) == props
        t.db.execute("DROP SEQUENCE s")
        observed = GRANT.read(t.ctx, grant_id(props), props, {})
        assert observed is not None
        assert observed.properties["objects"] == []
        assert any("does not exist" in note for note in observed.notes)
        GRANT.delete(t.ctx, grant_id(props), props, {})  # nothing left to revoke: quiet

    def test_delete_revokes_and_is_quiet_when_things_are_gone(self, target: Target) -> None:
        t = target
        props = t.props(object_type="table", schema="app", privileges=["SELECT"])
        GRANT.create(t.ctx, props)
        GRANT.delete(t.ctx, grant_id(props), props, {})
        row = t.db.execute(
            "SELECT count(*) FROM information_schema.role_table_grants WHERE grantee = %s",
            (t.role,),
        ).fetchone()
        assert row == (0,)
        t.admin.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(t.role)))
        assert GRANT.read(t.ctx, grant_id(props), props, {}) is None
        GRANT.delete(t.ctx, grant_id(props), props, {})
        gone_db = t.props(database="sy_no_such_db", object_type="database", privileges=["CONNECT"])
        assert GRANT.read(t.ctx, grant_id(gone_db), gone_db, {}) is None
        GRANT.delete(t.ctx, grant_id(gone_db), gone_db, {})

    def test_public_pseudo_role(self, target: Target) -> None:
        t = target
        props = t.props(role="public", object_type="table", objects=["b"], privileges=["SELECT"])
        GRANT.create(t.ctx, props)
        assert read(t, props) == props
        GRANT.delete(t.ctx, grant_id(props), props, {})

    def test_import_by_id(self, target: Target) -> None:
        t = target
        t.db.execute(sql.SQL("GRANT SELECT, UPDATE ON a, b TO {}").format(sql.Identifier(t.role)))
        observed = GRANT.import_(t.ctx, f"{t.role}/{t.database}/table/public/a,b")
        assert observed.properties["objects"] == ["a", "b"]
        assert observed.properties["privileges"] == ["SELECT", "UPDATE"]
        assert observed.properties["with_grant_option"] is False
        with pytest.raises(ProviderError, match="cannot import"):
            GRANT.import_(t.ctx, f"sy_nobody/{t.database}/database")

    def test_grant_ids(self) -> None:
        assert parse_grant_id("r/d/schema/app")["schema"] == "app"
        assert parse_grant_id("r/d/table/s/x,y")["objects"] == ["x", "y"]
        for bad in ("r/d", "r/d/view", "r/d/database/x", "r/d/schema", "r//table"):
            with pytest.raises(ProviderError, match="bad grant id"):
                parse_grant_id(bad)

    def test_validate(self, target: Target) -> None:
        t = target
        assert GRANT.validate(t.props(object_type="view", privileges=[]))[0][0] == "object_type"
        problems = GRANT.validate(
            t.props(object_type="schema", objects=["x"], privileges=["SELECT"])
        )
        assert {path for path, _ in problems} == {"objects", "privileges[0]"}
        assert (
            GRANT.validate(t.props(object_type="database", privileges=["all privileges", "temp"]))
            == []
        )

    def test_empty_privileges_revoke_everything(self, target: Target) -> None:
        t = target
        t.db.execute(sql.SQL("GRANT SELECT ON a TO {}").format(sql.Identifier(t.role)))
        props = t.props(object_type="table", objects=["a"], privileges=[])
        GRANT.create(t.ctx, props)
        assert t.privileges("a") == set()
        assert read(t, props) == props
