"""Running one step: its condition, its expressions, and a ``run:`` script."""

from __future__ import annotations

import os
import time

from shipyard.errors import ShipyardError
from shipyard.workflow._model import Step, Value
from shipyard.workflow._runtime import Conclusion, StepResult
from shipyard.workflow.expressions import EvalContext, ExpressionError, is_truthy, to_string
from shipyard.workflow.runner._env import action_name
from shipyard.workflow.runner._output import CommandEffects, OutputProcessor
from shipyard.workflow.runner._process import Limits, Stop, run_process
from shipyard.workflow.runner._state import Frame, JobState, StepFailed, located


def _minutes(value: float) -> str:
    return f"{value:g} minute" + ("" if value == 1 else "s")


def stop_result(job: JobState, stopped: Stop, step_timeout: float | None) -> tuple[Conclusion, str]:
    """The outcome and message of a step the runner had to stop."""
    if stopped is Stop.CANCELLED:
        return Conclusion.CANCELLED, "The operation was canceled."
    if stopped is Stop.STEP_TIMEOUT:
        return Conclusion.FAILURE, f"The step timed out after {_minutes(step_timeout or 0)}."
    job.timed_out = True
    return (
        Conclusion.FAILURE,
        f"The job exceeded its timeout of {_minutes(job.timeout_minutes or 0)}.",
    )


def run_step(job: JobState, frame: Frame, step: Step, index: int, *, report: bool) -> StepResult:
    """Run ``step`` (or skip it) and record it in ``frame``'s steps context.

    ``index`` is the step the log lines are reported under (for a composite action's
    steps, the job step that uses the action). Only job-level steps are reported as
    steps (``report``).
    """
    started = time.time()
    t0 = time.monotonic()
    action = action_name(step.uses, step.id, job.action_counts)
    env_ctx = job.env_context(frame)
    ctx = job.eval_context(frame, env_ctx, action)
    error: str | None = None
    name = step.display_name()
    if step.name is not None:
        try:
            name = step.name.evaluate_str(ctx)
        except ExpressionError as err:
            error = located(err, step.name.location)
    name = job.masker.mask(name) if job.masker else name
    if report:
        job.reporter.step_started(job.key, index, name)
    result = StepResult(
        index=index,
        id=step.id,
        name=name,
        outcome=Conclusion.SUCCESS,
        conclusion=Conclusion.SUCCESS,
        started_at=started,
    )
    run = False
    if error is None:
        try:
            run = _should_run(job, frame, step, ctx)
        except StepFailed as err:
            error = str(err)
    if error is None and not run:
        result.outcome = result.conclusion = Conclusion.SKIPPED
    else:
        continue_on_error = False
        if error is None:
            try:
                continue_on_error = _continue_on_error(job, step, ctx)
                _execute(job, frame, step, index, action, ctx, env_ctx, result)
            except StepFailed as err:
                error = str(err)
        if error is not None:
            result.outcome = Conclusion.FAILURE
            result.error = error
        if result.error and job.masker:
            result.error = job.masker.mask(result.error)
        result.conclusion = result.outcome
        if result.outcome is Conclusion.FAILURE and continue_on_error:
            result.conclusion = Conclusion.SUCCESS
        if result.conclusion is Conclusion.FAILURE:
            frame.failed = True
            if frame.first_error is None:
                frame.first_error = f"step '{name}': {result.error or 'failed'}"
    if step.id:
        frame.steps[step.id] = {
            "outputs": result.outputs,
            "outcome": result.outcome.value,
            "conclusion": result.conclusion.value,
        }
    result.duration = time.monotonic() - t0
    if report:
        job.reporter.step_finished(job.key, result)
    return result


def _should_run(job: JobState, frame: Frame, step: Step, ctx: EvalContext) -> bool:
    if job.timed_out:
        return False
    if step.condition is None:
        return not frame.failed and not job.cancel.is_set()
    try:
        return is_truthy(step.condition.expression.evaluate(ctx))
    except ExpressionError as err:
        raise StepFailed(located(err, step.condition.location)) from None


def _continue_on_error(job: JobState, step: Step, ctx: EvalContext) -> bool:
    value = step.continue_on_error
    if isinstance(value, bool):
        return value
    raw = job.evaluate(value, ctx)
    if isinstance(raw, str):
        return raw.strip().lower() == "true"
    return is_truthy(raw)


