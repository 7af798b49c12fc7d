"""Runners can be draining: stopping, so that no claim of theirs is given a job.

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-03
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # The server default fills the rows already there; new rows get the value ci writes.
    op.add_column(
        "runners", sa.Column("draining", sa.Boolean, nullable=False, server_default=sa.false())
    )


def downgrade() -> None:
    with op.batch_alter_table("runners") as batch:  # SQLite drops a column by a copy
        batch.drop_column("draining")
