"""Local composite actions (``uses: ./path``): an ``action.yml`` whose steps run in place."""

from __future__ import annotations

import os

from shipyard.errors import ShipyardError
from shipyard.workflow._model import CompositeAction, Step
from shipyard.workflow._runtime import Conclusion, StepResult
from shipyard.workflow.runner._process import Limits
from shipyard.workflow.runner._state import Frame, JobState, StepFailed

_MAX_DEPTH = 10


def load_action(job: JobState, uses: str) -> tuple[CompositeAction, str]:
    """The composite action at ``uses`` (relative to the workspace) and its directory."""
    from shipyard.workflow._parser import load_composite_action

    relative = uses[2:] if uses.startswith("./") else ""
    directory = os.path.normpath(os.path.join(job.paths.workspace, relative))
    workspace = os.path.normpath(job.paths.workspace)
    if directory != workspace and not directory.startswith(workspace + os.sep):
        raise StepFailed(f"action '{uses}' is outside the workspace")
    for name in ("action.yml", "action.yaml"):
        path = os.path.join(directory, name)
        if os.path.isfile(path):
            break
    else:
        raise StepFailed(
            f"cannot find action.yml or action.yaml in '{uses}' (is the repository checked "
            "out? add an actions/checkout step before this one)"
        )
    display = os.path.relpath(path, workspace)
    try:
        return load_composite_action(path, display_path=display), directory
    except ShipyardError as err:
        raise StepFailed(f"action '{uses}': {err}") from None


def run_composite(
    job: JobState,
    frame: Frame,
    step: Step,
    index: int,
    uses: str,
    given: dict[str, str],
    env_ctx: dict[str, str],
    step_env: dict[str, str],
    result: StepResult,
    limits: Limits,
) -> None:
    from shipyard.workflow.runner._step import run_step

    if frame.depth >= _MAX_DEPTH:
        raise StepFailed(f"action '{uses}': composite actions nest more than {_MAX_DEPTH} deep")
    action, directory = load_action(job, uses)
    child = Frame(
        env={**frame.env, **step_env},
        depth=frame.depth + 1,
        top=False,
        action_path=job.translate(directory),
        step_deadline=limits.step_deadline,
    )
    by_lower = {name.lower(): value for name, value in given.items()}
    inputs: dict[str, str] = {}
    child.inputs = inputs
    for name, spec in action.inputs.items():
        given_value = by_lower.get(name.lower())
        if given_value is None and spec.default is not None:
            ctx = job.eval_context(child, job.env_context(child))
            given_value = job.evaluate_str(spec.default, ctx)
        inputs[name] = given_value if given_value is not None else ""
    # Inputs the action does not declare are still visible, as on GitHub.
    for name, text in given.items():
        inputs.setdefault(name, text)
    for sub in action.steps:
        run_step(job, child, sub, index, report=False)
    ctx = job.eval_context(child, job.env_context(child))
    for name, output in action.outputs.items():
        result.outputs[name] = job.evaluate_str(output, ctx)
    if job.cancel.is_set() and limits.cancel is not None:
        result.outcome = Conclusion.CANCELLED
        result.error = "The operation was canceled."
    elif child.failed:
        result.outcome = Conclusion.FAILURE
        result.error = f"{uses}: {child.first_error or 'a step failed'}"
