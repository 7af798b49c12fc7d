"""The shared service app: errors as JSON, auth, body limits, health and metrics."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator

import httpx
import pytest
from fastapi import FastAPI, Request
from pydantic import BaseModel

from shipyard.errors import LocatedError, NotFoundError, ShipyardError, ValidationError
from shipyard.service import Auth, Database, ServiceState, Settings, TokenSigner, create_app
from tests.helpers.servers import serve_app


class Item(BaseModel):
    name: str
    count: int


def _app(settings: Settings) -> FastAPI:
    db = Database(*settings.database_for("demo"))
    state = ServiceState("demo", settings, db, TokenSigner(settings.signing_key()))
    app = create_app(state, title="demo", upload_prefixes=("/upload",))

    @app.post("/items")
    def make(item: Item, claims: Auth) -> dict[str, object]:
        return {"name": item.name, "by": claims.subject}

    @app.get("/missing/{n}")
    def missing(n: int) -> None:
        raise NotFoundError(f"no item {n}")

    @app.get("/located")
    def located() -> None:
        raise ValidationError([LocatedError("bad key")])

    @app.get("/plain")
    def plain() -> None:
        raise ShipyardError("refused")

    @app.get("/bug")
    def bug() -> None:
        raise RuntimeError("secret internals")

    @app.post("/upload")
    async def upload(request: Request) -> dict[str, int]:
        size = 0
        async for chunk in request.stream():
            size += len(chunk)
        return {"size": size}

    @app.post("/small")
    async def small(request: Request) -> dict[str, int]:
        return {"size": len(await request.body())}

    return app


@pytest.fixture
def served(settings: Settings) -> Iterator[tuple[str, str]]:
    app = _app(settings)
    token = TokenSigner(settings.signing_key()).issue("tester", ["admin"])
    with serve_app(app) as url:
        yield url, token


class TestErrors:
    """Every refusal is a 4xx JSON body with a message; a bug is a bare 500."""

    def test_request_error_keeps_its_status(self, served: tuple[str, str]) -> None:
        url, _ = served
        r = httpx.get(f"{url}/missing/3")
        assert (r.status_code, r.json()) == (404, {"error": "no item 3"})

    def test_located_errors_are_422_with_each_error(self, served: tuple[str, str]) -> None:
        r = httpx.get(f"{served[0]}/located")
        assert r.status_code == 422 and r.json()["errors"] == ["bad key"]

    def test_other_shipyard_errors_are_400(self, served: tuple[str, str]) -> None:
        r = httpx.get(f"{served[0]}/plain")
        assert (r.status_code, r.json()) == (400, {"error": "refused"})

    def test_bug_is_500_without_internals(self, served: tuple[str, str]) -> None:
        r = httpx.get(f"{served[0]}/bug")
        assert r.status_code == 500
        assert "secret internals" not in r.text and "Traceback" not in r.text

    def test_wrong_types_are_422_naming_the_field(self, served: tuple[str, str]) -> None:
        url, token = served
        r = httpx.post(f"{url}/items", json={"name": "a", "count": "many"},
                       headers={"Authorization": f"Bearer {token}"})
        assert r.status_code == 422 and "count" in r.json()["error"]

    def test_malformed_json_is_422(self, served: tuple[str, str]) -> None:
        url, token = served
        r = httpx.post(f"{url}/items", content=b"{not json",
                       headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"})
        assert r.status_code == 422 and "error" in r.json()

    def test_the_openapi_document_describes_the_422_that_is_sent(
        self, served: tuple[str, str]
    ) -> None:
        """Not FastAPI's default ``{"detail": [...]}``: the ``{"error": ...}`` body."""
        url, token = served
        doc = httpx.get(f"{url}/openapi.json").json()
        assert "HTTPValidationError" not in json.dumps(doc)
        invalid = doc["paths"]["/items"]["post"]["responses"]["422"]
        ref = invalid["content"]["application/json"]["schema"]["$ref"]
        schema = doc["components"]["schemas"][ref.rsplit("/", 1)[1]]
        assert schema["required"] == ["error"]
        sent = httpx.post(f"{url}/items", json={"count": 1},
                          headers={"Authorization": f"Bearer {token}"}).json()
        assert set(sent) <= set(schema["properties"]) and isinstance(sent["error"], str)

    def test_bad_path_parameter_is_422(self, served: tuple[str, str]) -> None:
        r = httpx.get(f"{served[0]}/missing/abc")
        assert r.status_code == 422

    def test_unknown_route_is_404_json(self, served: tuple[str, str]) -> None:
        r = httpx.get(f"{served[0]}/nowhere")
        assert r.status_code == 404 and "error" in r.json()


