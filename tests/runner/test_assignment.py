"""Assignment → JobRequest: the job ci sent, rebuilt as the workflow library's request."""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Any

import pydantic
import pytest

from shipyard.errors import ValidationError, WorkflowError
from shipyard.runner import Assignment, WorkflowCache, build_job_request, runner_id_of
from shipyard.service import TokenSigner
from shipyard.workflow._runtime import Conclusion
from shipyard.workflow.executors import LocalExecutor
from shipyard.workflow.runner import JobRunner
from tests.helpers.jobrun import RecordingReporter

WORKFLOW = textwrap.dedent("""
    name: CI
    on: push
    env:
      GREETING: hello
    jobs:
      build:
        runs-on: ubuntu-latest
        outputs:
          version: ${{ steps.v.outputs.version }}
        steps:
          - id: v
            run: echo "version=1.2" >> "$GITHUB_OUTPUT"
      test:
        needs: build
        runs-on: [self-hosted, linux]
        continue-on-error: true
        strategy:
          matrix:
            python: ["3.11", "3.12"]
        steps:
          - run: |
              echo "python ${{ matrix.python }} of ${{ strategy.job-total }}"
              echo "built ${{ needs.build.outputs.version }}"
              echo "$GREETING ${{ github.repository }} ${{ github.run_id }}"
              echo "token ${{ secrets.GITHUB_TOKEN }}"
""")


def assignment(**changes: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "job_id": 17, "pipeline_id": 4, "attempt": 1,
        "key": "test (3.12)", "name": "test (3.12)",
        "repo": "demo", "sha": "a" * 40, "ref": "refs/heads/main",
        "clone_url": "http://127.0.0.1:9/demo.git", "token": "sy_job-token",
        "workflow": {"path": ".github/workflows/ci.yml", "text": WORKFLOW},
        "job": "test",
        "contexts": {
            "github": {"repository": "demo", "run_id": "4", "sha": "a" * 40},
            "needs": {"build": {"result": "success", "outputs": {"version": "1.2"}}},
            "matrix": {"python": "3.12"},
            "strategy": {"fail-fast": True, "job-index": 1, "job-total": 2, "max-parallel": 2},
            "inputs": {}, "vars": {}, "secrets": {}, "env": {"GREETING": "hello"},
        },
        "labels": ["self-hosted", "linux"],
        "continue_on_error": True,
        "timeout_minutes": 360,
        "run_id": "4", "run_attempt": 2,
    }
    data.update(changes)
    return data


class TestBuild:
    def test_every_field_of_the_request_comes_from_the_assignment(self) -> None:
        request = build_job_request(Assignment.model_validate(assignment()))
        assert request.workflow.path == ".github/workflows/ci.yml"
        assert request.workflow.name == "CI"
        assert request.job.id == "test"
        assert (request.key, request.name) == ("test (3.12)", "test (3.12)")
        assert request.contexts["matrix"] == {"python": "3.12"}
        assert request.contexts["needs"]["build"]["outputs"] == {"version": "1.2"}
        assert request.source is not None
        assert (request.source.url, request.source.sha, request.source.ref, request.source.token) == (
            "http://127.0.0.1:9/demo.git", "a" * 40, "refs/heads/main", "sy_job-token",
        )
        assert request.labels == ("self-hosted", "linux")
        assert request.continue_on_error is True
        assert (request.run_id, request.run_attempt) == ("4", 2)

    def test_the_job_token_is_the_github_token_unless_ci_sent_one(self) -> None:
        request = build_job_request(Assignment.model_validate(assignment()))
        assert request.contexts["secrets"] == {"GITHUB_TOKEN": "sy_job-token"}
        data = assignment()
        data["contexts"]["secrets"] = {"GITHUB_TOKEN": "from-ci", "OTHER": "x"}
        request = build_job_request(Assignment.model_validate(data))
        assert request.contexts["secrets"] == {"GITHUB_TOKEN": "from-ci", "OTHER": "x"}

    def test_missing_contexts_are_empty(self) -> None:
        request = build_job_request(Assignment.model_validate(assignment(contexts={"github": {}})))
        for name in ("needs", "matrix", "strategy", "inputs", "vars", "env"):
            assert request.contexts[name] == {}

    def test_an_unknown_job_is_a_workflow_error(self) -> None:
        with pytest.raises(WorkflowError, match=r"\.github/workflows/ci\.yml has no job 'deploy'"):
            build_job_request(Assignment.model_validate(assignment(job="deploy")))

    def test_a_workflow_that_does_not_parse_names_its_path_and_line(self) -> None:
        bad = {"path": ".github/workflows/bad.yml", "text": "on: push\njobs:\n  x:\n    steps: 3\n"}
        with pytest.raises(ValidationError, match=r"\.github/workflows/bad\.yml:\d+:\d+"):
            build_job_request(Assignment.model_validate(assignment(workflow=bad, job="x")))

    def test_an_assignment_missing_fields_is_refused(self) -> None:
        data = assignment()
        del data["workflow"]
        with pytest.raises(pydantic.ValidationError, match="workflow"):
            Assignment.model_validate(data)

    def test_unknown_fields_are_ignored(self) -> None:
        assert Assignment.model_validate(assignment(future_field=1)).job_id == 17


class TestWorkflowCache:
    def test_the_same_file_is_parsed_once(self) -> None:
        cache = WorkflowCache()
        a = build_job_request(Assignment.model_validate(assignment()), cache)
        b = build_job_request(Assignment.model_validate(assignment(key="test (3.11)")), cache)
        assert a.workflow is b.workflow

    def test_a_changed_file_is_parsed_again_and_old_entries_are_evicted(self) -> None:
        cache = WorkflowCache(size=1)
        first = build_job_request(Assignment.model_validate(assignment()), cache)
        changed = {"path": ".github/workflows/ci.yml", "text": WORKFLOW.replace("hello", "hi")}
        second = build_job_request(Assignment.model_validate(assignment(workflow=changed)), cache)
        assert second.workflow is not first.workflow
        again = build_job_request(Assignment.model_validate(assignment()), cache)
        assert again.workflow is not first.workflow


def test_the_rebuilt_request_runs_with_its_contexts(tmp_path: Path) -> None:
    reporter = RecordingReporter()
    request = build_job_request(Assignment.model_validate(assignment()))
    result = JobRunner(LocalExecutor(), reporter, work_root=tmp_path).run(request)
    assert result.conclusion is Conclusion.SUCCESS
    assert reporter.step_lines(0) == [
        "python 3.12 of 2", "built 1.2", "hello demo 4", "token ***",
    ]


class TestRunnerToken:
    def test_a_runner_token_names_its_runner(self) -> None:
        signer = TokenSigner(b"0123456789abcdef0123")
        assert runner_id_of(signer.issue("runner-12", ["runner:12"])) == 12

    def test_a_registration_token_has_no_runner(self) -> None:
        signer = TokenSigner(b"0123456789abcdef0123")
        assert runner_id_of(signer.issue("reg", ["register"])) is None

    @pytest.mark.parametrize("token", ["", "abc", "sy_!!!.x", "sy_e30.sig", "sy_a.b.c"])
    def test_garbage_has_no_runner(self, token: str) -> None:
        assert runner_id_of(token) is None
