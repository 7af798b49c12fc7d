"""Run plans of pipelines, kept in memory and rebuilt from the database at need.

A pipeline's job graph is a :class:`~shipyard.workflow._plan.RunPlan` (the same state
machine ``shipyard run`` drives). The database holds what the plan needs to be built
again — the workflow text, the reusable workflows it calls, the run contexts — and every
finished job's result. Rebuilding replays those results: each round of ``ready()``
hands out the units whose needs are met, and the ones with a stored result are finished
with it, until a round finishes nothing. What is left running is what the database
holds as queued or running.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from shipyard.errors import LocatedError, Location, ValidationError
from shipyard.workflow._model import Workflow
from shipyard.workflow._parser import load_workflow
from shipyard.workflow._plan import RunPlan, evaluate_value
from shipyard.workflow._reusable import workflow_key
from shipyard.workflow._runtime import Conclusion as PlanConclusion
from shipyard.workflow._runtime import JobRequest, JobResult
from shipyard.workflow.expressions import EvalContext, ExpressionError, is_truthy, to_string

__all__ = [
    "ActivePlan",
    "JobSpec",
    "PlanSource",
    "build_plan",
    "called_workflows",
    "dumps",
    "job_spec",
    "result_of",
    "source_of",
    "top_job_id",
]

DEFAULT_TIMEOUT_MINUTES = 360.0


def dumps(value: Any) -> str:
    """Compact JSON; anything not JSON (it should not happen) becomes its string."""
    return json.dumps(value, separators=(",", ":"), default=str)


@dataclass(frozen=True, slots=True)
class PlanSource:
    """What a pipeline's plan is built from (all of it stored on the pipeline row)."""

    pipeline_id: int
    attempt: int
    path: str
    text: str
    called: Mapping[str, str]
    contexts: Mapping[str, Any]


def _loader(called: Mapping[str, str]) -> Callable[[str], Workflow]:
    def load(uses: str) -> Workflow:
        key = workflow_key(uses)
        text = called.get(key)
        if text is None:
            raise ValidationError([LocatedError("no such workflow file", Location(key, 1, 1))])
        return load_workflow(key, text)

    return load


def source_of(row: Any) -> PlanSource:
    """What a pipeline row's plan is built from (its current attempt)."""
    return PlanSource(
        pipeline_id=row.id, attempt=row.attempt, path=row.workflow, text=row.workflow_text,
        called=json.loads(row.called), contexts=json.loads(row.contexts),
    )


def build_plan(src: PlanSource) -> RunPlan:
    """A fresh plan of the pipeline's attempt (raises ValidationError on a broken file)."""
    workflow = load_workflow(src.path, src.text)
    return RunPlan(
        workflow,
        src.contexts,
        run_id=str(src.pipeline_id),
        run_attempt=src.attempt,
        load_workflow=_loader(src.called),
    )


def called_workflows(workflow: Workflow, files: Mapping[str, str]) -> dict[str, str]:
    """Texts of the local reusable workflows ``workflow`` calls, directly or not.

    ``files`` maps repository paths to file texts; a call of a missing or broken file is
    left for the plan to report (it fails that job, saying why).
    """
    out: dict[str, str] = {}
    stack = [workflow]
    while stack:
        current = stack.pop()
        for job in current.jobs.values():
            if job.uses is None or not job.uses.startswith("./"):
                continue
            key = workflow_key(job.uses)
            if key in out or key not in files:
                continue
            out[key] = files[key]
            try:
                stack.append(load_workflow(key, files[key]))
            except ValidationError:
                continue
    return out


@dataclass(frozen=True, slots=True)
class JobSpec:
    """A job row to insert, made from what the plan handed out."""

    key: str
    job_id: str
    name: str
    matrix: dict[str, Any]
    labels: list[str]
    needs: list[str]
    workflow_path: str
    timeout: float
    continue_on_error: bool
    concurrency_group: str | None
    cancel_in_progress: bool
    assignment: dict[str, Any]
    error: str | None = None


def normalize_labels(labels: Iterable[str]) -> list[str]:
    return sorted({label.strip().lower() for label in labels if label.strip()})


