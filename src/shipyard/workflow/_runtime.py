"""Types shared by planning, the job runner, executors and actions.

The planner hands a runner one :class:`JobRequest` (a job instance with its resolved
contexts); the runner returns a :class:`JobResult` and reports progress to a
:class:`Reporter` as it goes. Built-in actions see the running step through a
:class:`StepHost`.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from shipyard.workflow._model import Job, Workflow


class Conclusion(enum.StrEnum):
    """How a step or job ended (GitHub's names; ``needs.<id>.result`` uses these)."""

    SUCCESS = "success"
    FAILURE = "failure"
    CANCELLED = "cancelled"
    SKIPPED = "skipped"


@dataclass(slots=True)
class Annotation:
    """A ``::error``/``::warning``/``::notice`` workflow command."""

    level: str  # "error" | "warning" | "notice"
    message: str
    file: str | None = None
    line: int | None = None
    col: int | None = None
    end_line: int | None = None
    end_col: int | None = None
    title: str | None = None


@dataclass(slots=True)
class StepResult:
    index: int
    id: str | None
    name: str
    outcome: Conclusion  # before continue-on-error
    conclusion: Conclusion  # after continue-on-error
    outputs: dict[str, str] = field(default_factory=dict)
    started_at: float | None = None  # time.time()
    duration: float = 0.0
    error: str | None = None  # why the step failed, when Shipyard knows (not the script's own output)


@dataclass(slots=True)
class JobResult:
    key: str  # unique within a run: job id plus matrix suffix, e.g. "test (3.11, ubuntu)"
    job_id: str
    name: str
    conclusion: Conclusion
    outputs: dict[str, str] = field(default_factory=dict)
    steps: list[StepResult] = field(default_factory=list)
    started_at: float | None = None
    duration: float = 0.0
    matrix: dict[str, Any] = field(default_factory=dict)
    error: str | None = None
    summary: str = ""  # concatenated GITHUB_STEP_SUMMARY markdown
    annotations: list[Annotation] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class CheckoutSource:
    """Where ``actions/checkout`` gets the code: a git URL or local path, at a commit."""

    url: str
    sha: str
    ref: str
    token: str | None = None


@dataclass(slots=True)
class JobRequest:
    """One job instance, ready to run: everything a runner needs and nothing else.

    ``contexts`` holds the contexts known before the job starts: ``github``, ``inputs``,
    ``vars``, ``secrets``, ``needs``, ``matrix``, ``strategy`` (and ``env`` from the
    workflow, already evaluated). The runner adds ``runner``, ``job``, ``steps`` and
    ``env`` as it goes.
    """

    workflow: Workflow
    job: Job
    key: str
    name: str
    contexts: dict[str, Any]
    source: CheckoutSource | None = None
    labels: tuple[str, ...] = ()
    continue_on_error: bool = False
    run_id: str = "1"
    run_attempt: int = 1


class Reporter(Protocol):
    """Receives progress of running jobs. Lines are already masked."""

    def job_started(self, key: str, name: str) -> None: ...

    def step_started(self, key: str, index: int, name: str) -> None: ...

    def log(self, key: str, index: int, line: str) -> None: ...

    def step_finished(self, key: str, result: StepResult) -> None: ...

    def job_finished(self, key: str, result: JobResult) -> None: ...


class BlockReporter(Reporter, Protocol):
    """A reporter that also takes many lines at once, for speed.

    ``log_block`` gets lines joined by ``"\n"`` (no trailing newline), exactly the lines
    ``log`` would have been called with one by one. A step printing hundreds of
    megabytes then costs one call per chunk instead of one per line. The runner uses it
    when the reporter has it.
    """

    def log_block(self, key: str, index: int, text: str) -> None: ...


class BytesReporter(BlockReporter, Protocol):
    """A block reporter that also takes output as the step wrote it, undecoded.

    ``log_bytes`` gets whole lines, each ending with ``b"\n"``, that needed nothing
    done to them: valid UTF-8 with no ``\r``, no workflow command and no secret. They
    are the bytes that encoding the text ``log_block`` would have been given (plus its
    newline) gives, so a reporter storing bytes stores the same either way, without
    decoding and encoding every byte. The runner uses it when the reporter has it; other
    output still comes through ``log_block``, in order with it.
    """

    def log_bytes(self, key: str, index: int, data: bytes) -> None: ...


class StepHost(Protocol):
    """What a built-in action sees of the step running it.

    Paths are on the host running the job. ``run_process`` goes through the job's
    executor (so it runs inside the sandbox or container when there is one).
    """

    workspace: Path
    temp_dir: Path
    tool_cache: Path
    env: Mapping[str, str]
    request: JobRequest
    services: Any  # the run's stores; see shipyard.workflow.actions

    def log(self, line: str) -> None: ...

    def annotate(self, annotation: Annotation) -> None: ...

    def set_output(self, name: str, value: str) -> None: ...

    def export_env(self, name: str, value: str) -> None: ...

    def add_path(self, directory: str) -> None: ...

    def add_mask(self, value: str) -> None: ...

    def add_post_step(self, name: str, fn: Callable[[StepHost], None]) -> None: ...

    def job_status(self) -> Conclusion: ...

    def run_process(
        self, argv: list[str], cwd: Path | None = None, env: Mapping[str, str] | None = None
    ) -> int: ...
