"""``runner_command``: the agent as a foreground process, stopped by signals."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO

import pytest

from tests.runner.stack import Platform, platform, repo_with, wait_file

# The CLI engineer registers the command on shipyard's app; here it gets an app of its own.
_MAIN = (
    "import typer; from shipyard.runner import runner_command; "
    "app = typer.Typer(add_completion=False); app.command()(runner_command); app()"
)


@pytest.fixture(scope="module")
def plat(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Platform]:
    with platform(tmp_path_factory.mktemp("platform"), heartbeat_timeout=4.0) as p:
        yield p


class Output:
    """A process's stdout and stderr lines, read as they come."""

    def __init__(self, proc: subprocess.Popen[str]) -> None:
        self.lines: list[str] = []
        self.errors: list[str] = []
        assert proc.stdout is not None and proc.stderr is not None
        self._threads = [
            threading.Thread(target=self._read, args=(proc.stdout, self.lines), daemon=True),
            threading.Thread(target=self._read, args=(proc.stderr, self.errors), daemon=True),
        ]
        for thread in self._threads:
            thread.start()

    def _read(self, stream: IO[str], into: list[str]) -> None:
        for line in stream:
            into.append(line.rstrip("\n"))

    def join(self) -> None:
        for thread in self._threads:
            thread.join(10)

    def wait_for(self, text: str, timeout: float = 60) -> str:
        deadline = time.monotonic() + timeout
        while True:
            for line in self.lines:
                if text in line:
                    return line
            assert time.monotonic() < deadline, f"no line with {text!r} in {self.lines}"
            time.sleep(0.05)


@contextmanager
def start(args: list[str], env: dict[str, str], cwd: Path) -> Iterator[tuple[subprocess.Popen[str], Output]]:
    """``runner_command`` in a process of its own; killed at the end if still running."""
    with subprocess.Popen(
        [sys.executable, "-c", _MAIN, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True, env={**os.environ, "COLUMNS": "200", **env}, cwd=cwd,
    ) as proc:
        out = Output(proc)
        try:
            yield proc, out
        finally:
            proc.kill()
            proc.wait()
            out.join()


def test_sigterm_drains_the_running_job_and_exits_0(plat: Platform, tmp_path: Path) -> None:
    flag = tmp_path / "started"
    repo, label = repo_with(plat, tmp_path, f"""
        on: push
        jobs:
          work:
            runs-on: [self-hosted, LABEL]
            steps:
              - run: echo go > {flag}; sleep 1
    """)
    with start(
        ["--labels", "self-hosted", "--labels", f"linux,{label}", "--name", f"cli-{label}",
         "--work-dir", str(tmp_path / "w")],
        {"SHIPYARD_SERVER": plat.url, "SHIPYARD_RUNNER_TOKEN": plat.registration_token()},
        tmp_path,
    ) as (proc, out):
        registered = out.wait_for("connected to")
        assert f"cli-{label}" in registered and "1 slot," in registered
        assert f"labels self-hosted, linux, {label}" in registered
        wait_file(flag)
        out.wait_for("▶ job")
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0
    finished = out.wait_for("✓ job")
    assert "work" in finished and "success" in finished
    assert out.lines[-1] == "Runner stopped after 1 job"
    assert plat.finished_pipeline(repo, timeout=10)["conclusion"] == "success"


def test_the_first_signal_stops_an_idle_runner_at_once(plat: Platform, tmp_path: Path) -> None:
    """The runner drains: ci ends its long-polling claim, so it need not wait 30 s."""
    with start(
        ["--server", plat.url, "--token", plat.registration_token(), "--labels", "nothing-here",
         "--work-dir", str(tmp_path / "w")], {}, tmp_path,
    ) as (proc, out):
        out.wait_for("connected to")
        time.sleep(0.3)
        started = time.monotonic()
        proc.send_signal(signal.SIGINT)
        assert proc.wait(10) == 0
        assert time.monotonic() - started < 3
    assert any(line.startswith("stopping") for line in out.errors), out.errors
    assert out.lines[-1] == "Runner stopped after 0 jobs"


def test_a_refused_token_exits_1_with_the_server_s_message(plat: Platform, tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-c", _MAIN, "--server", plat.url, "--token", "sy_forged.token",
         "--work-dir", str(tmp_path)],
        capture_output=True, text=True, timeout=60,
    )
    assert proc.returncode == 1
    assert "error:" in proc.stderr and "token" in proc.stderr


def test_no_token_is_a_usage_error(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "SHIPYARD_RUNNER_TOKEN"}
    proc = subprocess.run(
        [sys.executable, "-c", _MAIN, "--work-dir", str(tmp_path)],
        capture_output=True, text=True, timeout=60, env=env,
    )
    assert proc.returncode == 2
    assert "a token is needed" in proc.stderr


def test_the_runner_has_huge_pages_and_its_steps_the_user_s_environment(
    plat: Platform, tmp_path: Path
) -> None:
    """The runner starts itself again with glibc's huge-page tunables; a job's steps see
    GLIBC_TUNABLES as the user set it, nothing of the runner's."""
    dump = tmp_path / "env"
    repo, label = repo_with(plat, tmp_path, f"""
        on: push
        jobs:
          work:
            runs-on: [self-hosted, LABEL]
            steps:
              - run: env > {dump}.tmp && mv {dump}.tmp {dump}
    """)
    mine = "glibc.malloc.tcache_count=0"
    with start(
        ["--labels", f"self-hosted,{label}", "--work-dir", str(tmp_path / "w")],
        {"SHIPYARD_SERVER": plat.url, "SHIPYARD_RUNNER_TOKEN": plat.registration_token(),
         "GLIBC_TUNABLES": mine},
        tmp_path,
    ) as (proc, out):
        out.wait_for("connected to")
        # The same process (exec keeps the pid), started again with the tunables.
        assert b"glibc.malloc.hugetlb=1" in _tunables_of(proc.pid)
        seen = dict(line.split("=", 1) for line in wait_file(dump).splitlines() if "=" in line)
        assert plat.finished_pipeline(repo, timeout=30)["conclusion"] == "success"
    assert seen["GLIBC_TUNABLES"] == mine
    assert "SHIPYARD_GLIBC_TUNABLES_WAS" not in seen and "SHIPYARD_RUNNER_TOKEN" not in seen


def _tunables_of(pid: int) -> bytes:
    """GLIBC_TUNABLES as a process started with it (glibc rewrites it in place: only the
    first of several tunables is left to see)."""
    for entry in Path(f"/proc/{pid}/environ").read_bytes().split(b"\0"):
        if entry.startswith(b"GLIBC_TUNABLES="):
            return entry
    return b""
