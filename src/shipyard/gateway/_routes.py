"""Which service answers which gateway path (the table at the top of docs/api.md).

=====================================================  =======  ===========================
gateway path                                           service  service path
=====================================================  =======  ===========================
``/{repo}.git/...``                                    git      the same
``/api/v1/repos...``                                   git      without ``/api/v1``
``/api/v1/pipelines|jobs|runners|dispatch|statuses|``  ci       without ``/api/v1``
``schedules...``
``/api/v1/blobs|artifacts|caches|logs...``             store    without ``/api/v1``
``/api/v1/feeds/{service}``                            it       ``/events``
``/api/v1/openapi/{service}.json``                     it       ``/openapi.json``
``/api/v1/metrics/{service}``                          it       ``/metrics``
=====================================================  =======  ===========================

Each row is a Starlette route (not a FastAPI one: no parameter parsing, no OpenAPI
entry), so matching costs a string comparison and the metrics middleware labels the
request with the row's pattern.
"""

from __future__ import annotations

import abc
import json
from collections.abc import Callable
from typing import Any

from starlette.datastructures import URLPath
from starlette.routing import BaseRoute, Match, NoMatchFound
from starlette.types import Receive, Scope, Send

from shipyard.gateway._proxy import Proxy

__all__ = ["API_PREFIX", "PREFIXES", "PROXIED_SERVICES", "proxy_routes"]

API_PREFIX = "/api/v1"

#: The services the gateway forwards to.
PROXIED_SERVICES = ("git", "store", "ci")

#: ``/api/v1/<prefix>`` → service.
PREFIXES: dict[str, str] = {
    "repos": "git",
    "pipelines": "ci",
    "jobs": "ci",
    "runners": "ci",
    "dispatch": "ci",
    "statuses": "ci",
    "schedules": "ci",
    "blobs": "store",
    "artifacts": "store",
    "caches": "store",
    "logs": "store",
}

_STRIP = len(API_PREFIX)


class _ProxyRoute(BaseRoute, abc.ABC):
    """A route answered by forwarding; ``path`` is the pattern metrics are labelled with."""

    path: str

    def url_path_for(self, name: str, /, **path_params: Any) -> URLPath:
        raise NoMatchFound(name, path_params)

    def matches(self, scope: Scope) -> tuple[Match, Scope]:
        if scope["type"] == "http" and self.accepts(scope["path"]):
            return Match.FULL, {"route": self}
        return Match.NONE, {}

    @abc.abstractmethod
    def accepts(self, path: str) -> bool:
        """Whether this route answers ``path``."""


def _raw_path(scope: Scope) -> bytes:
    raw: bytes | None = scope.get("raw_path")
    if raw is None:
        from urllib.parse import quote

        return quote(scope["path"]).encode()
    return raw.split(b"?", 1)[0]


class _PrefixRoute(_ProxyRoute):
    """``/api/v1/<prefix>`` and everything under it, to a service without ``/api/v1``."""

    def __init__(self, prefix: str, service: str, proxy: Proxy) -> None:
        self.prefix = f"{API_PREFIX}/{prefix}"
        self.under = self.prefix + "/"
        self.path = self.prefix + "..."
        self.service = service
        self.proxy = proxy

    def accepts(self, path: str) -> bool:
        return path == self.prefix or path.startswith(self.under)

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        raw = _raw_path(scope)
        stripped = raw[_STRIP:] if raw.startswith(API_PREFIX.encode()) else scope["path"][_STRIP:].encode()
        await self.proxy.forward(self.service, stripped, scope, receive, send)


class _GitRoute(_ProxyRoute):
    """Git's smart HTTP (``/{repo}.git/...``), to git at the same path."""

    path = "/{repo}.git/..."

    def __init__(self, proxy: Proxy) -> None:
        self.proxy = proxy

    def accepts(self, path: str) -> bool:
        return ".git/" in path and not path.startswith(API_PREFIX + "/")

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self.proxy.forward("git", _raw_path(scope), scope, receive, send)


class _PerServiceRoute(_ProxyRoute):
    """``/api/v1/<kind>/{service}<suffix>``, to that service's ``target`` path."""

    def __init__(
        self,
        kind: str,
        suffix: str,
        target: bytes,
        proxy: Proxy,
        local: Callable[[str], dict[str, Any] | None] | None = None,
    ) -> None:
        self.start = f"{API_PREFIX}/{kind}/"
        self.suffix = suffix
        self.path = f"{self.start}{{service}}{suffix}"
        self.target = target
        self.proxy = proxy
        self.local = local  # answers for the gateway itself, if it has an answer

    def accepts(self, path: str) -> bool:
        return path.startswith(self.start) and path.endswith(self.suffix)

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        path: str = scope["path"]
        service = path[len(self.start) : len(path) - len(self.suffix)]
        if service in PROXIED_SERVICES:
            await self.proxy.forward(service, self.target, scope, receive, send)
            return
        body: dict[str, Any] | None = None
        if self.local is not None and service == "gateway":
            body = self.local(service)
        status = 200
        if body is None:
            status = 404
            known = ", ".join(PROXIED_SERVICES)
            body = {"error": f"no service called {service!r} here; the services are {known}"}
        data = json.dumps(body).encode()
        await send({
            "type": "http.response.start",
            "status": status,
            "headers": [(b"content-type", b"application/json"),
                        (b"content-length", str(len(data)).encode())],
        })
        await send({"type": "http.response.body", "body": data})


def proxy_routes(
    proxy: Proxy, gateway_openapi: Callable[[], dict[str, Any]]
) -> list[BaseRoute]:
    """The forwarding routes, to go after the gateway's own."""
    routes: list[BaseRoute] = [
        _PerServiceRoute("feeds", "", b"/events", proxy),
        _PerServiceRoute("metrics", "", b"/metrics", proxy),
        _PerServiceRoute("openapi", ".json", b"/openapi.json", proxy,
                         local=lambda _service: gateway_openapi()),
    ]
    routes += [_PrefixRoute(prefix, service, proxy) for prefix, service in PREFIXES.items()]
    routes.append(_GitRoute(proxy))
    return routes
