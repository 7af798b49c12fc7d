"""A small real service to put behind the gateway: it echoes what reached it and streams."""

from __future__ import annotations

import asyncio
import hashlib
import threading
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

from fastapi import FastAPI, Request, Response
from fastapi.responses import JSONResponse, StreamingResponse


@dataclass
class Probe:
    """What the tests and the upstream share: events to step streams, what was seen."""

    first_chunk_in: threading.Event = field(default_factory=threading.Event)
    first_chunk_out: threading.Event = field(default_factory=threading.Event)
    disconnected: threading.Event = field(default_factory=threading.Event)
    seen: list[dict[str, Any]] = field(default_factory=list)


def upstream_app(name: str, probe: Probe | None = None) -> FastAPI:
    """A service called ``name``; every route reports what it received."""
    probe = probe or Probe()
    app = FastAPI()
    app.state.probe = probe

    def echo_body(request: Request, body: bytes) -> dict[str, Any]:
        return {
            "service": name,
            "method": request.method,
            "raw_path": request.scope["raw_path"].decode(),
            "query": request.scope["query_string"].decode(),
            "headers": [[k.decode(), v.decode()] for k, v in request.scope["headers"]],
            "body_size": len(body),
        }

    @app.get("/healthz")
    def healthz() -> JSONResponse:
        if getattr(app.state, "sick", False):
            return JSONResponse({"status": "unhealthy", "error": "database is locked"}, 503)
        return JSONResponse({"status": "ok", "service": name})

    @app.post("/blobs/upload")
    async def upload(request: Request) -> dict[str, Any]:
        """Hash a streamed body; note when its first chunk arrived."""
        digest = hashlib.sha256()
        size = 0
        chunks = 0
        async for chunk in request.stream():
            if chunk and not probe.first_chunk_in.is_set():
                probe.first_chunk_in.set()
            digest.update(chunk)
            size += len(chunk)
            chunks += 1 if chunk else 0
        return {"sha256": digest.hexdigest(), "size": size, "chunks": chunks}

    @app.get("/logs/stream")
    async def stream() -> StreamingResponse:
        """One chunk, then wait until the test saw it, then the rest."""

        async def gen() -> AsyncIterator[bytes]:
            yield b"first line\n"
            deadline = time.monotonic() + 10
            while not probe.first_chunk_out.is_set() and time.monotonic() < deadline:
                await asyncio.sleep(0.01)
            yield b"second line\n"

        return StreamingResponse(gen(), media_type="text/plain")

    @app.get("/logs/broken")
    async def broken() -> StreamingResponse:
        """A response cut short in the middle, as a corrupt blob's is."""

        async def gen() -> AsyncIterator[bytes]:
            yield b"x" * 1000
            raise RuntimeError("the bytes on disk do not match their digest")

        return StreamingResponse(gen(), media_type="application/octet-stream")

    @app.get("/runners/wait")
    async def wait(request: Request) -> JSONResponse:
        """A long poll that notices its client going away."""
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if await request.is_disconnected():
                probe.disconnected.set()
                return JSONResponse({"gone": True})
            await asyncio.sleep(0.02)
        return JSONResponse({"gone": False})

    @app.get("/repos/headers-out")
    def headers_out() -> Response:
        return Response(
            b"ok", headers={"X-Custom": "kept", "Proxy-Authenticate": "Basic", "Trailer": "X-T"}
        )

    @app.get("/repos/set-cookie")
    def set_cookie() -> Response:
        return Response(b"ok", headers={"Set-Cookie": "session=alice; Path=/"})

    @app.get("/repos/moved")
    def moved() -> Response:
        return Response(status_code=307, headers={"Location": "/repos/small"})

    @app.get("/repos/small")
    def small() -> dict[str, str]:
        return {"ok": "yes"}

    @app.api_route("/{rest:path}", methods=["GET", "POST", "PUT", "DELETE", "HEAD", "PATCH"],
                   include_in_schema=False)
    async def anything(request: Request) -> Response:
        body = await request.body()
        probe.seen.append(echo_body(request, body))
        if request.method == "HEAD":
            return Response(status_code=200, headers={"Content-Length": "1234"})
        status = int(request.query_params.get("status", "200"))
        return JSONResponse(echo_body(request, body), status_code=status)

    return app
