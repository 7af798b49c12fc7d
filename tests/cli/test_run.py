"""`shipyard run` end to end: a real git checkout, real processes, the real CLI."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers.gitrepo import git, make_repo, write

SHIPYARD = [sys.executable, "-m", "shipyard"]


def shipyard(cwd: Path, *args: str, home: Path, env: dict[str, str] | None = None,
             timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*SHIPYARD, *args], cwd=cwd, capture_output=True, text=True, timeout=timeout,
        env={**os.environ, "SHIPYARD_HOME": str(home), "NO_COLOR": "1", "COLUMNS": "200",
             **(env or {})},
    )


PIPELINE = """\
name: pipeline
on:
  push:
    branches: [main]
  workflow_dispatch:
    inputs:
      greeting:
        type: choice
        options: [hello, hi]
        default: hello
      loud:
        type: boolean
        default: false
env:
  WORKFLOW_LEVEL: wf
jobs:
  prepare:
    runs-on: ubuntu-latest
    outputs:
      version: ${{ steps.v.outputs.version }}
      matrix: ${{ steps.v.outputs.matrix }}
    steps:
      - uses: actions/checkout@v4
      - id: v
        run: |
          echo "version=$(cat VERSION)" >> "$GITHUB_OUTPUT"
          echo 'matrix={"n": [1, 2]}' >> "$GITHUB_OUTPUT"
  test:
    needs: prepare
    runs-on: ubuntu-latest
    strategy:
      matrix: ${{ fromJSON(needs.prepare.outputs.matrix) }}
    steps:
      - run: echo "test ${{ matrix.n }} of ${{ needs.prepare.outputs.version }} $WORKFLOW_LEVEL"
  report:
    needs: [prepare, test]
    if: always()
    runs-on: ubuntu-latest
    steps:
      - run: echo "tests ${{ needs.test.result }} greeting=${{ inputs.greeting || 'none' }} loud=${{ inputs.loud }}"
"""


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    return make_repo(tmp_path / "proj", {
        ".github/workflows/pipeline.yml": PIPELINE,
        "VERSION": "1.2.3\n",
    })


def test_push_runs_jobs_in_order_with_outputs_matrix_and_summary(repo: Path, tmp_path: Path):
    proc = shipyard(repo, "run", home=tmp_path / "home")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    out = proc.stdout
    assert "test 1 of 1.2.3 wf" in out
    assert "test 2 of 1.2.3 wf" in out
    assert "tests success greeting=none loud=" in out
    assert out.index("test 1 of") < out.index("tests success")
    # the summary table names every job instance with its result
    for key in ("prepare", "test (1)", "test (2)", "report"):
        assert key in out
    assert "✓ success" in out


def test_json_result_is_machine_readable(repo: Path, tmp_path: Path):
    proc = shipyard(repo, "run", "--json", home=tmp_path / "home")
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)
    assert data["conclusion"] == "success"
    assert data["event"] == "push"
    [wf] = data["workflows"]
    jobs = {j["key"]: j for j in wf["jobs"]}
    assert set(jobs) == {"prepare", "test (1)", "test (2)", "report"}
    assert jobs["prepare"]["outputs"] == {"version": "1.2.3", "matrix": '{"n": [1, 2]}'}
    assert jobs["test (2)"]["matrix"] == {"n": 2}
    assert all(j["conclusion"] == "success" for j in jobs.values())


def test_dispatch_inputs_are_typed_and_validated(repo: Path, tmp_path: Path):
    proc = shipyard(repo, "run", "-e", "workflow_dispatch", "-i", "greeting=hi", "-i", "loud=true",
                    home=tmp_path / "home")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "greeting=hi loud=true" in proc.stdout
    bad = shipyard(repo, "run", "-e", "workflow_dispatch", "-i", "greeting=yo",
                   home=tmp_path / "home")
    assert bad.returncode == 1
    assert "greeting" in bad.stderr and "hello" in bad.stderr
    assert "Traceback" not in bad.stderr


def test_job_and_matrix_selection(repo: Path, tmp_path: Path):
    proc = shipyard(repo, "run", "--json", "-j", "test", "-m", "n=2", home=tmp_path / "home")
    assert proc.returncode == 0, proc.stderr
    keys = [j["key"] for j in json.loads(proc.stdout)["workflows"][0]["jobs"]]
    assert keys == ["prepare", "test (2)"]


def test_failing_step_fails_the_run_and_skips_dependents(tmp_path: Path):
    repo = make_repo(tmp_path / "p", {".github/workflows/f.yml": """\
        on: push
        jobs:
          a:
            runs-on: x
            steps:
              - run: echo before; exit 3
              - run: echo never
          b:
            needs: a
            runs-on: x
            steps: [{run: echo never-b}]
        """})
    proc = shipyard(repo, "run", home=tmp_path / "home")
    assert proc.returncode == 1
    assert "before" in proc.stdout
    assert "never" not in proc.stdout.replace("never-b", "").replace("echo never", "")
    assert "never-b" not in proc.stdout.replace("echo never-b", "")
    assert "failure" in proc.stdout and "skipped" in proc.stdout


def test_invalid_workflow_reports_located_errors_and_runs_nothing(tmp_path: Path):
    repo = make_repo(tmp_path / "p", {".github/workflows/bad.yml": """\
        on: push
        jobs:
          a:
            runs-on: x
            stepz: []
        """})
    proc = shipyard(repo, "run", home=tmp_path / "home")
    assert proc.returncode == 1
    assert ".github/workflows/bad.yml:5:5:" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_uncommitted_changes_are_run_only_when_asked(repo: Path, tmp_path: Path):
    write(repo, {"VERSION": "9.9.9\n"})
    committed = shipyard(repo, "run", "-j", "test", "-m", "n=1", home=tmp_path / "home")
    assert "of 1.2.3" in committed.stdout
    dirty = shipyard(repo, "run", "-u", "-j", "test", "-m", "n=1", home=tmp_path / "home")
    assert dirty.returncode == 0, dirty.stderr
    assert "of 9.9.9" in dirty.stdout
    assert git(repo, "status", "--porcelain") == "M VERSION"


def test_no_matching_workflow_is_a_clear_error(repo: Path, tmp_path: Path):
    proc = shipyard(repo, "run", "-e", "schedule", home=tmp_path / "home")
    assert proc.returncode == 1
    assert "no workflow" in proc.stderr and "schedule" in proc.stderr


def test_validate_command_reports_all_errors(tmp_path: Path):
    repo = make_repo(tmp_path / "p", {".github/workflows/bad.yml": """\
        on: push
        jobs:
          a:
            runs-on: x
            needs: nope
            steps:
              - run: echo ${{ github.ref == }}
        """})
    proc = shipyard(repo, "validate", home=tmp_path / "home")
    assert proc.returncode == 1
    lines = [ln for ln in proc.stderr.splitlines() if ln.startswith("error")]
    assert len(lines) == 2, proc.stderr
    ok = make_repo(tmp_path / "ok", {".github/workflows/ok.yml": PIPELINE})
    assert shipyard(ok, "validate", home=tmp_path / "home").returncode == 0
