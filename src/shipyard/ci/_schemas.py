"""Request and response models of the ci API (docs/api.md, section ci)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import Path
from pydantic import AfterValidator, BaseModel, ConfigDict, Field

__all__ = [
    "Assignment",
    "ClaimRequest",
    "CompleteRequest",
    "Completed",
    "DispatchRequest",
    "DrainRequest",
    "EventsPage",
    "Heartbeat",
    "Id",
    "Job",
    "LogSize",
    "Pipeline",
    "RegisterRequest",
    "Registered",
    "RerunRequest",
    "Runner",
    "Schedule",
    "Statuses",
    "Step",
    "StepUpdate",
    "StepsRequest",
    "TokenResponse",
]

#: A path id: positive and small enough for every database's integer.
Id = Annotated[int, Path(ge=1, le=2**53)]

JobConclusion = Literal["success", "failure", "cancelled", "skipped"]
Label = Annotated[str, Field(min_length=1, max_length=100)]


class _In(BaseModel):
    model_config = ConfigDict(extra="ignore")


class Step(BaseModel):
    number: int
    name: str
    status: str
    conclusion: str | None = None
    started_at: float | None = None
    finished_at: float | None = None


class Job(BaseModel):
    id: int
    pipeline_id: int
    attempt: int
    key: str
    job_id: str
    name: str
    status: str
    conclusion: str | None = None
    runner_id: int | None = None
    matrix: dict[str, Any]
    outputs: dict[str, Any]
    needs: list[str]
    labels: list[str] = []
    created_at: float
    started_at: float | None = None
    finished_at: float | None = None
    steps: list[Step] = []
    error: str | None = None
    log_complete: bool = Field(
        False,
        description="The job has completed and ci holds its whole log (a runner may send "
        "the end of the log after the completion).",
    )


class Pipeline(BaseModel):
    id: int
    repo: str
    workflow: str
    name: str
    event: str
    ref: str
    sha: str
    attempt: int
    status: str
    conclusion: str | None = None
    inputs: dict[str, Any] = {}
    created_at: float
    started_at: float | None = None
    finished_at: float | None = None
    jobs: list[Job] = []
    errors: list[str] = []


class RerunRequest(_In):
    failed_only: bool = True


class DispatchRequest(_In):
    repo: str = Field(min_length=1, max_length=200)
    workflow: str = Field(min_length=1, max_length=500)
    ref: str = Field(min_length=1, max_length=500)
    inputs: dict[str, str | bool | int | float | None] = Field(default_factory=dict)


class StatusEntry(BaseModel):
    context: str
    state: str
    pipeline_id: int
    description: str
    updated_at: float


class Statuses(BaseModel):
    sha: str
    state: Literal["pending", "success", "failure", "error"]
    statuses: list[StatusEntry]


class Schedule(BaseModel):
    id: int
    repo: str
    workflow: str
    cron: str
    ref: str
    sha: str
    next_run: float
    created_at: float


class Event(BaseModel):
    id: int
    kind: str
    payload: dict[str, Any]
    created_at: float


class EventsPage(BaseModel):
    events: list[Event]
    last_id: int


class TokenResponse(BaseModel):
    token: str


class RegisterRequest(_In):
    name: str = Field(min_length=1, max_length=200, pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
    labels: list[Label] = Field(default_factory=list, max_length=64)
    concurrency: int = Field(1, ge=1, le=256)
    executor: str = Field("local", max_length=32)
    version: str = Field("", max_length=64)


class Registered(BaseModel):
    id: int
    token: str
    heartbeat_interval: float
    claim_wait: float


class Runner(BaseModel):
    id: int
    name: str
    labels: list[str]
    concurrency: int
    executor: str
    version: str
    status: Literal["online", "offline", "draining"]
    busy: int
    last_seen: float | None = None
    created_at: float


class DrainRequest(_In):
    """``POST /runners/drain`` takes no fields: the body may be ``{}`` or left out."""


class ClaimRequest(_In):
    wait: float = Field(0.0, ge=0, le=60)
    slots: int = Field(1, ge=0, le=1024)
    # The runner's id for this claim, kept while it asks again after getting no answer
    # (``again``): a job the lost answer carried is then handed out once more.
    claim_id: str | None = Field(None, min_length=8, max_length=64, pattern=r"^[A-Za-z0-9_-]+$")
    again: bool = False


class WorkflowText(BaseModel):
    path: str
    text: str


class Assignment(BaseModel):
    job_id: int
    pipeline_id: int
    attempt: int
    key: str
    name: str
    repo: str
    sha: str
    ref: str
    clone_url: str
    token: str
    workflow: WorkflowText
    job: str
    contexts: dict[str, Any]
    labels: list[str]
    continue_on_error: bool
    timeout_minutes: float
    run_id: str
    run_attempt: int


class Heartbeat(BaseModel):
    cancel: bool


class LogSize(BaseModel):
    size: int


class StepUpdate(_In):
    number: int = Field(ge=0, le=100_000)
    name: str = Field("", max_length=500)
    status: Literal["in_progress", "completed"]
    conclusion: JobConclusion | None = None
    started_at: float | None = None
    finished_at: float | None = None


def _distinct(steps: list[StepUpdate]) -> list[StepUpdate]:
    if len({s.number for s in steps}) != len(steps):
        raise ValueError("each step number may appear once")
    return steps


StepList = Annotated[list[StepUpdate], Field(max_length=10_000), AfterValidator(_distinct)]


class StepsRequest(_In):
    steps: StepList


class Completed(BaseModel):
    """The job's state once the completion is recorded."""

    id: int
    pipeline_id: int
    status: str
    conclusion: str | None = None
    error: str | None = None
    log_complete: bool = Field(
        True, description="ci holds the whole log; false while the rest is awaited"
    )


class CompleteRequest(_In):
    conclusion: JobConclusion
    outputs: dict[str, str] = Field(default_factory=dict)
    steps: StepList = Field(default_factory=list)
    log_size: int | None = Field(
        None, ge=0, le=2**53, strict=True,
        description="The size (bytes, in the offsets of the appends) this runner's log of "
        "the job has once all of it is sent. More than ci holds: the job ends now, and ci "
        "takes appends up to this size, then closes the log. Left out: the log is "
        "complete as ci holds it.",
    )
    error: str | None = Field(None, max_length=100_000)
    summary: str = Field("", max_length=1_000_000)
    annotations: list[dict[str, Any]] = Field(default_factory=list, max_length=10_000)
