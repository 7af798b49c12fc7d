"""``shipyard infra`` commands run in-process (CliRunner): outputs, state, graph, info."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from shipyard.cli._infra import infra_app
from tests.infra.test_cli_infra import NULLS

RUNNER = CliRunner()


class Result:
    def __init__(self, code: int, stdout: str, stderr: str) -> None:
        self.returncode = code
        self.stdout = stdout
        self.stderr = stderr


def infra(stack: Path | None, *args: str) -> Result:
    result = RUNNER.invoke(infra_app, [*args] + (["--dir", str(stack)] if stack is not None else []))
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    return Result(result.exit_code, result.stdout, result.stderr)


@pytest.fixture
def applied(tmp_path: Path) -> Path:
    stack = tmp_path / "stack"
    stack.mkdir()
    (stack / "main.yaml").write_text(NULLS)
    result = infra(stack, "apply", "--yes")
    assert result.returncode == 0, result.stdout + result.stderr
    return stack


def test_output_command(applied: Path) -> None:
    """output lists all outputs, NAME prints one raw, --json prints values and flags."""
    assert infra(applied, "output").stdout == 'all = ["hello-0", "hello-1"]\ngreeting = "hello"\n'
    assert infra(applied, "output", "greeting").stdout == "hello\n"
    assert infra(applied, "output", "all").stdout == '["hello-0", "hello-1"]\n'
    outputs = json.loads(infra(applied, "output", "--json").stdout)
    assert outputs["all"] == {"value": ["hello-0", "hello-1"], "sensitive": False}
    missing = infra(applied, "output", "nope")
    assert missing.returncode == 1 and "no output named 'nope'" in missing.stderr


def test_sensitive_output_is_masked_unless_named(tmp_path: Path) -> None:
    """A sensitive output shows as (sensitive) in the list, its value when named."""
    stack = tmp_path / "stack"
    stack.mkdir()
    (stack / "main.yaml").write_text('outputs:\n  pw: {value: hunter2, sensitive: true}\n')
    assert infra(stack, "apply", "--yes").returncode == 0
    assert infra(stack, "output").stdout == "pw = (sensitive)\n"
    assert infra(stack, "output", "pw").stdout == "hunter2\n"


def test_state_list_and_show(applied: Path) -> None:
    """state list (all, filtered, JSON) and state show (text, JSON)."""
    assert infra(applied, "state", "list").stdout.split() == ["first", "more[0]", "more[1]"]
    assert infra(applied, "state", "list", "more").stdout.split() == ["more[0]", "more[1]"]
    rows = json.loads(infra(applied, "state", "list", "--json").stdout)
    assert next((r["address"], r["type"], r["tainted"]) for r in rows) == ("first", "null", False)
    shown = infra(applied, "state", "show", "more[1]").stdout
    assert shown.startswith("# more[1]\ntype = null\nid = ")
    assert 'input = "hello-1"' in shown and "dependencies = first" in shown
    data = json.loads(infra(applied, "state", "show", "first", "--json").stdout)
    assert data["properties"]["input"] == "hello"
    missing = infra(applied, "state", "show", "nope")
    assert missing.returncode == 1 and "the state has no nope" in missing.stderr


def test_state_mv_rm_versions_restore(applied: Path) -> None:
    """state mv renames every instance, rm forgets, versions lists, restore goes back."""
    moved = infra(applied, "state", "mv", "more", "extra")
    assert moved.returncode == 0, moved.stderr
    assert moved.stdout == "Moved more[0] to extra[0]\nMoved more[1] to extra[1]\n"
    assert infra(applied, "state", "rm", "first").stdout == "Removed first\n"
    assert infra(applied, "state", "list").stdout.split() == ["extra[0]", "extra[1]"]
    versions = infra(applied, "state", "versions").stdout.splitlines()
    assert versions[0].split()[:3] == ["SERIAL", "TIME", "OPERATION"]
    assert [line.split()[0] for line in versions[1:]] == ["1", "2", "3"]
    listed = json.loads(infra(applied, "state", "versions", "--json").stdout)
    assert [v["operation"] for v in listed] == ["apply", "state mv", "state rm"]
    restored = infra(applied, "state", "restore", "1")
    assert restored.returncode == 0, restored.stderr
    assert infra(applied, "state", "list").stdout.split() == ["first", "more[0]", "more[1]"]
    assert infra(applied, "state", "rm", "nothing").returncode == 1
    assert infra(applied, "plan").returncode == 0


def test_graph_is_dot(applied: Path) -> None:
    """graph prints each instance and an edge to each dependency."""
    graph = infra(applied, "graph").stdout
    assert graph.startswith('digraph "stack" {')
    assert '"more[0]" -> "first";' in graph
    assert '"more[1]" -> "first";' in graph
    assert graph.rstrip().endswith("}")


def test_validate(tmp_path: Path) -> None:
    """validate reports a valid stack's size, or each mistake located."""
    stack = tmp_path / "stack"
    stack.mkdir()
    (stack / "main.yaml").write_text(NULLS)
    ok = infra(stack, "validate")
    assert ok.returncode == 0
    assert "the stack is valid: 2 resources, 0 modules." in ok.stdout
    (stack / "main.yaml").write_text("resources:\n  a:\n    type: nope\n  b: {}\n")
    bad = infra(stack, "validate")
    assert bad.returncode == 1
    assert "main.yaml:3:11: unknown resource type 'nope'" in bad.stderr
    assert "2 errors" in bad.stderr


def test_providers() -> None:
    """providers lists each type with its properties; --json gives the same as data."""
    listed = infra(None, "providers", "null")
    assert listed.returncode == 0, listed.stderr
    assert "triggers_replace (any, forces replacement)" in listed.stdout
    described = json.loads(infra(None, "providers", "null", "--json").stdout)
    assert described[0]["types"][0]["properties"]["input"]["type"] == "any"
    assert (described[0]["types"][0]["external"], described[0]["types"][0]["finds"]) == (False, False)
    process = json.loads(infra(None, "providers", "process", "--json").stdout)
    assert (process[0]["types"][0]["external"], process[0]["types"][0]["finds"]) == (True, True)
    assert infra(None, "providers", "nope").returncode == 1


def test_plan_json_marks_unknown_values(tmp_path: Path) -> None:
    """plan --json: changes with unknown values marked, a summary, exit code 2."""
    stack = tmp_path / "stack"
    stack.mkdir()
    (stack / "main.yaml").write_text(NULLS)
    result = infra(stack, "plan", "--json")
    assert result.returncode == 2
    plan = json.loads(result.stdout)
    assert plan["summary"] == {"add": 3, "change": 0, "replace": 0, "destroy": 0}
    more = plan["changes"][1]
    assert more["address"] == "more[0]" and more["action"] == "create"
    assert more["after"]["input"] == {"unknown": True}
    assert plan["outputs"][0] == {"name": "greeting", "action": "create", "before": None,
                                  "after": {"unknown": True}, "sensitive": False}
