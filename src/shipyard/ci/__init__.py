"""The ci service: pipelines, jobs, the job queue, runners and schedules.

It reads git's ref-update feed, loads the workflows of each pushed commit through git's
API, plans them with the ``workflow`` library's :class:`~shipyard.workflow._plan.RunPlan`
and queues their jobs for runners, which claim them over HTTP (see docs/api.md, "ci").
Logs are kept under ``<data_dir>/logs`` while jobs run and archived to the store after.

Layout: ``_states`` (the allowed transitions), ``_tables`` (schema), ``_repo`` (queries),
``_plans`` (plans rebuilt from the database), ``_engine`` (operations on pipelines),
``_rerun``, ``_queue`` (runners, claims, heartbeats), ``_logs``, ``_sources`` (git),
``_consumer`` (the git feed), ``_schedules``, ``_background`` (watchdog, log archiver),
``_api_*`` (routers).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

import anyio
import httpx
from fastapi import FastAPI

from shipyard.ci._api_pipelines import router as pipelines_router
from shipyard.ci._api_runners import router as runners_router
from shipyard.ci._background import LogArchiver, Watchdog
from shipyard.ci._consumer import FeedConsumer
from shipyard.ci._engine import Engine, NewPipeline
from shipyard.ci._logs import LogStore
from shipyard.ci._metrics import CiMetrics
from shipyard.ci._queue import JobQueue
from shipyard.ci._schedules import Scheduler
from shipyard.ci._sources import GitApi, Sources
from shipyard.ci._state import CiState
from shipyard.ci._states import (
    JOB_TRANSITIONS,
    PIPELINE_TRANSITIONS,
    Conclusion,
    JobStatus,
    PipelineStatus,
)
from shipyard.ci._tables import metadata
from shipyard.service import Database, Notifier, ServiceState, Settings, TokenSigner
from shipyard.service import create_app as create_service_app

#: Largest log append a runner may send: big enough that 100 MB of output is a dozen
#: requests, small enough to read into memory (an append is written whole or not at all).
LOG_CHUNK_LIMIT = 16 << 20

__all__ = [
    "JOB_TRANSITIONS",
    "LOG_CHUNK_LIMIT",
    "PIPELINE_TRANSITIONS",
    "CiState",
    "Conclusion",
    "Engine",
    "JobStatus",
    "NewPipeline",
    "PipelineStatus",
    "create_app",
    "metadata",
]

log = logging.getLogger("shipyard.ci")


def create_app(
    settings: Settings,
    *,
    clock: Callable[[], float] | None = None,
    schedule_tick: float = 5.0,
    feed_wait: float = 25.0,
) -> FastAPI:
    """The ci service's app, its database migrated.

    ``clock`` (default ``time.time``) is what schedules, heartbeats and timeouts are
    measured with; ``schedule_tick`` is how often due crons are looked for;
    ``feed_wait`` how long one long-poll of git's feed waits.
    """
    now = clock or time.time
    db = Database(*settings.database_for("ci"))
    db.migrate("shipyard.ci:migrations", metadata)
    signer = TokenSigner(settings.signing_key())
    service = ServiceState("ci", settings, db, signer)
    notifier = Notifier()
    metrics = CiMetrics(service.metrics)
    logs = LogStore(settings.data_dir / "logs")
    engine = Engine(db, settings, notifier, logs, metrics, clock=now)
    queue = JobQueue(db, settings, signer, metrics, clock=now)
    token = signer.issue("ci", ["feeds:read", "repos:read", "logs:write"])
    git = GitApi(settings.git_url, token) if settings.git_url else None
    public = settings.public_url or f"http://127.0.0.1:{settings.port}"
    sources = Sources(git, public) if git is not None else None
    ci = CiState(
        settings=settings, db=db, signer=signer, notifier=notifier, logs=logs, engine=engine,
        queue=queue, watchdog=Watchdog(engine, settings.heartbeat_timeout, now),
        scheduler=Scheduler(engine, lambda: sources, now), clock=now, git=git,
        sources_=sources,
    )
    if settings.store_url:
        ci.archiver = LogArchiver(db, logs, settings.store_url, token)
        ci.store = httpx.Client(
            base_url=settings.store_url.rstrip("/"),
            headers={"Authorization": f"Bearer {token}"}, timeout=60.0,
        )
        engine.on_finished = ci.archiver.add

    def queued() -> int:
        from shipyard.ci._repo import queued_count

        with db.read() as conn:
            return queued_count(conn)

    metrics.watch_queue(queued)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        tasks: list[asyncio.Task[None]] = []
        if ci.archiver is not None:
            await anyio.to_thread.run_sync(ci.archiver.start)
        tasks.append(asyncio.create_task(_every(ci.watchdog.interval, ci.watchdog.tick)))
        if sources is not None:
            consumer = FeedConsumer(
                engine, sources, settings.git_url, token, wait=feed_wait, clock=now
            )
            app.state.consumer = consumer
            tasks.append(asyncio.create_task(consumer.run()))
            tasks.append(asyncio.create_task(_every(schedule_tick, ci.scheduler.tick)))
        try:
            yield
        finally:
            for task in tasks:
                task.cancel()
            for task in tasks:
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
            if ci.archiver is not None:
                await anyio.to_thread.run_sync(ci.archiver.stop)
            if ci.store is not None:
                ci.store.close()
            if git is not None:
                git.close()

    app = create_service_app(
        service, title="Shipyard ci",
        description="Pipelines, jobs, the job queue, runners and schedules.",
        lifespan=lifespan, upload_prefixes=(("/log", LOG_CHUNK_LIMIT),),
    )
    app.state.ci = ci
    app.include_router(pipelines_router)
    app.include_router(runners_router)
    return app


async def _every(interval: float, work: Callable[[], object]) -> None:
    """Run ``work`` in a thread every ``interval`` seconds; a failure is logged, not fatal."""
    while True:
        try:
            await anyio.to_thread.run_sync(work)
        except Exception:  # a bad tick must not stop the loop
            log.exception("ci background task failed")
        await asyncio.sleep(interval)



