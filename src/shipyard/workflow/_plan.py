"""Planning one workflow run, apart from running it.

:class:`RunPlan` is a pure state machine over the job graph of one workflow run: it says
which job instances can start now (their ``needs`` met, their ``if`` true, their matrix
expanded, within ``max-parallel``), takes their results, applies ``fail-fast``, and
computes the ``needs`` context of the jobs after them. It starts no process: ``shipyard
run`` drives it with threads in one process, and the ``ci`` service drives it from its
database with runners on other hosts.

Job lifecycle (one place)::

    WAITING ──needs done, if true──► expanded into units: QUEUED ──► RUNNING ──► DONE
       │                                                     │
       └──needs failed / if false──► DONE (skipped)          └─fail-fast / cancel──► DONE (cancelled)

A unit is one matrix leg. For a job with steps it is an *instance*: RUNNING when
:meth:`RunPlan.ready` hands it to a runner, DONE when :meth:`RunPlan.finish` takes its
result. For a job calling a reusable workflow (``jobs.<id>.uses``) it is a *call*: the
called workflow's jobs join the plan as a nested graph, with this same lifecycle and keys
``"<caller> / <job>"``; the call is RUNNING once started (within ``max-parallel``) and
DONE when all of them are (see ``_reusable.py``). Every unit moves by ``_TRANSITIONS``;
a job is DONE when all its units are.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from shipyard.errors import LocatedError
from shipyard.workflow._matrix import evaluate_tree, expand_matrix, matrix_suffix
from shipyard.workflow._model import Job, Value, Workflow
from shipyard.workflow._reusable import (
    CalledWorkflows,
    WorkflowLoader,
    add_call,
    advance_calls,
    evaluate_env,
    fold_conclusions,
    settle,
    stop_call,
    workflow_key,
)
from shipyard.workflow._runtime import CheckoutSource, Conclusion, JobRequest, JobResult
from shipyard.workflow.expressions import EvalContext, ExpressionError, is_truthy, to_string


class InstanceState(enum.Enum):
    QUEUED = "queued"
    RUNNING = "running"
    DONE = "done"


# Which transitions a unit may take; everything else is a bug in the caller.
_TRANSITIONS: dict[InstanceState, frozenset[InstanceState]] = {
    InstanceState.QUEUED: frozenset({InstanceState.RUNNING, InstanceState.DONE}),
    InstanceState.RUNNING: frozenset({InstanceState.DONE}),
    InstanceState.DONE: frozenset(),
}


@dataclass(slots=True)
class _Unit:
    """One matrix leg of a job: an instance (``request``) or a call (``graph``).

    A call that could not be resolved has neither and is DONE from the start.
    """

    key: str
    name: str
    matrix: dict[str, Any]
    request: JobRequest | None = None
    graph: _Graph | None = None
    state: InstanceState = InstanceState.QUEUED
    result: JobResult | None = None

    def move(self, to: InstanceState) -> None:
        if to not in _TRANSITIONS[self.state]:
            raise RuntimeError(f"job {self.key}: {self.state.value} -> {to.value}")
        self.state = to

    @property
    def queued(self) -> bool:
        return self.state is InstanceState.QUEUED

    @property
    def running(self) -> bool:
        return self.state is InstanceState.RUNNING

    @property
    def finished(self) -> bool:
        return self.state is InstanceState.DONE

    def start(self) -> None:
        self.move(InstanceState.RUNNING)

    def end(self, result: JobResult) -> None:
        self.move(InstanceState.DONE)
        self.result = result


@dataclass(slots=True)
class _JobNode:
    job: Job
    label: str  # the key of the job's own result when no unit ran (skipped, failed)
    units: list[_Unit] = field(default_factory=list)
    expanded: bool = False
    result: JobResult | None = None  # set when the job (every unit) is done
    max_parallel: int | None = None
    fail_fast: bool = True


def evaluate_value(value: Value | bool | float | int | None, ctx: EvalContext) -> Any:
    """Evaluate a field that is either a literal or a :class:`Value`."""
    if isinstance(value, Value):
        return value.evaluate(ctx)
    return value


class RunPlan:
    """The job graph of one workflow run and the state of each job in it.

    ``contexts`` are the run-wide contexts: ``github``, ``inputs``, ``vars``, ``secrets``
    (``env`` is computed here from the workflow's ``env:``). ``only_jobs`` restricts the
    run to those jobs and everything they need; ``matrix_filter`` keeps only matrix
    combinations whose value for a key (as a string) equals the one given.
    ``load_workflow`` parses the workflow a local ``jobs.<id>.uses`` names (it is given
    the ``uses`` text); without it, jobs calling a reusable workflow fail.
    """

    def __init__(
        self,
        workflow: Workflow,
        contexts: Mapping[str, Any],
        *,
        source: CheckoutSource | None = None,
        only_jobs: Iterable[str] | None = None,
        matrix_filter: Mapping[str, str] | None = None,
        run_id: str = "1",
        run_attempt: int = 1,
        hash_files: Callable[[list[str]], str] | None = None,
        load_workflow: WorkflowLoader | None = None,
    ) -> None:
        self.workflow = workflow
        self.source = source
        self.run_id = run_id
        self.run_attempt = run_attempt
        self.called = CalledWorkflows(load_workflow)
        self.matrix_filter = dict(matrix_filter or {})
        self.hash_files = hash_files
        self._units: dict[str, tuple[_Graph, _JobNode, _Unit]] = {}
        self._keys: set[str] = set()
        run_contexts = {k: v for k, v in contexts.items() if k != "env"}
        run_contexts["env"], self.errors = evaluate_env(workflow.env, run_contexts)
        self._root = _Graph(self, workflow, run_contexts, (workflow_key(workflow.path),))
        if only_jobs is not None:
            only = list(only_jobs)
            for jid in only:
                if jid not in workflow.jobs:
                    raise LocatedError(f"workflow {workflow.path} has no job '{jid}'")
            wanted = set(only).union(*(self._root.ancestors(workflow.jobs[j]) for j in only))
            self._root.nodes = {j: n for j, n in self._root.nodes.items() if j in wanted}
        self._nodes = self._root.nodes
        if self.errors:
            for node in self._nodes.values():
                node.expanded = True
                node.result = self._root.ended(node, Conclusion.FAILURE, "; ".join(self.errors))

    # -- queries -----------------------------------------------------------------

    @property
    def done(self) -> bool:
        return self._root.done

    def job_results(self) -> dict[str, JobResult]:
        """Aggregated result per job id (matrix legs and calls folded), for jobs that are done."""
        return {jid: n.result for jid, n in self._nodes.items() if n.result is not None}

    def instance_results(self) -> list[JobResult]:
        """Every job instance's result in graph order, skipped jobs included.

        The jobs of a called workflow stand in place of the job calling it.
        """
        out: list[JobResult] = []
        self._root.results(out)
        return out

    def conclusion(self) -> Conclusion:
        """The run's conclusion: failure if any job failed (and did not continue on error)."""
        done = [n for n in self._nodes.values() if n.result is not None]
        results = [self._root.summary(n)["result"] for n in done]
        if Conclusion.FAILURE.value in results:
            return Conclusion.FAILURE
        if self._root.cancelled or Conclusion.CANCELLED.value in results:
            return Conclusion.CANCELLED
        return Conclusion.SUCCESS

    # -- driving -----------------------------------------------------------------

    def cancel(self) -> list[str]:
        """Cancel the run: queued instances end cancelled; returns running keys to stop."""
        running: list[str] = []
        self._root.cancel(running)
        return running

    def ready(self) -> list[JobRequest]:
        """Job instances that may start now; each is marked running when returned."""
        while self._root.advance():
            pass
        out: list[JobRequest] = []
        self._root.collect(out)
        return out

    def finish(self, key: str, result: JobResult) -> list[str]:
        """Record a finished instance; returns keys of running instances to cancel (fail-fast)."""
        try:
            graph, node, unit = self._units[key]
        except KeyError:
            raise KeyError(key) from None
        unit.end(result)
        to_cancel: list[str] = []
        failed = result.conclusion is Conclusion.FAILURE and not _continues(unit)
        if failed and node.fail_fast:
            for other in node.units:
                graph.stop(node, other, to_cancel)
        graph.fold(node)
        settle(graph, failed, to_cancel)
        return to_cancel

    def unit_key(self, name: str) -> str:
        """A key no other unit of the run has: ``name``, else ``name #2``, ``name #3``..."""
        key, n = name, 2
        while key in self._keys:
            key = f"{name} #{n}"
            n += 1
        self._keys.add(key)
        return key


def _continues(unit: _Unit) -> bool:
    return unit.request is not None and unit.request.continue_on_error


@dataclass(eq=False)
class _Graph:
    """The jobs of one workflow in the run: the top-level one, or one call of a called one.

    ``contexts`` are the contexts its jobs start from (``github``, ``inputs``, ``vars``,
    ``secrets``, ``env``); ``chain`` lists the workflows from the top down to this one;
    ``prefix`` starts the keys of its jobs; ``parent`` is the call it runs for.
    """

    plan: RunPlan
    workflow: Workflow
    contexts: dict[str, Any]
    chain: tuple[str, ...]
    prefix: str = ""
    parent: tuple[_Graph, _JobNode, _Unit] | None = None
    cancelled: bool = False
    nodes: dict[str, _JobNode] = field(init=False)

    def __post_init__(self) -> None:
        jobs = self.workflow.jobs.items()
        self.nodes = {jid: _JobNode(job, self.prefix + jid) for jid, job in jobs}

    @property
    def done(self) -> bool:
        return all(node.result is not None for node in self.nodes.values())

    # -- walking the graph ---------------------------------------------------------

    def advance(self) -> bool:
        """Expand the jobs whose needs are done and move calls on; whether anything changed."""
        progressed = False
        for node in self.nodes.values():
            if node.result is not None:
                continue
            if not node.expanded:
                if all(self.nodes[n].result is not None for n in node.job.needs if n in self.nodes):
                    self._expand(node)
                    progressed = True
            elif node.job.uses is not None:
                progressed = advance_calls(self, node) or progressed
        return progressed

    def collect(self, out: list[JobRequest]) -> None:
        """Mark queued instances running (within ``max-parallel``) and add them to ``out``."""
        for node in self.nodes.values():
            if node.result is not None:
                continue
            running = sum(1 for u in node.units if u.running)
            for unit in node.units:
                if unit.graph is not None:
                    if unit.running:
                        unit.graph.collect(out)
                elif unit.request is not None and unit.queued and (
                    node.max_parallel is None or running < node.max_parallel
                ):
                    unit.start()
                    running += 1
                    out.append(unit.request)

    def results(self, out: list[JobResult]) -> None:
        """Every unit's result (a call's nested ones in its place) or the job's own."""
        for node in self.nodes.values():
            if not node.units and node.result is not None:
                out.append(node.result)
            for unit in node.units:
                if unit.graph is not None:
                    unit.graph.results(out)
                elif unit.result is not None:
                    out.append(unit.result)

    # -- stopping ----------------------------------------------------------------

    def cancel(self, running: list[str]) -> None:
        """End every job not done as cancelled; keys of running instances go to ``running``."""
        self.cancelled = True
        for node in self.nodes.values():
            if node.result is not None:
                continue
            if not node.expanded:
                node.expanded = True
                node.result = self.ended(node, Conclusion.CANCELLED)
                continue
            for unit in node.units:
                self.stop(node, unit, running)
            self.fold(node)

    def stop(self, node: _JobNode, unit: _Unit, running: list[str]) -> None:
        """Cancel a unit: queued ends now, running goes to ``running``, a call is cancelled."""
        if unit.graph is not None:
            stop_call(node, unit, running)
        elif unit.queued:
            unit.end(JobResult(
                key=unit.key, job_id=node.job.id, name=unit.name,
                conclusion=Conclusion.CANCELLED, matrix=dict(unit.matrix),
            ))
        elif unit.running:
            running.append(unit.key)

    # -- contexts and status -------------------------------------------------------

    def summary(self, node: _JobNode) -> dict[str, Any]:
        """``{result, outputs}`` of a done job, as ``needs`` (and a call's ``jobs``) show it.

        A failure every failed leg of which had ``continue-on-error`` shows as success.
        """
        assert node.result is not None
        conclusion = node.result.conclusion
        failed = [u for u in node.units if u.result and u.result.conclusion is Conclusion.FAILURE]
        if failed and all(_continues(u) for u in failed):
            conclusion = Conclusion.SUCCESS
        return {"result": conclusion.value, "outputs": dict(node.result.outputs)}

    def _needs(self, job: Job) -> dict[str, Any]:
        nodes = (self.nodes[n] for n in job.needs if n in self.nodes)
        return {n.job.id: self.summary(n) for n in nodes if n.result is not None}

    def ancestors(self, job: Job) -> set[str]:
        """Every job ``job`` needs, directly or not."""
        seen: set[str] = set()
        stack = list(job.needs)
        while stack:
            jid = stack.pop()
            if jid in seen or jid not in self.nodes:
                continue
            seen.add(jid)
            stack.extend(self.nodes[jid].job.needs)
        return seen

    def _status(self, job: Job) -> Callable[[str], bool]:
        needs = [self.nodes[n] for n in job.needs if n in self.nodes]
        ancestors = [self.nodes[n] for n in self.ancestors(job)]

        def result(node: _JobNode) -> str | None:
            return self.summary(node)["result"] if node.result is not None else None

        def status(name: str) -> bool:
            if name == "always":
                return True
            if name == "cancelled":
                return self.cancelled
            if name == "failure":
                return any(result(n) == "failure" for n in ancestors)
            return not self.cancelled and all(result(n) == "success" for n in needs)

        return status

    def _ctx(self, job: Job, **extra: Any) -> EvalContext:
        contexts = dict(self.contexts)
        contexts["needs"] = self._needs(job)
        contexts.update(extra)
        return EvalContext(contexts, status=self._status(job), hash_files=self.plan.hash_files)

    # -- expansion -----------------------------------------------------------------

    def _expand(self, node: _JobNode) -> None:
        node.expanded = True
        job = node.job
        if self.cancelled:
            node.result = self.ended(node, Conclusion.CANCELLED)
            return
        ctx = self._ctx(job)
        run = True
        if job.condition is not None:
            try:
                run = is_truthy(job.condition.expression.evaluate(ctx))
            except ExpressionError as err:
                error = f"{job.condition.location}: {err.message}"
                node.result = self.ended(node, Conclusion.FAILURE, error)
                return
        elif not self._status(job)("success"):
            run = False
        if not run:
            node.result = self.ended(node, Conclusion.SKIPPED)
            return
        try:
            combos = expand_matrix(job.strategy, ctx)
            if job.strategy is not None:
                node.fail_fast = is_truthy(evaluate_value(job.strategy.fail_fast, ctx))
                mp = evaluate_value(job.strategy.max_parallel, ctx)
                node.max_parallel = None if mp is None else max(1, int(float(mp)))
        except LocatedError as err:
            node.result = self.ended(node, Conclusion.FAILURE, str(err))
            return
        except (TypeError, ValueError) as err:
            node.result = self.ended(node, Conclusion.FAILURE, f"bad strategy: {err}")
            return
        if self.plan.matrix_filter:
            combos = [c for c in combos if self._keep(c)]
            if not combos:
                node.result = self.ended(node, Conclusion.SKIPPED)
                return
        total = len(combos)
        for index, combo in enumerate(combos):
            strategy_ctx = {
                "fail-fast": node.fail_fast,
                "job-index": index,
                "job-total": total,
                "max-parallel": total if node.max_parallel is None else node.max_parallel,
            }
            self._add_unit(node, combo, strategy_ctx)
        self.fold(node)

    def _add_unit(
        self, node: _JobNode, combo: dict[str, Any], strategy_ctx: dict[str, Any]
    ) -> None:
        job = node.job
        ictx = self._ctx(job, matrix=combo, strategy=strategy_ctx)
        try:
            name = self._name(job, combo, ictx)
            labels = self._labels(job, ictx)
            continue_on_error = is_truthy(evaluate_value(job.continue_on_error, ictx))
        except ExpressionError as err:
            name, labels, continue_on_error = job.id, (), False
            error: str | None = str(err)
        else:
            error = None
        name = self.prefix + name
        unit = _Unit(self.plan.unit_key(name), name, combo)
        node.units.append(unit)
        if job.uses is not None:
            add_call(self, node, unit, ictx, error)
            return
        contexts = dict(self.contexts)
        contexts.update(needs=self._needs(job), matrix=combo, strategy=strategy_ctx)
        plan = self.plan
        unit.request = JobRequest(
            workflow=self.workflow, job=job, key=unit.key, name=name, contexts=contexts,
            source=plan.source, labels=labels, continue_on_error=continue_on_error,
            run_id=plan.run_id, run_attempt=plan.run_attempt,
        )
        plan._units[unit.key] = (self, node, unit)
        if error is not None:
            unit.end(JobResult(
                key=unit.key, job_id=job.id, name=name, conclusion=Conclusion.FAILURE,
                matrix=combo, error=error,
            ))

    def _keep(self, combo: Mapping[str, Any]) -> bool:
        wanted = self.plan.matrix_filter.items()
        return all(to_string(combo[k]) == want for k, want in wanted if k in combo)

    def _name(self, job: Job, combo: Mapping[str, Any], ctx: EvalContext) -> str:
        if job.name is not None:
            name = to_string(job.name.evaluate(ctx))
            uses_matrix = any("matrix" in e.contexts() for _, e in job.name.template.expressions)
            if combo and not uses_matrix:
                name = f"{name} {matrix_suffix(combo)}"
            return name
        return f"{job.id} {matrix_suffix(combo)}" if combo else job.id

    def _labels(self, job: Job, ctx: EvalContext) -> tuple[str, ...]:
        value = evaluate_tree(job.runs_on, ctx)
        if isinstance(value, Mapping):
            labels = value.get("labels", [])
            value = labels if isinstance(labels, list) else [labels]
        if isinstance(value, list):
            return tuple(to_string(v) for v in value)
        if value is None:
            return ()
        return (to_string(value),)

    # -- results -------------------------------------------------------------------

    def fold(self, node: _JobNode) -> None:
        """Set the job's aggregate result once every unit is done."""
        if node.result is not None or not node.expanded:
            return
        if not all(u.finished for u in node.units):
            return
        results = [u.result for u in node.units if u.result is not None]
        outputs: dict[str, str] = {}
        for r in results:  # GitHub: the last leg to set an output wins
            outputs.update({k: v for k, v in r.outputs.items() if v != ""})
        errors = dict.fromkeys(r.error for r in results if r.error)
        node.result = JobResult(
            key=node.label, job_id=node.job.id, name=node.label,
            conclusion=fold_conclusions(r.conclusion for r in results), outputs=outputs,
            error="\n".join(errors) or None,
        )

    def ended(self, node: _JobNode, conclusion: Conclusion, error: str | None = None) -> JobResult:
        """The result of a job that ends with no unit run (skipped, cancelled, failed to plan)."""
        return JobResult(
            key=node.label, job_id=node.job.id, name=node.label, conclusion=conclusion,
            error=error,
        )
