"""Leases on a local state: who is changing it, since when, and until when.

A lease is the file ``lease.json`` in the state folder: its id, owner (``user@host``,
pid, and when that process started), operation, start and expiry. Its holder renews it
every ``ttl / 3`` seconds. The next operation takes a lease over

* at once when its holder ran on this host and its process is gone: no process has its
  pid any more, or the one that has it started at another time (the pid was reused),
  or is a zombie (``/proc/<pid>/stat`` tells);
* otherwise once it expires unrenewed (its holder was killed on another host sharing
  the state folder, or its machine stopped): a process on another host cannot be seen.

Every change to the lease file (take, take over, renew, release) happens while holding
an exclusive ``flock`` on ``lease.lock``, and the new content is written under a
temporary name and renamed into place: so two processes that both find the same dead or
expired lease cannot both take it (the second one to get the ``flock`` reads the first
one's fresh lease), a reader never sees half a lease, and a process killed while
changing the lease leaves the old or the new one (the kernel drops its ``flock`` with
it).

The lease file is not fsync'd: it matters only while its holder runs; after a machine
crash its holder is gone and the lease (or its absence) is taken over as expired.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from shipyard.errors import LockedError, StateError

__all__ = ["Lease", "LeaseFile", "LockInfo", "default_owner", "holder_gone", "process_start"]

LEASE_FILE = "lease.json"
_Stamp = tuple[int, int, int] | None
GUARD_FILE = "lease.lock"
_boot_id: str | None = None


def default_owner() -> str:
    """``user@host`` of this process, for the lease and the versions it writes."""
    user = os.environ.get("USER") or os.environ.get("LOGNAME")
    if not user:
        try:
            import pwd

            user = pwd.getpwuid(os.getuid()).pw_name
        except (ImportError, KeyError):
            user = str(os.getuid())
    return f"{user}@{os.uname().nodename}"


def _clock(moment: datetime) -> str:
    """``12:01:07`` today, ``2025-03-01 12:01:07`` another day, in local time."""
    local = moment.astimezone()
    if local.date() == datetime.now().astimezone().date():
        return local.strftime("%H:%M:%S")
    return local.strftime("%Y-%m-%d %H:%M:%S")


def _stat(pid: int) -> tuple[str, str] | None:
    """The state letter of process ``pid`` and when it started (``<boot id>:<clock
    ticks since boot>``, from ``/proc``); None when ``/proc`` cannot tell (not Linux,
    the process is gone, or hidden from this user)."""
    global _boot_id
    try:
        data = Path(f"/proc/{pid}/stat").read_bytes()
        if _boot_id is None:
            _boot_id = Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        return None
    # The command name in parentheses may hold anything: the fields follow its last ")".
    fields = data[data.rfind(b")") + 2 :].split()
    if len(fields) < 20:
        return None
    return fields[0].decode(), f"{_boot_id}:{fields[19].decode()}"


def process_start(pid: int) -> str | None:
    """When process ``pid`` started (comparable between calls), None if unknown."""
    found = _stat(pid)
    return found[1] if found is not None else None


def holder_gone(info: LockInfo) -> bool:
    """Whether the holder of ``info`` ran on this host and its process is gone."""
    if info.host != os.uname().nodename:
        return False  # another machine's processes cannot be seen: its lease expires
    try:
        os.kill(info.pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        pass  # another user's process: it exists
    found = _stat(info.pid)
    if found is None:
        return False  # nothing tells whether that process is the holder: assume it is
    state, start = found
    if state in ("Z", "X"):  # dead, not yet reaped by its parent
        return True
    return info.process_start is not None and start != info.process_start


@dataclass(frozen=True, slots=True)
class LockInfo:
    """The lease on a state: who holds it for what, since and until when (UTC).

    ``process_start`` identifies the holder's process beyond its pid (when it started),
    so that a pid reused by another process is not taken for the holder.
    """

    id: str
    owner: str
    pid: int
    host: str
    operation: str
    started: datetime
    expires: datetime
    ttl: float
    process_start: str | None = None

    def describe(self) -> str:
        """``alice@host (pid 42) running apply since 12:01:07``."""
        who = (
            f"{self.owner} (pid {self.pid})"
            if self.owner.endswith(f"@{self.host}")
            else f"{self.owner} (pid {self.pid} on {self.host})"
        )
        return f"{who} running {self.operation} since {_clock(self.started)}"

    def __str__(self) -> str:
        return self.describe()

    def expired(self, now: datetime | None = None) -> bool:
        return self.expires <= (now or datetime.now(UTC))

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "owner": self.owner,
            "pid": self.pid,
            "host": self.host,
            "operation": self.operation,
            "started": self.started.isoformat(),
            "expires": self.expires.isoformat(),
            "ttl": self.ttl,
            "process_start": self.process_start,
        }

    @classmethod
    def from_json(cls, data: Any) -> LockInfo:
        if not isinstance(data, dict):
            raise ValueError("not an object")
        return cls(
            id=str(data["id"]),
            owner=str(data["owner"]),
            pid=int(data["pid"]),
            host=str(data["host"]),
            operation=str(data["operation"]),
            started=datetime.fromisoformat(data["started"]),
            expires=datetime.fromisoformat(data["expires"]),
            ttl=float(data["ttl"]),
            process_start=None if data.get("process_start") is None else str(data["process_start"]),
        )


def _locked_message(info: LockInfo, waited: float) -> str:
    head = (
        f"state is still locked after waiting {waited:g} s, by {info.describe()}"
        if waited > 0
        else f"state is locked by {info.describe()}"
    )
    return (
        f"{head}; the lease expires at {_clock(info.expires)} unless that operation renews "
        f"it (every {info.ttl / 3:g} s while it runs). Wait for it with --lock-timeout "
        "SECONDS, or, if that process is gone, take the lease with --force-unlock"
    )


def _takeover(current: LockInfo, now: datetime, force: bool) -> str | None:
    """Why ``current`` may be taken over (what to tell the user), None if it may not."""
    who = f"{current.owner} (pid {current.pid}"
    since = f"running {current.operation} since {_clock(current.started)}"
    if force:
        return f"took over the lease of {current.describe()} (forced)"
    if holder_gone(current):
        return f"took over the lease of {who}, no longer running), which was {since}"
    if current.expired(now):
        return (f"took over the expired lease of {current.describe()}: it was not renewed"
                f" by {_clock(current.expires)}")
    return None


class LeaseFile:
    """The lease of one state folder."""

    def __init__(self, dir: Path, ttl: float) -> None:
        if ttl <= 0:
            raise ValueError("lease_ttl must be positive")
        self.dir = dir
        self.ttl = ttl
        self.path = dir / LEASE_FILE
        self._guard_path = dir / GUARD_FILE

    @contextlib.contextmanager
    def _guard(self) -> Iterator[None]:
        fd = os.open(self._guard_path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)  # closing drops the flock

    def info(self) -> LockInfo | None:
        """The current lease, expired or not; None when nobody holds one."""
        try:
            text = self.path.read_bytes()
        except FileNotFoundError:
            return None
        try:
            return LockInfo.from_json(json.loads(text))
        except (ValueError, KeyError, TypeError):
            # Only a machine crash mid-rename leaves this: nobody holds the lease.
            return None

    def _write(self, info: LockInfo) -> _Stamp:
        # A fixed temporary name is safe: every writer holds the guard.
        tmp = self.dir / f".{LEASE_FILE}.tmp"
        tmp.write_text(json.dumps(info.to_json()), encoding="utf-8")
        os.replace(tmp, self.path)
        return self._stamp()

    def _stamp(self) -> _Stamp:
        """Identity of the lease file as last written: every write makes a new inode."""
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            return None
        return (st.st_ino, st.st_mtime_ns, st.st_size)

    def acquire(
        self, owner: str, operation: str, *, wait: float = 0.0, force: bool = False
    ) -> Lease:
        """Take the lease, taking over an expired one, one whose holder's process on
        this host is gone (or any with ``force``).

        Waits up to ``wait`` seconds for the holder to finish; raises
        :class:`LockedError` naming the holder if it does not.
        """
        self.dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        owner = owner or default_owner()
        deadline = time.monotonic() + max(wait, 0.0)
        delay = 0.02
        while True:
            with self._guard():
                current = self.info()
                now = datetime.now(UTC)
                why = None if current is None else _takeover(current, now, force)
                if current is None or why is not None:
                    mono = time.monotonic()
                    mine = LockInfo(
                        id=os.urandom(16).hex(),
                        owner=owner,
                        pid=os.getpid(),
                        host=os.uname().nodename,
                        operation=operation,
                        started=now,
                        expires=now + timedelta(seconds=self.ttl),
                        ttl=self.ttl,
                        process_start=process_start(os.getpid()),
                    )
                    return Lease(self, mine, mono, self._write(mine), replaced=current, takeover=why)
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise LockedError(_locked_message(current, wait))
            until_expiry = (current.expires - datetime.now(UTC)).total_seconds()
            time.sleep(max(0.005, min(delay, remaining, until_expiry + 0.005)))
            delay = min(delay * 1.5, 0.5)

    def force_unlock(self) -> LockInfo | None:
        """Remove the lease whoever holds it; returns the lease removed, if any."""
        if not self.dir.exists():
            return None
        with self._guard():
            current = self.info()
            self.path.unlink(missing_ok=True)
            return current


class Lease:
    """A lease this process holds: renewed in a thread until released."""

    def __init__(
        self,
        file: LeaseFile,
        info: LockInfo,
        taken_mono: float,
        stamp: _Stamp,
        *,
        replaced: LockInfo | None = None,
        takeover: str | None = None,
    ) -> None:
        self.file = file
        self.info = info
        # The lease this one took over (its holder gone, expired, or forced), and what
        # to tell the user about it.
        self.replaced = replaced
        self.takeover = takeover
        self._stamp = stamp
        self._valid_until = taken_mono + file.ttl
        self._lost: str | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start_renewing(self) -> None:
        self._thread = threading.Thread(
            target=self._renew_loop, name="shipyard-state-lease", daemon=True
        )
        self._thread.start()

    def _renew_loop(self) -> None:
        while not self._stop.wait(self.file.ttl / 3):
            try:
                self.renew()
            except LockedError:
                return
            except OSError:
                continue  # retried at the next tick, and by check() at the next change

    def renew(self) -> None:
        """Push the expiry ``ttl`` seconds ahead; LockedError if the lease was lost."""
        if self._lost is not None:
            raise LockedError(self._lost)
        mono = time.monotonic()
        with self.file._guard():
            current = self.file.info()
            if current is None or current.id != self.info.id:
                self._lose(current)
            now = datetime.now(UTC)
            renewed = replace(self.info, expires=now + timedelta(seconds=self.file.ttl))
            self._stamp = self.file._write(renewed)
            self.info = renewed
            self._valid_until = mono + self.file.ttl

    def _lose(self, current: LockInfo | None) -> None:
        self._lost = (
            f"the lease on the state was taken by {current.describe()}"
            if current is not None
            else "the lease on the state was removed (force-unlocked)"
        )
        raise LockedError(self._lost)

    def check(self) -> None:
        """Raise LockedError unless this process may still write.

        Cheap enough for every change: the lease must not be overdue, and the lease
        file must be the one this process last wrote (one ``stat``). Otherwise the file
        is read under the guard: a lease that is overdue (this process was suspended,
        its renewals starved) but still this process's is renewed and the change goes
        on; one that another process took over or removed is lost for good.
        """
        if self._lost is not None:
            raise LockedError(self._lost)
        if time.monotonic() >= self._valid_until:
            self.renew()
        elif self.file._stamp() != self._stamp:
            self.verify()

    def verify(self) -> None:
        """Check against the lease file that this process still holds the lease."""
        if self._lost is not None:
            raise LockedError(self._lost)
        with self.file._guard():
            current = self.file.info()
            if current is None or current.id != self.info.id:
                self._lose(current)
            self._stamp = self.file._stamp()
        if time.monotonic() >= self._valid_until:
            self.renew()

    def release(self) -> None:
        """Stop renewing and remove the lease if it is still this process's."""
        self._stop.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join()
        if self._lost is not None:
            return
        try:
            with self.file._guard():
                current = self.file.info()
                if current is not None and current.id == self.info.id:
                    self.file.path.unlink(missing_ok=True)
        except OSError as e:
            raise StateError(f"cannot release the lease {self.file.path}: {e}") from e
        self._lost = "the session is closed"
