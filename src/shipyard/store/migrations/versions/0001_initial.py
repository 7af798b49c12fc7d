"""The store's first schema: blobs, artifacts, caches, logs.

Revision ID: 0001
Revises:
Create Date: 2024-06-01 00:00:00

"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | Sequence[str] | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Create the tables."""
    op.create_table(
        "blobs",
        sa.Column("digest", sa.String(64), primary_key=True),
        sa.Column("size", sa.BigInteger, nullable=False),
        sa.Column("created_at", sa.Float, nullable=False),
    )
    op.create_index("ix_blobs_created_at", "blobs", ["created_at"])

    op.create_table(
        "artifacts",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("pipeline_id", sa.BigInteger, nullable=False),
        sa.Column("name", sa.String(255), nullable=False),
        sa.Column("digest", sa.String(64), nullable=False),
        sa.Column("size", sa.BigInteger, nullable=False),
        sa.Column("files", sa.JSON, nullable=False),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.Column("expires_at", sa.Float, nullable=True),
        sa.UniqueConstraint("pipeline_id", "name", name="uq_artifacts_pipeline_name"),
        sqlite_autoincrement=True,
    )
    op.create_index("ix_artifacts_digest", "artifacts", ["digest"])
    op.create_index("ix_artifacts_expires_at", "artifacts", ["expires_at"])

    op.create_table(
        "caches",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("repo", sa.String(255), nullable=False),
        sa.Column("key", sa.String(512), nullable=False),
        sa.Column("version", sa.String(512), nullable=False),
        sa.Column("digest", sa.String(64), nullable=False),
        sa.Column("size", sa.BigInteger, nullable=False),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.Column("last_accessed_at", sa.Float, nullable=False),
        sa.UniqueConstraint("repo", "key", "version", name="uq_caches_repo_key_version"),
        sqlite_autoincrement=True,
    )
    op.create_index("ix_caches_digest", "caches", ["digest"])
    op.create_index("ix_caches_last_accessed_at", "caches", ["last_accessed_at"])

    op.create_table(
        "logs",
        sa.Column("job_id", sa.BigInteger, primary_key=True, autoincrement=False),
        sa.Column("digest", sa.String(64), nullable=False),
        sa.Column("size", sa.BigInteger, nullable=False),
        sa.Column("created_at", sa.Float, nullable=False),
    )
    op.create_index("ix_logs_digest", "logs", ["digest"])


def downgrade() -> None:
    """Drop the tables."""
    for table in ("logs", "caches", "artifacts", "blobs"):
        op.drop_table(table)
