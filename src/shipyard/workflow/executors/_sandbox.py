"""The ``sandbox`` executor: each step runs inside a bubblewrap sandbox.

The host's root filesystem is visible read-only; only the job's workspace, temp dir,
home and the tool cache are writable, ``/tmp`` is private, and the step gets its own
PID namespace (so a timeout or the end of the step leaves nothing behind). With
``network=False`` the step also gets an empty network namespace (loopback only).

A step's background processes end with the step: each step is its own sandbox.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from shipyard.errors import ExecutorError
from shipyard.workflow.executors._base import JobSpec
from shipyard.workflow.executors._local import HostProcess, _CommandCache


class SandboxSession:
    """One job's processes, each wrapped in ``bwrap`` with the job's writable binds."""

    def __init__(
        self,
        spec: JobSpec,
        bwrap: str,
        base_env: Mapping[str, str],
        network: bool,
        commands: _CommandCache,
    ) -> None:
        self.spec = spec
        paths = spec.paths
        env = dict(base_env)
        env["HOME"] = str(paths.home)
        env["TMPDIR"] = "/tmp"
        self.base_env: Mapping[str, str] = env
        self.job_context: dict[str, Any] = {"container": {}, "services": {}}
        self._commands = commands
        prefix = [
            bwrap,
            "--ro-bind",
            "/",
            "/",
            "--dev",
            "/dev",
            "--proc",
            "/proc",
            "--tmpfs",
            "/tmp",
            "--tmpfs",
            "/dev/shm",
        ]
        # Binds after the /tmp tmpfs so job directories below /tmp stay visible.
        writable = [paths.workspace, paths.temp, paths.home, paths.tool_cache]
        for d in sorted({str(p) for p in writable}):
            prefix += ["--bind", d, d]
        prefix += ["--unshare-pid", "--unshare-ipc", "--unshare-uts", "--die-with-parent"]
        if not network:
            prefix.append("--unshare-net")
        if os.geteuid() == 0:
            # As root bwrap would keep every capability; a step needs none of them.
            prefix += ["--cap-drop", "ALL"]
        self._prefix = prefix

    def spawn(self, argv: list[str], cwd: str, env: Mapping[str, str]) -> HostProcess:
        if not os.path.isdir(cwd):
            raise ExecutorError(f"working directory '{cwd}' does not exist")
        return HostProcess([*self._prefix, "--chdir", cwd, "--", *argv], cwd, env)

    def translate_path(self, host_path: str | Path) -> str:
        return str(host_path)

    def has_command(self, name: str) -> bool:
        return self._commands.has(name)

    def close(self) -> None:
        pass


class SandboxExecutor:
    """Runs steps under bubblewrap; raises ExecutorError at creation when it cannot."""

    name = "sandbox"

    def __init__(
        self,
        *,
        network: bool = True,
        bwrap: str | None = None,
        env: Mapping[str, str] | None = None,
    ) -> None:
        found = shutil.which(bwrap or "bwrap")
        if found is None:
            raise ExecutorError("bubblewrap (bwrap) is not installed: apt-get install bubblewrap")
        self._bwrap = found
        self.network = network
        self._env = dict(os.environ if env is None else env)
        self._commands = _CommandCache(self._env.get("PATH"))
        self._probe()

    def _probe(self) -> None:
        # Namespaces can be forbidden (unprivileged containers, sysctl); say so up front
        # instead of failing every step.
        argv = [
            self._bwrap,
            "--ro-bind",
            "/",
            "/",
            "--dev",
            "/dev",
            "--proc",
            "/proc",
            "--unshare-pid",
            "--die-with-parent",
        ]
        if not self.network:
            argv.append("--unshare-net")
        argv += ["--", "true"]
        try:
            done = subprocess.run(argv, capture_output=True, text=True, timeout=30, check=False)
        except (OSError, subprocess.TimeoutExpired) as err:
            raise ExecutorError(f"bubblewrap cannot start a sandbox here: {err}") from None
        if done.returncode != 0:
            detail = (done.stderr or done.stdout).strip() or f"exit code {done.returncode}"
            raise ExecutorError(f"bubblewrap cannot start a sandbox here: {detail}")

    def start_job(self, spec: JobSpec) -> SandboxSession:
        if spec.container is not None or spec.services:
            raise ExecutorError(
                f"job '{spec.key}' uses 'container:' or 'services:', which need the docker "
                "executor (--executor docker)"
            )
        return SandboxSession(spec, self._bwrap, self._env, self.network, self._commands)
