"""StoreClient and the remote artifact and cache stores, against a served store."""

from __future__ import annotations

import os
import time
from pathlib import Path

import httpx
import pytest

from shipyard.errors import AuthError, ConflictError, NotFoundError, StoreError, UnavailableError
from shipyard.store import RemoteArtifactStore, RemoteCacheStore, StoreClient
from shipyard.store._client import file_digest
from tests.helpers.servers import free_port
from tests.store.conftest import Store, sha


class RequestLog:
    """Records the method and path of every request a client sends (an httpx event hook)."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, str]] = []

    def __call__(self, request: httpx.Request) -> None:
        self.seen.append((request.method, request.url.path))


class TestStoreClient:
    """Blobs up and down, checked, with uploads skipped when the bytes are there."""

    def test_put_blob_hashes_first_and_skips_what_is_stored(self, sqlite_store: Store, tmp_path: Path) -> None:
        """The second upload of the same file is a HEAD only."""
        src = tmp_path / "f.bin"
        src.write_bytes(os.urandom(3 << 20))
        log = RequestLog()
        with httpx.Client(event_hooks={"request": [log]}) as http:
            client = StoreClient(sqlite_store.url, sqlite_store.token("admin"), http=http)
            digest, size = client.put_blob(src)
            assert (digest, size) == file_digest(src)
            assert log.seen == [("HEAD", f"/blobs/{digest}"), ("PUT", f"/blobs/{digest}")]
            assert client.put_blob(src) == (digest, size)
            assert log.seen[2:] == [("HEAD", f"/blobs/{digest}")]
            assert client.blob_size(digest) == size
            assert client.blob_size(sha(b"nope")) is None

    def test_get_blob_writes_the_file_only_when_complete_and_checked(self, sqlite_store: Store, tmp_path: Path) -> None:
        """A good download lands at the path; a corrupt one raises and leaves no file."""
        data = os.urandom(1 << 20)
        digest = sqlite_store.put(data)
        dest = tmp_path / "downloads"
        dest.mkdir()
        with sqlite_store.client() as client:
            assert client.get_blob(digest, dest / "good") == len(data)
            assert (dest / "good").read_bytes() == data
            sqlite_store.blob_path(digest).write_bytes(os.urandom(len(data)))
            with pytest.raises(StoreError, match="cut short"):
                client.get_blob(digest, dest / "bad")
            with pytest.raises(NotFoundError):
                client.get_blob(digest, dest / "bad")
        assert sorted(p.name for p in dest.iterdir()) == ["good"]

    def test_a_base_url_with_a_path_prefix_is_kept(self, sqlite_store: Store) -> None:
        """Paths are relative to base_url, so the gateway's /api/v1 prefix is kept."""
        client = StoreClient("http://127.0.0.1:8080/api/v1/", "t")
        assert client.url("blobs/" + "a" * 64) == "http://127.0.0.1:8080/api/v1/blobs/" + "a" * 64
        client.close()

    def test_errors_come_back_as_request_errors(self, sqlite_store: Store, tmp_path: Path) -> None:
        """A bad token is AuthError; a store that does not answer is UnavailableError."""
        with StoreClient(sqlite_store.url, "sy_bad.token") as client, pytest.raises(AuthError):
            client.list_caches()
        with StoreClient(f"http://127.0.0.1:{free_port()}", "t") as client, pytest.raises(UnavailableError):
            client.blob_size("a" * 64)


def write_tree(root: Path) -> list[tuple[str, Path]]:
    (root / "sub").mkdir(parents=True)
    (root / "a.txt").write_text("alpha\n")
    (root / "sub" / "run.sh").write_text("#!/bin/sh\necho hi\n")
    (root / "sub" / "run.sh").chmod(0o755)
    return [("a.txt", root / "a.txt"), ("sub/run.sh", root / "sub" / "run.sh")]


