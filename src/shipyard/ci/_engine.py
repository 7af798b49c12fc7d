"""The pipeline engine: plans driven from the database, one pipeline at a time.

Every change to a pipeline's job graph (a job completing, a cancellation, a rerun, a
lost job) runs as an *operation*: under the pipeline's lock in this process, in one
write transaction that locks the pipeline row (so replicas take turns), against the
in-memory plan — rebuilt first when the row's ``version`` says another process changed
it. What an operation decides about *other* pipelines or jobs (cancel the older run of
a concurrency group, start the next one) is done after it commits, as follow-ups, so
no operation ever waits for a second pipeline's lock while holding one.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, suppress
from typing import Any

from sqlalchemy import Connection, Row, and_, bindparam, insert, select, update

from shipyard.ci import _creation
from shipyard.ci import _repo as repo
from shipyard.ci._joblogs import JobLogs
from shipyard.ci._logs import LogStore
from shipyard.ci._metrics import CiMetrics
from shipyard.ci._optypes import FollowUps, NewPipeline, OpContext
from shipyard.ci._plans import (
    ActivePlan,
    JobSpec,
    build_plan,
    dumps,
    job_spec,
    result_of,
    source_of,
)
from shipyard.ci._states import Conclusion, JobStatus, PipelineStatus
from shipyard.ci._tables import jobs
from shipyard.errors import ConflictError, NotFoundError
from shipyard.service import Database, Notifier, Settings
from shipyard.workflow._runtime import Conclusion as PlanConclusion
from shipyard.workflow._runtime import JobRequest, JobResult

__all__ = ["Engine", "FollowUps", "NewPipeline", "OpContext"]

log = logging.getLogger("shipyard.ci")

_ACTIVE = (JobStatus.QUEUED.value, JobStatus.RUNNING.value, JobStatus.CANCELLING.value)

_STRIPES = 256

LOST = "the runner stopped responding"
TIMED_OUT = "timed out"

# The update a runner's completion makes, built once (building it costs more than running).
_FINISH_EXTRA = frozenset({"summary", "annotations", "log_size", "log_open", "heartbeat_at"})
_FINISH = update(jobs).where(jobs.c.id == bindparam("jid")).values(
    {c: bindparam("v_" + c) for c in ("status", "conclusion", "outputs", "error",
                                      "finished_at", *sorted(_FINISH_EXTRA))}
)


class Engine:
    """Pipelines and jobs: creating, advancing, cancelling, completing."""

    def __init__(
        self,
        db: Database,
        settings: Settings,
        notifier: Notifier,
        logs: LogStore,
        metrics: CiMetrics,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.db = db
        self.settings = settings
        self.notifier = notifier
        self.logs = logs
        self.metrics = metrics
        self.clock = clock
        self._plans: dict[int, ActivePlan] = {}
        # Striped: a bounded set of locks, a pipeline always taking the same one. Two
        # pipelines may share a stripe and take turns; no operation holds two stripes.
        self._stripes = [threading.Lock() for _ in range(_STRIPES)]
        #: called with the ids of jobs whose log is final: finished with their log
        #: closed, or whose open log closed since (the log archiver listens)
        self.on_finished: Callable[[list[int]], None] = lambda ids: None
        self.joblogs = JobLogs(
            db, logs, notifier, settings.heartbeat_timeout, clock=clock,
            on_closed=lambda ids: self.on_finished(ids),
        )

    # -- operations ------------------------------------------------------------------

    def _lock(self, pipeline_id: int) -> threading.Lock:
        return self._stripes[pipeline_id % _STRIPES]

    @contextmanager
    def operation(self, pipeline_id: int) -> Iterator[OpContext]:
        """Change one pipeline: its lock, a transaction, its up-to-date plan.

        The transaction starts by bumping the pipeline's ``version`` (which also locks
        its row against other replicas); a plan in memory is current when it matches
        the version before.
        """
        fu = FollowUps()
        with self._lock(pipeline_id):
            try:
                with self.db.write() as conn:
                    row = repo.bump_pipeline(conn, pipeline_id)
                    ctx = OpContext(conn, row, self._current(conn, row, fu), fu, self.clock())
                    yield ctx
                    if ctx.ap is not None:
                        ctx.ap.version = row.version
            except BaseException:
                self._plans.pop(pipeline_id, None)  # possibly half-applied: rebuild next time
                raise
            if ctx.evict or ctx.ap is None:
                self._plans.pop(pipeline_id, None)
            else:
                self._plans[pipeline_id] = ctx.ap
        self.follow(fu)

    def _current(self, conn: Connection, row: Row[Any], fu: FollowUps) -> ActivePlan | None:
        if not row.planned:
            return None  # not started (waiting for its concurrency group) or invalid
        ap = self._plans.get(row.id)
        if ap is not None and ap.version == row.version - 1 and ap.attempt == row.attempt:
            return ap
        return self.rebuild(conn, row, fu)

    def rebuild(self, conn: Connection, row: Row[Any], fu: FollowUps) -> ActivePlan:
        """The plan of the pipeline's attempt, with every stored result replayed."""
        plan = build_plan(source_of(row))
        ap = ActivePlan(row.id, row.attempt, row.version, plan)
        rows = conn.execute(
            select(jobs)
            .where(and_(jobs.c.pipeline_id == row.id, jobs.c.attempt == row.attempt))
            .order_by(jobs.c.finished_at, jobs.c.id)
        ).all()
        ap.rows = {r.key: r.id for r in rows}
        results = {
            r.key: result_of(r) for r in rows if r.status == JobStatus.COMPLETED.value
        }
        ap.finished = set(results)
        missing = [r for r in ap.replay(results) if r.key not in ap.rows]
        if missing:  # handed out by the plan but never stored: store them now
            self._insert(conn, ap, missing, fu, self.clock())
        return ap

    def follow(self, fu: FollowUps) -> None:
        """Carry out follow-ups (each may lead to more)."""
        if fu.finished_jobs:
            self.on_finished(list(fu.finished_jobs))
        self.notifier.notify("events", *fu.topics)
        for job_id in fu.cancel_jobs:
            with suppress(ConflictError, NotFoundError):
                self.cancel_job(job_id)
        for pipeline_id in fu.cancel_pipelines:
            with suppress(ConflictError, NotFoundError):
                self.cancel_pipeline(pipeline_id)
        for group in fu.job_groups:
            self.promote_jobs(group)
        for group in fu.pipeline_groups:
            self.promote_pipelines(group)

    # -- advancing a plan -----------------------------------------------------------

    def advance(self, ctx: OpContext, quiet: bool = False) -> None:
        """Store what the plan hands out and decides; complete the pipeline when done.

        ``quiet``: the change was one that cannot start anything (see
        :meth:`ActivePlan.settles_alone`), so only completion is checked.
        """
        ap = ctx.ap
        assert ap is not None
        if quiet:
            if ap.done:
                self.finish_pipeline(ctx, ap.conclusion())
            return
        while True:
            requests = ap.plan.ready()
            if not requests:
                break
            self._insert(ctx.conn, ap, requests, ctx.fu, ctx.now)
        own = ap.unrecorded_results()
        if own:
            self._insert_results(ctx.conn, ap, own, ctx.now)
        if ap.done:
            self.finish_pipeline(ctx, ap.conclusion())

    def finish_pipeline(self, ctx: OpContext, conclusion: str) -> None:
        row = ctx.row
        if row.status == PipelineStatus.COMPLETED.value:
            return
        repo.set_pipeline_status(
            ctx.conn, row, PipelineStatus.COMPLETED, conclusion=conclusion, finished_at=ctx.now
        )
        ctx.evict = True
        ctx.fu.topics.add(f"pipeline:{row.id}")
        if row.concurrency_group:
            ctx.fu.pipeline_groups.add(row.concurrency_group)

    def _insert(
        self, conn: Connection, ap: ActivePlan, requests: Sequence[JobRequest], fu: FollowUps,
        now: float,
    ) -> None:
        """Store job instances the plan handed out: queued, or waiting for their group."""
        specs = [job_spec(r) for r in requests]
        plain = [s for s in specs if s.concurrency_group is None and s.error is None]
        if plain:
            self._insert_rows(conn, ap, plain, JobStatus.QUEUED, now)
            fu.topics.add("jobs")
            self.metrics.queued(len(plain))
        for spec in specs:
            if spec.error is not None:  # it cannot run: it fails without a runner
                result = JobResult(
                    key=spec.key, job_id=spec.job_id, name=spec.name,
                    conclusion=PlanConclusion.FAILURE, matrix=spec.matrix, error=spec.error,
                )
                self._insert_results(conn, ap, [result], now)
                self.metrics.finished(result.conclusion.value)
                self._plan_finish(conn, ap, spec.key, result, fu, now)
            elif spec.concurrency_group is not None:
                self._insert_grouped(conn, ap, spec, fu, now)

    def _insert_grouped(
        self, conn: Connection, ap: ActivePlan, spec: JobSpec, fu: FollowUps, now: float
    ) -> None:
        group = spec.concurrency_group
        assert group is not None
        repo.group_lock(conn, group)
        others = conn.execute(
            select(jobs.c.id, jobs.c.status).where(and_(
                jobs.c.concurrency_group == group,
                jobs.c.status.in_([*_ACTIVE, JobStatus.WAITING.value]),
            )).order_by(jobs.c.id)
        ).all()
        active = [o.id for o in others if o.status in _ACTIVE]
        pending = [o.id for o in others if o.status == JobStatus.WAITING.value]
        if spec.cancel_in_progress:
            fu.cancel_jobs.extend(active + pending)
            status = JobStatus.QUEUED
        else:
            # One running and one pending per group: a newer pending job replaces an older.
            fu.cancel_jobs.extend(pending)
            status = JobStatus.WAITING if active else JobStatus.QUEUED
        self._insert_rows(conn, ap, [spec], status, now)
        if status is JobStatus.QUEUED:
            fu.topics.add("jobs")
            self.metrics.queued(1)

    def _insert_rows(
        self, conn: Connection, ap: ActivePlan, specs: Sequence[JobSpec], status: JobStatus,
        now: float,
    ) -> list[int]:
        values = [
            {
                "pipeline_id": ap.pipeline_id, "attempt": ap.attempt, "key": s.key,
                "job_id": s.job_id, "name": s.name, "status": status.value,
                "matrix": dumps(s.matrix), "outputs": "{}", "labels": dumps(s.labels),
                "needs": dumps(s.needs), "workflow_path": s.workflow_path,
                "timeout": s.timeout, "continue_on_error": s.continue_on_error,
                "concurrency_group": s.concurrency_group,
                "cancel_in_progress": s.cancel_in_progress,
                "assignment": dumps(s.assignment), "created_at": now,
                "queued_at": now if status is JobStatus.QUEUED else None,
                "retries": 0, "log_base": 0, "archived": False, "summary": "",
                "annotations": "[]",
            }
            for s in specs
        ]
        result = conn.execute(
            insert(jobs).returning(jobs.c.id, jobs.c.key, sort_by_parameter_order=True), values
        )
        ids = []
        for job_row_id, key in result.all():
            ap.rows[key] = job_row_id
            ids.append(job_row_id)
        _job_events(conn, [(i, ap.pipeline_id, status.value, None) for i in ids])
        return ids

    def _insert_results(
        self, conn: Connection, ap: ActivePlan, results: Sequence[JobResult], now: float
    ) -> None:
        """Store results the plan made itself (skipped, cancelled before running)."""
        values = [
            {
                "pipeline_id": ap.pipeline_id, "attempt": ap.attempt, "key": r.key,
                "job_id": r.job_id, "name": r.name, "status": JobStatus.COMPLETED.value,
                "conclusion": r.conclusion.value, "matrix": dumps(r.matrix),
                "outputs": dumps(r.outputs), "labels": "[]", "needs": "[]",
                "workflow_path": "", "timeout": 0.0, "continue_on_error": False,
                "cancel_in_progress": False, "assignment": "{}", "created_at": now,
                "finished_at": now, "retries": 0, "log_base": 0, "archived": True,
                "summary": "", "annotations": "[]", "error": r.error,
            }
            for r in results
        ]
        rows = conn.execute(
            insert(jobs).returning(jobs.c.id, jobs.c.key, sort_by_parameter_order=True), values
        ).all()
        for job_row_id, key in rows:
            ap.rows[key] = job_row_id
            ap.finished.add(key)
        _job_events(conn, [
            (i, ap.pipeline_id, JobStatus.COMPLETED.value, r.conclusion.value)
            for (i, _), r in zip(rows, results, strict=True)
        ])

    def _complete_row(
        self, conn: Connection, job_row_id: int, pipeline_id: int, result: JobResult,
        now: float, **values: Any,
    ) -> None:
        params = {
            "jid": job_row_id, "status": JobStatus.COMPLETED.value,
            "conclusion": result.conclusion.value, "outputs": dumps(result.outputs),
            "error": result.error, "finished_at": now,
        }
        if set(values) == _FINISH_EXTRA:
            conn.execute(_FINISH, {"jid": job_row_id, **{
                "v_" + k: v for k, v in {**params, **values}.items() if k != "jid"
            }})
        else:
            del params["jid"]
            conn.execute(update(jobs).where(jobs.c.id == job_row_id).values(**params, **values))
        repo.job_event(conn, job_row_id, pipeline_id, JobStatus.COMPLETED.value,
                       result.conclusion.value)
        self.metrics.finished(result.conclusion.value)

    def _plan_finish(
        self, conn: Connection, ap: ActivePlan, key: str, result: JobResult, fu: FollowUps,
        now: float,
    ) -> None:
        """Give the plan a result; cancel what fail-fast says to."""
        ap.finished.add(key)
        for other in ap.plan.finish(key, result):
            self._cancel_unit(conn, ap, other, fu, now, "cancel")

    def _cancel_unit(
        self, conn: Connection, ap: ActivePlan, key: str, fu: FollowUps, now: float, reason: str
    ) -> None:
        """Cancel a unit the plan holds running: at once if no runner has it, else ask the runner."""
        job_row_id = ap.rows.get(key)
        if key in ap.finished:
            return
        if job_row_id is None:  # handed out but not stored: cannot happen after insert
            result = JobResult(key=key, job_id=key, name=key, conclusion=PlanConclusion.CANCELLED)
            self._plan_finish(conn, ap, key, result, fu, now)
            return
        for _ in range(3):  # a runner may claim it meanwhile (another replica)
            row = repo.job_core(conn, job_row_id)
            if row.status in (JobStatus.WAITING.value, JobStatus.QUEUED.value):
                result = JobResult(
                    key=key, job_id=row.job_id, name=row.name,
                    conclusion=PlanConclusion.CANCELLED, matrix=json.loads(row.matrix),
                )
                moved = conn.execute(
                    update(jobs).where(and_(jobs.c.id == row.id, jobs.c.status == row.status))
                    .values(status=JobStatus.COMPLETED.value, conclusion="cancelled",
                            finished_at=now, archived=True)
                ).rowcount
                if not moved:
                    continue
                repo.job_event(conn, row.id, ap.pipeline_id, JobStatus.COMPLETED.value, "cancelled")
                self.metrics.finished("cancelled")
                if row.concurrency_group:
                    fu.job_groups.add(row.concurrency_group)
                self._plan_finish(conn, ap, key, result, fu, now)
                return
            if row.status == JobStatus.RUNNING.value:
                if repo.set_job_status(conn, row, JobStatus.CANCELLING, cancel_reason=reason):
                    fu.topics.add(f"job:{row.id}")
                    return
                continue
            return  # cancelling or completed already

    # -- creating and starting pipelines (see _creation) ------------------------------

    def create_pipelines(
        self, specs: Sequence[NewPipeline], cursor: tuple[str, int] | None = None,
        schedules: Callable[[Connection], None] | None = None,
    ) -> list[int]:
        """Create pipelines (and store a feed cursor) in one transaction; returns their ids.

        A spec whose ``dedupe_key`` exists already creates nothing (its id is returned).
        """
        return _creation.create_pipelines(self, specs, cursor, schedules)

    def start_pipeline(self, pipeline_id: int) -> None:
        """Start a pipeline that waited for its concurrency group (no-op if started)."""
        _creation.start_pipeline(self, pipeline_id)

    def promote_pipelines(self, group: str) -> None:
        """Start the oldest pipeline waiting for ``group`` when none of it runs."""
        _creation.promote_pipelines(self, group)

    def promote_jobs(self, group: str) -> None:
        """Queue the oldest job waiting for ``group`` when none of it is queued or running."""
        _creation.promote_jobs(self, group)

    # -- finishing jobs --------------------------------------------------------------

    def complete_job(
        self, job_id: int, conclusion: str, outputs: dict[str, str], error: str | None,
        *, generation: int | None = None, log_size: int | None = None,
        summary: str = "", annotations: list[dict[str, Any]] | None = None,
        steps: list[dict[str, Any]] | None = None, pipeline_id: int | None = None,
    ) -> dict[str, Any]:
        """A runner's report that a job ended (idempotent); the job's state after it.

        ``log_size`` (in the runner's offsets) is the size its log will have: beyond
        what ci holds, the log stays open for the rest (see :mod:`shipyard.ci._joblogs`);
        ``None``: the log is complete as it is.
        """
        if pipeline_id is None:
            with self.db.read() as conn:
                pipeline_id = repo.pipeline_of_job(conn, job_id)
        with self.operation(pipeline_id) as ctx:
            row = repo.job_core(ctx.conn, job_id)
            if row.status == JobStatus.COMPLETED.value:
                return {"id": row.id, "pipeline_id": row.pipeline_id, "status": row.status,
                        "conclusion": row.conclusion, "error": row.error,
                        "log_complete": not row.log_open}
            if row.pipeline_id != pipeline_id:
                raise ConflictError(f"job {job_id} is not of pipeline {pipeline_id}")
            if generation is not None and generation != row.retries:
                raise ConflictError("this job was handed to another runner")
            if row.status not in (JobStatus.RUNNING.value, JobStatus.CANCELLING.value):
                raise ConflictError(f"job {job_id} is {row.status}: no runner holds it")
            with self.joblogs.guard(job_id):  # an append racing this sees it, or is seen
                held = self.logs.size(job_id) - row.log_base
                still_open = log_size is not None and log_size > held
                if still_open:
                    assert log_size is not None
                    self.joblogs.expect(job_id, row.log_base + log_size)
            if row.cancel_reason == "timeout":
                conclusion, error = Conclusion.FAILURE.value, TIMED_OUT
            elif row.cancel_reason == "cancel" and conclusion != Conclusion.SUCCESS.value:
                conclusion = Conclusion.CANCELLED.value
            if steps:
                repo.upsert_steps(ctx.conn, job_id, steps)
            extra: dict[str, Any] = {
                "summary": summary, "annotations": dumps(annotations or []),
                "log_size": row.log_base + (held if log_size is None else log_size),
                # The runner's silence is timed from here while the rest is on its way.
                "log_open": still_open, "heartbeat_at": ctx.now,
            }
            self._end_job(ctx, row, conclusion, outputs, error, **extra)
            if still_open:  # archived once closed (JobLogs.on_closed), not now
                ctx.fu.finished_jobs.remove(row.id)
            answer = {"id": row.id, "pipeline_id": row.pipeline_id,
                      "status": JobStatus.COMPLETED.value, "conclusion": conclusion,
                      "error": error, "log_complete": not still_open}
        if still_open and self.joblogs.close(job_id):  # the rest came meanwhile
            answer["log_complete"] = True
        return answer

    def _end_job(
        self, ctx: OpContext, row: Row[Any], conclusion: str, outputs: dict[str, str],
        error: str | None, **values: Any,
    ) -> None:
        result = JobResult(
            key=row.key, job_id=row.job_id, name=row.name,
            conclusion=PlanConclusion(conclusion), outputs=dict(outputs),
            matrix=json.loads(row.matrix), error=error,
        )
        self._complete_row(ctx.conn, row.id, row.pipeline_id, result, ctx.now, **values)
        ctx.fu.topics.update({f"job:{row.id}", f"log:{row.id}"})
        ctx.fu.finished_jobs.append(row.id)
        if row.concurrency_group:
            ctx.fu.job_groups.add(row.concurrency_group)
        ap = ctx.ap
        if ap is not None and row.attempt == ap.attempt and row.key not in ap.finished:
            quiet = ap.settles_alone(row.key) and result.conclusion is not PlanConclusion.FAILURE
            self._plan_finish(ctx.conn, ap, row.key, result, ctx.fu, ctx.now)
            self.advance(ctx, quiet=quiet)

    def lose_job(self, job_id: int) -> None:
        """A job whose runner went silent: queue it again, or end it failed."""
        with self.db.read() as conn:
            pipeline_id = repo.pipeline_of_job(conn, job_id)
        with self.operation(pipeline_id) as ctx:
            row = repo.job_core(ctx.conn, job_id)
            limit = ctx.now - self.settings.heartbeat_timeout
            if row.status not in (JobStatus.RUNNING.value, JobStatus.CANCELLING.value):
                return
            if row.heartbeat_at is not None and row.heartbeat_at >= limit:
                return
            if (
                row.status == JobStatus.RUNNING.value
                and row.retries < self.settings.lost_job_retries
            ):
                attempt = row.retries + 2
                size = self.logs.mark(
                    job_id,
                    f"##[shipyard] {LOST}: the job is queued again"
                    f" (try {attempt} of {self.settings.lost_job_retries + 1})\n",
                )
                repo.set_job_status(
                    ctx.conn, row, JobStatus.QUEUED, runner_id=None, started_at=None,
                    heartbeat_at=None, deadline=None, retries=row.retries + 1, log_base=size,
                    queued_at=ctx.now,
                )
                self.metrics.queued(1)
                ctx.fu.topics.update({"jobs", f"job:{row.id}"})
                return
            if row.cancel_reason == "cancel":
                self._end_job(ctx, row, Conclusion.CANCELLED.value, {}, None)
            elif row.cancel_reason == "timeout":
                self._end_job(ctx, row, Conclusion.FAILURE.value, {}, TIMED_OUT)
            else:
                self._end_job(ctx, row, Conclusion.FAILURE.value, {}, LOST)

    def time_out_job(self, job_id: int) -> None:
        """A job past its ``timeout-minutes``: ask its runner to stop it."""
        with self.db.read() as conn:
            pipeline_id = repo.pipeline_of_job(conn, job_id)
        with self.operation(pipeline_id) as ctx:
            row = repo.job_core(ctx.conn, job_id)
            if row.status == JobStatus.RUNNING.value and repo.set_job_status(
                ctx.conn, row, JobStatus.CANCELLING, cancel_reason="timeout"
            ):
                ctx.fu.topics.add(f"job:{row.id}")

    # -- cancelling ------------------------------------------------------------------

    def cancel_job(self, job_id: int) -> None:
        """Cancel one job: at once when no runner has it, else through its heartbeat."""
        with self.db.read() as conn:
            pipeline_id = repo.pipeline_of_job(conn, job_id)
        with self.operation(pipeline_id) as ctx:
            row = repo.job_core(ctx.conn, job_id)
            if row.status == JobStatus.COMPLETED.value:
                raise ConflictError(f"job {job_id} has finished")
            if row.status == JobStatus.CANCELLING.value:
                return
            if ctx.ap is None or row.attempt != ctx.ap.attempt:
                raise ConflictError(f"job {job_id} belongs to an earlier attempt")
            self._cancel_unit(ctx.conn, ctx.ap, row.key, ctx.fu, ctx.now, "cancel")
            self.advance(ctx)

    def cancel_pipeline(self, pipeline_id: int) -> None:
        """Cancel every queued and running job of a pipeline."""
        with self.operation(pipeline_id) as ctx:
            if ctx.row.status == PipelineStatus.COMPLETED.value:
                raise ConflictError(f"pipeline {pipeline_id} has finished")
            if ctx.ap is None:  # never started: nothing ran
                self.finish_pipeline(ctx, Conclusion.CANCELLED.value)
                return
            for key in ctx.ap.plan.cancel():
                self._cancel_unit(ctx.conn, ctx.ap, key, ctx.fu, ctx.now, "cancel")
            self.advance(ctx)


def _job_events(conn: Connection, items: Sequence[tuple[int, int, str, str | None]]) -> None:
    """``job.updated`` events for many jobs in one statement (feed order kept)."""
    repo.add_events(conn, "job.updated", [
        {"id": i, "pipeline_id": p, "status": st, "conclusion": c} for i, p, st, c in items
    ])
