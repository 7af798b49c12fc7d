"""Reruns: a new attempt of a finished pipeline, keeping the results of what need not run.

The new attempt's plan is built from the same workflow, commit and inputs. As it hands
out units, those that keep their result (not selected, not depending on a selected job)
are finished at once with a copy of their earlier row; the rest are queued.
"""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy import and_, insert, select, update

from shipyard.ci import _repo as repo
from shipyard.ci._engine import Engine
from shipyard.ci._optypes import OpContext
from shipyard.ci._plans import ActivePlan, build_plan, dumps, result_of, source_of, top_job_id
from shipyard.ci._states import JobStatus, PipelineStatus
from shipyard.ci._tables import jobs, pipelines, steps
from shipyard.errors import ConflictError
from shipyard.workflow._model import Workflow

__all__ = ["rerun_job", "rerun_pipeline"]

_RERUN = ("failure", "cancelled")


def rerun_pipeline(engine: Engine, pipeline_id: int, *, failed_only: bool) -> None:
    """A new attempt: failed/cancelled jobs and their dependents (or every job) run again."""
    with engine.operation(pipeline_id) as ctx:
        _check(ctx)
        rows = _rows(ctx)
        if failed_only:
            selected = {r.key for r in rows if r.conclusion in _RERUN}
        else:
            selected = {r.key for r in rows}
        _new_attempt(engine, ctx, rows, selected)


def rerun_job(engine: Engine, job_id: int) -> int:
    """A new attempt running one job instance and what depends on it; the pipeline id."""
    with engine.db.read() as conn:
        target = repo.get_job(conn, job_id)
    with engine.operation(target.pipeline_id) as ctx:
        _check(ctx)
        if target.attempt != ctx.row.attempt:
            raise ConflictError(f"job {job_id} belongs to an earlier attempt of its pipeline")
        _new_attempt(engine, ctx, _rows(ctx), {target.key})
    return int(target.pipeline_id)


def _check(ctx: OpContext) -> None:
    if ctx.row.status != PipelineStatus.COMPLETED.value:
        raise ConflictError(f"pipeline {ctx.row.id} is still {ctx.row.status}: cancel it first")
    if json.loads(ctx.row.errors):
        raise ConflictError(f"pipeline {ctx.row.id} has an invalid workflow: push a fix instead")


def _rows(ctx: OpContext) -> list[Any]:
    return list(ctx.conn.execute(
        select(jobs)
        .where(and_(jobs.c.pipeline_id == ctx.row.id, jobs.c.attempt == ctx.row.attempt))
        .order_by(jobs.c.id)
    ).all())


def _dependents(workflow: Workflow, roots: set[str]) -> set[str]:
    """Every top-level job needing one of ``roots``, directly or not (a root only if so)."""
    out: set[str] = set()
    changed = True
    while changed:
        changed = False
        for job in workflow.jobs.values():
            if job.id not in out and any(n in out or n in roots for n in job.needs):
                out.add(job.id)
                changed = True
    return out


def _new_attempt(engine: Engine, ctx: OpContext, rows: list[Any], selected: set[str]) -> None:
    conn, old = ctx.conn, ctx.ap
    kept: dict[str, Any] = {}
    if old is not None:
        units = old.plan._units  # instances that ran (or were to): only these keep results
        tops = {top_job_id(old.plan, key) for key in selected}
        rerun = _dependents(old.plan.workflow, tops)
        kept = {
            r.key: r for r in rows
            if r.key in units and r.key not in selected
            and top_job_id(old.plan, r.key) not in rerun
            and r.status == JobStatus.COMPLETED.value
        }
    row = ctx.row
    attempt = row.attempt + 1
    contexts = json.loads(row.contexts)
    contexts.setdefault("github", {})["run_attempt"] = str(attempt)
    conn.execute(update(pipelines).where(pipelines.c.id == row.id).values(
        attempt=attempt, status=PipelineStatus.QUEUED.value, conclusion=None,
        started_at=None, finished_at=None, contexts=dumps(contexts),
    ))
    repo.pipeline_event(conn, row.id, row.repo, attempt, PipelineStatus.QUEUED.value, None)
    ctx.row = repo.get_pipeline(conn, row.id)
    ap = ActivePlan(row.id, attempt, row.version, build_plan(source_of(ctx.row)))
    ctx.ap, ctx.evict = ap, False
    results = {key: result_of(r) for key, r in kept.items()}
    handed = []
    while True:
        progressed = False
        for request in ap.plan.ready():
            if request.key in results:
                _copy(conn, ap, kept[request.key], ctx.now)
                engine._plan_finish(conn, ap, request.key, results[request.key], ctx.fu, ctx.now)
                progressed = True
            else:
                handed.append(request)
        if not progressed:
            break
    todo = [r for r in handed if r.key not in ap.finished]
    if todo:
        engine._insert(conn, ap, todo, ctx.fu, ctx.now)
    engine.advance(ctx)


def _copy(conn: Any, ap: ActivePlan, old: Any, now: float) -> None:
    """A kept job's row in the new attempt, its log the earlier one's."""
    values = {c.name: getattr(old, c.name) for c in jobs.columns if c.name != "id"}
    values.update(attempt=ap.attempt, log_job_id=old.log_job_id or old.id)
    new_id = int(conn.execute(insert(jobs).values(**values)).inserted_primary_key[0])
    ap.rows[old.key] = new_id
    old_steps = conn.execute(select(steps).where(steps.c.job_id == old.id)).all()
    if old_steps:
        conn.execute(insert(steps), [
            {**{c.name: getattr(s, c.name) for c in steps.columns}, "job_id": new_id}
            for s in old_steps
        ])
    repo.job_event(conn, new_id, ap.pipeline_id, JobStatus.COMPLETED.value, old.conclusion)
