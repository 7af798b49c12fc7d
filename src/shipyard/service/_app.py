"""What every service's FastAPI app has: errors as JSON, auth, limits, health, metrics.

- Errors: :class:`~shipyard.errors.RequestError` answers with its own status; a failed
  body or parameter check with 422; any other :class:`ShipyardError` with 400; a bug
  with 500 (logged, never the traceback in the body). Every error body is
  ``{"error": "<message>"}``.
- Bodies over ``max_json_body`` get 413, except for paths holding a fragment a service declares
  as an upload: alone (pushes, blobs) it gets ``max_upload_body``; with a number (ci's
  log appends, read whole into memory) that many bytes.
- ``GET /healthz`` answers 200 when the database does, 503 otherwise.
- ``GET /metrics`` is Prometheus text: requests and their durations per route, plus
  whatever the service registers on ``app.state.metrics``.
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Annotated, Any

from fastapi import Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, PlainTextResponse, Response
from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from shipyard.errors import (
    AuthError,
    RequestError,
    ShipyardError,
    TooLargeError,
    ValidationError,
)
from shipyard.service._auth import Claims, TokenSigner
from shipyard.service._db import Database
from shipyard.service._settings import Settings

__all__ = ["Auth", "ServiceState", "authenticate", "create_app", "error_body", "state_of"]

log = logging.getLogger("shipyard.service")


class ServiceState:
    """The dependencies of one service, kept on ``app.state.service``."""

    def __init__(
        self, name: str, settings: Settings, db: Database | None, signer: TokenSigner
    ) -> None:
        self.name = name
        self.settings = settings
        self.db = db
        self.signer = signer
        self.metrics = CollectorRegistry()


def state_of(request: Request) -> ServiceState:
    state: ServiceState = request.app.state.service
    return state


def error_body(message: str) -> dict[str, str]:
    return {"error": message}


def _token_from(request: Request) -> str | None:
    header = request.headers.get("authorization", "")
    scheme, _, value = header.partition(" ")
    scheme = scheme.lower()
    if scheme in ("bearer", "token") and value:
        return value.strip()
    if scheme == "basic" and value:
        import base64
        import binascii

        try:
            decoded = base64.b64decode(value.strip(), validate=True).decode()
        except (binascii.Error, UnicodeDecodeError):
            raise AuthError("malformed basic credentials") from None
        user, _, password = decoded.partition(":")
        return password or user  # git sends the token as the password; curl -u TOKEN: too
    return None


async def authenticate(request: Request) -> Claims:
    """The caller's verified claims; 401 when there is no valid token."""
    token = _token_from(request)
    if not token:
        raise AuthError("authentication required: send a token (Authorization: Bearer ...)")
    return state_of(request).signer.verify(token)


Auth = Annotated[Claims, Depends(authenticate)]


class _BodyLimit:
    """413 for bodies over the limit, by Content-Length and by counting a stream."""

    def __init__(
        self, app: ASGIApp, default: int, large: int,
        large_prefixes: Sequence[str | tuple[str, int]],
    ) -> None:
        self.app = app
        self.default = default
        # (path fragment, limit): a bare fragment gets the upload limit
        self.limits = tuple(
            (p, large) if isinstance(p, str) else (p[0], min(p[1], large)) for p in large_prefixes
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path: str = scope["path"]
        limit = next((n for fragment, n in self.limits if fragment in path), self.default)
        for name, value in scope["headers"]:
            if name == b"content-length":
                try:
                    too_big = int(value) > limit
                except ValueError:
                    too_big = False
                if too_big:
                    await _send_json(send, 413, error_body(f"request body over the limit of {limit} bytes"))
                    return
        seen = 0

        async def counted() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > limit:
                    raise TooLargeError(f"request body over the limit of {limit} bytes")
            return message

        await self.app(scope, counted, send)


async def _send_json(send: Send, status: int, body: dict[str, Any]) -> None:
    import json

    data = json.dumps(body).encode()
    await send({
        "type": "http.response.start",
        "status": status,
        "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(data)).encode())],
    })
    await send({"type": "http.response.body", "body": data})


class _Metrics:
    """Counts requests and times them per route template (not per concrete path)."""

    def __init__(self, app: ASGIApp, registry: CollectorRegistry, service: str) -> None:
        self.app = app
        self.requests = Counter(
            "shipyard_http_requests", "HTTP requests handled",
            ["service", "method", "route", "status"], registry=registry,
        )
        self.duration = Histogram(
            "shipyard_http_request_duration_seconds", "Time to answer a request",
            ["service", "method", "route"], registry=registry,
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
        )
        self.service = service

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = 500

        async def send_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_status)
        finally:
            route = scope.get("route")
            template = getattr(route, "path", None) or "<unmatched>"
            method = scope.get("method", "")
            self.requests.labels(self.service, method, template, str(status)).inc()
            self.duration.labels(self.service, method, template).observe(time.perf_counter() - start)


