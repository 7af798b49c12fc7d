"""The gateway in front of the real git, store and ci services, on each database."""

from __future__ import annotations

import hashlib
import os
import subprocess
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from shipyard import ci, git, store
from shipyard.gateway import create_app
from shipyard.service import Settings, TokenSigner
from tests.helpers.databases import BACKENDS, service_settings
from tests.helpers.gitrepo import make_repo, write
from tests.helpers.servers import serve_app


@dataclass
class Platform:
    url: str
    direct: dict[str, str]
    admin: str
    settings: Settings

    def api(self) -> httpx.Client:
        return httpx.Client(base_url=self.url + "/api/v1", timeout=60,
                            headers={"Authorization": f"Bearer {self.admin}"})


@pytest.fixture(scope="module", params=BACKENDS)
def platform(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Platform]:
    """git, store and ci each served on loopback, and a gateway in front of them."""
    with ExitStack() as stack:
        base = stack.enter_context(service_settings(request.param, tmp_path_factory.mktemp("data")))
        urls = {
            "git": stack.enter_context(serve_app(git.create_app(base))),
            "store": stack.enter_context(serve_app(store.create_app(base))),
        }
        # The public URL is only known once the gateway listens; clone URLs are not checked here.
        settings = base.model_copy(update={"git_url": urls["git"], "store_url": urls["store"]})
        # A short feed wait, so git is not left answering a long poll when the test ends.
        urls["ci"] = stack.enter_context(serve_app(ci.create_app(settings, feed_wait=1.0)))
        settings = settings.model_copy(update={"ci_url": urls["ci"]})
        url = stack.enter_context(serve_app(create_app(settings)))
        admin = TokenSigner(settings.signing_key()).issue("admin", ["admin"])
        yield Platform(url, urls, admin, settings)


def _git(cwd: Path, token: str, *args: str) -> str:
    env = {**os.environ, "GIT_TERMINAL_PROMPT": "0", "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@x",
           "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@x"}
    proc = subprocess.run(["git", "-c", f"http.extraHeader=Authorization: Bearer {token}", *args],
                          cwd=cwd, capture_output=True, text=True, env=env, timeout=120)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.strip()


def test_healthz_reports_every_real_service_healthy(platform: Platform):
    r = httpx.get(platform.url + "/healthz")
    assert r.status_code == 200, r.text


def test_push_and_clone_through_the_gateway(platform: Platform, tmp_path: Path):
    with platform.api() as api:
        assert api.post("/repos", json={"name": "team/app"}).status_code == 201
    work = make_repo(tmp_path / "work", {"README.md": "hello\n"})
    # A few MB of incompressible data, so the push is a real streamed body.
    (work / "blob.bin").write_bytes(os.urandom(3 << 20))
    _git(work, platform.admin, "add", "-A")
    _git(work, platform.admin, "commit", "-qm", "data")
    _git(work, platform.admin, "push", "-q", f"{platform.url}/team/app.git", "main")
    head = _git(work, platform.admin, "rev-parse", "HEAD")
    _git(tmp_path, platform.admin, "clone", "-q", f"{platform.url}/team/app.git", "clone")
    assert _git(tmp_path / "clone", platform.admin, "rev-parse", "HEAD") == head
    assert (tmp_path / "clone" / "blob.bin").read_bytes() == (work / "blob.bin").read_bytes()
    with platform.api() as api:
        refs = api.get("/repos/team/app/refs").json()
        feed = api.get("/feeds/git", params={"after": 0, "limit": 500}).json()
    assert refs["refs"]["refs/heads/main"] == head
    assert {"kind": "ref.updated", "after": head} in [
        {"kind": e["kind"], "after": e["payload"].get("after")} for e in feed["events"]
    ]


def test_push_without_a_token_is_refused_with_a_challenge(platform: Platform):
    r = httpx.get(platform.url + "/team/app.git/info/refs", params={"service": "git-receive-pack"})
    assert r.status_code == 401
    assert r.headers["www-authenticate"] == 'Basic realm="shipyard"'


def test_a_big_blob_streams_to_the_store_and_back(platform: Platform):
    size = 32 << 20
    block = os.urandom(1 << 20)
    digest = hashlib.sha256(block * (size // len(block))).hexdigest()

    def body() -> Iterator[bytes]:
        for _ in range(size // len(block)):
            yield block

    with platform.api() as api:
        r = api.put(f"/blobs/{digest}", content=body())
        assert r.status_code in (200, 201), r.text
        assert api.head(f"/blobs/{digest}").headers["content-length"] == str(size)
        got = hashlib.sha256()
        with api.stream("GET", f"/blobs/{digest}") as stream:
            for chunk in stream.iter_bytes():
                got.update(chunk)
        assert got.hexdigest() == digest
        part = api.get(f"/blobs/{digest}", headers={"Range": "bytes=10-19"})
        assert part.status_code == 206 and part.content == (block * 1)[10:20]


def test_a_blob_whose_bytes_do_not_match_is_refused(platform: Platform):
    with platform.api() as api:
        r = api.put("/blobs/" + "0" * 64, content=b"not that")
    assert r.status_code == 400
    assert r.json()["error"]


def test_workflow_push_makes_a_pipeline_seen_through_the_gateway(platform: Platform, tmp_path: Path):
    with platform.api() as api:
        assert api.post("/repos", json={"name": "wf"}).status_code == 201
    work = make_repo(tmp_path / "wf", {"README.md": "x\n"})
    write(work, {".github/workflows/ci.yml": """\
        on: push
        jobs:
          build:
            runs-on: ubuntu-latest
            steps:
              - run: echo hi
        """})
    _git(work, platform.admin, "add", "-A")
    _git(work, platform.admin, "commit", "-qm", "wf")
    _git(work, platform.admin, "push", "-q", f"{platform.url}/wf.git", "main")
    with platform.api() as api:
        # Long-poll ci's feed through the gateway until the pipeline shows up.
        page = api.get("/feeds/ci", params={"after": 0, "wait": 30}, timeout=60).json()
        assert page["events"], page
        pipelines = api.get("/pipelines", params={"repo": "wf"}).json()
    assert [p["repo"] for p in pipelines] == ["wf"]
    assert pipelines[0]["jobs"] == [] or pipelines[0]["jobs"][0]["key"] == "build"


@pytest.mark.parametrize("service", ["git", "store", "ci"])
def test_each_services_openapi_is_served(platform: Platform, service: str):
    r = httpx.get(f"{platform.url}/api/v1/openapi/{service}.json")
    assert r.status_code == 200
    direct = httpx.get(f"{platform.direct[service]}/openapi.json").json()
    assert r.json()["paths"].keys() == direct["paths"].keys()


@pytest.mark.parametrize("service", ["git", "store", "ci"])
def test_each_services_metrics_are_served(platform: Platform, service: str):
    """One address scrapes them all: /api/v1/metrics/<service> is that service's /metrics."""
    httpx.get(f"{platform.url}/api/v1/openapi/{service}.json")  # a request it has counted
    r = httpx.get(f"{platform.url}/api/v1/metrics/{service}")
    assert r.status_code == 200
    assert f'service="{service}"' in r.text


def test_errors_of_a_service_pass_through_unchanged(platform: Platform):
    with platform.api() as api:
        r = api.get("/repos/does-not-exist")
        r2 = api.post("/dispatch", content=b"{broken", headers={"Content-Type": "application/json"})
    assert r.status_code == 404 and "does-not-exist" in r.json()["error"]
    assert 400 <= r2.status_code < 500 and r2.json()["error"]
