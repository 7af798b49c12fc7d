"""Everything one ci app holds, built once in ``create_app`` and kept on ``app.state.ci``."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

import httpx
from fastapi import Request

from shipyard.ci._background import LogArchiver, Watchdog
from shipyard.ci._engine import Engine
from shipyard.ci._logs import LogStore
from shipyard.ci._queue import JobQueue
from shipyard.ci._schedules import Scheduler
from shipyard.ci._sources import GitApi, Sources
from shipyard.errors import UnavailableError
from shipyard.service import Database, Notifier, Settings, TokenSigner

__all__ = ["SERVICE_SCOPES", "CiState", "ci_of"]

#: What ci's own token (for git and the store) may do.
SERVICE_SCOPES = ("feeds:read", "repos:read", "logs:write")


@dataclass
class CiState:
    settings: Settings
    db: Database
    signer: TokenSigner
    notifier: Notifier
    logs: LogStore
    engine: Engine
    queue: JobQueue
    watchdog: Watchdog
    scheduler: Scheduler
    clock: Callable[[], float] = time.time
    git: GitApi | None = None
    sources_: Sources | None = None
    archiver: LogArchiver | None = None
    store: httpx.Client | None = None
    background: list[str] = field(default_factory=list)

    def sources(self) -> Sources:
        if self.sources_ is None:
            raise UnavailableError("ci has no git service configured (set git_url)")
        return self.sources_

    def service_token(self) -> str:
        return self.signer.issue("ci", SERVICE_SCOPES, ttl=None)


async def ci_of(request: Request) -> CiState:
    state: CiState = request.app.state.ci
    return state
