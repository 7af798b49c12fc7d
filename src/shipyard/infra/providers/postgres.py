"""The ``postgres`` provider: databases, roles and grants on a PostgreSQL server.

The provider's ``url`` is an admin connection (a superuser, or a role with CREATEDB and
CREATEROLE; some checks need a superuser, see each type). Identifiers are always quoted,
so names are taken literally (``MyApp`` stays ``MyApp``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

from psycopg import sql

from shipyard.errors import ProviderError
from shipyard.infra.provider import (
    REQUIRED,
    Attribute,
    Context,
    Created,
    Observed,
    Property,
    Provider,
    ResourceType,
)
from shipyard.infra.providers._postgres_conn import Conn, Server
from shipyard.infra.providers._postgres_grant import PostgresGrant
from shipyard.infra.providers._postgres_role import PostgresRole

__all__ = ["PostgresDatabase", "PostgresGrant", "PostgresProvider", "PostgresRole"]

_DEFAULT_TEMPLATE = "template0"

_DB_QUERY = """
SELECT pg_get_userbyid(d.datdba), pg_encoding_to_char(d.encoding),
       pg_char_to_encoding(%(encoding)s) = d.encoding,
       d.datcollate, d.datctype, d.datconnlimit, d.datallowconn, current_user,
       t.datcollate, t.datctype
