"""The example project in examples/pylib: its own tests, and its workflow on the real runner."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from shipyard.workflow._parser import load_workflow
from shipyard.workflow._runtime import CheckoutSource, Conclusion
from shipyard.workflow.actions import (
    BUILTIN_ACTIONS,
    LocalArtifactStore,
    LocalCacheStore,
    RunServices,
)
from tests.helpers.gitrepo import git
from tests.helpers.jobrun import run_job

EXAMPLE = Path(__file__).resolve().parents[3] / "examples" / "pylib"
WORKFLOW = EXAMPLE / ".github" / "workflows" / "ci.yml"


def test_example_library_suite_passes() -> None:
    """The example library's own pytest suite passes."""
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"], cwd=EXAMPLE,
        env={**os.environ, "PYTHONPATH": str(EXAMPLE / "src")}, capture_output=True, text=True,
        check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert " passed" in proc.stdout


def test_example_workflow_uses_only_builtin_actions_with_declared_inputs() -> None:
    """Every uses: step of ci.yml is a built-in action and every with: key is one it declares."""
    wf = load_workflow(".github/workflows/ci.yml", WORKFLOW.read_text())
    assert set(wf.jobs) == {"test", "build", "report"}
    for job in wf.jobs.values():
        for step in job.steps:
            if step.uses is None:
                continue
            action = BUILTIN_ACTIONS[step.uses.split("@")[0].lower()]
            assert set(step.with_) <= set(action.inputs), (step.uses, set(step.with_))


@pytest.mark.slow
def test_example_pipeline_runs_on_the_job_runner(tmp_path: Path) -> None:
    """test (3.12), build and report run green, passing a report, a wheel and its name along."""
    repo = tmp_path / "repo"
    shutil.copytree(EXAMPLE, repo, ignore=shutil.ignore_patterns(".venv", "dist", "reports", "__pycache__", "*.egg-info"))
    git(repo, "init", "-q", "-b", "main")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "example")
    source = CheckoutSource(str(repo), git(repo, "rev-parse", "HEAD"), "refs/heads/main")
    services = RunServices(LocalArtifactStore(tmp_path / "artifacts"), LocalCacheStore(tmp_path / "caches"))
    wf = load_workflow(".github/workflows/ci.yml", WORKFLOW.read_text())

    def run(job: str, contexts: dict[str, object]) -> dict[str, str]:
        result, reporter = run_job(wf, tmp_path / job, job=job, source=source, services=services, contexts=contexts)
        assert result.conclusion == Conclusion.SUCCESS, reporter.text + str(result.error)
        return result.outputs

    run("test", {"matrix": {"python-version": "3.12"}})
    report = services.artifacts.get("1", "test-report-3.12")
    assert report is not None and report.files == ("junit-3.12.xml",)

    outputs = run("build", {"needs": {"test": {"result": "success", "outputs": {}}}})
    assert outputs["wheel"] == "semverlite-1.0.0-py3-none-any.whl"
    dist = services.artifacts.get("1", "dist")
    assert dist is not None and dist.files == ("semverlite-1.0.0-py3-none-any.whl",)

    needs = {
        "test": {"result": "success", "outputs": {}},
        "build": {"result": "success", "outputs": outputs},
    }
    run("report", {"needs": needs})
    downloaded = tmp_path / "report"
    assert any(downloaded.rglob("semverlite-1.0.0-py3-none-any.whl"))
