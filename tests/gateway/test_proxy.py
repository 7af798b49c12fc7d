"""The gateway forwards by path, streams both ways, and cleans headers on the hop."""

from __future__ import annotations

import hashlib
import socket
import time
from collections.abc import Iterator

import httpx
import pytest

from tests.gateway.conftest import Gate

ROUTES = [
    # gateway path -> (service, path it reaches)
    ("/api/v1/repos", "git", "/repos"),
    ("/api/v1/repos/owner/demo/refs", "git", "/repos/owner/demo/refs"),
    ("/demo.git/info/refs", "git", "/demo.git/info/refs"),
    ("/owner/demo.git/git-upload-pack", "git", "/owner/demo.git/git-upload-pack"),
    ("/api/v1/pipelines", "ci", "/pipelines"),
    ("/api/v1/pipelines/4/cancel", "ci", "/pipelines/4/cancel"),
    ("/api/v1/jobs/17/log", "ci", "/jobs/17/log"),
    ("/api/v1/runners/claim", "ci", "/runners/claim"),
    ("/api/v1/dispatch", "ci", "/dispatch"),
    ("/api/v1/statuses/demo/abc", "ci", "/statuses/demo/abc"),
    ("/api/v1/schedules", "ci", "/schedules"),
    ("/api/v1/blobs/ab12", "store", "/blobs/ab12"),
    ("/api/v1/artifacts/3/report", "store", "/artifacts/3/report"),
    ("/api/v1/caches/lookup", "store", "/caches/lookup"),
    ("/api/v1/logs/9", "store", "/logs/9"),
    ("/api/v1/feeds/git", "git", "/events"),
    ("/api/v1/feeds/ci", "ci", "/events"),
    ("/api/v1/feeds/store", "store", "/events"),
]


class TestRouting:
    """Each row of the table in docs/api.md reaches its service at its path."""

    @pytest.mark.parametrize(("path", "service", "reached"), ROUTES)
    def test_path_reaches_its_service(self, gate: Gate, path: str, service: str, reached: str):
        with gate.client() as c:
            r = c.post(path, params={"after": "3", "wait": "0"}, content=b"{}")
        assert r.status_code == 200, r.text
        body = r.json()
        assert (body["service"], body["raw_path"], body["query"]) == (service, reached, "after=3&wait=0")
        assert body["method"] == "POST"

    def test_percent_encoding_of_the_path_is_kept(self, gate: Gate):
        with gate.client() as c:
            body = c.get("/api/v1/repos/a%2Fb%20c").json()
        assert body["raw_path"] == "/repos/a%2Fb%20c"

    def test_openapi_of_a_service_is_its_openapi_json(self, gate: Gate):
        with gate.client() as c:
            body = c.get("/api/v1/openapi/store.json").json()
        assert "/blobs/upload" in body["paths"]

    def test_openapi_of_the_gateway_is_its_own(self, gate: Gate):
        with gate.client() as c:
            body = c.get("/api/v1/openapi/gateway.json").json()
        assert set(body["paths"]) >= {"/api/v1/whoami", "/api/v1/tokens", "/healthz"}

    def test_unknown_service_is_404_naming_the_services(self, gate: Gate):
        with gate.client() as c:
            r = c.get("/api/v1/feeds/deploy")
            r2 = c.get("/api/v1/openapi/nope.json")
        assert r.status_code == 404 and "git, store, ci" in r.json()["error"]
        assert r2.status_code == 404

    def test_unknown_path_is_404_json(self, gate: Gate):
        with gate.client() as c:
            r = c.get("/api/v1/nothing-here")
        assert r.status_code == 404
        assert "error" in r.json()

    def test_similar_prefix_is_not_forwarded(self, gate: Gate):
        """/api/v1/reposx is not /api/v1/repos."""
        with gate.client() as c:
            assert c.get("/api/v1/reposx").status_code == 404

    def test_status_and_error_body_pass_through(self, gate: Gate):
        with gate.client() as c:
            r = c.get("/api/v1/pipelines/1", params={"status": "409"})
        assert r.status_code == 409
        assert r.json()["raw_path"] == "/pipelines/1"

    def test_head_keeps_content_length(self, gate: Gate):
        with gate.client() as c:
            r = c.head("/api/v1/blobs/" + "a" * 64)
        assert r.status_code == 200
        assert r.headers["content-length"] == "1234"
        assert r.content == b""


