"""The quickstart, end to end, as a new user does it.

``shipyard up`` (every service its own process, two local runners), ``shipyard repo
create``, ``git push`` of examples/hello with the real git client, then the pipeline
read back from the CLI and the API: a matrix, ``needs``, a job output, artifacts and a
cache that a second push restores. Once on SQLite and once on PostgreSQL.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.helpers.databases import postgres_url
from tests.supervisor._up import Up, cli, running_up

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "hello"
GIT_ENV = {
    "GIT_AUTHOR_NAME": "Ada", "GIT_AUTHOR_EMAIL": "ada@example.com",
    "GIT_COMMITTER_NAME": "Ada", "GIT_COMMITTER_EMAIL": "ada@example.com",
    "GIT_TERMINAL_PROMPT": "0", "HOME": "/nonexistent",
}

pytestmark = pytest.mark.slow


def _json(up: Up, *args: str) -> Any:
    proc = cli(up, *args, "--json")
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def _git(cwd: Path, *args: str, token: str = "") -> str:
    extra = ["-c", f"http.extraHeader=Authorization: Bearer {token}"] if token else []
    proc = subprocess.run(["git", *extra, *args], cwd=cwd, capture_output=True, text=True,
                          env=GIT_ENV, timeout=60)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.strip()


def _wait_completed(up: Up, repo: str, count: int, timeout: float = 120) -> list[dict[str, Any]]:
    deadline = time.monotonic() + timeout
    while True:
        pipelines = _json(up, "pipelines", "--repo", repo)
        done = [p for p in pipelines if p["status"] == "completed"]
        if len(done) >= count:
            return sorted(done, key=lambda p: p["id"])
        assert time.monotonic() < deadline, f"pipelines did not finish: {pipelines}"
        time.sleep(0.3)


@pytest.fixture(params=["sqlite", "postgres"])
def up(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Up]:
    env = {}
    if request.param == "postgres":
        env = {"SHIPYARD_DATABASE_URL": postgres_url(),
               "SHIPYARD_DATABASE_SCHEMA_PREFIX": f"e2e{tmp_path.name[-12:].lower().replace('-', '_')}_"}
    with running_up(tmp_path / "data", "--runners", "2", env=env) as running:
        yield running
    if request.param == "postgres":
        from tests.helpers.databases import _drop_schemas

        _drop_schemas(env["SHIPYARD_DATABASE_URL"], env["SHIPYARD_DATABASE_SCHEMA_PREFIX"])


def test_quickstart(up: Up, tmp_path: Path) -> None:
    """Push a project; its pipeline passes; logs, artifacts, caches and statuses read back."""
    created = _json(up, "repo", "create", "hello")
    assert created["clone_url"] == f"{up.url}/hello.git"

    project = tmp_path / "hello"
    shutil.copytree(EXAMPLE, project)
    _git(project, "init", "-q", "-b", "main")
    _git(project, "add", "-A")
    _git(project, "commit", "-q", "-m", "First version")
    _git(project, "push", "-q", created["clone_url"], "main", token=up.token)
    sha = _git(project, "rev-parse", "HEAD")

    (first,) = _wait_completed(up, "hello", 1)
    assert (first["conclusion"], first["sha"], first["event"]) == ("success", sha, "push")

    detail = _json(up, "pipeline", str(first["id"]))
    jobs = {j["name"]: j for j in detail["jobs"]}
    assert set(jobs) == {"test (Python 3.11)", "test (Python 3.12)", "package", "announce"}
    assert all(j["conclusion"] == "success" for j in jobs.values())
    assert jobs["package"]["outputs"] == {"version": "1.2.0"}
    assert jobs["announce"]["started_at"] >= jobs["package"]["finished_at"]  # needs held it back

    log = cli(up, "logs", str(jobs["announce"]["id"]))
    assert log.returncode == 0, log.stderr
    assert "Hello from hello 1.2.0" in log.stdout
    assert "artifacts/dist/hello-1.2.0.tar.gz" in log.stdout

    artifacts = {a["name"]: a for a in _json(up, "artifacts", str(first["id"]))}
    assert set(artifacts) == {"report-3.11", "report-3.12", "dist"}
    out = tmp_path / "downloaded"
    got = cli(up, "artifacts", str(first["id"]), "--download", "report-3.12", "-o", str(out))
    assert got.returncode == 0, got.stderr
    assert "Hello, Python 3.12!" in (out / "report-3.12.txt").read_text()

    with up.api() as api:
        status = api.get(f"/statuses/hello/{sha}").json()
        assert status["state"] == "success"
        assert [s["context"] for s in status["statuses"]] == ["CI"]
        caches = api.get("/caches", params={"repo": "hello"}).json()
        assert sorted(c["key"].split("-")[1] for c in caches) == ["py3.11", "py3.12"]
        assert api.get(f"/pipelines/{first['id']}").json()["conclusion"] == "success"

    # A second push restores the dependency cache instead of building it again.
    _git(project, "commit", "-q", "--allow-empty", "-m", "Second version")
    _git(project, "push", "-q", created["clone_url"], "main", token=up.token)
    second = _wait_completed(up, "hello", 2)[-1]
    assert second["conclusion"] == "success"
    test_job = next(j for j in _json(up, "pipeline", str(second["id"]))["jobs"]
                    if j["name"] == "test (Python 3.11)")
    text = cli(up, "logs", str(test_job["id"])).stdout
    assert "Cache restored from key: deps-py3.11-" in text
    assert "built for 3.11" in text  # the restored file is there...
    steps = {s["name"]: s["conclusion"] for s in test_job["steps"]}
    assert steps["Build dependencies (only on a cache miss)"] == "skipped"  # ...not rebuilt
