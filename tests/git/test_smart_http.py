"""Clone, fetch and push with the real git client over smart HTTP."""

from __future__ import annotations

import base64
import os
import re
import resource
import socket
from pathlib import Path

import pytest

from shipyard.git import create_app
from tests.git.conftest import Served
from tests.helpers.databases import service_settings
from tests.helpers.servers import serve_app


class TestCloneFetchPush:
    """The round trip a developer makes."""

    def test_push_then_clone_with_the_token_as_basic_password(self, served_sqlite: Served) -> None:
        s = served_sqlite
        name = s.new_repo("rt")
        wt = s.checkout(name)
        sha = s.commit(wt, {"README.md": "hello\n", "src/app.py": "print('hi')\n"})
        s.git(wt, "push", "-q", "origin", "main")
        clone = s.workdir / f"clone-{name}"
        s.git(s.workdir, "clone", "-q", s.remote(name), str(clone))
        assert s.git(clone, "rev-parse", "HEAD").stdout.strip() == sha
        assert (clone / "src/app.py").read_text() == "print('hi')\n"
        assert s.git(clone, "symbolic-ref", "HEAD").stdout.strip() == "refs/heads/main"

    def test_fetch_sees_a_later_push_with_a_bearer_header(self, served_sqlite: Served) -> None:
        """git -c http.extraHeader="Authorization: Bearer T" works as well as basic auth."""
        s = served_sqlite
        name = s.new_repo("fetch")
        wt = s.checkout(name)
        s.commit(wt, {"a.txt": "1"})
        s.git(wt, "push", "-q", "origin", "main")
        plain = s.url + f"/{name}.git"
        header = f"http.extraHeader=Authorization: Bearer {s.admin}"
        clone = s.workdir / f"clone-{name}"
        s.git(s.workdir, "-c", header, "clone", "-q", plain, str(clone))
        second = s.commit(wt, {"a.txt": "2"})
        s.git(wt, "push", "-q", "origin", "main")
        s.git(clone, "-c", header, "fetch", "-q", "origin")
        assert s.git(clone, "rev-parse", "origin/main").stdout.strip() == second

    def test_protocol_v2_is_spoken(self, served_sqlite: Served) -> None:
        """With protocol.version=2 the server answers in v2 (ls-remote and clone)."""
        s = served_sqlite
        name = s.new_repo("v2")
        wt = s.checkout(name)
        sha = s.commit(wt, {"a.txt": "v2"})
        s.git(wt, "push", "-q", "origin", "main", "HEAD:refs/tags/t1")
        out = s.git(s.workdir, "-c", "protocol.version=2", "ls-remote", s.remote(name),
                    env={"GIT_TRACE_PACKET": "1"})
        assert "< version 2" in out.stderr
        assert f"{sha}\trefs/heads/main" in out.stdout
        assert f"{sha}\trefs/tags/t1" in out.stdout
        clone = s.workdir / f"clone-{name}"
        out = s.git(s.workdir, "-c", "protocol.version=2", "clone", "-q", s.remote(name), str(clone),
                    env={"GIT_TRACE_PACKET": "1"})
        assert "< version 2" in out.stderr
        assert "fetch" in out.stderr
        assert s.git(clone, "rev-parse", "HEAD").stdout.strip() == sha

    def test_protocol_v0_still_works(self, served_sqlite: Served) -> None:
        s = served_sqlite
        name = s.new_repo("v0")
        wt = s.checkout(name)
        sha = s.commit(wt, {"a.txt": "v0"})
        s.git(wt, "-c", "protocol.version=0", "push", "-q", "origin", "main")
        out = s.git(s.workdir, "-c", "protocol.version=0", "ls-remote", s.remote(name),
                    env={"GIT_TRACE_PACKET": "1"})
        assert "version 2" not in out.stderr
        assert sha in out.stdout

    def test_owner_name_repositories(self, served_sqlite: Served) -> None:
        s = served_sqlite
        assert s.api("POST", "/repos", json={"name": "team/svc"}).status_code == 201
        wt = s.checkout("team/svc")
        sha = s.commit(wt, {"x": "y"})
        s.git(wt, "push", "-q", "origin", "main")
        out = s.git(s.workdir, "ls-remote", s.remote("team/svc"))
        assert f"{sha}\trefs/heads/main" in out.stdout

    def test_a_rejected_non_fast_forward_changes_nothing(self, served_sqlite: Served) -> None:
        s = served_sqlite
        name = s.new_repo("nff")
        wt = s.checkout(name)
        first = s.commit(wt, {"a": "1"})
        s.git(wt, "push", "-q", "origin", "main")
        other = s.checkout(name)
        s.commit(other, {"b": "1"})
        cursor = s.last_event_id()
        out = s.git(other, "push", "origin", "main", check=False)
        assert out.returncode != 0
        assert "rejected" in out.stderr
        assert s.api("GET", f"/repos/{name}/refs").json()["refs"] == {"refs/heads/main": first}
        assert s.ref_events(cursor, name) == []


