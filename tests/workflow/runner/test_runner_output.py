"""Step output reaches the reporter live, whole, and fast."""

from __future__ import annotations

import hashlib
import subprocess
import threading
import time
from pathlib import Path

from shipyard.workflow._runtime import Conclusion, JobResult, StepResult
from shipyard.workflow.executors import LocalExecutor
from shipyard.workflow.runner import JobRunner
from tests.helpers.jobrun import RecordingReporter, request, run_job, workflow


class HashingReporter:
    """Hashes log lines instead of keeping them, so big outputs cost little memory."""

    def __init__(self) -> None:
        self.digest = hashlib.sha256()
        self.count = 0
        self._lock = threading.Lock()

    def job_started(self, key: str, name: str) -> None: ...
    def step_started(self, key: str, index: int, name: str) -> None: ...
    def step_finished(self, key: str, result: StepResult) -> None: ...
    def job_finished(self, key: str, result: JobResult) -> None: ...

    def log(self, key: str, index: int, line: str) -> None:
        self.count += 1
        self.digest.update(line.encode())
        self.digest.update(b"\n")


def test_fifty_megabytes_stream_fast_and_unchanged(tmp_path: Path) -> None:
    script = (
        "i=0; while [ $i -lt 500 ]; do head -c 100000 /dev/urandom | base64 -w 99; "
        "i=$((i+1)); done"
    )
    text = f"""
        on: push
        jobs:
          build:
            runs-on: ubuntu-latest
            steps:
              - run: "{script} > $RUNNER_TEMP/expected; cat $RUNNER_TEMP/expected"
              - run: cat $RUNNER_TEMP/expected
        """
    wf = workflow(text)
    reporter = HashingReporter()
    runner = JobRunner(LocalExecutor(), reporter, work_root=tmp_path / "work")
    result = runner.run(request(wf, secrets={"S1": "zzzz-not-there", "S2": "QQQQ==qq"}))
    assert result.conclusion is Conclusion.SUCCESS
    expected_file = next((tmp_path / "work").glob("*/temp/expected"))
    data = expected_file.read_bytes()
    assert len(data) > 50_000_000
    expected = hashlib.sha256()
    for line in data.decode().split("\n")[:-1]:
        expected.update(line.encode() + b"\n")
    # Both steps reported every line unchanged.
    assert reporter.count == 2 * data.count(b"\n")
    doubled = hashlib.sha256()
    lines = data.decode().split("\n")[:-1]
    for line in lines + lines:
        doubled.update(line.encode() + b"\n")
    assert reporter.digest.hexdigest() == doubled.hexdigest()
    # The second step only reads the file: its cost is the runner's own.
    bare_started = time.monotonic()
    subprocess.run(["cat", str(expected_file)], stdout=subprocess.DEVNULL, check=True)
    bare = time.monotonic() - bare_started
    assert result.steps[1].duration < bare + 2.5, (result.steps[1].duration, bare)


def test_lines_are_reported_while_the_step_runs(tmp_path: Path) -> None:
    result, rep = run_job(
        """
        on: push
        jobs:
          build:
            runs-on: ubuntu-latest
            steps:
              - run: echo early; sleep 1; echo late
        """,
        tmp_path,
    )
    assert rep.step_lines(0) == ["early", "late"]
    assert rep.finished_at[0] - rep.times[0] > 0.8
    assert result.conclusion is Conclusion.SUCCESS


def test_last_line_without_newline_and_invalid_utf8(tmp_path: Path) -> None:
    _, rep = run_job(
        r"""
        on: push
        jobs:
          build:
            runs-on: ubuntu-latest
            steps:
              - run: printf 'caf\xc3\xa9 \xff\r\nno newline'
        """,
        tmp_path,
    )
    assert rep.step_lines(0) == ["café \ufffd", "no newline"]


def test_a_line_split_across_reads_is_one_line(tmp_path: Path) -> None:
    _, rep = run_job(
        """
        on: push
        jobs:
          build:
            runs-on: ubuntu-latest
            steps:
              - run: printf 'first half '; sleep 0.3; printf 'second half %s\\n' "${{ secrets.K }}"
        """,
        tmp_path, secrets={"K": "half"},
    )
    assert rep.step_lines(0) == ["first *** second *** ***"]


def test_very_long_lines_are_cut_not_held(tmp_path: Path) -> None:
    _, rep = run_job(
        """
        on: push
        jobs:
          build:
            runs-on: ubuntu-latest
            steps:
              - run: head -c 3000000 /dev/zero | tr '\\0' 'x'; echo; echo end
        """,
        tmp_path,
    )
    lines = rep.step_lines(0)
    assert "".join(lines[:-1]) == "x" * 3_000_000
    assert lines[-1] == "end"
    assert all(len(line) <= 2 * 1024 * 1024 for line in lines)


class _BlockReporter(RecordingReporter):
    """Takes lines in blocks, as the platform's runner agent does."""

    def __init__(self) -> None:
        super().__init__()
        self.blocks: list[str] = []

    def log_block(self, key: str, index: int, text: str) -> None:
        self.blocks.append(text)
        for line in text.split("\n"):
            self.log(key, index, line)


class TestBlockReporter:
    """A reporter with ``log_block`` gets whole chunks, and exactly the same lines."""

    def test_same_lines_fewer_calls(self, tmp_path: Path) -> None:
        text = """
on: push
jobs:
  j:
    runs-on: ubuntu-latest
    steps:
      - run: seq 1 20000
      - run: |
          echo "::add-mask::secret-value"
          echo "the secret-value is hidden"
"""
        wf = workflow(text)
        block_reporter = _BlockReporter()
        runner = JobRunner(LocalExecutor(), block_reporter, work_root=tmp_path / "w1",
                           tool_cache=tmp_path / "tc")
        result = runner.run(request(wf), None)
        _, plain = run_job(text, tmp_path / "plain")
        assert result.conclusion == "success"
        assert block_reporter.step_lines(0) == plain.step_lines(0)
        assert block_reporter.step_lines(1) == plain.step_lines(1)
        assert "the *** is hidden" in block_reporter.step_lines(1)
        assert len(block_reporter.blocks) < 100  # 20,000 lines came in a few blocks
