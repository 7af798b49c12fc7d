"""Queries of the ci tables, each taking the caller's connection."""

from __future__ import annotations

import json
import time
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from sqlalchemy import Connection, Row, and_, bindparam, func, insert, select, text, update

from shipyard.ci._states import JobStatus, PipelineStatus, check_job, check_pipeline
from shipyard.ci._tables import cursors, events, jobs, pipelines, runners, schedules, steps
from shipyard.errors import NotFoundError
from shipyard.service import Database

__all__ = [
    "job_dict",
    "pipeline_dict",
]


_BUMP = (
    update(pipelines).where(pipelines.c.id == bindparam("pid"))
    .values(version=pipelines.c.version + 1).returning(*pipelines.c)
)


def bump_pipeline(conn: Connection, pipeline_id: int) -> Row[Any]:
    """The pipeline row with its ``version`` moved on (locked until the transaction ends)."""
    row = conn.execute(_BUMP, {"pid": pipeline_id}).first()
    if row is None:
        raise NotFoundError(f"no pipeline {pipeline_id}")
    return row


@contextmanager
def peek(db: Database) -> Iterator[Connection]:
    """A connection for one quick read: no transaction round trips on PostgreSQL."""
    if db.is_sqlite:
        with db.read() as conn:
            yield conn
        return
    with db.engine.connect() as raw:
        yield raw.execution_options(isolation_level="AUTOCOMMIT")


def get_pipeline(conn: Connection, pipeline_id: int) -> Row[Any]:
    row = conn.execute(select(pipelines).where(pipelines.c.id == pipeline_id)).first()
    if row is None:
        raise NotFoundError(f"no pipeline {pipeline_id}")
    return row


def get_job(conn: Connection, job_id: int) -> Row[Any]:
    row = conn.execute(select(jobs).where(jobs.c.id == job_id)).first()
    if row is None:
        raise NotFoundError(f"no job {job_id}")
    return row


#: A job's columns but its (large) assignment: what the engine decides with.
_CORE = select(*(
    c for c in jobs.columns if c.name not in ("assignment", "summary", "annotations")
)).where(jobs.c.id == bindparam("jid"))


def job_core(conn: Connection, job_id: int) -> Row[Any]:
    row = conn.execute(_CORE, {"jid": job_id}).first()
    if row is None:
        raise NotFoundError(f"no job {job_id}")
    return row


def pipeline_of_job(conn: Connection, job_id: int) -> int:
    value = conn.execute(select(jobs.c.pipeline_id).where(jobs.c.id == job_id)).scalar()
    if value is None:
        raise NotFoundError(f"no job {job_id}")
    return int(value)


def group_lock(conn: Connection, group: str) -> None:
    """Serialise decisions about one concurrency group across replicas (PostgreSQL)."""
    if conn.dialect.name == "postgresql":
        conn.execute(text("SELECT pg_advisory_xact_lock(hashtext(:g))"), {"g": "ci-group:" + group})


def set_job_status(
    conn: Connection, row: Row[Any], to: JobStatus, **values: Any
) -> bool:
    """Move a job from the status ``row`` shows to ``to``; False when it moved meanwhile."""
    check_job(row.status, to)
    result = conn.execute(
        update(jobs)
        .where(and_(jobs.c.id == row.id, jobs.c.status == row.status))
        .values(status=to.value, **values)
    )
    if result.rowcount != 1:
        return False
    job_event(conn, row.id, row.pipeline_id, to.value, values.get("conclusion"))
    return True


def set_pipeline_status(
    conn: Connection, row: Row[Any], to: PipelineStatus, **values: Any
) -> bool:
    check_pipeline(row.status, to)
    result = conn.execute(
        update(pipelines)
        .where(and_(pipelines.c.id == row.id, pipelines.c.status == row.status))
        .values(status=to.value, **values)
    )
    if result.rowcount != 1:
        return False
    pipeline_event(conn, row.id, row.repo, row.attempt, to.value, values.get("conclusion"))
    return True