class TestAuth:
    """Who may clone and push."""

    def test_no_credentials_is_401_and_git_fails_clearly(self, served_sqlite: Served) -> None:
        s = served_sqlite
        name = s.new_repo("auth")
        response = s.api("GET", f"/{name}.git/info/refs", token="", params={"service": "git-upload-pack"})
        assert response.status_code == 401
        assert response.headers["www-authenticate"] == 'Basic realm="shipyard"'
        out = s.git(s.workdir, "clone", f"{s.url}/{name}.git", str(s.workdir / "noauth"), check=False)
        assert out.returncode != 0
        assert "could not read Username" in out.stderr or "Authentication failed" in out.stderr

    def test_a_wrong_token_is_refused(self, served_sqlite: Served) -> None:
        s = served_sqlite
        name = s.new_repo("badtok")
        out = s.git(s.workdir, "ls-remote", s.remote(name, token="sy_bogus.token"), check=False)
        assert out.returncode != 0
        assert "Authentication failed" in out.stderr

    def test_a_read_only_token_clones_but_cannot_push(self, served_sqlite: Served) -> None:
        s = served_sqlite
        name = s.new_repo("ro")
        wt = s.checkout(name)
        s.commit(wt, {"a": "1"})
        s.git(wt, "push", "-q", "origin", "main")
        for reader in (s.token("repos:read"), s.token(f"repo:{name}:read")):
            clone = s.workdir / f"ro-{reader[-8:]}"
            s.git(s.workdir, "clone", "-q", s.remote(name, reader), str(clone))
            s.commit(clone, {"b": "2"})
            cursor = s.last_event_id()
            out = s.git(clone, "push", "origin", "main", check=False)
            assert out.returncode != 0
            assert "403" in out.stderr
            assert s.ref_events(cursor, name) == []
        response = s.api("POST", f"/{name}.git/git-receive-pack", token=s.token("repos:read"), content=b"0000")
        assert response.status_code == 403
        assert "may not push" in response.json()["error"]

    def test_a_repo_scoped_token_reaches_only_its_repo(self, served_sqlite: Served) -> None:
        s = served_sqlite
        mine, other = s.new_repo("mine"), s.new_repo("other")
        token = s.token(f"repo:{mine}:write")
        wt = s.checkout(mine)
        s.git(wt, "remote", "set-url", "origin", s.remote(mine, token))
        s.commit(wt, {"a": "1"})
        s.git(wt, "push", "-q", "origin", "main")
        out = s.git(wt, "push", s.remote(other, token), "main", check=False)
        assert out.returncode != 0
        assert "403" in out.stderr
        out = s.git(s.workdir, "ls-remote", s.remote(other, token), check=False)
        assert out.returncode != 0

    def test_unknown_repository_is_404(self, served_sqlite: Served) -> None:
        s = served_sqlite
        out = s.git(s.workdir, "ls-remote", s.remote("no-such-repo"), check=False)
        assert out.returncode != 0
        assert "not found" in out.stderr
        response = s.api("GET", "/no-such-repo.git/info/refs", params={"service": "git-upload-pack"})
        assert response.status_code == 404


class TestBadRequests:
    """Smart HTTP requests git would never send still get a clear 4xx."""

    def test_dumb_http_is_refused(self, served_sqlite: Served) -> None:
        name = served_sqlite.new_repo("dumb")
        response = served_sqlite.api("GET", f"/{name}.git/info/refs")
        assert response.status_code == 400
        assert "smart HTTP" in response.json()["error"]

    def test_unknown_service_is_422(self, served_sqlite: Served) -> None:
        name = served_sqlite.new_repo("svc")
        response = served_sqlite.api("GET", f"/{name}.git/info/refs", params={"service": "git-upload-archive"})
        assert response.status_code == 422

    def test_a_bad_git_protocol_header_is_400(self, served_sqlite: Served) -> None:
        name = served_sqlite.new_repo("proto")
        response = served_sqlite.api(
            "GET", f"/{name}.git/info/refs", params={"service": "git-upload-pack"},
            headers={"Git-Protocol": "version=2\x01; rm -rf"},
        )
        assert response.status_code == 400

    def test_garbage_upload_pack_body_fails_without_a_500(self, served_sqlite: Served) -> None:
        name = served_sqlite.new_repo("garbage")
        response = served_sqlite.api(
            "POST", f"/{name}.git/git-upload-pack", content=b"not a pkt-line",
            headers={"Content-Type": "application/x-git-upload-pack-request"},
        )
        assert response.status_code < 500

    def test_a_bad_repo_name_is_400(self, served_sqlite: Served) -> None:
        response = served_sqlite.api("GET", "/-x.git/info/refs", params={"service": "git-upload-pack"})
        assert response.status_code == 400


def test_push_metrics_count(served_sqlite: Served) -> None:
    """A push moves the pushes counter; its ref changes move the events counter."""
    s = served_sqlite
    name = s.new_repo("metrics")
    wt = s.checkout(name)
    s.commit(wt, {"a": "1"})
    s.git(wt, "push", "-q", "origin", "main")
    text = s.api("GET", "/metrics").text
    assert re.search(r'^shipyard_git_pushes_total\{outcome="ok"\} [1-9]', text, re.M)
    assert re.search(r'^shipyard_git_events_total\{kind="ref.updated"\} [1-9]', text, re.M)
    assert re.search(r"^shipyard_git_pushes_in_progress 0", text, re.M)


