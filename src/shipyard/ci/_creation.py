"""Creating pipelines, starting them, and workflow- and job-level concurrency groups.

A pipeline whose workflow has a ``concurrency`` group starts only when no other
pipeline of the group runs (``cancel-in-progress`` cancels those instead); a newer
pipeline waiting for the group replaces an older one waiting, as on GitHub. Jobs with a
``concurrency`` group wait (status ``waiting``) the same way, and the oldest waiting is
queued when the group's running job ends.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, Row, and_, insert, select, update

from shipyard.ci import _repo as repo
from shipyard.ci._optypes import FollowUps, NewPipeline, OpContext
from shipyard.ci._plans import ActivePlan, build_plan, dumps, source_of
from shipyard.ci._states import JobStatus, PipelineStatus
from shipyard.ci._tables import jobs, pipelines
from shipyard.workflow._model import Workflow
from shipyard.workflow.expressions import EvalContext, ExpressionError, is_truthy

if TYPE_CHECKING:
    from shipyard.ci._engine import Engine

__all__ = ["create_pipelines", "promote_jobs", "promote_pipelines", "start_pipeline"]

log = logging.getLogger("shipyard.ci")

_ACTIVE = (JobStatus.QUEUED.value, JobStatus.RUNNING.value, JobStatus.CANCELLING.value)


def create_pipelines(
    engine: Engine, specs: Sequence[NewPipeline], cursor: tuple[str, int] | None = None,
    schedules: Callable[[Connection], None] | None = None,
) -> list[int]:
    """Create pipelines (and store a feed cursor) in one transaction; returns their ids.

    A spec whose ``dedupe_key`` exists already creates nothing (its id is returned).
    """
    fu = FollowUps()
    started: list[ActivePlan] = []
    ids: list[int] = []
    with engine.db.write() as conn:
        for spec in specs:
            ids.append(_create(engine, conn, spec, fu, started))
        if schedules is not None:
            schedules(conn)
        if cursor is not None:
            repo.set_cursor(conn, *cursor)
    for ap in started:
        if not ap.done:
            engine._plans[ap.pipeline_id] = ap
    engine.follow(fu)
    return ids


def _create(
    engine: Engine, conn: Connection, spec: NewPipeline, fu: FollowUps, started: list[ActivePlan]
) -> int:
    if spec.dedupe_key is not None:
        existing = conn.execute(
            select(pipelines.c.id).where(pipelines.c.dedupe_key == spec.dedupe_key)
        ).scalar()
        if existing is not None:
            return int(existing)
    now = engine.clock()
    failed = bool(spec.errors)
    pipeline_id = int(conn.execute(insert(pipelines).values(
        repo=spec.repo, workflow=spec.workflow, name=spec.name, event=spec.event,
        ref=spec.ref, sha=spec.sha, attempt=1,
        status=(PipelineStatus.COMPLETED if failed else PipelineStatus.QUEUED).value,
        conclusion="failure" if failed else None, inputs=dumps(spec.inputs),
        contexts="{}", errors=dumps(spec.errors), workflow_text=spec.text,
        called=dumps(spec.called), source_event_id=spec.source_event_id,
        dedupe_key=spec.dedupe_key, cancel_in_progress=False, version=0, planned=False,
        created_at=now, finished_at=now if failed else None,
    )).inserted_primary_key[0])  # type: ignore[index]
    github = {**spec.github, "run_id": str(pipeline_id), "run_number": str(pipeline_id),
              "run_attempt": "1"}
    contexts = {"github": github, "inputs": spec.inputs, "vars": spec.vars,
                "secrets": {"GITHUB_TOKEN": ""}}
    group, cancel = _workflow_group(spec.parsed, contexts)
    conn.execute(update(pipelines).where(pipelines.c.id == pipeline_id).values(
        contexts=dumps(contexts), concurrency_group=group, cancel_in_progress=cancel,
    ))
    row = repo.get_pipeline(conn, pipeline_id)
    repo.pipeline_event(conn, pipeline_id, spec.repo, 1, row.status, row.conclusion)
    engine.metrics.pipeline_created()
    if failed:
        return pipeline_id
    if group is not None:
        repo.group_lock(conn, group)
        others = conn.execute(
            select(pipelines.c.id, pipelines.c.planned).where(and_(
                pipelines.c.concurrency_group == group,
                pipelines.c.status != PipelineStatus.COMPLETED.value,
                pipelines.c.id != pipeline_id,
            )).order_by(pipelines.c.id)
        ).all()
        if cancel:
            fu.cancel_pipelines.extend(o.id for o in others)
        else:
            fu.cancel_pipelines.extend(o.id for o in others if not o.planned)
            if any(o.planned for o in others):
                return pipeline_id  # waits for the group's running pipeline
    started.append(_start(engine, conn, row, fu, now))
    return pipeline_id


def _workflow_group(
    workflow: Workflow | None, contexts: dict[str, Any]
) -> tuple[str | None, bool]:
    if workflow is None or workflow.concurrency is None:
        return None, False
    ctx = EvalContext({k: contexts[k] for k in ("github", "inputs", "vars")})
    try:
        group = workflow.concurrency.group.evaluate_str(ctx)
        value = workflow.concurrency.cancel_in_progress
        cancel = is_truthy(value.evaluate(ctx) if not isinstance(value, bool) else value)
    except ExpressionError as err:
        log.warning("%s: concurrency: %s", workflow.path, err)
        return None, False
    return group or None, cancel


def _start(
    engine: Engine, conn: Connection, row: Row[Any], fu: FollowUps, now: float
) -> ActivePlan:
    """Build the plan of a pipeline not started yet and queue its first jobs."""
    ap = ActivePlan(row.id, row.attempt, row.version, build_plan(source_of(row)))
    conn.execute(update(pipelines).where(pipelines.c.id == row.id).values(planned=True))
    ctx = OpContext(conn, row, ap, fu, now)
    engine.advance(ctx)
    return ap


def start_pipeline(engine: Engine, pipeline_id: int) -> None:
    """Start a pipeline that waited for its concurrency group (no-op if started)."""
    with engine.operation(pipeline_id) as ctx:
        if ctx.row.planned or ctx.row.status != PipelineStatus.QUEUED.value:
            return
        ctx.ap = _start(engine, ctx.conn, ctx.row, ctx.fu, ctx.now)
        if ctx.ap.done:
            ctx.evict = True


def promote_pipelines(engine: Engine, group: str) -> None:
    """Start the oldest pipeline waiting for ``group`` when none of it runs."""
    with engine.db.write() as conn:
        repo.group_lock(conn, group)
        rows = conn.execute(
            select(pipelines.c.id, pipelines.c.planned).where(and_(
                pipelines.c.concurrency_group == group,
                pipelines.c.status != PipelineStatus.COMPLETED.value,
            )).order_by(pipelines.c.id)
        ).all()
    if rows and not any(r.planned for r in rows):
        start_pipeline(engine, rows[0].id)


def promote_jobs(engine: Engine, group: str) -> None:
    """Queue the oldest job waiting for ``group`` when none of it is queued or running."""
    with engine.db.write() as conn:
        repo.group_lock(conn, group)
        rows = conn.execute(
            select(jobs).where(and_(
                jobs.c.concurrency_group == group,
                jobs.c.status.in_([*_ACTIVE, JobStatus.WAITING.value]),
            )).order_by(jobs.c.id)
        ).all()
        if not rows or any(r.status in _ACTIVE for r in rows):
            return
        if repo.set_job_status(conn, rows[0], JobStatus.QUEUED, queued_at=engine.clock()):
            engine.metrics.queued(1)
    engine.notifier.notify("jobs", "events")
