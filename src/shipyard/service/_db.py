"""A service's own database: a SQLite file, or a schema of a shared PostgreSQL.

Services use SQLAlchemy Core (tables, not an ORM): their queries are few and hot, and
Core keeps them plain. Schema changes are Alembic migrations, one chain per service,
run by :meth:`Database.migrate` at start.

SQLite runs in WAL mode with ``synchronous=NORMAL`` (a crash loses at most the last
transactions, never consistency) and a busy timeout; :meth:`Database.write` starts
``BEGIN IMMEDIATE`` so two writers queue for the lock instead of failing on upgrade.
On PostgreSQL every connection's ``search_path`` is the service's schema, so the same
unqualified table names work on both.
"""

from __future__ import annotations

import importlib.util
import re
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, MetaData, create_engine, event, text
from sqlalchemy.pool import NullPool

__all__ = ["Database"]


class Database:
    """One service's database: an engine, transactions, and migrations."""

    def __init__(self, url: str, schema: str | None = None, *, pool_size: int = 8) -> None:
        self.url = url
        self.schema = schema
        self.is_sqlite = url.startswith("sqlite")
        self._write_lock = threading.Lock()  # SQLite: one writer per process at a time
        if self.is_sqlite:
            path = url.split("///", 1)[-1]
            if path and path != ":memory:":
                Path(path).parent.mkdir(parents=True, exist_ok=True)
            self.engine: Engine = create_engine(
                url,
                connect_args={"check_same_thread": False, "timeout": 30},
                pool_size=pool_size,
                max_overflow=pool_size,
            )
            event.listen(self.engine, "connect", _sqlite_connect)
            event.listen(self.engine, "begin", _sqlite_begin)
        else:
            if schema is None:
                raise ValueError("a PostgreSQL database needs a schema")
            self._ensure_schema(url, schema)
            self.engine = create_engine(
                url,
                pool_size=pool_size,
                max_overflow=pool_size,
                pool_pre_ping=True,
                connect_args={"options": f"-csearch_path={schema}"},
            )

    @staticmethod
    def _ensure_schema(url: str, schema: str) -> None:
        bootstrap = create_engine(url, poolclass=NullPool)
        try:
            with bootstrap.begin() as conn:
                conn.execute(text(f'CREATE SCHEMA IF NOT EXISTS "{schema}"'))
        finally:
            bootstrap.dispose()

    @contextmanager
    def read(self) -> Iterator[Connection]:
        """A transaction for reading (SQLite: a WAL snapshot, no lock)."""
        with self.engine.begin() as conn:
            yield conn

    @contextmanager
    def write(self) -> Iterator[Connection]:
        """A transaction that will write: SQLite takes the write lock up front."""
        if self.is_sqlite:
            with self._write_lock, self.engine.connect() as raw:
                conn = raw.execution_options(sqlite_begin="IMMEDIATE")
                with conn.begin():
                    yield conn
        else:
            with self.engine.begin() as conn:
                yield conn

    def ping(self) -> None:
        """Raise when the database does not answer."""
        with self.engine.connect() as conn:
            conn.execute(text("SELECT 1"))

    def migrate(self, script_location: str, metadata: MetaData | None = None) -> None:
        """Bring the schema to the newest revision of ``script_location``'s chain.

        A database already at the newest revision is recognised without importing
        Alembic, which would cost every service process about 12 MB for good
        (``shipyard serve`` migrates in a short-lived child, then starts here).
        """
        head = _head_revision(script_location)
        if head is not None and self._current_revision() == head:
            return
        from alembic import command
        from alembic.config import Config

        cfg = Config()
        cfg.set_main_option("script_location", script_location)
        cfg.attributes["database"] = self
        cfg.attributes["target_metadata"] = metadata
        with self.engine.begin() as conn:
            if not self.is_sqlite:  # replicas starting together migrate one at a time
                conn.execute(text("SELECT pg_advisory_xact_lock(hashtext(:s))"), {"s": self.schema})
            cfg.attributes["connection"] = conn
            command.upgrade(cfg, "head")

    def _current_revision(self) -> str | None:
        try:
            with self.engine.connect() as conn:
                rows = conn.execute(text("SELECT version_num FROM alembic_version")).all()
        except Exception:  # no table yet (a new database): Alembic will create it
            return None
        return str(rows[0][0]) if len(rows) == 1 else None

    def dispose(self, wait: float = 2.0) -> None:
        """Close the pool's connections, once those in use (a query of a worker thread
        still running at shutdown) are given back, or after ``wait`` seconds: a connection
        handed back to a pool already closed would be left to the garbage collector."""
        pool = self.engine.pool
        checkedout = getattr(pool, "checkedout", None)
        if checkedout is not None:
            deadline = time.monotonic() + wait
            while checkedout() and time.monotonic() < deadline:
                time.sleep(0.01)
        self.engine.dispose()


_REVISION = re.compile(r"""^(down_revision|revision)\b[^=\n]*=\s*(?:["']([^"'\n]+)["']|None)""", re.M)


def _head_revision(script_location: str) -> str | None:
    """The one head of a chain of migration files, read from their text; None if unsure.

    ``script_location`` is ``package:folder``. Only plain ``revision = "x"`` and
    ``down_revision = "y" | None`` lines are understood; anything else (branches,
    merges) answers None and leaves the decision to Alembic.
    """
    package, _, folder = script_location.partition(":")
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        return None
    versions = Path(next(iter(spec.submodule_search_locations))) / folder / "versions"
    revisions: set[str] = set()
    downs: set[str] = set()
    for path in versions.glob("*.py"):
        found = dict.fromkeys(("revision", "down_revision"), "")
        for m in _REVISION.finditer(path.read_text()):
            found[m.group(1)] = m.group(2) or ""
        if found["revision"]:
            revisions.add(found["revision"])
            if found["down_revision"]:
                downs.add(found["down_revision"])
    heads = revisions - downs
    return heads.pop() if len(heads) == 1 else None


def _sqlite_connect(dbapi_conn: Any, _record: Any) -> None:
    dbapi_conn.isolation_level = None  # SQLAlchemy's begin event issues BEGIN itself
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute("PRAGMA busy_timeout=30000")
    cur.close()


def _sqlite_begin(conn: Connection) -> None:
    mode = conn.get_execution_options().get("sqlite_begin", "DEFERRED")
    conn.exec_driver_sql(f"BEGIN {mode}")


def run_migrations_env() -> None:
    """Body of every service's Alembic ``env.py``: migrate on the connection given."""
    from alembic import context

    cfg = context.config
    conn: Connection = cfg.attributes["connection"]
    db: Database = cfg.attributes["database"]
    context.configure(
        connection=conn,
        target_metadata=cfg.attributes.get("target_metadata"),
        version_table_schema=db.schema,
        render_as_batch=db.is_sqlite,
    )
    with context.begin_transaction():
        context.run_migrations()
