"""The runner agent: register, claim jobs while a slot is free, run each, report back.

::

    agent = Agent("http://ci.example:8080", registration_token, concurrency=4)
    agent.run()          # until agent.stop(): the CLI calls it on SIGINT/SIGTERM

Threads: ``run()`` waits while one claim thread long-polls ``POST /runners/claim``
(``wait`` from the registration, ``slots`` = free slots) whenever a slot is free; each
claimed job runs in its own thread with its own :class:`~shipyard.runner.JobStream`
(one uploader thread per job); one heartbeat thread reports every running job each
``heartbeat_interval`` and cancels those the server asks to cancel. A job keeps its
slot until its whole log is shipped, though ci may have its result sooner (a stream
completes a job before sending the end of a long log), so a stopping agent still sends
every byte; its heartbeats go on meanwhile and keep ci from taking the log as lost.

The server is reached at ``<server>/api/v1`` (the gateway's routes); pass ``api_url``
to talk to services that serve the routes without the prefix. A server that is down
or answers nonsense is retried with backoff, never fatal; only a token the server
refuses (401/403) ends :meth:`Agent.run` with the error.

:meth:`Agent.stop` stops claiming and lets running jobs finish: it drains the runner
(``POST /runners/drain``), so ci ends a long-polling claim at once and hands the runner
no more jobs; a job ci handed out just before the drain still comes back with the claim
and is run, so nothing is lost and an idle agent stops in a moment. When ci cannot be
told (down, or too old to drain), the pending claim is waited for instead. A second
call cancels running jobs and abandons the claim.

Jobs of one agent run side by side, each in a working folder of its own slot
(``<work_dir>/work/<slot>``, emptied after each job); tools that setup actions install
are kept in ``<work_dir>/tool_cache`` and shared.
"""

from __future__ import annotations

import base64
import contextlib
import json
import logging
import os
import re
import secrets
import shutil
import socket
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import httpx
import pydantic

from shipyard import __version__
from shipyard.errors import (
    AuthError,
    ConflictError,
    ForbiddenError,
    NotFoundError,
    RequestError,
    ShipyardError,
    UnavailableError,
)
from shipyard.runner._assignment import Assignment, WorkflowCache, build_job_request
from shipyard.runner._log import JobStream
from shipyard.runner._protocol import Backoff, RunnerApi
from shipyard.workflow.executors import Executor, get_executor

__all__ = ["DEFAULT_LABELS", "Agent", "AgentListener", "ServicesFactory", "runner_id_of"]

log = logging.getLogger("shipyard.runner")

# Drain is one quick write; a ci that takes longer is treated as one that cannot drain.
_DRAIN_TIMEOUT = 5.0

DEFAULT_LABELS: tuple[str, ...] = (
    "self-hosted", "linux", "x64", "ubuntu-latest", "ubuntu-24.04", "ubuntu-22.04",
)
"""Labels an agent serves unless told otherwise, so GitHub workflows run unchanged."""

ServicesFactory = Callable[[Assignment], Any]
"""Builds a job's ``RunServices`` (artifact and cache stores) from its assignment."""


class AgentListener(Protocol):
    """What an agent tells whoever shows its progress (the CLI prints one line each)."""

    def registered(self, agent: Agent) -> None: ...

    def job_started(self, assignment: Assignment) -> None: ...

    def job_finished(self, assignment: Assignment, conclusion: str, duration: float) -> None: ...


class _Quiet:
    def registered(self, agent: Agent) -> None:
        pass

    def job_started(self, assignment: Assignment) -> None:
        pass

    def job_finished(self, assignment: Assignment, conclusion: str, duration: float) -> None:
        pass


@dataclass(slots=True)
class _Running:
    job_id: int
    token: str
    slot: int
    cancel: threading.Event = field(default_factory=threading.Event)
    stream: JobStream | None = None


def runner_id_of(token: str) -> int | None:
    """The id in a token's ``runner:<id>`` scope (read, not verified), if it has one."""
    if not token.startswith("sy_") or token.count(".") != 1:
        return None
    payload = token[3:].split(".", 1)[0]
    try:
        body = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
        scopes = body["scopes"]
    except (ValueError, KeyError, TypeError):
        return None
    if not isinstance(scopes, list):
        return None
    for scope in scopes:
        kind, _, rest = str(scope).partition(":")
        if kind == "runner" and rest.isdigit():
            return int(rest)
    return None


def _default_name() -> str:
    return f"{socket.gethostname()}-{os.getpid()}"


def _clean_labels(labels: Sequence[str]) -> list[str]:
    out: list[str] = []
    for label in labels:
        for part in label.split(","):
            part = part.strip()
            if part and part not in out:
                out.append(part)
    return out


