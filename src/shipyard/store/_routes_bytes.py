"""Routes that move bytes: ``/blobs/{sha256}`` and ``/logs/{job_id}``."""

from __future__ import annotations

from functools import partial
from typing import Annotated

import anyio.to_thread
from fastapi import APIRouter, Header, Path, Request
from fastapi.responses import JSONResponse, Response
from starlette.requests import ClientDisconnect

from shipyard.errors import InvalidRequestError, NotFoundError
from shipyard.service import Auth, error_body
from shipyard.store._blobs import StagedBlob, check_digest
from shipyard.store._models import BlobOut, LogOut
from shipyard.store._parts import StoreParts, parts_of
from shipyard.store._responses import BlobResponse, RangeNotSatisfiable, parse_range

__all__ = ["router"]

router = APIRouter()

JobId = Annotated[int, Path(ge=1, le=2**63 - 1, description="the job's id")]
RangeHeader = Annotated[
    str | None, Header(alias="range", description="bytes=START-END, bytes=START- or bytes=-COUNT")
]

_BYTES: dict[str, object] = {"content": {"application/octet-stream": {}}}
_TEXT: dict[str, object] = {"content": {"text/plain": {}}}
_READ_RESPONSES: dict[int | str, dict[str, object]] = {
    200: {"description": "the bytes", **_BYTES},
    206: {"description": "the range of bytes asked for", **_BYTES},
    404: {"description": "not stored"},
    416: {"description": "the range is outside the blob"},
}
# A log is served as text (``text/plain; charset=utf-8``), not as bytes.
_LOG_RESPONSES: dict[int | str, dict[str, object]] = {
    **_READ_RESPONSES,
    200: {"description": "the log", **_TEXT},
    206: {"description": "the range of the log asked for", **_TEXT},
}


async def _receive(parts: StoreParts, request: Request, expected: str | None) -> StagedBlob:
    try:
        return await parts.backend.stage(request.stream(), expected)
    except ClientDisconnect:
        raise InvalidRequestError(
            "the client went away before sending the whole body; nothing was stored"
        ) from None


async def _serve(
    parts: StoreParts,
    digest: str,
    range_header: str | None,
    headers: dict[str, str],
    media_type: str | None = None,
    what: str = "",
) -> Response:
    what = what or f"blob {digest}"
    info = await anyio.to_thread.run_sync(parts.catalog.get, digest)
    if info is None:
        raise NotFoundError(f"{what} is not stored")
    try:
        byte_range = parse_range(range_header, info.size)
    except RangeNotSatisfiable as err:
        return JSONResponse(
            error_body(str(err)), status_code=416, headers={"content-range": f"bytes */{info.size}"}
        )
    start, length = (0, info.size) if byte_range is None else (byte_range.start, byte_range.length)
    reader = await anyio.to_thread.run_sync(parts.catalog.open, digest, start, length)
    if reader is None:
        raise NotFoundError(f"{what} is not stored (its bytes are missing)")
    return BlobResponse(
        reader,
        digest=digest,
        size=info.size,
        byte_range=byte_range,
        on_corrupt=partial(parts.catalog.quarantine, digest),
        headers=headers,
        media_type=media_type,
    )


@router.put(
    "/blobs/{digest}",
    status_code=201,
    response_model=BlobOut,
    tags=["blobs"],
    summary="Upload a blob under its sha256",
    openapi_extra={"requestBody": {"required": True, "content": {"application/octet-stream": {}}}},
    responses={200: {"description": "already stored", "model": BlobOut},
               400: {"description": "the bytes do not match the digest; nothing kept"}},
)  # fmt: skip
async def put_blob(digest: str, request: Request, claims: Auth) -> Response:
    """Stream the body to storage, checking its digest; 201 stored, 200 already there."""
    check_digest(digest)
    parts = parts_of(request)
    staged = await _receive(parts, request, digest)
    created = await anyio.to_thread.run_sync(parts.catalog.add, staged)
    body = BlobOut(digest=staged.digest, size=staged.size).model_dump()
    return JSONResponse(body, status_code=201 if created else 200)


@router.head(
    "/blobs/{digest}", tags=["blobs"], summary="Whether a blob is stored, and its size",
    response_class=Response,
    responses={200: {"description": "stored; Content-Length is its size", **_BYTES},
               404: {"description": "not stored"}},
)  # fmt: skip
async def head_blob(digest: str, request: Request, claims: Auth) -> Response:
    """200 with the blob's size as ``Content-Length``, or 404."""
    check_digest(digest)
    info = await anyio.to_thread.run_sync(parts_of(request).catalog.get, digest)
    if info is None:
        raise NotFoundError(f"blob {digest} is not stored")
    return Response(
        status_code=200,
        headers={"content-length": str(info.size), "accept-ranges": "bytes", "etag": f'"{digest}"'},
        media_type="application/octet-stream",
    )


@router.get(
    "/blobs/{digest}", tags=["blobs"], summary="Download a blob, or a range of it",
    response_class=Response, responses=_READ_RESPONSES,
)  # fmt: skip
async def get_blob(digest: str, request: Request, claims: Auth, range_header: RangeHeader = None) -> Response:
    """The bytes, checked against the digest as they are read (a mismatch cuts the response)."""
    check_digest(digest)
    headers = {"etag": f'"{digest}"', "cache-control": "private, max-age=31536000, immutable"}
    return await _serve(parts_of(request), digest, range_header, headers)


@router.put(
    "/logs/{job_id}", status_code=201, response_model=LogOut, tags=["logs"],
    summary="Store a job's whole log",
    openapi_extra={"requestBody": {"required": True, "content": {"text/plain": {}}}},
)  # fmt: skip
async def put_log(job_id: JobId, request: Request, claims: Auth) -> LogOut:
    """Store the body as a blob and point the job at it; a second upload replaces the first."""
    claims.require("logs:write")
    parts = parts_of(request)
    staged = await _receive(parts, request, None)
    return await anyio.to_thread.run_sync(parts.records.put_log, job_id, staged)


@router.get(
    "/logs/{job_id}", tags=["logs"], summary="A job's log, or a range of it",
    response_class=Response, responses=_LOG_RESPONSES,
)  # fmt: skip
async def get_log(job_id: JobId, request: Request, claims: Auth, range_header: RangeHeader = None) -> Response:
    """The log's bytes as stored."""
    parts = parts_of(request)
    entry = await anyio.to_thread.run_sync(parts.records.get_log, job_id)
    return await _serve(
        parts, entry.digest, range_header, {"etag": f'"{entry.digest}"', "cache-control": "no-cache"},
        media_type="text/plain; charset=utf-8",
        what=f"the log of job {job_id} (blob {entry.digest})",
    )  # fmt: skip
