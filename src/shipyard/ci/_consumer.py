"""The git feed consumer: ref updates become pipelines.

It long-polls git's ``GET /events`` from the cursor stored in ci's database and handles
one event at a time; the pipelines an event starts and the cursor past it are written in
one transaction, so a crash repeats an event at most (and the pipelines' dedupe keys make
the repeat create nothing). When git does not answer, it waits and asks again, with a
growing pause, from the same cursor: no event is lost.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Callable
from typing import Any

import anyio
import httpx
from sqlalchemy import Connection, delete

from shipyard.ci import _repo as repo
from shipyard.ci._engine import Engine
from shipyard.ci._schedules import replace_schedules
from shipyard.ci._sources import Sources
from shipyard.ci._tables import schedules
from shipyard.errors import InvalidRequestError, NotFoundError
from shipyard.service import raise_for_response

__all__ = ["FeedConsumer"]

log = logging.getLogger("shipyard.ci")

CONSUMER = "git"


class FeedConsumer:
    """Reads git's feed into pipelines; :meth:`run` until cancelled."""

    def __init__(
        self, engine: Engine, sources: Sources, base_url: str, token: str, *,
        wait: float = 25.0, clock: Callable[[], float],
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.engine = engine
        self.sources = sources
        self.base_url = base_url.rstrip("/")
        self.token = token
        self.wait = wait
        self.clock = clock
        self.transport = transport
        self.handled = 0  # events handled since start (tests and logs read it)

    def cursor(self) -> int:
        with self.engine.db.read() as conn:
            return repo.get_cursor(conn, CONSUMER)

    async def run(self) -> None:
        cursor = await anyio.to_thread.run_sync(self.cursor)
        delay = 0.1
        headers = {"Authorization": f"Bearer {self.token}"}
        timeout = httpx.Timeout(self.wait + 15, connect=5.0)
        async with httpx.AsyncClient(
            base_url=self.base_url, headers=headers, timeout=timeout, transport=self.transport
        ) as http:
            while True:
                try:
                    response = await http.get(
                        "/events", params={"after": cursor, "wait": self.wait, "limit": 100}
                    )
                    raise_for_response(response, "git feed")
                    events: list[dict[str, Any]] = response.json()["events"]
                    for event in events:
                        await anyio.to_thread.run_sync(functools.partial(self.handle, event))
                        cursor = int(event["id"])
                        self.handled += 1
                    delay = 0.1
                except asyncio.CancelledError:
                    raise
                except Exception as err:  # git down or failing: same cursor, after a pause
                    log.warning("git feed: %s; retrying in %.1fs", err, delay)
                    await asyncio.sleep(delay)
                    delay = min(delay * 2, 5.0)

    def handle(self, event: dict[str, Any]) -> None:
        """Handle one event and store the cursor past it, in one transaction."""
        event_id = int(event["id"])
        kind = event.get("kind")
        payload = event.get("payload") or {}
        cursor = (CONSUMER, event_id)
        if kind == "ref.updated":
            name = str(payload["repo"])
            try:
                plan = self.sources.for_push(
                    event_id, name, str(payload["ref"]), str(payload["before"]),
                    str(payload["after"]),
                )
            except (NotFoundError, InvalidRequestError) as err:
                # Deleted since, the commit is gone, or git refuses the workflow folders
                # (over its file limits): nothing can run; waiting would not change it.
                log.warning("git event %d: %s; nothing to run", event_id, err)
                self.engine.create_pipelines([], cursor=cursor)
                return
            store = None
            if plan.schedules is not None:
                entries = plan.schedules
                now = self.clock()

                def store(conn: Connection) -> None:
                    replace_schedules(
                        conn, name, plan.default_ref, str(payload["after"]), entries, now
                    )

            self.engine.create_pipelines(plan.pipelines, cursor=cursor, schedules=store)
        elif kind == "repo.deleted":
            name = str(payload.get("repo"))

            def drop(conn: Connection) -> None:
                conn.execute(delete(schedules).where(schedules.c.repo == name))

            self.engine.create_pipelines([], cursor=cursor, schedules=drop)
        else:
            self.engine.create_pipelines([], cursor=cursor)
