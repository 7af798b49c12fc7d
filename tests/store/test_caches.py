"""Caches: GitHub's lookup rule, immutability, least-recently-used eviction."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from shipyard.service import Settings
from tests.store.conftest import Store, running_store


def save(store: Store, key: str, version: str = "v1", repo: str = "octo/app", data: bytes | None = None) -> dict[str, Any]:
    blob = data if data is not None else f"archive of {key} {version} {repo}".encode()
    digest = store.put(blob)
    response = store.http.post(
        "/caches", json={"repo": repo, "key": key, "version": version, "digest": digest, "size": len(blob)}
    )
    assert response.status_code == 201, response.text
    out: dict[str, Any] = response.json()
    return out


def lookup(store: Store, key: str, *restore: str, version: str = "v1", repo: str = "octo/app") -> str | None:
    params: dict[str, Any] = {"repo": repo, "key": key, "version": version, "restore_keys": list(restore)}
    response = store.http.get("/caches/lookup", params=params)
    if response.status_code == 204:
        return None
    assert response.status_code == 200, response.text
    found: str = response.json()["key"]
    return found


class TestLookup:
    """The entry restored is the one GitHub would pick."""

    def test_exact_key_wins_over_newer_prefix_matches(self, store: Store) -> None:
        """An exact match is taken even when newer entries start with the key."""
        save(store, "deps")
        store.clock.advance(10)
        save(store, "deps-newer")
        assert lookup(store, "deps") == "deps"

    def test_newest_prefix_match_of_the_key(self, store: Store) -> None:
        """With no exact match, the most recently saved entry starting with the key."""
        save(store, "deps-a")
        store.clock.advance(10)
        save(store, "deps-b")
        store.clock.advance(10)
        save(store, "other")
        assert lookup(store, "deps-") == "deps-b"

    def test_restore_keys_in_order_each_newest_first(self, store: Store) -> None:
        """Restore keys are tried in the order given; the first with a match decides."""
        save(store, "linux-old")
        store.clock.advance(10)
        save(store, "linux-new")
        store.clock.advance(10)
        save(store, "any-newest")
        assert lookup(store, "linux-abc", "nomatch-", "linux-", "any-") == "linux-new"
        assert lookup(store, "mac-abc", "any-", "linux-") == "any-newest"
        assert lookup(store, "mac-abc", "win-") is None

    def test_prefixes_are_literal_and_case_sensitive(self, store: Store) -> None:
        """% and _ match only themselves, and case matters (no SQL LIKE semantics)."""
        save(store, "Deps_x")
        assert lookup(store, "deps") is None
        assert lookup(store, "Deps%") is None
        assert lookup(store, "D_ps") is None
        assert lookup(store, "Deps_") == "Deps_x"

    def test_only_the_requested_version_and_repo_count(self, store: Store) -> None:
        """Entries of another version or another repository are never restored."""
        save(store, "k", version="v2")
        save(store, "k", repo="octo/other")
        assert lookup(store, "k") is None
        assert lookup(store, "k", version="v2") == "k"
        assert lookup(store, "k", repo="octo/other") == "k"

    def test_a_hit_marks_the_entry_used_and_is_counted(self, store: Store) -> None:
        """A hit moves last_accessed_at to now; hits and misses show in /metrics."""
        saved = save(store, "k")
        store.clock.advance(100)
        response = store.http.get("/caches/lookup", params={"repo": "octo/app", "key": "k", "version": "v1"})
        assert response.json()["last_accessed_at"] >= saved["last_accessed_at"] + 100
        listed = store.http.get("/caches", params={"repo": "octo/app"}).json()
        assert listed[0]["last_accessed_at"] == response.json()["last_accessed_at"]
        lookup(store, "missing")
        metrics = httpx.get(f"{store.url}/metrics").text
        assert "shipyard_store_cache_hits_total 1.0" in metrics
        assert "shipyard_store_cache_misses_total 1.0" in metrics


class TestSaving:
    """Entries are immutable; listing and deleting."""

    def test_a_second_save_of_the_same_key_and_version_is_409(self, store: Store) -> None:
        """Caches are immutable: the same (repo, key, version) cannot be saved again."""
        first = save(store, "k")
        digest = store.put(b"different")
        again = store.http.post("/caches", json={"repo": "octo/app", "key": "k", "version": "v1", "digest": digest, "size": 9})
        assert again.status_code == 409
        assert "immutable" in again.json()["error"]
        listed = store.http.get("/caches", params={"repo": "octo/app"}).json()
        assert listed == [first]

    def test_keys_are_checked_like_the_local_store(self, store: Store) -> None:
        """A key with a comma is refused; so is a blob that is not stored."""
        digest = store.put(b"x")
        comma = store.http.post("/caches", json={"repo": "r", "key": "a,b", "version": "v", "digest": digest, "size": 1})
        assert comma.status_code == 400
        assert "commas" in comma.json()["error"]
        missing = store.http.post("/caches", json={"repo": "r", "key": "a", "version": "v", "digest": "f" * 64, "size": 1})
        assert missing.status_code == 400

    def test_list_newest_first_pages_and_delete(self, store: Store) -> None:
        """The list is newest first, filters by repo, pages with ``before``; admin deletes."""
        ids = [save(store, f"k{i}")["id"] for i in range(4)]
        save(store, "elsewhere", repo="octo/other")
        keys = [c["key"] for c in store.http.get("/caches", params={"repo": "octo/app"}).json()]
        assert keys == ["k3", "k2", "k1", "k0"]
        assert len(store.http.get("/caches").json()) == 5
        page = store.http.get("/caches", params={"repo": "octo/app", "before": ids[2], "limit": 1}).json()
        assert [c["key"] for c in page] == ["k1"]
        assert store.http.delete(f"/caches/{ids[0]}").status_code == 204
        assert store.http.delete(f"/caches/{ids[0]}").status_code == 404
        assert lookup(store, "k0") is None


@pytest.fixture
def small_store(settings: Settings) -> Iterator[Store]:
    """A store whose caches may hold 100 bytes in all."""
    with running_store(settings.model_copy(update={"cache_size_limit": 100})) as s:
        yield s


class TestEviction:
    """Past the size limit, the least recently used entries go, across repositories."""

    def test_least_recently_used_entries_are_evicted_past_the_limit(self, small_store: Store) -> None:
        """Saving over the limit evicts by last use (a lookup counts), not by age or repo."""
        store = small_store
        save(store, "a", repo="one", data=b"a" * 40)
        store.clock.advance(1)
        save(store, "b", repo="two", data=b"b" * 40)
        store.clock.advance(1)
        assert lookup(store, "a", repo="one") == "a"  # a is now more recent than b
        store.clock.advance(1)
        save(store, "c", repo="one", data=b"c" * 40)  # 120 bytes: one must go
        assert lookup(store, "b", repo="two") is None
        assert lookup(store, "a", repo="one") == "a"
        assert lookup(store, "c", repo="one") == "c"
        metrics = httpx.get(f"{store.url}/metrics").text
        assert "shipyard_store_cache_evictions_total 1.0" in metrics

    def test_an_entry_over_the_whole_limit_is_refused(self, small_store: Store) -> None:
        """A single cache bigger than the limit is not saved and evicts nothing."""
        save(small_store, "small", data=b"s" * 10)
        digest = small_store.put(b"x" * 101)
        response = small_store.http.post(
            "/caches", json={"repo": "octo/app", "key": "big", "version": "v1", "digest": digest, "size": 101}
        )
        assert response.status_code == 400
        assert "over the store's limit" in response.json()["error"]
        assert lookup(small_store, "small") == "small"
