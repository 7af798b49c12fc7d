"""One HAProxy instance in master-worker mode, driven through its master CLI.

Each instance lives in a folder of its own::

    <data_dir>/<id>/
        haproxy.cfg        the configuration (always what the stack asked for)
        haproxy.cfg.new    a candidate, checked with ``haproxy -c`` before it replaces it
        instance.json      pid and start time of the master, digests, the properties applied
        master.sock        the master CLI (mode 0600)
        haproxy.pid        written by HAProxy
        haproxy.log        HAProxy's output: alerts, warnings, servers going up and down

HAProxy runs in the foreground master-worker mode (``-W``) but detached from us (own
session, parent init), with its output appended to ``haproxy.log``. A ``reload`` on the
master CLI makes the master re-execute itself with the new file and fork a new worker,
which takes the listening sockets over from the old one through the master's socket pair
(HAProxy gives that socket pair the ``expose-fd listeners`` level and passes
``-x sockpair@...`` on a reload), so no connection is refused; the old worker finishes
its connections and leaves. The runtime API of the current worker is reached through the
master (``@1 <command>``).
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from shipyard.errors import ProviderError
from shipyard.infra.providers._supervisor_proc import (
    group_members,
    is_running,
    spawn_detached,
    start_time,
    tail_lines,
)

__all__ = ["Instance", "ProcInfo"]

_MASTER = re.compile(r"^(\d+)\s+master\s+(\d+)\s+\[failed:\s*(\d+)\]")
_PROC = re.compile(r"^(\d+)\s+worker\b")
_ALERT_PREFIX = re.compile(r"^\[(ALERT|WARNING|NOTICE)\]\s+\(\d+\)\s+:\s+")


@dataclass(frozen=True)
class ProcInfo:
    """``show proc`` on the master CLI."""

    master: int
    reloads: int
    failed: int
    workers: tuple[int, ...]
    old_workers: tuple[int, ...]


def parse_show_proc(text: str) -> ProcInfo | None:
    master = reloads = failed = 0
    workers: list[int] = []
    old: list[int] = []
    section = "master"
    for line in text.splitlines():
        if line.startswith("# workers"):
            section = "workers"
        elif line.startswith("# old workers"):
            section = "old"
        elif line.startswith("# programs"):
            section = "programs"
        elif (m := _MASTER.match(line)) is not None:
            master, reloads, failed = int(m[1]), int(m[2]), int(m[3])
        elif (m := _PROC.match(line)) is not None and section in ("workers", "old"):
            (workers if section == "workers" else old).append(int(m[1]))
    if not master:
        return None
    return ProcInfo(master, reloads, failed, tuple(workers), tuple(old))


def problems_in(lines: list[str]) -> str:
    """HAProxy's alerts (else its last lines), without the level and pid prefix."""
    alerts = [_ALERT_PREFIX.sub("", line) for line in lines if line.startswith("[ALERT]")]
    chosen = alerts or [_ALERT_PREFIX.sub("", line) for line in lines[-5:]]
    return "\n".join(f"    {line}" for line in chosen)


