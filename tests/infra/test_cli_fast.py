"""The fast path of ``shipyard infra``: the same values as Typer, or Typer itself.

:func:`shipyard.cli._infra_fast.parse_fast` reads a plain command line from the commands'
own declarations. For every command line it accepts, Typer must call the command with
exactly the same values (checked by running a twin Typer app whose commands record what
they get); for the rest it declines and Typer runs as before, with its messages.
"""

from __future__ import annotations

import functools
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import typer

from shipyard.cli._infra import infra_app
from shipyard.cli._infra_fast import parse_fast
from tests.infra.test_cli_infra import SHIPYARD, env


def typer_values(argv: list[str]) -> tuple[str, dict[str, Any]]:
    """The command Typer runs for ``argv`` and the values it passes it."""
    seen: dict[str, Any] = {}
    twin = typer.Typer(add_completion=False, pretty_exceptions_enable=False)
    for info in infra_app.registered_commands:
        original = info.callback
        assert original is not None

        def record(*, _original: Any = original, **values: Any) -> None:
            seen["command"] = _original.__name__
            seen["values"] = values

        twin.command(info.name)(functools.wraps(original)(record))
    twin(args=argv, prog_name="shipyard infra", standalone_mode=False)
    return seen["command"], seen["values"]


ACCEPTED = [
    ["plan"],
    ["plan", "--dir", "stack", "-var", "a=1", "--var", "b=2", "-var-file", "v.yaml", "--var-file", "w.json",
     "-out", "p.json", "--target", "x", "-target", "y[0]", "--no-refresh", "--destroy", "--json",
     "--parallelism", "3", "--lock-timeout", "2.5", "--force-unlock", "--state-dir", "st"],
    ["plan", "--refresh", "-d", "s", "--parallelism=7", "--dir=other", "-parallelism", "2"],
    ["apply", "saved.plan", "--yes"],
    ["apply", "-auto-approve", "-d", "s", "-var", "k=v=w"],
    ["apply", "--auto-approve", "-y", "--lock-timeout", "1e1", "--var", "-1"],
    ["destroy", "-y", "--target", "modules.api"],
    ["drift", "--json", "--parallelism", "1"],
    ["import", "web[0]", "abc", "--lock-timeout", "0"],
    ["import", "--dir", "s", "null.x", "id-1"],
    ["output"],
    ["output", "url", "--json"],
    ["graph", "-var", "a=b"],
    ["validate", "-d", "s"],
    ["providers", "null", "--json"],
]

DECLINED = [
    [],
    ["plan", "--help"],
    ["apply", "-h"],
    ["nope"],
    ["state", "list"],
    ["plan", "--parallelism", "0"],
    ["plan", "--parallelism", "x"],
    ["plan", "--parallelism", "1.5"],
    ["plan", "--lock-timeout", "-1"],
    ["plan", "--bogus"],
    ["plan", "--dir"],
    ["plan", "-dstack"],
    ["plan", "--json=yes"],
    ["plan", "--", "x"],
    ["plan", "extra"],
    ["import", "only-the-address"],
    ["apply", "a.plan", "b.plan"],
]


@pytest.mark.parametrize("argv", ACCEPTED, ids=" ".join)
def test_accepted_command_lines_get_the_values_typer_gives(argv: list[str]) -> None:
    parsed = parse_fast(argv)
    assert parsed is not None
    function, values = parsed
    assert (function.__name__, values) == typer_values(argv)


@pytest.mark.parametrize("argv", DECLINED, ids=lambda a: " ".join(a) or "(nothing)")
def test_anything_else_is_left_to_typer(argv: list[str]) -> None:
    assert parse_fast(argv) is None


def test_the_fast_path_runs_without_pydantic_and_typer_keeps_its_messages(tmp_path: Path) -> None:
    """A valid command runs without importing pydantic (nor Rich); a mistake gets
    Typer's usual message and exit status 2."""
    stack = tmp_path / "stack"
    stack.mkdir()
    (stack / "main.yaml").write_text('resources:\n  a:\n    type: "null"\n')
    code = (
        "import sys\n"
        "from shipyard.cli import main\n"
        f"sys.argv = ['shipyard', 'infra', 'plan', '--dir', {str(stack)!r}]\n"
        "try:\n"
        "    main()\n"
        "except SystemExit as done:\n"
        "    loaded = sorted({m.split('.')[0] for m in sys.modules} & {'pydantic', 'rich', 'httpx'})\n"
        "    print('exit', done.code, loaded, file=sys.stderr)\n"
    )
    ran = subprocess.run([sys.executable, "-c", code], env=env(), capture_output=True, text=True,
                         timeout=60, cwd=tmp_path)
    assert ran.stderr.strip().endswith("exit 2 []"), ran.stderr
    assert "+ a (null)" in ran.stdout
    wrong = subprocess.run([SHIPYARD, "infra", "plan", "--parallelism", "0"], env=env(), cwd=stack,
                           capture_output=True, text=True, timeout=60)
    assert wrong.returncode == 2
    assert "Invalid value for '--parallelism' / '-parallelism'" in wrong.stderr
    assert "Usage: shipyard infra plan [OPTIONS]" in wrong.stderr
    shown = subprocess.run([SHIPYARD, "infra", "--help"], env={**os.environ, **env()},
                           capture_output=True, text=True, timeout=60)
    assert shown.returncode == 0 and "Usage: shipyard infra [OPTIONS] COMMAND [ARGS]..." in shown.stdout
