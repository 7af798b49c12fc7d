"""Running the real ``git`` on the service's bare repositories.

Every command gets the same environment: the service's own minus any ``GIT_*``
variable (a service started from a git hook must not act on the hook's repository),
without the user's global git configuration (an operator's ``core.hooksPath`` or
``init.templateDir`` must not reach hosted repositories; the system configuration still
applies), with prompts off and pathspecs literal, so a path in a request is never glob
or magic.
"""

from __future__ import annotations

import functools
import os
import subprocess
from collections.abc import Mapping
from pathlib import Path

__all__ = ["GitCommandError", "git_env", "git_program", "init_bare", "run_git"]

GIT = "git"


class GitCommandError(RuntimeError):
    """A git command failed; ``stderr`` says why.

    Not a :class:`~shipyard.errors.ShipyardError`: requests are checked before git runs,
    so a failure here is the server's (a damaged repository), answered with 500.
    """

    def __init__(self, args: list[str], returncode: int, stderr: str) -> None:
        super().__init__(f"git {' '.join(args)} failed ({returncode}): {stderr.strip()[:2000]}")
        self.returncode = returncode
        self.stderr = stderr


def git_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment every git command of the service runs with.

    Not the service's own settings (``SHIPYARD_*``: the signing secret, the database
    URL) — git and its hooks have no use for them — except ``SHIPYARD_CHILD_OF``, the
    mark by which ``shipyard up`` finds a ``git http-backend`` a killed service left.
    """
    env = {
        k: v for k, v in os.environ.items()
        if not k.startswith(("GIT_", "SHIPYARD_")) or k == "SHIPYARD_CHILD_OF"
    }
    env["GIT_CONFIG_GLOBAL"] = os.devnull
    env["GIT_TERMINAL_PROMPT"] = "0"
    env["GIT_LITERAL_PATHSPECS"] = "1"
    env["GIT_NO_REPLACE_OBJECTS"] = "1"  # content answers show the objects as stored
    if extra:
        env.update(extra)
    return env


@functools.cache
def git_program(name: str) -> str:
    """The path of git's own program ``git-<name>`` (run directly: one process less than ``git name``)."""
    proc = subprocess.run([GIT, "--exec-path"], capture_output=True, env=git_env(), check=False)
    path = Path(proc.stdout.decode().strip()) / f"git-{name}"
    if proc.returncode != 0 or not os.access(path, os.X_OK):
        raise GitCommandError(["--exec-path"], proc.returncode, f"no executable {path}")
    return str(path)


def run_git(git_dir: Path, *args: str, input: bytes | None = None) -> bytes:
    """Run ``git args`` on the bare repository ``git_dir``; its stdout, or :class:`GitCommandError`."""
    proc = subprocess.run(
        [GIT, f"--git-dir={git_dir}", *args],
        input=input,
        capture_output=True,
        env=git_env(),
        check=False,
    )
    if proc.returncode != 0:
        raise GitCommandError(list(args), proc.returncode, proc.stderr.decode(errors="replace"))
    return proc.stdout


def init_bare(path: Path, default_branch: str) -> None:
    """A new bare repository at ``path`` that accepts pushes over smart HTTP."""
    proc = subprocess.run(
        [GIT, "init", "--quiet", "--bare", f"--initial-branch={default_branch}", str(path)],
        capture_output=True,
        env=git_env(),
        check=False,
    )
    if proc.returncode != 0:
        raise GitCommandError(["init", "--bare"], proc.returncode, proc.stderr.decode(errors="replace"))
    # Appended directly rather than with ``git config``: one process less per create.
    with (path / "config").open("a", encoding="utf-8") as fh:
        fh.write("[http]\n\treceivepack = true\n")
