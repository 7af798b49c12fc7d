"""Runners and the job queue: registration, claims, draining, heartbeats, job tokens.

A claim is one conditional ``UPDATE ... WHERE status = 'queued'`` (on PostgreSQL after
``SELECT ... FOR UPDATE SKIP LOCKED``), so a job is handed out once, whatever the
number of threads or replicas asking.

A stopping runner drains: ``runners.draining`` is set, and the claim's ``UPDATE`` also
requires that the runner is not draining. Whichever commits first wins, on every
replica: a job is either taken before the drain (and the claim brings it to the
runner, which runs it) or not at all.
"""

from __future__ import annotations

import json
import secrets
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, and_, bindparam, insert, select, update

from shipyard.ci import _repo as repo
from shipyard.ci._metrics import CiMetrics
from shipyard.ci._states import JobStatus, PipelineStatus, check_job
from shipyard.ci._tables import jobs, pipelines, runners
from shipyard.errors import AuthError, ConflictError, ForbiddenError, NotFoundError
from shipyard.service import Claims, Database, Settings, TokenSigner

__all__ = ["JobQueue", "LogState", "RunnerDraining", "RunnerInfo"]

IMPLICIT_LABELS = ("self-hosted",)
_HEAD = 16  # queued jobs a claim looks at before searching by label set
_RUNNER_TTL = 1.0  # seconds a runner's row is trusted from memory

# The statements of a claim, built once: building them costs more than running them.
_HEADS = (
    select(jobs.c.id, jobs.c.labels).where(jobs.c.status == JobStatus.QUEUED.value)
    .order_by(jobs.c.id).limit(_HEAD)
)
_HEADS_LOCKED = _HEADS.with_for_update(skip_locked=True)
_DRAINING = select(runners.c.id).where(
    and_(runners.c.id == bindparam("rid"), runners.c.draining.is_(True))
)
_TAKE = (
    update(jobs)
    .where(and_(jobs.c.id == bindparam("jid"), jobs.c.status == JobStatus.QUEUED.value,
                ~_DRAINING.exists()))
    .values(status=JobStatus.RUNNING.value, runner_id=bindparam("rid"),
            started_at=bindparam("now"), heartbeat_at=bindparam("now"),
            deadline=bindparam("now") + jobs.c.timeout, cancel_reason=None,
            claim_id=bindparam("cid"))
    .returning(*jobs.c)
)
# The job a claim took, for the runner asking again with the claim's id.
_TAKEN = (
    update(jobs)
    .where(and_(jobs.c.status == JobStatus.RUNNING.value, jobs.c.runner_id == bindparam("rid"),
                jobs.c.claim_id == bindparam("cid")))
    .values(heartbeat_at=bindparam("now"))
    .returning(*jobs.c)
)
_LOG_STATE = select(
    jobs.c.status, jobs.c.retries, jobs.c.log_base, jobs.c.pipeline_id, jobs.c.log_open,
    jobs.c.log_size,
).where(jobs.c.id == bindparam("jid"))


@dataclass(frozen=True, slots=True)
class RunnerInfo:
    id: int
    name: str
    labels: frozenset[str]  # lower case, implicit ones included
    jti: str = ""  # the id of the token it was found by
    draining: bool = False


@dataclass(frozen=True, slots=True)
class LogState:
    """Where a job's log stands, for a runner appending to it (sizes are absolute)."""

    base: int  # where this hand-out's offsets start
    finished: bool  # the job has completed
    open: bool  # ...and its log still takes appends, up to ``end``
    end: int | None  # the size the log will have (``log_size``), once completed
    pipeline_id: int


class RunnerDraining(Exception):
    """The claiming runner is draining: its claim ends now, without a job."""


@dataclass(frozen=True, slots=True)
class _PipelineInfo:
    repo: str
    sha: str
    ref: str
    workflow: str
    text: str
    called: dict[str, str]


def token_pipeline(claims: Claims) -> int | None:
    """The pipeline a job token was minted for (``None`` for other tokens)."""
    for scope in claims.scopes:
        if scope.startswith("pipeline:"):
            try:
                return int(scope[len("pipeline:"):])
            except ValueError:
                return None
    return None


