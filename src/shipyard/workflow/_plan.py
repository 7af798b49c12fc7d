"""Planning one workflow run, apart from running it.

:class:`RunPlan` is a pure state machine over the job graph of one workflow run: it says
which job instances can start now (their ``needs`` met, their ``if`` true, their matrix
expanded, within ``max-parallel``), takes their results, applies ``fail-fast``, and
computes the ``needs`` context of the jobs after them. It starts no process: ``shipyard
run`` drives it with threads in one process, and the ``ci`` service drives it from its
database with runners on other hosts.

Job lifecycle (one place)::

    WAITING ──needs done, if true──► (expanded into instances) QUEUED ──► RUNNING ──► DONE
       │                                                           │
       └──needs failed / if false──► DONE (skipped)                └─fail-fast──► DONE (cancelled)
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from shipyard.errors import LocatedError
from shipyard.workflow._matrix import evaluate_tree, expand_matrix, matrix_suffix
from shipyard.workflow._model import Job, Value, Workflow
from shipyard.workflow._runtime import CheckoutSource, Conclusion, JobRequest, JobResult
from shipyard.workflow.expressions import EvalContext, ExpressionError, is_truthy, to_string


class InstanceState(enum.Enum):
    QUEUED = "queued"
    RUNNING = "running"
    DONE = "done"


# Which transitions an instance may take; everything else is a bug in the caller.
_TRANSITIONS: dict[InstanceState, frozenset[InstanceState]] = {
    InstanceState.QUEUED: frozenset({InstanceState.RUNNING, InstanceState.DONE}),
    InstanceState.RUNNING: frozenset({InstanceState.DONE}),
    InstanceState.DONE: frozenset(),
}


@dataclass(slots=True)
class _Instance:
    request: JobRequest
    state: InstanceState = InstanceState.QUEUED
    result: JobResult | None = None

    def move(self, to: InstanceState) -> None:
        if to not in _TRANSITIONS[self.state]:
            raise RuntimeError(f"job {self.request.key}: {self.state.value} -> {to.value}")
        self.state = to


@dataclass(slots=True)
class _JobNode:
    job: Job
    instances: list[_Instance] = field(default_factory=list)
    expanded: bool = False
    result: JobResult | None = None  # set when the job (every instance) is done
    max_parallel: int | None = None
    fail_fast: bool = True


def evaluate_value(value: Value | bool | float | int | None, ctx: EvalContext) -> Any:
    """Evaluate a field that is either a literal or a :class:`Value`."""
    if isinstance(value, Value):
        return value.evaluate(ctx)
    return value


def located(err: ExpressionError, value: Value) -> str:
    """``file:line:col: message`` for an evaluation error of ``value``."""
    loc = value.location
    return f"{loc}: {err.message}"


class RunPlan:
    """The job graph of one workflow run and the state of each job in it.

    ``contexts`` are the run-wide contexts: ``github``, ``inputs``, ``vars``, ``secrets``
    (``env`` is computed here from the workflow's ``env:``). ``only_jobs`` restricts the
    run to those jobs and everything they need; ``matrix_filter`` keeps only matrix
    combinations whose value for a key (as a string) equals the one given.
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
    ) -> None:
        self.workflow = workflow
        self.source = source
        self.run_id = run_id
        self.run_attempt = run_attempt
        self._matrix_filter = dict(matrix_filter or {})
        self._hash_files = hash_files
        self._cancelled = False
        self._contexts = {k: v for k, v in contexts.items() if k != "env"}
        self.errors: list[str] = []
        env: dict[str, str] = {}
        ctx = EvalContext(self._contexts | {"env": env})
        for name, value in workflow.env.items():
            try:
                env[name] = value.evaluate_str(ctx)
            except ExpressionError as err:
                self.errors.append(located(err, value))
        self._contexts["env"] = env
        wanted = self._closure(only_jobs) if only_jobs is not None else set(workflow.jobs)
        self._nodes = {jid: _JobNode(job) for jid, job in workflow.jobs.items() if jid in wanted}
        if self.errors:
            for node in self._nodes.values():
                node.expanded = True
                node.result = JobResult(
                    key=node.job.id, job_id=node.job.id, name=node.job.id,
                    conclusion=Conclusion.FAILURE, error="; ".join(self.errors),
                )

    def _closure(self, only: Iterable[str]) -> set[str]:
        seen: set[str] = set()
        stack = list(only)
        while stack:
            jid = stack.pop()
            if jid in seen:
                continue
            if jid not in self.workflow.jobs:
                raise LocatedError(f"workflow {self.workflow.path} has no job '{jid}'")
            seen.add(jid)
            stack.extend(self.workflow.jobs[jid].needs)
        return seen

    # -- queries -----------------------------------------------------------------

    @property
    def done(self) -> bool:
        return all(node.result is not None for node in self._nodes.values())

    def job_results(self) -> dict[str, JobResult]:
        """Aggregated result per job id (matrix legs folded), for jobs that are done."""
        return {jid: n.result for jid, n in self._nodes.items() if n.result is not None}

    def instance_results(self) -> list[JobResult]:
        """Every job instance's result in graph order, skipped jobs included."""
        out: list[JobResult] = []
        for node in self._nodes.values():
            if node.instances:
                out.extend(i.result for i in node.instances if i.result is not None)
            elif node.result is not None:
                out.append(node.result)
        return out

    def conclusion(self) -> Conclusion:
        """The run's conclusion: failure if any job failed (and did not continue on error)."""
        results = [n.result for n in self._nodes.values() if n.result is not None]
        if any(r.conclusion is Conclusion.FAILURE for r in results):
            return Conclusion.FAILURE
        if self._cancelled or any(r.conclusion is Conclusion.CANCELLED for r in results):
            return Conclusion.CANCELLED
        return Conclusion.SUCCESS

    # -- driving -----------------------------------------------------------------

    def cancel(self) -> list[str]:
        """Cancel the run: queued instances end cancelled; returns running keys to stop."""
        self._cancelled = True
        running: list[str] = []
        for node in self._nodes.values():
            if node.result is not None:
                continue
            if not node.expanded:
                node.expanded = True
                node.result = self._skipped(node.job, Conclusion.CANCELLED)
                continue
            for inst in node.instances:
                if inst.state is InstanceState.QUEUED:
                    self._finish_instance(inst, Conclusion.CANCELLED)
                elif inst.state is InstanceState.RUNNING:
                    running.append(inst.request.key)
            self._fold(node)
        return running

    def ready(self) -> list[JobRequest]:
        """Job instances that may start now; each is marked running when returned."""
        progressed = True
        while progressed:
            progressed = False
            for node in self._nodes.values():
                if not node.expanded and self._needs_done(node.job):
                    self._expand(node)
                    progressed = True
        out: list[JobRequest] = []
        for node in self._nodes.values():
            if node.result is not None:
                continue
            running = sum(1 for i in node.instances if i.state is InstanceState.RUNNING)
            for inst in node.instances:
                if inst.state is not InstanceState.QUEUED:
                    continue
                if node.max_parallel is not None and running >= node.max_parallel:
                    break
                inst.move(InstanceState.RUNNING)
                running += 1
                out.append(inst.request)
        return out

    def finish(self, key: str, result: JobResult) -> list[str]:
        """Record a finished instance; returns keys of running instances to cancel (fail-fast)."""
        for node in self._nodes.values():
            for inst in node.instances:
                if inst.request.key != key:
                    continue
                inst.move(InstanceState.DONE)
                inst.result = result
                to_cancel: list[str] = []
                failed = result.conclusion is Conclusion.FAILURE
                if failed and node.fail_fast and not inst.request.continue_on_error:
                    for other in node.instances:
                        if other.state is InstanceState.QUEUED:
                            self._finish_instance(other, Conclusion.CANCELLED)
                        elif other.state is InstanceState.RUNNING:
                            to_cancel.append(other.request.key)
                self._fold(node)
                return to_cancel
        raise KeyError(key)

    # -- internals ---------------------------------------------------------------

    def _needs_done(self, job: Job) -> bool:
        return all(self._nodes[n].result is not None for n in job.needs if n in self._nodes)

    def _needs_context(self, job: Job) -> dict[str, Any]:
        needs: dict[str, Any] = {}
        for n in job.needs:
            node = self._nodes.get(n)
            if node is None or node.result is None:
                continue
            result = node.result
            conclusion = result.conclusion
            if conclusion is Conclusion.FAILURE and self._continued(node):
                conclusion = Conclusion.SUCCESS
            needs[n] = {"result": conclusion.value, "outputs": dict(result.outputs)}
        return needs

    def _continued(self, node: _JobNode) -> bool:
        failed = [i for i in node.instances if i.result and i.result.conclusion is Conclusion.FAILURE]
        return bool(failed) and all(i.request.continue_on_error for i in failed)

    def _ancestors(self, job: Job) -> set[str]:
        seen: set[str] = set()
        stack = list(job.needs)
        while stack:
            jid = stack.pop()
            if jid in seen or jid not in self._nodes:
                continue
            seen.add(jid)
            stack.extend(self._nodes[jid].job.needs)
        return seen

    def _status(self, job: Job) -> Callable[[str], bool]:
        needs = [self._nodes[n] for n in job.needs if n in self._nodes]
        ancestors = [self._nodes[n] for n in self._ancestors(job)]

        def ok(node: _JobNode) -> bool:
            r = node.result
            return r is not None and (
                r.conclusion is Conclusion.SUCCESS
                or (r.conclusion is Conclusion.FAILURE and self._continued(node))
            )

        def status(name: str) -> bool:
            if name == "always":
                return True
            if name == "cancelled":
                return self._cancelled
            failed = any(
                n.result is not None
                and n.result.conclusion is Conclusion.FAILURE
                and not self._continued(n)
                for n in ancestors
            )
            if name == "failure":
                return failed
            return not self._cancelled and all(ok(n) for n in needs)

        return status

    def _ctx(self, job: Job, **extra: Any) -> EvalContext:
        contexts = dict(self._contexts)
        contexts["needs"] = self._needs_context(job)
        contexts.update(extra)
        return EvalContext(contexts, status=self._status(job), hash_files=self._hash_files)

    def _expand(self, node: _JobNode) -> None:
        node.expanded = True
        job = node.job
        ctx = self._ctx(job)
        run = True
        if self._cancelled:
            node.result = self._skipped(job, Conclusion.CANCELLED)
            return
        if job.condition is not None:
            try:
                run = is_truthy(job.condition.expression.evaluate(ctx))
            except ExpressionError as err:
                node.result = self._failed(job, f"{job.condition.location}: {err.message}")
                return
        elif not self._status(job)("success"):
            run = False
        if not run:
            node.result = self._skipped(job, Conclusion.SKIPPED)
            return
        try:
            combos = expand_matrix(job.strategy, ctx)
            strategy = job.strategy
            fail_fast = True
            max_parallel: int | None = None
            if strategy is not None:
                fail_fast = is_truthy(evaluate_value(strategy.fail_fast, ctx))
                mp = evaluate_value(strategy.max_parallel, ctx)
                if mp is not None:
                    max_parallel = max(1, int(float(mp)))
        except LocatedError as err:
            node.result = self._failed(job, str(err))
            return
        except (TypeError, ValueError) as err:
            node.result = self._failed(job, f"bad strategy: {err}")
            return
        node.fail_fast = fail_fast
        node.max_parallel = max_parallel
        if self._matrix_filter:
            combos = [c for c in combos if self._keep(c)]
            if not combos:
                node.result = self._skipped(job, Conclusion.SKIPPED)
                return
        total = len(combos)
        seen_keys: set[str] = set()
        for index, combo in enumerate(combos):
            strategy_ctx = {
                "fail-fast": fail_fast,
                "job-index": index,
                "job-total": total,
                "max-parallel": max_parallel if max_parallel is not None else total,
            }
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
            key = name
            n = 2
            while key in seen_keys:
                key = f"{name} #{n}"
                n += 1
            seen_keys.add(key)
            contexts = dict(self._contexts)
            contexts.update(
                needs=self._needs_context(job), matrix=combo, strategy=strategy_ctx
            )
            request = JobRequest(
                workflow=self.workflow, job=job, key=key, name=name, contexts=contexts,
                source=self.source, labels=labels, continue_on_error=continue_on_error,
                run_id=self.run_id, run_attempt=self.run_attempt,
            )
            inst = _Instance(request)
            node.instances.append(inst)
            if error is not None:
                inst.move(InstanceState.DONE)
                inst.result = JobResult(
                    key=key, job_id=job.id, name=name, conclusion=Conclusion.FAILURE,
                    matrix=combo, error=error,
                )
        self._fold(node)

    def _keep(self, combo: Mapping[str, Any]) -> bool:
        for key, want in self._matrix_filter.items():
            if key in combo and to_string(combo[key]) != want:
                return False
        return True

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

    def _finish_instance(self, inst: _Instance, conclusion: Conclusion) -> None:
        inst.move(InstanceState.DONE)
        req = inst.request
        inst.result = JobResult(
            key=req.key, job_id=req.job.id, name=req.name, conclusion=conclusion,
            matrix=dict(req.contexts.get("matrix") or {}),
        )

    def _fold(self, node: _JobNode) -> None:
        """Set the job's aggregate result once every instance is done."""
        if node.result is not None or not node.expanded:
            return
        if any(i.state is not InstanceState.DONE for i in node.instances):
            return
        results = [i.result for i in node.instances if i.result is not None]
        conclusions = {r.conclusion for r in results}
        if Conclusion.FAILURE in conclusions:
            conclusion = Conclusion.FAILURE
        elif Conclusion.CANCELLED in conclusions:
            conclusion = Conclusion.CANCELLED
        elif conclusions == {Conclusion.SKIPPED}:
            conclusion = Conclusion.SKIPPED
        else:
            conclusion = Conclusion.SUCCESS
        outputs: dict[str, str] = {}
        for r in results:  # GitHub: the last leg to set an output wins
            outputs.update({k: v for k, v in r.outputs.items() if v != ""})
        node.result = JobResult(
            key=node.job.id, job_id=node.job.id, name=node.job.id, conclusion=conclusion,
            outputs=outputs,
        )

    def _skipped(self, job: Job, conclusion: Conclusion) -> JobResult:
        return JobResult(key=job.id, job_id=job.id, name=job.id, conclusion=conclusion)

    def _failed(self, job: Job, error: str) -> JobResult:
        return JobResult(
            key=job.id, job_id=job.id, name=job.id, conclusion=Conclusion.FAILURE, error=error
        )
