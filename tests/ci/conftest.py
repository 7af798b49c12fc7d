"""A ci service on loopback (with a real git service when a test needs one), and runners
driven over HTTP exactly as the runner agent speaks the protocol."""

from __future__ import annotations

import gc
import itertools
import os
import socket
import subprocess
import textwrap
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from fastapi import FastAPI

from shipyard.ci import NewPipeline, create_app
from shipyard.git import create_app as create_git_app
from shipyard.service import Settings, TokenSigner
from shipyard.workflow._parser import check_workflow
from tests.helpers.databases import BACKENDS, service_settings
from tests.helpers.servers import serve_app

_names = itertools.count(1)
_clients: list[httpx.Client] = []


def client(base_url: str, token: str, timeout: float = 60) -> httpx.Client:
    """An HTTP client closed when the test ends (an open socket is a test failure)."""
    c = httpx.Client(base_url=base_url, headers={"Authorization": f"Bearer {token}"},
                     timeout=timeout)
    _clients.append(c)
    return c


@pytest.fixture(autouse=True)
def _close_clients() -> Iterator[None]:
    yield
    while _clients:
        _clients.pop().close()
    # Anything left unclosed is reported now, by the test that left it, not by a later one.
    gc.collect()


def unique(prefix: str) -> str:
    return f"{prefix}-{os.getpid()}-{next(_names)}"


def wait_for(check: Callable[[], Any], timeout: float = 15.0, what: str = "condition",
             interval: float = 0.02) -> Any:
    """Poll ``check`` until it returns something truthy."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(interval)


@contextmanager
def serve_on(app: FastAPI, port: int) -> Iterator[str]:
    """Serve ``app`` on a given loopback port (to bring a service back at the same URL)."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", port))
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", access_log=False))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    wait_for(lambda: server.started or not thread.is_alive(), 20, "the server to start")
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(10)
        sock.close()


class _Authed:
    """Requests with one token over a shared client (as the runner agent shares one)."""

    def __init__(self, http: httpx.Client, token: str) -> None:
        self.shared = http
        self.headers = {"Authorization": f"Bearer {token}"}

    def post(self, path: str, **kwargs: Any) -> httpx.Response:
        return self.shared.post(path, headers=self.headers, **kwargs)


class Job:
    """One claimed job, spoken for with its job token."""

    def __init__(self, base_url: str, assignment: dict[str, Any],
                 http: httpx.Client | None = None) -> None:
        self.a = assignment
        self.id: int = assignment["job_id"]
        self.key: str = assignment["key"]
        self.http = _Authed(http or client(base_url, ""), assignment["token"])
        self.size = 0

    def log(self, data: bytes, offset: int | None = None) -> httpx.Response:
        at = self.size if offset is None else offset
        response = self.http.post(f"/jobs/{self.id}/log", params={"offset": at}, content=data)
        if response.status_code == 200:
            self.size = response.json()["size"]
        return response

    def heartbeat(self) -> bool:
        response = self.http.post(f"/jobs/{self.id}/heartbeat")
        assert response.status_code == 200, response.text
        return bool(response.json()["cancel"])

    def complete(
        self, conclusion: str = "success", outputs: dict[str, str] | None = None, **extra: Any
    ) -> httpx.Response:
        body = {"conclusion": conclusion, "outputs": outputs or {}, "log_size": self.size, **extra}
        return self.http.post(f"/jobs/{self.id}/complete", json=body)

    def finish(self, conclusion: str = "success", outputs: dict[str, str] | None = None,
               log: bytes = b"done\n") -> dict[str, Any]:
        """Log, then complete: the requests a short job costs after its claim."""
        assert self.log(log).status_code == 200
        response = self.complete(conclusion, outputs, steps=[
            {"number": 1, "name": "step", "status": "completed", "conclusion": conclusion},
        ])
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        return body

    def close(self) -> None:
        """Nothing to close: the runner's client is shared."""


