"""JobRunner: environment, contexts, runner files, conditions and conclusions, with real processes."""

from __future__ import annotations

import hashlib
import json
import os
import time
from pathlib import Path

from shipyard.workflow._runtime import Conclusion
from shipyard.workflow.executors import LocalExecutor
from shipyard.workflow.runner import JobRunner
from tests.helpers.jobrun import GITHUB, RecordingReporter, pid_gone, request, run_job, workflow


class TestEnvironment:
    """What a step's process sees in its environment."""

    def test_workflow_job_and_step_env_layer_with_step_winning(self, tmp_path: Path) -> None:
        result, rep = run_job(
            """
            on: push
            jobs:
              build:
                runs-on: ubuntu-latest
                env:
                  B: job
                  C: job
                steps:
                  - run: echo "$A $B $C"
                    env:
                      C: step
            """,
            tmp_path, contexts={"env": {"A": "workflow", "B": "workflow"}},
        )
        assert result.conclusion is Conclusion.SUCCESS
        assert rep.step_lines(0) == ["workflow job step"]

    def test_job_env_is_evaluated_with_run_contexts(self, tmp_path: Path) -> None:
        _, rep = run_job(
            """
            on: push
            jobs:
              build:
                runs-on: ubuntu-latest
                env:
                  WHO: ${{ github.actor }}-${{ matrix.py }}
                steps:
                  - run: echo "$WHO ${{ env.WHO }}"
            """,
            tmp_path, contexts={"matrix": {"py": "3.12"}},
        )
        assert rep.step_lines(0) == ["octocat-3.12 octocat-3.12"]

    def test_default_variables_are_set_like_github(self, tmp_path: Path) -> None:
        result, rep = run_job(
            """
            on: push
            jobs:
              build:
                runs-on: ubuntu-latest
                steps:
                  - id: show
                    run: env | sort
            """,
            tmp_path,
        )
        env = dict(line.split("=", 1) for line in rep.step_lines(0) if "=" in line)
        assert env["CI"] == "true" and env["GITHUB_ACTIONS"] == "true"
        assert env["GITHUB_SHA"] == GITHUB["sha"]
        assert env["GITHUB_REF"] == "refs/heads/main"
        assert env["GITHUB_REF_NAME"] == "main"
        assert env["GITHUB_REF_TYPE"] == "branch"
        assert env["GITHUB_REPOSITORY"] == "octo/widgets"
        assert env["GITHUB_REPOSITORY_OWNER"] == "octo"
        assert env["GITHUB_RUN_ID"] == "77" and env["GITHUB_RUN_NUMBER"] == "5"
        assert env["GITHUB_RUN_ATTEMPT"] == "1"
        assert env["GITHUB_JOB"] == "build" and env["GITHUB_ACTION"] == "show"
        assert env["GITHUB_ACTOR"] == "octocat" and env["GITHUB_WORKFLOW"] == "CI"
        assert env["GITHUB_SERVER_URL"] == "https://shipyard.example"
        assert env["GITHUB_EVENT_NAME"] == "push"
        assert env["GITHUB_HEAD_REF"] == "" and env["GITHUB_BASE_REF"] == ""
        assert env["RUNNER_OS"] == "Linux" and env["RUNNER_ARCH"] in ("X64", "ARM64", "ARM", "X86")
        assert env["RUNNER_NAME"] == "shipyard"
        workspace = Path(env["GITHUB_WORKSPACE"])
        assert workspace.is_dir() and workspace.name == "workspace"
        assert env["RUNNER_WORKSPACE"] == str(workspace.parent)
        assert Path(env["RUNNER_TEMP"]).is_dir()
        assert env["RUNNER_TOOL_CACHE"] == str(tmp_path / "toolcache")
        for var in ("GITHUB_OUTPUT", "GITHUB_ENV", "GITHUB_PATH", "GITHUB_STEP_SUMMARY", "GITHUB_STATE"):
            assert env[var].startswith(env["RUNNER_TEMP"])
        assert "RUNNER_DEBUG" not in env
        assert json.loads(Path(env["GITHUB_EVENT_PATH"]).read_text()) == GITHUB["event"]
        # The host environment passes through, as on a self-hosted runner.
        assert env["PATH"] == os.environ["PATH"]
        assert result.conclusion is Conclusion.SUCCESS

    def test_steps_without_id_get_numbered_action_names(self, tmp_path: Path) -> None:
        _, rep = run_job(
            """
            on: push
            jobs:
              build:
                runs-on: ubuntu-latest
                steps:
                  - run: echo $GITHUB_ACTION
                  - run: echo $GITHUB_ACTION
                  - run: echo ${{ github.action }}
            """,
            tmp_path,
        )
        assert [rep.step_lines(i) for i in range(3)] == [["__run"], ["__run_2"], ["__run_3"]]

    def test_runner_debug_is_set_when_step_debug_is_on(self, tmp_path: Path) -> None:
        _, rep = run_job(
            """
            on: push
            jobs:
              build:
                runs-on: ubuntu-latest
                steps:
                  - run: echo "debug=$RUNNER_DEBUG ${{ runner.debug }}"
            """,
            tmp_path, secrets={"ACTIONS_STEP_DEBUG": "true"},
        )
        assert rep.step_lines(0) == ["debug=1 1"]


