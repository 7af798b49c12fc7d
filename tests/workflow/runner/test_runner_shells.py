"""Shell resolution of ``run:`` steps, as GitHub does it on Linux."""

from __future__ import annotations

from pathlib import Path

import pytest

from shipyard.errors import WorkflowError
from shipyard.workflow._runtime import Conclusion
from shipyard.workflow.runner import resolve_shell
from tests.helpers.jobrun import run_job


def _has(*names: str):  # type: ignore[no-untyped-def]
    return lambda name: name in names


class TestResolveShell:
    """The command line each shell name stands for."""

    def test_default_is_bash_without_pipefail(self) -> None:
        shell = resolve_shell(None, _has("bash"))
        assert shell.command("/t/s.sh") == ["bash", "-e", "/t/s.sh"]
        assert shell.extension == ".sh"

    def test_default_falls_back_to_sh_without_bash(self) -> None:
        assert resolve_shell(None, _has()).command("/t/s.sh") == ["sh", "-e", "/t/s.sh"]

    def test_named_shells(self) -> None:
        assert resolve_shell("bash", _has()).command("x") == [
            "bash", "--noprofile", "--norc", "-eo", "pipefail", "x",
        ]
        assert resolve_shell("sh", _has()).command("x") == ["sh", "-e", "x"]
        assert resolve_shell("python", _has("python")).command("x.py") == ["python", "x.py"]
        pwsh = resolve_shell("pwsh", _has())
        assert pwsh.command("/t/s.ps1") == ["pwsh", "-command", ". '/t/s.ps1'"]
        assert pwsh.extension == ".ps1"

    def test_python_falls_back_to_python3(self) -> None:
        shell = resolve_shell("python", _has("python3"))
        assert shell.command("x.py") == ["python3", "x.py"]
        assert shell.extension == ".py"

    def test_custom_template_keeps_quoted_arguments(self) -> None:
        shell = resolve_shell("perl -w '{0}' --flag", _has())
        assert shell.command("/t/s") == ["perl", "-w", "/t/s", "--flag"]
        assert shell.extension == ""
        assert resolve_shell("bash -x {0}", _has()).extension == ".sh"

    def test_pwsh_scripts_get_githubs_error_guards(self) -> None:
        text = resolve_shell("pwsh", _has()).prepare("Write-Host hi")
        assert text.startswith("$ErrorActionPreference = 'stop'\nWrite-Host hi\n")
        assert "exit $LASTEXITCODE" in text

    def test_unknown_shell_without_placeholder_is_refused(self) -> None:
        with pytest.raises(WorkflowError, match=r"invalid shell 'fish'"):
            resolve_shell("fish", _has())
        with pytest.raises(WorkflowError, match="only available on Windows"):
            resolve_shell("cmd", _has())


WF = """
on: push
jobs:
  build:
    runs-on: ubuntu-latest
    {defaults}
    steps:
      - id: s
        {shell}
        run: |
          {script}
"""


def _run(tmp_path: Path, script: str, shell: str = "", defaults: str = ""):  # type: ignore[no-untyped-def]
    return run_job(WF.format(shell=shell, script=script, defaults=defaults), tmp_path)


class TestShellBehaviour:
    """Scripts really run under the resolved shell."""

    def test_default_shell_has_no_pipefail(self, tmp_path: Path) -> None:
        result, rep = _run(tmp_path, "false | true; echo survived")
        assert result.conclusion is Conclusion.SUCCESS
        assert rep.step_lines(0) == ["survived"]

    def test_bash_shell_fails_on_a_failing_pipe(self, tmp_path: Path) -> None:
        result, rep = _run(tmp_path, "false | true; echo survived", shell="shell: bash")
        assert result.conclusion is Conclusion.FAILURE
        assert rep.step_lines(0) == []

    def test_default_shell_stops_at_the_first_error(self, tmp_path: Path) -> None:
        result, rep = _run(tmp_path, "echo before; false; echo after")
        assert rep.step_lines(0) == ["before"]
        assert result.steps[0].error == "Process completed with exit code 1."

    def test_sh_shell(self, tmp_path: Path) -> None:
        _, rep = _run(tmp_path, 'echo "$0" | grep -c "\\.sh$"', shell="shell: sh")
        assert rep.step_lines(0) == ["1"]

    def test_python_shell_runs_a_py_file(self, tmp_path: Path) -> None:
        result, rep = _run(
            tmp_path, "import sys; print(sys.argv[0].endswith('.py'), 6 * 7)", shell="shell: python"
        )
        assert result.conclusion is Conclusion.SUCCESS
        assert rep.step_lines(0) == ["True 42"]

    def test_custom_shell_template(self, tmp_path: Path) -> None:
        _, rep = _run(tmp_path, "echo from custom", shell="shell: bash --noprofile {0} extra-arg")
        assert rep.step_lines(0) == ["from custom"]

    def test_job_defaults_choose_the_shell(self, tmp_path: Path) -> None:
        result, _ = _run(
            tmp_path, "false | true",
            defaults="defaults:\n      run:\n        shell: bash",
        )
        assert result.conclusion is Conclusion.FAILURE

    def test_missing_shell_program_fails_the_step_clearly(self, tmp_path: Path) -> None:
        result, _ = _run(tmp_path, "hello", shell="shell: no-such-shell-xyz {0}")
        assert result.steps[0].conclusion is Conclusion.FAILURE
        assert result.steps[0].error == "cannot run 'no-such-shell-xyz': command not found"

    def test_script_text_is_a_template(self, tmp_path: Path) -> None:
        _, rep = _run(tmp_path, "echo ${{ github.repository }} '${{ 1 == 1 }}'")
        assert rep.step_lines(0) == ["octo/widgets true"]
