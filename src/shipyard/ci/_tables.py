"""The ci service's tables (SQLAlchemy Core); migrations/versions/ create them.

JSON columns are ``Text`` holding JSON, the same on SQLite and PostgreSQL.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
)

from shipyard.service import events_table

__all__ = ["cursors", "events", "jobs", "metadata", "pipelines", "runners", "schedules", "steps"]

metadata = MetaData()

_ID = BigInteger().with_variant(Integer, "sqlite")

pipelines = Table(
    "pipelines",
    metadata,
    Column("id", _ID, primary_key=True, autoincrement=True),
    Column("repo", String(200), nullable=False),
    Column("workflow", String(500), nullable=False),
    Column("name", String(500), nullable=False),
    Column("event", String(64), nullable=False),
    Column("ref", String(500), nullable=False),
    Column("sha", String(64), nullable=False),
    Column("attempt", Integer, nullable=False, default=1),
    Column("status", String(16), nullable=False),
    Column("conclusion", String(16)),
    Column("inputs", Text, nullable=False, default="{}"),
    Column("contexts", Text, nullable=False, default="{}"),
    Column("errors", Text, nullable=False, default="[]"),
    # The workflow file, and the local reusable workflows it calls ({uses: text}), as
    # they were at ``sha``: a plan is rebuilt from these, never from git.
    Column("workflow_text", Text, nullable=False, default=""),
    Column("called", Text, nullable=False, default="{}"),
    Column("source_event_id", BigInteger),
    # One pipeline per (git event, workflow) or (schedule minute, workflow).
    Column("dedupe_key", String(600), unique=True),
    Column("concurrency_group", String(500)),
    Column("cancel_in_progress", Boolean, nullable=False, default=False),
    # Bumped by every operation on the pipeline, so a replica knows its plan is stale.
    Column("version", Integer, nullable=False, default=0),
    # Whether its plan has started (false while it waits for its concurrency group).
    Column("planned", Boolean, nullable=False, default=False),
    Column("created_at", Float, nullable=False),
    Column("started_at", Float),
    Column("finished_at", Float),
    Index("ix_pipelines_repo", "repo", "id"),
    Index("ix_pipelines_status", "status"),
    Index("ix_pipelines_sha", "repo", "sha"),
    Index("ix_pipelines_group", "concurrency_group", "status"),
)

jobs = Table(
    "jobs",
    metadata,
    Column("id", _ID, primary_key=True, autoincrement=True),
    Column("pipeline_id", _ID, ForeignKey("pipelines.id", ondelete="CASCADE"), nullable=False),
    Column("attempt", Integer, nullable=False),
    Column("key", String(500), nullable=False),
    Column("job_id", String(200), nullable=False),
    Column("name", String(500), nullable=False),
    Column("status", String(16), nullable=False),
    Column("conclusion", String(16)),
    Column("runner_id", _ID),
    Column("matrix", Text, nullable=False, default="{}"),
    Column("outputs", Text, nullable=False, default="{}"),
    # Normalised (lower case, sorted) JSON list: equal label sets compare equal.
    Column("labels", String(1000), nullable=False, default="[]"),
    Column("needs", Text, nullable=False, default="[]"),
    Column("workflow_path", String(500), nullable=False, default=""),
    Column("timeout", Float, nullable=False, default=21600.0),
    Column("continue_on_error", Boolean, nullable=False, default=False),
    Column("concurrency_group", String(500)),
    Column("cancel_in_progress", Boolean, nullable=False, default=False),
    Column("assignment", Text, nullable=False, default="{}"),
    Column("created_at", Float, nullable=False),
    Column("queued_at", Float),
    Column("started_at", Float),
    Column("finished_at", Float),
    Column("heartbeat_at", Float),
    Column("deadline", Float),
    Column("retries", Integer, nullable=False, default=0),
    Column("error", Text),
    Column("cancel_reason", String(16)),
    # A retried (lost) job's log goes on after what the first runner wrote: the new
    # runner's offsets count from ``log_base``.
    Column("log_base", BigInteger, nullable=False, default=0),
    # The size the log has, or will have once the runner has sent the rest (absolute).
    Column("log_size", BigInteger),
    # Completed, but the log short of ``log_size``: the runner is still sending it
    # (migration 0003). Appends are taken up to ``log_size``; then the log is closed.
    Column("log_open", Boolean, nullable=False, default=False),
    Column("log_job_id", _ID),  # a job kept by a rerun shows the log of the job it copies
    # The runner's id for the claim that took the job (migration 0004): a runner that
    # asks again with it, not having heard the answer, gets the job again.
    Column("claim_id", String(64)),
    Column("archived", Boolean, nullable=False, default=False),
    Column("summary", Text, nullable=False, default=""),
    Column("annotations", Text, nullable=False, default="[]"),
    UniqueConstraint("pipeline_id", "attempt", "key", name="uq_jobs_key"),
    Index("ix_jobs_claim", "status", "labels", "id"),
    Index("ix_jobs_queue", "status", "id"),
    Index("ix_jobs_pipeline", "pipeline_id", "attempt"),
    Index("ix_jobs_group", "concurrency_group", "status"),
    Index("ix_jobs_archive", "archived", "status"),
    Index("ix_jobs_log_open", "log_open"),
)

steps = Table(
    "steps",
    metadata,
    Column("job_id", _ID, ForeignKey("jobs.id", ondelete="CASCADE"), primary_key=True),
    Column("number", Integer, primary_key=True, autoincrement=False),
    Column("name", String(500), nullable=False),
    Column("status", String(16), nullable=False),
    Column("conclusion", String(16)),
    Column("started_at", Float),
    Column("finished_at", Float),
)

runners = Table(
    "runners",
    metadata,
    Column("id", _ID, primary_key=True, autoincrement=True),
    Column("name", String(200), nullable=False),
    Column("labels", Text, nullable=False, default="[]"),
    Column("concurrency", Integer, nullable=False, default=1),
    Column("executor", String(32), nullable=False, default="local"),
    Column("version", String(64), nullable=False, default=""),
    Column("jti", String(64), nullable=False),  # the id of its one valid token
    Column("created_at", Float, nullable=False),
    Column("last_seen", Float),
    Column("deleted", Boolean, nullable=False, default=False),
    # Set by the runner as it stops (migration 0002): no claim of it is given a job.
    Column("draining", Boolean, nullable=False, default=False),
    Index("ix_runners_name", "name"),
)

cursors = Table(
    "cursors",
    metadata,
    Column("consumer", String(100), primary_key=True),
    Column("last_id", BigInteger, nullable=False),
)

schedules = Table(
    "schedules",
    metadata,
    Column("id", _ID, primary_key=True, autoincrement=True),
    Column("repo", String(200), nullable=False),
    Column("workflow", String(500), nullable=False),
    Column("cron", String(200), nullable=False),
    Column("ref", String(500), nullable=False),
    Column("sha", String(64), nullable=False),
    Column("next_run", Float, nullable=False),
    Column("created_at", Float, nullable=False),
    UniqueConstraint("repo", "workflow", "cron", name="uq_schedules"),
)

events = events_table(metadata)