class Instance:
    """The files and the master of one HAProxy instance (see the module doc)."""

    def __init__(self, directory: Path, binary: str) -> None:
        self.dir = directory
        self.binary = binary
        self.config = directory / "haproxy.cfg"
        self.candidate = directory / "haproxy.cfg.new"
        self.meta = directory / "instance.json"
        self.socket = directory / "master.sock"
        self.log = directory / "haproxy.log"

    # ---- the configuration ----------------------------------------------------------

    def check(self, text: str) -> None:
        """Write ``text`` as the candidate and run ``haproxy -c`` on it.

        Raises ProviderError with HAProxy's message when it refuses; the running
        instance and ``haproxy.cfg`` are untouched either way.
        """
        self.dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        self.candidate.write_text(text)
        try:
            result = subprocess.run(
                [self.binary, "-c", "-f", self.candidate.name], cwd=self.dir,
                capture_output=True, text=True, timeout=30, check=False,
            )
        except (OSError, subprocess.TimeoutExpired) as err:
            raise ProviderError(f"cannot run {self.binary} -c: {err}") from None
        if result.returncode != 0:
            lines = (result.stdout + result.stderr).splitlines()
            raise ProviderError(f"haproxy refused the configuration:\n{problems_in(lines)}")

    def install(self) -> None:
        """Make the checked candidate the configuration."""
        os.replace(self.candidate, self.config)

    # ---- the master -----------------------------------------------------------------

    def start(self, timeout: float = 10.0) -> tuple[int, int]:
        """Start HAProxy on ``haproxy.cfg``; ``(pid, start time)`` of the master once it
        has a worker. ProviderError with HAProxy's alerts when it does not come up."""
        with contextlib.suppress(FileNotFoundError):
            self.socket.unlink()
        offset = self.log.stat().st_size if self.log.exists() else 0
        argv = [self.binary, "-W", "-f", self.config.name, "-p", "haproxy.pid",
                "-S", f"unix@{self.socket.name},mode,600"]
        env = {"PATH": os.environ.get("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")}
        try:
            pid = spawn_detached(argv, cwd=self.dir, env=env, log=self.log)
        except OSError as err:
            raise ProviderError(f"cannot start haproxy: {err}") from None
        started = start_time(pid)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not is_running(pid, started):
                lines = tail_lines(self.log, 30, since=offset)
                raise ProviderError(f"haproxy exited at start:\n{problems_in(lines)}")
            with contextlib.suppress(OSError):
                info = self.show_proc(timeout=1.0)
                if info is not None and info.workers:
                    return pid, started or 0
            time.sleep(0.02)
        self.stop(pid, started)
        raise ProviderError(f"haproxy did not start within {timeout:g} s (see {self.log})")

    def command(self, line: str, timeout: float = 5.0) -> str:
        """One master CLI command's answer (OSError when the master does not answer)."""
        with self._connect(timeout) as sock:
            sock.sendall(line.encode() + b"\n")
            sock.shutdown(socket.SHUT_WR)
            chunks = []
            while True:
                data = sock.recv(65536)
                if not data:
                    break
                chunks.append(data)
        return b"".join(chunks).decode(errors="replace")

    def _connect(self, timeout: float) -> socket.socket:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(timeout)
        try:
            if len(os.fsencode(self.socket)) < 100:
                sock.connect(str(self.socket))
            else:
                # A unix socket path has a 108-byte limit: go through the folder's fd.
                fd = os.open(self.dir, os.O_PATH | os.O_DIRECTORY)
                try:
                    sock.connect(f"/proc/self/fd/{fd}/{self.socket.name}")
                finally:
                    os.close(fd)
        except BaseException:
            sock.close()
            raise
        return sock

    def show_proc(self, timeout: float = 5.0) -> ProcInfo | None:
        return parse_show_proc(self.command("show proc", timeout))

    def reload(self, timeout: float = 20.0) -> ProcInfo:
        """Reload ``haproxy.cfg`` through the master CLI and wait for the new worker.

        ProviderError (with HAProxy's alerts) when the master could not load it: the
        old worker then goes on serving the previous configuration.
        """
        before = self.show_proc()
        if before is None:
            raise ProviderError("haproxy's master CLI did not answer `show proc`")
        offset = self.log.stat().st_size if self.log.exists() else 0
        with contextlib.suppress(OSError):
            self.command("reload")  # the master closes the connection as it re-executes
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            info: ProcInfo | None = None
            with contextlib.suppress(OSError):
                info = self.show_proc(timeout=2.0)
            if info is not None and info.reloads > before.reloads:
                if info.failed > before.failed:
                    lines = tail_lines(self.log, 30, since=offset)
                    raise ProviderError(
                        "haproxy could not load the new configuration and goes on with the "
                        f"previous one:\n{problems_in(lines)}"
                    )
                if info.workers and not set(info.workers) & set(before.workers):
                    return info
            time.sleep(0.02)
        raise ProviderError(f"haproxy did not finish reloading within {timeout:g} s (see {self.log})")

    def server_weights(self) -> dict[tuple[str, str], int]:
        """``(backend, server) -> weight`` in the running worker (the runtime API's view)."""
        text = self.command("@1 show servers state")
        columns: list[str] = []
        found: dict[tuple[str, str], int] = {}
        for line in text.splitlines():
            if line.startswith("# be_id"):
                columns = line[2:].split()
                continue
            fields = line.split()
            if not columns or len(fields) < len(columns) or line.startswith("#"):
                continue
            row = dict(zip(columns, fields, strict=False))
            with contextlib.suppress(KeyError, ValueError):
                found[(row["be_name"], row["srv_name"])] = int(row["srv_uweight"])
        return found

    def set_weight(self, backend: str, server: str, weight: int) -> None:
        answer = self.command(f"@1 set weight {backend}/{server} {weight}").strip()
        if answer:
            raise ProviderError(f"haproxy refused `set weight {backend}/{server} {weight}`: {answer}")

    def stop(self, pid: int | None, started: int | None, timeout: float = 5.0) -> None:
        """Stop the instance: soft stop (SIGUSR1: finish the open connections), then
        SIGTERM, then SIGKILL of the whole process group."""
        if pid is not None and is_running(pid, started):
            for sig, wait in ((signal.SIGUSR1, timeout), (signal.SIGTERM, 2.0)):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, sig)
                deadline = time.monotonic() + wait
                while is_running(pid, started) and time.monotonic() < deadline:
                    time.sleep(0.02)
                if not is_running(pid, started):
                    break
        if pid is None:
            return
        # Workers left by a master killed with SIGKILL: the group is the master's pid;
        # only HAProxy processes are killed, should that pid have been reused.
        name = os.fsencode(os.path.basename(self.binary))
        for member in group_members(pid):
            with contextlib.suppress(OSError):
                argv0 = Path(f"/proc/{member}/cmdline").read_bytes().split(b"\0")[0]
                if os.path.basename(argv0) == name:
                    os.kill(member, signal.SIGKILL)
