"""ci's background work: the watchdog (lost and timed-out jobs, logs left open) and the
log archiver."""

from __future__ import annotations

import contextlib
import heapq
import logging
import threading
import time
from collections.abc import Callable
from typing import Any

import httpx
from sqlalchemy import and_, select, update

from shipyard.ci._engine import Engine
from shipyard.ci._logs import LogStore
from shipyard.ci._states import JobStatus
from shipyard.ci._tables import jobs
from shipyard.errors import ConflictError, NotFoundError
from shipyard.service import Database, raise_for_response

__all__ = ["LogArchiver", "Watchdog"]

log = logging.getLogger("shipyard.ci")


class Watchdog:
    """Finds jobs whose runner went silent, jobs past their timeout, and open logs of
    completed jobs that are complete or whose runner went silent (see
    :meth:`~shipyard.ci._joblogs.JobLogs.sweep`).

    Runners cannot report while ci is down, so after a start (the first tick) each
    running job (and open log) gets a whole ``heartbeat_timeout`` to be heard of before
    it is lost.
    """

    def __init__(self, engine: Engine, heartbeat_timeout: float, clock: Callable[[], float]) -> None:
        self.engine = engine
        self.heartbeat_timeout = heartbeat_timeout
        self.clock = clock
        self.started: float | None = None

    @property
    def interval(self) -> float:
        return max(0.05, min(2.0, self.heartbeat_timeout / 4))

    def tick(self) -> None:
        now = self.clock()
        if self.started is None:
            self.started = now
        with self.engine.db.read() as conn:
            lost = [] if now - self.started < self.heartbeat_timeout else conn.execute(
                select(jobs.c.id).where(and_(
                    jobs.c.status.in_([JobStatus.RUNNING.value, JobStatus.CANCELLING.value]),
                    jobs.c.heartbeat_at < now - self.heartbeat_timeout,
                ))
            ).scalars().all()
            late = conn.execute(
                select(jobs.c.id).where(and_(
                    jobs.c.status == JobStatus.RUNNING.value, jobs.c.deadline < now,
                ))
            ).scalars().all()
        for job_id in lost:
            with contextlib.suppress(ConflictError, NotFoundError):
                self.engine.lose_job(job_id)
        for job_id in late:
            if job_id in lost:
                continue
            with contextlib.suppress(ConflictError, NotFoundError):
                self.engine.time_out_job(job_id)
        grace_over = now - self.started >= self.heartbeat_timeout
        self.engine.joblogs.sweep(
            lost_after=now - self.heartbeat_timeout if grace_over else None
        )


class LogArchiver:
    """Copies finished jobs' closed logs to the store, retrying until it answers.

    Once the store holds a log, the local file is removed and ``GET /jobs/{id}/log``
    reads the store's copy. A log still open (its runner sends the rest) is left alone:
    it is added again when it closes.
    """

    def __init__(
        self, db: Database, logs: LogStore, store_url: str, token: str, *,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.db = db
        self.logs = logs
        self.http = httpx.Client(
            base_url=store_url.rstrip("/"), headers={"Authorization": f"Bearer {token}"},
            timeout=60.0, transport=transport,
        )
        self._queue: list[tuple[float, int, int]] = []  # (when, job id, tries)
        self._cond = threading.Condition()
        self._stop = False
        self._thread: threading.Thread | None = None

    def add(self, job_ids: list[int]) -> None:
        with self._cond:
            for job_id in job_ids:
                heapq.heappush(self._queue, (time.monotonic(), job_id, 0))
            self._cond.notify()

    def start(self) -> None:
        with self.db.read() as conn:
            pending = conn.execute(
                select(jobs.c.id).where(and_(
                    jobs.c.archived.is_(False), jobs.c.status == JobStatus.COMPLETED.value,
                    jobs.c.log_open.is_(False),
                ))
            ).scalars().all()
        self.add(list(pending))
        self._thread = threading.Thread(target=self._run, name="ci-log-archiver", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        with self._cond:
            self._stop = True
            self._cond.notify()
        if self._thread is not None:
            self._thread.join(10)
        self.http.close()

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._stop and (
                    not self._queue or self._queue[0][0] > time.monotonic()
                ):
                    timeout = self._queue[0][0] - time.monotonic() if self._queue else None
                    self._cond.wait(timeout)
                if self._stop:
                    return
                _, job_id, tries = heapq.heappop(self._queue)
            try:
                self.archive(job_id)
            except Exception as err:  # the store is down or failing: try again later
                delay = min(60.0, 0.5 * 2**tries)
                log.warning("archiving the log of job %d: %s; again in %.1fs", job_id, err, delay)
                with self._cond:
                    heapq.heappush(self._queue, (time.monotonic() + delay, job_id, tries + 1))

    def archive(self, job_id: int) -> None:
        """Upload one job's log to the store, then mark it archived and drop the file
        (nothing while the log is open)."""
        with self.db.read() as conn:
            still_open = conn.execute(
                select(jobs.c.log_open).where(jobs.c.id == job_id)
            ).scalar()
        if still_open:
            return
        path = self.logs.path(job_id)
        if path.exists():
            self.logs.sync(job_id)
            with path.open("rb") as fh:
                response = self.http.put(f"/logs/{job_id}", content=_chunks(fh))
            raise_for_response(response, "store")
        with self.db.write() as conn:
            conn.execute(update(jobs).where(jobs.c.id == job_id).values(archived=True))
        self.logs.remove(job_id)


def _chunks(fh: Any, size: int = 1 << 16) -> Any:
    while True:
        chunk = fh.read(size)
        if not chunk:
            return
        yield chunk
