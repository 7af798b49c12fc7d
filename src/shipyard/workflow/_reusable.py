"""Calls of reusable workflows (``jobs.<id>.uses``) in the run planner.

A caller job hands its called workflow a fresh set of contexts: ``inputs`` from its
``with:`` checked against ``on.workflow_call.inputs`` (typed, defaulted, required),
``secrets`` from its ``secrets:`` (``inherit`` passes all of the caller's), the caller's
``github`` and ``vars``, and the *called* workflow's own ``env:``. When the called jobs
are done, ``on.workflow_call.outputs`` are evaluated over their ``jobs`` context and
become the caller job's outputs.

The first half resolves a call (:func:`prepare_call`); the file itself is read by the
loader given to :class:`~shipyard.workflow._plan.RunPlan`, once per run. Whatever a user
can get wrong raises :class:`~shipyard.errors.WorkflowError` saying where, and the
planner fails that leg of the caller job with it. The second half moves a caller job's
calls through the plan's lifecycle (written down in ``_plan.py``): starting them within
``max-parallel``, fail-fast across them, and folding a finished call's jobs into the
call's result and outputs. Nothing here reads a file or starts a process.
"""
from __future__ import annotations

import math
import posixpath
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from shipyard.errors import ShipyardError, ValidationError, WorkflowError
from shipyard.workflow._model import InputSpec, InputType, Job, Value, Workflow
from shipyard.workflow._runtime import Conclusion, JobResult
from shipyard.workflow._schema import did_you_mean
from shipyard.workflow.expressions import EvalContext, ExpressionError, to_string

if TYPE_CHECKING:
    from shipyard.workflow._plan import _Graph, _JobNode, _Unit

__all__ = [
    "MAX_DEPTH",
    "CallSpec",
    "CalledWorkflows",
    "WorkflowLoader",
    "add_call",
    "advance_calls",
    "call_outputs",
    "evaluate_env",
    "fold_conclusions",
    "prepare_call",
    "settle",
    "stop_call",
    "workflow_key",
]

WorkflowLoader = Callable[[str], Workflow]
"""Given the ``uses`` of a local call (``./.github/workflows/x.yml``), the parsed file.

Raises :class:`~shipyard.errors.ValidationError` (every located error of the file) when
the file is missing or broken.
"""

MAX_DEPTH = 4
"""GitHub's limit: the top-level workflow and at most three levels of called workflows."""


@dataclass(frozen=True, slots=True)
class CallSpec:
    """One call, resolved: the workflow to run and the contexts its jobs start from.

    ``contexts`` holds ``github``, ``inputs``, ``vars``, ``secrets`` and ``env``;
    ``chain`` is the path of every workflow from the top-level one down to this one.
    """

    workflow: Workflow
    contexts: dict[str, Any]
    chain: tuple[str, ...]


def workflow_key(path: str) -> str:
    """A workflow's path as the chain of calls compares it (``./`` and ``a/../`` removed)."""
    return posixpath.normpath(path[2:] if path.startswith("./") else path)


class CalledWorkflows:
    """The workflows the calls of one run name, each loaded once (its errors too)."""

    def __init__(self, loader: WorkflowLoader | None) -> None:
        self._loader = loader
        self._loaded: dict[str, Workflow | str] = {}  # a workflow, or why it cannot load

    def load(self, job: Job, chain: tuple[str, ...]) -> tuple[Workflow, str]:
        """The workflow ``job`` calls and its key; ``chain`` lists the callers above it."""
        uses = job.uses or ""
        where = f"{job.location}: " if job.location is not None else ""
        if not uses.startswith("./"):
            raise WorkflowError(
                f"{where}reusable workflow '{uses}' is not available: only local reusable"
                " workflows (uses: ./.github/workflows/…) can run here"
            )
        key = workflow_key(uses)
        if key in chain:
            cycle = " -> ".join((*chain[chain.index(key):], key))
            raise WorkflowError(f"{where}reusable workflow '{uses}' calls itself: {cycle}")
        if len(chain) >= MAX_DEPTH:
            raise WorkflowError(
                f"{where}reusable workflow '{uses}' is nested too deep: at most {MAX_DEPTH}"
                f" levels of workflows can be connected ({' -> '.join((*chain, key))})"
            )
        if self._loader is None:
            raise WorkflowError(f"{where}reusable workflow '{uses}' cannot be loaded here")
        if key not in self._loaded:
            try:
                self._loaded[key] = self._loader(uses)
            except ValidationError as err:
                self._loaded[key] = f"reusable workflow '{uses}' has errors:\n" + "\n".join(
                    str(e) for e in err.errors
                )
            except (ShipyardError, OSError) as err:
                self._loaded[key] = f"cannot load reusable workflow '{uses}': {err}"
        loaded = self._loaded[key]
        if isinstance(loaded, str):
            raise WorkflowError(where + loaded)
        if loaded.on.workflow_call is None:
            raise WorkflowError(
                f"{where}{loaded.path} cannot be called as a reusable workflow:"
                " its 'on:' has no 'workflow_call' trigger"
            )
        return loaded, key


