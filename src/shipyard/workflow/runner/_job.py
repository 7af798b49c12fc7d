"""Running one job instance from start to end."""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import threading
import time
import traceback
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from shipyard.errors import ShipyardError
from shipyard.workflow._model import Container, Value
from shipyard.workflow._runtime import (
    Annotation,
    Conclusion,
    JobRequest,
    JobResult,
    Reporter,
    StepResult,
)
from shipyard.workflow.executors import ContainerSpec, Executor, JobPaths, JobSpec
from shipyard.workflow.expressions import EvalContext, ExpressionError, to_string
from shipyard.workflow.runner._env import default_env, is_debug, runner_arch
from shipyard.workflow.runner._masking import Masker
from shipyard.workflow.runner._output import JobLog
from shipyard.workflow.runner._process import Limits
from shipyard.workflow.runner._state import BuiltinAction, JobState, StepFailed, located
from shipyard.workflow.runner._step import run_step, timeout_minutes
from shipyard.workflow.runner._uses import ActionHost, StepStopped

# Post steps still run after the job's own time is up, within this much more.
_POST_GRACE = 300.0


def _load_builtin_actions() -> dict[str, BuiltinAction]:
    try:
        from shipyard.workflow import actions
    except ImportError:
        return {}
    found = getattr(actions, "BUILTIN_ACTIONS", {})
    return {name.lower(): action for name, action in dict(found).items()}


def _load_hash_files() -> Callable[[Path, list[str]], str] | None:
    try:
        from shipyard.workflow.actions import hash_files
    except ImportError:
        return None
    return hash_files


def job_dir_name(key: str, workflow: str = "") -> str:
    """A directory name for a job: readable, and distinct for distinct keys and workflows."""
    safe = re.sub(r"[^A-Za-z0-9_.-]+", "-", key).strip("-.")[:48] or "job"
    digest = hashlib.sha1(f"{workflow}\0{key}".encode()).hexdigest()[:8]
    return f"{safe}-{digest}"


