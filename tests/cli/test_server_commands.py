"""The CLI's server commands against a real `shipyard up` with a runner."""

from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.helpers.gitrepo import GIT_ENV, make_repo
from tests.supervisor._up import SHIPYARD, Up, cli, running_up

WORKFLOW = """\
name: ci
on:
  push:
  workflow_dispatch:
    inputs:
      who:
        default: world
      nap:
        default: "0"
jobs:
  build:
    runs-on: ubuntu-latest
    steps:
      - run: echo "hello ${{ inputs.who || 'push' }}"; mkdir out; echo data > out/a.txt
      - uses: actions/upload-artifact@v4
        with:
          name: out-${{ github.run_attempt }}
          path: out/
  test:
    needs: build
    runs-on: ubuntu-latest
    steps:
      - run: echo testing; sleep ${{ inputs.nap || 0 }}; echo done-testing
"""


@pytest.fixture(scope="module")
def up(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Up]:
    root = tmp_path_factory.mktemp("cli")
    # Stopped in a hurry: a graceful stop is the supervisor tests' subject, not this module's.
    with running_up(root / "data", "--runners", "1", hurry=True) as running:
        yield running


def ok(up: Up, *args: str, timeout: float = 60) -> str:
    proc = cli(up, *args, timeout=timeout)
    assert proc.returncode == 0, f"shipyard {' '.join(args)}:\n{proc.stdout}\n{proc.stderr}"
    return proc.stdout


def as_json(up: Up, *args: str) -> Any:
    return json.loads(ok(up, *args, "--json"))


def wait_pipeline(up: Up, pipeline_id: int, *, status: str = "completed", job: str | None = None,
                  timeout: float = 90) -> dict[str, Any]:
    """Poll until the pipeline (or one of its jobs) reaches ``status``."""
    deadline = time.monotonic() + timeout
    while True:
        with up.api() as api:  # polled over HTTP: a CLI process per poll would be slow
            p = api.get(f"/pipelines/{pipeline_id}").json()
        subject = p if job is None else next((j for j in p["jobs"] if j["key"] == job), {})
        if subject.get("status") == status:
            return p
        if time.monotonic() > deadline:
            raise AssertionError(f"pipeline {pipeline_id} did not reach {status}: {p}")
        time.sleep(0.2)


