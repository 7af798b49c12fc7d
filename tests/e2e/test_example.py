"""The bundled example project's pipeline passes under `shipyard run`, as in the quickstart."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_example_pipeline_installs_tests_builds_and_uploads(tmp_path: Path):
    home = tmp_path / "home"
    proc = subprocess.run(
        [sys.executable, "-m", "shipyard", "run", "--json", "-C", str(ROOT / "examples/pylib")],
        capture_output=True, text=True, timeout=600,
        env={**os.environ, "SHIPYARD_HOME": str(home), "NO_COLOR": "1"},
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    result = json.loads(proc.stdout)
    assert result["conclusion"] == "success"
    [wf] = result["workflows"]
    jobs = {j["key"]: j for j in wf["jobs"]}
    assert {"test (Python 3.11)", "test (Python 3.12)", "build", "report"} <= set(jobs)
    assert all(j["conclusion"] == "success" for j in jobs.values())
    wheel = jobs["build"]["outputs"]["wheel"]
    assert wheel.endswith("-py3-none-any.whl")
    # The pytest suite really ran on each interpreter (its output is in the job log).
    logs = Path(result["run_dir"]) / "logs"
    for version in ("3.11", "3.12"):
        log = next(logs.glob(f"test*{version}*.log")).read_text()
        assert " passed" in log
        assert f"Python {version}" in log or f"python{version}" in log or version in log
    # Artifacts are kept in the run folder: a report per Python version and the wheel.
    artifacts = Path(result["run_dir"]) / "artifacts"
    assert artifacts.is_dir()
    stderr = proc.stderr
    assert "report" in stderr and wheel in stderr
