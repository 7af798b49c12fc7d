"""Generated requests, valid and invalid by git's own OpenAPI document, never get a 5xx."""

from __future__ import annotations

import random
import time
from dataclasses import dataclass
from typing import Any

import pytest
import requests

from tests.git.conftest import ZERO, Served
from tests.helpers.fuzz import (
    Fuzz,
    FuzzCase,
    Prepare,
    bad_credentials,
    bearer,
    load_schema,
    no_waiting,
    raw_exchange,
    raw_status,
    steer,
)


@dataclass
class Seeded:
    """A repository with history, so generated cases can name things that exist."""

    served: Served
    document: dict[str, Any]
    real: dict[str, list[Any]]


@pytest.fixture(scope="module")
def seeded(served_sqlite: Served) -> Seeded:
    s = served_sqlite
    assert s.api("POST", "/repos", json={"name": "fuzz/app"}).status_code == 201
    wt = s.checkout("fuzz/app")
    first = s.commit(wt, {
        ".github/workflows/ci.yml": "on: push\njobs: {}\n",
        "src/main.py": "print(1)\n",
        "data.bin": bytes(range(256)),
    }, message="first")
    second = s.commit(wt, {"src/main.py": "print(2)\n", "docs/a b.md": "spaces\n"}, message="second")
    s.git(wt, "push", "-q", "origin", "main", "HEAD~1:refs/heads/feature/x", "HEAD:refs/tags/v1")
    assert s.api("POST", "/repos", json={"name": "empty"}).status_code == 201
    document = s.api("GET", "/openapi.json").json()
    revs = ["main", "HEAD", "v1", "feature/x", first, second, second[:7], ZERO, "HEAD~1", "main^{tree}"]
    paths = ["", "src", "src/main.py", "data.bin", ".github/", "docs/a b.md", "nope"]
    real: dict[str, list[Any]] = {
        "name": ["fuzz/app", "empty"],
        "rev": revs, "base": revs, "head": revs,
        "path": paths, "prefix": [[p] for p in paths] + [paths],
    }
    return Seeded(s, document, real)


def _prepare(real: dict[str, list[Any]]) -> Prepare:
    def prepare(case: FuzzCase, rng: random.Random) -> None:
        if case.method.upper() == "DELETE":  # the seeded repositories stay for the other cases
            return
        steer(case, rng, real)
        if case.path == "/repos" and isinstance(case.body, dict) and rng.random() < 0.3:
            case.body["name"] = f"made/r{rng.randrange(10**9)}"  # some creations succeed
        no_waiting(case)

    return prepare


def test_valid_token_no_generated_request_gets_a_server_error(seeded: Seeded) -> None:
    """Admin, cases valid and invalid: no 5xx; 2xx answers are as documented."""
    fuzz = Fuzz(
        load_schema(seeded.document, seeded.served.url), {"admin": bearer(seeded.served.admin)},
        valid=True, max_examples=25, prepare=_prepare(seeded.real),
    ).run()
    assert fuzz.problems == [], fuzz.report()
    # Most operations were reached past validation, into the code that does the work.
    assert len(fuzz.succeeded()) >= 2 * len(fuzz.statuses) // 3, fuzz.summary()


def test_bad_tokens_no_generated_request_is_accepted_or_gets_a_server_error(seeded: Seeded) -> None:
    """Missing, forged, tampered or expired tokens: refused (401), never a 5xx."""
    fuzz = Fuzz(
        load_schema(seeded.document, seeded.served.url), bad_credentials(seeded.served.signer),
        valid=False, max_examples=10, prepare=_prepare(seeded.real),
    ).run()
    assert fuzz.problems == [], fuzz.report()
    refused = {key for key, counts in fuzz.statuses.items() if 401 in counts}
    assert set(fuzz.statuses) - refused <= set(fuzz.public), fuzz.summary()


# -- what the fuzzing leaves out: long polls, git's own protocol, broken HTTP ------------

GARBAGE = [b"garbage", b"", b"0000", b"00", b"0032want " + ZERO.encode() + b"\n0000",
           b"0014command=bogus\n0000", b"\xff" * 70_000]


def test_a_long_poll_with_a_bad_token_is_refused_at_once(seeded: Seeded) -> None:
    """GET /events?wait=30 with each bad token: 401 before any waiting."""
    with requests.Session() as http:
        for name, headers in bad_credentials(seeded.served.signer).items():
            started = time.monotonic()
            r = http.get(f"{seeded.served.url}/events", params={"wait": 30}, headers=headers, timeout=60)
            assert (r.status_code, name) == (401, name), r.text
            assert time.monotonic() - started < 5, name
        weak = bearer(seeded.served.token("repos:read"))  # valid, but not for the feed
        started = time.monotonic()
        r = http.get(f"{seeded.served.url}/events", params={"wait": 30}, headers=weak, timeout=60)
        assert r.status_code == 403 and time.monotonic() - started < 5