class JobRunner:
    """Runs job instances on one executor. Safe to use from several threads at once."""

    def __init__(
        self,
        executor: Executor,
        reporter: Reporter,
        *,
        services: Any = None,
        actions: Mapping[str, BuiltinAction] | None = None,
        work_root: Path,
        tool_cache: Path | None = None,
        runner_name: str = "shipyard",
        labels: Sequence[str] = (),
    ) -> None:
        self.executor = executor
        self.reporter = reporter
        self.services = services
        self._actions = (
            {name.lower(): a for name, a in actions.items()} if actions is not None else None
        )
        self.work_root = Path(work_root)
        self.tool_cache = Path(tool_cache) if tool_cache is not None else self.work_root / "_tool"
        self.runner_name = runner_name
        self.labels = tuple(labels)
        self._arch = runner_arch()

    @property
    def actions(self) -> Mapping[str, BuiltinAction]:
        if self._actions is None:
            self._actions = _load_builtin_actions()
        return self._actions

    def run(self, request: JobRequest, cancel: threading.Event | None = None) -> JobResult:
        """Run ``request`` to its end and return its result (never raises for job failures)."""
        cancel = cancel if cancel is not None else threading.Event()
        t0 = time.monotonic()
        result = JobResult(
            key=request.key,
            job_id=request.job.id,
            name=request.name,
            conclusion=Conclusion.SUCCESS,
            started_at=time.time(),
            matrix=dict(request.contexts.get("matrix") or {}),
        )
        self.reporter.job_started(request.key, request.name)
        try:
            self._run(request, cancel, result)
        except Exception as err:  # a bug in Shipyard must not take the runner down
            result.conclusion = Conclusion.FAILURE
            result.error = f"internal error: {type(err).__name__}: {err}"
            result.annotations.append(
                Annotation(
                    level="error",
                    message=traceback.format_exc(limit=8),
                )
            )
        result.duration = time.monotonic() - t0
        self.reporter.job_finished(request.key, result)
        return result

    # -- the job ---------------------------------------------------------------

    def _run(self, request: JobRequest, cancel: threading.Event, result: JobResult) -> None:
        contexts = request.contexts
        secrets = contexts.get("secrets") or {}
        masker = Masker([v for v in secrets.values() if isinstance(v, str)])
        log = JobLog(
            request.key, self.reporter.log, masker, is_debug(contexts),
            block=getattr(self.reporter, "log_block", None),
        )
        result.annotations = log.annotations
        paths = self._prepare_dirs(request)
        try:
            spec = self._job_spec(request, paths)
            session = self.executor.start_job(spec)
        except (ShipyardError, StepFailed) as err:
            result.conclusion = Conclusion.FAILURE
            result.error = masker.mask(str(err))
            return
        try:
            job = JobState(
                request=request,
                reporter=self.reporter,
                session=session,
                paths=paths,
                masker=masker,
                log=log,
                cancel=cancel,
                actions=self.actions,
                services=self.services,
                hash_files=self._hash_files(paths.workspace),
            )
            self._run_steps(job, result)
        finally:
            session.close()

    def _hash_files(self, workspace: Path) -> Callable[[list[str]], str] | None:
        hash_files = _load_hash_files()
        if hash_files is None:
            return None
        return lambda patterns: hash_files(workspace, patterns)

    def _prepare_dirs(self, request: JobRequest) -> JobPaths:
        # Two workflows of one run may both have a job called "build".
        root = self.work_root / job_dir_name(request.key, request.workflow.path)
        if root.exists():
            shutil.rmtree(root)
        paths = JobPaths.under(root, self.tool_cache)
        paths.create()
        (paths.temp / "_runner_file_commands").mkdir()
        (paths.temp / "_github_workflow").mkdir()
        return paths

    def _job_spec(self, request: JobRequest, paths: JobPaths) -> JobSpec:
        job = request.job
        c = request.contexts
        ctx = EvalContext(
            {
                name: c.get(name) or {}
                for name in (
                    "github",
                    "needs",
                    "strategy",
                    "matrix",
                    "vars",
                    "inputs",
                    "secrets",
                    "env",
                )
            }
        )
        container = _container_spec(job.container, ctx) if job.container is not None else None
        services = {name: _container_spec(svc, ctx) for name, svc in job.services.items()}
        repository = str((c.get("github") or {}).get("repository") or "")
        return JobSpec(
            key=request.key,
            paths=paths,
            repository=repository,
            container=container,
            services=services,
        )

    def _setup_contexts(self, job: JobState) -> None:
        request, paths = job.request, job.paths
        github: dict[str, Any] = dict(request.contexts.get("github") or {})
        event_file = paths.temp / "_github_workflow" / "event.json"
        event_file.write_text(json.dumps(github.get("event") or {}), encoding="utf-8")
        github["workspace"] = job.workspace_view
        github["event_path"] = job.translate(event_file)
        github.setdefault("job", request.job.id)
        github.setdefault("run_id", request.run_id)
        github.setdefault("run_attempt", str(request.run_attempt))
        github.setdefault("event", {})
        token = job.secrets.get("GITHUB_TOKEN")
        if token is not None:
            github.setdefault("token", token)
        job.github = github
        debug = job.log.debug
        job.runner_ctx = {
            "name": self.runner_name,
            "os": "Linux",
            "arch": self._arch,
            "temp": job.temp_view,
            "tool_cache": job.translate(paths.tool_cache),
            "debug": "1" if debug else "",
            "environment": "self-hosted",
        }
        session_ctx = job.session.job_context
        job.job_ctx = {
            "status": "success",
            "container": session_ctx.get("container", {}),
            "services": session_ctx.get("services", {}),
        }
        job.defaults = default_env(
            github,
            job.runner_ctx,
            workspace_parent=os.path.dirname(job.workspace_view),
        )

    def _run_steps(self, job: JobState, result: JobResult) -> None:
        self._setup_contexts(job)
        request = job.request
        env = dict(request.contexts.get("env") or {})
        ctx = job.eval_context(job.root, env)
        try:
            for name, value in request.job.env.items():
                env[name] = job.evaluate_str(value, ctx)
            minutes = timeout_minutes(job, request.job.timeout_minutes, ctx)
        except StepFailed as err:
            result.conclusion = Conclusion.FAILURE
            result.error = job.masker.mask(str(err))
            return
        job.job_env = {k: to_string(v) for k, v in env.items()}
        job.timeout_minutes = minutes
        if minutes is not None:
            job.job_deadline = time.monotonic() + minutes * 60
        for step in request.job.steps:
            result.steps.append(run_step(job, job.root, step, step.index, report=True))
        self._run_post_steps(job, result)
        result.summary = "".join(
            part if part.endswith("\n") else part + "\n" for part in job.summary
        )
        self._job_outputs(job, result)
        if job.root.failed:
            result.conclusion = Conclusion.FAILURE
        elif job.cancel.is_set():
            result.conclusion = Conclusion.CANCELLED
        if job.timed_out:
            result.conclusion = Conclusion.FAILURE
            result.error = f"The job exceeded its timeout of {minutes:g} minutes."
        elif result.conclusion is Conclusion.FAILURE and result.error is None:
            result.error = job.root.first_error

    def _run_post_steps(self, job: JobState, result: JobResult) -> None:
        index = len(job.job.steps)
        while job.post_steps:
            post = job.post_steps.pop()
            title = post.name if post.name.startswith("Post ") else f"Post {post.name}"
            name = job.masker.mask(title)
            job.reporter.step_started(job.key, index, name)
            step = StepResult(
                index=index,
                id=None,
                name=name,
                outcome=Conclusion.SUCCESS,
                conclusion=Conclusion.SUCCESS,
                started_at=time.time(),
            )
            t0 = time.monotonic()
            deadline = max(job.job_deadline or 0.0, t0) + _POST_GRACE
            extra = {f"STATE_{k}": v for k, v in post.state.items()}
            env = job.process_env(job.env_context(job.root), f"__post_{index}", extra)
            host = ActionHost(job, index, env, Limits(step_deadline=deadline))
            error: str | None = None
            try:
                post.fn(host)
            except StepStopped:
                error = "The post step timed out."
            except ShipyardError as err:
                error = str(err)
            except Exception as err:
                for line in traceback.format_exc().rstrip().split("\n"):
                    host.log(line)
                error = f"internal error in post step '{post.name}': {type(err).__name__}: {err}"
            if error is None and host.effects.errors:
                error = host.effects.errors[0]
            if error is not None:
                step.outcome = step.conclusion = Conclusion.FAILURE
                step.error = job.masker.mask(error)
                job.root.failed = True
                if job.root.first_error is None:
                    job.root.first_error = f"step '{name}': {step.error}"
            step.duration = time.monotonic() - t0
            job.reporter.step_finished(job.key, step)
            result.steps.append(step)
            index += 1

    def _job_outputs(self, job: JobState, result: JobResult) -> None:
        outputs = job.job.outputs
        if not outputs:
            return
        ctx = job.eval_context(job.root, job.env_context(job.root))
        for name, value in outputs.items():
            try:
                text = value.evaluate_str(ctx)
            except ExpressionError as err:
                job.log.annotate(
                    Annotation(
                        level="error",
                        message=f"job output '{name}': {located(err, value.location)}",
                    )
                )
                job.root.failed = True
                if job.root.first_error is None:
                    job.root.first_error = f"output '{name}': {located(err, value.location)}"
                continue
            if job.masker and text in job.masker:
                job.log.annotate(
                    Annotation(
                        level="warning",
                        message=f"Skip output '{name}' since it may contain secret.",
                    )
                )
                continue
            result.outputs[name] = text


def _container_spec(container: Container, ctx: EvalContext) -> ContainerSpec:
    def ev(value: Value) -> str:
        try:
            return value.evaluate_str(ctx)
        except ExpressionError as err:
            raise StepFailed(located(err, value.location)) from None

    image = ev(container.image).strip()
    if not image:
        where = f"{container.location}: " if container.location else ""
        raise StepFailed(f"{where}container image is empty")
    return ContainerSpec(
        image=image,
        env={k: ev(v) for k, v in container.env.items()},
        ports=[ev(p) for p in container.ports],
        volumes=[ev(v) for v in container.volumes],
        options=ev(container.options) if container.options is not None else "",
        credentials={k: ev(v) for k, v in container.credentials.items()},
    )
