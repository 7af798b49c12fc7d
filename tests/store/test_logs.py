"""Job logs: stored whole as blobs, served with ranges."""

from __future__ import annotations

from pathlib import Path

from tests.store.conftest import Store, sha

LOG = b"".join(f"line {i}\n".encode() for i in range(1000))


class TestLogs:
    """PUT stores a job's log, GET serves it."""

    def test_put_then_get_whole_and_ranges(self, store: Store) -> None:
        """The log comes back whole or by range, as text."""
        put = store.http.put("/logs/42", content=LOG)
        assert put.status_code == 201
        assert put.json() == {"job_id": 42, "digest": sha(LOG), "size": len(LOG)}
        got = store.http.get("/logs/42")
        assert got.content == LOG
        assert got.headers["content-type"] == "text/plain; charset=utf-8"
        tail = store.http.get("/logs/42", headers={"Range": "bytes=-10"})
        assert (tail.status_code, tail.content) == (206, LOG[-10:])
        middle = store.http.get("/logs/42", headers={"Range": "bytes=7-13"})
        assert middle.content == LOG[7:14]
        assert store.http.get("/logs/42", headers={"Range": f"bytes={len(LOG)}-"}).status_code == 416

    def test_a_second_put_replaces_the_log(self, store: Store) -> None:
        """The job points at the newest upload; the blob of the first stays until collected."""
        store.http.put("/logs/42", content=b"first\n")
        assert store.http.put("/logs/42", content=b"second\n").status_code == 201
        assert store.http.get("/logs/42").content == b"second\n"
        first = sha(b"first\n")
        assert store.http.head(f"/blobs/{first}").status_code == 200

    def test_identical_logs_share_a_blob(self, store: Store) -> None:
        """Two jobs with the same log store its bytes once."""
        store.http.put("/logs/1", content=LOG)
        store.http.put("/logs/2", content=LOG)
        assert store.http.get("/logs/2").content == LOG
        assert store.blob_path(sha(LOG)).exists()

    def test_unknown_job_is_404(self, store: Store) -> None:
        """No log stored for a job: 404 with a message."""
        response = store.http.get("/logs/999")
        assert response.status_code == 404
        assert "no log" in response.json()["error"]

    def test_an_empty_log_is_stored(self, store: Store) -> None:
        """A job that printed nothing has an empty log, not a missing one."""
        assert store.http.put("/logs/3", content=b"").status_code == 201
        assert store.http.get("/logs/3").content == b""

    def test_client_puts_a_log_file_and_reads_ranges(self, store: Store, tmp_path: Path) -> None:
        """StoreClient.put_log streams a file; get_log reads it from an offset."""
        path = tmp_path / "job.log"
        path.write_bytes(LOG)
        with store.client("logs:write") as client:
            out = client.put_log(5, path)
            assert (out.digest, out.size) == (sha(LOG), len(LOG))
            assert client.get_log(5) == LOG
            assert client.get_log(5, start=100) == LOG[100:]
            assert client.get_log(5, start=10, end=19) == LOG[10:20]
            assert client.get_log(5, start=len(LOG)) == b""
