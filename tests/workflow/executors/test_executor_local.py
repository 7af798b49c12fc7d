"""The local executor and choosing executors."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from shipyard.errors import ExecutorError
from shipyard.workflow._runtime import Conclusion
from shipyard.workflow.executors import JobPaths, JobSpec, LocalExecutor, Process, get_executor
from tests.helpers.jobrun import pid_gone, run_job


def _read_all(proc: Process) -> bytes:
    out = b""
    while chunk := os.read(proc.fileno(), 65536):
        out += chunk
    return out


@pytest.fixture
def paths(tmp_path: Path) -> JobPaths:
    p = JobPaths.under(tmp_path / "job", tmp_path / "tools")
    p.create()
    return p


class TestGetExecutor:
    """Picking an executor by name."""

    def test_unknown_name_lists_the_choices(self) -> None:
        with pytest.raises(ExecutorError, match=r"unknown executor 'vm' .*local, sandbox, docker"):
            get_executor("vm")

    def test_local_cannot_turn_the_network_off(self) -> None:
        with pytest.raises(ExecutorError, match="use --executor sandbox"):
            get_executor("local", network=False)

    def test_local_is_always_available(self) -> None:
        assert get_executor("local").name == "local"


class TestLocalSession:
    """Processes on the host."""

    def test_environment_is_exactly_what_is_given(self, paths: JobPaths) -> None:
        session = LocalExecutor().start_job(JobSpec(key="k", paths=paths))
        proc = session.spawn(["/usr/bin/env"], str(paths.workspace), {"ONLY": "this"})
        assert _read_all(proc) == b"ONLY=this\n"
        assert proc.wait() == 0
        proc.close()

    def test_host_environment_is_the_base(self, paths: JobPaths) -> None:
        session = LocalExecutor(env={"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8"}).start_job(
            JobSpec(key="k", paths=paths)
        )
        assert session.base_env == {"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8"}
        assert session.translate_path(paths.workspace) == str(paths.workspace)
        assert session.has_command("sh")
        assert not session.has_command("no-such-command-xyz")

    def test_kill_ends_the_whole_process_group(self, paths: JobPaths) -> None:
        session = LocalExecutor().start_job(JobSpec(key="k", paths=paths))
        proc = session.spawn(
            ["sh", "-c", "sleep 300 & echo $!; sleep 300"], str(paths.workspace), dict(os.environ)
        )
        grandchild = int(os.read(proc.fileno(), 100).decode())
        started = time.monotonic()
        proc.kill(grace=2.0)
        assert time.monotonic() - started < 1.0
        assert proc.wait() != 0
        assert pid_gone(grandchild)
        proc.close()

    def test_kill_escalates_to_sigkill_after_the_grace(self, paths: JobPaths) -> None:
        session = LocalExecutor().start_job(JobSpec(key="k", paths=paths))
        proc = session.spawn(
            ["sh", "-c", "trap '' TERM; echo ready; while :; do sleep 0.05; done"],
            str(paths.workspace), dict(os.environ),
        )
        assert os.read(proc.fileno(), 100) == b"ready\n"
        started = time.monotonic()
        proc.kill(grace=0.3)
        assert proc.wait() == -9
        assert 0.25 < time.monotonic() - started < 2
        proc.close()

    def test_missing_directory_and_command_are_reported(self, paths: JobPaths) -> None:
        session = LocalExecutor().start_job(JobSpec(key="k", paths=paths))
        with pytest.raises(ExecutorError, match="working directory '/nonexistent/dir' does not exist"):
            session.spawn(["true"], "/nonexistent/dir", {})
        with pytest.raises(ExecutorError, match="cannot run 'no-such-xyz': command not found"):
            session.spawn(["no-such-xyz"], str(paths.workspace), dict(os.environ))

    def test_wait_with_timeout_raises_while_running(self, paths: JobPaths) -> None:
        session = LocalExecutor().start_job(JobSpec(key="k", paths=paths))
        proc = session.spawn(["sleep", "5"], str(paths.workspace), dict(os.environ))
        with pytest.raises(TimeoutError):
            proc.wait(0.05)
        proc.kill()
        proc.close()


def test_container_jobs_need_the_docker_executor(tmp_path: Path) -> None:
    result, _ = run_job(
        """
        on: push
        jobs:
          build:
            runs-on: ubuntu-latest
            container: python:3.12
            steps:
              - run: "true"
        """,
        tmp_path,
    )
    assert result.conclusion is Conclusion.FAILURE
    assert result.error == (
        "job 'build' uses 'container:' or 'services:', which need the docker executor "
        "(--executor docker)"
    )
    assert result.steps == []
