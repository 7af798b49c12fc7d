"""The supervisor's state machine: one step at a time, each replica towards its spec.

A replica is ``backoff`` (not running; started at ``next_start``, at once when its spec
changed), ``starting`` (running, not ready), ``running`` (ready: its health check passed,
or it stayed up ``min_uptime`` without one), ``stopping`` (stop signal sent; SIGKILL to
its group after the stop timeout) or ``failed`` (could not be executed; retried like a
crash). A changed spec replaces ready replicas one at a time: the next one is stopped
only when no replica on the new spec is still unready, so a new version that crashes
stalls the update while the replicas on the old one keep serving; replicas that are not
ready serve nothing and are replaced at once.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field

from shipyard.infra.providers._supervisor_health import check
from shipyard.infra.providers._supervisor_proc import (
    describe_returncode,
    group_members,
    is_running,
    signal_group,
    start_time,
)
from shipyard.infra.providers._supervisor_spec import ExitRecord, Layout, ReplicaStatus, ServiceSpec

__all__ = ["BACKOFF_MAX", "BACKOFF_START", "STABLE_AFTER", "Converger", "Replica", "Service", "say"]

BACKOFF_START = 0.5
BACKOFF_MAX = 30.0
STABLE_AFTER = 10.0  # a replica that ran this long restarts after the shortest backoff
STARTUP_CHECK_INTERVAL = 0.1  # health checks of a replica that is not ready yet
_KEEP_EXITS = 10


def say(message: str) -> None:
    """A line in the supervisor's own log (its stdout)."""
    print(f"{time.strftime('%Y-%m-%d %H:%M:%S')} {message}", flush=True)


@dataclass
class Replica:
    """One replica at run time: its persisted status plus what cannot be persisted."""

    status: ReplicaStatus
    proc: subprocess.Popen[bytes] | None = None  # None when adopted or not running
    backoff: float = BACKOFF_START
    stop_deadline: float | None = None
    stop_then_start: bool = False  # stopping for a rolling update: start the new spec next
    killed: bool = False
    crashed: bool = False  # its last process ended on its own: the next start is a restart
    health_due: float = 0.0
    health_check: Future[str | None] | None = None

    @property
    def index(self) -> int:
        return self.status.index

    @property
    def alive(self) -> bool:
        return self.status.state in ("starting", "running", "stopping")


@dataclass
class Service:
    id: str
    spec: ServiceSpec | None  # None once deleted: stop every replica, then forget it
    last_spec: ServiceSpec | None
    replicas: dict[int, Replica] = field(default_factory=dict)
    rollout: str = ""
    dirty: bool = True


