"""A job remembers the claim that took it, so a runner that never heard the answer
(ci died, or the connection broke, after the claim was recorded) gets it again.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-26
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("jobs", sa.Column("claim_id", sa.String(64)))


def downgrade() -> None:
    with op.batch_alter_table("jobs") as batch:  # SQLite drops a column by a copy
        batch.drop_column("claim_id")
