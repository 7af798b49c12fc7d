"""Who may do what, and bad requests answered with a 4xx and a message, never a 500."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from shipyard.service import Settings, TokenSigner
from tests.store.conftest import Store, running_store, sha


def call(store: Store, method: str, path: str, token: str | None, **kwargs: Any) -> httpx.Response:
    headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
    return httpx.request(method, store.url + path, headers=headers, timeout=30, **kwargs)


class TestTokens:
    """A missing, forged or expired token is 401 everywhere."""

    ROUTES = [
        ("PUT", f"/blobs/{sha(b'x')}"), ("GET", f"/blobs/{sha(b'x')}"), ("HEAD", f"/blobs/{sha(b'x')}"),
        ("GET", "/artifacts?pipeline_id=1"), ("GET", "/artifacts/1/a"), ("POST", "/artifacts"),
        ("DELETE", "/artifacts/1/a"), ("GET", "/caches"), ("POST", "/caches"),
        ("GET", "/caches/lookup?repo=r&key=k&version=v"), ("DELETE", "/caches/1"),
        ("PUT", "/logs/1"), ("GET", "/logs/1"),
    ]  # fmt: skip

    def test_every_route_needs_a_valid_token(self, shared_store: Store) -> None:
        """No token, a forged one, an expired one: 401 with WWW-Authenticate."""
        forged = TokenSigner(b"another installation's secret!").issue("admin", ["admin"])
        expired = shared_store.token("admin", ttl=-10)
        for method, path in self.ROUTES:
            for token in (None, forged, expired, "garbage"):
                response = call(shared_store, method, path, token, content=b"x" if method in ("PUT", "POST") else None)
                assert response.status_code == 401, (method, path, token, response.text)
                assert response.headers["www-authenticate"] == 'Basic realm="shipyard"'
                if method != "HEAD":
                    assert response.json()["error"]


class TestScopes:
    """Scopes as docs/api.md lists them."""

    def test_artifacts_need_their_pipeline_scope(self, store: Store) -> None:
        """pipeline:<id> writes that pipeline's artifacts only; any token reads."""
        digest = store.put(b"zip")
        body = {"pipeline_id": 5, "name": "a", "digest": digest, "size": 3}
        wrong = store.token("pipeline:6", "cache:r", "logs:write")
        right = store.token("pipeline:5")
        reader = store.token("repos:read")
        assert call(store, "POST", "/artifacts", wrong, json=body).status_code == 403
        assert call(store, "POST", "/artifacts", right, json=body).status_code == 201
        assert call(store, "GET", "/artifacts/5/a", reader).status_code == 200
        assert call(store, "GET", "/artifacts?pipeline_id=5", reader).status_code == 200
        assert call(store, "DELETE", "/artifacts/5/a", wrong).status_code == 403
        assert call(store, "DELETE", "/artifacts/5/a", right).status_code == 204

    def test_caches_need_their_repository_scope(self, store: Store) -> None:
        """cache:<repo> looks up and saves that repository's caches; admin deletes."""
        digest = store.put(b"tar")
        body = {"repo": "octo/app", "key": "k", "version": "v", "digest": digest, "size": 3}
        wrong = store.token("cache:octo/other", "pipeline:1")
        right = store.token("cache:octo/app")
        assert call(store, "POST", "/caches", wrong, json=body).status_code == 403
        created = call(store, "POST", "/caches", right, json=body)
        assert created.status_code == 201
        query = "/caches/lookup?repo=octo/app&key=k&version=v"
        assert call(store, "GET", query, wrong).status_code == 403
        assert call(store, "GET", query, right).status_code == 200
        assert call(store, "GET", "/caches?repo=octo/app", wrong).status_code == 200
        assert call(store, "DELETE", f"/caches/{created.json()['id']}", right).status_code == 403
        assert call(store, "DELETE", f"/caches/{created.json()['id']}", store.token("admin")).status_code == 204

    def test_logs_need_logs_write_and_blobs_any_token(self, sqlite_store: Store) -> None:
        """Writing logs takes logs:write (or admin); reading logs and blobs takes any token."""
        store = sqlite_store
        job = store.token("job:1", "pipeline:1", "cache:r")
        forbidden = call(store, "PUT", "/logs/1", job, content=b"log")
        assert forbidden.status_code == 403
        assert "logs:write" in forbidden.json()["error"]
        assert call(store, "PUT", "/logs/1", store.token("logs:write"), content=b"log").status_code == 201
        assert call(store, "GET", "/logs/1", job).content == b"log"
        assert call(store, "PUT", f"/blobs/{sha(b'b')}", job, content=b"b").status_code == 201
        assert call(store, "GET", f"/blobs/{sha(b'b')}", store.token()).content == b"b"


