"""The ci service's tables: pipelines, jobs, steps, runners, cursors, schedules, events.

Revision ID: 0001
Revises:
Create Date: 2026-11-26
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

ID = sa.BigInteger().with_variant(sa.Integer, "sqlite")


def upgrade() -> None:
    op.create_table(
        "pipelines",
        sa.Column("id", ID, primary_key=True, autoincrement=True),
        sa.Column("repo", sa.String(200), nullable=False),
        sa.Column("workflow", sa.String(500), nullable=False),
        sa.Column("name", sa.String(500), nullable=False),
        sa.Column("event", sa.String(64), nullable=False),
        sa.Column("ref", sa.String(500), nullable=False),
        sa.Column("sha", sa.String(64), nullable=False),
        sa.Column("attempt", sa.Integer, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("conclusion", sa.String(16)),
        sa.Column("inputs", sa.Text, nullable=False),
        sa.Column("contexts", sa.Text, nullable=False),
        sa.Column("errors", sa.Text, nullable=False),
        sa.Column("workflow_text", sa.Text, nullable=False),
        sa.Column("called", sa.Text, nullable=False),
        sa.Column("source_event_id", sa.BigInteger),
        sa.Column("dedupe_key", sa.String(600), unique=True),
        sa.Column("concurrency_group", sa.String(500)),
        sa.Column("cancel_in_progress", sa.Boolean, nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("planned", sa.Boolean, nullable=False),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.Column("started_at", sa.Float),
        sa.Column("finished_at", sa.Float),
    )
    op.create_index("ix_pipelines_repo", "pipelines", ["repo", "id"])
    op.create_index("ix_pipelines_status", "pipelines", ["status"])
    op.create_index("ix_pipelines_sha", "pipelines", ["repo", "sha"])
    op.create_index("ix_pipelines_group", "pipelines", ["concurrency_group", "status"])

    op.create_table(
        "jobs",
        sa.Column("id", ID, primary_key=True, autoincrement=True),
        sa.Column(
            "pipeline_id", ID, sa.ForeignKey("pipelines.id", ondelete="CASCADE"), nullable=False
        ),
        sa.Column("attempt", sa.Integer, nullable=False),
        sa.Column("key", sa.String(500), nullable=False),
        sa.Column("job_id", sa.String(200), nullable=False),
        sa.Column("name", sa.String(500), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("conclusion", sa.String(16)),
        sa.Column("runner_id", ID),
        sa.Column("matrix", sa.Text, nullable=False),
        sa.Column("outputs", sa.Text, nullable=False),
        sa.Column("labels", sa.String(1000), nullable=False),
        sa.Column("needs", sa.Text, nullable=False),
        sa.Column("workflow_path", sa.String(500), nullable=False),
        sa.Column("timeout", sa.Float, nullable=False),
        sa.Column("continue_on_error", sa.Boolean, nullable=False),
        sa.Column("concurrency_group", sa.String(500)),
        sa.Column("cancel_in_progress", sa.Boolean, nullable=False),
        sa.Column("assignment", sa.Text, nullable=False),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.Column("queued_at", sa.Float),
        sa.Column("started_at", sa.Float),
        sa.Column("finished_at", sa.Float),
        sa.Column("heartbeat_at", sa.Float),
        sa.Column("deadline", sa.Float),
        sa.Column("retries", sa.Integer, nullable=False),
        sa.Column("error", sa.Text),
        sa.Column("cancel_reason", sa.String(16)),
        sa.Column("log_base", sa.BigInteger, nullable=False),
        sa.Column("log_size", sa.BigInteger),
        sa.Column("log_job_id", ID),
        sa.Column("archived", sa.Boolean, nullable=False),
        sa.Column("summary", sa.Text, nullable=False),
        sa.Column("annotations", sa.Text, nullable=False),
        sa.UniqueConstraint("pipeline_id", "attempt", "key", name="uq_jobs_key"),
    )
    op.create_index("ix_jobs_claim", "jobs", ["status", "labels", "id"])
    op.create_index("ix_jobs_queue", "jobs", ["status", "id"])
    op.create_index("ix_jobs_pipeline", "jobs", ["pipeline_id", "attempt"])
    op.create_index("ix_jobs_group", "jobs", ["concurrency_group", "status"])
    op.create_index("ix_jobs_archive", "jobs", ["archived", "status"])

    op.create_table(
        "steps",
        sa.Column(
            "job_id", ID, sa.ForeignKey("jobs.id", ondelete="CASCADE"), primary_key=True
        ),
        sa.Column("number", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("name", sa.String(500), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("conclusion", sa.String(16)),
        sa.Column("started_at", sa.Float),
        sa.Column("finished_at", sa.Float),
    )

    op.create_table(
        "runners",
        sa.Column("id", ID, primary_key=True, autoincrement=True),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("labels", sa.Text, nullable=False),
        sa.Column("concurrency", sa.Integer, nullable=False),
        sa.Column("executor", sa.String(32), nullable=False),
        sa.Column("version", sa.String(64), nullable=False),
        sa.Column("jti", sa.String(64), nullable=False),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.Column("last_seen", sa.Float),
        sa.Column("deleted", sa.Boolean, nullable=False),
    )
    op.create_index("ix_runners_name", "runners", ["name"])

    op.create_table(
        "cursors",
        sa.Column("consumer", sa.String(100), primary_key=True),
        sa.Column("last_id", sa.BigInteger, nullable=False),
    )

    op.create_table(
        "schedules",
        sa.Column("id", ID, primary_key=True, autoincrement=True),
        sa.Column("repo", sa.String(200), nullable=False),
        sa.Column("workflow", sa.String(500), nullable=False),
        sa.Column("cron", sa.String(200), nullable=False),
        sa.Column("ref", sa.String(500), nullable=False),
        sa.Column("sha", sa.String(64), nullable=False),
        sa.Column("next_run", sa.Float, nullable=False),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.UniqueConstraint("repo", "workflow", "cron", name="uq_schedules"),
    )

    op.create_table(
        "events",
        sa.Column("id", ID, primary_key=True, autoincrement=True),
        sa.Column("kind", sa.String(64), nullable=False),
        sa.Column("payload", sa.Text, nullable=False),
        sa.Column("created_at", sa.Float, nullable=False),
    )


def downgrade() -> None:
    for table in ("events", "schedules", "cursors", "runners", "steps", "jobs", "pipelines"):
        op.drop_table(table)
