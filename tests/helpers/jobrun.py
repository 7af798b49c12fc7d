"""Running single jobs through the real JobRunner in tests, and recording what it reports."""

from __future__ import annotations

import textwrap
import threading
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any, NoReturn

import pytest

from shipyard.errors import ExecutorError
from shipyard.workflow._model import Workflow
from shipyard.workflow._parser import load_workflow
from shipyard.workflow._runtime import CheckoutSource, JobRequest, JobResult, StepResult
from shipyard.workflow.executors import Executor, LocalExecutor
from shipyard.workflow.runner import JobRunner

GITHUB = {
    "event_name": "push", "ref": "refs/heads/main", "ref_name": "main", "ref_type": "branch",
    "sha": "a" * 40, "repository": "octo/widgets", "repository_owner": "octo",
    "run_id": "77", "run_number": "5", "run_attempt": "1", "actor": "octocat",
    "workflow": "CI", "server_url": "https://shipyard.example",
    "api_url": "https://shipyard.example/api", "event": {"ref": "refs/heads/main", "n": 1},
}


class RecordingReporter:
    """Keeps every report, in order, with the time each log line arrived."""

    def __init__(self) -> None:
        self.events: list[tuple[Any, ...]] = []
        self.lines: list[tuple[int, str]] = []
        self.times: list[float] = []  # time.monotonic() when each line arrived
        self.finished_at: dict[int, float] = {}
        self._lock = threading.Lock()

    def job_started(self, key: str, name: str) -> None:
        with self._lock:
            self.events.append(("job_started", key, name))

    def step_started(self, key: str, index: int, name: str) -> None:
        with self._lock:
            self.events.append(("step_started", key, index, name))

    def log(self, key: str, index: int, line: str) -> None:
        with self._lock:
            self.lines.append((index, line))
            self.times.append(time.monotonic())

    def step_finished(self, key: str, result: StepResult) -> None:
        with self._lock:
            self.events.append(("step_finished", key, result.index, result.conclusion.value))
            self.finished_at[result.index] = time.monotonic()

    def job_finished(self, key: str, result: JobResult) -> None:
        with self._lock:
            self.events.append(("job_finished", key, result.conclusion.value))

    def step_lines(self, index: int) -> list[str]:
        return [line for i, line in self.lines if i == index]

    @property
    def text(self) -> str:
        return "\n".join(line for _, line in self.lines)


def workflow(text: str, path: str = ".github/workflows/ci.yml") -> Workflow:
    return load_workflow(path, textwrap.dedent(text))


def request(
    wf: Workflow, job: str | None = None, *, secrets: Mapping[str, str] | None = None,
    contexts: Mapping[str, Any] | None = None, source: CheckoutSource | None = None,
) -> JobRequest:
    job_id = job or next(iter(wf.jobs))
    ctx: dict[str, Any] = {
        "github": dict(GITHUB), "inputs": {}, "vars": {}, "needs": {}, "matrix": {},
        "strategy": {}, "secrets": dict(secrets or {}), "env": {},
    }
    ctx.update(contexts or {})
    return JobRequest(
        workflow=wf, job=wf.jobs[job_id], key=job_id, name=job_id, contexts=ctx, source=source,
    )


def run_job(
    text: str | Workflow, tmp_path: Path, *, job: str | None = None,
    executor: Executor | None = None, secrets: Mapping[str, str] | None = None,
    contexts: Mapping[str, Any] | None = None, cancel: threading.Event | None = None,
    actions: Mapping[str, Any] | None = None, source: CheckoutSource | None = None,
    services: Any = None,
) -> tuple[JobResult, RecordingReporter]:
    """Parse ``text`` (a workflow) and run one of its jobs for real."""
    wf = workflow(text) if isinstance(text, str) else text
    reporter = RecordingReporter()
    runner = JobRunner(
        executor or LocalExecutor(), reporter, work_root=tmp_path / "work",
        tool_cache=tmp_path / "toolcache", actions=actions, services=services,
    )
    result = runner.run(
        request(wf, job, secrets=secrets, contexts=contexts, source=source), cancel
    )
    return result, reporter


def unavailable(reason: str) -> NoReturn:
    """Fail a test whose system part is missing: scripts/test installs every one of them."""
    pytest.fail(f"missing system part (scripts/test installs it): {reason}")


def sandbox_executor(network: bool = True) -> Executor:
    from shipyard.workflow.executors._sandbox import SandboxExecutor

    try:
        return SandboxExecutor(network=network)
    except ExecutorError as err:
        unavailable(str(err))


def pid_gone(pid: int) -> bool:
    """Whether ``pid`` has ended (a zombie nobody reaped counts as ended)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read()
    except FileNotFoundError:
        return True
    return stat[stat.rfind(b")") + 2:][:1] in (b"Z", b"X")
