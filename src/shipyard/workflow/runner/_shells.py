"""``shell:`` of a ``run`` step, resolved as GitHub resolves it on Linux."""

from __future__ import annotations

import os
import shlex
from collections.abc import Callable
from dataclasses import dataclass

from shipyard.errors import WorkflowError

_BUILTIN = {
    "bash": "bash --noprofile --norc -eo pipefail {0}",
    "sh": "sh -e {0}",
    "python": "python {0}",
    "pwsh": "pwsh -command \". '{0}'\"",
    "powershell": "powershell -command \". '{0}'\"",
}
_EXTENSIONS = {
    "bash": ".sh",
    "sh": ".sh",
    "python": ".py",
    "pwsh": ".ps1",
    "powershell": ".ps1",
    "cmd": ".cmd",
}


@dataclass(frozen=True, slots=True)
class ShellCommand:
    """A resolved shell: program and arguments, with ``{0}`` where the script path goes."""

    argv: tuple[str, ...]
    extension: str
    program: str  # the program's base name, e.g. "bash"

    def command(self, script_path: str) -> list[str]:
        return [a.replace("{0}", script_path) for a in self.argv]

    def prepare(self, script: str) -> str:
        """The script text as written to the file (PowerShell gets GitHub's guards)."""
        if self.program in ("pwsh", "powershell"):
            return (
                "$ErrorActionPreference = 'stop'\n"
                f"{script}\n"
                "if ((Test-Path -LiteralPath variable:\\LASTEXITCODE)) "
                "{ exit $LASTEXITCODE }\n"
            )
        return script


def resolve_shell(shell: str | None, has_command: Callable[[str], bool]) -> ShellCommand:
    """The command for ``shell`` (``None``: no shell given anywhere).

    Without a shell GitHub runs ``bash -e {0}`` (no pipefail), or ``sh -e {0}`` when
    there is no bash. ``has_command`` is asked only for those defaults and for
    ``python`` (``python3`` stands in where no ``python`` is installed).
    """
    if shell is None or not shell.strip():
        template = "bash -e {0}" if has_command("bash") else "sh -e {0}"
    else:
        shell = shell.strip()
        if shell == "cmd":
            raise WorkflowError("shell 'cmd' is only available on Windows runners")
        template = _BUILTIN.get(shell, shell)
        if shell == "python" and not has_command("python") and has_command("python3"):
            template = "python3 {0}"
        if "{0}" not in template:
            raise WorkflowError(
                f"invalid shell '{shell}': use one of bash, sh, python, pwsh, or a "
                "command with {0} where the script path goes (e.g. 'perl {0}')"
            )
    try:
        argv = tuple(shlex.split(template))
    except ValueError as err:
        raise WorkflowError(f"invalid shell '{shell}': {err}") from None
    if not argv:
        raise WorkflowError(f"invalid shell '{shell}'")
    program = os.path.basename(argv[0])
    if program == "python3":
        program = "python"
    return ShellCommand(argv, _EXTENSIONS.get(program, ""), program)
