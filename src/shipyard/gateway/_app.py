"""The gateway's app: its own routes (whoami, tokens, aggregated health) and the proxy."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated, Any

import httpx
from fastapi import FastAPI
from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from shipyard.errors import UnavailableError
from shipyard.gateway._proxy import Proxy, Upstream
from shipyard.gateway._routes import API_PREFIX, PREFIXES, PROXIED_SERVICES, proxy_routes
from shipyard.service import Auth, ServiceState, Settings, TokenSigner, create_app

__all__ = ["create_gateway_app"]

log = logging.getLogger("shipyard.gateway")

#: How long ``/healthz`` waits for each service.
HEALTH_TIMEOUT = 3.0

# Scopes are free-form on purpose (services add their own), but a typo like
# "repo demo read" is refused rather than issued as a token that allows nothing.
_SCOPE_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9:._/*-]{0,199}$"
Scope = Annotated[str, StringConstraints(pattern=_SCOPE_PATTERN)]


class WhoAmI(BaseModel):
    """Who a token belongs to and what it allows."""

    subject: str
    scopes: list[str]
    expires_at: float | None = Field(description="Unix seconds; null for a token that never expires")


class TokenRequest(BaseModel):
    """A token to issue."""

    model_config = ConfigDict(extra="forbid")

    subject: str = Field(min_length=1, max_length=200, description="who or what holds it")
    scopes: list[Scope] = Field(max_length=100, description="e.g. admin, repos:write, repo:demo:read")
    ttl: float | None = Field(
        None, gt=0, le=10 * 365 * 86400, description="seconds until it expires; none: never"
    )


class IssuedToken(BaseModel):
    """A newly signed token. It is shown once; the gateway does not keep it."""

    token: str


def _upload_fragments() -> tuple[str, ...]:
    # Forwarded paths take bodies up to the largest limit (pushes, blobs, logs); each
    # service applies its own, finer limit. Only the gateway's own routes keep the JSON one.
    return (".git/", *(f"{API_PREFIX}/{p}" for p in PREFIXES), f"{API_PREFIX}/feeds/")


def create_gateway_app(settings: Settings) -> FastAPI:
    """The gateway: one door in front of git, store and ci."""
    upstreams = {
        "git": Upstream("git", settings.git_url),
        "store": Upstream("store", settings.store_url),
        "ci": Upstream("ci", settings.ci_url),
    }
    state = ServiceState("gateway", settings, None, TokenSigner(settings.signing_key()))
    proxy = Proxy(upstreams, state.metrics)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        try:
            yield
        finally:
            await proxy.aclose()

    async def check_one(name: str) -> str | None:
        upstream = upstreams[name]
        if upstream.url is None:
            return f"{name} (no URL configured)"
        try:
            response = await proxy.client.get(upstream.target(b"/healthz", b""), timeout=HEALTH_TIMEOUT)
        except httpx.HTTPError as err:
            return f"{name} (not reachable: {type(err).__name__})"
        if response.status_code != 200:
            reason = ""
            try:
                reason = str(response.json().get("error", ""))
            except (ValueError, AttributeError):
                reason = ""
            return f"{name} ({reason or f'HTTP {response.status_code}'})"
        return None

    async def health() -> None:
        down = [p for p in await asyncio.gather(*(check_one(n) for n in PROXIED_SERVICES)) if p]
        if down:
            raise UnavailableError("unhealthy: " + ", ".join(down))

    app = create_app(
        state,
        title="Shipyard gateway",
        description=(
            "The one door to Shipyard: forwards /api/v1/... and git's smart HTTP to the "
            "services (their APIs: /api/v1/openapi/{service}.json) and issues tokens."
        ),
        lifespan=lifespan,
        upload_prefixes=_upload_fragments(),
        health=health,
    )
    app.state.proxy = proxy

    @app.get(f"{API_PREFIX}/whoami", tags=["tokens"], summary="Who this token belongs to")
    def whoami(claims: Auth) -> WhoAmI:
        return WhoAmI(subject=claims.subject, scopes=sorted(claims.scopes), expires_at=claims.expires_at)

    @app.post(
        f"{API_PREFIX}/tokens", status_code=201, tags=["tokens"],
        summary="Issue a signed token (admin)",
    )
    def issue_token(body: TokenRequest, claims: Auth) -> IssuedToken:
        claims.require("admin")
        token = state.signer.issue(body.subject, body.scopes, ttl=body.ttl)
        log.info("%s issued a token for %s with scopes %s%s", claims.subject, body.subject,
                 ",".join(sorted(set(body.scopes))) or "(none)",
                 f", valid {body.ttl:g} s" if body.ttl else "")
        return IssuedToken(token=token)

    def gateway_openapi() -> dict[str, Any]:
        return app.openapi()

    app.router.routes.extend(proxy_routes(proxy, gateway_openapi))
    return app

