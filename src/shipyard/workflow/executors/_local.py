"""The ``local`` executor: steps run as plain processes on this host.

This is what a self-hosted runner does: the host environment (PATH, HOME, LANG, ...)
passes through, and nothing stops a step from touching files outside its workspace.
"""

from __future__ import annotations

import os
import select
import shutil
import subprocess
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from shipyard.errors import ExecutorError
from shipyard.workflow.executors._base import JobSpec, kill_group, merged_pipe

_HAS_PIDFD = hasattr(os, "pidfd_open")


class HostProcess:
    """A host process in its own session, so killing its group ends all it started."""

    def __init__(self, argv: list[str], cwd: str, env: Mapping[str, str]) -> None:
        r, w = merged_pipe()
        try:
            self._popen = subprocess.Popen(
                argv,
                cwd=cwd,
                env=dict(env),
                stdin=subprocess.DEVNULL,
                stdout=w,
                stderr=w,
                start_new_session=True,
                close_fds=True,
            )
        except FileNotFoundError as err:
            os.close(r)
            missing = err.filename if err.filename is not None else argv[0]
            if missing == cwd or not os.path.isdir(cwd):
                raise ExecutorError(f"working directory '{cwd}' does not exist") from None
            raise ExecutorError(f"cannot run '{argv[0]}': command not found") from None
        except PermissionError:
            os.close(r)
            raise ExecutorError(f"cannot run '{argv[0]}': permission denied") from None
        finally:
            os.close(w)
        self._fd = r
        self.pid = self._popen.pid

    def fileno(self) -> int:
        return self._fd

    def poll(self) -> int | None:
        return self._popen.poll()

    def wait(self, timeout: float | None = None) -> int:
        code = self._popen.poll()
        if code is not None:
            return code
        if timeout is not None and _HAS_PIDFD:
            # Popen.wait(timeout) polls with sleeps; a pidfd wakes up exactly at exit.
            try:
                pidfd = os.pidfd_open(self.pid)
            except OSError:
                pass
            else:
                try:
                    select.select([pidfd], [], [], timeout)
                finally:
                    os.close(pidfd)
                code = self._popen.poll()
                if code is None:
                    raise TimeoutError(f"process {self.pid} still running")
                return code
        try:
            return self._popen.wait(timeout)
        except subprocess.TimeoutExpired:
            raise TimeoutError(f"process {self.pid} still running") from None

    def kill(self, grace: float = 1.0) -> None:
        kill_group(self.pid, grace, self._popen.poll)
        self._popen.poll()

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1


class LocalSession:
    """Processes of one job on the host; host paths are used as they are."""

    def __init__(self, spec: JobSpec, base_env: Mapping[str, str], commands: _CommandCache) -> None:
        self.spec = spec
        self.base_env: Mapping[str, str] = base_env
        self.job_context: dict[str, Any] = {"container": {}, "services": {}}
        self._commands = commands

    def spawn(self, argv: list[str], cwd: str, env: Mapping[str, str]) -> HostProcess:
        return HostProcess(argv, cwd, env)

    def translate_path(self, host_path: str | Path) -> str:
        return str(host_path)

    def has_command(self, name: str) -> bool:
        return self._commands.has(name)

    def close(self) -> None:
        pass


class _CommandCache:
    """``shutil.which`` answers, looked up once per executor, not once per step."""

    def __init__(self, path: str | None) -> None:
        self._path = path
        self._known: dict[str, bool] = {}
        self._lock = threading.Lock()

    def has(self, name: str) -> bool:
        with self._lock:
            found = self._known.get(name)
            if found is None:
                found = shutil.which(name, path=self._path) is not None
                self._known[name] = found
            return found


class LocalExecutor:
    """Runs every job's processes directly on this host."""

    name = "local"

    def __init__(self, env: Mapping[str, str] | None = None) -> None:
        self._env = dict(os.environ if env is None else env)
        self._commands = _CommandCache(self._env.get("PATH"))

    def start_job(self, spec: JobSpec) -> LocalSession:
        if spec.container is not None or spec.services:
            raise ExecutorError(
                f"job '{spec.key}' uses 'container:' or 'services:', which need the docker "
                "executor (--executor docker)"
            )
        return LocalSession(spec, self._env, self._commands)
