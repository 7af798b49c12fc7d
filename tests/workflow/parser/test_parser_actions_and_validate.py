"""Composite actions, workflow discovery and ``validate_paths`` over real files."""

from __future__ import annotations

import shutil
import textwrap
from pathlib import Path

import pytest

from shipyard.errors import ValidationError
from shipyard.workflow._parser import (
    check_composite_action,
    discover_workflows,
    load_composite_action,
)
from shipyard.workflow._validate import validate_paths

DATA = Path(__file__).resolve().parent.parent / "data"


def action_errors(text: str) -> list[str]:
    _, errors = check_composite_action("action.yml", textwrap.dedent(text))
    return [str(e) for e in errors]


class TestCompositeActions:
    def test_other_kinds_of_action_are_refused_at_using(self) -> None:
        text = "name: x\nruns:\n  using: node20\n  main: index.js\n"
        assert action_errors(text) == ["action.yml:3:10: only composite actions are supported here"]

    def test_run_steps_need_a_shell(self) -> None:
        text = "runs:\n  using: composite\n  steps:\n    - run: echo hi\n    - uses: ./inner\n"
        assert action_errors(text) == [
            "action.yml:4:7: 'shell' is required for 'run' steps in composite actions"
        ]

    def test_secrets_are_not_a_context_of_actions(self) -> None:
        text = "runs:\n  using: composite\n  steps:\n    - run: echo ${{ secrets.X }}\n      shell: bash\n"
        assert action_errors(text) == [
            "action.yml:4:21: context 'secrets' is not available in runs.steps"
        ]

    def test_missing_runs_and_bad_outputs(self) -> None:
        text = "name: x\noutputs:\n  out:\n    description: no value\ninptus: {}\n"
        assert action_errors(text) == [
            "action.yml:1:1: 'runs' is required",
            "action.yml:3:3: 'value' is required",
            "action.yml:5:1: unknown key 'inptus' (did you mean 'inputs'?)",
        ]

    def test_load_raises_with_every_error(self) -> None:
        with pytest.raises(ValidationError) as info:
            load_composite_action("action.yml", "runs:\n  using: docker\n")
        assert [e.message for e in info.value.errors] == [
            "only composite actions are supported here"
        ]


def make_repo(root: Path) -> Path:
    folder = root / ".github" / "workflows"
    folder.mkdir(parents=True)
    for name in ("python-ci.yml", "schedule.yml"):
        shutil.copy(DATA / name, folder / name)
    extra = root / ".shipyard" / "workflows"
    extra.mkdir(parents=True)
    shutil.copy(DATA / "dispatch.yml", extra / "deploy.yaml")
    (folder / "notes.txt").write_text("not a workflow")
    return root


def test_discover_finds_both_folders_sorted(tmp_path: Path) -> None:
    root = make_repo(tmp_path)
    assert [p.relative_to(root).as_posix() for p in discover_workflows(root)] == [
        ".github/workflows/python-ci.yml",
        ".github/workflows/schedule.yml",
        ".shipyard/workflows/deploy.yaml",
    ]


def test_discover_in_a_folder_without_workflows(tmp_path: Path) -> None:
    assert discover_workflows(tmp_path) == []


def test_validate_a_clean_repository(tmp_path: Path) -> None:
    assert validate_paths([make_repo(tmp_path)]) == []


def test_validate_reports_errors_file_by_file(tmp_path: Path) -> None:
    root = make_repo(tmp_path)
    bad = root / ".github" / "workflows" / "bad.yml"
    bad.write_text("on: pusj\njobs:\n  a:\n    steps: [{run: x}]\n")
    errors = validate_paths([root])
    assert [str(e) for e in errors] == [
        f"{bad}:1:5: unknown event 'pusj' (did you mean 'push'?)",
        f"{bad}:3:3: 'runs-on' is required",
    ]


def test_validate_single_files_action_folders_and_plain_folders(tmp_path: Path) -> None:
    action_dir = tmp_path / "action"
    shutil.copytree(DATA / "action", action_dir)
    plain = tmp_path / "plain"
    plain.mkdir()
    (plain / "one.yml").write_text("on: push\njobs:\n  a:\n    runs-on: x\n    steps: [{run: x}]\n")
    (plain / "two.yaml").write_text("on: push\n")
    errors = validate_paths([DATA / "matrix.yml", action_dir, action_dir / "action.yml", plain])
    assert [str(e) for e in errors] == [f"{plain / 'two.yaml'}:1:1: 'jobs' is required"]


def test_validate_missing_and_empty_paths(tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    errors = validate_paths([tmp_path / "nope.yml", empty])
    assert [str(e) for e in errors] == [
        f"{tmp_path / 'nope.yml'}: no such file or directory",
        f"{empty}: no workflow or action files found",
    ]
