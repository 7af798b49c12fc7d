"""Request and response bodies of the git service's HTTP API."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

__all__ = [
    "CommitOut",
    "CompareOut",
    "EventOut",
    "EventsOut",
    "FilesOut",
    "PersonOut",
    "RefsOut",
    "RepoCreate",
    "RepoOut",
    "TreeEntryOut",
    "TreeOut",
]


class RepoCreate(BaseModel):
    """``POST /repos``."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(description="'name' or 'owner/name'", max_length=201)
    description: str = Field("", max_length=4096)


class RepoOut(BaseModel):
    """A repository."""

    name: str
    description: str
    created_at: float
    default_branch: str
    clone_url: str


class RefsOut(BaseModel):
    refs: dict[str, str] = Field(description="every ref (branches, tags, others) and its sha")
    head: str | None = Field(description="the ref HEAD points at; null when HEAD is detached")


class PersonOut(BaseModel):
    name: str
    email: str
    date: float = Field(description="Unix seconds")


class CommitOut(BaseModel):
    sha: str
    tree: str
    parents: list[str]
    message: str
    author: PersonOut
    committer: PersonOut


class TreeEntryOut(BaseModel):
    path: str = Field(description="from the repository's root")
    type: Literal["blob", "tree", "commit"]
    mode: str
    sha: str
    size: int | None = Field(description="bytes of a blob; null for trees and submodules")


class TreeOut(BaseModel):
    sha: str = Field(description="the tree listed")
    commit: str = Field(description="the commit the revision resolved to")
    entries: list[TreeEntryOut]


class FilesOut(BaseModel):
    sha: str = Field(description="the commit the revision resolved to")
    files: dict[str, str] = Field(description="path to base64 contents")


class CompareOut(BaseModel):
    base: str
    head: str
    files: list[str] = Field(description="paths changed from base to head")


class EventOut(BaseModel):
    id: int
    kind: str
    payload: dict[str, Any]
    created_at: float


class EventsOut(BaseModel):
    events: list[EventOut]
    last_id: int = Field(description="the cursor to pass as 'after' next")
