"""A stack of postgres resources through the engine: apply, drift, repair, import, destroy."""

from __future__ import annotations

import os
import uuid
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg import sql

from shipyard.infra import Engine, LocalBackend
from shipyard.infra.provider import Context
from shipyard.infra.providers.postgres import PostgresDatabase, PostgresGrant, PostgresRole
from tests.helpers.databases import postgres_url

pytestmark = pytest.mark.postgres

STACK = """\
variables:
  admin_url: {{ type: string, sensitive: true }}
providers:
  postgres:
    url: ${{{{ var.admin_url }}}}
resources:
  owner:
    type: postgres_role
    properties: {{ name: {role}, login: true, password: first-secret }}
  db:
    type: postgres_database
    properties:
      name: {db}
      owner: ${{{{ resources.owner.name }}}}
  connect:
    type: postgres_grant
    properties:
      role: ${{{{ resources.owner.name }}}}
      database: ${{{{ resources.db.name }}}}
      object_type: database
      privileges: [CONNECT, TEMP]
outputs:
  url:
    value: ${{{{ resources.db.url }}}}
"""


def actions(plan: Any) -> dict[str, str]:
    return {change.address: str(change.action) for change in plan.changes}


def test_apply_drift_repair_and_destroy(tmp_path: Path) -> None:
    """A role altered by hand, a grant revoked and a database dropped are drift; the next
    apply repairs them; destroy leaves nothing."""
    role, db = f"sy_st_{uuid.uuid4().hex[:8]}", f"sy_stdb_{uuid.uuid4().hex[:8]}"
    stack = tmp_path / "stack"
    stack.mkdir()
    (stack / "main.yaml").write_text(STACK.format(role=role, db=db))
    eng = Engine(
        stack,
        backend=LocalBackend(tmp_path / "state", key=os.urandom(32)),
        variables={"admin_url": postgres_url()},
    )
    admin = psycopg.connect(postgres_url(), autocommit=True)
    try:
        result = eng.apply()
        assert result.ok and result.added == 3
        url = result.outputs["url"].value
        assert url.endswith(f"/{db}") and "@" in url
        assert set(actions(eng.plan()).values()) == {"no-op"}

        admin.execute(sql.SQL("ALTER ROLE {} PASSWORD 'x' NOLOGIN").format(sql.Identifier(role)))
        admin.execute(
            sql.SQL("REVOKE TEMP ON DATABASE {} FROM {}").format(
                sql.Identifier(db), sql.Identifier(role)
            )
        )
        report = eng.drift()
        drifted = {item.address: item for item in report.items}
        assert set(drifted) == {"owner", "connect"}
        assert {diff.text for diff in drifted["owner"].diffs} == {"login", "password"}
        assert set(actions(eng.plan()).values()) == {"update", "no-op"}
        assert eng.apply().ok
        assert set(actions(eng.plan()).values()) == {"no-op"}

        admin.execute(sql.SQL("DROP DATABASE {} WITH (FORCE)").format(sql.Identifier(db)))
        gone = {item.address: item.kind for item in eng.drift().items}
        assert gone == {"db": "gone", "connect": "gone"}
        plan = actions(eng.plan())
        assert plan["db"] == "create" and plan["connect"] == "create"
        assert eng.apply().ok

        assert eng.destroy().ok
        assert admin.execute(
            "SELECT count(*) FROM pg_roles WHERE rolname = %s", (role,)
        ).fetchone() == (0,)
        assert admin.execute(
            "SELECT count(*) FROM pg_database WHERE datname = %s", (db,)
        ).fetchone() == (0,)
    finally:
        admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(db)))
        if admin.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (role,)).fetchone():
            admin.execute(sql.SQL("DROP OWNED BY {}").format(sql.Identifier(role)))
            admin.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(role)))
        admin.close()


def test_find_adopts_what_an_interrupted_create_made(tmp_path: Path) -> None:
    """After a create that died before its id was recorded, find locates the thing."""
    ctx = Context(config={"url": postgres_url()}, stack_dir=tmp_path, data_dir=tmp_path)
    role, db = f"sy_fd_{uuid.uuid4().hex[:8]}", f"sy_fddb_{uuid.uuid4().hex[:8]}"
    roles, databases, grants = PostgresRole(), PostgresDatabase(), PostgresGrant()
    role_props = {"name": role, "login": False, "password": None, "member_of": []}
    db_props = {"name": db, "owner": None, "template": "template0", "encoding": "UTF8"}
    grant_props = {
        "role": role,
        "database": db,
        "object_type": "database",
        "schema": "public",
        "objects": [],
        "privileges": ["CONNECT"],
        "with_grant_option": False,
    }
    assert roles.find(ctx, role_props) is None
    assert databases.find(ctx, db_props) is None
    assert grants.find(ctx, grant_props) is None
    try:
        roles.create(ctx, role_props)
        databases.create(ctx, {**db_props, "connection_limit": -1, "allow_connections": True})
        found_role = roles.find(ctx, role_props)
        found_db = databases.find(ctx, db_props)
        found_grant = grants.find(ctx, grant_props)
        assert found_role is not None and found_role.id == role
        assert found_db is not None and found_db.attributes["url"].endswith(f"/{db}")
        assert found_grant is not None and found_grant.id == f"{role}/{db}/database"
    finally:
        databases.delete(ctx, db, db_props, {})
        roles.delete(ctx, role, role_props, {})