def _install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(RequestError)
    async def _request_error(_: Request, err: RequestError) -> JSONResponse:
        headers = {"WWW-Authenticate": 'Basic realm="shipyard"'} if err.status == 401 else None
        return JSONResponse(error_body(err.message), status_code=err.status, headers=headers)

    @app.exception_handler(ValidationError)
    async def _validation_error(_: Request, err: ValidationError) -> JSONResponse:
        return JSONResponse(
            {"error": str(err), "errors": [str(e) for e in err.errors]}, status_code=422
        )

    @app.exception_handler(ShipyardError)
    async def _shipyard_error(_: Request, err: ShipyardError) -> JSONResponse:
        return JSONResponse(error_body(str(err)), status_code=400)

    @app.exception_handler(RequestValidationError)
    async def _bad_request(_: Request, err: RequestValidationError) -> JSONResponse:
        parts = []
        for e in err.errors():
            where = ".".join(str(p) for p in e.get("loc", ()))
            parts.append(f"{where}: {e.get('msg', 'invalid')}")
        return JSONResponse(error_body("; ".join(parts) or "invalid request"), status_code=422)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(_: Request, err: StarletteHTTPException) -> JSONResponse:
        return JSONResponse(error_body(str(err.detail)), status_code=err.status_code)

    @app.exception_handler(Exception)
    async def _bug(request: Request, err: Exception) -> JSONResponse:
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return JSONResponse(error_body("internal error; see the service log"), status_code=500)


_ERROR_SCHEMA = {
    "title": "Error",
    "type": "object",
    "required": ["error"],
    "properties": {
        "error": {"type": "string", "description": "What is wrong, in words"},
        "errors": {"type": "array", "items": {"type": "string"},
                   "description": "Each problem, when there were several"},
    },
}


def _document_errors(app: FastAPI) -> None:
    """Make the OpenAPI document say what a 422 really carries (``{"error": ...}``, as
    every error does) instead of FastAPI's default ``{"detail": [...]}``."""
    from fastapi.openapi.utils import get_openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is not None:
            return app.openapi_schema
        doc = get_openapi(title=app.title, version=app.version, description=app.description,
                          routes=app.routes)
        schemas = doc.setdefault("components", {}).setdefault("schemas", {})
        schemas.pop("HTTPValidationError", None)
        schemas.pop("ValidationError", None)
        schemas["Error"] = _ERROR_SCHEMA
        for operations in doc.get("paths", {}).values():
            for operation in operations.values():
                invalid = operation.get("responses", {}).get("422")
                if invalid is not None:
                    invalid["description"] = "The request is not valid: the message says why"
                    invalid["content"] = {
                        "application/json": {"schema": {"$ref": "#/components/schemas/Error"}}
                    }
        app.openapi_schema = doc
        return doc

    app.openapi = openapi  # type: ignore[method-assign]


def create_app(
    state: ServiceState,
    *,
    title: str,
    description: str = "",
    lifespan: Callable[[FastAPI], AbstractAsyncContextManager[None]] | None = None,
    upload_prefixes: Sequence[str | tuple[str, int]] = (),  # "/blobs/", or ("/log", 16 << 20)
    health: Callable[[], Awaitable[None]] | None = None,
) -> FastAPI:
    """A FastAPI app for ``state``'s service with the shared behaviour installed.

    ``lifespan`` runs inside the app's own (which disposes the database at the end);
    ``health`` is an extra async check for ``/healthz`` (raise to report unhealthy).
    """

    @asynccontextmanager
    async def _lifespan(app: FastAPI) -> AsyncIterator[None]:
        try:
            if lifespan is None:
                yield
            else:
                async with lifespan(app):
                    yield
        finally:
            if state.db is not None:
                state.db.dispose()

    from shipyard import __version__

    app = FastAPI(title=title, description=description, version=__version__, lifespan=_lifespan)
    app.state.service = state
    _install_error_handlers(app)

    @app.get("/healthz", tags=["operations"], summary="Health of the service and its database")
    async def healthz() -> JSONResponse:
        import anyio

        try:
            if state.db is not None:
                await anyio.to_thread.run_sync(state.db.ping)
            if health is not None:
                await health()
        except Exception as err:  # any failure means unhealthy, whatever its type
            return JSONResponse({"status": "unhealthy", "service": state.name, "error": str(err)}, 503)
        return JSONResponse({"status": "ok", "service": state.name})

    @app.get("/metrics", tags=["operations"], summary="Prometheus metrics", response_class=PlainTextResponse)
    async def metrics() -> Response:
        return Response(generate_latest(state.metrics), media_type=CONTENT_TYPE_LATEST)

    _document_errors(app)
    app.add_middleware(
        _BodyLimit,
        default=state.settings.max_json_body,
        large=state.settings.max_upload_body,
        large_prefixes=upload_prefixes,
    )
    app.add_middleware(_Metrics, registry=state.metrics, service=state.name)
    return app
