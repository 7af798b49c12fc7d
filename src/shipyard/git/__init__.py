"""The git service: repositories over git's smart HTTP, their content, and the ref-update feed.

``create_app(settings)`` builds the service's app (``shipyard serve git``). It hosts
bare repositories under ``<data_dir>/repos``, serves clone, fetch and push to the real
git client through ``git http-backend`` (:mod:`shipyard.git._smart_http`), answers
content questions for ci (:mod:`shipyard.git._content`), and records every ref change
as exactly one ``ref.updated`` event, even across a crash
(:mod:`shipyard.git._repos`). The API is in docs/api.md, section "git"; how URLs
carry ``owner/name`` repository names is in :mod:`shipyard.git._routing`.
"""

from __future__ import annotations

import logging
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import anyio
from fastapi import FastAPI

from shipyard.git._gitexec import git_program
from shipyard.git._names import ZERO_SHA
from shipyard.git._repos import RefChange, RepoRecord, RepoStore
from shipyard.git._routes import router as api_router
from shipyard.git._service import GitService
from shipyard.git._smart_http import router as smart_http_router
from shipyard.git._tables import metadata
from shipyard.service import Database, ServiceState, Settings, TokenSigner
from shipyard.service import create_app as create_service_app

__all__ = ["ZERO_SHA", "GitService", "RefChange", "RepoRecord", "RepoStore", "create_app", "metadata"]

log = logging.getLogger("shipyard.git")

_DESCRIPTION = (
    "Hosts git repositories over git's smart HTTP protocol (protocol v0, v1 and v2; "
    "the token as the HTTP basic password), answers questions about their content, and "
    "records each ref change as a `ref.updated` event in the feed at `/events`."
)


def create_app(settings: Settings) -> FastAPI:
    """The git service's app: database migrated, repositories reconciled at start."""
    db = Database(*settings.database_for("git"))
    db.migrate("shipyard.git:migrations", metadata)
    state = ServiceState("git", settings, db, TokenSigner(settings.signing_key()))
    svc = GitService(settings, db, state.metrics)

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        await anyio.to_thread.run_sync(git_program, "http-backend")  # no git: fail now, clearly
        await anyio.to_thread.run_sync(svc.store.sweep)
        recorded = await anyio.to_thread.run_sync(svc.store.reconcile)
        if recorded:
            log.warning("recorded %d ref change(s) missed while the service was down", recorded)
        try:
            yield
        finally:
            await svc.drain()

    async def health() -> None:
        root = svc.store.root
        if not (root.is_dir() and os.access(root, os.W_OK | os.X_OK)):
            raise RuntimeError(f"the repositories directory {root} is not writable")

    app = create_service_app(
        state,
        title="Shipyard git",
        description=_DESCRIPTION,
        lifespan=lifespan,
        upload_prefixes=("/git-receive-pack", "/git-upload-pack"),
        health=health,
    )
    app.state.git = svc
    app.include_router(api_router)
    app.include_router(smart_http_router)
    return app
