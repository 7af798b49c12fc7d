"""The postgres provider's databases and roles, against the real PostgreSQL server."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg import sql

from shipyard.errors import ProviderError
from shipyard.infra._types import parse_type
from shipyard.infra.provider import REQUIRED, Context
from shipyard.infra.providers._postgres_conn import Server
from shipyard.infra.providers._postgres_role import CHANGED_PASSWORD
from shipyard.infra.providers._postgres_scram import matches, saslprep, scram_verifier
from shipyard.infra.providers.postgres import (
    PostgresDatabase,
    PostgresGrant,
    PostgresProvider,
    PostgresRole,
)
from tests.helpers.databases import postgres_url
from tests.infra.providers._helpers import defaults
from tests.infra.providers._helpers import unique as _unique

pytestmark = pytest.mark.postgres

def unique(prefix: str) -> str:
    return _unique(prefix, sep="_", start="sy")


DATABASE = PostgresDatabase()
ROLE = PostgresRole()


@pytest.fixture
def admin() -> Iterator[psycopg.Connection[Any]]:
    with psycopg.connect(postgres_url(), autocommit=True) as conn:
        yield conn


@pytest.fixture
def ctx(tmp_path: Path) -> Context:
    return Context(config={"url": postgres_url()}, stack_dir=tmp_path, data_dir=tmp_path / "data")


@pytest.fixture
def cleanup(admin: psycopg.Connection[Any]) -> Iterator[list[tuple[str, str]]]:
    """Databases and roles a test made, dropped after it whatever happened."""
    made: list[tuple[str, str]] = []
    yield made
    for kind, name in reversed(made):
        if kind == "database":
            admin.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )
    for kind, name in reversed(made):
        if kind == "role":
            exists = admin.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (name,)).fetchone()
            if exists:
                admin.execute(sql.SQL("DROP OWNED BY {}").format(sql.Identifier(name)))
                admin.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(name)))


def scalar(conn: psycopg.Connection[Any], query: str, *params: Any) -> Any:
    row = conn.execute(query, params).fetchone()
    return row[0] if row else None


class TestSchema:
    def test_types_and_defaults_are_well_formed(self) -> None:
        """Every declared type parses and every default has its declared type."""
        for rtype in PostgresProvider.resource_types:
            assert rtype.name.startswith("postgres_")
            for name, prop in rtype.properties.items():
                spec = parse_type(prop.type)
                if prop.default is not REQUIRED and prop.default is not None:
                    assert spec.check(prop.default) is None, (rtype.name, name)
            for attr in rtype.attributes.values():
                parse_type(attr.type)
        assert PostgresProvider.config["url"].sensitive
        assert PostgresProvider.config["url"].required

    def test_missing_or_bad_url_is_a_provider_error(self, tmp_path: Path) -> None:
        """A provider block without a usable url fails with a message, not a crash."""
        for config in ({}, {"url": "not a url ="}):
            bad = Context(config=config, stack_dir=tmp_path, data_dir=tmp_path)
            with pytest.raises(ProviderError, match="url"):
                DATABASE.read(bad, "x", {}, {})

    def test_unreachable_server_names_it_without_the_password(self, tmp_path: Path) -> None:
        """Connection failures say where, and never echo the password."""
        url = "postgresql://admin:hunter2@127.0.0.1:1/db?connect_timeout=2"
        bad = Context(config={"url": url}, stack_dir=tmp_path, data_dir=tmp_path)
        with pytest.raises(
            ProviderError, match=r"cannot connect to admin@127\.0\.0\.1:1/db"
        ) as err:
            DATABASE.read(bad, "x", {}, {})
        assert "hunter2" not in str(err.value)

    def test_database_url_drops_the_password_and_keeps_options(self) -> None:
        server = Server({"url": "postgresql://adm:pw@db.example:6543/postgres?sslmode=require"})
        assert (
            server.database_url("app db")
            == "postgresql://adm@db.example:6543/app%20db?sslmode=require"
        )
        socket = Server({"url": "host=/run/pg port=5433 user=adm dbname=x password=pw"})
        assert socket.database_url("app") == "postgresql://adm@/app?host=%2Frun%2Fpg"


class TestScram:
    def test_verifier_made_here_is_checked_like_one_made_by_postgres(
        self, admin: psycopg.Connection[Any], cleanup: list[tuple[str, str]]
    ) -> None:
        """Passwords hashed by the server (ASCII or not) match only themselves."""
        name = unique("scram")
        cleanup.append(("role", name))
        for password in ("s3cret", "pässwörd Ⅸ", "a\u00a0b", "\u05d0a"):
            admin.execute(
                sql.SQL("CREATE ROLE {} PASSWORD {}").format(
                    sql.Identifier(name), sql.Literal(password)
                )
            )
            stored = scalar(admin, "SELECT rolpassword FROM pg_authid WHERE rolname = %s", name)
            assert matches(password, stored, name)
            assert not matches(password + "x", stored, name)
            admin.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(name)))
        assert matches("pw", scram_verifier("pw"), name)
        assert saslprep("a\u00a0b") == b"a b"  # non-ASCII space mapped to a space

    def test_md5_verifiers_are_checked(self) -> None:
        import hashlib

        stored = "md5" + hashlib.md5(b"pwalice", usedforsecurity=False).hexdigest()
        assert matches("pw", stored, "alice")
        assert not matches("pw", stored, "bob")


class TestDatabase:
    def test_create_read_and_connect_through_the_url_attribute(
        self, ctx: Context, cleanup: list[tuple[str, str]]
    ) -> None:
        """A created database reads back as declared; its url attribute connects to it."""
        name = unique("db")
        cleanup.append(("database", name))
        props = defaults(DATABASE, name=name, connection_limit=7)
        created = DATABASE.create(ctx, props)
        assert created.id == name
        url = created.attributes["url"]
        assert url.endswith(f"/{name}") and "@127.0.0.1:55432/" in url
        with psycopg.connect(url) as conn:
            assert scalar(conn, "SELECT current_database()") == name
        observed = DATABASE.read(ctx, name, props, created.attributes)
        assert observed is not None
        assert observed.properties == {k: v for k, v in props.items() if k != "template"}
        assert observed.attributes == created.attributes

    def test_quoted_name_and_explicit_locale_and_encoding_spelling(
        self, ctx: Context, cleanup: list[tuple[str, str]], admin: psycopg.Connection[Any]
    ) -> None:
        """Names are taken literally; "utf-8" and UTF8 are the same encoding (no drift)."""
        name = 'My "DB" ' + uuid.uuid4().hex[:8]
        cleanup.append(("database", name))
        props = defaults(DATABASE, name=name, encoding="utf-8", lc_collate="C", lc_ctype="C")
        DATABASE.create(ctx, props)
        assert scalar(admin, "SELECT datcollate FROM pg_database WHERE datname = %s", name) == "C"
        observed = DATABASE.read(ctx, name, props, {})
        assert observed is not None
        assert observed.properties["encoding"] == "utf-8"
        assert observed.properties["lc_collate"] == "C"

    def test_update_in_place_and_drift_made_by_hand(
        self, ctx: Context, cleanup: list[tuple[str, str]], admin: psycopg.Connection[Any]
    ) -> None:
        """Owner and limits change in place; a change by hand shows in read."""
        name, owner = unique("db"), unique("owner")
        cleanup.extend([("role", owner), ("database", name)])
        admin.execute(sql.SQL("CREATE ROLE {}").format(sql.Identifier(owner)))
        props = defaults(DATABASE, name=name)
        DATABASE.create(ctx, props)
        changed = {**props, "owner": owner, "connection_limit": 3, "allow_connections": False}
        DATABASE.update(ctx, name, props, changed, {})
        observed = DATABASE.read(ctx, name, changed, {})
        assert observed is not None
        assert observed.properties["owner"] == owner
        assert observed.properties["connection_limit"] == 3
        assert observed.properties["allow_connections"] is False
        admin.execute(sql.SQL("ALTER DATABASE {} CONNECTION LIMIT 9").format(sql.Identifier(name)))
        drifted = DATABASE.read(ctx, name, changed, {})
        assert drifted is not None and drifted.properties["connection_limit"] == 9
        DATABASE.update(ctx, name, changed, props, {})
        back = DATABASE.read(ctx, name, props, {})
        assert back is not None and back.properties["owner"] is None

    def test_dropped_by_hand_reads_as_gone_and_delete_is_quiet(
        self, ctx: Context, cleanup: list[tuple[str, str]], admin: psycopg.Connection[Any]
    ) -> None:
        name = unique("db")
        cleanup.append(("database", name))
        props = defaults(DATABASE, name=name)
        DATABASE.create(ctx, props)
        admin.execute(sql.SQL("DROP DATABASE {}").format(sql.Identifier(name)))
        assert DATABASE.read(ctx, name, props, {}) is None
        DATABASE.delete(ctx, name, props, {})

    def test_delete_terminates_active_connections(
        self, ctx: Context, cleanup: list[tuple[str, str]], admin: psycopg.Connection[Any]
    ) -> None:
        """Sessions still connected to the database are ended so the drop succeeds."""
        name = unique("db")
        cleanup.append(("database", name))
        created = DATABASE.create(ctx, defaults(DATABASE, name=name))
        session = psycopg.connect(created.attributes["url"], autocommit=True)
        try:
            DATABASE.delete(ctx, name, defaults(DATABASE, name=name), created.attributes)
            assert scalar(admin, "SELECT count(*) FROM pg_database WHERE datname = %s", name) == 0
            with pytest.raises(psycopg.OperationalError):
                session.execute("SELECT 1")
        finally:
            session.close()

    def test_import_by_name(
        self, ctx: Context, cleanup: list[tuple[str, str]], admin: psycopg.Connection[Any]
    ) -> None:
        """An existing database is adopted with what can be observed of it."""
        name = unique("db")
        cleanup.append(("database", name))
        admin.execute(sql.SQL("CREATE DATABASE {} CONNECTION LIMIT 4").format(sql.Identifier(name)))
        observed = DATABASE.import_(ctx, name)
        assert observed.properties["name"] == name
        assert observed.properties["connection_limit"] == 4
        assert observed.properties["owner"] is None  # the admin itself
        assert "template" not in observed.properties
        with pytest.raises(ProviderError, match="no database"):
            DATABASE.import_(ctx, unique("missing"))

    def test_create_failure_is_a_provider_error(
        self, ctx: Context, cleanup: list[tuple[str, str]]
    ) -> None:
        """An owner that does not exist fails with PostgreSQL's message."""
        name = unique("db")
        cleanup.append(("database", name))
        with pytest.raises(ProviderError, match="does not exist"):
            DATABASE.create(ctx, defaults(DATABASE, name=name, owner=unique("nobody")))

    def test_validate(self) -> None:
        problems = DATABASE.validate(defaults(DATABASE, name="", connection_limit=-5))
        assert ("name", "must not be empty") in problems
        assert any(path == "connection_limit" for path, _ in problems)