@pytest.mark.parametrize("params", [
    {"wait": "nan"}, {"wait": "-1"}, {"wait": "-inf"}, {"wait": "soon"}, {"wait": ""},
    {"after": "-1"}, {"after": str(2**63)}, {"after": str(10**30)}, {"after": "1.5"},
    {"limit": "0"}, {"limit": "501"},
])
def test_a_long_poll_with_bad_parameters_is_refused_at_once(seeded: Seeded, params: dict[str, str]) -> None:
    with requests.Session() as http:
        started = time.monotonic()
        r = http.get(f"{seeded.served.url}/events", params={"wait": "30", **params},
                     headers=bearer(seeded.served.admin), timeout=60)
    assert r.status_code == 422 and r.json()["error"], r.text
    assert time.monotonic() - started < 5


@pytest.mark.parametrize("service", ["git-upload-pack", "git-receive-pack"])
def test_garbage_in_git_protocol_gets_no_server_error_and_changes_nothing(
    seeded: Seeded, service: str
) -> None:
    """Bodies that are not git's protocol, plain or gzipped, v0 or v2: never a 5xx, no ref moves."""
    s = seeded.served
    before = s.api("GET", "/repos/fuzz/app/refs").json()
    with requests.Session() as http:
        for body in GARBAGE:
            for extra in ({}, {"Content-Encoding": "gzip"}, {"Git-Protocol": "version=2"}):
                headers = {**bearer(s.admin), "Content-Type": f"application/x-{service}-request", **extra}
                r = http.post(f"{s.url}/fuzz/app.git/{service}", data=body, headers=headers, timeout=60)
                assert r.status_code < 500, (body[:20], extra, r.status_code, r.text[:200])
        for name, headers in bad_credentials(s.signer).items():
            r = http.post(f"{s.url}/fuzz/app.git/{service}", data=b"0000", headers=headers, timeout=60)
            assert (r.status_code, name) == (401, name)
    assert s.api("GET", "/repos/fuzz/app/refs").json() == before


@pytest.mark.parametrize(("query", "headers", "status"), [
    ("", {}, 400),
    ("?service=git-bogus", {}, 422),
    ("?service=git-upload-pack", {"Git-Protocol": "version=2;rm -rf"}, 400),
    ("?service=git-upload-pack", {"Git-Protocol": "v" * 300}, 400),
])
def test_bad_smart_http_discovery_is_refused(
    seeded: Seeded, query: str, headers: dict[str, str], status: int
) -> None:
    r = seeded.served.api("GET", f"/fuzz/app.git/info/refs{query}", headers=headers)
    assert r.status_code == status and r.json()["error"], r.text


def test_a_push_cut_short_leaves_the_repository_usable(seeded: Seeded) -> None:
    """A client hanging up mid-push: the lock is released, the next push is served."""
    s = seeded.served
    before = s.api("GET", "/repos/fuzz/app/refs").json()
    head = (f"POST /fuzz/app.git/git-receive-pack HTTP/1.1\r\nHost: x\r\n"
            f"Authorization: Bearer {s.admin}\r\n"
            "Content-Type: application/x-git-receive-pack-request\r\n"
            "Content-Length: 100000\r\n\r\n").encode()
    assert raw_exchange(s.url, head + b"00a0" + b"0" * 500, hang_up=True) == b""
    started = time.monotonic()
    r = s.api("POST", "/fuzz/app.git/git-receive-pack", content=b"0000",
              headers={"Content-Type": "application/x-git-receive-pack-request"})
    assert r.status_code == 200 and time.monotonic() - started < 10
    assert s.api("GET", "/healthz").status_code == 200
    assert s.api("GET", "/repos/fuzz/app/refs").json() == before


@pytest.mark.parametrize(("request_head", "status"), [
    (b"POST /repos HTTP/1.1\r\nContent-Length: many\r\n", 400),
    (b"POST /repos HTTP/1.1\r\nContent-Length: 5000000\r\n", 413),
    (b"POST /repos HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", 400),
    (b"GET /repos HTTP/1.1\r\nX-Bad: a\x7fb\r\n", 400),
    (b"GET /repos/%ff%fe/refs HTTP/1.1\r\n", 400),
    (b"GET /repos/../../events HTTP/1.1\r\n", 404),
])
def test_malformed_http_gets_a_4xx(seeded: Seeded, request_head: bytes, status: int) -> None:
    first, rest = request_head.split(b"\r\n", 1)
    auth = f"Authorization: Bearer {seeded.served.admin}\r\n".encode()
    data = first + b"\r\nHost: x\r\nConnection: close\r\n" + auth + rest
    data += b"" if b"\r\n\r\n" in rest else b"\r\n"
    assert raw_status(raw_exchange(seeded.served.url, data)) == status
