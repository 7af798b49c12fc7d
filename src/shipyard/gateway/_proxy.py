"""The streaming reverse proxy: one request in, the same request to a service, streamed.

Bodies are never buffered: the request body flows to the service as the client sends
it (a 100 MB push holds one chunk in memory at a time) and the response flows back as
the service produces it (a ``follow=true`` log, a long poll). The proxy works at the
ASGI level rather than through FastAPI's request/response objects, because it sits on
the path of every runner request and each layer costs time.

While waiting for the service, the proxy watches the client: when it disconnects
(a runner stopped in the middle of a 60 s claim) the upstream request is dropped at
once instead of holding a pooled connection until the service answers.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import AsyncIterator, Mapping

import anyio
import httpx
from prometheus_client import CollectorRegistry, Counter, Histogram
from starlette.types import Receive, Scope, Send

__all__ = ["Proxy", "Upstream"]

_DOT_SEGMENT = re.compile(rb"(^|/)(\.|%2e){1,2}(/|$)", re.IGNORECASE)

log = logging.getLogger("shipyard.gateway")

# Headers that describe one connection, not the message (RFC 9110 section 7.6.1), plus
# ``host`` (the upstream gets its own) and ``expect`` (the gateway answers 100-continue
# itself; httpx sends the body without waiting for it).
_HOP_BY_HOP = frozenset({
    b"connection", b"keep-alive", b"proxy-authenticate", b"proxy-authorization",
    b"proxy-connection", b"te", b"trailer", b"trailers", b"transfer-encoding", b"upgrade",
    b"host", b"expect",
})
_FORWARDED = frozenset({b"x-forwarded-for", b"x-forwarded-host", b"x-forwarded-proto"})

# Streams (pushes, long polls, followed logs) take as long as they take; only connecting
# and waiting for a pooled connection are bounded.
_TIMEOUTS = {"timeout": {"connect": 5.0, "read": None, "write": None, "pool": 60.0}}

# Failures before the service sent anything, which a request without a body can safely
# retry once: the usual cause is a pooled keep-alive connection the service just closed.
_STALE_CONNECTION = (httpx.RemoteProtocolError, httpx.ReadError, httpx.WriteError)


class _ClientGone(Exception):
    """The client disconnected while its request body was being forwarded."""


class Upstream:
    """One service the gateway forwards to: its name and base URL (``None``: not set)."""

    def __init__(self, name: str, base_url: str) -> None:
        self.name = name
        self.url: httpx.URL | None = httpx.URL(base_url.rstrip("/")) if base_url else None
        self.base_path = self.url.raw_path.rstrip(b"/") if self.url is not None else b""

    def target(self, raw_path: bytes, query: bytes) -> httpx.URL:
        assert self.url is not None
        full = self.base_path + raw_path
        return self.url.copy_with(raw_path=full + b"?" + query if query else full)


def _unavailable_body(name: str) -> bytes:
    import json

    return json.dumps({"error": f"{name} is unavailable"}).encode()


def _not_forwardable_body() -> bytes:
    import json

    return json.dumps({"error": "the request cannot be forwarded: a header is not valid HTTP"}).encode()


async def _send_error(send: Send, status: int, body: bytes) -> None:
    await send({
        "type": "http.response.start",
        "status": status,
        "headers": [(b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode())],
    })
    await send({"type": "http.response.body", "body": body})


def _request_headers(scope: Scope) -> tuple[list[tuple[bytes, bytes]], bool]:
    """Headers to send upstream, and whether the request has a body."""
    raw: list[tuple[bytes, bytes]] = scope["headers"]
    drop = _HOP_BY_HOP
    has_body = False
    host = b""
    forwarded_for = b""
    out: list[tuple[bytes, bytes]] = []
    for name, value in raw:
        if name == b"connection":
            # Headers the client named as connection-specific go too.
            extra = {v.strip().lower() for v in value.split(b",") if v.strip()}
            if extra - {b"keep-alive", b"close"}:
                drop = drop | extra
        elif name == b"host":
            host = value
        elif name == b"content-length":
            has_body = value.strip() not in (b"", b"0")
        elif name == b"transfer-encoding":
            has_body = True
        elif name == b"x-forwarded-for":
            forwarded_for = value
    for name, value in raw:
        if name not in drop and name not in _FORWARDED:
            # Whitespace around a value is not part of it (RFC 9110 section 5.5); the
            # server in front may keep it, but the client to the service refuses to send it.
            out.append((name, value.strip(b" \t")))
    client = scope.get("client")
    if client:
        address = client[0].encode()
        if not forwarded_for:
            forwarded_for = address
        elif forwarded_for.rsplit(b",", 1)[-1].strip() != address:
            # uvicorn already takes the client from X-Forwarded-For when a trusted proxy
            # sent it; that client is the last hop listed and is not listed twice.
            forwarded_for = forwarded_for + b", " + address
    if forwarded_for:
        out.append((b"x-forwarded-for", forwarded_for))
    if host:
        out.append((b"x-forwarded-host", host))
    out.append((b"x-forwarded-proto", scope.get("scheme", "http").encode()))
    return out, has_body


def _response_headers(response: httpx.Response) -> list[tuple[bytes, bytes]]:
    drop = _HOP_BY_HOP
    connection = response.headers.get("connection")
    if connection:
        extra = {v.strip().lower().encode() for v in connection.split(",") if v.strip()}
        drop = drop | extra
    out = []
    for name, value in response.headers.raw:
        lower = name.lower()
        if lower not in drop:
            out.append((lower, value))
    return out


class Proxy:
    """Forwards ASGI requests to :class:`Upstream` services over one connection pool."""

    def __init__(self, upstreams: Mapping[str, Upstream], registry: CollectorRegistry) -> None:
        self.upstreams = dict(upstreams)
        self._transport: httpx.AsyncHTTPTransport | None = None
        self._client: httpx.AsyncClient | None = None
        self.errors = Counter(
            "shipyard_gateway_upstream_errors", "Requests the gateway could not forward",
            ["service", "reason"], registry=registry,
        )
        self.latency = Histogram(
            "shipyard_gateway_upstream_response_seconds",
            "Time from forwarding a request to the service's response headers",
            ["service"], registry=registry,
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
        )

    @property
    def transport(self) -> httpx.AsyncHTTPTransport:
        """The connection pool every forwarded request goes through.

        Requests go to the transport, not through an ``AsyncClient``: a client would keep
        the services' cookies and share them between callers, follow redirects, and add
        ~0.5 ms of bookkeeping per request on the runners' path.
        """
        if self._transport is None:
            self._transport = httpx.AsyncHTTPTransport(
                # Below uvicorn's 5 s keep-alive, so the pool drops an idle connection
                # before the service does.
                limits=httpx.Limits(
                    max_connections=2048, max_keepalive_connections=256, keepalive_expiry=4.0
                ),
                trust_env=False,
            )
        return self._transport

    @property
    def client(self) -> httpx.AsyncClient:
        """A client on the same pool, for the gateway's own calls (health checks)."""
        if self._client is None:
            self._client = httpx.AsyncClient(transport=self.transport, timeout=5.0, trust_env=False)
        return self._client

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.aclose()  # closes the transport too
        elif self._transport is not None:
            await self._transport.aclose()
        self._client = None
        self._transport = None

    async def forward(
        self, service: str, raw_path: bytes, scope: Scope, receive: Receive, send: Send
    ) -> None:
        """Forward the request in ``scope`` to ``service`` at ``raw_path``, streaming both ways."""
        upstream = self.upstreams[service]
        if upstream.url is None:
            self.errors.labels(service, "not_configured").inc()
            log.warning("no URL is configured for %s (set SHIPYARD_%s_URL)", service, service.upper())
            await _send_error(send, 503, _unavailable_body(service))
            return
        if _DOT_SEGMENT.search(raw_path):
            # The client library would resolve "/a/../b" to "/b": a path that names one
            # route here must not reach another one there.
            await _send_error(send, 400, b'{"error": "paths with . or .. segments are refused"}')
            return
        headers, has_body = _request_headers(scope)
        url = upstream.target(raw_path, scope.get("query_string", b""))
        body_done = anyio.Event()

        async def body() -> AsyncIterator[bytes]:
            while True:
                message = await receive()
                if message["type"] == "http.disconnect":
                    raise _ClientGone()
                chunk: bytes = message.get("body", b"")
                if chunk:
                    yield chunk
                if not message.get("more_body", False):
                    body_done.set()
                    return

        if not has_body:
            body_done.set()
        request = httpx.Request(
            scope["method"], url, headers=headers, content=body() if has_body else None,
            extensions=_TIMEOUTS,
        )
        error: Exception | None = None
        async with anyio.create_task_group() as group:
            group.start_soon(self._watch_disconnect, receive, body_done, group.cancel_scope)
            try:
                await self._exchange(upstream, request, has_body, send)
            except Exception as err:  # re-raised below, outside the task group's wrapping
                error = err
            group.cancel_scope.cancel()
        if error is not None:
            raise error

    async def _exchange(
        self, upstream: Upstream, request: httpx.Request, has_body: bool, send: Send
    ) -> None:
        service = upstream.name
        started = time.perf_counter()
        try:
            try:
                response = await self.transport.handle_async_request(request)
            except _STALE_CONNECTION:
                if has_body:
                    raise
                response = await self.transport.handle_async_request(request)
        except _ClientGone:
            return
        except httpx.LocalProtocolError:
            # The request cannot be sent on as it is (a header value HTTP does not allow,
            # which the server in front let through): the client's fault, not the service's.
            # The error is not quoted: it holds the header's value, which may be a token.
            self.errors.labels(service, "bad_request").inc()
            log.info("%s %s: not forwarded to %s: not valid HTTP", request.method, request.url.path, service)
            await _send_error(send, 400, _not_forwardable_body())
            return
        except httpx.TransportError as err:
            self.errors.labels(service, type(err).__name__).inc()
            log.warning("%s %s: %s did not answer: %r", request.method, request.url.path, service, err)
            await _send_error(send, 503, _unavailable_body(service))
            return
        self.latency.labels(service).observe(time.perf_counter() - started)
        try:
            await send({
                "type": "http.response.start",
                "status": response.status_code,
                "headers": _response_headers(response),
            })
            try:
                async for chunk in response.aiter_raw():
                    await send({"type": "http.response.body", "body": chunk, "more_body": True})
            except httpx.TransportError as err:
                # The service died or cut the response short (a corrupt blob): the client
                # must see a broken response, not a complete one, so the response is left
                # unfinished and the server aborts the connection.
                self.errors.labels(service, "cut_short").inc()
                log.warning("%s %s: %s cut the response short: %r",
                            request.method, request.url.path, service, err)
                return
            await send({"type": "http.response.body", "body": b"", "more_body": False})
        finally:
            with anyio.CancelScope(shield=True):
                await response.aclose()

    @staticmethod
    async def _watch_disconnect(
        receive: Receive, body_done: anyio.Event, scope: anyio.CancelScope
    ) -> None:
        """Cancel the exchange when the client goes away (only once its body is read)."""
        await body_done.wait()
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                scope.cancel()
                return