class TestBadInput:
    """Malformed requests get a 4xx with a message."""

    @pytest.mark.parametrize(
        ("method", "path", "body"),
        [
            ("POST", "/artifacts", b"{not json"),
            ("POST", "/artifacts", b"[]"),
            ("POST", "/artifacts", json.dumps({"pipeline_id": "x", "name": "a", "digest": "0" * 64, "size": 1}).encode()),
            ("POST", "/artifacts", json.dumps({"pipeline_id": 1, "name": "a", "digest": "0" * 64, "size": 1, "extra": 1}).encode()),
            ("POST", "/artifacts", json.dumps({"pipeline_id": 2**70, "name": "a", "digest": "0" * 64, "size": 1}).encode()),
            ("POST", "/artifacts", json.dumps({"pipeline_id": 1, "name": "a", "digest": "Z" * 64, "size": 1}).encode()),
            ("POST", "/artifacts", json.dumps({"pipeline_id": 1, "name": "a", "digest": "0" * 64, "size": -1}).encode()),
            ("POST", "/artifacts", json.dumps({"pipeline_id": 1, "name": "", "digest": "0" * 64, "size": 1}).encode()),
            ("POST", "/artifacts", json.dumps({"pipeline_id": 1, "name": "a", "digest": "0" * 64, "size": 1, "files": "a"}).encode()),
            ("POST", "/caches", b"null"),
            ("POST", "/caches", json.dumps({"repo": "r", "key": "k" * 513, "version": "v", "digest": "0" * 64, "size": 1}).encode()),
            ("GET", "/artifacts", None),
            ("GET", "/artifacts?pipeline_id=abc", None),
            ("GET", "/artifacts?pipeline_id=1&limit=501", None),
            ("GET", "/artifacts?pipeline_id=1&limit=0", None),
            ("GET", "/artifacts/abc/a", None),
            ("GET", f"/artifacts/{2**64}/a", None),
            ("GET", "/caches/lookup?repo=r&key=k", None),
            ("GET", "/caches?before=-1", None),
            ("DELETE", "/caches/notanid", None),
            ("DELETE", f"/caches/{2**40}", None),
            ("PUT", "/logs/0", b"x"),
            ("PUT", f"/logs/{2**64}", b"x"),
            ("GET", "/logs/abc", None),
        ],
    )  # fmt: skip
    def test_malformed_requests_are_4xx(self, shared_store: Store, method: str, path: str, body: bytes | None) -> None:
        """Bad JSON, wrong types, out-of-range numbers, missing parameters: 4xx, never 500."""
        response = shared_store.http.request(
            method, path, content=body, headers={"content-type": "application/json"} if body else {}
        )
        assert 400 <= response.status_code < 500, (response.status_code, response.text)
        assert response.json()["error"]

    @pytest.mark.parametrize(
        ("method", "path"),
        [("GET", "/artifacts/1/nope"), ("DELETE", "/artifacts/1/nope"), ("DELETE", "/caches/12345"),
         ("GET", "/logs/12345"), ("GET", f"/blobs/{'a' * 64}"), ("GET", "/no/such/route")],
    )  # fmt: skip
    def test_unknown_things_are_404(self, shared_store: Store, method: str, path: str) -> None:
        """Unknown artifacts, caches, logs, blobs and routes are 404 with a message."""
        response = shared_store.http.request(method, path)
        assert response.status_code == 404
        assert response.json()["error"]

    def test_a_json_body_over_the_limit_is_413(self, sqlite_store: Store) -> None:
        """JSON bodies are limited to max_json_body."""
        body = {"pipeline_id": 1, "name": "a", "digest": "0" * 64, "size": 1, "files": ["f" * 1000] * 2000}
        response = sqlite_store.http.post("/artifacts", json=body)
        assert response.status_code == 413
        assert "over the limit" in response.json()["error"]


@pytest.fixture
def tiny_upload_store(sqlite_settings: Settings) -> Iterator[Store]:
    with running_store(sqlite_settings.model_copy(update={"max_upload_body": 1000})) as s:
        yield s


def test_an_upload_over_the_limit_is_413_and_leaves_nothing(tiny_upload_store: Store) -> None:
    """A blob bigger than max_upload_body is refused whether or not it announces its length."""
    store = tiny_upload_store
    data = b"x" * 5000
    announced = store.http.put(f"/blobs/{sha(data)}", content=data)
    assert announced.status_code == 413

    def chunks() -> Iterator[bytes]:
        for _ in range(5):
            yield b"x" * 1000

    streamed = store.http.put(f"/blobs/{sha(data)}", content=chunks())  # chunked: no length
    assert streamed.status_code == 413
    assert "over the limit" in streamed.json()["error"]
    assert store.temp_files() == []
    assert store.http.head(f"/blobs/{sha(data)}").status_code == 404