class Runner:
    """A registered runner."""

    def __init__(self, ci: CiServer, labels: list[str], name: str | None = None) -> None:
        self.ci = ci
        self.name = name or unique("runner")
        reg = ci.post("/runners/registration-token").json()["token"]
        with httpx.Client(base_url=ci.url, timeout=30) as c:
            response = c.post(
                "/runners/register", headers={"Authorization": f"Bearer {reg}"},
                json={"name": self.name, "labels": labels, "concurrency": 2, "executor": "local",
                      "version": "test"},
            )
        assert response.status_code == 201, response.text
        self.id: int = response.json()["id"]
        self.token: str = response.json()["token"]
        self.http = client(ci.url, self.token, timeout=90)

    def claim(self, wait: float = 10.0, **extra: object) -> Job | None:
        response = self.http.post("/runners/claim", json={"wait": wait, "slots": 1, **extra})
        if response.status_code == 204:
            return None
        assert response.status_code == 200, response.text
        return Job(self.ci.url, response.json(), self.http)

    def must_claim(self, wait: float = 10.0) -> Job:
        job = self.claim(wait)
        assert job is not None, "no job was handed out"
        return job

    def run_all(self, outputs: Callable[[Job], dict[str, str]] | None = None,
                conclusion: Callable[[Job], str] | None = None, wait: float = 1.0) -> list[Job]:
        """Claim and finish jobs until none comes within ``wait``."""
        done = []
        while (job := self.claim(wait)) is not None:
            job.finish(conclusion(job) if conclusion else "success",
                       outputs(job) if outputs else None)
            done.append(job)
        return done


@dataclass
class CiServer:
    settings: Settings
    url: str
    app: FastAPI
    signer: TokenSigner = field(init=False)
    admin: str = field(init=False)

    def __post_init__(self) -> None:
        self.signer = TokenSigner(self.settings.signing_key())
        self.admin = self.signer.issue("tester", ["admin"])
        self.http = httpx.Client(
            base_url=self.url, headers={"Authorization": f"Bearer {self.admin}"}, timeout=60
        )

    def token(self, *scopes: str, ttl: float | None = None) -> str:
        return self.signer.issue("tester", scopes, ttl=ttl)

    def get(self, path: str, **kwargs: Any) -> httpx.Response:
        return self.http.get(path, **kwargs)

    def post(self, path: str, **kwargs: Any) -> httpx.Response:
        return self.http.post(path, **kwargs)

    def runner(self, *labels: str, name: str | None = None) -> Runner:
        return Runner(self, list(labels), name)

    def create(self, text: str, *, path: str = ".github/workflows/ci.yml", repo: str = "demo",
               event: str = "push", inputs: dict[str, Any] | None = None,
               called: dict[str, str] | None = None, sha: str = "a" * 40) -> int:
        """A pipeline of ``text`` (dedented), as if a push had started it."""
        text = textwrap.dedent(text)
        workflow, errors = check_workflow(path, text)
        assert not errors, errors
        assert workflow is not None
        spec = NewPipeline(
            repo=repo, workflow=path, name=workflow.display_name, event=event,
            ref="refs/heads/main", sha=sha, text=text, called=called or {},
            inputs=inputs or {}, github={"sha": sha, "ref": "refs/heads/main",
                                         "event_name": event, "repository": repo},
            parsed=workflow,
        )
        [pipeline_id] = self.app.state.ci.engine.create_pipelines([spec])
        return int(pipeline_id)

    def pipeline(self, pipeline_id: int) -> dict[str, Any]:
        response = self.get(f"/pipelines/{pipeline_id}")
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        return body

    def jobs(self, pipeline_id: int) -> dict[str, dict[str, Any]]:
        return {j["key"]: j for j in self.pipeline(pipeline_id)["jobs"]}

    def wait_done(self, pipeline_id: int, timeout: float = 20.0) -> dict[str, Any]:
        repo = self.pipeline(pipeline_id)["repo"]

        def done() -> bool:
            # The list has no jobs: cheap to poll even for a pipeline of a thousand.
            listed = self.get("/pipelines", params={"repo": repo, "limit": 500}).json()
            return any(p["id"] == pipeline_id and p["status"] == "completed" for p in listed)

        wait_for(done, timeout, f"pipeline {pipeline_id} to complete", interval=0.05)
        return self.pipeline(pipeline_id)

    def close(self) -> None:
        self.http.close()


