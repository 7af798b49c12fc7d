"""The git service's state: its store, locks, notifier and metrics, on ``app.state.git``."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine
from typing import Annotated, Any

from fastapi import Depends, Request
from prometheus_client import CollectorRegistry

from shipyard.errors import ForbiddenError
from shipyard.git._locks import RepoLocks
from shipyard.git._names import check_repo_name
from shipyard.git._repos import GitMetrics, RepoRecord, RepoStore
from shipyard.service import Claims, Database, Notifier, Settings

__all__ = ["EVENTS_TOPIC", "GitService", "Svc"]

log = logging.getLogger("shipyard.git")

#: The notifier topic woken when events are appended.
EVENTS_TOPIC = "events"


class GitService:
    """Everything the git service's handlers share."""

    def __init__(self, settings: Settings, db: Database, registry: CollectorRegistry) -> None:
        self.settings = settings
        self.db = db
        self.notifier = Notifier()
        self.metrics = GitMetrics(registry)
        self.store = RepoStore(settings.data_dir, db, self.metrics, self._events_appended)
        self.locks = RepoLocks()
        self._tasks: set[asyncio.Task[Any]] = set()

    def _events_appended(self) -> None:
        self.notifier.notify(EVENTS_TOPIC)

    def clone_url(self, name: str) -> str:
        base = self.settings.public_url.rstrip("/") or f"http://127.0.0.1:{self.settings.port}"
        return f"{base}/{name}.git"

    def authorize(self, claims: Claims, name: str, *, write: bool) -> str:
        """``name`` checked, when ``claims`` may read (or ``write``) it; 400 or 403 otherwise."""
        check_repo_name(name)
        allowed = claims.can_write_repo(name) if write else claims.can_read_repo(name)
        if not allowed:
            what = "push to" if write else "read"
            raise ForbiddenError(f"this token may not {what} repository {name!r}")
        return name

    def readable(self, claims: Claims, name: str) -> RepoRecord:
        """The repository ``name`` when it exists and ``claims`` may read it (blocking)."""
        self.authorize(claims, name, write=False)
        return self.store.get(name)

    def spawn(self, coro: Coroutine[Any, Any, Any]) -> asyncio.Task[Any]:
        """Run ``coro`` to its end even if the request that started it is gone."""
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def drain(self, timeout: float = 30.0) -> None:
        """Let spawned work (pushes being recorded) finish, at shutdown."""
        if self._tasks:
            _done, pending = await asyncio.wait(set(self._tasks), timeout=timeout)
            for task in pending:
                log.warning("abandoning %r at shutdown; the next start reconciles its refs", task)
                task.cancel()


def _service_of(request: Request) -> GitService:
    svc: GitService = request.app.state.git
    return svc


Svc = Annotated[GitService, Depends(_service_of)]