def _headers(body: dict[str, object]) -> dict[str, str]:
    pairs = body["headers"]
    assert isinstance(pairs, list)
    return {k: v for k, v in pairs}


class TestHeaders:
    """Hop-by-hop headers stop at the gateway; forwarding headers are set."""

    def test_hop_by_hop_request_headers_are_dropped(self, gate: Gate):
        with gate.client() as c:
            body = c.get("/api/v1/repos", headers={
                "Connection": "keep-alive, X-Secret-Hop",
                "X-Secret-Hop": "private",
                "Keep-Alive": "timeout=5",
                "TE": "trailers",
                "Proxy-Authorization": "Basic eDp5",
                "Upgrade": "h2c",
                "X-Kept": "yes",
            }).json()
        headers = _headers(body)
        for gone in ("x-secret-hop", "keep-alive", "te", "proxy-authorization", "upgrade"):
            assert gone not in headers, gone
        assert headers["x-kept"] == "yes"

    def test_authorization_passes_through(self, gate: Gate):
        with gate.client("sy_abc.def") as c:
            body = c.get("/api/v1/repos").json()
        assert _headers(body)["authorization"] == "Bearer sy_abc.def"

    def test_forwarding_headers_are_set(self, gate: Gate):
        with gate.client() as c:
            body = c.get("/api/v1/repos", headers={"X-Forwarded-For": "10.1.2.3"}).json()
        headers = _headers(body)
        gateway_host = gate.url.removeprefix("http://")
        assert headers["x-forwarded-host"] == gateway_host
        assert headers["x-forwarded-proto"] == "http"
        assert headers["x-forwarded-for"].startswith("10.1.2.3")
        assert headers["host"] == gate.upstream_urls["git"].removeprefix("http://")

    def test_hop_by_hop_response_headers_are_dropped(self, gate: Gate):
        with gate.client() as c:
            r = c.get("/api/v1/repos/headers-out")
        assert r.status_code == 200
        assert r.headers["x-custom"] == "kept"
        assert "proxy-authenticate" not in r.headers
        assert "trailer" not in r.headers
        with httpx.Client(base_url=gate.upstream_urls["git"]) as direct:
            assert direct.get("/repos/headers-out").headers["proxy-authenticate"] == "Basic"


    def test_service_cookies_reach_the_caller_and_no_one_else(self, gate: Gate):
        with gate.client() as alice:
            r = alice.get("/api/v1/repos/set-cookie")
        assert r.headers["set-cookie"] == "session=alice; Path=/"
        with gate.client() as bob:
            body = bob.get("/api/v1/repos/anything").json()
        assert "cookie" not in _headers(body)

    def test_redirects_are_passed_to_the_caller_not_followed(self, gate: Gate):
        with gate.client() as c:
            r = c.get("/api/v1/repos/moved")
        assert r.status_code == 307
        assert r.headers["location"] == "/repos/small"