class TestRunnerFiles:
    """GITHUB_OUTPUT, GITHUB_ENV, GITHUB_PATH and GITHUB_STEP_SUMMARY take effect."""

    def test_outputs_in_both_formats_reach_later_steps_and_job_outputs(self, tmp_path: Path) -> None:
        result, rep = run_job(
            """
            on: push
            jobs:
              build:
                runs-on: ubuntu-latest
                outputs:
                  simple: ${{ steps.produce.outputs.simple }}
                  multi: ${{ steps.produce.outputs.multi }}
                steps:
                  - id: produce
                    run: |
                      echo "simple=a=b" >> "$GITHUB_OUTPUT"
                      {
                        echo "multi<<EOF_1"
                        echo "line one"
                        echo "line two"
                        echo "EOF_1"
                      } >> "$GITHUB_OUTPUT"
                  - run: echo "${{ steps.produce.outputs.simple }}|${{ steps.produce.outputs.multi }}"
            """,
            tmp_path,
        )
        assert result.steps[0].outputs == {"simple": "a=b", "multi": "line one\nline two"}
        assert rep.step_lines(1) == ["a=b|line one", "line two"]
        assert result.outputs == {"simple": "a=b", "multi": "line one\nline two"}

    def test_github_env_applies_to_later_steps_but_step_env_wins(self, tmp_path: Path) -> None:
        _, rep = run_job(
            """
            on: push
            jobs:
              build:
                runs-on: ubuntu-latest
                env:
                  LEVEL: job
                steps:
                  - run: |
                      echo "LEVEL=exported" >> "$GITHUB_ENV"
                      echo "NOTE<<END" >> "$GITHUB_ENV"
                      printf 'x\\ny\\n' >> "$GITHUB_ENV"
                      echo "END" >> "$GITHUB_ENV"
                      echo "same step: $LEVEL"
                  - run: echo "$LEVEL ${{ env.LEVEL }} $NOTE"
                  - run: echo "$LEVEL"
                    env:
                      LEVEL: step
            """,
            tmp_path,
        )
        assert rep.step_lines(0) == ["same step: job"]
        assert rep.step_lines(1) == ["exported exported x", "y"]
        assert rep.step_lines(2) == ["step"]

    def test_github_path_prepends_with_the_latest_first(self, tmp_path: Path) -> None:
        _, rep = run_job(
            """
            on: push
            jobs:
              build:
                runs-on: ubuntu-latest
                steps:
                  - run: |
                      mkdir -p "$RUNNER_TEMP/one" "$RUNNER_TEMP/two"
                      printf '#!/bin/sh\\necho from-one\\n' > "$RUNNER_TEMP/one/tool"
                      printf '#!/bin/sh\\necho from-two\\n' > "$RUNNER_TEMP/two/tool"
                      chmod +x "$RUNNER_TEMP/one/tool" "$RUNNER_TEMP/two/tool"
                      echo "$RUNNER_TEMP/one" >> "$GITHUB_PATH"
                  - run: |
                      tool
                      echo "$RUNNER_TEMP/two" >> "$GITHUB_PATH"
                  - run: |
                      tool
                      echo "$PATH" | tr ':' '\\n' | head -2 | xargs -n1 basename
            """,
            tmp_path,
        )
        assert rep.step_lines(1) == ["from-one"]
        assert rep.step_lines(2) == ["from-two", "two", "one"]

    def test_step_summaries_are_collected_into_the_job_summary(self, tmp_path: Path) -> None:
        result, _ = run_job(
            """
            on: push
            jobs:
              build:
                runs-on: ubuntu-latest
                steps:
                  - run: echo "## Build ${{ secrets.TOKEN }}" >> "$GITHUB_STEP_SUMMARY"
                  - run: "true"
                  - run: printf '| a |\\n' >> "$GITHUB_STEP_SUMMARY"
            """,
            tmp_path, secrets={"TOKEN": "hunter2"},
        )
        assert result.summary == "## Build ***\n| a |\n"

    def test_malformed_output_file_fails_the_step_with_the_reason(self, tmp_path: Path) -> None:
        result, _ = run_job(
            """
            on: push
            jobs:
              build:
                runs-on: ubuntu-latest
                steps:
                  - run: echo "name<<EOF" >> "$GITHUB_OUTPUT"
            """,
            tmp_path,
        )
        assert result.steps[0].conclusion is Conclusion.FAILURE
        assert "matching delimiter not found 'EOF'" in (result.steps[0].error or "")

    def test_job_outputs_holding_a_secret_are_left_out(self, tmp_path: Path) -> None:
        result, _ = run_job(
            """
            on: push
            jobs:
              build:
                runs-on: ubuntu-latest
                outputs:
                  leak: ${{ secrets.TOKEN }}
                  fine: ok
                steps:
                  - run: "true"
            """,
            tmp_path, secrets={"TOKEN": "hunter2"},
        )
        assert result.outputs == {"fine": "ok"}
        assert any(
            a.level == "warning" and "leak" in a.message for a in result.annotations
        )