_FEED_LOCK = f"feed:{events.fullname}"
_INSERT_EVENT = insert(events)
_PG_APPEND = text(
    "WITH locked AS (SELECT pg_advisory_xact_lock(hashtext(:lock)))"
    " INSERT INTO events (kind, payload, created_at) SELECT :kind, :payload, :created_at"
    " FROM locked"
)


def add_events(conn: Connection, kind: str, payloads: Sequence[dict[str, Any]]) -> None:
    """Append events in the caller's transaction, as :func:`shipyard.service.append_event`.

    The same feed lock keeps ids visible in order on PostgreSQL; taking it in the
    statement that inserts saves a round trip per event, and many go in one batch.
    """
    if not payloads:
        return
    now = time.time()
    rows = [{"kind": kind, "payload": json.dumps(p, separators=(",", ":")), "created_at": now}
            for p in payloads]
    if conn.dialect.name == "postgresql":
        if len(rows) == 1:
            conn.execute(_PG_APPEND, {**rows[0], "lock": _FEED_LOCK})
            return
        conn.execute(text("SELECT pg_advisory_xact_lock(hashtext(:lock))"), {"lock": _FEED_LOCK})
    conn.execute(_INSERT_EVENT, rows)


def job_event(
    conn: Connection, job_id: int, pipeline_id: int, status: str, conclusion: str | None
) -> None:
    add_events(conn, "job.updated", [{
        "id": job_id, "pipeline_id": pipeline_id, "status": status, "conclusion": conclusion,
    }])


def pipeline_event(
    conn: Connection, pipeline_id: int, repo: str, attempt: int, status: str,
    conclusion: str | None,
) -> None:
    add_events(conn, "pipeline.updated", [{
        "id": pipeline_id, "repo": repo, "attempt": attempt, "status": status,
        "conclusion": conclusion,
    }])


_UPSERTS: dict[str, Any] = {}


def _upsert_statement(dialect_name: str) -> Any:
    # Built once per dialect: making the statement costs more than running it.
    stmt = _UPSERTS.get(dialect_name)
    if stmt is None:
        from sqlalchemy.dialects import postgresql, sqlite

        dialect: Any = postgresql if dialect_name == "postgresql" else sqlite
        base = dialect.insert(steps)
        fields = ("status", "conclusion", "started_at", "finished_at")
        kept: dict[str, Any] = {f: func.coalesce(base.excluded[f], steps.c[f]) for f in fields}
        kept["name"] = func.coalesce(func.nullif(base.excluded.name, ""), steps.c.name)
        stmt = _UPSERTS[dialect_name] = base.on_conflict_do_update(
            index_elements=[steps.c.job_id, steps.c.number], set_=kept
        )
    return stmt


def upsert_steps(conn: Connection, job_id: int, updates: Sequence[dict[str, Any]]) -> None:
    """Insert or update steps by number in one statement (fields sent as null are kept)."""
    if not updates:
        return
    rows = [
        {"job_id": job_id, "number": u["number"], "name": u.get("name") or "",
         "status": u["status"], "conclusion": u.get("conclusion"),
         "started_at": u.get("started_at"), "finished_at": u.get("finished_at")}
        for u in updates
    ]
    conn.execute(_upsert_statement(conn.dialect.name), rows)


def steps_of(conn: Connection, job_ids: Iterable[int]) -> dict[int, list[dict[str, Any]]]:
    ids = list(job_ids)
    out: dict[int, list[dict[str, Any]]] = {i: [] for i in ids}
    if not ids:
        return out
    for chunk_start in range(0, len(ids), 500):
        chunk = ids[chunk_start : chunk_start + 500]
        rows = conn.execute(
            select(steps).where(steps.c.job_id.in_(chunk)).order_by(steps.c.job_id, steps.c.number)
        ).all()
        for r in rows:
            out[r.job_id].append({
                "number": r.number, "name": r.name, "status": r.status,
                "conclusion": r.conclusion, "started_at": r.started_at,
                "finished_at": r.finished_at,
            })
    return out


