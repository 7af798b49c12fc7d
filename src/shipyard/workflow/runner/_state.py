"""The state of one running job, shared by its steps."""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from shipyard.workflow._model import Job, Value
from shipyard.workflow._runtime import Conclusion, JobRequest, Reporter, StepHost
from shipyard.workflow.executors import JobPaths, JobSession
from shipyard.workflow.expressions import EvalContext, ExpressionError
from shipyard.workflow.runner._files import FileResults, StepFiles
from shipyard.workflow.runner._masking import Masker
from shipyard.workflow.runner._output import JobLog
from shipyard.workflow.runner._shells import ShellCommand, resolve_shell


class BuiltinAction(Protocol):
    """An action implemented by Shipyard (see ``shipyard.workflow.actions``)."""

    name: str
    inputs: Mapping[str, Any]  # name -> definition with ``required`` and ``default``

    def run(self, host: StepHost, inputs: dict[str, str]) -> None: ...


class StepFailed(Exception):
    """Ends the current step with a failure and this message."""


def located(err: ExpressionError, where: object) -> str:
    """An expression error with the place of the value it came from."""
    if where is None:
        return err.message
    return f"{where}: {err.message}"


@dataclass(slots=True)
class Frame:
    """The steps being run at one level: the job's, or one composite action's.

    ``failed`` drives ``success()``/``failure()``: for the job it is any failed step of
    the job; inside a composite action, any failed step of that action.
    """

    steps: dict[str, Any] = field(default_factory=dict)
    inputs: Mapping[str, Any] = field(default_factory=dict)
    env: dict[str, str] = field(default_factory=dict)  # env of enclosing `uses:` steps
    failed: bool = False
    depth: int = 0
    top: bool = True
    action_path: str | None = None  # as processes see it
    step_deadline: float | None = None
    first_error: str | None = None


@dataclass(slots=True)
class PostStep:
    name: str
    fn: Callable[[StepHost], None]
    state: dict[str, str]


class JobState:
    """Everything the steps of one job share while it runs."""

    def __init__(
        self,
        *,
        request: JobRequest,
        reporter: Reporter,
        session: JobSession,
        paths: JobPaths,
        masker: Masker,
        log: JobLog,
        cancel: threading.Event,
        actions: Mapping[str, BuiltinAction],
        services: Any,
        hash_files: Callable[[list[str]], str] | None,
    ) -> None:
        self.request = request
        self.job: Job = request.job
        self.key = request.key
        self.reporter = reporter
        self.session = session
        self.paths = paths
        self.masker = masker
        self.log = log
        self.cancel = cancel
        self.actions = actions
        self.services = services
        self.hash_files = hash_files
        self.translate = session.translate_path
        self.files_dir = paths.temp / "_runner_file_commands"
        self.files_view = self.translate(self.files_dir)
        self.temp_view = self.translate(paths.temp)
        self.workspace_view = self.translate(paths.workspace)
        self.files = StepFiles(self.files_dir, self.files_view, "steps")
        self.root = Frame(inputs=request.contexts.get("inputs") or {})
        self.job_env: dict[str, str] = {}
        self.path_prepend: list[str] = []
        self.defaults: dict[str, str] = {}
        self.github: dict[str, Any] = {}
        self.runner_ctx: dict[str, Any] = {}
        self.job_ctx: dict[str, Any] = {}
        self.post_steps: list[PostStep] = []
        self.summary: list[str] = []
        self.action_counts: dict[str, int] = {}
        self.job_deadline: float | None = None
        self.timeout_minutes: float | None = None
        self.timed_out = False
        self._shells: dict[str | None, ShellCommand] = {}
        c = request.contexts
        self._fixed = {
            "vars": c.get("vars") or {},
            "needs": c.get("needs") or {},
            "strategy": c.get("strategy") or {},
            "matrix": c.get("matrix") or {},
        }
        self.secrets: Mapping[str, Any] = c.get("secrets") or {}

    # -- status ----------------------------------------------------------------

    def cancelled(self) -> bool:
        return self.cancel.is_set()

    def status(self) -> Conclusion:
        if self.cancel.is_set():
            return Conclusion.CANCELLED
        if self.root.failed:
            return Conclusion.FAILURE
        return Conclusion.SUCCESS

    def status_function(self, frame: Frame) -> Callable[[str], bool]:
        cancel = self.cancel

        def status(name: str) -> bool:
            if name == "always":
                return True
            if name == "cancelled":
                return cancel.is_set()
            if name == "failure":
                return frame.failed
            return not frame.failed and not cancel.is_set()

        return status

    # -- contexts --------------------------------------------------------------

    def env_context(self, frame: Frame) -> dict[str, str]:
        if frame.env:
            return {**self.job_env, **frame.env}
        return dict(self.job_env)

    def contexts(
        self,
        frame: Frame,
        env: Mapping[str, str],
        action: str | None = None,
    ) -> dict[str, Any]:
        github = self.github
        if action is not None or frame.action_path is not None:
            github = {**github, "action": action or "", "action_path": frame.action_path or ""}
        self.job_ctx["status"] = self.status().value
        ctx = {
            "github": github,
            "env": env,
            "job": self.job_ctx,
            "runner": self.runner_ctx,
            "steps": frame.steps,
            "inputs": frame.inputs,
            **self._fixed,
        }
        if frame.top:  # composite actions do not see secrets, as on GitHub
            ctx["secrets"] = self.secrets
        return ctx

    def eval_context(
        self, frame: Frame, env: Mapping[str, str], action: str | None = None
    ) -> EvalContext:
        return EvalContext(
            self.contexts(frame, env, action),
            status=self.status_function(frame),
            hash_files=self.hash_files,
        )

    def evaluate_str(self, value: Value, ctx: EvalContext) -> str:
        try:
            return value.evaluate_str(ctx)
        except ExpressionError as err:
            raise StepFailed(located(err, value.location)) from None

    def evaluate(self, value: Value, ctx: EvalContext) -> Any:
        try:
            return value.evaluate(ctx)
        except ExpressionError as err:
            raise StepFailed(located(err, value.location)) from None

    # -- processes -------------------------------------------------------------

    def shell(self, name: str | None) -> ShellCommand:
        found = self._shells.get(name)
        if found is None:
            found = resolve_shell(name, self.session.has_command)
            self._shells[name] = found
        return found

    def process_env(
        self,
        env_ctx: Mapping[str, str],
        action: str,
        extra: Mapping[str, str] | None = None,
    ) -> dict[str, str]:
        """The environment of a step's process: image/host < env context < GitHub's variables."""
        env = dict(self.session.base_env)
        env.update(env_ctx)
        env.update(self.defaults)
        env["GITHUB_ACTION"] = action
        if extra:
            env.update(extra)
        if self.path_prepend:
            base = env.get("PATH", "")
            env["PATH"] = ":".join(self.path_prepend) + (":" + base if base else "")
        return env

    def add_path(self, directory: str) -> None:
        if directory in self.path_prepend:
            self.path_prepend.remove(directory)
        self.path_prepend.insert(0, directory)

    def apply_files(self, files: FileResults, outputs: dict[str, str]) -> None:
        """Make what a step wrote to its runner files take effect for the job."""
        outputs.update(files.outputs)
        for name, value in files.env:
            self.job_env[name] = value
        for directory in files.paths:
            self.add_path(directory)
        if files.summary.strip():
            self.summary.append(self.masker.mask(files.summary))