def prepare_call(
    job: Job,
    ctx: EvalContext,
    caller: Mapping[str, Any],
    chain: tuple[str, ...],
    workflows: CalledWorkflows,
) -> CallSpec:
    """Load the workflow ``job`` calls and resolve its inputs, secrets and env.

    ``ctx`` evaluates the caller's ``with:`` and ``secrets:`` (it holds the caller
    leg's ``needs``, ``matrix`` and ``strategy``); ``caller`` holds the contexts the
    caller's jobs start from; ``chain`` the workflows above this call.
    """
    called, key = workflows.load(job, chain)
    inputs = _inputs(job, called, ctx, caller)
    secrets = _secrets(job, called, ctx, dict(caller.get("secrets") or {}))
    contexts: dict[str, Any] = {
        "github": caller.get("github") or {},
        "inputs": inputs,
        "vars": caller.get("vars") or {},
        "secrets": secrets,
    }
    contexts["env"], errors = evaluate_env(called.env, contexts)
    if errors:
        raise WorkflowError("; ".join(errors))
    return CallSpec(workflow=called, contexts=contexts, chain=(*chain, key))


def evaluate_env(
    values: Mapping[str, Value], contexts: Mapping[str, Any]
) -> tuple[dict[str, str], list[str]]:
    """A workflow's ``env:`` evaluated (each value sees those before it), and its errors."""
    env: dict[str, str] = {}
    errors: list[str] = []
    ctx = EvalContext({**contexts, "env": env})
    for name, value in values.items():
        try:
            env[name] = value.evaluate_str(ctx)
        except ExpressionError as err:
            errors.append(f"{value.location}: {err.message}")
    return env, errors


def call_outputs(
    workflow: Workflow, jobs: Mapping[str, Any], contexts: Mapping[str, Any]
) -> dict[str, str]:
    """``on.workflow_call.outputs`` of a finished call, over the ``jobs`` context given."""
    spec = workflow.on.workflow_call
    if spec is None:
        return {}
    ctx = EvalContext({
        "github": contexts.get("github") or {},
        "inputs": contexts.get("inputs") or {},
        "vars": contexts.get("vars") or {},
        "jobs": dict(jobs),
    })
    return {name: _evaluate(value, ctx, as_string=True) for name, value in spec.outputs.items()}


def _evaluate(value: Value, ctx: EvalContext, *, as_string: bool = False) -> Any:
    try:
        return value.evaluate_str(ctx) if as_string else value.evaluate(ctx)
    except ExpressionError as err:
        raise WorkflowError(f"{value.location}: {err.message}") from None


def _inputs(
    job: Job, called: Workflow, ctx: EvalContext, caller: Mapping[str, Any]
) -> dict[str, Any]:
    specs = called.on.workflow_call.inputs if called.on.workflow_call else {}
    given: dict[str, Any] = {}
    for name, value in job.with_.items():
        spec = specs.get(name)
        if spec is None:
            known = ", ".join(specs) or "none"
            raise WorkflowError(
                f"{value.location}: input '{name}' is not defined by {called.path}"
                f"{did_you_mean(name, specs)} (its inputs: {known})"
            )
        given[name] = _typed(spec, _evaluate(value, ctx), f"{value.location}: ")
    where = f"{job.location}: " if job.location is not None else ""
    resolved: dict[str, Any] = {}
    for name, spec in specs.items():
        if name in given:
            resolved[name] = given[name]
        elif spec.required:
            raise WorkflowError(
                f"{where}input '{name}' is required by {called.path} but not given in 'with:'"
            )
        elif isinstance(spec.default, Value):
            defaults_ctx = EvalContext({
                "github": caller.get("github") or {},
                "vars": caller.get("vars") or {},
                "inputs": given,
            })
            default = _evaluate(spec.default, defaults_ctx)
            resolved[name] = _typed(spec, default, f"{spec.default.location}: ")
        elif spec.default is not None:
            resolved[name] = _typed(spec, spec.default, where)
        else:
            # GitHub's values for an input neither given nor defaulted.
            resolved[name] = {InputType.BOOLEAN: False, InputType.NUMBER: 0}.get(spec.type, "")
    return resolved


def _typed(spec: InputSpec, raw: Any, where: str) -> Any:
    """``raw`` as the input's type; a literal from YAML arrives as its text."""
    if spec.type is InputType.BOOLEAN:
        if isinstance(raw, bool):
            return raw
        if isinstance(raw, str) and raw.strip().lower() in ("true", "false"):
            return raw.strip().lower() == "true"
        raise WorkflowError(
            f"{where}input '{spec.name}' is a boolean: expected true or false, got {raw!r}"
        )
    if spec.type is InputType.NUMBER:
        number = _number(raw)
        if number is None:
            raise WorkflowError(f"{where}input '{spec.name}' is a number, got {raw!r}")
        return number
    return to_string(raw)