def job_dict(row: Row[Any], step_list: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "id": row.id, "pipeline_id": row.pipeline_id, "attempt": row.attempt, "key": row.key,
        "job_id": row.job_id, "name": row.name, "status": row.status,
        "conclusion": row.conclusion, "runner_id": row.runner_id,
        "matrix": json.loads(row.matrix), "outputs": json.loads(row.outputs),
        "needs": json.loads(row.needs), "labels": json.loads(row.labels),
        "created_at": row.created_at, "started_at": row.started_at,
        "finished_at": row.finished_at, "steps": step_list, "error": row.error,
        "log_complete": row.status == JobStatus.COMPLETED.value and not row.log_open,
    }


def pipeline_dict(row: Row[Any], job_list: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    return {
        "id": row.id, "repo": row.repo, "workflow": row.workflow, "name": row.name,
        "event": row.event, "ref": row.ref, "sha": row.sha, "attempt": row.attempt,
        "status": row.status, "conclusion": row.conclusion,
        "inputs": json.loads(row.inputs), "created_at": row.created_at,
        "started_at": row.started_at, "finished_at": row.finished_at,
        "jobs": job_list or [], "errors": json.loads(row.errors),
    }


def pipeline_with_jobs(conn: Connection, pipeline_id: int) -> dict[str, Any]:
    row = get_pipeline(conn, pipeline_id)
    rows = conn.execute(
        select(jobs)
        .where(and_(jobs.c.pipeline_id == row.id, jobs.c.attempt == row.attempt))
        .order_by(jobs.c.id)
    ).all()
    by_job = steps_of(conn, (r.id for r in rows))
    return pipeline_dict(row, [job_dict(r, by_job[r.id]) for r in rows])


def job_with_steps(conn: Connection, job_id: int) -> dict[str, Any]:
    row = get_job(conn, job_id)
    return job_dict(row, steps_of(conn, [row.id])[row.id])


def list_pipelines(
    conn: Connection, repo: str | None, status: str | None, limit: int
) -> list[dict[str, Any]]:
    query = select(pipelines).order_by(pipelines.c.id.desc()).limit(limit)
    if repo is not None:
        query = query.where(pipelines.c.repo == repo)
    if status is not None:
        query = query.where(pipelines.c.status == status)
    return [pipeline_dict(r) for r in conn.execute(query).all()]


def get_cursor(conn: Connection, consumer: str) -> int:
    value = conn.execute(select(cursors.c.last_id).where(cursors.c.consumer == consumer)).scalar()
    return int(value or 0)


def set_cursor(conn: Connection, consumer: str, last_id: int) -> None:
    result = conn.execute(
        update(cursors).where(cursors.c.consumer == consumer).values(last_id=last_id)
    )
    if result.rowcount == 0:
        conn.execute(insert(cursors).values(consumer=consumer, last_id=last_id))


def runner_row(conn: Connection, runner_id: int) -> Row[Any] | None:
    return conn.execute(select(runners).where(runners.c.id == runner_id)).first()


def queued_count(conn: Connection) -> int:
    return int(conn.execute(
        select(func.count()).select_from(jobs).where(jobs.c.status == JobStatus.QUEUED.value)
    ).scalar() or 0)


def list_schedules(conn: Connection) -> list[dict[str, Any]]:
    rows = conn.execute(select(schedules).order_by(schedules.c.next_run, schedules.c.id)).all()
    return [
        {"id": r.id, "repo": r.repo, "workflow": r.workflow, "cron": r.cron, "ref": r.ref,
         "sha": r.sha, "next_run": r.next_run, "created_at": r.created_at}
        for r in rows
    ]


def now() -> float:
    return time.time()
