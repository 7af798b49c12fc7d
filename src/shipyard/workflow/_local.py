"""``shipyard run``: plan and run a checkout's workflows in one process, with no server.

The same :class:`~shipyard.workflow._plan.RunPlan` the ci service uses decides what may
start; a thread pool stands in for the runners, each thread running one job with the
same :class:`~shipyard.workflow.runner.JobRunner` the runner agent uses.
"""

from __future__ import annotations

import concurrent.futures as cf
import os
import secrets as _secrets
import shutil
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from shipyard.errors import ValidationError, WorkflowError
from shipyard.workflow._gitinfo import RepoInfo, find_repo_root, github_context, repo_info
from shipyard.workflow._model import Workflow
from shipyard.workflow._plan import RunPlan
from shipyard.workflow._runtime import CheckoutSource, Conclusion, JobResult, Reporter


def shipyard_home() -> Path:
    """Where local runs keep their caches, artifacts and logs (``SHIPYARD_HOME``)."""
    env = os.environ.get("SHIPYARD_HOME")
    return Path(env) if env else Path.home() / ".shipyard"


@dataclass(slots=True)
class LocalRunOptions:
    """What ``shipyard run`` was asked to do."""

    directory: Path = field(default_factory=Path.cwd)
    workflows: Sequence[str] = ()
    jobs: Sequence[str] = ()
    matrix: Mapping[str, str] = field(default_factory=dict)
    event: str = "push"
    inputs: Mapping[str, str] = field(default_factory=dict)
    secrets: Mapping[str, str] = field(default_factory=dict)
    vars: Mapping[str, str] = field(default_factory=dict)
    executor: str = "local"
    network: bool = True
    parallel: int = 0  # 0: one per core
    include_uncommitted: bool = False
    keep_workspace: bool = False
    home: Path | None = None


@dataclass(slots=True)
class WorkflowRun:
    workflow: Workflow
    conclusion: Conclusion
    jobs: list[JobResult]
    duration: float
    errors: list[str] = field(default_factory=list)


@dataclass(slots=True)
class LocalRunResult:
    run_id: str
    sha: str
    ref: str
    event: str
    runs: list[WorkflowRun]
    run_dir: Path
    duration: float

    @property
    def conclusion(self) -> Conclusion:
        if not self.runs:
            return Conclusion.SKIPPED
        if any(r.conclusion is Conclusion.FAILURE for r in self.runs):
            return Conclusion.FAILURE
        if any(r.conclusion is Conclusion.CANCELLED for r in self.runs):
            return Conclusion.CANCELLED
        return Conclusion.SUCCESS

    def to_json(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id, "sha": self.sha, "ref": self.ref, "event": self.event,
            "conclusion": self.conclusion.value, "duration": round(self.duration, 3),
            "run_dir": str(self.run_dir),
            "workflows": [
                {
                    "path": r.workflow.path, "name": r.workflow.display_name,
                    "conclusion": r.conclusion.value, "duration": round(r.duration, 3),
                    "errors": r.errors,
                    "jobs": [_job_json(j) for j in r.jobs],
                }
                for r in self.runs
            ],
        }


def _job_json(j: JobResult) -> dict[str, Any]:
    return {
        "key": j.key, "job": j.job_id, "name": j.name, "conclusion": j.conclusion.value,
        "matrix": j.matrix, "outputs": j.outputs, "duration": round(j.duration, 3),
        "error": j.error,
        "annotations": [
            {k: v for k, v in asdict(a).items() if v is not None} for a in j.annotations
        ],
        "steps": [
            {
                "index": s.index, "id": s.id, "name": s.name, "outcome": s.outcome.value,
                "conclusion": s.conclusion.value, "outputs": s.outputs,
                "duration": round(s.duration, 3), "error": s.error,
            }
            for s in j.steps
        ],
    }


