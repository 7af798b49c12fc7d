"""The data an engine operation works with: new pipelines, follow-ups, the context."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Connection, Row

from shipyard.ci._plans import ActivePlan
from shipyard.workflow._model import Workflow

__all__ = ["FollowUps", "NewPipeline", "OpContext"]


@dataclass(slots=True)
class NewPipeline:
    """A pipeline to create: a workflow file at a commit, for an event."""

    repo: str
    workflow: str  # path of the file
    name: str
    event: str
    ref: str
    sha: str
    text: str = ""
    called: dict[str, str] = field(default_factory=dict)
    inputs: dict[str, Any] = field(default_factory=dict)
    github: dict[str, Any] = field(default_factory=dict)  # the github context but run ids
    vars: dict[str, Any] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)
    dedupe_key: str | None = None
    source_event_id: int | None = None
    parsed: Workflow | None = None


@dataclass(slots=True)
class FollowUps:
    """What an operation leaves to do once it has committed."""

    topics: set[str] = field(default_factory=set)
    cancel_jobs: list[int] = field(default_factory=list)
    cancel_pipelines: list[int] = field(default_factory=list)
    job_groups: set[str] = field(default_factory=set)
    pipeline_groups: set[str] = field(default_factory=set)
    finished_jobs: list[int] = field(default_factory=list)


@dataclass(slots=True)
class OpContext:
    conn: Connection
    row: Row[Any]
    ap: ActivePlan | None
    fu: FollowUps
    now: float
    evict: bool = False
