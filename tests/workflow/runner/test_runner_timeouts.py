"""Step and job timeouts and cancellation end whole process trees, promptly."""

from __future__ import annotations

import os
import signal
import threading
import time
from pathlib import Path

from shipyard.workflow._runtime import Conclusion
from tests.helpers.jobrun import pid_gone, run_job


def _wait_gone(pid: int, limit: float = 3.0) -> bool:
    end = time.monotonic() + limit
    while time.monotonic() < end:
        if pid_gone(pid):
            return True
        time.sleep(0.02)
    return pid_gone(pid)


class TestStepTimeout:
    """timeout-minutes of a step."""

    def test_timeout_kills_the_step_and_its_grandchildren(self, tmp_path: Path) -> None:
        pid_file = tmp_path / "grandchild.pid"
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
                      bash -c 'sleep 300 & echo $! > {pid_file}; wait'
                  - run: echo next
                  - if: always()
                    run: echo cleanup
            """,
            tmp_path,
        )
        elapsed = time.monotonic() - started
        step = result.steps[0]
        assert step.conclusion is Conclusion.FAILURE
        assert step.error == "The step timed out after 0.01 minutes."
        assert elapsed < 5
        assert _wait_gone(int(pid_file.read_text()))
        assert [s.conclusion for s in result.steps[1:]] == [Conclusion.SKIPPED, Conclusion.SUCCESS]
        assert result.conclusion is Conclusion.FAILURE

    def test_timeout_from_an_expression(self, tmp_path: Path) -> None:
        result, _ = run_job(
            """
            on: push
            jobs:
              build:
                runs-on: ubuntu-latest
                steps:
                  - timeout-minutes: ${{ fromJSON('0.005') }}
                    run: sleep 30
            """,
            tmp_path,
        )
        assert result.steps[0].error == "The step timed out after 0.005 minutes."

    def test_timeout_applies_after_the_step_closed_its_output(self, tmp_path: Path) -> None:
        started = time.monotonic()
        result, _ = run_job(
            """
            on: push
            jobs:
              build:
                runs-on: ubuntu-latest
                steps:
                  - timeout-minutes: 0.01
                    run: exec >/dev/null 2>&1; sleep 300
            """,
            tmp_path,
        )
        assert result.steps[0].conclusion is Conclusion.FAILURE
        assert time.monotonic() - started < 5

    def test_background_process_holding_output_does_not_hold_the_step(self, tmp_path: Path) -> None:
        pid_file = tmp_path / "bg.pid"
        started = time.monotonic()
        result, rep = run_job(
            f"""
            on: push
            jobs:
              build:
                runs-on: ubuntu-latest
                steps:
                  - run: |
                      sleep 30 &
                      echo $! > {pid_file}
                      echo started
                  - run: echo second
            """,
            tmp_path,
        )
        assert result.conclusion is Conclusion.SUCCESS
        assert rep.text == "started\nsecond"
        assert time.monotonic() - started < 5
        # As on a self-hosted runner, the background process outlives its step.
        pid = int(pid_file.read_text())
        assert not pid_gone(pid)
        os.kill(pid, signal.SIGKILL)


class TestJobTimeout:
    """timeout-minutes of a job."""

    def test_job_timeout_stops_the_running_step_and_skips_the_rest(self, tmp_path: Path) -> None:
        started = time.monotonic()
        result, _ = run_job(
            """
            on: push
            jobs:
              build:
                runs-on: ubuntu-latest
                timeout-minutes: 0.01
                steps:
                  - run: sleep 300
                  - if: always()
                    run: echo after
            """,
            tmp_path,
        )
        assert time.monotonic() - started < 5
        assert result.conclusion is Conclusion.FAILURE
        assert result.error == "The job exceeded its timeout of 0.01 minutes."
        assert result.steps[0].conclusion is Conclusion.FAILURE
        assert result.steps[1].conclusion is Conclusion.SKIPPED


class TestCancellation:
    """The cancel event."""

    def test_cancel_kills_the_running_step_within_a_second(self, tmp_path: Path) -> None:
        pid_file = tmp_path / "child.pid"
        cancel = threading.Event()
        timer = threading.Timer(0.5, cancel.set)
        timer.start()
        started = time.monotonic()
        try:
            result, rep = run_job(
                f"""
                on: push
                jobs:
                  build:
                    runs-on: ubuntu-latest
                    steps:
                      - run: |
                          sleep 300 &
                          echo $! > {pid_file}
                          wait
                      - run: echo skipped
                      - if: cancelled()
                        run: echo "on cancel ${{{{ job.status }}}}"
                      - if: always()
                        run: sleep 0.3; echo always-ran
                """,
                tmp_path, cancel=cancel,
            )
        finally:
            timer.cancel()
        assert time.monotonic() - started < 3
        assert [s.conclusion for s in result.steps] == [
            Conclusion.CANCELLED, Conclusion.SKIPPED, Conclusion.SUCCESS, Conclusion.SUCCESS,
        ]
        assert rep.text == "on cancel cancelled\nalways-ran"
        assert result.conclusion is Conclusion.CANCELLED
        assert _wait_gone(int(pid_file.read_text()))

    def test_job_cancelled_before_start_runs_only_always_steps(self, tmp_path: Path) -> None:
        cancel = threading.Event()
        cancel.set()
        result, rep = run_job(
            """
            on: push
            jobs:
              build:
                runs-on: ubuntu-latest
                steps:
                  - run: echo no
                  - if: always()
                    run: echo yes
            """,
            tmp_path, cancel=cancel,
        )
        assert rep.text == "yes"
        assert result.conclusion is Conclusion.CANCELLED