def load_workflows(root: Path, selected: Sequence[str] = ()) -> list[Workflow]:
    """Parse the repository's workflows (or the selected files); all errors at once."""
    from shipyard.workflow._parser import discover_workflows, load_workflow

    if selected:
        paths = []
        for name in selected:
            p = Path(name)
            candidates = [p, root / p, root / ".github/workflows" / p, root / ".shipyard/workflows" / p]
            found = next((c for c in candidates if c.is_file()), None)
            if found is None:
                raise WorkflowError(f"no workflow file '{name}' in {root}")
            paths.append(found.resolve())
    else:
        paths = discover_workflows(root)
    workflows: list[Workflow] = []
    errors = []
    for path in paths:
        display = os.path.relpath(path, root)
        try:
            workflows.append(load_workflow(path, display_path=display))
        except ValidationError as err:
            errors.extend(err.errors)
    if errors:
        raise ValidationError(errors)
    return workflows


class LocalRun:
    """One ``shipyard run``: the matching workflows of a checkout, run to the end."""

    def __init__(self, options: LocalRunOptions, reporter: Reporter) -> None:
        self.options = options
        self.reporter = reporter
        self._cancel_all = threading.Event()
        self._cancel_events: dict[str, threading.Event] = {}
        self._lock = threading.Lock()
        home = options.home or shipyard_home()
        self.run_id = f"{int(time.time())}{_secrets.randbelow(1000):03d}"
        self.run_dir = home / "runs" / self.run_id

    def cancel(self) -> None:
        """Stop everything (Ctrl-C): running jobs are killed, queued ones cancelled."""
        self._cancel_all.set()
        with self._lock:
            for event in self._cancel_events.values():
                event.set()

    def run(self) -> LocalRunResult:
        from shipyard.workflow._triggers import Event, matches, resolve_dispatch_inputs
        from shipyard.workflow.actions import LocalArtifactStore, LocalCacheStore, RunServices
        from shipyard.workflow.actions import hash_files as _hash_files
        from shipyard.workflow.executors import get_executor
        from shipyard.workflow.runner import JobRunner

        opts = self.options
        started = time.monotonic()
        git_root = find_repo_root(opts.directory)
        root, subdir = git_root, ""
        here = opts.directory.resolve()
        if here != git_root and any(
            (here / d).is_dir() for d in (".github/workflows", ".shipyard/workflows")
        ):
            # A project in a folder of a larger repository: its own workflows, and a
            # checkout of just that folder.
            root, subdir = here, here.relative_to(git_root).as_posix()
        workflows = load_workflows(root, opts.workflows)
        info = repo_info(git_root, include_uncommitted=opts.include_uncommitted, subdir=subdir)
        if not info.ref.startswith("refs/"):
            info = _with_ref(info, "refs/heads/main")
        event = Event(
            name=opts.event, ref=info.ref, changed_paths=None, inputs=dict(opts.inputs)
        )
        selected = [w for w in workflows if matches(w, event)]
        if opts.workflows and len(selected) < len(workflows):
            missing = [w.path for w in workflows if w not in selected]
            raise WorkflowError(
                f"{', '.join(missing)} does not run on '{opts.event}' for {info.ref}"
                " (see its 'on:'); pick another --event"
            )
        if not selected:
            raise WorkflowError(
                f"no workflow in {root} runs on '{opts.event}' for {info.ref}"
                f" ({len(workflows)} workflow file(s) found)"
            )
        if opts.jobs:
            selected = [w for w in selected if any(j in w.jobs for j in opts.jobs)]
            if not selected:
                raise WorkflowError(f"no selected workflow has a job named {', '.join(opts.jobs)}")
        executor = get_executor(opts.executor, network=opts.network)
        home = opts.home or shipyard_home()
        run_id, run_dir = self.run_id, self.run_dir
        services = RunServices(
            artifacts=LocalArtifactStore(run_dir / "artifacts"),
            caches=LocalCacheStore(home / "caches"),
        )
        source = CheckoutSource(url=str(git_root), sha=info.sha, ref=info.ref)
        work_root = run_dir / "work"
        runner = JobRunner(
            executor, self.reporter, services=services, work_root=work_root,
            tool_cache=home / "toolcache",
        )
        parallel = opts.parallel or (os.cpu_count() or 2)
        runs: list[WorkflowRun] = []
        try:
            with cf.ThreadPoolExecutor(max_workers=parallel, thread_name_prefix="job") as pool:
                for number, wf in enumerate(selected, start=1):
                    inputs: dict[str, Any] = {}
                    if opts.event == "workflow_dispatch":
                        inputs = resolve_dispatch_inputs(wf, opts.inputs)
                    github = github_context(
                        info, opts.event, inputs, workflow_name=wf.display_name,
                        workflow_path=wf.path, run_id=run_id, run_number=number,
                    )
                    contexts = {
                        "github": github, "inputs": inputs, "vars": dict(opts.vars),
                        "secrets": {"GITHUB_TOKEN": "", **opts.secrets},
                    }
                    plan = RunPlan(
                        wf, contexts, source=source,
                        only_jobs=[j for j in opts.jobs if j in wf.jobs] or None,
                        matrix_filter=opts.matrix, run_id=run_id,
                        hash_files=lambda patterns: _hash_files(root, patterns),
                        load_workflow=lambda uses: _load_called(root, uses),
                    )
                    runs.append(self._drive(plan, pool, runner))
        finally:
            if not opts.keep_workspace:
                shutil.rmtree(work_root, ignore_errors=True)
        return LocalRunResult(
            run_id=run_id, sha=info.sha, ref=info.ref, event=opts.event, runs=runs,
            run_dir=run_dir, duration=time.monotonic() - started,
        )

    def _drive(self, plan: RunPlan, pool: cf.ThreadPoolExecutor, runner: Any) -> WorkflowRun:
        started = time.monotonic()
        futures: dict[cf.Future[JobResult], str] = {}
        reported: set[str] = set()

        def launch() -> None:
            for request in plan.ready():
                cancel = threading.Event()
                if self._cancel_all.is_set():
                    cancel.set()
                with self._lock:
                    self._cancel_events[request.key] = cancel
                futures[pool.submit(runner.run, request, cancel)] = request.key

        if self._cancel_all.is_set():
            plan.cancel()
        launch()
        while futures:
            done, _ = cf.wait(futures, timeout=0.5, return_when=cf.FIRST_COMPLETED)
            if self._cancel_all.is_set():
                plan.cancel()
            for fut in done:
                key = futures.pop(fut)
                try:
                    result = fut.result()
                except Exception as err:  # a runner bug must not hang the run
                    result = JobResult(
                        key=key, job_id=key, name=key, conclusion=Conclusion.FAILURE,
                        error=f"internal error: {type(err).__name__}: {err}",
                    )
                reported.add(key)
                for other in plan.finish(key, result):
                    with self._lock:
                        ev = self._cancel_events.get(other)
                    if ev is not None:
                        ev.set()
            if done:
                launch()
        # Jobs that never ran (skipped, cancelled while queued, failed to plan) are
        # reported too, so every job of the graph shows in the summary.
        for result in plan.instance_results():
            if result.key not in reported:
                self.reporter.job_finished(result.key, result)
        return WorkflowRun(
            workflow=plan.workflow, conclusion=plan.conclusion(),
            jobs=plan.instance_results(), duration=time.monotonic() - started,
            errors=list(plan.errors),
        )


def _load_called(root: Path, uses: str) -> Workflow:
    """The workflow a local ``jobs.<id>.uses: ./<path>`` calls, from the project root."""
    from shipyard.workflow._parser import load_workflow

    relative = uses.removeprefix("./")
    return load_workflow(root / relative, display_path=relative)


def _with_ref(info: RepoInfo, ref: str) -> RepoInfo:
    from dataclasses import replace

    return replace(info, ref=ref)
