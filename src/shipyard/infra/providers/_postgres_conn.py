"""Connections to the PostgreSQL server the ``postgres`` provider manages.

Every operation opens its own short-lived connection (autocommit, so that ``CREATE
DATABASE`` works and each statement stands alone): operations run in parallel worker
threads and a connection is cheap next to the DDL it carries. Errors become
:class:`ProviderError` naming the server (never the password) and PostgreSQL's message.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any
from urllib.parse import quote, urlencode

import psycopg
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from shipyard.errors import ProviderError

Conn = psycopg.Connection[tuple[Any, ...]]

_CONNECT_TIMEOUT = 10
# Connection parameters that say who connects: left out of the URLs handed to users.
_CREDENTIALS = {"user", "password", "passfile"}


class Server:
    """The server named by the provider's ``url`` (an admin connection)."""

    def __init__(self, config: Mapping[str, Any]) -> None:
        url = config.get("url")
        if not isinstance(url, str) or not url:
            raise ProviderError("postgres: the provider needs 'url', an admin connection URL")
        try:
            params = conninfo_to_dict(url)
        except psycopg.Error as err:
            raise ProviderError(f"postgres: 'url' is not a connection URL: {err}") from None
        self._conninfo = url
        self.params: dict[str, Any] = {k: str(v) for k, v in params.items() if v is not None}

    @property
    def host(self) -> str:
        return str(self.params.get("host") or self.params.get("hostaddr") or "localhost")

    @property
    def port(self) -> int:
        text = str(self.params.get("port") or "5432").split(",")[0]
        return int(text) if text.isdigit() else 5432

    @property
    def admin_db(self) -> str | None:
        return self.params.get("dbname")

    def describe(self, dbname: str | None = None) -> str:
        """``user@host:port/db`` for messages: no password."""
        user = self.params.get("user")
        db = dbname or self.admin_db or ""
        return f"{user + '@' if user else ''}{self.host}:{self.port}/{db}"

    def database_url(self, dbname: str) -> str:
        """A URL for ``dbname`` on this server: the admin URL without its password."""
        user = self.params.get("user")
        host = self.host
        query = {
            k: v
            for k, v in self.params.items()
            if k not in _CREDENTIALS and k not in ("host", "hostaddr", "port", "dbname")
        }
        netloc = ""
        if user:
            netloc = quote(user, safe="") + "@"
        if host.startswith("/"):
            # A unix socket folder cannot sit in the authority part of a URL.
            query = {"host": host, **query}
        else:
            netloc += f"[{host}]" if ":" in host else host
            netloc += f":{self.port}"
        text = f"postgresql://{netloc}/{quote(dbname, safe='')}"
        return f"{text}?{urlencode(query)}" if query else text

    @contextmanager
    def connect(self, dbname: str | None = None) -> Iterator[Conn]:
        """An autocommit connection to ``dbname`` (default: the URL's own database)."""
        extra: dict[str, Any] = {}
        if dbname is not None:
            extra["dbname"] = dbname
        if "connect_timeout" not in self.params:
            extra["connect_timeout"] = _CONNECT_TIMEOUT
        where = self.describe(dbname)
        try:
            conn = psycopg.connect(make_conninfo(self._conninfo, **extra), autocommit=True)
        except psycopg.Error as err:
            raise ProviderError(f"postgres: cannot connect to {where}: {_message(err)}") from None
        try:
            with conn:
                yield conn
        except psycopg.Error as err:
            raise ProviderError(f"postgres ({where}): {_message(err)}") from None

    def database_exists(self, conn: Conn, name: str) -> bool:
        row = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone()
        return row is not None


def _message(err: psycopg.Error) -> str:
    primary = err.diag.message_primary if err.diag else None
    text = primary or str(err).strip() or type(err).__name__
    detail = err.diag.message_detail if err.diag else None
    hint = err.diag.message_hint if err.diag else None
    for extra in (detail, hint):
        if extra:
            text += f" ({extra})"
    return text


def role_ident(name: str) -> sql.Composable:
    """A role name in a statement; ``public`` is the PUBLIC pseudo-role."""
    if name.lower() == "public":
        return sql.SQL("PUBLIC")
    return sql.Identifier(name)


def is_superuser(conn: Conn) -> bool:
    row = conn.execute("SELECT rolsuper FROM pg_roles WHERE rolname = current_user").fetchone()
    return bool(row and row[0])