class TestRole:
    def test_create_read_no_drift(
        self, ctx: Context, cleanup: list[tuple[str, str]], admin: psycopg.Connection[Any]
    ) -> None:
        """Every option reads back as declared; the password is checked, not stored."""
        name, group = unique("role"), unique("group")
        cleanup.extend([("role", name), ("role", group)])
        admin.execute(sql.SQL("CREATE ROLE {}").format(sql.Identifier(group)))
        props = defaults(
            ROLE,
            name=name,
            login=True,
            password="correct horse",
            createdb=True,
            inherit=False,
            connection_limit=5,
            valid_until="2031-01-02 03:04:05+00",
            member_of=[group],
        )
        assert ROLE.create(ctx, props).id == name
        observed = ROLE.read(ctx, name, props, {})
        assert observed is not None
        assert observed.properties == props
        assert observed.notes == ()
        stored = scalar(admin, "SELECT rolpassword FROM pg_authid WHERE rolname = %s", name)
        assert stored.startswith("SCRAM-SHA-256$") and "correct horse" not in stored

    def test_password_changed_outside_is_drift_and_update_restores_it(
        self, ctx: Context, cleanup: list[tuple[str, str]], admin: psycopg.Connection[Any]
    ) -> None:
        name = unique("role")
        cleanup.append(("role", name))
        props = defaults(ROLE, name=name, login=True, password="first")
        ROLE.create(ctx, props)
        admin.execute(sql.SQL("ALTER ROLE {} PASSWORD 'other'").format(sql.Identifier(name)))
        observed = ROLE.read(ctx, name, props, {})
        assert observed is not None
        assert observed.properties["password"] == CHANGED_PASSWORD
        assert any("password" in note for note in observed.notes)
        # The engine passes the refreshed properties as the prior ones.
        ROLE.update(ctx, name, observed.properties, props, {})
        fixed = ROLE.read(ctx, name, props, {})
        assert fixed is not None and fixed.properties["password"] == "first"
        admin.execute(sql.SQL("ALTER ROLE {} PASSWORD NULL").format(sql.Identifier(name)))
        cleared = ROLE.read(ctx, name, props, {})
        assert cleared is not None and cleared.properties["password"] is None

    def test_password_kept_by_ignore_changes_is_left_alone(
        self, ctx: Context, cleanup: list[tuple[str, str]], admin: psycopg.Connection[Any]
    ) -> None:
        """An update carrying the observed placeholder does not touch the password."""
        name = unique("role")
        cleanup.append(("role", name))
        props = defaults(ROLE, name=name, login=True, password="first")
        ROLE.create(ctx, props)
        admin.execute(sql.SQL("ALTER ROLE {} PASSWORD 'rotated'").format(sql.Identifier(name)))
        observed = ROLE.read(ctx, name, props, {})
        assert observed is not None
        kept = {**observed.properties, "connection_limit": 4}  # password ignored, limit changed
        ROLE.update(ctx, name, observed.properties, kept, {})
        stored = scalar(admin, "SELECT rolpassword FROM pg_authid WHERE rolname = %s", name)
        assert matches("rotated", stored, name)
        assert scalar(admin, "SELECT rolconnlimit FROM pg_roles WHERE rolname = %s", name) == 4

    def test_options_and_membership_changed_by_hand_are_drift(
        self, ctx: Context, cleanup: list[tuple[str, str]], admin: psycopg.Connection[Any]
    ) -> None:
        name, group = unique("role"), unique("group")
        cleanup.extend([("role", name), ("role", group)])
        admin.execute(sql.SQL("CREATE ROLE {}").format(sql.Identifier(group)))
        props = defaults(ROLE, name=name, member_of=[group], valid_until="2030-06-01")
        ROLE.create(ctx, props)
        admin.execute(
            sql.SQL("ALTER ROLE {} CREATEDB CONNECTION LIMIT 2 VALID UNTIL '2040-01-01Z'").format(
                sql.Identifier(name)
            )
        )
        admin.execute(
            sql.SQL("REVOKE {} FROM {}").format(sql.Identifier(group), sql.Identifier(name))
        )
        observed = ROLE.read(ctx, name, props, {})
        assert observed is not None
        assert observed.properties["createdb"] is True
        assert observed.properties["connection_limit"] == 2
        assert observed.properties["valid_until"] == "2040-01-01T00:00:00Z"
        assert observed.properties["member_of"] == []
        ROLE.update(ctx, name, props, props, {})
        fixed = ROLE.read(ctx, name, props, {})
        assert fixed is not None and fixed.properties == props

    def test_update_changes_membership_both_ways(
        self, ctx: Context, cleanup: list[tuple[str, str]]
    ) -> None:
        name, g1, g2 = unique("role"), unique("g1"), unique("g2")
        cleanup.extend([("role", name), ("role", g1), ("role", g2)])
        for group in (g1, g2):
            ROLE.create(ctx, defaults(ROLE, name=group))
        props = defaults(ROLE, name=name, member_of=[g1])
        ROLE.create(ctx, props)
        changed = {**props, "member_of": [g2], "login": True}
        ROLE.update(ctx, name, props, changed, {})
        observed = ROLE.read(ctx, name, changed, {})
        assert observed is not None
        assert observed.properties["member_of"] == [g2]
        assert observed.properties["login"] is True

    def test_delete_role_owning_objects_in_another_database(
        self, ctx: Context, cleanup: list[tuple[str, str]], admin: psycopg.Connection[Any]
    ) -> None:
        """What the role owns goes to the admin; its privileges are dropped; then it goes."""
        name, db = unique("role"), unique("db")
        cleanup.extend([("role", name), ("database", db)])
        props = defaults(ROLE, name=name)
        ROLE.create(ctx, props)
        created = DATABASE.create(ctx, defaults(DATABASE, name=db))
        with psycopg.connect(created.attributes["url"], autocommit=True) as conn:
            conn.execute(sql.SQL("CREATE TABLE t (x int)"))
            conn.execute(sql.SQL("ALTER TABLE t OWNER TO {}").format(sql.Identifier(name)))
            conn.execute(sql.SQL("CREATE TABLE u (x int)"))
            conn.execute(sql.SQL("GRANT SELECT ON u TO {}").format(sql.Identifier(name)))
        ROLE.delete(ctx, name, props, {})
        assert ROLE.read(ctx, name, props, {}) is None
        with psycopg.connect(created.attributes["url"]) as conn:
            assert (
                scalar(conn, "SELECT pg_get_userbyid(relowner) FROM pg_class WHERE relname = 't'")
                == "postgres"
            )
        ROLE.delete(ctx, name, props, {})  # already gone: quiet

    def test_prehashed_password_and_import(
        self, ctx: Context, cleanup: list[tuple[str, str]]
    ) -> None:
        """A verifier given as the password is stored as is; import sees flags, not secrets."""
        name = unique("role")
        cleanup.append(("role", name))
        verifier = scram_verifier("from a vault")
        props = defaults(ROLE, name=name, login=True, password=verifier)
        ROLE.create(ctx, props)
        observed = ROLE.read(ctx, name, props, {})
        assert observed is not None and observed.properties["password"] == verifier
        imported = ROLE.import_(ctx, name)
        assert imported.properties["login"] is True
        assert imported.properties["password"] == CHANGED_PASSWORD  # set, but unknowable
        with pytest.raises(ProviderError, match="no role"):
            ROLE.import_(ctx, unique("missing"))

    def test_admin_without_superuser_does_not_observe_passwords(
        self, tmp_path: Path, ctx: Context, cleanup: list[tuple[str, str]]
    ) -> None:
        """pg_authid is for superusers: a CREATEROLE admin manages roles, passwords unchecked."""
        admin_name, name = unique("admin"), unique("role")
        cleanup.extend([("role", name), ("role", admin_name)])
        ROLE.create(
            ctx, defaults(ROLE, name=admin_name, login=True, createrole=True, password="weak-admin")
        )
        info = psycopg.conninfo.conninfo_to_dict(postgres_url())
        info.update(user=admin_name, password="weak-admin")
        weak = Context(
            config={"url": psycopg.conninfo.make_conninfo(**info)},
            stack_dir=tmp_path,
            data_dir=tmp_path,
        )
        props = defaults(ROLE, name=name, login=True, password="pw")
        ROLE.create(weak, props)
        observed = ROLE.read(weak, name, props, {})
        assert observed is not None
        assert "password" not in observed.properties
        assert observed.properties["login"] is True

    def test_validate(self) -> None:
        problems = ROLE.validate(defaults(ROLE, name="a", member_of=["a", "b", "b"]))
        assert ("member_of", "a role cannot be a member of itself") in problems
        assert any(path == "member_of[2]" for path, _ in problems)
        assert ROLE.validate(defaults(ROLE, name="public"))

    def test_grant_type_is_part_of_the_provider(self) -> None:
        assert PostgresGrant in PostgresProvider.resource_types
