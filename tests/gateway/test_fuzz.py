"""Generated requests, valid and invalid, to the gateway (its own OpenAPI document, and the
services' documents through it) never get a 5xx."""

from __future__ import annotations

import random
import time
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
import requests

from shipyard import ci, git, store
from shipyard.gateway import PREFIXES, create_app
from shipyard.service import Settings, TokenSigner
from tests.helpers.databases import service_settings
from tests.helpers.fuzz import (
    Fuzz,
    FuzzCase,
    bad_credentials,
    bearer,
    load_schema,
    no_waiting,
    raw_exchange,
    raw_status,
)
from tests.helpers.servers import serve_app

API = "/api/v1"

#: Long polls: covered by the hand-written requests below.
LONG_POLLS = ("POST /runners/claim",)


@dataclass
class Platform:
    """A gateway in front of real git, store and ci services (SQLite)."""

    url: str
    settings: Settings
    signer: TokenSigner
    admin: str
    documents: dict[str, dict[str, Any]]

    def api(self, token: str | None = None) -> httpx.Client:
        headers = bearer(token) if token is not None else {}
        return httpx.Client(base_url=self.url + API, headers=headers, timeout=30)


@pytest.fixture(scope="module")
def platform(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Platform]:
    with ExitStack() as stack:
        base = stack.enter_context(service_settings("sqlite", tmp_path_factory.mktemp("gw-fuzz")))
        urls = {
            "git": stack.enter_context(serve_app(git.create_app(base))),
            "store": stack.enter_context(serve_app(store.create_app(base))),
        }
        settings = base.model_copy(update={"git_url": urls["git"], "store_url": urls["store"]})
        # A short feed wait, so git is not left answering a long poll when the test ends.
        urls["ci"] = stack.enter_context(serve_app(ci.create_app(settings, feed_wait=1.0)))
        settings = settings.model_copy(update={"ci_url": urls["ci"]})
        url = stack.enter_context(serve_app(create_app(settings)))
        signer = TokenSigner(settings.signing_key())
        admin = signer.issue("admin", ["admin"])
        documents = {}
        with httpx.Client(base_url=url, timeout=30) as http:
            documents["gateway"] = http.get("/openapi.json").json()
            for service in ("git", "store", "ci"):
                response = http.get(f"{API}/openapi/{service}.json")
                assert response.status_code == 200, response.text
                documents[service] = response.json()
            assert http.post(f"{API}/repos", json={"name": "demo"}, headers=bearer(admin)).status_code == 201
        yield Platform(url, settings, signer, admin, documents)


def _forwarded(document: dict[str, Any]) -> dict[str, Any]:
    """``document`` with only the paths the gateway forwards under /api/v1."""
    paths = {p: ops for p, ops in document["paths"].items() if p.split("/")[1] in PREFIXES}
    return {**document, "paths": paths}


def _no_waiting(case: FuzzCase, _rng: random.Random) -> None:
    no_waiting(case)


# -- the gateway's own routes --------------------------------------------------------


def test_own_routes_valid_token_no_generated_request_gets_a_server_error(platform: Platform) -> None:
    """Admin, cases valid and invalid: no 5xx; 2xx answers are as documented."""
    fuzz = Fuzz(
        load_schema(platform.documents["gateway"], platform.url), {"admin": bearer(platform.admin)},
        valid=True, max_examples=60,
    ).run()
    assert fuzz.problems == [], fuzz.report()
    assert fuzz.succeeded() == set(fuzz.statuses), fuzz.summary()


def test_own_routes_bad_tokens_no_generated_request_is_accepted_or_gets_a_server_error(
    platform: Platform,
) -> None:
    """Missing, forged, tampered or expired tokens: refused (401), never a 5xx."""
    fuzz = Fuzz(
        load_schema(platform.documents["gateway"], platform.url), bad_credentials(platform.signer),
        valid=False, max_examples=40,
    ).run()
    assert fuzz.problems == [], fuzz.report()
    refused = {key for key, counts in fuzz.statuses.items() if 401 in counts}
    assert set(fuzz.statuses) - refused <= set(fuzz.public), fuzz.summary()


# -- the services, through the gateway -----------------------------------------------


@pytest.mark.parametrize("service", ["git", "store", "ci"])
def test_forwarded_valid_token_no_generated_request_gets_a_server_error(
    platform: Platform, service: str
) -> None:
    """Each service's API through the gateway, as admin: no 5xx, answers as documented."""
    fuzz = Fuzz(
        load_schema(_forwarded(platform.documents[service]), platform.url + API),
        {"admin": bearer(platform.admin)}, valid=True, max_examples=8, coverage=False,
        skip=LONG_POLLS, prepare=_no_waiting,
    ).run()
    assert fuzz.sent > 50
    assert fuzz.problems == [], fuzz.report()


