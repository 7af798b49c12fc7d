"""Generated requests, valid and invalid by the store's own OpenAPI document, never get a 5xx."""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
import requests

from tests.helpers.databases import service_settings
from tests.helpers.fuzz import (
    Fuzz,
    FuzzCase,
    Prepare,
    bad_credentials,
    bearer,
    load_schema,
    raw_exchange,
    raw_status,
    steer,
)
from tests.store.conftest import Store, running_store, sha


@dataclass
class Seeded:
    """A store holding a blob, an artifact, a cache entry and a log to aim cases at."""

    store: Store
    document: dict[str, Any]
    real: dict[str, list[Any]]

    @property
    def admin(self) -> str:
        return self.store.token("admin")


@pytest.fixture(scope="module")
def seeded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Seeded]:
    with service_settings("sqlite", tmp_path_factory.mktemp("store-fuzz")) as settings, \
            running_store(settings) as store:
        data = bytes(range(256)) * 8
        digest = store.put(data)
        http = store.http
        artifact = http.post("/artifacts", json={
            "pipeline_id": 7, "name": "dist", "digest": digest, "size": len(data), "files": ["a"],
        })
        assert artifact.status_code == 201, artifact.text
        cache = http.post("/caches", json={
            "repo": "demo", "key": "deps-1", "version": "v1", "digest": digest, "size": len(data),
        })
        assert cache.status_code == 201, cache.text
        log = http.put("/logs/3", content=b"line one\nline two\n")
        assert log.status_code == 201, log.text
        document = http.get("/openapi.json").json()
        real: dict[str, list[Any]] = {
            "digest": [digest, sha(b"not stored")],
            "size": [len(data)],
            "pipeline_id": [7],
            "name": ["dist", "other"],
            "job_id": [3, 4],
            "entry_id": [cache.json()["id"]],
            "repo": ["demo"],
            "key": ["deps-1", "deps-", "nope"],
            "restore_keys": [["deps-"], ["x", "deps"], []],
            "version": ["v1", "v2"],
            "range": ["bytes=0-0", "bytes=5-", "bytes=-3", "bytes=-0", "bytes=0-", "bytes=9-2",
                      "bytes=4000-5000", "bytes=0-99999999999999999999999", "bytes=0-1,4-5",
                      "bytes=--1", "items=0-1", "bytes=", "bytes=-99999999999999999999"],
        }
        yield Seeded(store, document, real)


def _prepare(real: dict[str, list[Any]]) -> Prepare:
    def prepare(case: FuzzCase, rng: random.Random) -> None:
        if case.method.upper() == "DELETE":  # the seeded records stay for the other cases
            return
        steer(case, rng, real)
        if case.path == "/blobs/{digest}" and case.method.upper() == "PUT" and rng.random() < 0.4:
            case.body = rng.randbytes(rng.choice([0, 1, 100, 70_000]))  # under its own digest
            case.path_parameters["digest"] = sha(case.body)

    return prepare


def test_valid_token_no_generated_request_gets_a_server_error(seeded: Seeded) -> None:
    """Admin, cases valid and invalid: no 5xx; 2xx answers are as documented."""
    fuzz = Fuzz(
        load_schema(seeded.document, seeded.store.url), {"admin": bearer(seeded.admin)},
        valid=True, max_examples=25, prepare=_prepare(seeded.real),
    ).run()
    assert fuzz.problems == [], fuzz.report()
    # Most operations were reached past validation, into the code that does the work.
    assert len(fuzz.succeeded()) >= 2 * len(fuzz.statuses) // 3, fuzz.summary()


def test_bad_tokens_no_generated_request_is_accepted_or_gets_a_server_error(seeded: Seeded) -> None:
    """Missing, forged, tampered or expired tokens: refused (401), never a 5xx."""
    fuzz = Fuzz(
        load_schema(seeded.document, seeded.store.url), bad_credentials(seeded.store.signer),
        valid=False, max_examples=10, prepare=_prepare(seeded.real),
    ).run()
    assert fuzz.problems == [], fuzz.report()
    refused = {key for key, counts in fuzz.statuses.items() if 401 in counts}
    assert set(fuzz.statuses) - refused <= set(fuzz.public), fuzz.summary()


