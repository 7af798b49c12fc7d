"""The ``process`` provider's supervisor: a small daemon that keeps services running.

Run as ``python -m shipyard.infra.providers._supervisor DATA_DIR`` (the provider starts
it on demand, detached, see ``_supervisor_client``). One runs per data folder: it holds
``supervisor.lock`` (flock) for its whole life. It reads the desired services from
``services/*.json`` and converges to them, writing what it sees to ``status/*.json``
(layout in ``_supervisor_spec``):

* each replica runs in its own session and process group, its output appended straight
  to its log file: nothing of a replica goes through the supervisor, so a supervisor
  killed with SIGKILL leaves the replicas serving;
* a replica that exits is started again after a backoff (0.5 s doubling to 30 s, back
  to 0.5 s after 10 s of running);
* a changed spec replaces replicas one at a time (rolling): the next one is stopped only
  once the previous one's replacement is ready; extra replicas are stopped, missing ones
  started;
* stopping sends the stop signal to the whole process group, and SIGKILL to what is
  left of it after the stop timeout;
* logs over 10 MiB are copied to ``.1`` (``.1`` to ``.2``) and truncated (the replicas
  write with O_APPEND, so they go on at the start of the emptied file);
* at start it *adopts* the replicas an earlier supervisor left (found by their
  ``SHIPYARD_PROCESS`` mark in ``/proc``), watching them by pid and start time; the
  exit status of an adopted process cannot be known, only that it ended;
* it exits once it supervises nothing, and on SIGTERM/SIGINT (leaving the replicas to
  the next supervisor: only deleting a service stops it).

The converging itself is in ``_supervisor_converge``. Why not supervisord: it is not on
the machine (one more system package to install and keep configured, with its own config
format and XML-RPC to drive); it pipes its programs' output through itself, so when it is
killed its programs lose their output pipe, and a new supervisord cannot take over
programs it did not start: exactly the failure this daemon must survive. What is needed
is small (files in, files out, fork, wait, signal), so it is ours.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import select
import shutil
import signal
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from types import FrameType

from shipyard.infra.providers._supervisor_converge import Converger, Replica, Service, say
from shipyard.infra.providers._supervisor_proc import (
    iter_pids,
    process_environ,
    read_json,
    rotate,
    start_time,
    write_json,
)
from shipyard.infra.providers._supervisor_spec import (
    MARK,
    ExitRecord,
    Layout,
    ReplicaStatus,
    ServiceSpec,
    ServiceStatus,
    parse_mark,
)

__all__ = ["LOG_BACKUPS", "LOG_MAX_BYTES", "Supervisor", "main"]

LOG_MAX_BYTES = 10 << 20
LOG_BACKUPS = 2
IDLE_EXIT = 1.0  # seconds with nothing to supervise before exiting
_TICK = 0.1


class Supervisor:
    """Converges the replicas of every service in one data folder; see the module doc."""

    def __init__(self, layout: Layout) -> None:
        self.layout = layout
        self.tag = layout.tag
        self.services: dict[str, Service] = {}
        self._seen: dict[str, tuple[int, int, int]] = {}
        self._checks = ThreadPoolExecutor(max_workers=8, thread_name_prefix="health")
        self._stop = False
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_w, False)
        os.set_blocking(self._wake_r, False)
        self._next_rotation = 0.0
        self.converger = Converger(layout, self._checks, self._wake)

    # ---- the loop -------------------------------------------------------------------

    def run(self) -> None:
        signal.set_wakeup_fd(self._wake_w, warn_on_full_buffer=False)
        for sig in (signal.SIGCHLD, signal.SIGUSR1):
            signal.signal(sig, lambda signum, frame: None)
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, self._on_stop)
        signal.signal(signal.SIGHUP, signal.SIG_IGN)
        self._load_specs()
        self._adopt()
        idle_since: float | None = None
        while not self._stop:
            now = time.time()
            self._load_specs()
            for service in list(self.services.values()):
                self.converger.reconcile(service, now)
                if service.spec is None and not service.replicas:
                    self._forget(service)
            if now >= self._next_rotation:
                self._next_rotation = now + 1.0
                self._rotate_logs()
            self._write_statuses()
            if self._idle():
                idle_since = idle_since if idle_since is not None else now
                if now - idle_since >= IDLE_EXIT and self._idle(rescan=True):
                    say("nothing left to supervise: exiting")
                    break
            else:
                idle_since = None
            self._sleep()
        self._write_statuses()
        self._checks.shutdown(wait=False, cancel_futures=True)
        with contextlib.suppress(OSError):
            self.layout.pid.unlink()

    def _on_stop(self, signum: int, frame: FrameType | None) -> None:
        say(f"got {signal.Signals(signum).name}: exiting, leaving the replicas running")
        self._stop = True

    def _sleep(self) -> None:
        with contextlib.suppress(InterruptedError):
            select.select([self._wake_r], [], [], _TICK)
        with contextlib.suppress(BlockingIOError):
            while os.read(self._wake_r, 4096):
                pass

    def _wake(self) -> None:
        with contextlib.suppress(BlockingIOError, OSError):
            os.write(self._wake_w, b"w")

    def _idle(self, *, rescan: bool = False) -> bool:
        if rescan:
            self._load_specs()
        return not any(
            service.replicas or (service.spec is not None and service.spec.replicas > 0)
            for service in self.services.values()
        )

    # ---- specs ----------------------------------------------------------------------

    def _load_specs(self) -> None:
        """Read the spec files that changed (new inode, mtime or size) since last time."""
        seen: dict[str, tuple[int, int, int]] = {}
        with contextlib.suppress(FileNotFoundError), os.scandir(self.layout.services) as it:
            for entry in it:
                if entry.name.endswith(".json") and not entry.name.startswith("."):
                    st = entry.stat()
                    seen[entry.name[:-5]] = (st.st_ino, st.st_mtime_ns, st.st_size)
        for service_id, signature in seen.items():
            if self._seen.get(service_id) == signature:
                continue
            data = read_json(self.layout.spec(service_id))
            try:
                spec = ServiceSpec.from_json(data) if isinstance(data, dict) else None
            except (TypeError, KeyError, ValueError) as err:
                say(f"{service_id}: ignoring an unreadable spec: {err}")
                continue
            if spec is None:
                continue  # half-written files are never seen (atomic rename); a bad one is kept out
            service = self.services.get(service_id)
            if service is None:
                service = self.services[service_id] = Service(service_id, spec, spec)
                say(f"{service_id}: {spec.replicas} replica(s) of {spec.argv}")
            else:
                if service.spec is None or service.spec.version != spec.version:
                    say(f"{service_id}: new spec {spec.version} ({spec.replicas} replica(s))")
                service.spec = service.last_spec = spec
            service.dirty = True
            self._seen[service_id] = signature
        for service_id in set(self._seen) - set(seen):
            del self._seen[service_id]
            service = self.services.get(service_id)
            if service is not None and service.spec is not None:
                say(f"{service_id}: deleted: stopping its replicas")
                service.spec = None
                service.dirty = True

    # ---- adoption -------------------------------------------------------------------

    def _adopt(self) -> None:
        """Take over the replicas an earlier supervisor of this folder left running."""
        found: dict[tuple[str, int], tuple[int, str]] = {}
        me = os.getuid()
        for pid in iter_pids():
            with contextlib.suppress(OSError):
                if os.stat(f"/proc/{pid}").st_uid != me or os.getsid(pid) != pid:
                    continue
                env = process_environ(pid)
                mark = parse_mark(env.get(MARK, "")) if env else None
                if mark is not None and mark[0] == self.tag:
                    found[(mark[1], mark[2])] = (pid, mark[3])
        previous: dict[str, ServiceStatus] = {}
        with contextlib.suppress(FileNotFoundError):
            for path in self.layout.status_dir.glob("*.json"):
                data = read_json(path)
                with contextlib.suppress(TypeError, KeyError, ValueError):
                    if isinstance(data, dict):
                        previous[path.stem] = ServiceStatus.from_json(data)
        now = time.time()
        for service_id in sorted({*previous, *(key[0] for key in found)}):
            service = self.services.get(service_id)
            if service is None:
                service = self.services[service_id] = Service(service_id, None, None)
            old = {r.index: r for r in previous[service_id].replicas} if service_id in previous else {}
            indexes = sorted({*old, *(i for (s, i) in found if s == service_id)})
            for index in indexes:
                status = old.get(index, ReplicaStatus(index))
                live = found.get((service_id, index))
                if live is not None:
                    pid, run_hash = live
                    known = status.pid == pid  # else started by a supervisor killed before it said so
                    ready = known and status.ready
                    status.pid, status.hash, status.start_time = pid, run_hash, start_time(pid)
                    status.state, status.ready, status.adopted = ("running" if ready else "starting"), ready, True
                    status.started_at = status.started_at if known and status.started_at else now
                    say(f"{service_id}: adopted replica {index} (pid {pid})")
                    service.replicas[index] = Replica(status)
                    continue
                replica = service.replicas[index] = Replica(status)
                if status.pid is not None and status.state != "backoff":
                    stopping = status.state == "stopping"  # it was being stopped: not a crash
                    how = "stopped" if stopping else "exited while no supervisor was running"
                    record = ExitRecord(status.pid, status.hash or "", how, now, status.ready, stopping)
                    status.exits = [*status.exits, record][-10:]
                    replica.crashed = not stopping
                status.pid = status.start_time = None
                status.state, status.ready, status.next_start = "backoff", False, now
            service.dirty = True

    def _forget(self, service: Service) -> None:
        del self.services[service.id]
        with contextlib.suppress(OSError):
            self.layout.status(service.id).unlink()
        shutil.rmtree(self.layout.log_dir(service.id), ignore_errors=True)
        say(f"{service.id}: every replica stopped; forgotten")

    # ---- files ----------------------------------------------------------------------

    def _write_statuses(self) -> None:
        for service in self.services.values():
            if not service.dirty:
                continue
            spec = service.spec or service.last_spec
            status = ServiceStatus(
                service.id, spec.version if service.spec is not None and spec is not None else "",
                os.getpid(), [r.status for _, r in sorted(service.replicas.items())], service.rollout,
            )
            try:
                write_json(self.layout.status(service.id), status.to_json())
            except OSError as err:
                say(f"{service.id}: cannot write the status: {err}")
                continue
            service.dirty = False

    def _rotate_logs(self) -> None:
        paths = [self.layout.log]
        for service in self.services.values():
            paths.extend(self.layout.replica_log(service.id, i) for i in service.replicas)
        for path in paths:
            with contextlib.suppress(OSError):
                if path.stat().st_size > LOG_MAX_BYTES:
                    rotate(path, LOG_BACKUPS)


def _take_lock(layout: Layout) -> int | None:
    """The lock's fd once held, None when another supervisor holds it.

    Retries for a moment: a provider checking whether a supervisor runs holds the lock
    shared for an instant, which must not make a starting supervisor give up.
    """
    fd = os.open(layout.lock, os.O_RDWR | os.O_CREAT, 0o600)
    deadline = time.monotonic() + 0.5
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return fd
        except BlockingIOError:
            if time.monotonic() >= deadline:
                os.close(fd)
                return None
            time.sleep(0.02)


def main(argv: list[str]) -> int:
    """Supervise ``argv[1]``; exit 0 at once if another supervisor already does."""
    if len(argv) != 2:
        print("usage: python -m shipyard.infra.providers._supervisor DATA_DIR", file=sys.stderr)
        return 2
    layout = Layout(Path(argv[1]).resolve())
    layout.make_dirs()
    lock = _take_lock(layout)
    if lock is None:
        return 0
    pid = os.getpid()
    write_json(layout.pid, {"pid": pid, "start_time": start_time(pid)})
    say(f"supervisor {pid} started for {layout.root}")
    Supervisor(layout).run()
    os.close(lock)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
