"""The git service's tables (SQLAlchemy Core); ``migrations/`` creates the same schema."""

from __future__ import annotations

from sqlalchemy import Column, Float, ForeignKey, MetaData, String, Table, Text

from shipyard.service import events_table

__all__ = ["events", "metadata", "refs", "repos"]

metadata = MetaData()

#: One row per repository; its bare repository is ``<data_dir>/repos/<name>.git``.
repos = Table(
    "repos",
    metadata,
    Column("name", String(255), primary_key=True),
    Column("description", Text, nullable=False),
    Column("created_at", Float, nullable=False),
    Column("default_branch", String(255), nullable=False),
)

#: The last *recorded* state of each ref: what the ``ref.updated`` events so far add up
#: to. Comparing it with the refs on disk finds the changes not yet recorded.
refs = Table(
    "refs",
    metadata,
    Column("repo", String(255), ForeignKey("repos.name", ondelete="CASCADE"), primary_key=True),
    Column("ref", String(1024), primary_key=True),
    Column("sha", String(64), nullable=False),
)

#: The feed: ``ref.updated``, ``repo.created``, ``repo.deleted``.
events = events_table(metadata)