def _number(raw: Any) -> int | float | None:
    if isinstance(raw, bool):
        return None
    if isinstance(raw, int | float):
        return raw if math.isfinite(raw) else None
    if not isinstance(raw, str):
        return None
    text = raw.strip()
    try:
        return int(text)
    except ValueError:
        pass
    try:
        number = float(text)
    except ValueError:
        return None
    if not math.isfinite(number):
        return None
    return int(number) if number.is_integer() else number


def _secrets(
    job: Job, called: Workflow, ctx: EvalContext, caller_secrets: dict[str, Any]
) -> dict[str, Any]:
    declared = called.on.workflow_call.secrets if called.on.workflow_call else {}
    if job.secrets == "inherit":
        passed = dict(caller_secrets)
    else:
        # The run's token reaches every called workflow, as on GitHub.
        passed = {k: v for k, v in caller_secrets.items() if k == "GITHUB_TOKEN"}
        for name, value in (job.secrets or {}).items() if isinstance(job.secrets, dict) else ():
            if name not in declared:
                known = ", ".join(declared) or "none"
                raise WorkflowError(
                    f"{value.location}: secret '{name}' is not defined by {called.path}"
                    f"{did_you_mean(name, declared)} (its secrets: {known})"
                )
            passed[name] = _evaluate(value, ctx, as_string=True)
    where = f"{job.location}: " if job.location is not None else ""
    for name, required in declared.items():
        if required and name not in passed:
            how = "the caller's secrets" if job.secrets == "inherit" else "'secrets:'"
            raise WorkflowError(
                f"{where}secret '{name}' is required by {called.path} but not given in {how}"
            )
    return passed


# -- calls in the plan ------------------------------------------------------------------


def fold_conclusions(conclusions: Iterable[Conclusion]) -> Conclusion:
    """One conclusion for several: any failure, else any cancellation, else all skipped."""
    seen = set(conclusions)
    if Conclusion.FAILURE in seen:
        return Conclusion.FAILURE
    if Conclusion.CANCELLED in seen:
        return Conclusion.CANCELLED
    if seen == {Conclusion.SKIPPED}:
        return Conclusion.SKIPPED
    return Conclusion.SUCCESS


def add_call(graph: _Graph, node: _JobNode, call: _Unit, ctx: EvalContext, error: str | None) -> None:
    """Resolve one leg of a caller job: its called workflow's jobs become a nested graph.

    ``error`` is why the leg could not even be named; the leg then fails, as it does
    when the call cannot be resolved.
    """
    if error is None:
        try:
            spec = prepare_call(node.job, ctx, graph.contexts, graph.chain, graph.plan.called)
        except WorkflowError as err:
            error = str(err)
        else:
            call.graph = type(graph)(
                graph.plan, spec.workflow, spec.contexts, prefix=f"{call.key} / ",
                chain=spec.chain, parent=(graph, node, call),
            )
            return
    call.end(JobResult(
        key=call.key, job_id=node.job.id, name=call.name, conclusion=Conclusion.FAILURE,
        matrix=call.matrix, error=error,
    ))


def advance_calls(graph: _Graph, node: _JobNode) -> bool:
    """Start a caller job's calls within ``max-parallel``, advance them, finish done ones."""
    progressed = False
    running = sum(1 for c in node.units if c.running)
    for call in node.units:
        if call.queued and (node.max_parallel is None or running < node.max_parallel):
            call.start()
            running += 1
            progressed = True
        if call.running and call.graph is not None:
            progressed = call.graph.advance() or progressed
            if call.graph.done:
                finish_call(node, call)
                running -= 1
                progressed = True
    graph.fold(node)
    return progressed


def stop_call(node: _JobNode, call: _Unit, running: list[str]) -> None:
    """Cancel a call's jobs; keys of its running instances go to ``running``."""
    if call.finished or call.graph is None:
        return
    call.graph.cancel(running)
    if call.graph.done:
        finish_call(node, call)


def settle(graph: _Graph, failed: bool, running: list[str]) -> None:
    """After a job of ``graph`` ended: fail-fast across calls, finish the calls above it.

    A failure that counts (not continue-on-error) fails every call it is nested in, so
    each of their callers' ``fail-fast`` cancels that caller's other calls.
    """
    while graph.parent is not None:
        parent, node, call = graph.parent
        if failed and node.fail_fast:
            for other in node.units:
                if other is not call:
                    stop_call(node, other, running)
        if graph.done and not call.finished:
            finish_call(node, call)
        parent.fold(node)
        graph = parent


def finish_call(node: _JobNode, call: _Unit) -> None:
    """End a call whose jobs are all done: its conclusion, and its outputs from theirs."""
    graph = call.graph
    assert graph is not None
    jobs = {jid: graph.summary(n) for jid, n in graph.nodes.items() if n.result is not None}
    conclusion = fold_conclusions(Conclusion(j["result"]) for j in jobs.values())
    error: str | None = None
    try:
        outputs = call_outputs(graph.workflow, jobs, graph.contexts)
    except WorkflowError as err:
        outputs, conclusion, error = {}, Conclusion.FAILURE, str(err)
    call.end(JobResult(
        key=call.key, job_id=node.job.id, name=call.name, conclusion=conclusion,
        outputs=outputs, matrix=call.matrix, error=error,
    ))