class TestAuth:
    """Tokens in a bearer header or as a basic-auth password."""

    def test_no_token_is_401_with_a_challenge(self, served: tuple[str, str]) -> None:
        r = httpx.post(f"{served[0]}/items", json={"name": "a", "count": 1})
        assert r.status_code == 401
        assert r.headers["www-authenticate"].startswith("Basic")

    def test_forged_token_is_401(self, served: tuple[str, str]) -> None:
        forged = TokenSigner(b"x" * 32).issue("admin", ["admin"])
        r = httpx.post(f"{served[0]}/items", json={"name": "a", "count": 1},
                       headers={"Authorization": f"Bearer {forged}"})
        assert r.status_code == 401 and "signature" in r.json()["error"]

    def test_basic_auth_password_is_the_token(self, served: tuple[str, str]) -> None:
        url, token = served
        basic = base64.b64encode(f"git:{token}".encode()).decode()
        r = httpx.post(f"{url}/items", json={"name": "a", "count": 1},
                       headers={"Authorization": f"Basic {basic}"})
        assert r.status_code == 200 and r.json()["by"] == "tester"

    def test_garbage_basic_auth_is_401(self, served: tuple[str, str]) -> None:
        r = httpx.post(f"{served[0]}/items", json={"name": "a", "count": 1},
                       headers={"Authorization": "Basic %%%"})
        assert r.status_code == 401


class TestBodyLimits:
    """Bodies over the limit are 413, by header or by counting a stream."""

    def test_declared_length_over_limit(self, served: tuple[str, str], settings: Settings) -> None:
        r = httpx.post(f"{served[0]}/small", content=b"x" * (settings.max_json_body + 1))
        assert r.status_code == 413 and "limit" in r.json()["error"]

    def test_streamed_body_over_limit(self, served: tuple[str, str], settings: Settings) -> None:
        def chunks() -> Iterator[bytes]:
            for _ in range(settings.max_json_body // 65536 + 2):
                yield b"x" * 65536

        r = httpx.post(f"{served[0]}/small", content=chunks())
        assert r.status_code == 413

    def test_upload_paths_take_large_bodies(self, served: tuple[str, str], settings: Settings) -> None:
        size = settings.max_json_body * 3
        r = httpx.post(f"{served[0]}/upload", content=b"x" * size)
        assert r.status_code == 200 and r.json() == {"size": size}


class TestOperations:
    """Health and metrics."""

    def test_healthz(self, served: tuple[str, str]) -> None:
        r = httpx.get(f"{served[0]}/healthz")
        assert r.json() == {"status": "ok", "service": "demo"}

    def test_metrics_count_requests_by_route_template(self, served: tuple[str, str]) -> None:
        url = served[0]
        httpx.get(f"{url}/missing/1")
        httpx.get(f"{url}/missing/2")
        text = httpx.get(f"{url}/metrics").text
        assert 'route="/missing/{n}",service="demo",status="404"} 2.0' in text
        assert "shipyard_http_request_duration_seconds_bucket" in text

    def test_unhealthy_when_a_check_fails(self, sqlite_settings: Settings) -> None:
        async def broken() -> None:
            raise RuntimeError("disk gone")

        state = ServiceState("demo", sqlite_settings, None, TokenSigner(sqlite_settings.signing_key()))
        app = create_app(state, title="demo", health=broken)
        transport = httpx.ASGITransport(app=app)

        async def call() -> httpx.Response:
            async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
                return await client.get("/healthz")

        import anyio

        r = anyio.run(call)
        assert r.status_code == 503 and "disk gone" in r.json()["error"]


