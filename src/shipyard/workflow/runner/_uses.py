"""``uses:`` steps: Shipyard's built-in actions and local composite actions."""

from __future__ import annotations

import traceback
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from shipyard.errors import ShipyardError
from shipyard.workflow._model import Step
from shipyard.workflow._runtime import Annotation, Conclusion, JobRequest, StepHost, StepResult
from shipyard.workflow.expressions import EvalContext, ExpressionError, parse_template
from shipyard.workflow.runner._commands import format_annotation
from shipyard.workflow.runner._output import CommandEffects, OutputProcessor
from shipyard.workflow.runner._process import Limits, Stop, run_process
from shipyard.workflow.runner._state import BuiltinAction, Frame, JobState, PostStep, StepFailed

MAX_COMPOSITE_DEPTH = 10


class StepStopped(ShipyardError):
    """Raised into a built-in action when its step is cancelled or times out."""


def unavailable(uses: str, actions: Mapping[str, Any]) -> str:
    names = ", ".join(sorted(actions)) or "none installed"
    return (
        f"action '{uses}' is not available: Shipyard runs only its built-in actions "
        f"({names}) and local composite actions (uses: ./path)"
    )


def run_uses(
    job: JobState,
    frame: Frame,
    step: Step,
    index: int,
    action: str,
    ctx: EvalContext,
    env_ctx: dict[str, str],
    step_env: dict[str, str],
    result: StepResult,
    limits: Limits,
    minutes: float | None,
) -> None:
    assert step.uses is not None
    uses = step.uses.strip()
    where = f"{step.location}: " if step.location else ""
    inputs = {name: job.evaluate_str(value, ctx) for name, value in step.with_.items()}
    if uses.startswith("./") or uses == ".":
        from shipyard.workflow.runner._composite import run_composite

        run_composite(job, frame, step, index, uses, inputs, env_ctx, step_env, result, limits)
        return
    builtin = job.actions.get(uses.split("@", 1)[0].lower())
    if builtin is None or uses.startswith("docker://"):
        raise StepFailed(where + unavailable(uses, job.actions))
    final = _builtin_inputs(job, builtin, inputs, ctx)
    env = job.process_env(env_ctx, action)
    host = ActionHost(job, index, env, limits, step_name=result.name)
    try:
        builtin.run(host, final)
    except StepStopped:
        pass
    except ShipyardError as err:
        if host.stopped is None:
            raise StepFailed(str(err)) from None
    except Exception as err:
        for line in traceback.format_exc().rstrip().split("\n"):
            host.log(line)
        raise StepFailed(f"internal error in {builtin.name}: {type(err).__name__}: {err}") from None
    finally:
        result.outputs.update(host.outputs)
    if host.stopped is not None:
        from shipyard.workflow.runner._step import stop_result

        result.outcome, result.error = stop_result(job, host.stopped, minutes)
    elif host.effects.errors:
        result.outcome = Conclusion.FAILURE
        result.error = host.effects.errors[0]


def _builtin_inputs(
    job: JobState,
    builtin: BuiltinAction,
    given: dict[str, str],
    ctx: EvalContext,
) -> dict[str, str]:
    by_lower = {name.lower(): value for name, value in given.items()}
    declared = {name.lower() for name in builtin.inputs}
    unexpected = sorted(name for name in given if name.lower() not in declared)
    if unexpected:
        message = (
            f"Unexpected input(s) {', '.join(repr(n) for n in unexpected)}, valid inputs are "
            f"[{', '.join(repr(n) for n in builtin.inputs)}]"
        )
        job.log.annotate(Annotation(level="warning", message=message))
    final: dict[str, str] = {}
    for name, spec in builtin.inputs.items():
        value = by_lower.get(name.lower())
        if value is None:
            default = getattr(spec, "default", None)
            value = "" if default is None else str(default)
            if "${{" in value:
                try:
                    value = parse_template(value).evaluate_str(ctx)
                except ExpressionError as err:
                    raise StepFailed(
                        f"default of input '{name}' of {builtin.name}: {err.message}"
                    ) from None
        if getattr(spec, "required", False) and value == "":
            raise StepFailed(f"Input required and not supplied: {name} ({builtin.name})")
        final[name] = value
    return final


class ActionHost:
    """The :class:`~shipyard.workflow._runtime.StepHost` a built-in action runs against."""

    def __init__(
        self, job: JobState, index: int, env: dict[str, str], limits: Limits,
        *, step_name: str | None = None,
    ) -> None:
        self._job = job
        self._index = index
        self._limits = limits
        self.workspace: Path = job.paths.workspace
        self.temp_dir: Path = job.paths.temp
        self.tool_cache: Path = job.paths.tool_cache
        self._env = env
        self.env: Mapping[str, str] = env
        self.request: JobRequest = job.request
        self.services: Any = job.services
        self.outputs: dict[str, str] = {}
        self.effects = CommandEffects(outputs=self.outputs)
        self.stopped: Stop | None = None
        # GitHub names a post step after the step that registered it.
        self.step_name = step_name

    def log(self, line: str) -> None:
        self._job.log.line(self._index, line)

    def annotate(self, annotation: Annotation) -> None:
        self._job.log.annotate(annotation)
        self._job.log.line(self._index, format_annotation(annotation))

    def set_output(self, name: str, value: str) -> None:
        self.outputs[name] = value

    def export_env(self, name: str, value: str) -> None:
        if value.startswith("/"):
            value = self._job.translate(value)  # a host path of the job, as steps see it
        self._job.job_env[name] = value
        self._env[name] = value

    def add_path(self, directory: str) -> None:
        directory = self._job.translate(directory)
        self._job.add_path(directory)
        base = self._env.get("PATH", "")
        self._env["PATH"] = directory + (":" + base if base else "")

    def add_mask(self, value: str) -> None:
        self._job.masker.add(value)

    def add_post_step(self, name: str, fn: Callable[[StepHost], None]) -> None:
        title = f"Post {self.step_name}" if self.step_name else name
        self._job.post_steps.append(PostStep(title, fn, self.effects.state))

    def job_status(self) -> Conclusion:
        return self._job.status()

    def run_process(
        self, argv: list[str], cwd: Path | None = None, env: Mapping[str, str] | None = None
    ) -> int:
        """Run a process through the job's executor; its output goes to this step's log.

        Host paths of the job (workspace, temp, tool cache) in ``argv``, ``cwd`` and
        ``env`` are translated to the paths the process sees.
        """
        if self.stopped is not None:
            raise StepStopped("the step was stopped")
        job = self._job
        t = job.translate
        merged = dict(self.env)
        if env:
            merged.update(env)
        proc_env = {k: t(v) if v.startswith("/") else v for k, v in merged.items()}
        output = OutputProcessor(job.log, self._index, self.effects)
        outcome = run_process(
            job.session,
            [t(a) if a.startswith("/") else a for a in argv],
            t(cwd if cwd is not None else self.workspace),
            proc_env,
            output,
            self._limits,
        )
        if outcome.stopped is not None:
            self.stopped = outcome.stopped
            raise StepStopped("the step was stopped")
        return outcome.exit_code