@contextmanager
def running_ci(settings: Settings, **kwargs: Any) -> Iterator[CiServer]:
    app = create_app(settings, **kwargs)
    with serve_app(app) as url:
        server = CiServer(settings, url, app)
        try:
            yield server
        finally:
            server.close()


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    """Each database, for tests that build their own settings."""
    return str(request.param)


@pytest.fixture(scope="module", params=BACKENDS)
def ci(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[CiServer]:
    """One ci service per test module and database; tests keep apart by runner labels."""
    base = tmp_path_factory.mktemp(f"ci-{request.param}")
    with service_settings(request.param, base / "data") as settings, running_ci(settings) as server:
        yield server


# -- git ---------------------------------------------------------------------------------


@dataclass
class GitServer:
    settings: Settings
    url: str
    workdir: Path

    def __post_init__(self) -> None:
        self.admin = TokenSigner(self.settings.signing_key()).issue("tester", ["admin"])
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("GIT_")}
        self.env.update({
            "HOME": str(self.workdir), "GIT_CONFIG_NOSYSTEM": "1",
            "GIT_CONFIG_GLOBAL": os.devnull, "GIT_TERMINAL_PROMPT": "0",
            "GIT_AUTHOR_NAME": "Test Author", "GIT_AUTHOR_EMAIL": "author@example.com",
            "GIT_COMMITTER_NAME": "Test Author", "GIT_COMMITTER_EMAIL": "author@example.com",
        })

    def new_repo(self, prefix: str = "repo") -> str:
        name = unique(prefix)
        with httpx.Client(base_url=self.url, timeout=30) as c:
            response = c.post("/repos", json={"name": name},
                              headers={"Authorization": f"Bearer {self.admin}"})
        assert response.status_code == 201, response.text
        return name

    def git(self, cwd: Path, *args: str) -> str:
        proc = subprocess.run(["git", *args], cwd=cwd, env=self.env, capture_output=True,
                              text=True, timeout=120)
        if proc.returncode != 0:
            raise AssertionError(f"git {' '.join(args)} failed:\n{proc.stderr}")
        return proc.stdout.strip()

    def worktree(self, name: str) -> Path:
        path = self.workdir / unique("wt")
        path.mkdir()
        self.git(path, "init", "-q", "-b", "main")
        host = self.url.removeprefix("http://")
        self.git(path, "remote", "add", "origin", f"http://git:{self.admin}@{host}/{name}.git")
        return path

    def commit(self, wt: Path, files: dict[str, str | None], message: str = "change") -> str:
        for rel, content in files.items():
            target = wt / rel
            if content is None:
                target.unlink()
                continue
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(textwrap.dedent(content))
        self.git(wt, "add", "-A")
        self.git(wt, "commit", "-q", "--allow-empty", "-m", message)
        return self.git(wt, "rev-parse", "HEAD")

    def push(self, wt: Path, *refspecs: str) -> None:
        self.git(wt, "push", "-q", "origin", *(refspecs or ("main",)))


@contextmanager
def running_git(backend: str, base: Path, port: int | None = None) -> Iterator[GitServer]:
    with service_settings(backend, base / "git-data") as settings:
        app = create_git_app(settings)
        served = serve_on(app, port) if port is not None else serve_app(app)
        with served as url:
            work = base / "git-work"
            work.mkdir(exist_ok=True)
            yield GitServer(settings, url, work)


@pytest.fixture(scope="module")
def git_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GitServer]:
    """A real git service (on SQLite: git's database is not what these tests test)."""
    with running_git("sqlite", tmp_path_factory.mktemp("git")) as server:
        yield server


@pytest.fixture(scope="module", params=BACKENDS)
def ci_git(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, git_server: GitServer
) -> Iterator[tuple[CiServer, GitServer]]:
    """A ci service reading the git service's feed, per test module and database."""
    base = tmp_path_factory.mktemp(f"ci-git-{request.param}")
    with service_settings(request.param, base / "data", git_url=git_server.url) as settings, \
            running_ci(settings, feed_wait=2.0) as server:
        yield server, git_server