FROM pg_database d
LEFT JOIN pg_database t ON t.datname = %(template)s
WHERE d.datname = %(name)s
"""


class PostgresDatabase(ResourceType):
    """A database on the server."""

    name = "postgres_database"
    description = "A PostgreSQL database"
    properties: ClassVar[Mapping[str, Property]] = {
        "name": Property(default=REQUIRED, replace=True, description="Database name."),
        "owner": Property(
            description="Owning role; unset means the admin role of the provider's url."
        ),
        "encoding": Property(
            default="UTF8", replace=True, description="Character set (e.g. UTF8, LATIN1)."
        ),
        "lc_collate": Property(
            replace=True, description="Collation order; unset means the template's."
        ),
        "lc_ctype": Property(
            replace=True, description="Character classification; unset means the template's."
        ),
        "template": Property(
            default=_DEFAULT_TEMPLATE,
            replace=True,
            description="Template database to copy (not observable: never drift).",
        ),
        "connection_limit": Property(
            type="integer", default=-1, description="Concurrent connections; -1 = no limit."
        ),
        "allow_connections": Property(
            type="boolean", default=True, description="Whether anyone may connect."
        ),
    }
    attributes: ClassVar[Mapping[str, Attribute]] = {
        "url": Attribute(
            stable=True,
            description="postgresql:// URL of this database: the provider's url "
            "with this database's name and without the admin password.",
        ),
        "host": Attribute(stable=True, description="Server host (or unix socket folder)."),
        "port": Attribute(type="integer", stable=True, description="Server port."),
    }

    def validate(self, properties: Mapping[str, Any]) -> list[tuple[str, str]]:
        problems: list[tuple[str, str]] = []
        for key in ("name", "owner", "template"):
            value = properties.get(key)
            if isinstance(value, str) and not value:
                problems.append((key, "must not be empty"))
        limit = properties.get("connection_limit")
        if isinstance(limit, int) and limit < -1:
            problems.append(("connection_limit", "must be -1 (no limit) or more"))
        return problems

    def _attributes(self, server: Server, name: str) -> dict[str, Any]:
        return {"url": server.database_url(name), "host": server.host, "port": server.port}

    def create(self, ctx: Context, properties: Mapping[str, Any]) -> Created:
        server = Server(ctx.config)
        name = properties["name"]
        parts: list[sql.Composable] = [sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name))]
        if properties.get("owner"):
            parts.append(sql.SQL("OWNER {}").format(sql.Identifier(properties["owner"])))
        parts.append(
            sql.SQL("TEMPLATE {}").format(
                sql.Identifier(properties.get("template") or _DEFAULT_TEMPLATE)
            )
        )
        for key, word in (
            ("encoding", "ENCODING"),
            ("lc_collate", "LC_COLLATE"),
            ("lc_ctype", "LC_CTYPE"),
        ):
            if properties.get(key):
                parts.append(sql.SQL(word + " {}").format(sql.Literal(properties[key])))
        parts.append(_limits(properties))
        with server.connect() as conn:
            conn.execute(sql.SQL(" ").join(parts))
        return Created(id=name, attributes=self._attributes(server, name))

    def _observe(
        self, conn: Conn, server: Server, name: str, prior: Mapping[str, Any]
    ) -> Observed | None:
        template = prior.get("template") or _DEFAULT_TEMPLATE
        encoding = prior.get("encoding") or "UTF8"
        row = conn.execute(
            _DB_QUERY, {"name": name, "template": template, "encoding": encoding}
        ).fetchone()
        if row is None:
            return None
        owner, actual_encoding, same_encoding, collate, ctype, limit, allow, admin = row[:8]
        template_locale = {"lc_collate": row[8], "lc_ctype": row[9]}
        props: dict[str, Any] = {
            "name": name,
            # An unset owner means "the admin": only a different owner is drift.
            "owner": None if prior.get("owner") is None and owner == admin else owner,
            "encoding": encoding if same_encoding else actual_encoding,
            "connection_limit": limit,
            "allow_connections": allow,
        }
        for key, actual in (("lc_collate", collate), ("lc_ctype", ctype)):
            wanted = prior.get(key)
            if wanted is None and actual == template_locale[key]:
                props[key] = None
            else:
                props[key] = actual
        return Observed(properties=props, attributes=self._attributes(server, name))

    def read(
        self,
        ctx: Context,
        id: str,
        properties: Mapping[str, Any],
        attributes: Mapping[str, Any],
    ) -> Observed | None:
        server = Server(ctx.config)
        with server.connect() as conn:
            return self._observe(conn, server, id, properties)

    def update(
        self,
        ctx: Context,
        id: str,
        prior: Mapping[str, Any],
        properties: Mapping[str, Any],
        attributes: Mapping[str, Any],
    ) -> dict[str, Any]:
        server = Server(ctx.config)
        name = sql.Identifier(id)
        owner = properties.get("owner")
        with server.connect() as conn:
            conn.execute(
                sql.SQL("ALTER DATABASE {} OWNER TO {}").format(
                    name, sql.Identifier(owner) if owner else sql.SQL("CURRENT_USER")
                )
            )
            conn.execute(sql.SQL("ALTER DATABASE {} WITH {}").format(name, _limits(properties)))
        return self._attributes(server, id)

    def delete(
        self,
        ctx: Context,
        id: str,
        properties: Mapping[str, Any],
        attributes: Mapping[str, Any],
    ) -> None:
        server = Server(ctx.config)
        name = sql.Identifier(id)
        with server.connect() as conn:
            if not server.database_exists(conn, id):
                return
            # Sessions still connected would make DROP fail: shut the door first so none
            # can come back between the terminate and the drop, then end those inside.
            conn.execute(sql.SQL("ALTER DATABASE {} WITH ALLOW_CONNECTIONS false").format(name))
            conn.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE datname = %s AND pid <> pg_backend_pid()",
                (id,),
            )
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {}").format(name))

    def find(self, ctx: Context, properties: Mapping[str, Any]) -> Created | None:
        """The database an interrupted create made, by its name."""
        server = Server(ctx.config)
        name = properties["name"]
        with server.connect() as conn:
            if not server.database_exists(conn, name):
                return None
        return Created(id=name, attributes=self._attributes(server, name))

    def import_(self, ctx: Context, id: str) -> Observed:
        server = Server(ctx.config)
        with server.connect() as conn:
            observed = self._observe(conn, server, id, {})
        if observed is None:
            raise ProviderError(f"postgres: there is no database '{id}' on {server.describe()}")
        return observed


def _limits(properties: Mapping[str, Any]) -> sql.Composable:
    limit = properties.get("connection_limit")
    allow = properties.get("allow_connections")
    return sql.SQL("CONNECTION LIMIT {} ALLOW_CONNECTIONS {}").format(
        sql.SQL(str(int(-1 if limit is None else limit))),
        sql.SQL("true" if allow is None or allow else "false"),
    )


class PostgresProvider(Provider):
    """Databases, roles and grants on one PostgreSQL server."""

    name = "postgres"
    description = "PostgreSQL databases, roles and grants"
    config: ClassVar[Mapping[str, Property]] = {
        "url": Property(
            default=REQUIRED,
            sensitive=True,
            description="Admin connection URL (postgresql://user:password@host:port/db).",
        ),
    }
    resource_types = (PostgresDatabase, PostgresRole, PostgresGrant)
