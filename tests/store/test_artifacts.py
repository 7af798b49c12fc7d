"""Artifacts: blobs named within a pipeline, with retention."""

from __future__ import annotations

from typing import Any

from tests.store.conftest import Store

ZIP = b"PK\x05\x06" + b"\x00" * 18  # an empty zip; the store does not look inside


def artifact(store: Store, name: str = "dist", pipeline_id: int = 7, **extra: Any) -> dict[str, Any]:
    digest = store.put(ZIP)
    body = {"pipeline_id": pipeline_id, "name": name, "digest": digest, "size": len(ZIP),
            "files": ["a.txt", "sub/b.txt"], **extra}  # fmt: skip
    return body


class TestArtifacts:
    """Create, read, list, overwrite, delete."""

    def test_create_get_list_delete(self, store: Store) -> None:
        """An artifact is readable by name and in its pipeline's list until deleted."""
        body = artifact(store)
        created = store.http.post("/artifacts", json=body)
        assert created.status_code == 201, created.text
        out = created.json()
        assert {k: out[k] for k in ("pipeline_id", "name", "digest", "size", "files")} == {
            k: body[k] for k in ("pipeline_id", "name", "digest", "size", "files")
        }
        assert out["expires_at"] is None
        assert isinstance(out["id"], int)
        assert store.http.get("/artifacts/7/dist").json() == out
        assert store.http.get("/artifacts", params={"pipeline_id": 7}).json() == [out]
        assert store.http.get("/artifacts", params={"pipeline_id": 8}).json() == []
        assert store.http.delete("/artifacts/7/dist").status_code == 204
        assert store.http.get("/artifacts/7/dist").status_code == 404
        assert store.http.delete("/artifacts/7/dist").status_code == 404

    def test_list_is_oldest_first_and_pages(self, store: Store) -> None:
        """The list is in creation order; ``after`` and ``limit`` page through it."""
        ids = [store.http.post("/artifacts", json=artifact(store, f"a{i}")).json()["id"] for i in range(5)]
        names = [a["name"] for a in store.http.get("/artifacts", params={"pipeline_id": 7}).json()]
        assert names == ["a0", "a1", "a2", "a3", "a4"]
        page = store.http.get("/artifacts", params={"pipeline_id": 7, "limit": 2, "after": ids[1]}).json()
        assert [a["name"] for a in page] == ["a2", "a3"]

    def test_a_taken_name_is_409_unless_overwrite(self, store: Store) -> None:
        """The same name in the same pipeline conflicts; overwrite replaces it with a new id."""
        first = store.http.post("/artifacts", json=artifact(store)).json()
        again = store.http.post("/artifacts", json=artifact(store))
        assert again.status_code == 409
        assert "already exists" in again.json()["error"]
        other = store.put(b"other zip")
        replaced = store.http.post("/artifacts", json={
            **artifact(store), "digest": other, "size": 9, "overwrite": True,
        })  # fmt: skip
        assert replaced.status_code == 201
        assert replaced.json()["id"] != first["id"]
        assert store.http.get("/artifacts/7/dist").json()["digest"] == other
        assert store.http.post("/artifacts", json=artifact(store, pipeline_id=8)).status_code == 201

    def test_the_blob_must_be_stored_with_that_size(self, store: Store) -> None:
        """An artifact on a missing blob, or with the wrong size, is 400."""
        missing = store.http.post("/artifacts", json={**artifact(store), "digest": "e" * 64})
        assert missing.status_code == 400
        assert "upload it first" in missing.json()["error"]
        wrong = store.http.post("/artifacts", json={**artifact(store), "size": 1})
        assert wrong.status_code == 400
        assert "not 1" in wrong.json()["error"]

    def test_names_and_paths_are_checked_like_the_local_store(self, store: Store) -> None:
        """Names with forbidden characters and paths escaping the zip are 400."""
        for name in ("a/b", "x:y", " lead", "..", "tab\n"):
            response = store.http.post("/artifacts", json=artifact(store, name))
            assert response.status_code == 400, name
            assert "invalid artifact name" in response.json()["error"]
        response = store.http.post("/artifacts", json={**artifact(store), "files": ["../etc/passwd"]})
        assert response.status_code == 400
        assert "invalid path" in response.json()["error"]

    def test_names_with_spaces_and_unicode_work_in_paths(self, store: Store) -> None:
        """A name that needs quoting in a URL is found by its quoted form."""
        store.http.post("/artifacts", json=artifact(store, "my build ü#1"))
        assert store.http.get("/artifacts/7/my%20build%20%C3%BC%231").json()["name"] == "my build ü#1"


class TestRetention:
    """An artifact past its retention is gone from every read."""

    def test_expired_artifacts_are_hidden_and_their_name_is_free(self, store: Store) -> None:
        """After retention_days an artifact is not listed or found, and the name can be reused."""
        out = store.http.post("/artifacts", json=artifact(store, retention_days=2)).json()
        assert out["expires_at"] == out["created_at"] + 2 * 86400
        store.http.post("/artifacts", json=artifact(store, "forever"))
        store.clock.advance(2 * 86400 + 1)
        assert store.http.get("/artifacts/7/dist").status_code == 404
        listed = store.http.get("/artifacts", params={"pipeline_id": 7}).json()
        assert [a["name"] for a in listed] == ["forever"]
        assert store.http.post("/artifacts", json=artifact(store)).status_code == 201

    def test_retention_is_1_to_90_days(self, store: Store) -> None:
        """Retention outside 1-90 days is refused as a bad body."""
        for days in (0, 91, -1):
            assert store.http.post("/artifacts", json=artifact(store, retention_days=days)).status_code == 422
