"""Routes of named records: ``/artifacts`` and ``/caches``."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query, Request
from fastapi.responses import Response

from shipyard.service import Auth
from shipyard.store._models import ArtifactCreate, ArtifactOut, CacheCreate, CacheEntryOut
from shipyard.store._parts import parts_of

__all__ = ["router"]

router = APIRouter()

_BIG = 2**63 - 1
_ID = 2**31 - 1
PipelineId = Annotated[int, Path(ge=1, le=_BIG, description="the pipeline's id")]
ArtifactName = Annotated[str, Path(min_length=1, max_length=255)]
Limit = Annotated[int, Query(ge=1, le=500, description="at most this many")]


@router.post(
    "/artifacts", status_code=201, response_model=ArtifactOut, tags=["artifacts"],
    summary="Record an uploaded blob as an artifact of a pipeline",
)  # fmt: skip
def create_artifact(spec: ArtifactCreate, request: Request, claims: Auth) -> ArtifactOut:
    """409 when the name is taken and not ``overwrite``; 400 when the blob is not stored."""
    claims.require(f"pipeline:{spec.pipeline_id}")
    return parts_of(request).records.create_artifact(spec)


@router.get(
    "/artifacts", response_model=list[ArtifactOut], tags=["artifacts"],
    summary="A pipeline's artifacts, oldest first",
)  # fmt: skip
def list_artifacts(
    request: Request,
    claims: Auth,
    pipeline_id: Annotated[int, Query(ge=1, le=_BIG)],
    limit: Limit = 50,
    after: Annotated[int, Query(ge=0, le=_ID, description="only ids above this (paging)")] = 0,
) -> list[ArtifactOut]:
    """Unexpired artifacts of the pipeline; page on with ``after`` = the last id seen."""
    return parts_of(request).records.list_artifacts(pipeline_id, limit=limit, after=after)


@router.get(
    "/artifacts/{pipeline_id}/{name}", response_model=ArtifactOut, tags=["artifacts"],
    summary="One artifact",
)  # fmt: skip
def get_artifact(pipeline_id: PipelineId, name: ArtifactName, request: Request, claims: Auth) -> ArtifactOut:
    """404 when there is none (or it has expired)."""
    return parts_of(request).records.get_artifact(pipeline_id, name)


@router.delete(
    "/artifacts/{pipeline_id}/{name}", status_code=204, response_class=Response,
    tags=["artifacts"], summary="Delete an artifact",
)  # fmt: skip
def delete_artifact(pipeline_id: PipelineId, name: ArtifactName, request: Request, claims: Auth) -> Response:
    """204; 404 when there is none."""
    claims.require(f"pipeline:{pipeline_id}")
    parts_of(request).records.delete_artifact(pipeline_id, name)
    return Response(status_code=204)


@router.get(
    "/caches/lookup", response_model=CacheEntryOut, tags=["caches"],
    summary="Find the cache entry to restore",
    responses={204: {"description": "no entry matches"}},
)  # fmt: skip
def lookup_cache(
    request: Request,
    claims: Auth,
    repo: Annotated[str, Query(min_length=1, max_length=255)],
    key: Annotated[str, Query(min_length=1, max_length=512)],
    version: Annotated[str, Query(min_length=1, max_length=512)],
    restore_keys: Annotated[list[str], Query(max_length=64)] = [],  # noqa: B006 - FastAPI copies it
) -> CacheEntryOut | Response:
    """Exact key, then the newest entry starting with the key, then with each restore key."""
    claims.require(f"cache:{repo}")
    entry = parts_of(request).records.lookup_cache(repo, key, restore_keys, version)
    return Response(status_code=204) if entry is None else entry


@router.post(
    "/caches", status_code=201, response_model=CacheEntryOut, tags=["caches"],
    summary="Record an uploaded blob as a cache entry",
)  # fmt: skip
def save_cache(spec: CacheCreate, request: Request, claims: Auth) -> CacheEntryOut:
    """409 when (repo, key, version) exists: entries are immutable. Evicts past the limit."""
    claims.require(f"cache:{spec.repo}")
    return parts_of(request).records.save_cache(spec)


@router.get(
    "/caches", response_model=list[CacheEntryOut], tags=["caches"],
    summary="Cache entries, newest first",
)  # fmt: skip
def list_caches(
    request: Request,
    claims: Auth,
    repo: Annotated[str | None, Query(min_length=1, max_length=255)] = None,
    limit: Limit = 50,
    before: Annotated[int | None, Query(ge=1, le=_ID, description="only ids below this (paging)")] = None,
) -> list[CacheEntryOut]:
    """Of one repository, or of all; page on with ``before`` = the last id seen."""
    return parts_of(request).records.list_caches(repo, limit=limit, before=before)


@router.delete(
    "/caches/{entry_id}", status_code=204, response_class=Response, tags=["caches"],
    summary="Delete a cache entry",
)  # fmt: skip
def delete_cache(
    entry_id: Annotated[int, Path(ge=1, le=_ID)], request: Request, claims: Auth
) -> Response:
    """204; 404 when there is none."""
    claims.require("admin")
    parts_of(request).records.delete_cache(entry_id)
    return Response(status_code=204)
