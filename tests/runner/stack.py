"""The whole server side on loopback: git, store, ci and the gateway in front of them.

Each service is its real app served by uvicorn in a thread; they share one Settings
(SQLite databases in one data dir) naming each other's URLs, so the ports are bound
before any app is built.
"""

from __future__ import annotations

import itertools
import os
import socket
import subprocess
import textwrap
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import uvicorn
from fastapi import FastAPI

from shipyard.service import Settings, TokenSigner
from tests.helpers.databases import service_settings
from tests.helpers.gitrepo import GIT_ENV, make_repo


@contextmanager
def serve_on(app: FastAPI | Faults, sock: socket.socket) -> Iterator[None]:
    """Serve ``app`` on an already bound socket until the block ends."""
    config = uvicorn.Config(
        app, log_level="warning", access_log=False, lifespan="on", timeout_graceful_shutdown=2
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("a service did not start")
        time.sleep(0.01)
    try:
        yield
    finally:
        server.should_exit = True
        thread.join(10)
        sock.close()


class Faults:
    """ASGI middleware in front of the gateway: counts requests, and spoils some on demand.

    ``inject[suffix]`` is a list of faults for the next requests whose path ends with
    ``suffix``: an int answers that status without forwarding; ``"garbage"`` answers 200
    with a body that is not JSON; ``"lost"`` lets the request through and answers 502
    instead of its answer (as a proxy whose upstream died once the request was handled);
    a callable rewrites the real JSON answer.
    """

    def __init__(self, app: Any) -> None:
        self.app = app
        self.inject: dict[str, list[Any]] = {}
        self.counts: dict[str, int] = {}
        self.lock = threading.Lock()

    def count(self, suffix: str) -> int:
        with self.lock:
            return sum(n for path, n in self.counts.items() if path.endswith(suffix))

    def _kind(self, path: str) -> str:
        parts = path.rstrip("/").split("/")
        return "/".join(p if not p.isdigit() else "N" for p in parts[-2:])

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path: str = scope["path"]
        fault = None
        with self.lock:
            kind = self._kind(path)
            self.counts[kind] = self.counts.get(kind, 0) + 1
            for suffix, queue in self.inject.items():
                if path.endswith(suffix) and queue:
                    fault = queue.pop(0)
                    break
        if fault is None:
            await self.app(scope, receive, send)
        elif fault == "lost":
            async def drop(message: dict[str, Any]) -> None:
                pass

            await self.app(scope, receive, drop)
            await send({"type": "http.response.start", "status": 502,
                        "headers": [(b"content-type", b"application/json")]})
            await send({"type": "http.response.body", "body": b'{"error": "upstream lost"}'})
        elif isinstance(fault, int) or fault == "garbage":
            status, body = (200, b"<html>not json") if fault == "garbage" else (fault, b'{"error": "injected"}')
            await send({"type": "http.response.start", "status": status,
                        "headers": [(b"content-type", b"application/json")]})
            await send({"type": "http.response.body", "body": body})
        else:
            await self._rewrite(scope, receive, send, fault)

    async def _rewrite(self, scope: Any, receive: Any, send: Any, change: Callable[[Any], Any]) -> None:
        import json

        start: dict[str, Any] = {}
        chunks: list[bytes] = []

        async def capture(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                start.update(message)
            else:
                chunks.append(message.get("body", b""))

        await self.app(scope, receive, capture)
        body = b"".join(chunks)
        if start.get("status") == 200 and body:
            body = json.dumps(change(json.loads(body))).encode()
        headers = [(k, v) for k, v in start.get("headers", []) if k.lower() != b"content-length"]
        headers.append((b"content-length", str(len(body)).encode()))
        await send({"type": "http.response.start", "status": start.get("status", 500), "headers": headers})
        await send({"type": "http.response.body", "body": body})


@dataclass
class Platform:
    url: str  # the gateway
    settings: Settings
    admin: str
    faults: Faults

    def client(self, token: str | None = None) -> httpx.Client:
        return httpx.Client(
            base_url=f"{self.url}/api/v1",
            headers={"Authorization": f"Bearer {token or self.admin}"}, timeout=30,
        )

    def registration_token(self) -> str:
        with self.client() as c:
            response = c.post("/runners/registration-token")
            response.raise_for_status()
            token: str = response.json()["token"]
            return token

    def push_repo(self, name: str, path: Path, files: dict[str, str]) -> str:
        """Create repository ``name`` with ``files`` on main; the pushed sha."""
        with self.client() as c:
            c.post("/repos", json={"name": name}).raise_for_status()
        make_repo(path, files)
        subprocess.run(
            ["git", "-C", str(path), "-c", f"http.extraHeader=Authorization: Bearer {self.admin}",
             "push", "-q", f"{self.url}/{name}.git", "main"],
            check=True, capture_output=True, env={**os.environ, **GIT_ENV},
        )
        sha = subprocess.run(
            ["git", "-C", str(path), "rev-parse", "HEAD"], check=True, capture_output=True, text=True
        ).stdout.strip()
        return sha

    def pipelines(self, repo: str) -> list[dict[str, Any]]:
        with self.client() as c:
            response = c.get("/pipelines", params={"repo": repo})
            response.raise_for_status()
            found: list[dict[str, Any]] = response.json()
            return found

    def pipeline(self, pipeline_id: int) -> dict[str, Any]:
        with self.client() as c:
            response = c.get(f"/pipelines/{pipeline_id}")
            response.raise_for_status()
            found: dict[str, Any] = response.json()
            return found

    def wait_for(self, what: str, check: Callable[[], Any], timeout: float = 60) -> Any:
        deadline = time.monotonic() + timeout
        while True:
            found = check()
            if found:
                return found
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out waiting for {what}")
            time.sleep(0.05)

    def finished_pipeline(self, repo: str, timeout: float = 90) -> dict[str, Any]:
        """The repository's first pipeline once it has completed and ci holds the whole
        log of each of its jobs (a runner may send the end of a log after completing)."""

        def done() -> dict[str, Any] | None:
            found = self.pipelines(repo)
            if found and found[-1]["status"] == "completed":
                pipeline = self.pipeline(found[-1]["id"])
                if all(job["log_complete"] for job in pipeline["jobs"]):
                    return pipeline
            return None

        result: dict[str, Any] = self.wait_for(f"a completed pipeline of {repo}", done, timeout)
        return result

    def job_log(self, job_id: int) -> str:
        with self.client() as c:
            response = c.get(f"/jobs/{job_id}/log")
            response.raise_for_status()
            return response.text


@contextmanager
def platform(data_dir: Path, **overrides: Any) -> Iterator[Platform]:
    """git, store, ci and the gateway, serving until the block ends."""
    from shipyard import ci, gateway, git, store

    socks: dict[str, socket.socket] = {}
    for name in ("git", "store", "ci", "gateway"):
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        socks[name] = sock
    urls = {name: f"http://127.0.0.1:{s.getsockname()[1]}" for name, s in socks.items()}
    with ExitStack() as stack:
        settings = stack.enter_context(service_settings(
            "sqlite", data_dir,
            git_url=urls["git"], store_url=urls["store"], ci_url=urls["ci"],
            public_url=urls["gateway"], port=int(urls["gateway"].rsplit(":", 1)[1]),
            **overrides,
        ))
        stack.enter_context(serve_on(git.create_app(settings), socks["git"]))
        stack.enter_context(serve_on(store.create_app(settings), socks["store"]))
        stack.enter_context(serve_on(ci.create_app(settings, feed_wait=2.0), socks["ci"]))
        faults = Faults(gateway.create_app(settings))
        stack.enter_context(serve_on(faults, socks["gateway"]))
        admin = TokenSigner(settings.signing_key()).issue("admin", ["admin"])
        yield Platform(urls["gateway"], settings, admin, faults)


# -- helpers of the tests ----------------------------------------------------------

_n = itertools.count(1)


def repo_with(plat: Platform, tmp_path: Path, workflow: str) -> tuple[str, str]:
    """A new repository whose one workflow runs on a label of its own; (repo, label)."""
    n = next(_n)
    label = f"t{os.getpid()}-{n}"
    name = f"r{os.getpid()}-{n}"
    text = textwrap.dedent(workflow).replace("LABEL", label)
    plat.push_repo(name, tmp_path / name, {".github/workflows/ci.yml": text, "README.md": "hi\n"})
    return name, label


def jobs_by_name(pipeline: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {j["name"]: j for j in pipeline["jobs"]}


def running_job(plat: Platform, repo: str) -> dict[str, Any]:
    def find() -> dict[str, Any] | None:
        for p in plat.pipelines(repo):
            for j in plat.pipeline(p["id"])["jobs"]:
                if j["status"] == "running":
                    return dict(j)
        return None

    found: dict[str, Any] = plat.wait_for("a running job", find, 60)
    return found


def wait_file(path: Path, timeout: float = 60) -> str:
    deadline = time.monotonic() + timeout
    while not (path.exists() and path.read_text().strip()):
        assert time.monotonic() < deadline, f"{path} never appeared"
        time.sleep(0.05)
    return path.read_text().strip()


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    with suppress(FileNotFoundError):
        if Path(f"/proc/{pid}/stat").read_text().split()[2] == "Z":
            return False
    return True
