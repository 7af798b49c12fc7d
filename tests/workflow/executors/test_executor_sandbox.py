"""The bubblewrap sandbox: a read-only host, a private /tmp, optional network, no leftovers."""

from __future__ import annotations

import os
import socket
import threading
import time
from pathlib import Path

import pytest

from shipyard.errors import ExecutorError
from shipyard.workflow._runtime import Conclusion
from tests.helpers.jobrun import run_job, sandbox_executor

pytestmark = pytest.mark.sandbox


def _procs_with(token: str) -> list[int]:
    """Live processes whose command line holds ``token``."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            cmdline = Path(f"/proc/{entry}/cmdline").read_bytes()
            stat = Path(f"/proc/{entry}/stat").read_bytes()
        except OSError:
            continue
        if token.encode() in cmdline and stat[stat.rfind(b")") + 2:][:1] not in (b"Z", b"X"):
            found.append(int(entry))
    return found


def test_workspace_is_writable_and_the_host_is_not(tmp_path: Path) -> None:
    marker = Path("/usr/local/shipyard-sandbox-probe")
    result, rep = run_job(
        f"""
        on: push
        jobs:
          build:
            runs-on: ubuntu-latest
            steps:
              - run: |
                  echo data > built.txt && cat built.txt
                  echo x > "$RUNNER_TEMP/t" && echo temp-ok
                  echo x > "$HOME/h" && echo home-ok
                  echo x > "$RUNNER_TOOL_CACHE/c" && echo cache-ok
                  echo x > /tmp/private && echo tmp-ok
                  if touch {marker} 2>/dev/null; then echo host-written; else echo host-refused; fi
                  if touch /var/tmp/shipyard-probe 2>/dev/null; then echo var-written; else echo var-refused; fi
                  touch {tmp_path}/outside 2>/dev/null || true
        """,
        tmp_path, executor=sandbox_executor(),
    )
    assert result.conclusion is Conclusion.SUCCESS, result.steps[0].error
    assert rep.step_lines(0) == [
        "data", "temp-ok", "home-ok", "cache-ok", "tmp-ok", "host-refused", "var-refused",
    ]
    assert not marker.exists()
    assert not Path("/tmp/private").exists() or Path("/tmp/private").read_text() != "x\n"
    # Outside the job's directories even /tmp is the sandbox's own.
    assert not (tmp_path / "outside").exists()
    workspace = next((tmp_path / "work").glob("*/workspace"))
    assert (workspace / "built.txt").read_text() == "data\n"


def test_runner_files_and_outputs_work_inside(tmp_path: Path) -> None:
    result, rep = run_job(
        """
        on: push
        jobs:
          build:
            runs-on: ubuntu-latest
            steps:
              - id: a
                run: |
                  echo "v=from-sandbox" >> "$GITHUB_OUTPUT"
                  echo "E=env-from-sandbox" >> "$GITHUB_ENV"
              - run: echo "${{ steps.a.outputs.v }} $E"
        """,
        tmp_path, executor=sandbox_executor(),
    )
    assert rep.step_lines(1) == ["from-sandbox env-from-sandbox"]
    assert result.conclusion is Conclusion.SUCCESS


class _Server:
    """A TCP server on loopback that answers every connection with 'pong'."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen()
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            with conn:
                conn.sendall(b"pong\n")

    def close(self) -> None:
        self._stop.set()
        self._thread.join(2)
        self.sock.close()


@pytest.mark.parametrize(("network", "expected"), [(True, "pong"), (False, "unreachable")])
def test_network_can_be_turned_off(tmp_path: Path, network: bool, expected: str) -> None:
    server = _Server()
    try:
        _, rep = run_job(
            f"""
            on: push
            jobs:
              build:
                runs-on: ubuntu-latest
                steps:
                  - shell: bash
                    run: |
                      if exec 3<>/dev/tcp/127.0.0.1/{server.port}; then head -1 <&3; else echo unreachable; fi
            """,
            tmp_path, executor=sandbox_executor(network=network),
        )
    finally:
        server.close()
    assert rep.step_lines(0)[-1] == expected


def test_timeout_leaves_no_process_of_the_step(tmp_path: Path) -> None:
    token = "301.4159"
    started = time.monotonic()
    result, _ = run_job(
        f"""
        on: push
        jobs:
          build:
            runs-on: ubuntu-latest
            steps:
              - timeout-minutes: 0.01
                run: |
                  (setsid sleep {token} &)
                  sleep {token} &
                  sleep {token}
        """,
        tmp_path, executor=sandbox_executor(),
    )
    assert result.steps[0].error == "The step timed out after 0.01 minutes."
    assert time.monotonic() - started < 5
    deadline = time.monotonic() + 3
    while _procs_with(token) and time.monotonic() < deadline:
        time.sleep(0.05)
    # Even a process that left the step's session dies with the sandbox's PID namespace.
    assert _procs_with(token) == []


def test_missing_bwrap_is_explained() -> None:
    from shipyard.workflow.executors._sandbox import SandboxExecutor

    with pytest.raises(ExecutorError, match=r"bubblewrap \(bwrap\) is not installed: apt-get install bubblewrap"):
        SandboxExecutor(bwrap="/nonexistent/bwrap")