class TestRemoteArtifactStore:
    """The workflow library's ArtifactStore, on the store service."""

    def test_upload_list_download_delete(self, store: Store, tmp_path: Path) -> None:
        """Files go up zipped, come back with their modes, and are listed by run."""
        scratch = tmp_path / "scratch"
        scratch.mkdir()
        remote = RemoteArtifactStore(store.client("pipeline:12"), scratch_dir=scratch)
        files = write_tree(tmp_path / "src")
        artifact = remote.upload("12", "dist", files, retention_days=3)
        assert (artifact.run_id, artifact.name, artifact.files) == ("12", "dist", ("a.txt", "sub/run.sh"))
        assert artifact.expires_at is not None
        assert [a.name for a in remote.list("12")] == ["dist"]
        assert remote.get("12", "dist") == artifact
        assert remote.get("12", "other") is None
        remote.download("12", "dist", tmp_path / "out")
        assert (tmp_path / "out" / "a.txt").read_text() == "alpha\n"
        assert os.access(tmp_path / "out" / "sub" / "run.sh", os.X_OK)
        assert remote.delete("12", "dist") is True
        assert remote.delete("12", "dist") is False
        assert list(scratch.iterdir()) == []

    def test_a_taken_name_is_a_store_error_unless_overwrite(self, sqlite_store: Store, tmp_path: Path) -> None:
        """Errors are StoreErrors with the same wording as the local store's."""
        remote = RemoteArtifactStore(sqlite_store.client("pipeline:1"))
        files = write_tree(tmp_path / "src")
        first = remote.upload("1", "dist", files)
        with pytest.raises(StoreError, match="already exists in run 1"):
            remote.upload("1", "dist", files)
        assert remote.upload("1", "dist", files[:1], overwrite=True).id != first.id
        assert remote.list("1")[0].files == ("a.txt",)
        with pytest.raises(StoreError, match="Artifact not found"):
            remote.download("1", "missing", tmp_path / "out")
        with pytest.raises(StoreError, match="not a pipeline id"):
            remote.list("run-abc")
        with pytest.raises(StoreError, match="invalid artifact name"):
            remote.upload("1", "a/b", files)

    def test_a_rerun_replaces_what_its_earlier_attempt_uploaded(
        self, sqlite_store: Store, tmp_path: Path
    ) -> None:
        """Names are per pipeline: a re-run job's upload replaces the earlier attempt's."""
        files = write_tree(tmp_path / "src")
        first = RemoteArtifactStore(sqlite_store.client("pipeline:1")).upload("1", "dist", files)
        rerun = RemoteArtifactStore(sqlite_store.client("pipeline:1"), replaces_before=time.time() + 1)
        second = rerun.upload("1", "dist", files[:1])
        assert second.id != first.id and rerun.list("1")[0].files == ("a.txt",)
        later = RemoteArtifactStore(sqlite_store.client("pipeline:1"), replaces_before=first.created_at)
        with pytest.raises(StoreError, match="already exists in run 1"):
            later.upload("1", "dist", files)  # made in this attempt: still a conflict

    def test_another_pipelines_token_is_refused_as_a_store_error(self, sqlite_store: Store, tmp_path: Path) -> None:
        """A job token for pipeline 1 cannot upload into pipeline 2."""
        remote = RemoteArtifactStore(sqlite_store.client("pipeline:1"))
        with pytest.raises(StoreError, match="does not allow"):
            remote.upload("2", "dist", write_tree(tmp_path / "src"))

    def test_a_blob_collected_between_upload_and_record_is_sent_again(self, sqlite_store: Store, tmp_path: Path) -> None:
        """When garbage collection removes the just-checked blob, the client uploads it again."""
        store = sqlite_store
        archive = tmp_path / "cache.tar"
        archive.write_bytes(b"archive bytes")
        digest = store.put(archive.read_bytes())  # stored long ago, unreferenced
        store.clock.advance(7200)
        log = RequestLog()

        def collect_before_recording(request: httpx.Request) -> None:
            log(request)
            if request.method == "POST":
                store.parts.gc.collect()

        with httpx.Client(event_hooks={"request": [collect_before_recording]}) as http:
            remote = RemoteCacheStore(StoreClient(store.url, store.token("cache:r"), http=http), "r")
            entry = remote.save("k", "v", archive)
        assert entry is not None
        assert log.seen == [
            ("HEAD", f"/blobs/{digest}"), ("POST", "/caches"),
            ("HEAD", f"/blobs/{digest}"), ("PUT", f"/blobs/{digest}"), ("POST", "/caches"),
        ]  # fmt: skip
        assert store.http.get(f"/blobs/{digest}").content == b"archive bytes"


class TestRemoteCacheStore:
    """The workflow library's CacheStore, on the store service."""

    def test_save_lookup_open_entries(self, store: Store, tmp_path: Path) -> None:
        """Saved archives are found by GitHub's rule and opened checked; saving twice is None."""
        scratch = tmp_path / "scratch"
        scratch.mkdir()
        remote = RemoteCacheStore(store.client("cache:octo/app"), "octo/app", scratch_dir=scratch)
        archive = tmp_path / "a.tar"
        archive.write_bytes(b"first archive")
        saved = remote.save("deps-1", "v", archive)
        assert saved is not None
        assert remote.save("deps-1", "v", archive) is None
        found = remote.lookup("deps-2", ["deps-"], "v")
        assert found is not None
        assert (found.key, found.digest, found.size) == ("deps-1", saved.digest, 13)
        assert remote.lookup("deps-1", [], "other-version") is None
        with remote.open(found) as f:
            assert f.read() == b"first archive"
        assert [e.key for e in remote.entries()] == ["deps-1"]
        assert list(scratch.iterdir()) == []  # downloads are deleted once closed

    def test_a_corrupt_archive_is_a_store_error(self, sqlite_store: Store, tmp_path: Path) -> None:
        """Opening an entry whose bytes went bad raises StoreError (the action then warns)."""
        remote = RemoteCacheStore(sqlite_store.client("cache:r"), "r")
        archive = tmp_path / "a.tar"
        archive.write_bytes(b"x" * 5000)
        entry = remote.save("k", "v", archive)
        assert entry is not None
        sqlite_store.blob_path(entry.digest).write_bytes(b"y" * 5000)
        with pytest.raises(StoreError):
            remote.open(entry)

    def test_bad_keys_and_refusals_are_store_errors(self, sqlite_store: Store, tmp_path: Path) -> None:
        """A key with a comma, or a token for another repository, is a StoreError."""
        archive = tmp_path / "a.tar"
        archive.write_bytes(b"x")
        with pytest.raises(StoreError, match="commas"):
            RemoteCacheStore(sqlite_store.client("cache:r"), "r").save("a,b", "v", archive)
        other = RemoteCacheStore(sqlite_store.client("cache:elsewhere"), "r")
        with pytest.raises(StoreError, match="does not allow"):
            other.save("k", "v", archive)
        with pytest.raises(StoreError, match="does not allow"):
            other.lookup("k", [], "v")


