"""``postgres_role``: a role (user or group) on the server.

Passwords travel as SCRAM-SHA-256 verifiers (see ``_postgres_scram``). To notice a
password changed outside Shipyard, ``read`` checks the desired password against the
verifier in ``pg_authid``; only a superuser may read that catalog, so with a weaker admin
role the password is not observed (never reported as drift). An update re-states every
option (harmless when unchanged) and the password only when it changed.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

from psycopg import sql

from shipyard.errors import ProviderError
from shipyard.infra.provider import (
    REQUIRED,
    Context,
    Created,
    Observed,
    Property,
    ResourceType,
)
from shipyard.infra.providers._postgres_conn import Conn, Server, is_superuser
from shipyard.infra.providers._postgres_scram import is_verifier, matches, scram_verifier

# What ``read`` reports for a password that no longer matches: it differs from any
# desired password, so the plan updates the role (the real value is unknowable).
CHANGED_PASSWORD = "(changed outside shipyard)"

_FLAGS = (
    ("login", "LOGIN"),
    ("superuser", "SUPERUSER"),
    ("createdb", "CREATEDB"),
    ("createrole", "CREATEROLE"),
    ("inherit", "INHERIT"),
    ("replication", "REPLICATION"),
)

_ROLE_QUERY = """
SELECT r.oid, r.rolcanlogin, r.rolsuper, r.rolcreatedb, r.rolcreaterole, r.rolinherit,
       r.rolreplication, r.rolconnlimit,
       CASE WHEN r.rolvaliduntil IS NULL OR r.rolvaliduntil = 'infinity' THEN NULL
            ELSE to_char(r.rolvaliduntil AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"')
       END,
       ARRAY(SELECT g.rolname FROM pg_auth_members m JOIN pg_roles g ON g.oid = m.roleid
             WHERE m.member = r.oid ORDER BY g.rolname)
FROM pg_roles r WHERE r.rolname = %s
"""


def _flag(word: str, on: Any) -> sql.Composable:
    return sql.SQL(word if on else "NO" + word)


def _options(properties: Mapping[str, Any], *, password: bool) -> sql.Composable:
    parts = [_flag(word, properties.get(key, key == "inherit")) for key, word in _FLAGS]
    limit = properties.get("connection_limit")
    parts.append(sql.SQL("CONNECTION LIMIT " + str(int(-1 if limit is None else limit))))
    if password:
        value = properties.get("password")
        if value is None or value == CHANGED_PASSWORD:
            parts.append(sql.SQL("PASSWORD NULL"))
        else:
            verifier = value if is_verifier(value) else scram_verifier(value)
            parts.append(sql.SQL("PASSWORD {}").format(sql.Literal(verifier)))
    valid_until = properties.get("valid_until")
    parts.append(sql.SQL("VALID UNTIL {}").format(sql.Literal(valid_until or "infinity")))
    return sql.SQL(" ").join(parts)


def _sync_membership(conn: Conn, role: str, wanted: list[str]) -> None:
    row = conn.execute(_ROLE_QUERY, (role,)).fetchone()
    current = set(row[9]) if row else set()
    for group in sorted(set(wanted) - current):
        conn.execute(sql.SQL("GRANT {} TO {}").format(sql.Identifier(group), sql.Identifier(role)))
    for group in sorted(current - set(wanted)):
        conn.execute(
            sql.SQL("REVOKE {} FROM {}").format(sql.Identifier(group), sql.Identifier(role))
        )


class PostgresRole(ResourceType):
    """A role; with ``login`` a user."""

    name = "postgres_role"
    description = "A PostgreSQL role (a user when login is true)"
    properties: ClassVar[Mapping[str, Property]] = {
        "name": Property(default=REQUIRED, replace=True, description="Role name."),
        "login": Property(type="boolean", default=False, description="May log in."),
        "password": Property(
            sensitive=True,
            description="Password (plain, or a SCRAM-SHA-256/md5 verifier); unset = none.",
        ),
        "superuser": Property(type="boolean", default=False, description="Is a superuser."),
        "createdb": Property(type="boolean", default=False, description="May create databases."),
        "createrole": Property(type="boolean", default=False, description="May create roles."),
        "inherit": Property(
            type="boolean", default=True, description="Inherits the privileges of its groups."
        ),
        "replication": Property(
            type="boolean", default=False, description="May start streaming replication."
        ),
        "connection_limit": Property(
            type="integer", default=-1, description="Concurrent connections; -1 = no limit."
        ),
        "valid_until": Property(
            description="Timestamp after which the password stops working; unset = never."
        ),
        "member_of": Property(
            type="list(string)", default=[], description="Roles this role is a member of."
        ),
    }

    def validate(self, properties: Mapping[str, Any]) -> list[tuple[str, str]]:
        problems: list[tuple[str, str]] = []
        name = properties.get("name")
        if isinstance(name, str) and (not name or name.lower() == "public"):
            problems.append(("name", "must not be empty or 'public'"))
        limit = properties.get("connection_limit")
        if isinstance(limit, int) and limit < -1:
            problems.append(("connection_limit", "must be -1 (no limit) or more"))
        groups = properties.get("member_of")
        if isinstance(groups, list):
            if name in groups:
                problems.append(("member_of", "a role cannot be a member of itself"))
            seen: set[Any] = set()
            for i, group in enumerate(groups):
                if group in seen:
                    problems.append((f"member_of[{i}]", f"'{group}' is listed twice"))
                seen.add(group)
        return problems

    def create(self, ctx: Context, properties: Mapping[str, Any]) -> Created:
        server = Server(ctx.config)
        name = properties["name"]
        with server.connect() as conn, conn.transaction():
            conn.execute(
                sql.SQL("CREATE ROLE {} WITH {}").format(
                    sql.Identifier(name), _options(properties, password=True)
                )
            )
            _sync_membership(conn, name, list(properties.get("member_of") or []))
        return Created(id=name)

    def _observe(self, conn: Conn, name: str, prior: Mapping[str, Any] | None) -> Observed | None:
        """The role as it is; ``prior`` None when importing (no desired password)."""
        row = conn.execute(_ROLE_QUERY, (name,)).fetchone()
        if row is None:
            return None
        props: dict[str, Any] = {"name": name}
        for (key, _word), value in zip(_FLAGS, row[1:7], strict=True):
            props[key] = value
        props["connection_limit"] = row[7]
        props["valid_until"] = row[8]
        wanted_until = (prior or {}).get("valid_until")
        if wanted_until is not None:
            same = conn.execute(
                sql.SQL(
                    "SELECT COALESCE(rolvaliduntil, 'infinity') = {}::timestamptz "
                    "FROM pg_roles WHERE oid = %s"
                ).format(sql.Literal(wanted_until)),
                (row[0],),
            ).fetchone()
            if same and same[0]:
                props["valid_until"] = wanted_until
        groups = list(row[9])
        wanted_groups = list((prior or {}).get("member_of") or [])
        props["member_of"] = wanted_groups if set(wanted_groups) == set(groups) else groups
        notes: list[str] = []
        if is_superuser(conn):
            stored_row = conn.execute(
                "SELECT rolpassword FROM pg_authid WHERE oid = %s", (row[0],)
            ).fetchone()
            stored = stored_row[0] if stored_row else None
            wanted = (prior or {}).get("password")
            if stored is None:
                props["password"] = None
            elif wanted is not None and matches(wanted, stored, name):
                props["password"] = wanted
            else:
                props["password"] = CHANGED_PASSWORD
                if prior is not None:
                    notes.append(f"the password of role '{name}' was changed outside shipyard")
        return Observed(properties=props, notes=tuple(notes))

    def read(
        self,
        ctx: Context,
        id: str,
        properties: Mapping[str, Any],
        attributes: Mapping[str, Any],
    ) -> Observed | None:
        with Server(ctx.config).connect() as conn:
            return self._observe(conn, id, properties)

    def update(
        self,
        ctx: Context,
        id: str,
        prior: Mapping[str, Any],
        properties: Mapping[str, Any],
        attributes: Mapping[str, Any],
    ) -> dict[str, Any]:
        with Server(ctx.config).connect() as conn, conn.transaction():
            # The password is set only when it differs from the refreshed prior one (which
            # is CHANGED_PASSWORD when it was changed outside): a password kept as it is
            # through ignore_changes is left alone, never set to the placeholder.
            wanted = properties.get("password")
            restate = wanted != prior.get("password") and wanted != CHANGED_PASSWORD
            conn.execute(
                sql.SQL("ALTER ROLE {} WITH {}").format(
                    sql.Identifier(id), _options(properties, password=restate)
                )
            )
            _sync_membership(conn, id, list(properties.get("member_of") or []))
        return {}

    def delete(
        self,
        ctx: Context,
        id: str,
        properties: Mapping[str, Any],
        attributes: Mapping[str, Any],
    ) -> None:
        server = Server(ctx.config)
        role = sql.Identifier(id)
        # Objects the role owns and privileges granted to it (in any database) would make
        # DROP ROLE fail: hand what it owns to the admin role and drop its privileges,
        # database by database, as Terraform's provider does.
        cleanup = sql.SQL("REASSIGN OWNED BY {} TO CURRENT_USER; DROP OWNED BY {}").format(
            role, role
        )
        with server.connect() as conn:
            row = conn.execute("SELECT oid FROM pg_roles WHERE rolname = %s", (id,)).fetchone()
            if row is None:
                return
            databases = [
                r[0]
                for r in conn.execute(
                    "SELECT DISTINCT d.datname FROM pg_shdepend s "
                    "JOIN pg_database d ON d.oid = s.dbid "
                    "WHERE s.refclassid = 'pg_authid'::regclass AND s.refobjid = %s "
                    "AND d.datallowconn AND d.datname <> current_database()",
                    (row[0],),
                )
            ]
            for database in databases:
                if not server.database_exists(conn, database):
                    continue  # dropped meanwhile
                with server.connect(database) as other:
                    other.execute(cleanup)
            conn.execute(cleanup)
            conn.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(role))

    def find(self, ctx: Context, properties: Mapping[str, Any]) -> Created | None:
        """The role an interrupted create made, by its name (its options are then
        compared by read, and an update completes them)."""
        name = properties["name"]
        with Server(ctx.config).connect() as conn:
            row = conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (name,)).fetchone()
        return None if row is None else Created(id=name)

    def import_(self, ctx: Context, id: str) -> Observed:
        server = Server(ctx.config)
        with server.connect() as conn:
            observed = self._observe(conn, id, None)
        if observed is None:
            raise ProviderError(f"postgres: there is no role '{id}' on {server.describe()}")
        return observed
