"""What an executor is: where the processes of one job run.

The job runner decides *what* to run (shells, scripts, built-in actions); an executor
decides *where*: as plain host processes, inside a bubblewrap sandbox, or inside the
job's container. One :class:`JobSession` lives for one job; every process of that job
goes through :meth:`JobSession.spawn`.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import signal
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

# A bigger pipe lets a chatty step write ahead while the runner masks and reports.
_PIPE_SIZE = 1 << 20
_F_SETPIPE_SZ = 1031


@dataclass(frozen=True, slots=True)
class JobPaths:
    """The host directories of one job. All are created before the session starts."""

    root: Path
    workspace: Path
    temp: Path
    tool_cache: Path
    home: Path

    @classmethod
    def under(cls, root: Path, tool_cache: Path) -> JobPaths:
        """The standard layout below one job directory."""
        return cls(
            root=root,
            workspace=root / "workspace",
            temp=root / "temp",
            tool_cache=tool_cache,
            home=root / "home",
        )

    def create(self) -> None:
        for d in (self.workspace, self.temp, self.tool_cache, self.home):
            d.mkdir(parents=True, exist_ok=True)


@dataclass(frozen=True, slots=True)
class ContainerSpec:
    """``container:`` or one ``services:`` entry, with every expression evaluated."""

    image: str
    env: dict[str, str] = field(default_factory=dict)
    ports: list[str] = field(default_factory=list)
    volumes: list[str] = field(default_factory=list)
    options: str = ""
    credentials: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class JobSpec:
    """Everything an executor needs to set up one job."""

    key: str
    paths: JobPaths
    repository: str = ""  # "owner/name"; names the workspace inside a container
    container: ContainerSpec | None = None
    services: dict[str, ContainerSpec] = field(default_factory=dict)


class Process(Protocol):
    """A running process of a job, its stdout and stderr merged into one pipe."""

    def fileno(self) -> int:
        """The read end of the merged output pipe (non-blocking reads are fine)."""
        ...

    def poll(self) -> int | None:
        """The exit code when the process has exited, else ``None``."""
        ...

    def wait(self, timeout: float | None = None) -> int:
        """Wait for the exit code; raises ``TimeoutError`` after ``timeout`` seconds."""
        ...

    def kill(self, grace: float = 1.0) -> None:
        """End the process and everything it started: SIGTERM, then SIGKILL after ``grace``."""
        ...

    def close(self) -> None:
        """Release the pipe. The process must have exited or been killed."""
        ...


class JobSession(Protocol):
    """One job's place to run processes; closed (containers removed) at job end."""

    base_env: Mapping[str, str]
    """The environment steps start from (the host's, or the container image's)."""

    job_context: dict[str, Any]
    """``job.container`` and ``job.services`` for the ``job`` expression context."""

    def spawn(self, argv: list[str], cwd: str, env: Mapping[str, str]) -> Process:
        """Start ``argv`` in ``cwd`` (as the process sees paths) with exactly ``env``."""
        ...

    def translate_path(self, host_path: str | Path) -> str:
        """A host path of the job (workspace, temp, tool cache) as processes see it."""
        ...

    def has_command(self, name: str) -> bool:
        """Whether ``name`` is found on the session's PATH (for shell defaults)."""
        ...

    def close(self) -> None: ...


class Executor(Protocol):
    """Creates one :class:`JobSession` per job."""

    name: str

    def start_job(self, spec: JobSpec) -> JobSession:
        """Set up the job (sandbox, containers, services); raises ExecutorError if it cannot."""
        ...


def merged_pipe() -> tuple[int, int]:
    """A pipe (read, write) sized for bulk output; the read end is not inherited."""
    r, w = os.pipe()
    with contextlib.suppress(OSError):
        fcntl.fcntl(w, _F_SETPIPE_SZ, _PIPE_SIZE)
    return r, w


def group_alive(pgid: int) -> bool:
    """Whether a live (not zombie) process of the process group is still there.

    Orphans whose new parent never reaps them stay zombies in the group, so a plain
    ``killpg(pgid, 0)`` would report the group alive for ever.
    """
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        entries = os.listdir("/proc")
    except OSError:  # pragma: no cover - no procfs
        return True
    for entry in entries:
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as f:
                stat = f.read()
        except OSError:
            continue
        # Fields after the parenthesised command: state, ppid, pgrp, ...
        fields = stat[stat.rfind(b")") + 2 :].split(b" ", 3)
        if len(fields) >= 3 and int(fields[2]) == pgid and fields[0] not in (b"Z", b"X"):
            return True
    return False


def kill_group(pgid: int, grace: float, reap: Any = None) -> None:
    """SIGTERM the group, then SIGKILL whatever is left after ``grace`` seconds.

    ``reap`` (the leader's ``poll``) is called while waiting so the leader does not
    linger as a zombie member of its own group.
    """
    try:
        os.killpg(pgid, signal.SIGTERM)
    except ProcessLookupError:
        return
    except OSError as err:  # pragma: no cover - EPERM on a foreign group
        if err.errno != errno.EPERM:
            raise
        return
    deadline = time.monotonic() + grace
    delay = 0.002
    while time.monotonic() < deadline:
        if reap is not None:
            reap()
        if not group_alive(pgid):
            return
        time.sleep(delay)
        delay = min(delay * 2, 0.05)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pgid, signal.SIGKILL)