@pytest.mark.parametrize("service", ["git", "store", "ci"])
def test_forwarded_bad_tokens_no_generated_request_is_accepted_or_gets_a_server_error(
    platform: Platform, service: str
) -> None:
    """Each service's API through the gateway with bad tokens: refused, never a 5xx."""
    fuzz = Fuzz(
        load_schema(_forwarded(platform.documents[service]), platform.url + API),
        bad_credentials(platform.signer), valid=False, max_examples=4, coverage=False,
        skip=LONG_POLLS, prepare=_no_waiting,
    ).run()
    assert fuzz.problems == [], fuzz.report()


# -- what the fuzzing leaves out: long polls, streams and broken HTTP, through the gateway -

#: Requests that would wait 30 s if they were let through.
WAITING = [
    ("GET", "/feeds/git", {"params": {"wait": 30}}),
    ("GET", "/feeds/ci", {"params": {"wait": 30}}),
    ("GET", "/jobs/1/log", {"params": {"follow": "true"}}),
    ("POST", "/runners/claim", {"json": {"wait": 30, "slots": 1}}),
]


def test_long_polls_with_a_bad_token_are_refused_at_once(platform: Platform) -> None:
    """Feeds, followed logs and runner claims with each bad token: 401 before any waiting."""
    with requests.Session() as http:
        for name, headers in bad_credentials(platform.signer).items():
            for method, path, options in WAITING:
                started = time.monotonic()
                r = http.request(method, platform.url + API + path, headers=headers, timeout=60,
                                 **options)  # type: ignore[arg-type]
                assert (r.status_code, name, path) == (401, name, path), r.text
                assert r.headers["www-authenticate"] == 'Basic realm="shipyard"'
                assert time.monotonic() - started < 5, (name, path)


@pytest.mark.parametrize(("method", "path", "options", "status"), [
    ("GET", "/feeds/git", {"params": {"wait": "nan"}}, 422),
    ("GET", "/feeds/git", {"params": {"wait": 30, "after": str(2**64)}}, 422),
    ("GET", "/feeds/ci", {"params": {"wait": 30, "after": "-1"}}, 422),
    ("GET", "/feeds/ci", {"params": {"wait": "soon"}}, 422),
    ("GET", "/feeds/nope", {"params": {"wait": 30}}, 404),
    ("GET", "/feeds/", {}, 404),
    ("GET", "/feeds/git/more", {}, 404),
    ("GET", "/feeds/store", {"params": {"wait": 30}}, 404),
    ("GET", "/openapi/nope.json", {}, 404),
    ("GET", "/jobs/999999/log", {"params": {"follow": "true"}}, 404),
    ("GET", "/jobs/1/log", {"params": {"follow": "maybe"}}, 422),
    ("GET", "/jobs/99999999999999999999/log", {"params": {"follow": "true"}}, 422),
    ("POST", "/runners/claim", {"json": {"wait": 30, "slots": 1}}, 403),  # admin is no runner
    ("POST", "/runners/claim", {"json": {"wait": "soon"}}, 422),
    ("POST", "/runners/claim", {"data": b"{not json", "headers": {"Content-Type": "application/json"}}, 422),
])
def test_long_polls_with_bad_parameters_are_refused_at_once(
    platform: Platform, method: str, path: str, options: dict[str, Any], status: int
) -> None:
    headers = {**bearer(platform.admin), **options.pop("headers", {})}
    started = time.monotonic()
    r = requests.request(method, platform.url + API + path, headers=headers, timeout=60, **options)
    assert r.status_code == status and r.json()["error"], r.text
    assert time.monotonic() - started < 5


@pytest.mark.parametrize(("header", "status"), [
    (b"X-Padded:  value  ", 200),
    (b"X-Latin: \xff\xfe", 200),
    (b"X-Tab: a\tb", 200),
    (b"X-Bad: a\x7fb", 400),
    (b"X-Bad: a\x0bb", 400),
    (b"Connection: close, authorization", 401),  # the token made hop-by-hop: not forwarded
])
def test_odd_header_values_get_an_answer_from_the_service_or_a_4xx(
    platform: Platform, header: bytes, status: int
) -> None:
    """What the gateway's server lets through, its client to the service must send on."""
    for path in (b"/api/v1/repos", b"/api/v1/caches", b"/api/v1/pipelines"):
        data = (b"GET " + path + b" HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
                + f"Authorization: Bearer {platform.admin}\r\n".encode() + header + b"\r\n\r\n")
        assert raw_status(raw_exchange(platform.url, data)) == status, (path, header)


