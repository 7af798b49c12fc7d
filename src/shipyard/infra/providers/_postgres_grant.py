"""``postgres_grant``: the privileges one role holds on a database, a schema, or tables or
sequences of a schema.

A grant is authoritative for its role and objects, as in Terraform's provider: applying
it first revokes every privilege the role holds on those objects, then grants the listed
ones, in one transaction, so no session sees the role without its privileges. ``read``
compares the privileges each object's ACL gives the role (``aclexplode`` over the
catalogs) with the desired ones: a privilege revoked or added by hand is drift. With
``objects`` empty the grant covers every table (or sequence) of the schema that exists
when it is applied; a table created later without the privileges shows as drift, and
the next apply grants on it too.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

from psycopg import sql

from shipyard.errors import ProviderError
from shipyard.infra.provider import REQUIRED, Context, Created, Observed, Property, ResourceType
from shipyard.infra.providers._postgres_conn import Conn, Server, role_ident

OBJECT_TYPES = ("database", "schema", "table", "sequence")
_PRIVILEGES: dict[str, tuple[str, ...]] = {
    "database": ("CREATE", "CONNECT", "TEMPORARY"),
    "schema": ("CREATE", "USAGE"),
    "table": ("SELECT", "INSERT", "UPDATE", "DELETE", "TRUNCATE", "REFERENCES", "TRIGGER"),
    "sequence": ("USAGE", "SELECT", "UPDATE"),
}
_MAINTAIN_SINCE = 170000  # PostgreSQL 17 added MAINTAIN on tables (and to ALL)
_RELKINDS = {"table": ["r", "p", "v", "m", "f"], "sequence": ["S"]}
_MAX_NOTES = 10

# (name, privileges, grantable privileges) of each object, for one grantee.
_ACL_QUERY = {
    "database": """
        SELECT o.datname, {acl}
        FROM pg_database o {lateral}
        WHERE o.datname = %(database)s GROUP BY o.datname""",
    "schema": """
        SELECT o.nspname, {acl}
        FROM pg_namespace o {lateral}
        WHERE o.nspname = %(schema)s GROUP BY o.nspname""",
    "relation": """
        SELECT o.relname, {acl}
        FROM pg_class o JOIN pg_namespace n ON n.oid = o.relnamespace {lateral}
        WHERE n.nspname = %(schema)s AND o.relkind::text = ANY(%(relkinds)s)
        GROUP BY o.relname ORDER BY o.relname""",
}
_ACL_COLUMNS = (
    "COALESCE(array_agg(a.privilege_type) FILTER (WHERE a.privilege_type IS NOT NULL), "
    "'{}'::text[]), "
    "COALESCE(array_agg(a.privilege_type) FILTER (WHERE a.is_grantable), '{}'::text[])"
)
_LATERAL = (
    "LEFT JOIN LATERAL (SELECT * FROM aclexplode(COALESCE(o.{column}, acldefault({kind}, "
    "o.{owner}))) x WHERE x.grantee = %(grantee)s) a ON true"
)
_CATALOG = {
    "database": ("datacl", "'d'", "datdba"),
    "schema": ("nspacl", "'n'", "nspowner"),
    "table": ("relacl", "'r'", "relowner"),
    "sequence": ("relacl", "'s'", "relowner"),
}


def _query(object_type: str) -> str:
    column, kind, owner = _CATALOG[object_type]
    lateral = _LATERAL.format(column=column, kind=kind, owner=owner)
    shape = object_type if object_type in ("database", "schema") else "relation"
    return _ACL_QUERY[shape].format(acl=_ACL_COLUMNS, lateral=lateral)


def all_privileges(object_type: str, server_version: int) -> set[str]:
    full = set(_PRIVILEGES[object_type])
    if object_type == "table" and server_version >= _MAINTAIN_SINCE:
        full.add("MAINTAIN")
    return full


def normalise(object_type: str, privileges: Sequence[str], server_version: int) -> set[str]:
    """The privilege names as the catalogs spell them (ALL expanded, TEMP → TEMPORARY)."""
    out: set[str] = set()
    for item in privileges:
        word = " ".join(item.upper().split())
        if word in ("ALL", "ALL PRIVILEGES"):
            out |= all_privileges(object_type, server_version)
        elif word == "TEMP":
            out.add("TEMPORARY")
        else:
            out.add(word)
    return out


def grant_id(properties: Mapping[str, Any]) -> str:
    """``ROLE/DATABASE/TYPE[/SCHEMA[/OBJECT,OBJECT...]]``: also the import syntax."""
    parts = [properties["role"], properties["database"], properties["object_type"]]
    if properties["object_type"] != "database":
        parts.append(properties.get("schema") or "public")
    objects = properties.get("objects") or []
    if objects:
        parts.append(",".join(objects))
    return "/".join(parts)


def parse_grant_id(text: str) -> dict[str, Any]:
    parts = text.split("/")
    usage = (
        "a grant is imported as ROLE/DATABASE/database, ROLE/DATABASE/schema/SCHEMA or "
        "ROLE/DATABASE/table|sequence/SCHEMA[/NAME,NAME...]"
    )
    if len(parts) < 3 or parts[2] not in OBJECT_TYPES or not all(parts):
        raise ProviderError(f"postgres: bad grant id '{text}': {usage}")
    object_type = parts[2]
    most = {"database": 3, "schema": 4}.get(object_type, 5)
    if len(parts) > most or (object_type == "schema" and len(parts) < 4):
        raise ProviderError(f"postgres: bad grant id '{text}': {usage}")
    return {
        "role": parts[0],
        "database": parts[1],
        "object_type": object_type,
        "schema": parts[3] if len(parts) > 3 else "public",
        "objects": parts[4].split(",") if len(parts) > 4 else [],
    }


class PostgresGrant(ResourceType):
    """Privileges of a role on a database, a schema, or tables/sequences of a schema."""

    name = "postgres_grant"
    description = "Privileges of a PostgreSQL role on a database, schema, tables or sequences"
    properties: ClassVar[Mapping[str, Property]] = {
        "role": Property(
            default=REQUIRED, replace=True, description="Role receiving them ('public' = all)."
        ),
        "database": Property(default=REQUIRED, replace=True, description="Database."),
        "object_type": Property(
            default=REQUIRED, replace=True, description="database, schema, table or sequence."
        ),
        "schema": Property(
            default="public",
            replace=True,
            description="The schema (object_type schema), or the one holding the objects.",
        ),
        "objects": Property(
            type="list(string)",
            default=[],
            description="Table or sequence names; empty = all of them in the schema.",
        ),
        "privileges": Property(
            type="list(string)",
            default=REQUIRED,
            description="Privileges (SELECT, USAGE, CONNECT, ALL ...); empty = none.",
        ),
        "with_grant_option": Property(
            type="boolean", default=False, description="The role may grant them on."
        ),
    }

    def validate(self, properties: Mapping[str, Any]) -> list[tuple[str, str]]:
        problems: list[tuple[str, str]] = []
        object_type = properties.get("object_type")
        if isinstance(object_type, str) and object_type not in OBJECT_TYPES:
            problems.append(("object_type", f"must be one of {', '.join(OBJECT_TYPES)}"))
            return problems
        for key in ("role", "database", "schema"):
            value = properties.get(key)
            if isinstance(value, str) and not value:
                problems.append((key, "must not be empty"))
        objects = properties.get("objects")
        if object_type in ("database", "schema") and objects:
            problems.append(
                ("objects", f"must be empty for object_type {object_type} (it names one)")
            )
        privileges = properties.get("privileges")
        if isinstance(object_type, str) and isinstance(privileges, list):
            allowed = {*_PRIVILEGES[object_type], "ALL", "ALL PRIVILEGES"}
            if object_type == "database":
                allowed.add("TEMP")
            if object_type == "table":
                allowed.add("MAINTAIN")
            for i, item in enumerate(privileges):
                if isinstance(item, str) and " ".join(item.upper().split()) not in allowed:
                    problems.append(
                        (
                            f"privileges[{i}]",
                            f"'{item}' is not a privilege on a {object_type}; use "
                            + ", ".join(sorted(allowed)),
                        )
                    )
        return problems

    # -- catalogs --------------------------------------------------------------------------

    def _grantee(self, conn: Conn, role: str) -> int | None:
        if role.lower() == "public":
            return 0
        row = conn.execute("SELECT oid FROM pg_roles WHERE rolname = %s", (role,)).fetchone()
        return int(row[0]) if row else None

    def _acls(
        self, conn: Conn, props: Mapping[str, Any], grantee: int
    ) -> dict[str, tuple[set[str], set[str]]]:
        object_type = props["object_type"]
        params = {
            "grantee": grantee,
            "database": props["database"],
            "schema": props.get("schema") or "public",
            "relkinds": _RELKINDS.get(object_type, []),
        }
        rows = conn.execute(_query(object_type), params).fetchall()
        return {row[0]: (set(row[1]), set(row[2])) for row in rows}

    def _schema_exists(self, conn: Conn, schema: str) -> bool:
        row = conn.execute("SELECT 1 FROM pg_namespace WHERE nspname = %s", (schema,)).fetchone()
        return row is not None

    def _connect_for(self, server: Server, props: Mapping[str, Any]) -> Any:
        # Database privileges live in a shared catalog: any database will do.
        return server.connect(None if props["object_type"] == "database" else props["database"])

    def _observe(
        self, server: Server, props: Mapping[str, Any], importing: bool
    ) -> Observed | None:
        with server.connect() as admin:
            if not server.database_exists(admin, props["database"]):
                return None
            if props["object_type"] == "database":
                return self._observe_in(admin, props, importing)
        with server.connect(props["database"]) as conn:
            return self._observe_in(conn, props, importing)

    def _observe_in(self, conn: Conn, props: Mapping[str, Any], importing: bool) -> Observed | None:
        grantee = self._grantee(conn, props["role"])
        if grantee is None:
            return None
        object_type = props["object_type"]
        if object_type in ("table", "sequence") and not self._schema_exists(
            conn, props.get("schema") or "public"
        ):
            return None
        acls = self._acls(conn, props, grantee)
        if object_type in ("database", "schema") and not acls:
            return None
        return _compare(props, acls, conn.info.server_version, importing)

    # -- operations ------------------------------------------------------------------------

    def _targets(self, props: Mapping[str, Any], objects: Sequence[str]) -> sql.Composable:
        object_type = props["object_type"]
        schema = props.get("schema") or "public"
        if object_type == "database":
            return sql.SQL("DATABASE {}").format(sql.Identifier(props["database"]))
        if object_type == "schema":
            return sql.SQL("SCHEMA {}").format(sql.Identifier(schema))
        if not objects:
            return sql.SQL("ALL {} IN SCHEMA {}").format(
                sql.SQL("TABLES" if object_type == "table" else "SEQUENCES"),
                sql.Identifier(schema),
            )
        return sql.SQL("{} {}").format(
            sql.SQL(object_type.upper()),
            sql.SQL(", ").join(sql.Identifier(schema, name) for name in objects),
        )

    def _apply(
        self, ctx: Context, properties: Mapping[str, Any], prior: Mapping[str, Any] | None
    ) -> None:
        server = Server(ctx.config)
        role = role_ident(properties["role"])
        object_type = properties["object_type"]
        objects = list(properties.get("objects") or [])
        old = objects if prior is None else list(prior.get("objects") or [])
        with self._connect_for(server, properties) as conn, conn.transaction():
            # Revoke on everything the grant covered before and covers now, so that the
            # role ends with exactly the listed privileges.
            revoke: sql.Composable | None = self._targets(properties, [])
            if object_type in ("table", "sequence") and old and objects:
                grantee = self._grantee(conn, properties["role"])
                existing = self._acls(conn, properties, grantee) if grantee is not None else {}
                revoke_on = [o for o in dict.fromkeys([*old, *objects]) if o in existing]
                revoke = self._targets(properties, revoke_on) if revoke_on else None
            if revoke is not None:
                conn.execute(sql.SQL("REVOKE ALL ON {} FROM {}").format(revoke, role))
            privileges = list(properties.get("privileges") or [])
            if not privileges:
                return
            if any(" ".join(p.upper().split()) in ("ALL", "ALL PRIVILEGES") for p in privileges):
                words = ["ALL"]  # whatever ALL means on this server version
            else:
                words = sorted(normalise(object_type, privileges, 0))
            conn.execute(
                sql.SQL("GRANT {} ON {} TO {}{}").format(
                    sql.SQL(", ").join(sql.SQL(word) for word in words),
                    self._targets(properties, objects),
                    role,
                    sql.SQL(" WITH GRANT OPTION" if properties.get("with_grant_option") else ""),
                )
            )

    def create(self, ctx: Context, properties: Mapping[str, Any]) -> Created:
        self._apply(ctx, properties, None)
        return Created(id=grant_id(properties))

    def read(
        self,
        ctx: Context,
        id: str,
        properties: Mapping[str, Any],
        attributes: Mapping[str, Any],
    ) -> Observed | None:
        return self._observe(Server(ctx.config), properties, importing=False)

    def update(
        self,
        ctx: Context,
        id: str,
        prior: Mapping[str, Any],
        properties: Mapping[str, Any],
        attributes: Mapping[str, Any],
    ) -> dict[str, Any]:
        self._apply(ctx, properties, prior)
        return {}

    def delete(
        self,
        ctx: Context,
        id: str,
        properties: Mapping[str, Any],
        attributes: Mapping[str, Any],
    ) -> None:
        server = Server(ctx.config)
        with server.connect() as admin:
            if not server.database_exists(admin, properties["database"]):
                return
        with self._connect_for(server, properties) as conn:
            grantee = self._grantee(conn, properties["role"])
            if grantee is None:
                return
            object_type = properties["object_type"]
            objects = list(properties.get("objects") or [])
            if object_type != "database" and not self._schema_exists(
                conn, properties.get("schema") or "public"
            ):
                return
            if objects:
                existing = set(self._acls(conn, properties, grantee))
                objects = [o for o in objects if o in existing]
                if not objects:
                    return
            conn.execute(
                sql.SQL("REVOKE ALL ON {} FROM {}").format(
                    self._targets(properties, objects), role_ident(properties["role"])
                )
            )

    def find(self, ctx: Context, properties: Mapping[str, Any]) -> Created | None:
        """A grant whose create was interrupted: adopted when its role and objects exist
        (read then compares the privileges, and an update completes them)."""
        observed = self._observe(Server(ctx.config), properties, importing=False)
        return None if observed is None else Created(id=grant_id(properties))

    def import_(self, ctx: Context, id: str) -> Observed:
        props = parse_grant_id(id)
        props["privileges"] = []
        props["with_grant_option"] = False
        observed = self._observe(Server(ctx.config), props, importing=True)
        if observed is None:
            raise ProviderError(
                f"postgres: cannot import grant '{id}': its role, database or schema does not exist"
            )
        return observed


def _compare(
    props: Mapping[str, Any],
    acls: dict[str, tuple[set[str], set[str]]],
    version: int,
    importing: bool,
) -> Observed:
    """What the catalogs say, shaped like ``props`` where they agree with it."""
    object_type = props["object_type"]
    wanted_objects = list(props.get("objects") or [])
    notes: list[str] = []
    if wanted_objects:
        for name in wanted_objects:
            if name not in acls:
                notes.append(f"{object_type} {props.get('schema')}.{name} does not exist")
        acls = {name: acls[name] for name in wanted_objects if name in acls}
        objects = [name for name in wanted_objects if name in acls]
    else:
        objects = []
    prior_privileges = list(props.get("privileges") or [])
    if importing:
        first = next(iter(acls.values()), (set(), set()))
        wanted = first[0]
        prior_privileges = sorted(wanted)
    else:
        wanted = normalise(object_type, prior_privileges, version)
    privileges: list[str] = prior_privileges
    for name, (held, _grantable) in acls.items():
        if held != wanted:
            if privileges is prior_privileges:
                privileges = sorted(held)
            if len(notes) < _MAX_NOTES:
                shown = ", ".join(sorted(held)) or "none"
                notes.append(f"{props['role']} holds {shown} on {object_type} {name}")
    with_grant: bool = bool(props.get("with_grant_option"))
    if wanted and acls:
        flags = {wanted <= grantable for _held, grantable in acls.values()}
        with_grant = flags.pop() if len(flags) == 1 else not with_grant
    properties = {
        "role": props["role"],
        "database": props["database"],
        "object_type": object_type,
        "schema": props.get("schema") or "public",
        "objects": objects,
        "privileges": privileges,
        "with_grant_option": with_grant,
    }
    return Observed(properties=properties, notes=tuple(notes))
