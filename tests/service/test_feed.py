"""Event feeds and long-poll wake-ups."""

from __future__ import annotations

import asyncio
import threading
import time

import anyio
from sqlalchemy import Column, Integer, MetaData, Table, func, insert, select

from shipyard.service import (
    Database,
    Notifier,
    Settings,
    append_event,
    events_table,
    long_poll,
    read_events,
)


class TestNotifier:
    """Waiters wake on a change, including one made just before they wait."""

    def test_notify_from_another_thread_wakes_a_waiter(self) -> None:
        notifier = Notifier()

        async def main() -> tuple[bool, float]:
            seen = notifier.version("jobs")
            threading.Timer(0.05, notifier.notify, args=("jobs",)).start()
            start = time.monotonic()
            woke = await notifier.wait("jobs", seen, 5)
            return woke, time.monotonic() - start

        woke, took = asyncio.run(main())
        assert woke and took < 1

    def test_change_before_wait_is_not_missed(self) -> None:
        notifier = Notifier()

        async def main() -> bool:
            seen = notifier.version("jobs")
            notifier.notify("jobs")
            return await notifier.wait("jobs", seen, 0.01)

        assert asyncio.run(main())

    def test_timeout_returns_false(self) -> None:
        notifier = Notifier()
        assert not asyncio.run(notifier.wait(["a", "b"], 0, 0.02))

    def test_long_poll_returns_when_the_check_passes(self) -> None:
        notifier = Notifier()
        box: list[int] = []

        def later() -> None:
            box.append(1)
            notifier.notify("t")

        async def main() -> object:
            threading.Timer(0.05, later).start()
            return await long_poll(lambda: list(box), notifier, ["t"], 5)

        assert anyio.run(main) == [1]


class TestEvents:
    """A feed in a service's own database, on SQLite and PostgreSQL."""

    def test_append_and_read_in_order(self, settings: Settings) -> None:
        db = Database(*settings.database_for("feed"))
        meta = MetaData()
        table = events_table(meta)
        meta.create_all(db.engine)
        with db.write() as conn:
            ids = [append_event(conn, table, "ref.updated", {"n": n}) for n in range(5)]
        with db.read() as conn:
            events = read_events(conn, table, ids[1], 2)
        assert [e["payload"]["n"] for e in events] == [2, 3]
        assert ids == sorted(ids)
        db.dispose()

    def test_rolled_back_change_leaves_no_event(self, settings: Settings) -> None:
        db = Database(*settings.database_for("feed"))
        meta = MetaData()
        table = events_table(meta)
        meta.create_all(db.engine)
        try:
            with db.write() as conn:
                append_event(conn, table, "x", {})
                raise RuntimeError("crash after the append")
        except RuntimeError:
            pass
        with db.read() as conn:
            assert read_events(conn, table, 0, 10) == []
        db.dispose()


class TestWrites:
    """Concurrent writers queue for SQLite's lock instead of failing."""

    def test_threads_writing_at_once_all_commit(self, sqlite_settings: Settings) -> None:
        db = Database(*sqlite_settings.database_for("w"))
        meta = MetaData()
        counter = Table("c", meta, Column("id", Integer, primary_key=True), Column("v", Integer))
        meta.create_all(db.engine)

        def work() -> None:
            for _ in range(50):
                with db.write() as conn:
                    n = conn.execute(select(func.count()).select_from(counter)).scalar_one()
                    conn.execute(insert(counter).values(v=n))

        threads = [threading.Thread(target=work) for _ in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        with db.read() as conn:
            values = conn.execute(select(counter.c.v).order_by(counter.c.id)).scalars().all()
        assert values == list(range(200))  # each read-then-write saw every earlier one
        db.dispose()
