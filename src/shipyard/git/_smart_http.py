"""Git's smart HTTP protocol, served by running ``git http-backend`` as a CGI program.

Each request starts one ``git http-backend`` (an
:class:`~shipyard.git._process.AsyncProcess`: in its own process group, so its
upload-pack or receive-pack child can be stopped with it). The request body is pumped
into its stdin as it arrives and its stdout streamed back after the CGI header block,
so a pack of any size passes through without being held in memory. ``Git-Protocol``
becomes ``GIT_PROTOCOL``, which is how protocol v2 reaches upload-pack.

A push holds its repository's lock (:mod:`shipyard.git._locks`) from before
receive-pack starts until its ref changes are recorded; the response's last chunk is
sent only after that, so when ``git push`` returns, the push's events are in the feed.
The recording runs in a task of its own, so a client that hangs up mid-push cannot
leave changed refs unrecorded (and a service killed at that moment records them at its
next start).
"""

from __future__ import annotations

import asyncio
import logging
import re
import signal
from collections.abc import Mapping
from typing import Annotated, Literal

import anyio
from fastapi import APIRouter, Request
from fastapi import Path as PathParam
from fastapi.responses import JSONResponse, Response
from starlette.types import Receive, Scope, Send

from shipyard.errors import InvalidRequestError, NotFoundError, RequestError
from shipyard.git import _routing  # noqa: F401  (registers the shipyard_repo convertor)
from shipyard.git._gitexec import git_env, git_program
from shipyard.git._process import AsyncProcess
from shipyard.git._service import GitService, Svc
from shipyard.service import Auth, Claims, error_body

__all__ = ["router"]

log = logging.getLogger("shipyard.git.http")

router = APIRouter(tags=["smart HTTP"])

_ServiceName = Literal["git-upload-pack", "git-receive-pack"]

_Name = Annotated[str, PathParam(description="'name' or 'owner/name', the slash as is (not %2F)")]
_CHUNK = 1 << 16
_MAX_HEADER_LINES = 100
_STDERR_KEPT = 8192
_GIT_PROTOCOL = re.compile(r"[A-Za-z0-9=:._-]+")
_HOP_BY_HOP = {"connection", "transfer-encoding", "keep-alive"}


class _BackendFailed(Exception):
    """http-backend ended without a CGI header block."""


class _Backend:
    """One running ``git http-backend``: its body pump and its stderr collector."""

    def __init__(self, proc: AsyncProcess, request: Request) -> None:
        self.proc = proc
        self.stderr = bytearray()
        self.aborted = False
        self.body_error: Exception | None = None  # why reading the request body failed
        self._pump = asyncio.get_running_loop().create_task(self._pump_body(request))
        self._errors = asyncio.get_running_loop().create_task(self._collect_stderr())

    @classmethod
    async def start(cls, env: Mapping[str, str], request: Request) -> _Backend:
        return cls(AsyncProcess.start([git_program("http-backend")], env), request)

    async def _pump_body(self, request: Request) -> None:
        stdin = self.proc.stdin
        try:
            async for chunk in request.stream():
                if chunk:
                    await stdin.write(chunk)
        except (BrokenPipeError, ConnectionResetError):
            pass  # git stopped reading; its answer (or exit status) says why
        except Exception as err:  # the client went away, or the body is over the limit
            log.info("stopping git http-backend: the request body failed: %r", err)
            self.body_error = err
            self.abort()
        finally:
            stdin.close()

    async def _collect_stderr(self) -> None:
        while chunk := await self.proc.stderr.read(_CHUNK):
            self.stderr += chunk
            del self.stderr[:-_STDERR_KEPT]

    async def read_headers(self) -> tuple[int, list[tuple[str, str]]]:
        """The CGI status and headers; the body follows on ``proc.stdout``."""
        status = 200
        headers: list[tuple[str, str]] = []
        for _ in range(_MAX_HEADER_LINES):
            try:
                line = await self.proc.stdout.readline()
            except ValueError:  # a line over the stream's limit: not CGI
                raise _BackendFailed("a header line too long") from None
            if not line:
                raise _BackendFailed("no header block")
            text = line.decode("latin-1").rstrip("\r\n")
            if not text:
                return status, headers
            key, sep, value = text.partition(":")
            if not sep:
                raise _BackendFailed(f"a malformed header line {text!r}")
            if key.strip().lower() == "status":
                try:
                    status = int(value.split()[0])
                except (IndexError, ValueError):
                    raise _BackendFailed(f"a malformed status {value!r}") from None
            elif key.strip().lower() not in _HOP_BY_HOP:
                headers.append((key.strip(), value.strip()))
        raise _BackendFailed("too many header lines")

    def abort(self) -> None:
        """Stop the backend and its child now (the client is gone or the request failed)."""
        self.aborted = True
        self.proc.signal_group(signal.SIGTERM)  # http-backend and its upload- or receive-pack

    async def wait(self) -> int:
        """Wait for the backend's end; its exit status. Closes all pipes but stdout."""
        code = await self.proc.wait()
        self._pump.cancel()  # a body the backend did not read to its end no longer matters
        await asyncio.gather(self._pump, self._errors, return_exceptions=True)
        self.proc.close_input_and_errors()
        if code != 0 and not self.aborted:
            log.warning(
                "git http-backend exited with %s: %s", code,
                self.stderr.decode(errors="replace").strip(),
            )
        return code