class TestStreaming:
    """Bodies flow as they are produced, both ways, never buffered whole."""

    def test_request_body_reaches_the_service_while_the_client_still_sends(self, gate: Gate):
        probe = gate.probes["store"]
        probe.first_chunk_in.clear()
        order: list[str] = []

        def body() -> Iterator[bytes]:
            yield b"a" * 65536
            # The service sees the first chunk before the second exists: nothing buffers.
            order.append("service saw chunk 1" if probe.first_chunk_in.wait(10) else "timeout")
            yield b"b" * 65536

        with gate.client() as c:
            r = c.post("/api/v1/blobs/upload", content=body())
        assert r.status_code == 200, r.text
        assert order == ["service saw chunk 1"]
        assert r.json()["size"] == 131072

    def test_response_reaches_the_client_while_the_service_still_produces(self, gate: Gate):
        probe = gate.probes["store"]
        probe.first_chunk_out.clear()
        with gate.client() as c, c.stream("GET", "/api/v1/logs/stream") as r:
            chunks = r.iter_raw()
            first = next(chunks)
            assert first == b"first line\n"
            # The service writes its second line only once the first reached the client.
            probe.first_chunk_out.set()
            assert b"".join(chunks) == b"second line\n"

    def test_a_100_mb_upload_streams_through_intact(self, gate: Gate):
        size = 100 << 20
        block = bytes(range(256)) * 4096  # 1 MiB
        digest = hashlib.sha256()
        for _ in range(size // len(block)):
            digest.update(block)

        def body() -> Iterator[bytes]:
            for _ in range(size // len(block)):
                yield block

        with gate.client() as c:
            r = c.post("/api/v1/blobs/upload", content=body(),
                       headers={"Content-Length": str(size)})
        assert r.status_code == 200, r.text
        assert r.json()["sha256"] == digest.hexdigest()
        assert r.json()["size"] == size
        assert r.json()["chunks"] > 10  # it arrived in pieces, as it was sent

    def test_a_chunked_upload_streams_through(self, gate: Gate):
        def body() -> Iterator[bytes]:
            for i in range(50):
                yield str(i).encode() * 1000

        expected = b"".join(str(i).encode() * 1000 for i in range(50))
        with gate.client() as c:
            r = c.post("/api/v1/blobs/upload", content=body())
        assert r.json()["sha256"] == hashlib.sha256(expected).hexdigest()

    def test_a_response_cut_short_by_the_service_is_cut_short_for_the_client(self, gate: Gate):
        with gate.client() as c, pytest.raises(httpx.RemoteProtocolError):
            c.get("/api/v1/logs/broken")

    def test_a_client_leaving_a_long_poll_releases_the_service_at_once(self, gate: Gate):
        probe = gate.probes["ci"]
        probe.disconnected.clear()
        started = time.monotonic()
        with gate.client() as c, pytest.raises(httpx.ReadTimeout):
            c.get("/api/v1/runners/wait", timeout=httpx.Timeout(5, read=0.3))
        assert probe.disconnected.wait(5)
        assert time.monotonic() - started < 3

    def test_a_client_leaving_mid_upload_leaves_the_gateway_serving(self, gate: Gate):
        host, port = gate.url.removeprefix("http://").split(":")
        with socket.create_connection((host, int(port))) as sock:
            sock.sendall(b"POST /api/v1/blobs/upload HTTP/1.1\r\nHost: x\r\n"
                         b"Content-Length: 1000000\r\n\r\n" + b"x" * 5000)
            time.sleep(0.2)
        with gate.client() as c:
            for _ in range(3):
                assert c.get("/api/v1/repos/small").json() == {"ok": "yes"}

    def test_keep_alive_connection_serves_many_requests(self, gate: Gate):
        with gate.client() as c:
            for _ in range(20):
                assert c.get("/api/v1/repos/small").json() == {"ok": "yes"}


class TestUnavailable:
    """A service that does not answer is a 503 naming it."""

    @pytest.mark.parametrize(("path", "service"), [
        ("/api/v1/repos", "git"), ("/demo.git/info/refs", "git"),
        ("/api/v1/pipelines", "ci"), ("/api/v1/feeds/ci", "ci"),
        ("/api/v1/blobs/abc", "store"),
    ])
    def test_down_service_is_503(self, lonely_gate: str, path: str, service: str):
        r = httpx.get(lonely_gate + path)
        assert r.status_code == 503
        assert r.json() == {"error": f"{service} is unavailable"}

    def test_upload_to_a_down_service_is_503(self, lonely_gate: str):
        r = httpx.put(lonely_gate + "/api/v1/blobs/abc", content=b"x" * 100000)
        assert r.status_code == 503
        assert r.json() == {"error": "store is unavailable"}
