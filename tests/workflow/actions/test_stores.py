"""The local artifact and cache stores: semantics, integrity, atomicity, concurrency."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import textwrap
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from shipyard.workflow.actions import LocalArtifactStore, LocalCacheStore, StoreError

SRC = str(Path(__file__).resolve().parents[3] / "src")


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


def make_file(path: Path, content: bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(content)
    return path


def run_python(code: str) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONPATH": SRC}
    return subprocess.Popen([sys.executable, "-c", textwrap.dedent(code)], env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)  # fmt: skip


class TestLocalArtifactStore:
    def test_upload_then_download_round_trips_files_and_modes(self, tmp_path: Path) -> None:
        """Downloaded files have the uploaded paths, contents and executable bits."""
        store = LocalArtifactStore(tmp_path / "store")
        a = make_file(tmp_path / "src/a.txt", b"alpha")
        tool = make_file(tmp_path / "src/bin/tool", b"#!/bin/sh\n")
        tool.chmod(0o755)
        artifact = store.upload("7", "build", [("a.txt", a), ("bin/tool", tool)])
        assert artifact.files == ("a.txt", "bin/tool")
        store.download("7", "build", tmp_path / "out")
        assert (tmp_path / "out/a.txt").read_bytes() == b"alpha"
        assert os.access(tmp_path / "out/bin/tool", os.X_OK)

    def test_digest_is_the_sha256_of_the_stored_zip(self, tmp_path: Path) -> None:
        """artifact-digest is the sha256 of the zip, as in upload-artifact v4."""
        store = LocalArtifactStore(tmp_path / "store")
        artifact = store.upload("1", "x", [("f", make_file(tmp_path / "f", b"data"))])
        blob = tmp_path / "store" / "blobs" / f"{artifact.id}.zip"
        assert hashlib.sha256(blob.read_bytes()).hexdigest() == artifact.digest
        assert artifact.size == blob.stat().st_size

    def test_names_are_unique_per_run_unless_overwrite(self, tmp_path: Path) -> None:
        """A second upload of a name fails; overwrite replaces; other runs are separate."""
        store = LocalArtifactStore(tmp_path / "store")
        f = make_file(tmp_path / "f", b"one")
        first = store.upload("1", "report", [("f", f)])
        with pytest.raises(StoreError, match="already exists"):
            store.upload("1", "report", [("f", f)])
        store.upload("2", "report", [("f", f)])
        make_file(tmp_path / "f", b"two")
        second = store.upload("1", "report", [("f", f)], overwrite=True)
        assert second.id != first.id
        assert [a.name for a in store.list("1")] == ["report"]
        store.download("1", "report", tmp_path / "out")
        assert (tmp_path / "out/f").read_bytes() == b"two"
        assert not (tmp_path / "store/blobs" / f"{first.id}.zip").exists()

    @pytest.mark.parametrize("name", ["", "a/b", "a:b", 'q"', "x*", "back\\slash", " lead"])
    def test_invalid_names_are_refused(self, tmp_path: Path, name: str) -> None:
        """Names with characters upload-artifact forbids are refused."""
        store = LocalArtifactStore(tmp_path / "store")
        with pytest.raises(StoreError, match="invalid artifact name"):
            store.upload("1", name, [("f", make_file(tmp_path / "f", b""))])

    def test_paths_escaping_the_artifact_are_refused(self, tmp_path: Path) -> None:
        """A member path with .. or a leading / cannot be stored."""
        store = LocalArtifactStore(tmp_path / "store")
        with pytest.raises(StoreError, match="invalid path"):
            store.upload("1", "a", [("../evil", make_file(tmp_path / "f", b""))])

    def test_expired_artifacts_disappear_and_are_purged(self, tmp_path: Path) -> None:
        """Past retention-days an artifact is not listed; purge_expired deletes it."""
        clock = Clock()
        store = LocalArtifactStore(tmp_path / "store", clock=clock)
        f = make_file(tmp_path / "f", b"x")
        store.upload("1", "short", [("f", f)], retention_days=1)
        store.upload("1", "long", [("f", f)])
        clock.now += 2 * 86400
        assert [a.name for a in store.list("1")] == ["long"]
        assert store.get("1", "short") is None
        assert store.purge_expired() == 1

    def test_corrupt_blob_is_detected_on_download(self, tmp_path: Path) -> None:
        """A blob whose bytes changed fails the digest check instead of being extracted."""
        store = LocalArtifactStore(tmp_path / "store")
        artifact = store.upload("1", "a", [("f", make_file(tmp_path / "f", b"x" * 100))])
        blob = tmp_path / "store/blobs" / f"{artifact.id}.zip"
        blob.write_bytes(blob.read_bytes()[:-3] + b"zzz")
        with pytest.raises(StoreError, match="corrupt"):
            store.download("1", "a", tmp_path / "out")

    def test_half_written_temp_files_are_invisible(self, tmp_path: Path) -> None:
        """A writer that died mid-upload leaves nothing listed or downloadable."""
        store = LocalArtifactStore(tmp_path / "store")
        (tmp_path / "store/tmp/part-dead").write_bytes(b"PK\x03\x04partial")
        (tmp_path / "store/blobs/99.zip").write_bytes(b"PK\x03\x04orphan")
        assert store.list("1") == []
        assert store.get("1", "artifact") is None

    def test_threads_upload_different_artifacts_at_once(self, tmp_path: Path) -> None:
        """Concurrent uploads from threads all land, each with a distinct id."""
        store = LocalArtifactStore(tmp_path / "store")

        def upload(i: int) -> int:
            f = make_file(tmp_path / f"in{i}/f", os.urandom(50_000))
            return store.upload("1", f"a{i}", [("f", f)]).id

        with ThreadPoolExecutor(8) as pool:
            ids = list(pool.map(upload, range(16)))
        assert len(set(ids)) == 16
        assert sorted(a.name for a in store.list("1")) == sorted(f"a{i}" for i in range(16))

    def test_same_name_from_many_processes_is_taken_exactly_once(self, tmp_path: Path) -> None:
        """Processes racing for one name: one wins, the others get 'already exists'."""
        make_file(tmp_path / "f", b"payload")
        code = f"""
            from pathlib import Path
            from shipyard.workflow.actions import LocalArtifactStore, StoreError
            store = LocalArtifactStore(Path({str(tmp_path / 'store')!r}))
            try:
                store.upload("1", "same", [("f", Path({str(tmp_path / 'f')!r}))])
                print("won")
            except StoreError as e:
                print("lost", e)
        """
        procs = [run_python(code) for _ in range(6)]
        outs = [p.communicate()[0].strip() for p in procs]
        assert sum(o == "won" for o in outs) == 1, outs
        assert all(o == "won" or "already exists" in o for o in outs)


class TestLocalCacheStore:
    def save(self, store: LocalCacheStore, tmp_path: Path, key: str, content: bytes = b"x", version: str = "v") -> None:
        archive = make_file(tmp_path / "archives" / hashlib.sha256(key.encode()).hexdigest(), content)
        store.save(key, version, archive)

    def test_exact_key_wins_over_newer_prefix_matches(self, tmp_path: Path) -> None:
        """lookup returns the exact key even when a longer key was saved later."""
        clock = Clock()
        store = LocalCacheStore(tmp_path / "c", clock=clock)
        self.save(store, tmp_path, "deps-abc")
        clock.now += 10
        self.save(store, tmp_path, "deps-abc-more")
        entry = store.lookup("deps-abc", [], "v")
        assert entry is not None and entry.key == "deps-abc"

    def test_key_prefix_then_restore_keys_in_order_most_recent_wins(self, tmp_path: Path) -> None:
        """No exact hit: key as prefix, then each restore key, newest match for each."""
        clock = Clock()
        store = LocalCacheStore(tmp_path / "c", clock=clock)
        self.save(store, tmp_path, "linux-deps-old")
        clock.now += 10
        self.save(store, tmp_path, "linux-deps-new")
        clock.now += 10
        self.save(store, tmp_path, "linux-other")
        found = store.lookup("linux-deps-zzz", ["linux-deps-", "linux-"], "v")
        assert found is not None and found.key == "linux-deps-new"
        found = store.lookup("nope", ["missing-", "linux-"], "v")
        assert found is not None and found.key == "linux-other"
        found = store.lookup("linux-deps", [], "v")
        assert found is not None and found.key == "linux-deps-new"
        assert store.lookup("nope", ["missing-"], "v") is None

    def test_versions_never_match_each_other(self, tmp_path: Path) -> None:
        """The same key under another version (other paths) is a miss."""
        store = LocalCacheStore(tmp_path / "c")
        self.save(store, tmp_path, "k", version="v1")
        assert store.lookup("k", ["k"], "v2") is None

    def test_entries_are_immutable(self, tmp_path: Path) -> None:
        """Saving an existing key and version returns None and keeps the first contents."""
        store = LocalCacheStore(tmp_path / "c")
        first = make_file(tmp_path / "a1", b"first")
        assert store.save("k", "v", first) is not None
        assert store.save("k", "v", make_file(tmp_path / "a2", b"second")) is None
        entry = store.lookup("k", [], "v")
        assert entry is not None
        with store.open(entry) as f:
            assert f.read() == b"first"

    def test_least_recently_used_entries_are_evicted_past_the_limit(self, tmp_path: Path) -> None:
        """Over the size limit, the entries used longest ago go first; a restore counts as use."""
        clock = Clock()
        store = LocalCacheStore(tmp_path / "c", limit=250, clock=clock)
        for key in ("a", "b"):
            self.save(store, tmp_path, key, b"x" * 100)
            clock.now += 1
        entry = store.lookup("a", [], "v")
        assert entry is not None
        clock.now += 1
        store.open(entry).close()  # "a" is now more recent than "b"
        clock.now += 1
        self.save(store, tmp_path, "c", b"x" * 100)
        assert [e.key for e in store.entries()] == ["a", "c"]
        assert len(list((tmp_path / "c/blobs").iterdir())) == 2

    def test_archive_larger_than_the_limit_is_refused(self, tmp_path: Path) -> None:
        """A single archive bigger than the whole store is not saved."""
        store = LocalCacheStore(tmp_path / "c", limit=10)
        with pytest.raises(StoreError, match="over the store's limit"):
            store.save("k", "v", make_file(tmp_path / "big", b"x" * 11))

    @pytest.mark.parametrize("key", ["", "a,b", "k" * 513])
    def test_invalid_keys_are_refused(self, tmp_path: Path, key: str) -> None:
        """Empty keys, keys with commas and keys over 512 characters are refused."""
        store = LocalCacheStore(tmp_path / "c")
        with pytest.raises(StoreError):
            store.save(key, "v", make_file(tmp_path / "a", b""))

    def test_corruption_is_detected_on_open(self, tmp_path: Path) -> None:
        """An archive whose bytes changed on disk is refused, not restored."""
        store = LocalCacheStore(tmp_path / "c")
        self.save(store, tmp_path, "k", b"good bytes")
        (blob,) = (tmp_path / "c/blobs").iterdir()
        blob.write_bytes(b"bad bytes!")
        entry = store.lookup("k", [], "v")
        assert entry is not None
        with pytest.raises(StoreError, match="corrupt"):
            store.open(entry)

    def test_a_crash_before_the_metadata_leaves_no_visible_entry(self, tmp_path: Path) -> None:
        """A temp file or a blob without metadata (a writer killed midway) is never found."""
        store = LocalCacheStore(tmp_path / "c")
        (tmp_path / "c/tmp/part-x").write_bytes(b"partial")
        (tmp_path / "c/blobs" / (store._id("k", "v") + ".tar")).write_bytes(b"orphan")
        assert store.lookup("k", ["k"], "v") is None
        assert store.entries() == []
        self.save(store, tmp_path, "k", b"real")
        entry = store.lookup("k", [], "v")
        assert entry is not None
        with store.open(entry) as f:
            assert f.read() == b"real"

    def test_a_writer_killed_mid_copy_leaves_nothing_visible(self, tmp_path: Path) -> None:
        """SIGKILL during a save never exposes a partial entry."""
        big = make_file(tmp_path / "big", os.urandom(8 << 20))
        code = f"""
            import os, signal
            from pathlib import Path
            from shipyard.workflow.actions import _stores, LocalCacheStore
            real = _stores._Root.copy_in
            def dying(self, src):
                tmp, digest, size = real(self, src)
                os.kill(os.getpid(), signal.SIGKILL)
            _stores._Root.copy_in = dying
            LocalCacheStore(Path({str(tmp_path / 'c')!r})).save("k", "v", Path({str(big)!r}))
        """
        proc = run_python(code)
        proc.communicate()
        assert proc.returncode == -9
        store = LocalCacheStore(tmp_path / "c")
        assert store.lookup("k", [], "v") is None
        assert store.entries() == []

    def test_threads_and_processes_save_at_once(self, tmp_path: Path) -> None:
        """Saves from threads and processes at once all land; the same key lands once."""
        store = LocalCacheStore(tmp_path / "c")
        archive = make_file(tmp_path / "a", os.urandom(100_000))
        code = f"""
            from pathlib import Path
            from shipyard.workflow.actions import LocalCacheStore
            store = LocalCacheStore(Path({str(tmp_path / 'c')!r}))
            for i in range(5):
                store.save(f"proc-{{i}}", "v", Path({str(archive)!r}))
            print(store.save("shared", "v", Path({str(archive)!r})) is not None)
        """
        procs = [run_python(code) for _ in range(3)]
        with ThreadPoolExecutor(6) as pool:
            results = list(pool.map(lambda i: store.save("shared" if i % 2 else f"t{i}", "v", archive), range(12)))
        outs = [p.communicate()[0].strip() for p in procs]
        assert all(p.returncode == 0 for p in procs)
        wins = sum(o == "True" for o in outs) + sum(r is not None and r.key == "shared" for r in results)
        assert wins == 1
        keys = sorted(e.key for e in store.entries())
        assert keys == sorted({"shared", *(f"t{i}" for i in range(0, 12, 2)), *(f"proc-{i}" for i in range(5))})
        for e in store.entries():
            with store.open(e) as f:
                assert hashlib.sha256(f.read()).hexdigest() == e.digest