class Agent:
    """A runner agent serving ``concurrency`` jobs at once (see the module docstring).

    ``token`` is a registration token (the agent registers and uses the runner token it
    gets back) or a runner token (scope ``runner:<id>``), used as it is. ``labels``
    replace :data:`DEFAULT_LABELS`; ``executor`` is a name for
    :func:`~shipyard.workflow.executors.get_executor` or an executor; ``work_dir``
    defaults to ``~/.shipyard/runner/<name>``. ``api_url`` overrides ``<server>/api/v1``
    for the runner protocol and ``store_url`` (default: ``api_url``) for artifacts and
    caches: runners started by ``shipyard up`` talk to ci and store directly, sparing
    every job's requests a hop through the gateway; ``claim_wait`` and ``heartbeat_interval`` override
    what the registration answers. ``services`` builds each job's artifact and cache
    stores (default: the store service with the job's token); ``listener`` hears of
    registration and of each job's start and end.
    """

    def __init__(
        self,
        server: str,
        token: str,
        *,
        name: str | None = None,
        labels: Sequence[str] | None = None,
        concurrency: int = 1,
        executor: str | Executor = "local",
        work_dir: Path | None = None,
        http: httpx.Client | None = None,
        api_url: str | None = None,
        store_url: str | None = None,
        claim_wait: float | None = None,
        heartbeat_interval: float | None = None,
        services: ServicesFactory | None = None,
        listener: AgentListener | None = None,
    ) -> None:
        if concurrency < 1:
            raise ValueError("concurrency must be at least 1")
        self.server = server.rstrip("/")
        self.api_url = (api_url or f"{self.server}/api/v1").rstrip("/")
        self.store_url = (store_url or self.api_url).rstrip("/")
        self.name = name or _default_name()
        self.labels = _clean_labels(DEFAULT_LABELS if labels is None else labels)
        self.concurrency = concurrency
        if isinstance(executor, str):
            self.executor_name = executor
            self.executor = get_executor(executor)
        else:
            self.executor_name = type(executor).__name__.removesuffix("Executor").lower()
            self.executor = executor
        safe = re.sub(r"[^A-Za-z0-9_.-]+", "-", self.name).strip("-.") or "runner"
        self.work_dir = Path(work_dir) if work_dir else Path.home() / ".shipyard" / "runner" / safe
        self._own_http = http is None
        self.http = http or httpx.Client(
            limits=httpx.Limits(max_connections=4 * concurrency + 8,
                                max_keepalive_connections=2 * concurrency + 4),
        )
        self.api = RunnerApi(self.http, self.api_url)
        self._token = token
        self.runner_id: int | None = None
        self.runner_token: str | None = None
        self.claim_wait = claim_wait
        self.heartbeat_interval = heartbeat_interval
        self._services = services
        self.listener: AgentListener = listener or _Quiet()
        self._workflows = WorkflowCache()
        self._cond = threading.Condition()
        self._free_slots = list(range(concurrency - 1, -1, -1))
        self._running: dict[int, _Running] = {}
        self._stopping = threading.Event()
        self._forced = threading.Event()
        self._idle = threading.Event()
        self._drainer: threading.Thread | None = None
        self.drained = False  # ci acknowledged the drain: no claim of ours gets a job
        self.jobs_run = 0
        self.claim_pending = False  # a claim is long-polling now

    # -- control ---------------------------------------------------------------------

    def stop(self, force: bool = False) -> None:
        """Stop claiming and let running jobs finish; a second call (or ``force``) cancels them.

        The first call drains the runner from a thread (signal handlers call this, so it
        never blocks); the pending claim then ends at once, maybe with a job ci handed
        out just before, which is run. If ci cannot be told, the claim is waited for.
        The second call abandons it.
        """
        first = not self._stopping.is_set()
        if force or not first:
            self._forced.set()
            with self._cond:
                for running in self._running.values():
                    running.cancel.set()
        self._stopping.set()
        token = self.runner_token
        if first and not force and token is not None:
            self._drainer = threading.Thread(
                target=self._drain, args=(token,), name="drain", daemon=True
            )
            self._drainer.start()
        with self._cond:
            self._cond.notify_all()

    def _drain(self, token: str) -> None:
        try:
            self.api.drain(token, timeout=_DRAIN_TIMEOUT)
        except RequestError as err:
            log.warning("ci was not told this runner stops (%s); waiting for the pending claim",
                        err)
            return
        self.drained = True

    @property
    def stopping(self) -> bool:
        return self._stopping.is_set()

    def running_jobs(self) -> list[int]:
        with self._cond:
            return sorted(self._running)

    def run(self) -> None:
        """Register, then serve jobs until :meth:`stop`; returns once running jobs ended.

        Raises :class:`~shipyard.errors.AuthError` or another
        :class:`~shipyard.errors.RequestError` when the server refuses the token or the
        registration.
        """
        try:
            if not self._register():
                return
            self.listener.registered(self)
            error: list[RequestError] = []
            beats = threading.Thread(target=self._heartbeats, name="heartbeats", daemon=True)
            claims = threading.Thread(
                target=self._claims, args=(error,), name="claims", daemon=True
            )
            beats.start()
            claims.start()
            with self._cond:
                while (claims.is_alive() and not self._forced.is_set()) or self._running:
                    self._cond.wait(0.5)
            self._idle.set()
            beats.join(5)
            if error:
                raise error[0]
        finally:
            self._idle.set()
            drainer = self._drainer
            if drainer is not None:  # not cut short by closing the client under it
                drainer.join(_DRAIN_TIMEOUT + 1)
            if self._own_http:
                # A claim still long-polling (only after a forced stop) fails and ends.
                self.http.close()

    # -- registration --------------------------------------------------------------------

    def _register(self) -> bool:
        runner_id = runner_id_of(self._token)
        if runner_id is not None:
            self.claim_wait = self.claim_wait if self.claim_wait is not None else 25.0
            self.heartbeat_interval = self.heartbeat_interval or 10.0
            if not self._resume():
                return False
            self.runner_id, self.runner_token = runner_id, self._token
            return True
        backoff = Backoff(first=0.5, limit=30.0)
        while not self._stopping.is_set():
            try:
                reg = self.api.register(
                    self._token, name=self.name, labels=self.labels,
                    concurrency=self.concurrency, executor=self.executor_name,
                    version=__version__,
                )
            except UnavailableError as err:
                log.warning("%s; retrying", err)
                backoff.wait(self._stopping)
                continue
            self.runner_id, self.runner_token = reg.id, reg.token
            if self.claim_wait is None:
                self.claim_wait = reg.claim_wait
            if self.heartbeat_interval is None:
                self.heartbeat_interval = reg.heartbeat_interval
            return True
        return False

    def _resume(self) -> bool:
        """Undo the drain of the agent that last used this runner token (False: stopped)."""
        backoff = Backoff(first=0.5, limit=30.0)
        while not self._stopping.is_set():
            try:
                self.api.resume(self._token)
            except UnavailableError as err:
                log.warning("%s; retrying", err)
                backoff.wait(self._stopping)
                continue
            except NotFoundError:
                pass  # a ci that cannot drain has nothing to undo
            except (AuthError, ForbiddenError):
                raise
            except RequestError as err:  # the claims will tell whether it matters
                log.warning("%s", err)
            return True
        return False

    # -- claiming ------------------------------------------------------------------------

    def _claims(self, error: list[RequestError]) -> None:
        assert self.runner_token is not None
        backoff = Backoff(first=0.5, limit=30.0)
        wait = self.claim_wait if self.claim_wait is not None else 25.0
        # A claim keeps its id until it is answered: asked again after no answer (ci died
        # or the connection broke once the claim was recorded), ci hands over the job
        # the lost answer carried instead of leaving it to fail as lost.
        claim_id: str | None = None
        again = False
        while not self._stopping.is_set():
            with self._cond:
                while not self._free_slots and not self._stopping.is_set():
                    self._cond.wait(1.0)
                free = len(self._free_slots)
            if self._stopping.is_set():
                break
            self.claim_pending = True
            asked = time.monotonic()
            if claim_id is None:
                claim_id, again = secrets.token_urlsafe(12), False
            try:
                data = self.api.claim(self.runner_token, wait=wait, slots=free,
                                      claim_id=claim_id, again=again)
            except UnavailableError as err:
                if self._stopping.is_set():
                    break
                log.warning("%s; retrying", err)
                again = True
                backoff.wait(self._stopping)
                continue
            except (AuthError, ForbiddenError) as err:
                log.error("the server refuses this runner's token: %s", err)
                error.append(err)
                self.stop()
                break
            except RequestError as err:
                log.error("%s; retrying", err)
                claim_id = None
                backoff.wait(self._stopping)
                continue
            finally:
                self.claim_pending = False
            claim_id = None  # answered
            if data is not None:
                backoff.reset()
                self._start(data)
            elif time.monotonic() - asked < wait / 2 and not self._stopping.is_set():
                # An empty answer at once: the runner drains though this agent is not
                # stopping (another agent on its token stopped). No tight loop.
                if not backoff.failures:
                    log.warning("ci ends this runner's claims at once (is it draining?)")
                backoff.wait(self._stopping)
            else:
                backoff.reset()
        with self._cond:
            self._cond.notify_all()

    def _start(self, data: dict[str, Any]) -> None:
        try:
            assignment = Assignment.model_validate(data)
        except pydantic.ValidationError as err:
            self._reject(data, err)
            return
        with self._cond:
            slot = self._free_slots.pop() if self._free_slots else self.concurrency + len(self._running)
            running = _Running(assignment.job_id, assignment.token, slot)
            if self._forced.is_set():
                running.cancel.set()
            self._running[assignment.job_id] = running
        thread = threading.Thread(
            target=self._run_job, args=(assignment, running), name=f"job-{assignment.job_id}",
            daemon=True,
        )
        thread.start()

    def _reject(self, data: dict[str, Any], err: pydantic.ValidationError) -> None:
        """An assignment the agent cannot read: fail the job if it can say which one."""
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in err.errors()[:5]
        )
        job_id, token = data.get("job_id"), data.get("token")
        log.error("the server sent an assignment the runner cannot read: %s", problems)
        if not isinstance(job_id, int) or not isinstance(token, str):
            return
        # The stream's own thread sends the failure; the claim loop goes on meanwhile.
        stream = JobStream(self.api, job_id, token, abort=self._forced).start()
        stream.fail(str(job_id), str(job_id), f"the runner could not read the job: {problems}")

    # -- one job -------------------------------------------------------------------------

    def _run_job(self, assignment: Assignment, running: _Running) -> None:
        started = time.monotonic()
        conclusion = "failure"
        work_root = self.work_dir / "work" / str(running.slot)
        try:
            stream = JobStream(
                self.api, assignment.job_id, assignment.token, cancel=running.cancel,
                abort=self._forced,
            ).start()
            running.stream = stream
            self.listener.job_started(assignment)
            stream.write(*self._header(assignment))
            try:
                self._execute(assignment, running, stream, work_root)
            except Exception as err:  # a bug must not keep the slot or the job hanging
                log.exception("job %s failed inside the runner", assignment.job_id)
                if stream.result is None:
                    stream.fail(assignment.key, assignment.name,
                                f"internal error in the runner: {type(err).__name__}: {err}")
            stream.wait()
            if stream.result is not None:
                conclusion = stream.result.conclusion.value
        finally:
            shutil.rmtree(work_root, ignore_errors=True)
            with contextlib.suppress(Exception):  # the listener only displays
                self.listener.job_finished(assignment, conclusion, time.monotonic() - started)
            with self._cond:
                self._running.pop(assignment.job_id, None)
                if running.slot < self.concurrency:
                    self._free_slots.append(running.slot)
                self.jobs_run += 1
                self._cond.notify_all()

    def _header(self, a: Assignment) -> list[str]:
        return [
            "##[group]Set up job",
            f"Runner {self.name} (executor {self.executor_name}); job {a.job_id} "
            f"\"{a.name}\", attempt {a.attempt}",
            f"Commit {a.sha} ({a.ref}) of {a.repo}",
            "##[endgroup]",
        ]

    def _execute(
        self, assignment: Assignment, running: _Running, stream: JobStream, work_root: Path
    ) -> None:
        from shipyard.workflow.runner import JobRunner

        try:
            request = build_job_request(assignment, self._workflows)
            services = self._job_services(assignment, work_root)
        except ShipyardError as err:
            stream.fail(assignment.key, assignment.name, str(err))
            return
        runner = JobRunner(
            self.executor, stream, services=services, work_root=work_root,
            tool_cache=self.work_dir / "tool_cache", runner_name=self.name, labels=self.labels,
        )
        runner.run(request, running.cancel)

    def _job_services(self, assignment: Assignment, work_root: Path) -> Any:
        if self._services is not None:
            return self._services(assignment)
        from shipyard.runner._services import store_services

        scratch = work_root / "_store"
        scratch.mkdir(parents=True, exist_ok=True)
        return store_services(self.http, self.store_url, assignment, scratch)

    # -- heartbeats ----------------------------------------------------------------------

    def _heartbeats(self) -> None:
        assert self.runner_token is not None
        interval = self.heartbeat_interval or 10.0
        failures = 0
        while not self._idle.wait(interval):
            with self._cond:
                jobs = list(self._running.values())
            for running in jobs:
                if running.stream is not None and running.stream.done:
                    continue
                try:
                    cancel = self.api.heartbeat(self.runner_token, running.job_id,
                                                timeout=max(5.0, interval))
                except UnavailableError as err:
                    failures += 1
                    if failures in (1, 5) or failures % 50 == 0:
                        log.warning("%s", err)
                    continue
                except (NotFoundError, ConflictError) as err:
                    log.warning("job %s is over for the server (%s); stopping it",
                                running.job_id, err)
                    running.cancel.set()
                    continue
                except RequestError as err:
                    log.warning("%s", err)
                    continue
                failures = 0
                if cancel and not running.cancel.is_set():
                    log.info("job %s: cancel requested by the server", running.job_id)
                    running.cancel.set()