class TestConditions:
    """Step conditions, status functions and conclusions."""

    def test_failure_skips_later_steps_unless_their_condition_asks(self, tmp_path: Path) -> None:
        result, rep = run_job(
            """
            on: push
            jobs:
              build:
                runs-on: ubuntu-latest
                steps:
                  - id: bad
                    run: exit 3
                  - run: echo skipped
                  - if: failure()
                    run: echo "on failure ${{ steps.bad.outcome }}"
                  - if: always()
                    run: echo always
                  - if: success()
                    run: echo never
                  - if: cancelled()
                    run: echo never
            """,
            tmp_path,
        )
        conclusions = [s.conclusion for s in result.steps]
        assert conclusions == [
            Conclusion.FAILURE, Conclusion.SKIPPED, Conclusion.SUCCESS, Conclusion.SUCCESS,
            Conclusion.SKIPPED, Conclusion.SKIPPED,
        ]
        assert result.steps[0].error == "Process completed with exit code 3."
        assert rep.text == "on failure failure\nalways"
        assert result.conclusion is Conclusion.FAILURE
        # Skipped steps are reported too.
        finished = [e for e in rep.events if e[0] == "step_finished"]
        assert [e[3] for e in finished] == [c.value for c in conclusions]

    def test_continue_on_error_keeps_the_job_green(self, tmp_path: Path) -> None:
        result, rep = run_job(
            """
            on: push
            jobs:
              build:
                runs-on: ubuntu-latest
                steps:
                  - id: flaky
                    continue-on-error: ${{ true }}
                    run: exit 1
                  - run: echo "${{ steps.flaky.outcome }}/${{ steps.flaky.conclusion }} ${{ job.status }}"
            """,
            tmp_path,
        )
        assert result.steps[0].outcome is Conclusion.FAILURE
        assert result.steps[0].conclusion is Conclusion.SUCCESS
        assert rep.step_lines(1) == ["failure/success success"]
        assert result.conclusion is Conclusion.SUCCESS

    def test_condition_on_contexts_selects_steps(self, tmp_path: Path) -> None:
        result, rep = run_job(
            """
            on: push
            jobs:
              build:
                runs-on: ubuntu-latest
                steps:
                  - if: github.ref == 'refs/heads/main' && runner.os == 'Linux'
                    run: echo main
                  - if: ${{ github.event_name == 'pull_request' }}
                    run: echo pr
            """,
            tmp_path,
        )
        assert rep.text == "main"
        assert result.steps[1].conclusion is Conclusion.SKIPPED

    def test_evaluation_errors_fail_the_step_with_file_line_col(self, tmp_path: Path) -> None:
        result, _ = run_job(
            """
            on: push
            jobs:
              build:
                runs-on: ubuntu-latest
                steps:
                  - run: echo ${{ fromJSON('not json') }}
                  - if: always()
                    name: ${{ fromJSON('{') }}
                    run: echo hi
            """,
            tmp_path,
        )
        first, second = result.steps
        assert first.conclusion is Conclusion.FAILURE
        assert (first.error or "").startswith(".github/workflows/ci.yml:7:")
        assert second.conclusion is Conclusion.FAILURE
        assert (second.error or "").startswith(".github/workflows/ci.yml:9:")
        assert result.conclusion is Conclusion.FAILURE

    def test_step_names_are_evaluated_and_masked(self, tmp_path: Path) -> None:
        _, rep = run_job(
            """
            on: push
            jobs:
              build:
                runs-on: ubuntu-latest
                steps:
                  - name: Deploy ${{ github.ref_name }} with ${{ secrets.KEY }}
                    run: "true"
                  - run: echo unnamed
            """,
            tmp_path, secrets={"KEY": "k3y"},
        )
        started = [e[3] for e in rep.events if e[0] == "step_started"]
        assert started == ["Deploy main with ***", "Run echo unnamed"]