@pytest.mark.parametrize(("authorization", "status"), [
    (b"Bearer %s  ", 200), (b"Bearer \t%s", 200), (b"Bearer ", 401), (b"Basic ", 401),
])
def test_an_authorization_padded_with_whitespace_is_forwarded(
    platform: Platform, authorization: bytes, status: int
) -> None:
    """Regression: a header value ending in whitespace made the gateway answer 503."""
    value = authorization.replace(b"%s", platform.admin.encode())
    for path in (b"/api/v1/repos", b"/api/v1/caches", b"/api/v1/pipelines", b"/api/v1/feeds/git"):
        data = (b"GET " + path + b" HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
                b"Authorization: " + value + b"\r\n\r\n")
        assert raw_status(raw_exchange(platform.url, data)) == status, (path, value)


@pytest.mark.parametrize(("request_head", "status"), [
    (b"POST /api/v1/tokens HTTP/1.1\r\nContent-Length: lots\r\n", 400),
    (b"POST /api/v1/tokens HTTP/1.1\r\nContent-Length: 2000000\r\n", 413),
    (b"PUT /api/v1/blobs/" + b"0" * 64 + b" HTTP/1.1\r\nContent-Length: 99999999999999\r\n", 413),
    (b"PUT /api/v1/blobs/" + b"0" * 64 + b" HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", 400),
    (b"POST /api/v1/tokens HTTP/1.1\r\nContent-Type: application/json\r\nContent-Length: 5\r\n\r\n{bad}", 422),
    (b"GET /api/v1/%ff HTTP/1.1\r\n", 404),
])
def test_malformed_http_to_the_gateway_gets_a_4xx(platform: Platform, request_head: bytes, status: int) -> None:
    first, rest = request_head.split(b"\r\n", 1)
    auth = f"Authorization: Bearer {platform.admin}\r\n".encode()
    data = first + b"\r\nHost: x\r\nConnection: close\r\n" + auth + rest
    data += b"" if b"\r\n\r\n" in rest else b"\r\n"
    assert raw_status(raw_exchange(platform.url, data)) == status


@pytest.mark.parametrize("path", [
    b"/api/v1/repos/../../events", b"/api/v1/blobs/../../events", b"/demo.git/../../events",
    b"/api/v1/repos/%2e%2e/%2E%2E/metrics", b"/api/v1/repos/./demo",
])
def test_dot_segments_in_a_path_are_refused(platform: Platform, path: bytes) -> None:
    """A forwarded URL would lose its ``..`` segments and reach another route than the one
    that matched here: the gateway refuses such paths."""
    auth = f"Authorization: Bearer {platform.admin}\r\n".encode()
    data = b"GET " + path + b" HTTP/1.1\r\nHost: x\r\nConnection: close\r\n" + auth + b"\r\n"
    assert raw_status(raw_exchange(platform.url, data)) in (400, 404)


def test_bodies_cut_short_leave_the_gateway_and_the_services_healthy(platform: Platform) -> None:
    """A blob upload and a push whose clients hang up halfway: everything still answers."""
    auth = f"Authorization: Bearer {platform.admin}\r\n".encode()
    for head in (
        b"PUT /api/v1/blobs/" + b"0" * 64 + b" HTTP/1.1\r\n",
        b"PUT /api/v1/logs/12 HTTP/1.1\r\n",
        b"POST /demo.git/git-receive-pack HTTP/1.1\r\nContent-Type: application/x-git-receive-pack-request\r\n",
    ):
        data = head + b"Host: x\r\n" + auth + b"Content-Length: 1000000\r\n\r\n" + b"0" * 1000
        assert raw_exchange(platform.url, data, hang_up=True) == b""
    deadline = time.monotonic() + 10
    with platform.api(platform.admin) as api:
        while (health := httpx.get(platform.url + "/healthz")).status_code != 200:
            assert time.monotonic() < deadline, health.text
            time.sleep(0.05)
        assert api.get("/logs/12").status_code == 404  # nothing half-stored
        assert api.get("/repos/demo/refs").json()["refs"] == {}
    # The cut push let go of the repository's lock: the next one is served.
    r = httpx.post(platform.url + "/demo.git/git-receive-pack", content=b"0000", timeout=10,
                   headers={**bearer(platform.admin),
                            "Content-Type": "application/x-git-receive-pack-request"})
    assert r.status_code == 200