class Converger:
    """Moves services' replicas towards their specs (see the module doc)."""

    def __init__(self, layout: Layout, checks: ThreadPoolExecutor, wake: Callable[[], None]) -> None:
        self.layout = layout
        self.tag = layout.tag
        self._checks = checks
        self._wake = wake

    def reconcile(self, service: Service, now: float) -> None:
        """One step of ``service`` towards its spec (or towards nothing once deleted)."""
        spec = service.spec
        for replica in list(service.replicas.values()):
            self._watch(service, replica, now)
        wanted = range(spec.replicas) if spec is not None else range(0)
        for index, replica in sorted(service.replicas.items()):
            if index in wanted:
                continue
            if replica.status.state in ("starting", "running"):
                self._begin_stop(service, replica, now, then_start=False)
            elif replica.status.state not in ("stopping",):
                del service.replicas[index]
                service.dirty = True
        if spec is None:
            return  # the supervisor forgets it once no replica is left
        candidates: list[Replica] = []
        for index in wanted:
            if index not in service.replicas:
                service.replicas[index] = Replica(ReplicaStatus(index, next_start=now))
            replica = service.replicas[index]
            desired = spec.replica_hash(index)
            state = replica.status.state
            if state in ("backoff", "failed"):
                changed = replica.status.hash != desired
                if changed or now >= (replica.status.next_start or 0.0):
                    if changed:
                        replica.backoff = BACKOFF_START
                    self._start(service, spec, replica, now)
            elif state in ("starting", "running") and replica.status.hash != desired:
                if not replica.status.ready:
                    self._begin_stop(service, replica, now, then_start=True)  # serves nothing yet
                else:
                    candidates.append(replica)
            if replica.status.state in ("starting", "running") and replica.status.hash == desired:
                self._progress_health(service, spec, replica, now)
        # One replacement at a time: wait while a replica is being replaced, or runs the
        # new spec without being ready yet (a new replica that crash-loops stalls the
        # update, and the replicas still on the old spec keep serving).
        busy = [
            r for i, r in service.replicas.items()
            if i in wanted and (r.stop_then_start or (r.status.hash == spec.replica_hash(i) and not r.status.ready))
        ]
        if candidates and not busy:
            nxt = candidates[0]
            service.rollout = f"replacing replica {nxt.index}"
            say(f"{service.id}: rolling update: replacing replica {nxt.index} (pid {nxt.status.pid})")
            self._begin_stop(service, nxt, now, then_start=True)
        elif not candidates and not busy and service.rollout:
            service.rollout = ""
            service.dirty = True

    def _watch(self, service: Service, replica: Replica, now: float) -> None:
        """Notice the end of a replica's process, and finish stopping one."""
        status = replica.status
        if not replica.alive or status.pid is None:
            return
        how: str | None = None
        if replica.proc is not None:
            code = replica.proc.poll()
            if code is not None:
                how = describe_returncode(code)
        elif not is_running(status.pid, status.start_time):
            how = "exited (its status is unknown: it was adopted from an earlier supervisor)"
        if status.state == "stopping":
            self._watch_stop(service, replica, now, ended=how is not None)
            return
        if how is None:
            return
        signal_group(status.pid, signal.SIGKILL)  # what it started must not keep its port
        self._record_exit(status, how, now)
        replica.crashed = True
        ran = now - (status.started_at or now)
        if ran >= STABLE_AFTER:
            replica.backoff = BACKOFF_START
        delay = replica.backoff
        replica.backoff = min(replica.backoff * 2, BACKOFF_MAX)
        say(f"{service.id}: replica {status.index} (pid {status.pid}) {how}; restarting in {delay:g} s")
        self._clear(replica)
        status.state, status.next_start = "backoff", now + delay
        service.dirty = True

    def _watch_stop(self, service: Service, replica: Replica, now: float, *, ended: bool) -> None:
        status = replica.status
        assert status.pid is not None
        left = group_members(status.pid)
        if ended and not left:
            self._stopped(service, replica, now)
        elif replica.stop_deadline is not None and now >= replica.stop_deadline and not replica.killed:
            say(f"{service.id}: replica {status.index} (pid {status.pid}) did not stop in time: SIGKILL")
            signal_group(status.pid, signal.SIGKILL)
            replica.killed = True
        elif replica.killed and ended:
            self._stopped(service, replica, now)  # only unkillable (D-state) leftovers remain

    def _stopped(self, service: Service, replica: Replica, now: float) -> None:
        status = replica.status
        how = "stopped" + (" (killed after the stop timeout)" if replica.killed else "")
        self._record_exit(status, how, now, requested=True)
        then_start = replica.stop_then_start
        self._clear(replica)
        status.state, status.next_start = "backoff", now
        spec = service.spec
        if then_start and spec is not None and status.index < spec.replicas:
            self._start(service, spec, replica, now)
        service.dirty = True

    def _clear(self, replica: Replica) -> None:
        status = replica.status
        if replica.proc is not None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                replica.proc.wait(0)
        replica.proc = None
        replica.stop_deadline = None
        replica.stop_then_start = replica.killed = False
        replica.health_check = None
        status.pid = status.start_time = None
        status.ready, status.adopted, status.health = False, False, ""

    def _record_exit(
        self, status: ReplicaStatus, how: str, now: float, *, requested: bool = False
    ) -> None:
        if status.pid is None:
            return
        status.exits.append(ExitRecord(status.pid, status.hash or "", how, now, status.ready, requested))
        del status.exits[:-_KEEP_EXITS]

    def _begin_stop(self, service: Service, replica: Replica, now: float, *, then_start: bool) -> None:
        spec = service.spec or service.last_spec
        status = replica.status
        assert status.pid is not None
        sig = spec.stop_signal if spec is not None else signal.SIGTERM
        timeout = spec.stop_timeout if spec is not None else 10.0
        signal_group(status.pid, sig)
        if sig == signal.SIGKILL:
            replica.killed = True
        status.state = "stopping"
        replica.stop_deadline = now + timeout
        replica.stop_then_start = then_start
        replica.health_check = None
        service.dirty = True

    def _start(self, service: Service, spec: ServiceSpec, replica: Replica, now: float) -> None:
        status = replica.status
        index = status.index
        if replica.crashed:
            status.restarts += 1
            replica.crashed = False
        log_path = self.layout.replica_log(service.id, index)
        log_path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        try:
            stamp = time.strftime("%Y-%m-%d %H:%M:%S")
            os.write(fd, f"--- {stamp} starting replica {index}: {spec.argv}\n".encode())
            status.hash = spec.replica_hash(index)
            try:
                proc = subprocess.Popen(
                    spec.argv, cwd=spec.cwd, env=spec.replica_env(index, self.tag),
                    stdin=subprocess.DEVNULL, stdout=fd, stderr=fd, start_new_session=True,
                    close_fds=True,
                )
            except OSError as err:
                reason = f"could not be started: {err.strerror or err}"
                os.write(fd, f"--- {reason}\n".encode())
                status.exits.append(ExitRecord(0, status.hash, reason, now, False))
                del status.exits[:-_KEEP_EXITS]
                delay = replica.backoff
                replica.backoff = min(replica.backoff * 2, BACKOFF_MAX)
                status.state, status.next_start = "failed", now + delay
                replica.crashed = True
                say(f"{service.id}: replica {index} {reason}; retrying in {delay:g} s")
                service.dirty = True
                return
        finally:
            os.close(fd)
        replica.proc = proc
        status.pid, status.start_time = proc.pid, start_time(proc.pid)
        status.state, status.ready, status.adopted = "starting", False, False
        status.started_at, status.next_start, status.health = now, None, "starting"
        replica.health_due = now
        say(f"{service.id}: started replica {index} as pid {proc.pid}")
        service.dirty = True

    def _progress_health(self, service: Service, spec: ServiceSpec, replica: Replica, now: float) -> None:
        status = replica.status
        if spec.health is None:
            if not status.ready and now - (status.started_at or now) >= spec.min_uptime:
                self._became_ready(service, replica, "running")
            return
        pending = replica.health_check
        if pending is not None:
            if not pending.done():
                return
            replica.health_check = None
            problem = pending.result()
            if problem is None:
                if not status.ready:
                    self._became_ready(service, replica, "healthy")
                elif status.health != "healthy":
                    status.health = "healthy"
                    service.dirty = True
            else:
                text = f"unhealthy: {problem}" if status.ready else f"starting: {problem}"
                if status.health != text:
                    status.health = text
                    service.dirty = True
            interval = spec.health.interval if status.ready else min(spec.health.interval, STARTUP_CHECK_INTERVAL)
            replica.health_due = now + interval
            return
        port = spec.replica_port(status.index)
        if now >= replica.health_due and port is not None:
            future = self._checks.submit(check, spec.health, port)
            future.add_done_callback(lambda f: self._wake())
            replica.health_check = future

    def _became_ready(self, service: Service, replica: Replica, health: str) -> None:
        status = replica.status
        status.ready, status.state, status.health = True, "running", health
        say(f"{service.id}: replica {status.index} (pid {status.pid}) is ready")
        service.dirty = True
