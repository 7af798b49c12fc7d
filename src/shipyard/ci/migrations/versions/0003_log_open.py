"""A job's log can stay open after the job completed, until the runner has sent it all.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-10
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Jobs already there have their whole log: closed.
    op.add_column(
        "jobs", sa.Column("log_open", sa.Boolean, nullable=False, server_default=sa.false())
    )
    # The watchdog looks for open logs every tick: few rows, found by the index.
    op.create_index("ix_jobs_log_open", "jobs", ["log_open"])


def downgrade() -> None:
    op.drop_index("ix_jobs_log_open", table_name="jobs")
    with op.batch_alter_table("jobs") as batch:  # SQLite drops a column by a copy
        batch.drop_column("log_open")