def job_generation(claims: Claims, job_id: int) -> int | None:
    """Which hand-out of the job a job token was minted for (``None``: not a job token)."""
    prefix = f"job:{job_id}:"
    if claims.subject.startswith(prefix) and f"job:{job_id}" in claims.scopes:
        try:
            return int(claims.subject[len(prefix):])
        except ValueError:
            return None
    return None


class JobQueue:
    """The runner protocol's state: runners, claims, heartbeats."""

    def __init__(
        self, db: Database, settings: Settings, signer: TokenSigner, metrics: CiMetrics,
        *, clock: Callable[[], float] = time.time,
    ) -> None:
        self.db = db
        self.settings = settings
        self.signer = signer
        self.metrics = metrics
        self.clock = clock
        self._pipelines: OrderedDict[int, _PipelineInfo] = OrderedDict()
        self._running: set[tuple[int, int]] = set()
        self._seen: dict[int, float] = {}
        self._label_sets: dict[str, frozenset[str]] = {}
        self._runners: dict[int, tuple[float, Any]] = {}
        self._lock = threading.Lock()

    @property
    def heartbeat_interval(self) -> float:
        return max(0.5, min(30.0, self.settings.heartbeat_timeout / 3))

    @property
    def clone_base(self) -> str:
        base = self.settings.public_url or f"http://127.0.0.1:{self.settings.port}"
        return base.rstrip("/")

    # -- runners ----------------------------------------------------------------------

    def registration_token(self) -> str:
        return self.signer.issue("runner-registration", ["register"], ttl=24 * 3600)

    def register(
        self, name: str, labels: list[str], concurrency: int, executor: str, version: str
    ) -> dict[str, Any]:
        """Register a runner (a name registered again gets a new token; the old one dies)."""
        jti = secrets.token_hex(8)
        now = self.clock()
        clean = sorted({label.strip() for label in labels if label.strip()})
        with self.db.write() as conn:
            existing = conn.execute(
                select(runners.c.id).where(and_(runners.c.name == name, runners.c.deleted.is_(False)))
            ).scalar()
            values = {
                "labels": json.dumps(clean), "concurrency": concurrency, "executor": executor,
                "version": version, "jti": jti, "last_seen": now,
                "draining": False,  # a runner registered again is a new one, serving
            }
            if existing is None:
                runner_id = int(conn.execute(insert(runners).values(
                    name=name, created_at=now, deleted=False, **values
                )).inserted_primary_key[0])  # type: ignore[index]
            else:
                runner_id = int(existing)
                conn.execute(update(runners).where(runners.c.id == runner_id).values(**values))
        self._runners.pop(runner_id, None)
        token = self.signer.issue(f"runner:{runner_id}:{jti}", [f"runner:{runner_id}"])
        return {
            "id": runner_id, "token": token, "heartbeat_interval": self.heartbeat_interval,
            "claim_wait": 30.0,
        }

    def runner_for(self, claims: Claims) -> RunnerInfo:
        """The runner a runner token belongs to; deleted runners and old tokens are refused."""
        parts = claims.subject.split(":")
        if len(parts) != 3 or parts[0] != "runner" or f"runner:{parts[1]}" not in claims.scopes:
            raise ForbiddenError("this needs a runner token")
        try:
            runner_id = int(parts[1])
        except ValueError:
            raise ForbiddenError("this needs a runner token") from None
        row = self._runner_row(runner_id)
        if row is None or row.deleted or row.jti != parts[2]:
            raise AuthError("this runner's token was revoked: register the runner again")
        labels = {label.lower() for label in json.loads(row.labels)}
        labels.update(IMPLICIT_LABELS)
        labels.add(row.name.lower())
        return RunnerInfo(row.id, row.name, frozenset(labels), row.jti, bool(row.draining))

    def _runner_row(self, runner_id: int) -> Any:
        """The runner's row (or ``None``), trusted from memory for ``_RUNNER_TTL`` seconds."""
        cached = self._runners.get(runner_id)
        if cached is not None and time.monotonic() - cached[0] < _RUNNER_TTL:
            return cached[1]
        with repo.peek(self.db) as conn:
            row = conn.execute(
                select(runners.c.id, runners.c.name, runners.c.labels, runners.c.deleted,
                       runners.c.jti, runners.c.draining).where(runners.c.id == runner_id)
            ).first()
        self._runners[runner_id] = (time.monotonic(), row)
        return row

    def set_draining(self, claims: Claims, draining: bool = True) -> int:
        """Mark the token's runner draining (or serving again); its id.

        A draining runner's claims end at once with no job (see :meth:`try_claim`); its
        running jobs go on. The caller wakes the runner's pending claims (topic
        ``runner:<id>``); on other replicas they notice within a poll.
        """
        runner = self.runner_for(claims)
        with self.db.write() as conn:
            # By the token's id too: a registration since then is a runner not to touch.
            result = conn.execute(
                update(runners)
                .where(and_(runners.c.id == runner.id, runners.c.jti == runner.jti,
                            runners.c.deleted.is_(False)))
                .values(draining=draining, last_seen=self.clock())
            )
        self._runners.pop(runner.id, None)
        if result.rowcount != 1:
            raise AuthError("this runner's token was revoked: register the runner again")
        return runner.id

    def seen(self, runner_id: int) -> None:
        """Record that a runner is alive (written at most every few seconds)."""
        now = self.clock()
        with self._lock:
            if now - self._seen.get(runner_id, 0.0) < 5.0:
                return
            self._seen[runner_id] = now
        with self.db.write() as conn:
            conn.execute(update(runners).where(runners.c.id == runner_id).values(last_seen=now))

    def list_runners(self) -> list[dict[str, Any]]:
        now = self.clock()
        window = max(90.0, 3 * self.settings.heartbeat_timeout)
        with self.db.read() as conn:
            rows = conn.execute(
                select(runners).where(runners.c.deleted.is_(False)).order_by(runners.c.id)
            ).all()
            busy: dict[int, int] = {}
            for runner_id, in conn.execute(
                select(jobs.c.runner_id).where(
                    jobs.c.status.in_([JobStatus.RUNNING.value, JobStatus.CANCELLING.value])
                )
            ).all():
                if runner_id is not None:
                    busy[runner_id] = busy.get(runner_id, 0) + 1
        return [
            {
                "id": r.id, "name": r.name, "labels": json.loads(r.labels),
                "concurrency": r.concurrency, "executor": r.executor, "version": r.version,
                "status": (
                    "offline" if not r.last_seen or now - r.last_seen >= window
                    else "draining" if r.draining else "online"
                ),
                "busy": busy.get(r.id, 0), "last_seen": r.last_seen, "created_at": r.created_at,
            }
            for r in rows
        ]

    def delete_runner(self, runner_id: int) -> None:
        with self.db.write() as conn:
            result = conn.execute(
                update(runners)
                .where(and_(runners.c.id == runner_id, runners.c.deleted.is_(False)))
                .values(deleted=True)
            )
        self._runners.pop(runner_id, None)
        if result.rowcount != 1:
            raise NotFoundError(f"no runner {runner_id}")

    # -- claims -----------------------------------------------------------------------

    def first_claim(
        self, claims: Claims, slots: int, claim_id: str | None = None, again: bool = False
    ) -> tuple[RunnerInfo, dict[str, Any] | None]:
        """The runner of a claim and, when a job is queued for it already, its assignment.

        ``again``: the runner got no answer to its claim ``claim_id`` (ci died, or the
        connection broke): a job that claim took is answered again, even to a runner
        draining (it was handed out before the drain). Raises :class:`RunnerDraining`
        when the runner is draining.
        """
        runner = self.runner_for(claims)
        self.seen(runner.id)
        if again and claim_id:
            taken = self._taken(runner, claim_id)
            if taken is not None:
                return runner, taken
        if runner.draining:
            raise RunnerDraining(runner.id)
        return runner, self.try_claim(runner, claim_id) if slots > 0 else None

    def _taken(self, runner: RunnerInfo, claim_id: str) -> dict[str, Any] | None:
        """The assignment of the running job claim ``claim_id`` of ``runner`` took, if any."""
        with self.db.write() as conn:
            row = conn.execute(
                _TAKEN, {"rid": runner.id, "cid": claim_id, "now": self.clock()}
            ).first()
        return None if row is None else self.assignment(row)

    def try_claim(self, runner: RunnerInfo, claim_id: str | None = None) -> dict[str, Any] | None:
        """Hand the oldest queued job the runner can run to it, or ``None``.

        Raises :class:`RunnerDraining` when the runner is draining: always when the
        ``UPDATE`` that would take a job finds it so, and when there is no job once the
        drain is seen (at once on this replica, within ``_RUNNER_TTL`` on others).
        """
        row = None
        found = True
        if self.db.is_sqlite:
            # SQLite has one writer at a time: many runners woken by one queued job
            # look first without the write lock, and only a likely winner takes it.
            with repo.peek(self.db) as conn:
                found = self._pick(conn, runner) is not None
        if found:
            row = self._take(runner, claim_id)
        if row is None:
            seen = self._runner_row(runner.id)
            if seen is not None and seen.draining:
                raise RunnerDraining(runner.id)
            return None
        self._mark_running(row.pipeline_id, row.attempt)
        return self.assignment(row)

    def _take(self, runner: RunnerInfo, claim_id: str | None) -> Any:
        """Mark the oldest queued job the runner can run as its; the job's row or ``None``."""
        with self.db.write() as conn:
            for _ in range(5):
                pick = self._pick(conn, runner)
                if pick is None:
                    return None
                now = self.clock()
                check_job(JobStatus.QUEUED.value, JobStatus.RUNNING)
                row = conn.execute(
                    _TAKE, {"jid": pick, "rid": runner.id, "now": now, "cid": claim_id}
                ).first()
                if row is not None:
                    repo.job_event(conn, row.id, row.pipeline_id, JobStatus.RUNNING.value, None)
                    self.metrics.started(now - (row.queued_at or now))
                    return row
                if conn.execute(_DRAINING, {"rid": runner.id}).first() is not None:
                    self._runners.pop(runner.id, None)
                    raise RunnerDraining(runner.id)
        return None

    def _labels(self, text: str) -> frozenset[str]:
        found = self._label_sets.get(text)
        if found is None:
            found = frozenset(json.loads(text))
            if len(self._label_sets) < 10_000:
                self._label_sets[text] = found
        return found

    def _pick(self, conn: Connection, runner: RunnerInfo) -> int | None:
        """The id of the oldest queued job the runner can run (locked on PostgreSQL)."""
        lock = conn.dialect.name == "postgresql"
        # On PostgreSQL claimers on other connections skip what this one looks at.
        heads = conn.execute(_HEADS_LOCKED if lock else _HEADS).all()
        for head in heads:
            if self._labels(head.labels) <= runner.labels:
                return int(head.id)
        if not heads:
            return None
        # The oldest jobs are for other runners: look by the label sets queued.
        sets = conn.execute(
            select(jobs.c.labels).where(jobs.c.status == JobStatus.QUEUED.value).distinct()
        ).scalars().all()
        matching = [s for s in sets if self._labels(s) <= runner.labels]
        if not matching:
            return None
        query = (
            select(jobs.c.id)
            .where(and_(jobs.c.status == JobStatus.QUEUED.value, jobs.c.labels.in_(matching)))
            .order_by(jobs.c.id).limit(1)
        )
        if lock:
            query = query.with_for_update(skip_locked=True)
        found = conn.execute(query).scalar()
        return None if found is None else int(found)

    def _mark_running(self, pipeline_id: int, attempt: int) -> None:
        key = (pipeline_id, attempt)
        if key in self._running:
            return
        with self.db.write() as conn:
            prow = conn.execute(
                select(pipelines).where(and_(
                    pipelines.c.id == pipeline_id, pipelines.c.attempt == attempt,
                    pipelines.c.status == PipelineStatus.QUEUED.value,
                ))
            ).first()
            if prow is not None:
                repo.set_pipeline_status(
                    conn, prow, PipelineStatus.RUNNING, started_at=self.clock()
                )
        with self._lock:
            if len(self._running) > 10_000:
                self._running.clear()
            self._running.add(key)

    def _pipeline(self, pipeline_id: int) -> _PipelineInfo:
        with self._lock:
            info = self._pipelines.get(pipeline_id)
            if info is not None:
                self._pipelines.move_to_end(pipeline_id)
                return info
        with self.db.read() as conn:
            row = repo.get_pipeline(conn, pipeline_id)
        info = _PipelineInfo(row.repo, row.sha, row.ref, row.workflow, row.workflow_text,
                             json.loads(row.called))
        with self._lock:
            self._pipelines[pipeline_id] = info
            while len(self._pipelines) > 256:
                self._pipelines.popitem(last=False)
        return info

    def assignment(self, row: Any) -> dict[str, Any]:
        """What a runner needs to run a claimed job (the Assignment of docs/api.md)."""
        info = self._pipeline(row.pipeline_id)
        data = json.loads(row.assignment)
        text = info.text if row.workflow_path == info.workflow else info.called.get(
            row.workflow_path, ""
        )
        scopes = [
            f"job:{row.id}", f"repo:{info.repo}:read", f"pipeline:{row.pipeline_id}",
            f"cache:{info.repo}",
        ]
        token = self.signer.issue(f"job:{row.id}:{row.retries}", scopes, ttl=row.timeout + 3600)
        return {
            "job_id": row.id, "pipeline_id": row.pipeline_id, "attempt": row.attempt,
            "key": row.key, "name": row.name, "repo": info.repo, "sha": info.sha,
            "ref": info.ref, "clone_url": f"{self.clone_base}/{info.repo}.git", "token": token,
            "workflow": {"path": row.workflow_path, "text": text}, "job": row.job_id,
            "contexts": data.get("contexts", {}), "labels": data.get("labels", []),
            "continue_on_error": bool(row.continue_on_error),
            "timeout_minutes": data.get("timeout_minutes", row.timeout / 60),
            "run_id": str(data.get("run_id", row.pipeline_id)),
            "run_attempt": int(data.get("run_attempt", row.attempt)),
        }

    # -- running jobs -----------------------------------------------------------------

    def authorize_job(self, claims: Claims, job_id: int) -> int | None:
        """Check a job token (or admin) may act for the job; its generation (None: admin)."""
        if claims.is_admin:
            return None
        generation = job_generation(claims, job_id)
        if generation is None:
            raise ForbiddenError(f"this needs the token of job {job_id}")
        return generation

    def heartbeat(self, claims: Claims, job_id: int) -> bool:
        """Record a running job's heartbeat; True when the runner must stop it.

        A completed job whose log is still open is alive too (its runner is sending the
        rest of the log): the heartbeat keeps the log from being closed as lost.
        """
        runner: RunnerInfo | None = None
        generation: int | None = None
        if not claims.is_admin:
            generation = job_generation(claims, job_id)
            if generation is None:
                runner = self.runner_for(claims)
        with self.db.write() as conn:
            row = conn.execute(
                select(jobs.c.id, jobs.c.status, jobs.c.runner_id, jobs.c.retries,
                       jobs.c.log_open)
                .where(jobs.c.id == job_id)
            ).first()
            if row is None:
                raise NotFoundError(f"no job {job_id}")
            if runner is not None and row.runner_id != runner.id:
                raise ForbiddenError(f"job {job_id} is not this runner's")
            if generation is not None and generation != row.retries:
                return True  # handed to another runner since: this copy must stop
            if row.status == JobStatus.COMPLETED.value and row.log_open:
                conn.execute(
                    update(jobs).where(jobs.c.id == job_id).values(heartbeat_at=self.clock())
                )
                return False  # nothing runs any more; the log is on its way
            if row.status not in (JobStatus.RUNNING.value, JobStatus.CANCELLING.value):
                return True
            conn.execute(update(jobs).where(jobs.c.id == job_id).values(heartbeat_at=self.clock()))
            runner_id = row.runner_id
            cancel = bool(row.status == JobStatus.CANCELLING.value)
        if runner_id is not None:
            self.seen(runner_id)
        return cancel

    def job_for_log(self, job_id: int, generation: int | None) -> LogState:
        """Where the log of a job a runner reports on stands; 409 when stale."""
        with repo.peek(self.db) as conn:
            row = conn.execute(_LOG_STATE, {"jid": job_id}).first()
        if row is None:
            raise NotFoundError(f"no job {job_id}")
        if generation is not None and generation != row.retries:
            raise ConflictError("this job was handed to another runner")
        if row.status in (JobStatus.WAITING.value, JobStatus.QUEUED.value):
            raise ConflictError(f"job {job_id} is {row.status}: no runner holds it")
        finished = row.status == JobStatus.COMPLETED.value
        return LogState(
            base=int(row.log_base), finished=finished, open=finished and bool(row.log_open),
            end=None if row.log_size is None else int(row.log_size),
            pipeline_id=int(row.pipeline_id),
        )