class TestWorkingDirectory:
    """working-directory and defaults.run."""

    def test_relative_working_directory_is_inside_the_workspace(self, tmp_path: Path) -> None:
        _, rep = run_job(
            """
            on: push
            defaults:
              run:
                working-directory: sub
            jobs:
              build:
                runs-on: ubuntu-latest
                steps:
                  - working-directory: .
                    run: mkdir -p sub/deeper
                  - run: basename "$PWD"
                  - working-directory: sub/deeper
                    run: basename "$PWD"
            """,
            tmp_path,
        )
        assert rep.step_lines(1) == ["sub"]
        assert rep.step_lines(2) == ["deeper"]

    def test_missing_working_directory_fails_the_step_clearly(self, tmp_path: Path) -> None:
        result, _ = run_job(
            """
            on: push
            jobs:
              build:
                runs-on: ubuntu-latest
                steps:
                  - working-directory: nowhere
                    run: "true"
            """,
            tmp_path,
        )
        assert result.steps[0].conclusion is Conclusion.FAILURE
        assert "nowhere' does not exist" in (result.steps[0].error or "")

    def test_each_job_gets_a_fresh_empty_workspace(self, tmp_path: Path) -> None:
        text = """
            on: push
            jobs:
              build:
                runs-on: ubuntu-latest
                steps:
                  - run: ls -A | wc -l; touch leftover
            """
        _, first = run_job(text, tmp_path)
        _, second = run_job(text, tmp_path)
        assert first.step_lines(0) == ["0"]
        assert second.step_lines(0) == ["0"]


