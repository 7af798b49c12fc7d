"""The store's tables (SQLAlchemy Core): what blobs exist and what refers to them.

A blob row exists exactly when the blob's bytes are in the backend under its digest:
rows are written in the same transaction that moves the bytes into place, and removed
in the one that deletes them. Artifacts, caches and logs refer to blobs by digest
without a foreign key: a blob whose bytes turn out corrupt is dropped while artifacts
and logs keep their reference, so putting the same bytes again heals them.
"""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    BigInteger,
    Column,
    Float,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    UniqueConstraint,
)

__all__ = ["artifacts", "blobs", "caches", "logs", "metadata"]

metadata = MetaData()

blobs = Table(
    "blobs",
    metadata,
    Column("digest", String(64), primary_key=True),
    Column("size", BigInteger, nullable=False),
    Column("created_at", Float, nullable=False),
    Index("ix_blobs_created_at", "created_at"),
)

artifacts = Table(
    "artifacts",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("pipeline_id", BigInteger, nullable=False),
    Column("name", String(255), nullable=False),
    Column("digest", String(64), nullable=False),
    Column("size", BigInteger, nullable=False),
    Column("files", JSON, nullable=False),
    Column("created_at", Float, nullable=False),
    Column("expires_at", Float, nullable=True),
    UniqueConstraint("pipeline_id", "name", name="uq_artifacts_pipeline_name"),
    Index("ix_artifacts_digest", "digest"),
    Index("ix_artifacts_expires_at", "expires_at"),
    sqlite_autoincrement=True,  # ids are never reused, as on PostgreSQL
)

caches = Table(
    "caches",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("repo", String(255), nullable=False),
    Column("key", String(512), nullable=False),
    Column("version", String(512), nullable=False),
    Column("digest", String(64), nullable=False),
    Column("size", BigInteger, nullable=False),
    Column("created_at", Float, nullable=False),
    Column("last_accessed_at", Float, nullable=False),
    UniqueConstraint("repo", "key", "version", name="uq_caches_repo_key_version"),
    Index("ix_caches_digest", "digest"),
    Index("ix_caches_last_accessed_at", "last_accessed_at"),
    sqlite_autoincrement=True,
)

logs = Table(
    "logs",
    metadata,
    Column("job_id", BigInteger, primary_key=True, autoincrement=False),
    Column("digest", String(64), nullable=False),
    Column("size", BigInteger, nullable=False),
    Column("created_at", Float, nullable=False),
    Index("ix_logs_digest", "digest"),
)