def timeout_minutes(job: JobState, value: Value | float | None, ctx: EvalContext) -> float | None:
    """``timeout-minutes`` as a number (``None``: no limit of its own)."""
    if value is None:
        return None
    if isinstance(value, Value):
        raw = job.evaluate(value, ctx)
        try:
            number = float(to_string(raw)) if not isinstance(raw, int | float) else float(raw)
        except ValueError:
            raise StepFailed(
                f"{value.location}: timeout-minutes must be a number, got '{to_string(raw)}'"
            ) from None
    else:
        number = float(value)
    if number <= 0:
        return None
    return number


def step_limits(job: JobState, frame: Frame, minutes: float | None) -> Limits:
    deadline = frame.step_deadline
    if minutes is not None:
        own = time.monotonic() + minutes * 60
        deadline = own if deadline is None else min(deadline, own)
    # A cancel that came before this step started (it runs under always()) does not
    # stop it; one that comes while it runs does.
    cancel = None if job.cancel.is_set() else job.cancel
    return Limits(step_deadline=deadline, job_deadline=job.job_deadline, cancel=cancel)


def _execute(
    job: JobState,
    frame: Frame,
    step: Step,
    index: int,
    action: str,
    ctx: EvalContext,
    env_ctx: dict[str, str],
    result: StepResult,
) -> None:
    step_env: dict[str, str] = {}
    for key, value in step.env.items():
        step_env[key] = job.evaluate_str(value, ctx)
    if step_env:
        env_ctx = {**env_ctx, **step_env}
        ctx = job.eval_context(frame, env_ctx, action)
    minutes = timeout_minutes(job, step.timeout_minutes, ctx)
    limits = step_limits(job, frame, minutes)
    if step.run is not None:
        _run_script(job, frame, step, index, action, ctx, env_ctx, result, limits, minutes)
    elif step.uses is not None:
        from shipyard.workflow.runner._uses import run_uses

        run_uses(job, frame, step, index, action, ctx, env_ctx, step_env, result, limits, minutes)
    else:
        raise StepFailed(f"{step.location}: a step needs 'run' or 'uses'")


def working_directory(job: JobState, frame: Frame, step: Step, ctx: EvalContext) -> str:
    """The step's working directory as its process sees it."""
    value = step.working_directory
    if value is None and frame.top:
        value = (
            job.job.defaults.working_directory or job.request.workflow.defaults.working_directory
        )
    if value is None:
        return job.workspace_view
    text = job.evaluate_str(value, ctx).strip()
    if not text:
        return job.workspace_view
    if os.path.isabs(text):
        return text
    return os.path.normpath(f"{job.workspace_view}/{text}")


def _run_script(
    job: JobState,
    frame: Frame,
    step: Step,
    index: int,
    action: str,
    ctx: EvalContext,
    env_ctx: dict[str, str],
    result: StepResult,
    limits: Limits,
    minutes: float | None,
) -> None:
    assert step.run is not None
    script = job.evaluate_str(step.run, ctx)
    shell_name = step.shell
    if shell_name is None and frame.top:
        shell_name = job.job.defaults.shell or job.request.workflow.defaults.shell
    try:
        shell = job.shell(shell_name)
    except ShipyardError as err:
        raise StepFailed(f"{step.location}: {err}" if step.location else str(err)) from None
    cwd = working_directory(job, frame, step, ctx)
    # One script file per extension serves every step (creating files is slow on
    # some filesystems; rewriting one is not).
    name = f"_step_script{shell.extension}"
    with open(f"{job.paths.temp}/{name}", "w", encoding="utf-8") as f:
        f.write(shell.prepare(script))
    argv = shell.command(f"{job.temp_view}/{name}")
    files = job.files
    extra = dict(files.view)
    if frame.action_path is not None:
        extra["GITHUB_ACTION_PATH"] = frame.action_path
    env = job.process_env(env_ctx, action, extra)
    effects = CommandEffects()
    output = OutputProcessor(job.log, index, effects)
    try:
        outcome = run_process(job.session, argv, cwd, env, output, limits)
    except ShipyardError as err:
        files.collect()
        raise StepFailed(str(err)) from None
    collected = files.collect()
    result.outputs.update(effects.outputs)
    job.apply_files(collected, result.outputs)
    errors = [*effects.errors, *collected.errors]
    if outcome.stopped is not None:
        result.outcome, message = stop_result(job, outcome.stopped, minutes)
        result.error = message
    elif outcome.exit_code != 0:
        result.outcome = Conclusion.FAILURE
        result.error = f"Process completed with exit code {outcome.exit_code}."
    elif errors:
        result.outcome = Conclusion.FAILURE
        result.error = errors[0]
