"""The store's request and response bodies (its OpenAPI schemas)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

__all__ = [
    "ArtifactCreate",
    "ArtifactOut",
    "BlobOut",
    "CacheCreate",
    "CacheEntryOut",
    "LogOut",
]

DIGEST_PATTERN = r"^[0-9a-f]{64}$"
MAX_RETENTION_DAYS = 90


class _Request(BaseModel):
    model_config = ConfigDict(extra="forbid")


class BlobOut(BaseModel):
    """A stored blob."""

    digest: str
    size: int


class ArtifactCreate(_Request):
    """A new artifact: a blob already uploaded, named within a pipeline."""

    pipeline_id: int = Field(ge=1, le=2**63 - 1)
    name: str = Field(min_length=1, max_length=255)
    digest: str = Field(pattern=DIGEST_PATTERN, description="sha256 of the artifact's zip")
    size: int = Field(ge=0, description="bytes of the zip; must match the stored blob")
    files: list[str] = Field(default_factory=list, description="relative paths in the zip")
    retention_days: int | None = Field(
        None, ge=1, le=MAX_RETENTION_DAYS, description="days to keep it; kept until deleted when absent"
    )
    overwrite: bool = Field(False, description="replace an artifact of the same name")


class ArtifactOut(BaseModel):
    """An artifact of a pipeline."""

    id: int
    pipeline_id: int
    name: str
    digest: str
    size: int
    files: list[str]
    created_at: float
    expires_at: float | None


class CacheCreate(_Request):
    """A new cache entry: a blob already uploaded, under (repo, key, version)."""

    repo: str = Field(min_length=1, max_length=255)
    key: str = Field(min_length=1, max_length=512)
    version: str = Field(min_length=1, max_length=512)
    digest: str = Field(pattern=DIGEST_PATTERN, description="sha256 of the cache archive")
    size: int = Field(ge=0, description="bytes of the archive; must match the stored blob")


class CacheEntryOut(BaseModel):
    """A saved cache entry."""

    id: int
    repo: str
    key: str
    version: str
    digest: str
    size: int
    created_at: float
    last_accessed_at: float


class LogOut(BaseModel):
    """Where a job's log is kept."""

    job_id: int
    digest: str
    size: int
