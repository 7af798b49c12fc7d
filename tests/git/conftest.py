"""A git service served on loopback, shared by the tests of one module, and real git clients."""

from __future__ import annotations

import itertools
import os
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from shipyard.git import create_app
from shipyard.service import Settings, TokenSigner
from tests.helpers.databases import BACKENDS, service_settings
from tests.helpers.servers import serve_app

ZERO = "0" * 40
_names = itertools.count(1)


def git_client_env(home: Path) -> dict[str, str]:
    """An environment for the git client free of the machine's own configuration."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("GIT_")}
    env.update({
        "HOME": str(home),
        "GIT_CONFIG_NOSYSTEM": "1",
        "GIT_CONFIG_GLOBAL": os.devnull,
        "GIT_TERMINAL_PROMPT": "0",
        "GIT_ASKPASS": "",
        "SSH_ASKPASS": "",
        "GIT_AUTHOR_NAME": "Test Author", "GIT_AUTHOR_EMAIL": "author@example.com",
        "GIT_COMMITTER_NAME": "Test Author", "GIT_COMMITTER_EMAIL": "author@example.com",
    })
    return env


@dataclass
class Served:
    """A running git service and what the tests need to talk to it."""

    settings: Settings
    url: str
    workdir: Path
    signer: TokenSigner = field(init=False)
    admin: str = field(init=False)

    def __post_init__(self) -> None:
        self.signer = TokenSigner(self.settings.signing_key())
        self.admin = self.token("admin")
        self.env = git_client_env(self.workdir)

    def token(self, *scopes: str) -> str:
        return self.signer.issue("tester", scopes)

    def client(self, token: str | None = None) -> httpx.Client:
        headers = {"Authorization": f"Bearer {token or self.admin}"} if token != "" else {}
        return httpx.Client(base_url=self.url, headers=headers, timeout=30)

    def api(self, method: str, path: str, token: str | None = None, **kwargs: Any) -> httpx.Response:
        with self.client(token) as c:
            return c.request(method, path, **kwargs)

    def new_repo(self, prefix: str = "r") -> str:
        name = f"{prefix}{next(_names)}"
        response = self.api("POST", "/repos", json={"name": name})
        assert response.status_code == 201, response.text
        return name

    def remote(self, name: str, token: str | None = None) -> str:
        """The clone URL of ``name`` with ``token`` as the basic-auth password."""
        host = self.url.removeprefix("http://")
        return f"http://git:{token or self.admin}@{host}/{name}.git"

    def git(self, cwd: Path, *args: str, check: bool = True,
            env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run(
            ["git", *args], cwd=cwd, env={**self.env, **(env or {})},
            capture_output=True, text=True, timeout=300,
        )
        if check and proc.returncode != 0:
            raise AssertionError(f"git {' '.join(args)} failed:\n{proc.stderr}")
        return proc

    def checkout(self, name: str) -> Path:
        """A new local repository (branch main) whose origin is ``name``."""
        path = self.workdir / f"wt-{next(_names)}"
        path.mkdir()
        self.git(path, "init", "-q", "-b", "main")
        self.git(path, "remote", "add", "origin", self.remote(name))
        return path

    def commit(self, worktree: Path, files: dict[str, str | bytes], message: str = "change") -> str:
        for rel, content in files.items():
            target = worktree / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            if isinstance(content, bytes):
                target.write_bytes(content)
            else:
                target.write_text(content)
        self.git(worktree, "add", "-A")
        self.git(worktree, "commit", "-q", "-m", message)
        return self.git(worktree, "rev-parse", "HEAD").stdout.strip()

    def last_event_id(self) -> int:
        body = self.api("GET", "/events", params={"after": 0, "limit": 500}).json()
        last = body["last_id"]
        while body["events"]:
            body = self.api("GET", "/events", params={"after": last, "limit": 500}).json()
            last = body["last_id"]
        return int(last)

    def events_after(self, cursor: int, repo: str | None = None) -> list[dict[str, Any]]:
        body = self.api("GET", "/events", params={"after": cursor, "limit": 500}).json()
        return [e for e in body["events"] if repo is None or e["payload"].get("repo") == repo]

    def ref_events(self, cursor: int, repo: str) -> list[tuple[str, str, str]]:
        return [
            (e["payload"]["ref"], e["payload"]["before"], e["payload"]["after"])
            for e in self.events_after(cursor, repo) if e["kind"] == "ref.updated"
        ]


@pytest.fixture(scope="module", params=BACKENDS)
def served(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    """One git service per module and database backend."""
    yield from _serve(request.param, tmp_path_factory)


@pytest.fixture(scope="module")
def served_sqlite(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    """One git service per module on SQLite, for tests whose subject is not the database."""
    yield from _serve("sqlite", tmp_path_factory)


def _serve(backend: str, factory: pytest.TempPathFactory) -> Iterator[Served]:
    base = factory.mktemp(f"git-{backend}")
    with service_settings(backend, base / "data") as settings:
        app = create_app(settings)
        with serve_app(app) as url:
            workdir = base / "work"
            workdir.mkdir()
            yield Served(settings, url, workdir)