@pytest.fixture(scope="module")
def pushed(up: Up, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """Repository `demo` with the workflow pushed, its push pipeline completed."""
    ok(up, "repo", "create", "demo", "--description", "the demo")
    work = make_repo(tmp_path_factory.mktemp("work") / "demo", {".github/workflows/ci.yml": WORKFLOW})
    subprocess.run(
        ["git", "-c", f"http.extraHeader=Authorization: Bearer {up.token}", "push", "-q",
         f"{up.url}/demo.git", "main"],
        cwd=work, check=True, capture_output=True, env={**os.environ, **GIT_ENV},
    )
    deadline = time.monotonic() + 60
    while True:
        with up.api() as api:
            found = api.get("/pipelines", params={"repo": "demo"}).json()
        if found:
            break
        assert time.monotonic() < deadline, "the push made no pipeline"
        time.sleep(0.2)
    return wait_pipeline(up, found[0]["id"])


class TestLogin:
    """`shipyard login` checks the token and keeps server and token for later commands."""

    def test_login_writes_a_private_config_used_afterwards(self, up: Up, tmp_path: Path):
        env = {**up.env(), "SHIPYARD_HOME": str(tmp_path)}
        proc = subprocess.run([*SHIPYARD, "login", "--server", up.url, "--token", up.token],
                              capture_output=True, text=True, env=env, timeout=60)
        assert proc.returncode == 0, proc.stderr
        assert f"Logged in to {up.url} as admin" in proc.stdout
        config = tmp_path / "config.toml"
        assert stat.S_IMODE(config.stat().st_mode) == 0o600
        listed = subprocess.run([*SHIPYARD, "repo", "list", "--json"], capture_output=True,
                                text=True, env=env, timeout=60)
        assert listed.returncode == 0, listed.stderr

    def test_login_with_a_bad_token_fails_and_writes_nothing(self, up: Up, tmp_path: Path):
        env = {**up.env(), "SHIPYARD_HOME": str(tmp_path)}
        proc = subprocess.run([*SHIPYARD, "login", "--server", up.url, "--token", "sy_x.y"],
                              capture_output=True, text=True, env=env, timeout=60)
        assert proc.returncode == 1
        assert "error: invalid token signature" in proc.stderr
        assert "Traceback" not in proc.stderr
        assert not (tmp_path / "config.toml").exists()

    def test_unreachable_server_is_named_and_up_suggested(self, up: Up, tmp_path: Path):
        from tests.helpers.servers import free_port

        url = f"http://127.0.0.1:{free_port()}"
        env = {**up.env(), "SHIPYARD_HOME": str(tmp_path)}
        proc = subprocess.run([*SHIPYARD, "repo", "list", "--server", url], capture_output=True,
                              text=True, env=env, timeout=60)
        assert proc.returncode == 1
        assert f"not reachable at {url}" in proc.stderr
        assert "shipyard up" in proc.stderr
        assert "Traceback" not in proc.stderr

    def test_flags_beat_environment_which_beats_the_file(self, up: Up, tmp_path: Path):
        (tmp_path / "config.toml").write_text(f'server = "{up.url}"\ntoken = "sy_file.bad"\n')
        base = {**up.env(), "SHIPYARD_HOME": str(tmp_path)}

        def whoami(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
            return subprocess.run([*SHIPYARD, "runners", "--json", *args], capture_output=True,
                                  text=True, env={**base, **env}, timeout=60)

        assert whoami().returncode == 1  # the file's token is bad
        assert whoami(SHIPYARD_TOKEN=up.token).returncode == 0  # the environment wins
        bad_flag = whoami("--token", "sy_flag.bad", SHIPYARD_TOKEN=up.token)
        assert bad_flag.returncode == 1  # the flag wins over both
        assert "shipyard login" in bad_flag.stderr


class TestRepos:
    """`shipyard repo create/list/show/delete`."""

    def test_create_list_show_delete(self, up: Up):
        created = as_json(up, "repo", "create", "team/tools", "-d", "tooling")
        assert created["name"] == "team/tools"
        assert created["clone_url"] == f"{up.url}/team/tools.git"
        assert "team/tools" in [r["name"] for r in as_json(up, "repo", "list")]
        assert "team/tools" in ok(up, "repo", "list")
        shown = ok(up, "repo", "show", "team/tools")
        assert "tooling" in shown and "nothing pushed yet" in shown
        refused = cli(up, "repo", "delete", "team/tools")
        assert refused.returncode == 1 and "--yes" in refused.stderr
        assert "Deleted team/tools" in ok(up, "repo", "delete", "team/tools", "--yes")
        gone = cli(up, "repo", "show", "team/tools")
        assert gone.returncode == 1
        assert gone.stderr.startswith("error: ") and "team/tools" in gone.stderr

    def test_creating_an_existing_repo_is_an_error_message(self, up: Up, pushed: dict[str, Any]):
        again = cli(up, "repo", "create", "demo")
        assert again.returncode == 1
        assert "exists" in again.stderr and "Traceback" not in again.stderr

    def test_show_lists_refs_after_a_push(self, up: Up, pushed: dict[str, Any]):
        shown = as_json(up, "repo", "show", "demo")
        assert shown["refs"]["refs/heads/main"] == pushed["sha"]
        assert "refs/heads/main" in ok(up, "repo", "show", "demo")


class TestPipelines:
    """Pipelines, their jobs, logs and artifacts, seen and driven from the CLI."""

    def test_push_pipeline_is_listed_and_shown(self, up: Up, pushed: dict[str, Any]):
        assert pushed["conclusion"] == "success", pushed
        listed = ok(up, "pipelines", "--repo", "demo")
        assert "demo" in listed and "success" in listed
        shown = ok(up, "pipeline", str(pushed["id"]))
        assert "stages ✓ build → ✓ test" in shown
        assert "Run actions/upload-artifact@v4" in shown
        assert as_json(up, "pipelines", "--status", "success", "--limit", "1")[0]["status"] == "completed"

    def test_logs_print_the_job_output(self, up: Up, pushed: dict[str, Any]):
        build = next(j for j in pushed["jobs"] if j["key"] == "build")
        assert "hello push" in ok(up, "logs", str(build["id"]))
        assert "hello push" in as_json(up, "logs", str(build["id"]))["log"]

    def test_artifacts_are_listed_and_downloaded(self, up: Up, pushed: dict[str, Any], tmp_path: Path):
        listed = as_json(up, "artifacts", str(pushed["id"]))
        assert [a["name"] for a in listed] == ["out-1"]
        assert "out-1" in ok(up, "artifacts", str(pushed["id"]))
        out = ok(up, "artifacts", str(pushed["id"]), "--download", "out-1", "-o", str(tmp_path / "dl"))
        assert "Downloaded out-1" in out
        assert (tmp_path / "dl" / "a.txt").read_text() == "data\n"
        missing = cli(up, "artifacts", str(pushed["id"]), "--download", "nope", "-o", str(tmp_path))
        assert missing.returncode == 1 and "nope" in missing.stderr

    def test_dispatch_with_inputs_and_follow_the_log(self, up: Up, pushed: dict[str, Any]):
        created = as_json(up, "dispatch", "demo", "ci.yml", "--ref", "main", "--input", "who=bob",
                          "--input", "nap=2")
        assert created["event"] == "workflow_dispatch"
        p = wait_pipeline(up, created["id"], status="running", job="test")
        test_job = next(j for j in p["jobs"] if j["key"] == "test")
        followed = ok(up, "logs", str(test_job["id"]), "-f")  # returns when the job ends
        assert "testing" in followed and "done-testing" in followed
        done = wait_pipeline(up, created["id"])
        build = next(j for j in done["jobs"] if j["key"] == "build")
        assert "hello bob" in ok(up, "logs", str(build["id"]))

    def test_cancel_a_running_pipeline(self, up: Up, pushed: dict[str, Any]):
        created = as_json(up, "dispatch", "demo", "ci.yml", "--input", "nap=60")
        wait_pipeline(up, created["id"], status="running", job="test")
        assert f"Cancelling pipeline {created['id']}" in ok(up, "cancel", str(created["id"]))
        done = wait_pipeline(up, created["id"], timeout=60)
        assert done["conclusion"] == "cancelled"
        again = cli(up, "cancel", str(created["id"]))
        assert again.returncode == 1 and again.stderr.startswith("error: ")

    def test_rerun_makes_a_new_attempt(self, up: Up, pushed: dict[str, Any]):
        out = ok(up, "rerun", str(pushed["id"]), "--all")
        assert f"Pipeline {pushed['id']} attempt 2" in out
        done = wait_pipeline(up, pushed["id"])
        assert done["attempt"] == 2 and done["conclusion"] == "success", done

    def test_rerun_and_cancel_need_exactly_one_target(self, up: Up):
        for command in ("rerun", "cancel"):
            proc = cli(up, command)
            assert proc.returncode == 1 and "name a pipeline" in proc.stderr

    def test_unknown_pipeline_is_a_message(self, up: Up):
        proc = cli(up, "pipeline", "99999")
        assert proc.returncode == 1
        assert proc.stderr.startswith("error: ") and "Traceback" not in proc.stderr

    def test_watch_shows_new_pipelines_until_ctrl_c(self, up: Up, pushed: dict[str, Any]):
        watch = subprocess.Popen([*SHIPYARD, "pipelines", "--watch", "--repo", "demo"],
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=up.env())
        try:
            time.sleep(3)
            created = as_json(up, "dispatch", "demo", "ci.yml", "--input", "who=watcher")
            wait_pipeline(up, created["id"])
            time.sleep(1.5)
        finally:
            watch.send_signal(signal.SIGINT)
            out, err = watch.communicate(timeout=30)
        assert watch.returncode == 130, err
        first_column = [line.split()[0] for line in out.splitlines() if line.strip()]
        assert str(created["id"]) in first_column, out

    def test_runners_lists_the_local_runner(self, up: Up):
        found = as_json(up, "runners")
        assert [r["status"] for r in found] == ["online"]
        assert "online" in ok(up, "runners")
