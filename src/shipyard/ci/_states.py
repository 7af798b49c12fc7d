"""The lifecycles of pipelines and jobs: every allowed state transition, in one place.

Job::

    waiting ──────────────► queued ──► running ──► completed
       │  (needs met,         │  ▲        │  ▲
       │   concurrency        │  └────────┘  │   (lost job queued again)
       │   group free)        │   running ──► cancelling ──► completed
       └──────────────────────┴──► completed (skipped or cancelled before it ran)

``waiting`` holds a job whose needs are met but whose ``concurrency`` group is busy
(jobs whose needs are not met are not rows yet: their matrix is unknown until then).

Pipeline::

    queued ──► running ──► completed
       └───────────────────► completed (invalid workflow, cancelled or skipped before
                                        any job started)

Anything else is a bug in the caller: :func:`check_job` / :func:`check_pipeline` raise.
"""

from __future__ import annotations

import enum

__all__ = [
    "ACTIVE_JOB_STATES",
    "JOB_TRANSITIONS",
    "PIPELINE_TRANSITIONS",
    "Conclusion",
    "JobStatus",
    "PipelineStatus",
    "check_job",
    "check_pipeline",
]


class JobStatus(enum.StrEnum):
    WAITING = "waiting"
    QUEUED = "queued"
    RUNNING = "running"
    CANCELLING = "cancelling"
    COMPLETED = "completed"


class PipelineStatus(enum.StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    COMPLETED = "completed"


class Conclusion(enum.StrEnum):
    SUCCESS = "success"
    FAILURE = "failure"
    CANCELLED = "cancelled"
    SKIPPED = "skipped"


JOB_TRANSITIONS: dict[JobStatus, frozenset[JobStatus]] = {
    JobStatus.WAITING: frozenset({JobStatus.QUEUED, JobStatus.COMPLETED}),
    JobStatus.QUEUED: frozenset({JobStatus.RUNNING, JobStatus.COMPLETED}),
    JobStatus.RUNNING: frozenset({JobStatus.CANCELLING, JobStatus.COMPLETED, JobStatus.QUEUED}),
    JobStatus.CANCELLING: frozenset({JobStatus.COMPLETED}),
    JobStatus.COMPLETED: frozenset(),
}

PIPELINE_TRANSITIONS: dict[PipelineStatus, frozenset[PipelineStatus]] = {
    PipelineStatus.QUEUED: frozenset({PipelineStatus.RUNNING, PipelineStatus.COMPLETED}),
    PipelineStatus.RUNNING: frozenset({PipelineStatus.COMPLETED}),
    PipelineStatus.COMPLETED: frozenset(),
}

#: Jobs a runner holds or may be handed.
ACTIVE_JOB_STATES = (JobStatus.WAITING, JobStatus.QUEUED, JobStatus.RUNNING, JobStatus.CANCELLING)


def check_job(frm: str, to: JobStatus) -> None:
    """Raise ``RuntimeError`` unless a job may move from ``frm`` to ``to``."""
    if to not in JOB_TRANSITIONS[JobStatus(frm)]:
        raise RuntimeError(f"job cannot go from {frm} to {to.value}")


def check_pipeline(frm: str, to: PipelineStatus) -> None:
    """Raise ``RuntimeError`` unless a pipeline may move from ``frm`` to ``to``."""
    if to not in PIPELINE_TRANSITIONS[PipelineStatus(frm)]:
        raise RuntimeError(f"pipeline cannot go from {frm} to {to.value}")