class Flaky(httpx.BaseTransport):
    """A real transport whose next requests fail: ``"refuse"`` before sending (the store
    is down), ``"lose"`` after the store handled it (the answer never comes)."""

    def __init__(self) -> None:
        self.inner = httpx.HTTPTransport()
        self.faults: list[str] = []
        self.sent: list[tuple[str, str]] = []

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        fault = self.faults.pop(0) if self.faults else None
        if fault == "refuse":
            raise httpx.ConnectError("connection refused", request=request)
        self.sent.append((request.method, request.url.path))
        response = self.inner.handle_request(request)
        if fault == "lose":
            response.read()
            response.close()
            raise httpx.ReadError("the connection was reset", request=request)
        return response

    def close(self) -> None:
        self.inner.close()


class TestRetries:
    """A runner's client waits out a store restarting; requests are safe to repeat."""

    DELAYS = (0.01, 0.01, 0.01, 0.01)

    def test_requests_the_store_missed_are_sent_again(
        self, shared_store: Store, tmp_path: Path
    ) -> None:
        src = tmp_path / "f.bin"
        src.write_bytes(os.urandom(1 << 20))
        flaky = Flaky()
        with httpx.Client(transport=flaky) as http:
            client = StoreClient(shared_store.url, shared_store.token("admin"), http=http,
                                 retry_delays=self.DELAYS)
            flaky.faults[:] = ["refuse", "refuse", None, "refuse"]  # HEAD twice, then PUT
            digest, size = client.put_blob(src)
            assert client.retries == 3
            flaky.faults[:] = ["refuse", "refuse"]
            assert client.get_blob(digest, tmp_path / "back") == size
            assert (tmp_path / "back").read_bytes() == src.read_bytes()
            assert client.retries == 5

    def test_an_artifact_recorded_by_a_lost_request_is_no_duplicate(
        self, shared_store: Store, tmp_path: Path
    ) -> None:
        src = tmp_path / "a.zip"
        src.write_bytes(os.urandom(1000))
        flaky = Flaky()
        with httpx.Client(transport=flaky) as http:
            client = StoreClient(shared_store.url, shared_store.token("admin"), http=http,
                                 retry_delays=self.DELAYS)
            digest, size = client.put_blob(src)
            pipeline = int(time.time() * 1000) % 1_000_000_000
            flaky.faults[:] = ["lose"]
            out = client.create_artifact(pipeline, "app", digest, size, ["a.zip"])
            assert out.digest == digest and out.name == "app"
            assert flaky.sent.count(("POST", "/artifacts")) == 2  # once recorded, once refused
            # A real duplicate (no lost answer) is still refused.
            other = tmp_path / "b.zip"
            other.write_bytes(os.urandom(1000))
            digest2, size2 = client.put_blob(other)
            with pytest.raises(ConflictError):
                client.create_artifact(pipeline, "app", digest2, size2, ["b.zip"])

    def test_without_delays_or_once_they_are_used_up_the_error_is_raised(
        self, shared_store: Store, tmp_path: Path
    ) -> None:
        flaky = Flaky()
        with httpx.Client(transport=flaky) as http:
            once = StoreClient(shared_store.url, shared_store.token("admin"), http=http)
            flaky.faults[:] = ["refuse"]
            with pytest.raises(UnavailableError):
                once.blob_size(sha(b"x"))
            patient = StoreClient(shared_store.url, shared_store.token("admin"), http=http,
                                  retry_delays=self.DELAYS)
            flaky.faults[:] = ["refuse"] * 5
            with pytest.raises(UnavailableError, match="did not answer"):
                patient.blob_size(sha(b"x"))
            assert patient.retries == 4 and not flaky.faults