class _BackendResponse(Response):
    """Streams the backend's stdout; ends once ``finished`` (the push recorded) is done."""

    def __init__(
        self, backend: _Backend, finished: asyncio.Task[None], status: int, headers: list[tuple[str, str]]
    ) -> None:
        super().__init__(status_code=status)
        self.raw_headers = [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in headers]
        self.backend = backend
        self.finished = finished

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        stdout = self.backend.proc.stdout
        try:
            await send({"type": "http.response.start", "status": self.status_code, "headers": self.raw_headers})
            while chunk := await stdout.read(_CHUNK):
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
        except BaseException:
            self.backend.abort()
            raise
        finally:
            self.backend.proc.close_stdout()
        await asyncio.shield(self.finished)
        await send({"type": "http.response.body", "body": b"", "more_body": False})


def _environment(
    svc: GitService, request: Request, claims: Claims, name: str, suffix: str, query: str
) -> dict[str, str]:
    env = {
        "GIT_PROJECT_ROOT": str(svc.store.root),
        "GIT_HTTP_EXPORT_ALL": "1",
        "PATH_INFO": f"/{name}.git/{suffix}",
        "QUERY_STRING": query,
        "REQUEST_METHOD": request.method,
        "REMOTE_USER": claims.subject,
        "REMOTE_ADDR": request.client.host if request.client else "",
        "CONTENT_TYPE": request.headers.get("content-type", ""),
    }
    length = request.headers.get("content-length")
    if length is not None:
        if not length.isdigit():
            raise InvalidRequestError(f"invalid Content-Length {length!r}")
        env["CONTENT_LENGTH"] = length
    encoding = request.headers.get("content-encoding")
    if encoding:
        env["HTTP_CONTENT_ENCODING"] = encoding
    protocol = request.headers.get("git-protocol")
    if protocol:
        if len(protocol) > 256 or not _GIT_PROTOCOL.fullmatch(protocol):
            raise InvalidRequestError(f"invalid Git-Protocol header {protocol[:100]!r}")
        env["GIT_PROTOCOL"] = protocol
    return git_env(env)


async def _serve(
    svc: GitService, request: Request, claims: Claims, name: str, service: _ServiceName, suffix: str
) -> Response:
    push = service == "git-receive-pack"
    svc.authorize(claims, name, write=push)
    await anyio.to_thread.run_sync(svc.store.get, name)
    query = f"service={service}" if suffix == "info/refs" else ""
    env = _environment(svc, request, claims, name, suffix, query)
    receives = push and request.method == "POST"
    held = None
    if receives:
        try:
            held = await svc.locks.acquire(name, svc.store.path(name))
        except FileNotFoundError:
            raise NotFoundError(f"no repository named {name!r}") from None
    try:
        if held is not None:  # deleted while this push waited for the lock?
            await anyio.to_thread.run_sync(svc.store.get, name)
        backend = await _Backend.start(env, request)
    except BaseException:
        if held is not None:
            held.release()
        raise
    if receives:
        svc.metrics.pushes_running.inc()

    async def finish() -> None:
        try:
            code = await backend.wait()
            if not receives:
                if suffix != "info/refs":
                    svc.metrics.fetches.labels("ok" if code == 0 else "failed").inc()
                return
            svc.metrics.pushes.labels("ok" if code == 0 else "failed").inc()
            try:
                await anyio.to_thread.run_sync(svc.store.record_refs, name)
            except Exception:
                log.exception("could not record the refs pushed to %s; the next push or start will", name)
        finally:
            if held is not None:
                held.release()
                svc.metrics.pushes_running.dec()

    finished = svc.spawn(finish())
    try:
        status, headers = await backend.read_headers()
    except _BackendFailed as err:
        backend.abort()
        backend.proc.close_stdout()
        await asyncio.shield(finished)
        if isinstance(backend.body_error, RequestError):  # the body was over the limit
            raise backend.body_error from None
        if backend.body_error is not None:  # the client hung up: nobody reads this answer
            raise InvalidRequestError("the request body ended early") from None
        log.error("git http-backend for %s failed: %s; %s", name, err,
                  backend.stderr.decode(errors="replace").strip())
        return JSONResponse(error_body("git http-backend failed; see the service log"), status_code=500)
    except BaseException:
        backend.abort()
        backend.proc.close_stdout()
        raise
    return _BackendResponse(backend, finished, status, headers)


@router.get(
    "/{name:shipyard_repo}.git/info/refs",
    summary="Smart HTTP ref advertisement (clone, fetch, push discovery)",
    response_class=Response,
    responses={200: {"content": {
        "application/x-git-upload-pack-advertisement": {},
        "application/x-git-receive-pack-advertisement": {},
    }}},
)
async def info_refs(
    request: Request, name: _Name, claims: Auth, svc: Svc, service: _ServiceName | None = None
) -> Response:
    if service is None:
        raise InvalidRequestError(
            "only git's smart HTTP protocol is served: ?service=git-upload-pack or git-receive-pack"
        )
    return await _serve(svc, request, claims, name, service, "info/refs")


@router.post(
    "/{name:shipyard_repo}.git/git-upload-pack",
    summary="Fetch or clone (upload-pack)",
    response_class=Response,
    responses={200: {"content": {"application/x-git-upload-pack-result": {}}}},
)
async def upload_pack(request: Request, name: _Name, claims: Auth, svc: Svc) -> Response:
    return await _serve(svc, request, claims, name, "git-upload-pack", "git-upload-pack")


@router.post(
    "/{name:shipyard_repo}.git/git-receive-pack",
    summary="Push (receive-pack); its ref changes are recorded as ref.updated events",
    response_class=Response,
    responses={200: {"content": {"application/x-git-receive-pack-result": {}}}},
)
async def receive_pack(request: Request, name: _Name, claims: Auth, svc: Svc) -> Response:
    return await _serve(svc, request, claims, name, "git-receive-pack", "git-receive-pack")
