"""Pull-based event feeds between services, and long-poll wake-ups inside one.

A producer appends events to its own ``events`` table in the same transaction as the
change they describe, and serves ``GET /events?after=CURSOR&wait=SECONDS``. A consumer
keeps its cursor in its own database and handles each event idempotently, so a
consumer that was down catches up and one that crashed mid-batch repeats harmlessly.

Event ids must become visible in id order, or a consumer could read 12, store cursor
12, and never see 11 committing late. SQLite has one writer at a time; on PostgreSQL
:func:`append_event` takes a transaction-scoped advisory lock, so appends to one feed
commit in order.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import threading
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from sqlalchemy import (
    BigInteger,
    Column,
    Connection,
    Float,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    insert,
    select,
    text,
)

__all__ = ["Notifier", "append_event", "events_table", "long_poll", "read_events"]


def events_table(metadata: MetaData) -> Table:
    """The ``events`` table of a producing service."""
    return Table(
        "events",
        metadata,
        Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True),
        Column("kind", String(64), nullable=False),
        Column("payload", Text, nullable=False),
        Column("created_at", Float, nullable=False),
    )


def append_event(conn: Connection, table: Table, kind: str, payload: Mapping[str, Any]) -> int:
    """Append one event in the caller's transaction; returns its id."""
    if conn.dialect.name == "postgresql":
        conn.execute(text("SELECT pg_advisory_xact_lock(hashtext(:k))"), {"k": f"feed:{table.fullname}"})
    result = conn.execute(
        insert(table).values(kind=kind, payload=json.dumps(payload, separators=(",", ":")), created_at=time.time())
    )
    key = result.inserted_primary_key
    assert key is not None
    return int(key[0])


def read_events(conn: Connection, table: Table, after: int, limit: int) -> list[dict[str, Any]]:
    """Events with id > ``after``, oldest first, at most ``limit``."""
    rows = conn.execute(
        select(table).where(table.c.id > after).order_by(table.c.id).limit(limit)
    ).all()
    return [
        {"id": r.id, "kind": r.kind, "payload": json.loads(r.payload), "created_at": r.created_at}
        for r in rows
    ]


class Notifier:
    """Wakes long-polling requests when something they wait for may have changed.

    Each topic has a version. A waiter reads :meth:`version` *before* it checks the
    database, then :meth:`wait` returns as soon as the version moves past it, so a
    change made between the check and the wait is never missed. :meth:`notify` is safe
    from any thread. Replicas of a service do not share a notifier: waiters also re-check
    every ``poll`` seconds, which bounds the delay of a change made by another process.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._versions: dict[str, int] = {}
        self._waiters: dict[str, list[tuple[asyncio.AbstractEventLoop, asyncio.Event]]] = {}

    def version(self, topic: str) -> int:
        with self._lock:
            return self._versions.get(topic, 0)

    def notify(self, *topics: str) -> None:
        woken: list[tuple[asyncio.AbstractEventLoop, asyncio.Event]] = []
        with self._lock:
            for topic in topics:
                self._versions[topic] = self._versions.get(topic, 0) + 1
                woken.extend(self._waiters.pop(topic, ()))
        for loop, event in woken:
            with contextlib.suppress(RuntimeError):  # a closed loop has nobody waiting
                loop.call_soon_threadsafe(event.set)

    async def wait(self, topics: list[str] | str, since: Mapping[str, int] | int, timeout: float) -> bool:
        """Wait until a topic's version is past ``since`` or ``timeout``; True when it moved."""
        names = [topics] if isinstance(topics, str) else topics
        seen = {t: since for t in names} if isinstance(since, int) else dict(since)
        loop = asyncio.get_running_loop()
        event = asyncio.Event()
        with self._lock:
            if any(self._versions.get(t, 0) != seen.get(t, 0) for t in names):
                return True
            for t in names:
                self._waiters.setdefault(t, []).append((loop, event))
        try:
            await asyncio.wait_for(event.wait(), timeout)
            return True
        except TimeoutError:
            return False
        finally:
            with self._lock:
                for t in names:
                    waiters = self._waiters.get(t)
                    if waiters and (loop, event) in waiters:
                        waiters.remove((loop, event))

    def snapshot(self, topics: list[str]) -> dict[str, int]:
        with self._lock:
            return {t: self._versions.get(t, 0) for t in topics}


async def long_poll(
    check: Callable[[], Any],
    notifier: Notifier,
    topics: list[str],
    wait: float,
    *,
    poll: float = 1.0,
    disconnected: Callable[[], Awaitable[bool]] | None = None,
) -> Any:
    """Run ``check`` (in a thread) until it returns something truthy or ``wait`` runs out.

    Returns the last result (falsy on timeout). Pass the request's ``is_disconnected``
    as ``disconnected``: a caller that went away (a runner stopping, a service shutting
    down) then ends the wait within ``poll`` seconds instead of holding the server's
    graceful shutdown for the whole ``wait``.
    """
    import anyio

    deadline = time.monotonic() + wait
    while True:
        seen = notifier.snapshot(topics)
        result = await anyio.to_thread.run_sync(check)
        left = deadline - time.monotonic()
        if result or left <= 0:
            return result
        if disconnected is not None and await disconnected():
            return result
        await notifier.wait(topics, seen, min(left, poll))
