"""`shipyard run` runs a local reusable workflow: real git, real processes, the real CLI."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from tests.helpers.gitrepo import make_repo

CALLER = """\
on: push
env:
  CALLER_ONLY: caller-env
jobs:
  build:
    strategy:
      matrix:
        flavour: [plain, fancy]
    uses: ./.github/workflows/build.yml
    with:
      flavour: ${{ matrix.flavour }}
      copies: 2
    secrets:
      token: ${{ secrets.DEPLOY_TOKEN }}
  report:
    needs: build
    runs-on: ubuntu-latest
    steps:
      - run: echo "report build=${{ needs.build.result }} artifact=${{ needs.build.outputs.artifact }}"
"""

CALLED = """\
on:
  workflow_call:
    inputs:
      flavour: {type: string, required: true}
      copies: {type: number, default: 1}
      loud: {type: boolean, default: false}
    secrets:
      token: {required: true}
    outputs:
      artifact:
        value: ${{ jobs.package.outputs.name }}
env:
  STAGE: called-${{ inputs.flavour }}
jobs:
  compile:
    runs-on: ubuntu-latest
    steps:
      - run: |
          echo "compile ${{ inputs.flavour }} x${{ inputs.copies }} loud=${{ inputs.loud }}"
          echo "stage=$STAGE caller=${CALLER_ONLY:-unset} token=${{ secrets.token }}"
  package:
    needs: compile
    runs-on: ubuntu-latest
    outputs:
      name: ${{ steps.p.outputs.name }}
    steps:
      - id: p
        run: echo "name=app-${{ inputs.flavour }}.tar" >> "$GITHUB_OUTPUT"
"""


def test_a_reusable_workflow_runs_with_inputs_secrets_and_outputs(tmp_path: Path):
    repo = make_repo(tmp_path / "proj", {
        ".github/workflows/ci.yml": CALLER,
        ".github/workflows/build.yml": CALLED,
    })
    proc = subprocess.run(
        [sys.executable, "-m", "shipyard", "run", "--json", "-s", "DEPLOY_TOKEN=s3cret"],
        cwd=repo, capture_output=True, text=True, timeout=120,
        env={**os.environ, "SHIPYARD_HOME": str(tmp_path / "home"), "NO_COLOR": "1",
             "COLUMNS": "200"},
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    [workflow] = json.loads(proc.stdout)["workflows"]
    assert workflow["path"] == ".github/workflows/ci.yml"
    jobs = {j["key"]: j for j in workflow["jobs"]}
    assert list(jobs) == [
        "build (plain) / compile", "build (plain) / package",
        "build (fancy) / compile", "build (fancy) / package", "report",
    ]
    assert all(j["conclusion"] == "success" for j in jobs.values())
    assert jobs["build (fancy) / package"]["outputs"] == {"name": "app-fancy.tar"}

    log = proc.stderr  # with --json, progress and step output go to stderr
    assert "compile plain x2 loud=false" in log
    assert "compile fancy x2 loud=false" in log
    # the called workflow's env, not the caller's; the secret passed by name, masked
    assert "stage=called-plain caller=unset token=***" in log
    assert "s3cret" not in log
    # both legs set the output; the last one wins, as with any matrix job
    assert "report build=success artifact=app-fancy.tar" in log