@pytest.mark.slow
def test_a_100_mb_push_streams_through(served_sqlite: Served) -> None:
    """100 MB of incompressible data pushes and clones back without the server holding it."""
    s = served_sqlite
    name = s.new_repo("big")
    wt = s.checkout(name)
    blob = wt / "random.bin"
    with blob.open("wb") as fh:
        for _ in range(100):
            fh.write(os.urandom(1 << 20))
    s.git(wt, "add", "-A")
    s.git(wt, "commit", "-q", "-m", "big")
    cursor = s.last_event_id()
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB; the server runs in this process
    s.git(wt, "-c", "http.postBuffer=1048576", "push", "-q", "origin", "main")
    grown_mib = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024
    assert grown_mib < 64, f"the server grew by {grown_mib:.0f} MiB receiving a 100 MB push"
    assert [r for r, _b, _a in s.ref_events(cursor, name)] == ["refs/heads/main"]
    clone = s.workdir / f"clone-{name}"
    s.git(s.workdir, "clone", "-q", s.remote(name), str(clone))
    assert _same_file(clone / "random.bin", blob)


def _same_file(a: Path, b: Path) -> bool:
    with a.open("rb") as fa, b.open("rb") as fb:
        while True:
            ca, cb = fa.read(1 << 20), fb.read(1 << 20)
            if ca != cb:
                return False
            if not ca:
                return True


def test_a_gzip_request_body_is_inflated(served_sqlite: Served) -> None:
    """git gzips upload-pack requests (Content-Encoding: gzip); the backend receives it inflated."""
    import gzip

    s = served_sqlite
    name = s.new_repo("gzip")
    wt = s.checkout(name)
    sha = s.commit(wt, {"a": "gz"})
    s.git(wt, "push", "-q", "origin", "main")
    body = f"0032want {sha}\n".encode() + b"0000" + b"0009done\n"
    response = s.api(
        "POST", f"/{name}.git/git-upload-pack", content=gzip.compress(body),
        headers={"Content-Type": "application/x-git-upload-pack-request", "Content-Encoding": "gzip"},
    )
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/x-git-upload-pack-result"
    assert response.content.startswith(b"0008NAK\n")
    assert b"PACK" in response.content


class TestAbortedPushes:
    """A push that ends badly leaves the repository unlocked and its refs as they were."""

    def test_a_client_hanging_up_mid_push_releases_the_repository(self, served_sqlite: Served) -> None:
        s = served_sqlite
        name = s.new_repo("hangup")
        host, port = s.url.removeprefix("http://").split(":")
        auth = base64.b64encode(f"git:{s.admin}".encode()).decode()
        with socket.create_connection((host, int(port)), timeout=10) as sock:
            sock.sendall(
                f"POST /{name}.git/git-receive-pack HTTP/1.1\r\nHost: {host}\r\n"
                f"Authorization: Basic {auth}\r\n"
                "Content-Type: application/x-git-receive-pack-request\r\n"
                "Content-Length: 1000000\r\n\r\n0098".encode()
            )
            head = b""
            while b"\r\n\r\n" not in head:
                chunk = sock.recv(4096)
                assert chunk, "the server closed before answering"
                head += chunk
            assert head.startswith(b"HTTP/1.1 200")
        # The push died half way; the next one must get the repository's lock.
        wt = s.checkout(name)
        sha = s.commit(wt, {"a": "after"})
        cursor = s.last_event_id()
        s.git(wt, "push", "-q", "origin", "main")
        assert s.ref_events(cursor, name) == [("refs/heads/main", "0" * 40, sha)]

    def test_a_push_over_the_upload_limit_is_refused(self, tmp_path: Path) -> None:
        """413 by Content-Length, or cut off while streaming a chunked body; nothing recorded."""
        with service_settings("sqlite", tmp_path / "data", max_upload_body=200_000) as settings, \
                serve_app(create_app(settings)) as url:
            s = Served(settings, url, tmp_path)
            name = s.new_repo("limit")
            wt = s.checkout(name)
            small = s.commit(wt, {"a": "small"})
            s.git(wt, "push", "-q", "origin", "main")
            cursor = s.last_event_id()
            for size in (300_000, 3_000_000):  # git sends the second one chunked
                s.commit(wt, {f"blob{size}.bin": os.urandom(size)})
                out = s.git(wt, "push", "origin", "main", check=False)
                assert out.returncode != 0
                assert s.ref_events(cursor, name) == []
                assert s.api("GET", f"/repos/{name}/refs").json()["refs"] == {"refs/heads/main": small}
                s.git(wt, "reset", "-q", "--hard", small)
            newer = s.commit(wt, {"a": "fits"})
            s.git(wt, "push", "-q", "origin", "main")
            assert s.ref_events(cursor, name) == [("refs/heads/main", small, newer)]
