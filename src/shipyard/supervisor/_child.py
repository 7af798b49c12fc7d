"""One supervised child process: started, logged, restarted with backoff, stopped.

Each child runs in its own process group, so a Ctrl-C in the terminal reaches the
supervisor only and the supervisor stops children in order; and each asks the kernel
(``PR_SET_PDEATHSIG``) for SIGTERM when the supervisor dies, so a supervisor killed
with SIGKILL leaves nothing running.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import os
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from shipyard.supervisor._files import remove_pid_file, write_pid_file

__all__ = ["Child", "ChildSpec", "RotatingLog", "describe_exit"]

_PR_SET_PDEATHSIG = 1
_libc: ctypes.CDLL | None = None
with contextlib.suppress(OSError, TypeError):
    _libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)

#: Backoff between restarts of a child that keeps dying: 1 s doubling to 30 s.
BACKOFF_START = 1.0
BACKOFF_MAX = 30.0
#: A child that ran this long before dying is restarted after the shortest backoff.
STABLE_AFTER = 60.0


def _die_with_parent(parent: int) -> Callable[[], None]:
    def preexec() -> None:
        if _libc is not None:
            _libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
        if os.getppid() != parent:  # the supervisor died before prctl took effect
            os._exit(1)

    return preexec


def describe_exit(code: int) -> str:
    """``code 3`` or ``signal 9 (SIGKILL)``, for a Popen return code."""
    if code < 0:
        try:
            name = signal.Signals(-code).name
        except ValueError:
            name = "unknown"
        return f"code {code} (killed by {name})"
    return f"code {code}"


class RotatingLog:
    """An append-only log file rotated by size: ``x.log``, ``x.log.1`` ... ``x.log.N``."""

    def __init__(self, path: Path, *, max_bytes: int = 10 << 20, backups: int = 3) -> None:
        self.path = path
        self.max_bytes = max_bytes
        self.backups = backups
        self._lock = threading.Lock()
        path.parent.mkdir(parents=True, exist_ok=True)
        self._fh: IO[bytes] = path.open("ab")
        self._size = self._fh.tell()

    def write(self, data: bytes) -> None:
        with self._lock:
            if self._size + len(data) > self.max_bytes and self._size > 0:
                self._rotate()
            self._fh.write(data)
            self._fh.flush()
            self._size += len(data)

    def _rotate(self) -> None:
        self._fh.close()
        for i in range(self.backups - 1, 0, -1):
            older = self.path.with_name(f"{self.path.name}.{i}")
            if older.exists():
                os.replace(older, self.path.with_name(f"{self.path.name}.{i + 1}"))
        if self.backups > 0:
            os.replace(self.path, self.path.with_name(f"{self.path.name}.1"))
        else:
            self.path.unlink(missing_ok=True)
        self._fh = self.path.open("ab")
        self._size = 0

    def tail(self, lines: int) -> list[str]:
        """The last ``lines`` lines written (from the current file)."""
        with self._lock:
            try:
                data = self.path.read_bytes()[-64 * 1024 :]
            except OSError:
                return []
        return data.decode(errors="replace").splitlines()[-lines:]

    def close(self) -> None:
        with self._lock:
            self._fh.close()


@dataclass
class ChildSpec:
    """How to start one child."""

    name: str
    argv: Sequence[str]
    env: dict[str, str]
    health_url: str | None = None  # services answer /healthz; runners have none
    pass_fds: tuple[int, ...] = ()  # inherited as they are (a service's listening socket)


@dataclass
class Child:
    """A child process and its restart bookkeeping."""

    spec: ChildSpec
    log: RotatingLog
    run_dir: Path
    echo: Callable[[str, str], None] | None = None  # (child name, line) for --verbose
    proc: subprocess.Popen[bytes] | None = None
    started_at: float = 0.0
    restarts: int = 0
    backoff: float = BACKOFF_START
    restart_at: float | None = None
    awaiting_health: bool = False
    _pump: threading.Thread | None = field(default=None, repr=False)

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc is not None else None

    def start(self) -> None:
        """Start the process and the thread copying its output to the log."""
        self.log.write(f"--- {time.strftime('%Y-%m-%d %H:%M:%S')} starting {self.name}\n".encode())
        self.proc = subprocess.Popen(
            list(self.spec.argv),
            env=self.spec.env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            process_group=0,
            preexec_fn=_die_with_parent(os.getpid()),
            pass_fds=self.spec.pass_fds,
        )
        self.started_at = time.monotonic()
        self.restart_at = None
        write_pid_file(self.run_dir, self.name, self.proc.pid)
        assert self.proc.stdout is not None
        self._pump = threading.Thread(
            target=self._copy_output, args=(self.proc.stdout,), name=f"log-{self.name}", daemon=True
        )
        self._pump.start()

    def _copy_output(self, stream: IO[bytes]) -> None:
        with stream:
            for line in iter(stream.readline, b""):
                self.log.write(line)
                if self.echo is not None:
                    self.echo(self.name, line.decode(errors="replace").rstrip("\n"))

    def poll(self) -> int | None:
        """The exit code when the process has ended, else None."""
        return None if self.proc is None else self.proc.poll()

    def schedule_restart(self, now: float) -> float:
        """Plan the next start after a death; returns the delay chosen."""
        if now - self.started_at >= STABLE_AFTER:
            self.backoff = BACKOFF_START
        delay = self.backoff
        self.backoff = min(self.backoff * 2, BACKOFF_MAX)
        self.restart_at = now + delay
        self.restarts += 1
        remove_pid_file(self.run_dir, self.name)
        return delay

    def signal(self, sig: int) -> None:
        if self.proc is not None and self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.proc.pid, sig)

    def kill_group(self) -> None:
        """SIGKILL the child and anything it started (its process group)."""
        if self.proc is None:
            return
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.proc.pid, signal.SIGKILL)

    def wait(self, timeout: float) -> bool:
        """Wait for the process to end; True when it did."""
        if self.proc is None:
            return True
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            return False
        return True

    def finish(self) -> None:
        """After the process ended: flush its output and drop its pid file."""
        if self._pump is not None:
            self._pump.join(5)
        remove_pid_file(self.run_dir, self.name)
