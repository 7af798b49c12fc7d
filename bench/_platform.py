"""Start a real ``shipyard up`` for a benchmark, and talk to it as a user would.

Benchmarks measure the platform as users run it: every service its own process,
runners as ``shipyard runner`` processes, pushes with the real git client.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

GIT_ENV = {
    "GIT_AUTHOR_NAME": "bench", "GIT_AUTHOR_EMAIL": "bench@shipyard.local",
    "GIT_COMMITTER_NAME": "bench", "GIT_COMMITTER_EMAIL": "bench@shipyard.local",
    "GIT_TERMINAL_PROMPT": "0",
}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass
class Platform:
    url: str
    token: str
    data_dir: Path
    proc: subprocess.Popen[bytes]

    @property
    def api(self) -> httpx.Client:
        return httpx.Client(
            base_url=f"{self.url}/api/v1",
            headers={"Authorization": f"Bearer {self.token}"},
            timeout=60,
        )

    def git(self, cwd: Path, *args: str) -> str:
        env = dict(os.environ, **GIT_ENV)
        header = f"http.extraHeader=Authorization: Bearer {self.token}"
        proc = subprocess.run(
            ["git", "-c", header, *args], cwd=cwd, env=env, capture_output=True, text=True
        )
        if proc.returncode != 0:
            sys.exit(f"git {' '.join(args)} failed:\n{proc.stderr}")
        return proc.stdout

    def create_repo(self, name: str) -> str:
        with self.api as api:
            r = api.post("/repos", json={"name": name})
            r.raise_for_status()
        return f"{self.url}/{name}.git"

    def pipelines(self, repo: str) -> list[dict[str, Any]]:
        with self.api as api:
            r = api.get("/pipelines", params={"repo": repo, "limit": 500})
            r.raise_for_status()
            data = r.json()
        return data["pipelines"] if isinstance(data, dict) else data

    def wait_pipeline_done(self, repo: str, count: int, timeout: float = 600) -> list[dict[str, Any]]:
        """Wait until ``count`` pipelines of ``repo`` have completed; returns them."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            done = [p for p in self.pipelines(repo) if p["status"] == "completed"]
            if len(done) >= count:
                return done
            time.sleep(0.05)
        sys.exit(f"pipelines of {repo} did not finish within {timeout} s")

    def pids(self) -> list[int]:
        """The supervisor and every process under it."""
        out = [self.proc.pid]
        frontier = [self.proc.pid]
        while frontier:
            pid = frontier.pop()
            children = Path(f"/proc/{pid}/task/{pid}/children")
            with contextlib.suppress(OSError):
                for child in children.read_text().split():
                    out.append(int(child))
                    frontier.append(int(child))
        return out


@contextlib.contextmanager
def platform(*, runners: int, concurrency: int = 2, database_url: str = "",
             extra_env: dict[str, str] | None = None) -> Iterator[Platform]:
    """``shipyard up`` in a fresh data dir, healthy, with its runners registered."""
    data_dir = Path(tempfile.mkdtemp(prefix="shipyard-bench-"))
    port = free_port()
    shipyard = str(Path(sys.executable).parent / "shipyard")
    env = dict(os.environ, SHIPYARD_RUNNER_CONCURRENCY=str(concurrency),
               SHIPYARD_HOME=str(data_dir / "home"), **(extra_env or {}))
    if database_url:
        env["SHIPYARD_DATABASE_URL"] = database_url
        env["SHIPYARD_DATABASE_SCHEMA_PREFIX"] = f"bench{port}_"
    log = open(data_dir / "up.log", "wb")  # noqa: SIM115 - closed after the process
    proc = subprocess.Popen(
        [shipyard, "up", "--data-dir", str(data_dir), "--port", str(port),
         "--runners", str(runners)],
        stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        token = ""
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                sys.exit(f"shipyard up exited {proc.returncode}:\n{(data_dir / 'up.log').read_text()}")
            with contextlib.suppress(httpx.HTTPError, OSError):
                token_file = data_dir / "admin.token"
                if token_file.exists() and httpx.get(f"{url}/healthz", timeout=2).status_code == 200:
                    token = token_file.read_text().strip()
                    break
            time.sleep(0.1)
        if not token:
            sys.exit("shipyard up did not become healthy")
        plat = Platform(url, token, data_dir, proc)
        while time.monotonic() < deadline:  # runners registered and online
            with plat.api as api:
                r = api.get("/runners")
            body = r.json() if r.status_code == 200 else []
            found = body["runners"] if isinstance(body, dict) else body
            if len([x for x in found if x.get("status") == "online"]) >= runners:
                break
            time.sleep(0.1)
        yield plat
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        log.close()
        if database_url:
            _drop_schemas(database_url, f"bench{port}_")


def _drop_schemas(url: str, prefix: str) -> None:
    from sqlalchemy import create_engine, text

    engine = create_engine("postgresql+psycopg://" + url.split("://", 1)[1])
    with engine.begin() as conn:
        names = conn.execute(text("SELECT nspname FROM pg_namespace WHERE nspname LIKE :p"),
                             {"p": prefix + "%"}).scalars().all()
        for name in names:
            conn.execute(text(f'DROP SCHEMA "{name}" CASCADE'))
    engine.dispose()


def init_project(root: Path, workflow: str, name: str = "bench.yml") -> None:
    """A git work tree holding one workflow, committed on main."""
    wf = root / ".github" / "workflows"
    wf.mkdir(parents=True, exist_ok=True)
    (wf / name).write_text(workflow)
    env = dict(os.environ, **GIT_ENV)
    for cmd in (["git", "init", "-q", "-b", "main"], ["git", "add", "-A"],
                ["git", "commit", "-q", "-m", "bench"]):
        subprocess.run(cmd, cwd=root, check=True, env=env)


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    k = (len(ordered) - 1) * q
    lo, hi = int(k), min(int(k) + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (k - lo)