# -- what the fuzzing leaves out: streamed bodies with bad tokens, broken HTTP -----------


def test_streams_with_a_bad_token_are_refused_and_store_nothing(seeded: Seeded) -> None:
    """Blob and log uploads and downloads with each bad token: 401, no bytes either way."""
    store = seeded.store
    data = b"secret bytes " * 1000
    digest = sha(data)
    with requests.Session() as http:
        for name, headers in bad_credentials(store.signer).items():
            for method, path, body in [
                ("PUT", f"/blobs/{digest}", data), ("PUT", "/logs/99", data),
                ("GET", f"/blobs/{seeded.real['digest'][0]}", None), ("GET", "/logs/3", None),
                ("HEAD", f"/blobs/{seeded.real['digest'][0]}", None),
            ]:
                r = http.request(method, store.url + path, data=body, headers=headers, timeout=30)
                assert (r.status_code, name, path) == (401, name, path)
                assert b"line one" not in r.content and bytes(range(16)) not in r.content
    assert store.http.head(f"/blobs/{digest}").status_code == 404
    assert store.http.get("/logs/99").status_code == 404


@pytest.mark.parametrize("range_header", [
    "bytes=0-99999999999999999999999999", "bytes=-99999999999999999999999999",
    "bytes=99999999999999999999999999-", "bytes=1-0", "bytes=-", "bytes=0-1,2-3",
    "bytes=\u00e9-1", "pages=0-1", "bytes=0x10-0x20", "bytes= 1 - 2 ",
])
def test_any_range_gets_an_answer_not_a_server_error(seeded: Seeded, range_header: str) -> None:
    """The bytes, a part of them, 416, or 400 for a malformed header."""
    with requests.Session() as http:
        for path in (f"/blobs/{seeded.real['digest'][0]}", "/logs/3"):
            headers = {**bearer(seeded.admin), "Range": range_header}
            r = http.get(seeded.store.url + path, headers=headers, timeout=30)
            assert r.status_code in (200, 206, 400, 416), (path, r.status_code, r.text[:200])
            if r.status_code >= 400:
                assert r.json()["error"]


@pytest.mark.parametrize(("request_head", "status"), [
    (b"PUT /blobs/%s HTTP/1.1\r\nContent-Length: lots\r\n", 400),
    (b"PUT /blobs/%s HTTP/1.1\r\nContent-Length: 99999999999999\r\n", 413),
    (b"PUT /blobs/%s HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", 400),
    (b"POST /artifacts HTTP/1.1\r\nContent-Length: 2000000\r\n", 413),
    (b"POST /artifacts HTTP/1.1\r\nContent-Type: application/json\r\nContent-Length: 5\r\n\r\n{bad}", 422),
    (b"POST /caches HTTP/1.1\r\nContent-Type: text/plain\r\nContent-Length: 2\r\n\r\n{}", 422),
    (b"GET /logs/1%00 HTTP/1.1\r\n", 422),
    (b"GET /blobs/%s HTTP/1.1\r\nRange: bytes=0-1\r\nRange: bytes=5-6\r\n", 206),
])
def test_malformed_http_gets_a_4xx(seeded: Seeded, request_head: bytes, status: int) -> None:
    if b"%s" in request_head:
        request_head = request_head.replace(b"%s", seeded.real["digest"][0].encode())
    first, rest = request_head.split(b"\r\n", 1)
    auth = f"Authorization: Bearer {seeded.admin}\r\n".encode()
    data = first + b"\r\nHost: x\r\nConnection: close\r\n" + auth + rest
    data += b"" if b"\r\n\r\n" in rest else b"\r\n"
    assert raw_status(raw_exchange(seeded.store.url, data)) == status
