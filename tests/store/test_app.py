"""The store app as a whole: its background collector, metrics, OpenAPI, concurrency."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor

import httpx

from shipyard.service import Settings
from tests.store.conftest import Store, running_store, sha


def test_the_collector_runs_in_the_background(sqlite_settings: Settings) -> None:
    """While the app is up, garbage is collected every gc_interval seconds."""
    with running_store(sqlite_settings, gc_grace=0.0, gc_interval=0.05) as store:
        digest = store.put(b"garbage")
        deadline = time.monotonic() + 10
        while store.http.head(f"/blobs/{digest}").status_code == 200:
            assert time.monotonic() < deadline, "the background collector never ran"
            time.sleep(0.05)


def test_metrics_count_bytes_and_blobs(store: Store) -> None:
    """/metrics reports the bytes and the number of blobs stored."""
    store.put(b"12345")
    store.put(b"123")
    text = httpx.get(f"{store.url}/metrics").text
    assert "shipyard_store_bytes 8.0" in text
    assert "shipyard_store_blobs 2.0" in text


def test_openapi_and_health(shared_store: Store) -> None:
    """Every route is in the OpenAPI document; /healthz answers."""
    doc = httpx.get(f"{shared_store.url}/openapi.json").json()
    assert set(doc["paths"]) >= {
        "/blobs/{digest}", "/artifacts", "/artifacts/{pipeline_id}/{name}", "/caches",
        "/caches/lookup", "/caches/{entry_id}", "/logs/{job_id}",
    }  # fmt: skip
    assert set(doc["paths"]["/blobs/{digest}"]) == {"put", "get", "head"}
    assert httpx.get(f"{shared_store.url}/healthz").json() == {"status": "ok", "service": "store"}


def test_concurrent_uploads_of_the_same_blob_store_it_once(store: Store) -> None:
    """Eight clients putting the same bytes at once: one 201, the rest 200, one blob."""
    data = b"same bytes" * 100_000
    digest = sha(data)

    def put(_: int) -> int:
        with httpx.Client(base_url=store.url, headers=store.auth("admin"), timeout=30) as http:
            return http.put(f"/blobs/{digest}", content=data).status_code

    with ThreadPoolExecutor(8) as pool:
        statuses = sorted(pool.map(put, range(8)))
    assert statuses == [200] * 7 + [201]
    assert store.http.get(f"/blobs/{digest}").content == data
    assert store.temp_files() == []