def job_spec(request: JobRequest) -> JobSpec:
    """The row of a job instance ``ready()`` returned; bad ``timeout-minutes`` or
    ``concurrency`` expressions become the job's error (it fails without running)."""
    job = request.job
    ctx = EvalContext(request.contexts)
    error: str | None = None
    timeout = DEFAULT_TIMEOUT_MINUTES
    group: str | None = None
    cancel = False
    try:
        raw = evaluate_value(job.timeout_minutes, ctx)
        minutes = float(raw if isinstance(raw, int | float) else to_string(raw))
        timeout = minutes if minutes > 0 else DEFAULT_TIMEOUT_MINUTES
    except (ExpressionError, ValueError) as err:
        error = f"timeout-minutes: {err}"
    if job.concurrency is not None:
        try:
            group = job.concurrency.group.evaluate_str(ctx) or None
            cancel = is_truthy(evaluate_value(job.concurrency.cancel_in_progress, ctx))
        except ExpressionError as err:
            error = f"{job.concurrency.group.location}: {err.message}"
    return JobSpec(
        key=request.key,
        job_id=job.id,
        name=request.name,
        matrix=dict(request.contexts.get("matrix") or {}),
        labels=normalize_labels(request.labels),
        needs=list(job.needs),
        workflow_path=request.workflow.path,
        timeout=timeout * 60,
        continue_on_error=request.continue_on_error,
        concurrency_group=group,
        cancel_in_progress=cancel,
        assignment={
            "contexts": request.contexts,
            "labels": list(request.labels),
            "run_id": request.run_id,
            "run_attempt": request.run_attempt,
            "timeout_minutes": timeout,
        },
        error=error,
    )


def result_of(row: Any) -> JobResult:
    """The plan's view of a finished job row."""
    return JobResult(
        key=row.key,
        job_id=row.job_id,
        name=row.name,
        conclusion=PlanConclusion(row.conclusion),
        outputs=json.loads(row.outputs),
        matrix=json.loads(row.matrix),
        error=row.error,
    )


def top_job_id(plan: RunPlan, key: str) -> str:
    """The top-level workflow job a unit belongs to (a called workflow's job: its caller)."""
    # The plan keeps, per unit, the graph it lives in; the graphs of called workflows
    # point at the call above them.
    entry = plan._units.get(key)
    if entry is None:
        return key.split(" / ", 1)[0]
    graph, node, _ = entry
    job_id = node.job.id
    while graph.parent is not None:
        graph, node, _ = graph.parent
        job_id = node.job.id
    return job_id


@dataclass(slots=True)
class ActivePlan:
    """The plan of one pipeline attempt and what of it the database holds.

    ``rows`` maps unit keys to job row ids; ``version`` is the pipeline row's
    ``version`` this copy matches.
    """

    pipeline_id: int
    attempt: int
    version: int
    plan: RunPlan
    rows: dict[str, int] = field(default_factory=dict)
    finished: set[str] = field(default_factory=set)
    needed: frozenset[str] = field(init=False)

    def __post_init__(self) -> None:
        self.needed = frozenset(n for job in self.plan.workflow.jobs.values() for n in job.needs)

    def settles_alone(self, key: str) -> bool:
        """Whether finishing unit ``key`` can start nothing new and decide nothing more.

        True for a top-level job no other job needs and no ``max-parallel`` holds back:
        then its end expands no job and releases no held leg, so the caller may skip
        the plan's walk over the whole graph (which makes wide pipelines quadratic).
        """
        entry = self.plan._units.get(key)
        if entry is None:
            return False
        graph, node, _ = entry
        return graph.parent is None and node.job.id not in self.needed and node.max_parallel is None

    def replay(self, results: Mapping[str, JobResult]) -> list[JobRequest]:
        """Finish the units with a stored result; returns what is still handed out."""
        out: dict[str, JobRequest] = {}
        while True:
            progressed = False
            for request in self.plan.ready():
                result = results.get(request.key)
                if result is None:
                    out[request.key] = request
                    continue
                self.plan.finish(request.key, result)
                progressed = True
            if not progressed:
                break
        return [r for k, r in out.items() if k not in results]

    def unrecorded_results(self) -> list[JobResult]:
        """Results the plan produced itself (skipped, cancelled, failed to plan) with no row."""
        return [r for r in self.plan.instance_results() if r.key not in self.rows]

    @property
    def done(self) -> bool:
        return self.plan.done

    def conclusion(self) -> str:
        return self.plan.conclusion().value