class TestReporting:
    """The order of reports and the job result."""

    def test_reports_come_in_job_step_log_order(self, tmp_path: Path) -> None:
        result, rep = run_job(
            """
            on: push
            jobs:
              build:
                runs-on: ubuntu-latest
                steps:
                  - run: echo one
            """,
            tmp_path,
        )
        kinds = [e[0] for e in rep.events]
        assert kinds == ["job_started", "step_started", "step_finished", "job_finished"]
        assert result.steps[0].duration > 0 and result.duration >= result.steps[0].duration
        assert result.steps[0].started_at is not None

    def test_stderr_and_stdout_are_merged_in_order(self, tmp_path: Path) -> None:
        _, rep = run_job(
            """
            on: push
            jobs:
              build:
                runs-on: ubuntu-latest
                steps:
                  - run: |
                      echo out1
                      echo err1 >&2
                      echo out2
                      echo err2 >&2
            """,
            tmp_path,
        )
        assert rep.step_lines(0) == ["out1", "err1", "out2", "err2"]


class TestContexts:
    """The contexts a step's expressions see."""

    def test_run_contexts_reach_steps(self, tmp_path: Path) -> None:
        result, rep = run_job(
            """
            on: push
            jobs:
              build:
                runs-on: ubuntu-latest
                steps:
                  - run: |
                      echo "${{ inputs.level }} ${{ vars.REGION }} ${{ needs.prep.outputs.v }}"
                      echo "${{ matrix.os }} ${{ strategy.job-total }} ${{ job.status }}"
                      echo "${{ runner.os }} ${{ runner.name }} ${{ runner.temp != '' }}"
                      echo "${{ github.workspace == env.GITHUB_WORKSPACE }} ${{ github.job }}"
            """,
            tmp_path,
            contexts={
                "inputs": {"level": "high"}, "vars": {"REGION": "eu"},
                "needs": {"prep": {"result": "success", "outputs": {"v": "1.0"}}},
                "matrix": {"os": "linux"}, "strategy": {"job-total": 2},
            },
        )
        assert result.conclusion is Conclusion.SUCCESS
        assert rep.step_lines(0) == [
            "high eu 1.0", "linux 2 success", "Linux shipyard true", "false build",
        ]

    def test_hash_files_hashes_workspace_files(self, tmp_path: Path) -> None:
        _, rep = run_job(
            """
            on: push
            jobs:
              build:
                runs-on: ubuntu-latest
                steps:
                  - run: printf 'lock' > deps.lock
                  - run: |
                      echo "${{ hashFiles('deps.lock') }}"
                      echo "none=${{ hashFiles('*.missing') }}"
            """,
            tmp_path,
        )
        # GitHub's hash: sha256 over the sha256 digests of the matching files.
        expected = hashlib.sha256(hashlib.sha256(b"lock").digest()).hexdigest()
        assert rep.step_lines(1) == [expected, "none="]


class _BrokenReporter(RecordingReporter):
    def log(self, key: str, index: int, line: str) -> None:
        if line == "boom":
            raise RuntimeError("reporter is down")
        super().log(key, index, line)


def test_a_failing_reporter_fails_the_job_and_ends_its_process(tmp_path: Path) -> None:
    pid_file = tmp_path / "pid"
    wf = workflow(
        f"""
        on: push
        jobs:
          build:
            runs-on: ubuntu-latest
            steps:
              - run: |
                  sleep 300 &
                  echo $! > {pid_file}
                  echo boom
                  wait
        """
    )
    runner = JobRunner(LocalExecutor(), _BrokenReporter(), work_root=tmp_path / "work")
    started = time.monotonic()
    result = runner.run(request(wf))
    assert time.monotonic() - started < 5
    assert result.conclusion is Conclusion.FAILURE
    assert result.error == "internal error: RuntimeError: reporter is down"
    end = time.monotonic() + 3
    while not pid_gone(int(pid_file.read_text())) and time.monotonic() < end:
        time.sleep(0.02)
    assert pid_gone(int(pid_file.read_text()))
