"""Pipelines and jobs, for people: list, show, cancel, rerun, dispatch, logs, statuses."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated, Any

import anyio
from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import Response, StreamingResponse
from sqlalchemy import and_, select

from shipyard.ci import _repo as repo
from shipyard.ci._rerun import rerun_job, rerun_pipeline
from shipyard.ci._schemas import (
    DispatchRequest,
    EventsPage,
    Id,
    Job,
    Pipeline,
    RerunRequest,
    Schedule,
    Statuses,
)
from shipyard.ci._state import CiState, ci_of
from shipyard.ci._states import JobStatus, PipelineStatus
from shipyard.ci._tables import events, jobs, pipelines
from shipyard.errors import InvalidRequestError, NotFoundError
from shipyard.service import Auth, long_poll, read_events

__all__ = ["router"]

router = APIRouter()
Ci = Annotated[CiState, Depends(ci_of)]
Limit = Annotated[int, Query(ge=1, le=500)]


@router.get("/pipelines", response_model=list[Pipeline], tags=["pipelines"],
            summary="Pipelines, newest first")
def list_pipelines(
    claims: Auth, ci: Ci, repo_name: Annotated[str | None, Query(alias="repo")] = None,
    status: Annotated[PipelineStatus | None, Query()] = None, limit: Limit = 50,
) -> list[dict[str, Any]]:
    with ci.db.read() as conn:
        return repo.list_pipelines(conn, repo_name, status.value if status else None, limit)


@router.get("/pipelines/{pipeline_id}", response_model=Pipeline, tags=["pipelines"],
            summary="A pipeline with its jobs and errors")
def get_pipeline(pipeline_id: Id, claims: Auth, ci: Ci) -> dict[str, Any]:
    with ci.db.read() as conn:
        return repo.pipeline_with_jobs(conn, pipeline_id)


@router.post("/pipelines/{pipeline_id}/cancel", response_model=Pipeline, tags=["pipelines"],
             summary="Cancel a pipeline's queued and running jobs")
def cancel_pipeline(pipeline_id: Id, claims: Auth, ci: Ci) -> dict[str, Any]:
    claims.require("pipelines:write")
    ci.engine.cancel_pipeline(pipeline_id)
    with ci.db.read() as conn:
        return repo.pipeline_with_jobs(conn, pipeline_id)


@router.post("/pipelines/{pipeline_id}/rerun", response_model=Pipeline, tags=["pipelines"],
             summary="A new attempt of a finished pipeline")
def rerun(
    pipeline_id: Id, claims: Auth, ci: Ci, body: RerunRequest | None = None
) -> dict[str, Any]:
    claims.require("pipelines:write")
    rerun_pipeline(ci.engine, pipeline_id, failed_only=body.failed_only if body else True)
    with ci.db.read() as conn:
        return repo.pipeline_with_jobs(conn, pipeline_id)


@router.get("/jobs/{job_id}", response_model=Job, tags=["jobs"], summary="A job with its steps")
def get_job(job_id: Id, claims: Auth, ci: Ci) -> dict[str, Any]:
    with ci.db.read() as conn:
        return repo.job_with_steps(conn, job_id)


@router.post("/jobs/{job_id}/cancel", response_model=Job, tags=["jobs"], summary="Cancel one job")
def cancel_job(job_id: Id, claims: Auth, ci: Ci) -> dict[str, Any]:
    claims.require("pipelines:write")
    ci.engine.cancel_job(job_id)
    with ci.db.read() as conn:
        return repo.job_with_steps(conn, job_id)


@router.post("/jobs/{job_id}/rerun", response_model=Pipeline, tags=["jobs"],
             summary="A new attempt running this job and what depends on it")
def rerun_one(job_id: Id, claims: Auth, ci: Ci) -> dict[str, Any]:
    claims.require("pipelines:write")
    pipeline_id = rerun_job(ci.engine, job_id)
    with ci.db.read() as conn:
        return repo.pipeline_with_jobs(conn, pipeline_id)


def _log_source(ci: CiState, job_id: int) -> tuple[int, bool, bool]:
    """(job whose log it is, archived, complete: the job finished and its log closed)."""
    with ci.db.read() as conn:
        row = conn.execute(
            select(jobs.c.status, jobs.c.log_job_id, jobs.c.archived, jobs.c.log_open)
            .where(jobs.c.id == job_id)
        ).first()
        if row is None:
            raise NotFoundError(f"no job {job_id}")
        owner = row.log_job_id or job_id
        archived = row.archived
        if row.log_job_id:
            archived = bool(conn.execute(
                select(jobs.c.archived).where(jobs.c.id == owner)
            ).scalar())
    return owner, bool(archived), row.status == JobStatus.COMPLETED.value and not row.log_open


def _read(ci: CiState, owner: int, archived: bool, offset: int) -> bytes:
    # The archiver may move the log to the store between the look-up of ``archived`` and
    # here: a log found neither here nor marked archived is asked of the store too.
    if ci.logs.exists(owner) or ci.store is None:
        data = ci.logs.read(owner, offset, 1 << 30)
        if data or ci.store is None or ci.logs.exists(owner):
            return data
    response = ci.store.get(f"/logs/{owner}", headers={"Range": f"bytes={offset}-"})
    if response.status_code in (404, 416):
        return b""
    if response.status_code >= 400:
        raise NotFoundError(f"the store cannot give the log of job {owner}")
    return response.content if response.status_code == 206 or offset == 0 else response.content[offset:]


@router.get("/jobs/{job_id}/log", tags=["jobs"], response_class=Response,
            responses={200: {"content": {"text/plain": {}}}},
            summary="A job's log from a byte offset; follow=true streams until the job "
                    "has ended and its log is complete")
async def get_log(
    job_id: Id, claims: Auth, ci: Ci, offset: Annotated[int, Query(ge=0, le=2**53)] = 0,
    follow: bool = False,
) -> Response:
    owner, archived, finished = await anyio.to_thread.run_sync(_log_source, ci, job_id)
    if not follow or finished:
        data = await anyio.to_thread.run_sync(_read, ci, owner, archived, offset)
        return Response(data, media_type="text/plain; charset=utf-8")

    async def stream() -> AsyncIterator[bytes]:
        position = offset
        topic = f"log:{owner}"
        while True:
            seen = ci.notifier.snapshot([topic])
            chunk = await anyio.to_thread.run_sync(ci.logs.read, owner, position)
            if chunk:
                position += len(chunk)
                yield chunk
                continue
            _, _, done = await anyio.to_thread.run_sync(_log_source, ci, job_id)
            if done:
                rest = await anyio.to_thread.run_sync(ci.logs.read, owner, position)
                if rest:
                    yield rest
                return
            await ci.notifier.wait([topic], seen, 1.0)

    return StreamingResponse(stream(), media_type="text/plain; charset=utf-8")


@router.post("/dispatch", status_code=201, response_model=Pipeline, tags=["pipelines"],
             summary="Run a workflow by hand (workflow_dispatch)")
def dispatch(body: DispatchRequest, claims: Auth, ci: Ci) -> dict[str, Any]:
    claims.require("pipelines:write")
    spec = ci.sources().for_dispatch(body.repo, body.workflow, body.ref, dict(body.inputs))
    [pipeline_id] = ci.engine.create_pipelines([spec])
    with ci.db.read() as conn:
        return repo.pipeline_with_jobs(conn, pipeline_id)


def _state(row: Any) -> str:
    if row.status != PipelineStatus.COMPLETED.value:
        return "pending"
    if row.conclusion in ("success", "skipped"):
        return "success"
    if row.conclusion == "failure" and row.errors not in ("[]", ""):
        return "error"
    return "failure" if row.conclusion == "failure" else "error"


@router.get("/statuses/{repo_name:path}/{sha}", response_model=Statuses, tags=["pipelines"],
            summary="Commit statuses: the latest pipeline of each workflow at a commit")
def statuses(repo_name: str, sha: str, claims: Auth, ci: Ci) -> dict[str, Any]:
    if len(sha) > 64:
        raise InvalidRequestError("sha: at most 64 characters")
    with ci.db.read() as conn:
        rows = conn.execute(
            select(pipelines).where(and_(pipelines.c.repo == repo_name, pipelines.c.sha == sha))
            .order_by(pipelines.c.id)
        ).all()
    latest: dict[str, Any] = {}
    for row in rows:
        latest[row.workflow] = row
    entries = []
    for row in latest.values():
        state = _state(row)
        what = row.conclusion or row.status
        entries.append({
            "context": row.name, "state": state, "pipeline_id": row.id,
            "description": f"pipeline {row.id} (attempt {row.attempt}): {what}",
            "updated_at": row.finished_at or row.started_at or row.created_at,
        })
    states = {e["state"] for e in entries}
    combined = (
        "error" if "error" in states else "failure" if "failure" in states
        else "pending" if "pending" in states or not states else "success"
    )
    return {"sha": sha, "state": combined, "statuses": entries}


@router.get("/schedules", response_model=list[Schedule], tags=["pipelines"],
            summary="Cron schedules of default branches, with their next run")
def list_schedules(claims: Auth, ci: Ci) -> list[dict[str, Any]]:
    with ci.db.read() as conn:
        return repo.list_schedules(conn)


@router.get("/events", response_model=EventsPage, tags=["feed"],
            summary="The feed of pipeline and job changes")
async def feed(
    request: Request, claims: Auth, ci: Ci, after: Annotated[int, Query(ge=0, le=2**62)] = 0,
    limit: Limit = 100, wait: Annotated[float, Query(ge=0, le=60)] = 0,
) -> dict[str, Any]:
    claims.require("feeds:read")

    def check() -> list[dict[str, Any]]:
        with ci.db.read() as conn:
            return read_events(conn, events, after, limit)

    found = await long_poll(
        check, ci.notifier, ["events"], wait, disconnected=request.is_disconnected
    )
    found = found or []
    return {"events": found, "last_id": found[-1]["id"] if found else after}
