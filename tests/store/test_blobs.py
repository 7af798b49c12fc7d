"""Blobs over HTTP: upload, download, ranges, digests checked both ways, crashes."""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Callable
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest
from sqlalchemy import select

from shipyard.service import Settings
from shipyard.store._client import file_digest
from shipyard.store._tables import blobs, caches
from tests.store.conftest import Store, running_store, sha

DATA = bytes(range(256)) * 40  # 10240 bytes


def blob_rows(store: Store) -> list[str]:
    with store.parts.catalog.db.read() as conn:
        return list(conn.execute(select(blobs.c.digest)).scalars())


def wait_for(condition: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out waiting"
        time.sleep(0.02)


class TestPutAndGet:
    """A blob goes in by its digest and comes back byte for byte."""

    def test_put_stores_then_says_already_there(self, store: Store) -> None:
        """The first PUT is 201, the same bytes again 200; GET returns them."""
        digest = sha(DATA)
        first = store.http.put(f"/blobs/{digest}", content=DATA)
        assert first.status_code == 201
        assert first.json() == {"digest": digest, "size": len(DATA)}
        assert store.http.put(f"/blobs/{digest}", content=DATA).status_code == 200
        got = store.http.get(f"/blobs/{digest}")
        assert got.status_code == 200
        assert got.content == DATA
        assert got.headers["content-type"] == "application/octet-stream"
        assert got.headers["accept-ranges"] == "bytes"
        assert blob_rows(store) == [digest]
        assert store.blob_path(digest).read_bytes() == DATA

    def test_head_gives_the_size_or_404(self, store: Store) -> None:
        """HEAD answers the stored size as Content-Length, and 404 for an unknown digest."""
        digest = store.put(DATA)
        head = store.http.head(f"/blobs/{digest}")
        assert head.status_code == 200
        assert head.headers["content-length"] == str(len(DATA))
        assert store.http.head(f"/blobs/{sha(b'other')}").status_code == 404
        assert store.http.get(f"/blobs/{sha(b'other')}").status_code == 404

    def test_empty_blob(self, store: Store) -> None:
        """A zero-byte blob is a blob like any other."""
        digest = store.put(b"")
        got = store.http.get(f"/blobs/{digest}")
        assert (got.status_code, got.content) == (200, b"")

    def test_digest_mismatch_is_400_and_nothing_is_kept(self, store: Store) -> None:
        """Bytes that do not hash to the digest in the path are refused, leaving no trace."""
        wrong = sha(b"something else")
        response = store.http.put(f"/blobs/{wrong}", content=DATA)
        assert response.status_code == 400
        assert "do not match the digest" in response.json()["error"]
        assert store.http.head(f"/blobs/{wrong}").status_code == 404
        assert store.http.head(f"/blobs/{sha(DATA)}").status_code == 404
        assert blob_rows(store) == []
        assert store.temp_files() == []
        assert not store.blob_path(wrong).exists()
        assert not store.blob_path(sha(DATA)).exists()

    @pytest.mark.parametrize("bad", ["abc", "A" * 64, "g" * 64, "0" * 63, "0" * 65, sha(b"x").upper()])
    def test_a_name_that_is_not_a_lowercase_sha256_is_400(self, shared_store: Store, bad: str) -> None:
        """Only 64 lowercase hex characters name a blob, on every blob route."""
        for method in ("PUT", "GET", "HEAD"):
            response = shared_store.http.request(method, f"/blobs/{bad}", content=b"x" if method == "PUT" else None)
            assert response.status_code == 400, (method, response.text)
        assert shared_store.http.get(f"/blobs/{bad}").json()["error"].endswith(
            "64 lowercase hexadecimal characters"
        )


class TestRanges:
    """GET honours one byte range in each of its three forms."""

    @pytest.mark.parametrize(
        ("header", "start", "end"),
        [
            ("bytes=0-9", 0, 9),
            ("bytes=100-", 100, len(DATA) - 1),
            ("bytes=-16", len(DATA) - 16, len(DATA) - 1),
            ("bytes=10000-99999", 10000, len(DATA) - 1),  # the end is clamped to the blob
            ("bytes=-99999", 0, len(DATA) - 1),  # a suffix longer than the blob is all of it
        ],
    )
    def test_range_forms_answer_206_with_content_range(
        self, shared_store: Store, header: str, start: int, end: int
    ) -> None:
        """bytes=a-b, bytes=a- and bytes=-n give exactly those bytes with Content-Range."""
        digest = shared_store.put(DATA)
        got = shared_store.http.get(f"/blobs/{digest}", headers={"Range": header})
        assert got.status_code == 206
        assert got.content == DATA[start : end + 1]
        assert got.headers["content-range"] == f"bytes {start}-{end}/{len(DATA)}"
        assert got.headers["content-length"] == str(end - start + 1)

    @pytest.mark.parametrize("header", ["bytes=10240-", "bytes=99999-100000", "bytes=-0", "bytes=9-3", "bytes=0-1,5-6"])
    def test_unsatisfiable_ranges_are_416(self, shared_store: Store, header: str) -> None:
        """A range outside the blob (or several) is 416 with the size in Content-Range."""
        digest = shared_store.put(DATA)
        got = shared_store.http.get(f"/blobs/{digest}", headers={"Range": header})
        assert got.status_code == 416
        assert got.headers["content-range"] == f"bytes */{len(DATA)}"
        assert got.json()["error"]

    def test_any_range_of_an_empty_blob_is_416(self, shared_store: Store) -> None:
        """An empty blob has no bytes to select."""
        digest = shared_store.put(b"")
        assert shared_store.http.get(f"/blobs/{digest}", headers={"Range": "bytes=0-"}).status_code == 416

    @pytest.mark.parametrize("header", ["bytes=abc", "bytes", "bytes=1-2-3", "bytes=-"])
    def test_malformed_ranges_are_400(self, shared_store: Store, header: str) -> None:
        """A Range header that does not parse is a client error, never a 500."""
        digest = shared_store.put(DATA)
        got = shared_store.http.get(f"/blobs/{digest}", headers={"Range": header})
        assert got.status_code == 400, got.text
        assert "Range" in got.json()["error"]

    def test_other_range_units_are_ignored(self, shared_store: Store) -> None:
        """A unit other than bytes is ignored, as RFC 9110 says: the whole blob, 200."""
        digest = shared_store.put(DATA)
        got = shared_store.http.get(f"/blobs/{digest}", headers={"Range": "items=0-1"})
        assert (got.status_code, got.content) == (200, DATA)


class TestCrashes:
    """Uploads cut short and bytes gone bad never show as blobs."""

    def test_an_upload_cut_off_mid_body_leaves_no_blob_and_no_row(self, store: Store) -> None:
        """A client that sends half the announced bytes and hangs up leaves nothing behind."""
        data = os.urandom(3 << 20)
        digest = sha(data)
        url = urlsplit(store.url)
        with socket.create_connection((url.hostname, url.port)) as sock:
            head = (
                f"PUT /blobs/{digest} HTTP/1.1\r\nHost: {url.netloc}\r\n"
                f"Authorization: Bearer {store.token('admin')}\r\n"
                f"Content-Length: {len(data)}\r\n\r\n"
            )
            sock.sendall(head.encode() + data[: len(data) // 2])
            wait_for(lambda: store.temp_files() != [])  # the upload is under way
        wait_for(lambda: store.temp_files() == [])
        assert store.http.head(f"/blobs/{digest}").status_code == 404
        assert blob_rows(store) == []
        assert not store.blob_path(digest).exists()

    def test_temp_files_of_a_dead_process_are_swept_at_start(self, sqlite_settings: Settings) -> None:
        """Temp files nobody holds (the writer was killed) are removed when the store starts."""
        tmp = sqlite_settings.data_dir / "blobs" / "tmp"
        tmp.mkdir(parents=True)
        stale = tmp / "up-killed"
        stale.write_bytes(b"half an upload")
        old = time.time() - 3600
        os.utime(stale, (old, old))
        with running_store(sqlite_settings) as store:
            assert store.temp_files() == []

    def test_a_corrupt_blob_is_detected_on_read_and_quarantined(self, store: Store) -> None:
        """Bytes changed on disk: the response is cut short, the blob moved aside and forgotten,
        cache entries on it dropped; uploading the bytes again heals it."""
        digest = store.put(DATA)
        store.http.post("/caches", json={"repo": "r", "key": "k", "version": "v", "digest": digest, "size": len(DATA)})
        damaged = bytearray(DATA)
        damaged[-1] ^= 0xFF
        store.blob_path(digest).write_bytes(bytes(damaged))
        with pytest.raises(httpx.RemoteProtocolError):
            store.http.get(f"/blobs/{digest}")
        wait_for(lambda: blob_rows(store) == [])
        assert store.http.head(f"/blobs/{digest}").status_code == 404
        assert not store.blob_path(digest).exists()
        quarantined = list((store.blob_root / "quarantine").iterdir())
        assert [p.name.split(".")[0] for p in quarantined] == [digest]
        assert quarantined[0].read_bytes() == bytes(damaged)
        with store.parts.catalog.db.read() as conn:
            assert conn.execute(select(caches)).all() == []
        metrics = httpx.get(f"{store.url}/metrics").text
        assert "shipyard_store_blobs_quarantined_total 1.0" in metrics
        assert store.http.put(f"/blobs/{digest}", content=DATA).status_code == 201
        assert store.http.get(f"/blobs/{digest}").content == DATA

    def test_a_truncated_blob_is_caught_by_range_reads_too(self, sqlite_store: Store) -> None:
        """A blob shorter on disk than recorded is corrupt whatever part of it is read."""
        digest = sqlite_store.put(DATA)
        sqlite_store.blob_path(digest).write_bytes(DATA[:100])
        with pytest.raises(httpx.RemoteProtocolError):
            sqlite_store.http.get(f"/blobs/{digest}", headers={"Range": "bytes=50-"})
        wait_for(lambda: blob_rows(sqlite_store) == [])

    def test_a_blob_whose_file_vanished_is_404_and_forgotten(self, sqlite_store: Store) -> None:
        """A row without bytes answers 404 and is dropped, so the blob can be uploaded again."""
        digest = sqlite_store.put(DATA)
        sqlite_store.blob_path(digest).unlink()
        assert sqlite_store.http.get(f"/blobs/{digest}").status_code == 404
        assert blob_rows(sqlite_store) == []
        assert sqlite_store.http.put(f"/blobs/{digest}", content=DATA).status_code == 201


class TestBackend:
    """The filesystem backend's sweep spares live uploads."""

    def test_sweep_removes_only_old_unlocked_temp_files(self, tmp_path: Path) -> None:
        """A temp file whose writer holds its lock, or written just now, is kept."""
        import fcntl

        from shipyard.store import FileBlobBackend

        backend = FileBlobBackend(tmp_path / "blobs")
        old = time.time() - 3600
        dead, live, fresh = (backend.tmp / n for n in ("up-dead", "up-live", "up-fresh"))
        for p in (dead, live, fresh):
            p.write_bytes(b"x")
        os.utime(dead, (old, old))
        os.utime(live, (old, old))
        with open(live, "rb") as held:
            fcntl.flock(held.fileno(), fcntl.LOCK_EX)
            assert backend.sweep_temp() == 1
        assert sorted(p.name for p in backend.tmp.iterdir()) == ["up-fresh", "up-live"]


@pytest.mark.slow
def test_a_200_mb_blob_streams_up_and_down(sqlite_store: Store, tmp_path: Path) -> None:
    """A blob far bigger than any buffer goes up and comes back whole, with memory flat."""
    import resource

    src = tmp_path / "big.bin"
    chunk = os.urandom(1 << 20)
    with open(src, "wb") as f:
        for i in range(200):
            f.write(chunk[i:] + chunk[:i])
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    dest = tmp_path / "back.bin"
    with sqlite_store.client() as client:
        digest, size = client.put_blob(src)
        assert size == 200 << 20
        assert client.get_blob(digest, dest) == size
    grown_mib = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024
    assert grown_mib < 100, f"peak memory grew by {grown_mib:.0f} MiB moving a 200 MiB blob"
    assert file_digest(dest) == (digest, size)
