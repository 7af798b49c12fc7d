"""The provider's side of the supervisor: start it on demand, hand it specs, wait on it.

Thread-safe (the engine runs operations in parallel threads) and process-safe (two
``shipyard infra`` processes on one stack): the supervisor's own flock decides which of
two simultaneously started supervisors lives; the other exits at once.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import signal
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from shipyard.errors import ProviderError
from shipyard.infra.providers._supervisor_proc import (
    is_running,
    read_json,
    spawn_detached,
    tail_lines,
    write_json,
)
from shipyard.infra.providers._supervisor_spec import Layout, ServiceSpec, ServiceStatus

__all__ = ["SupervisorClient"]

_POLL = 0.03
_START_TIMEOUT = 15.0
_LOG_LINES = 20
T = TypeVar("T")
_locks_guard = threading.Lock()
_locks: dict[Path, threading.Lock] = {}

def _load(path: Path, parse: Callable[[dict[str, Any]], T]) -> T | None:
    """A spec or status file, parsed; None when missing, damaged or of another shape."""
    data = read_json(path)
    if not isinstance(data, dict):
        return None
    try:
        return parse(data)
    except (TypeError, KeyError, ValueError):
        return None


# The supervisor gets a plain environment: it needs none of the applying user's secrets
# (the replicas get their own, see ServiceSpec.base_env).
_SUPERVISOR_ENV = ("PATH", "HOME", "LANG", "LC_ALL", "TZ", "TMPDIR", "PYTHONPATH")


def _thread_lock(root: Path) -> threading.Lock:
    with _locks_guard:
        return _locks.setdefault(root, threading.Lock())


class SupervisorClient:
    """Talks to the supervisor of one data folder through its files (see ``_supervisor_spec``)."""

    def __init__(self, root: Path) -> None:
        root.mkdir(parents=True, exist_ok=True, mode=0o700)
        self.layout = Layout(root.resolve())
        self.layout.make_dirs()

    # ---- the daemon -----------------------------------------------------------------

    def running(self) -> bool:
        """Whether a supervisor holds this folder's lock."""
        fd = os.open(self.layout.lock, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        finally:
            os.close(fd)  # closing drops a lock we took
        return False

    def supervisor_pid(self) -> int | None:
        """The live supervisor's pid, from its pid file, checked against its start time."""
        data = read_json(self.layout.pid)
        if not isinstance(data, dict):
            return None
        pid, started = data.get("pid"), data.get("start_time")
        if isinstance(pid, int) and is_running(pid, started if isinstance(started, int) else None):
            return pid
        return None

    def ensure_running(self) -> None:
        """Start the supervisor unless one runs; ProviderError when it cannot start."""
        if self.running():
            return
        with _thread_lock(self.layout.root):
            for _ in range(3):
                if self.running():
                    return
                env = {k: os.environ[k] for k in _SUPERVISOR_ENV if k in os.environ}
                argv = [sys.executable, "-m", "shipyard.infra.providers._supervisor", str(self.layout.root)]
                try:
                    pid = spawn_detached(argv, cwd=self.layout.root, env=env, log=self.layout.log)
                except OSError as err:
                    raise ProviderError(f"cannot start the process supervisor: {err}") from None
                deadline = time.monotonic() + _START_TIMEOUT
                while time.monotonic() < deadline:
                    if self.running():
                        return
                    if not is_running(pid):
                        break  # another one took the lock first, or it failed: look again
                    time.sleep(_POLL)
        lines = "\n".join(f"    {line}" for line in tail_lines(self.layout.log, _LOG_LINES))
        raise ProviderError(
            f"the process supervisor for {self.layout.root} did not start; "
            f"last lines of {self.layout.log}:\n{lines}"
        )

    def poke(self) -> None:
        """Wake the supervisor now rather than at its next tick."""
        pid = self.supervisor_pid()
        if pid is not None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGUSR1)

    # ---- specs and status -----------------------------------------------------------

    def put(self, spec: ServiceSpec) -> None:
        """Make ``spec`` the desired state of its service; start the supervisor if need be."""
        write_json(self.layout.spec(spec.id), spec.to_json())
        self.ensure_running()
        self.poke()

    def remove(self, service: str) -> bool:
        """Ask for the service to be stopped and forgotten; False when it had no spec."""
        try:
            self.layout.spec(service).unlink()
        except FileNotFoundError:
            return False
        self.poke()
        return True

    def spec(self, service: str) -> ServiceSpec | None:
        return _load(self.layout.spec(service), ServiceSpec.from_json)

    def status(self, service: str) -> ServiceStatus | None:
        return _load(self.layout.status(service), ServiceStatus.from_json)

    def service_ids(self) -> list[str]:
        return sorted(p.stem for p in self.layout.services.glob("*.json"))

    def mark_pending(self, service: str) -> None:
        self.layout.pending(service).write_text(f"{os.getpid()}\n")

    def clear_pending(self, service: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            self.layout.pending(service).unlink()

    def pending(self) -> list[str]:
        return sorted(p.name for p in self.layout.pending_dir.iterdir())

    # ---- waiting --------------------------------------------------------------------

    def current_status(self, spec: ServiceSpec, timeout: float = 5.0) -> ServiceStatus | None:
        """The status once the live supervisor has acted on ``spec`` (adopting, if new)."""
        deadline = time.monotonic() + timeout
        next_check = 0.0
        while True:
            now = time.monotonic()
            if now >= next_check:
                self.ensure_running()
                next_check = now + 0.5
            status = self.status(spec.id)
            if (
                status is not None and status.version == spec.version
                and (not status.replicas or status.supervisor == self.supervisor_pid())
            ):
                return status
            if now >= deadline:
                return status
            time.sleep(_POLL)

    def wait_converged(self, spec: ServiceSpec, *, since: float, timeout: float) -> ServiceStatus:
        """Wait until every replica runs ``spec`` and is ready.

        Raises ProviderError, with the last lines of the replica's log, as soon as a
        replica on ``spec`` ends before it is ready or stays unready past the start
        period, or after ``timeout`` seconds.
        """
        deadline = time.monotonic() + timeout
        next_check = 0.0
        status: ServiceStatus | None = None
        while True:
            now = time.monotonic()
            if now >= next_check:
                self.ensure_running()
                next_check = now + 0.5
            status = self.status(spec.id)
            if status is not None and status.version == spec.version:
                problem = self._failure(spec, status, since)
                if problem is not None:
                    raise ProviderError(problem)
                if self.converged(spec, status):
                    return status
            if now >= deadline:
                raise ProviderError(self._timeout(spec, status, timeout))
            time.sleep(_POLL)

    @staticmethod
    def converged(spec: ServiceSpec, status: ServiceStatus) -> bool:
        if len(status.replicas) != spec.replicas:
            return False
        return all(
            r.index == i and r.hash == spec.replica_hash(i) and r.state == "running" and r.ready
            for i, r in enumerate(status.replicas)
        )

    def _failure(self, spec: ServiceSpec, status: ServiceStatus, since: float) -> str | None:
        start_period = spec.health.start_period if spec.health is not None else None
        for replica in status.replicas:
            if replica.index >= spec.replicas:
                continue
            desired = spec.replica_hash(replica.index)
            for record in replica.exits:
                if record.at >= since and record.hash == desired and not record.ready and not record.requested:
                    who = f"replica {replica.index}" + (f" (pid {record.pid})" if record.pid else "")
                    return self.with_log(spec.id, replica.index, f"{who} {record.how} before it became ready")
            if (
                start_period is not None and replica.state == "starting" and replica.hash == desired
                and replica.started_at is not None and time.time() - replica.started_at > start_period
            ):
                return self.with_log(
                    spec.id, replica.index,
                    f"replica {replica.index} (pid {replica.pid}) is not healthy after the start "
                    f"period of {start_period:g} s ({replica.health or 'no check answered'})",
                )
        return None

    def _timeout(self, spec: ServiceSpec, status: ServiceStatus | None, timeout: float) -> str:
        if status is None or status.version != spec.version:
            return f"the process supervisor did not take up the change within {timeout:g} s"
        for replica in status.replicas:
            if replica.index < spec.replicas and not (
                replica.ready and replica.hash == spec.replica_hash(replica.index)
            ):
                what = replica.health or replica.state
                return self.with_log(
                    spec.id, replica.index,
                    f"replica {replica.index} is not ready after {timeout:g} s ({what})",
                )
        return f"the replicas did not converge within {timeout:g} s ({status.rollout or 'scaling'})"

    def wait_gone(self, service: str, timeout: float) -> None:
        """Wait until the supervisor has stopped and forgotten ``service``."""
        deadline = time.monotonic() + timeout
        next_check = 0.0
        while self.layout.status(service).exists():
            now = time.monotonic()
            if now >= next_check:
                self.ensure_running()
                next_check = now + 0.5
            if now >= deadline:
                raise ProviderError(
                    f"the replicas of {service} were not all stopped within {timeout:g} s"
                )
            time.sleep(_POLL)

    def with_log(self, service: str, index: int, message: str) -> str:
        """``message`` followed by the last lines of the replica's log."""
        path = self.layout.replica_log(service, index)
        lines = [line for line in tail_lines(path, _LOG_LINES) if not line.startswith("--- ")]
        if not lines:
            return f"{message}; its log {path} is empty"
        body = "\n".join(f"    {line}" for line in lines)
        return f"{message}; last lines of {path}:\n{body}"

    def log_path(self, service: str, index: int) -> Path:
        return self.layout.replica_log(service, index)

    def write_spec_only(self, spec: ServiceSpec) -> None:
        """Write ``spec`` without waking anything (used to restore a previous spec)."""
        write_json(self.layout.spec(spec.id), spec.to_json())
