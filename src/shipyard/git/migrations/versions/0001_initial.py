"""The git service's tables: repos, refs, events.

Revision ID: 0001
Revises:
Create Date: 2025-01-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "repos",
        sa.Column("name", sa.String(255), primary_key=True),
        sa.Column("description", sa.Text, nullable=False),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.Column("default_branch", sa.String(255), nullable=False),
    )
    op.create_table(
        "refs",
        sa.Column("repo", sa.String(255), sa.ForeignKey("repos.name", ondelete="CASCADE"), primary_key=True),
        sa.Column("ref", sa.String(1024), primary_key=True),
        sa.Column("sha", sa.String(64), nullable=False),
    )
    op.create_table(
        "events",
        sa.Column(
            "id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True, autoincrement=True
        ),
        sa.Column("kind", sa.String(64), nullable=False),
        sa.Column("payload", sa.Text, nullable=False),
        sa.Column("created_at", sa.Float, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("events")
    op.drop_table("refs")
    op.drop_table("repos")
