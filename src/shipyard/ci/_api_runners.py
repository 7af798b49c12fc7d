"""The runner protocol: registration, claims, heartbeats, logs, steps, completion.

A job costs a runner three requests: claim, log (one or more appends; a short job's
whole log fits in one), complete (with its steps). Heartbeats come every
``heartbeat_interval`` only while a job runs longer than that. A completion may come
before the end of a long log (its ``log_size`` says how long): the job ends at once and
the log closes when the rest has come (:mod:`shipyard.ci._joblogs`).

A runner that stops drains first: its pending claim ends at once with 204 and no later
claim gets a job, so it can exit without waiting out a long poll or losing a job.
"""

from __future__ import annotations

import functools
import json
from typing import Annotated, Any

import anyio
from fastapi import APIRouter, Body, Depends, Query, Request
from fastapi.responses import JSONResponse, Response

from shipyard.ci import _repo as repo
from shipyard.ci._logs import LogGap
from shipyard.ci._queue import RunnerDraining, token_pipeline
from shipyard.ci._schemas import (
    Assignment,
    ClaimRequest,
    Completed,
    CompleteRequest,
    DrainRequest,
    Heartbeat,
    Id,
    LogSize,
    Registered,
    RegisterRequest,
    Runner,
    StepsRequest,
    TokenResponse,
)
from shipyard.ci._state import CiState, ci_of
from shipyard.service import Auth, long_poll

__all__ = ["router"]

router = APIRouter(tags=["runners"])
Ci = Annotated[CiState, Depends(ci_of)]


Caller = Auth  # authenticate runs on the event loop: a few microseconds of HMAC


@router.post("/runners/registration-token", status_code=201, response_model=TokenResponse,
             summary="A token to register runners with (admin)")
def registration_token(claims: Auth, ci: Ci) -> dict[str, str]:
    claims.require("admin")
    return {"token": ci.queue.registration_token()}


@router.post("/runners/register", status_code=201, response_model=Registered,
             summary="Register a runner; answers its id and token")
def register(body: RegisterRequest, claims: Auth, ci: Ci) -> dict[str, Any]:
    claims.require("register")
    return ci.queue.register(body.name, body.labels, body.concurrency, body.executor, body.version)


@router.get("/runners", response_model=list[Runner], summary="Runners and their state")
def list_runners(claims: Auth, ci: Ci) -> list[dict[str, Any]]:
    return ci.queue.list_runners()


@router.delete("/runners/{runner_id}", status_code=204, summary="Remove a runner (admin)")
def delete_runner(runner_id: Id, claims: Auth, ci: Ci) -> Response:
    claims.require("admin")
    ci.queue.delete_runner(runner_id)
    return Response(status_code=204)


@router.post("/runners/drain", status_code=204,
             summary="The runner is stopping: end its claims now and give it no more jobs")
def drain(claims: Auth, ci: Ci, body: Annotated[DrainRequest | None, Body()] = None) -> Response:
    runner_id = ci.queue.set_draining(claims, True)
    ci.notifier.notify(f"runner:{runner_id}")
    return Response(status_code=204)


@router.post("/runners/resume", status_code=204,
             summary="Undo a drain: the runner's claims get jobs again")
def resume(claims: Auth, ci: Ci, body: Annotated[DrainRequest | None, Body()] = None) -> Response:
    ci.queue.set_draining(claims, False)
    return Response(status_code=204)


@router.post("/runners/claim", response_model=Assignment,
             responses={204: {"description": "no job within the wait, or the runner drains"}},
             summary="Long-poll for a job this runner can run")
async def claim(request: Request, body: ClaimRequest, claims: Caller, ci: Ci) -> Any:
    try:
        runner, assignment = await anyio.to_thread.run_sync(
            ci.queue.first_claim, claims, body.slots, body.claim_id, body.again
        )
        if assignment is None and body.slots > 0 and body.wait > 0:
            assignment = await long_poll(
                functools.partial(ci.queue.try_claim, runner, body.claim_id), ci.notifier,
                ["jobs", f"runner:{runner.id}"], body.wait, disconnected=request.is_disconnected,
            )
    except RunnerDraining:
        return Response(status_code=204)
    if not assignment:
        return Response(status_code=204)
    ci.notifier.notify("events")
    # Built by ci itself: sent as is, without a second pass through the model.
    return Response(json.dumps(assignment, separators=(",", ":")), media_type="application/json")


@router.post("/jobs/{job_id}/heartbeat", response_model=Heartbeat,
             summary="A running job is alive; answers whether to cancel it")
async def heartbeat(job_id: Id, claims: Caller, ci: Ci) -> dict[str, bool]:
    return {"cancel": await anyio.to_thread.run_sync(ci.queue.heartbeat, claims, job_id)}


@router.post("/jobs/{job_id}/log", response_model=LogSize,
             responses={409: {"description": "offset past the log's end; body has its size"}},
             summary="Append to a job's log at a byte offset")
async def append_log(
    job_id: Id, request: Request, claims: Caller, ci: Ci,
    offset: Annotated[int, Query(ge=0, le=2**53)] = 0,
) -> Any:
    generation = ci.queue.authorize_job(claims, job_id)
    # The pieces as they came, written with one writev: a large append is never joined.
    data = [chunk async for chunk in request.stream() if chunk]

    def append() -> int:
        state = ci.queue.job_for_log(job_id, generation)
        return ci.engine.joblogs.append(job_id, state, offset, data)

    try:
        size = await anyio.to_thread.run_sync(append)
    except LogGap as gap:
        message = f"the log holds {gap.size} bytes; send from offset {gap.size}"
        return JSONResponse({"error": message, "size": gap.size}, status_code=409)
    ci.notifier.notify(f"log:{job_id}")
    return {"size": size}


@router.post("/jobs/{job_id}/steps", status_code=204, summary="Insert or update steps by number")
def update_steps(job_id: Id, body: StepsRequest, claims: Auth, ci: Ci) -> Response:
    generation = ci.queue.authorize_job(claims, job_id)
    ci.queue.job_for_log(job_id, generation)  # refuses a stale hand-out
    with ci.db.write() as conn:
        repo.upsert_steps(conn, job_id, [s.model_dump() for s in body.steps])
    return Response(status_code=204)


@router.post("/jobs/{job_id}/complete", response_model=Completed,
             summary="End a job (idempotent: a repeat changes nothing); with a log_size "
                     "beyond what ci holds, its log stays open for the rest")
async def complete(
    job_id: Id, body: CompleteRequest, claims: Caller, ci: Ci
) -> dict[str, Any]:
    generation = ci.queue.authorize_job(claims, job_id)

    def work() -> dict[str, Any]:
        if body.log_size is None or body.log_size <= ci.logs.size(job_id):
            # The log is (likely) final: flush it before the pipeline's lock, as a disk
            # flush may take a while. An open log is flushed when it closes.
            ci.logs.sync(job_id)
        return ci.engine.complete_job(
            job_id, body.conclusion, body.outputs, body.error, generation=generation,
            log_size=body.log_size, summary=body.summary, annotations=body.annotations,
            steps=[s.model_dump() for s in body.steps], pipeline_id=token_pipeline(claims),
        )

    return await anyio.to_thread.run_sync(work)
