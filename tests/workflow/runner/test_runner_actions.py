"""``uses:`` steps: built-in actions through the StepHost, and local composite actions."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import pytest

from shipyard.errors import ActionError
from shipyard.workflow._runtime import Annotation, CheckoutSource, Conclusion, StepHost
from shipyard.workflow.actions import BUILTIN_ACTIONS, ActionInputDef
from tests.helpers.gitrepo import git, make_repo
from tests.helpers.jobrun import run_job


class HostProbe:
    """A built-in action that exercises every StepHost call a real action makes."""

    name = "test/probe"
    inputs: Mapping[str, ActionInputDef] = {
        "mode": ActionInputDef(default="ok"),
        "greeting": ActionInputDef(default="hello ${{ github.actor }}"),
        "required-thing": ActionInputDef(required=True),
    }
    outputs = ("greeting",)

    def run(self, host: StepHost, inputs: dict[str, str]) -> None:
        mode = inputs["mode"]
        host.log(f"greeting={inputs['greeting']} thing={inputs['required-thing']}")
        host.set_output("greeting", inputs["greeting"])
        if mode == "ok":
            host.export_env("PROBE_ENV", "exported")
            tools = host.temp_dir / "probe-bin"
            tools.mkdir(exist_ok=True)
            (tools / "probe-tool").write_text("#!/bin/sh\necho probe-tool-ran\n")
            (tools / "probe-tool").chmod(0o755)
            host.add_path(str(tools))
            host.add_mask("probe-secret")
            host.annotate(Annotation("notice", "probe ran", file="x.py", line=1))
            code = host.run_process(
                ["sh", "-c", 'echo "in process $PROBE_ENV"; echo "state=kept" >&2; '
                 'echo "::save-state name=marker::from-main"; pwd'],
                cwd=host.workspace,
            )
            host.log(f"exit={code} status={host.job_status().value}")
            host.add_post_step("probe first", lambda h: h.log("post one " + h.env.get("STATE_marker", "?")))
            host.add_post_step("probe second", lambda h: h.log("post two"))
        elif mode == "fail":
            host.add_post_step("probe cleanup", lambda h: h.log(f"cleanup saw {h.job_status().value}"))
            raise ActionError("the probe was told to fail")
        elif mode == "crash":
            raise KeyError("oops")
        elif mode == "slow":
            host.run_process(["sleep", "300"])


ACTIONS = {**BUILTIN_ACTIONS, "test/probe": HostProbe()}


class TestBuiltinActions:
    """A built-in action sees the step through the StepHost."""

    def test_host_calls_take_effect_for_the_job(self, tmp_path: Path) -> None:
        result, rep = run_job(
            """
            on: push
            jobs:
              build:
                runs-on: ubuntu-latest
                steps:
                  - id: probe
                    uses: Test/Probe@v1
                    with:
                      required-thing: yes
                  - run: |
                      echo "$PROBE_ENV ${{ steps.probe.outputs.greeting }}"
                      probe-tool
                      echo "probe-secret"
                  - run: exit 1
            """,
            tmp_path, actions=ACTIONS,
        )
        lines = rep.step_lines(0)
        assert lines[0] == "greeting=hello octocat thing=yes"
        assert lines[1] == "::notice file=x.py,line=1::probe ran"
        assert lines[2] == "in process exported"
        assert lines[3] == "state=kept"
        assert "`save-state` command is deprecated" in lines[4]
        assert Path(lines[5]).name == "workspace"
        assert lines[6] == "exit=0 status=success"
        assert result.steps[0].outputs == {"greeting": "hello octocat"}
        assert rep.step_lines(1) == ["exported hello octocat", "probe-tool-ran", "***"]
        # Post steps run in reverse order at the end, even though the job failed.
        names = [e[3] for e in rep.events if e[0] == "step_started"]
        assert names[-2:] == ["Post Run Test/Probe@v1", "Post Run Test/Probe@v1"]
        assert rep.step_lines(3) == ["post two"]
        assert rep.step_lines(4) == ["post one from-main"]
        assert [s.index for s in result.steps] == [0, 1, 2, 3, 4]
        assert result.conclusion is Conclusion.FAILURE
        assert Annotation("notice", "probe ran", file="x.py", line=1) in result.annotations

    def test_action_errors_fail_the_step_and_post_steps_still_run(self, tmp_path: Path) -> None:
        result, rep = run_job(
            """
            on: push
            jobs:
              build:
                runs-on: ubuntu-latest
                steps:
                  - uses: test/probe@main
                    with:
                      mode: fail
                      required-thing: x
            """,
            tmp_path, actions=ACTIONS,
        )
        assert result.steps[0].error == "the probe was told to fail"
        assert result.steps[1].name == "Post Run test/probe@main"
        assert rep.step_lines(1) == ["cleanup saw failure"]
        assert result.conclusion is Conclusion.FAILURE

    def test_unexpected_exceptions_fail_the_step_not_the_runner(self, tmp_path: Path) -> None:
        result, rep = run_job(
            """
            on: push
            jobs:
              build:
                runs-on: ubuntu-latest
                steps:
                  - uses: test/probe@v1
                    with: {mode: crash, required-thing: x}
                  - if: always()
                    run: echo still running
            """,
            tmp_path, actions=ACTIONS,
        )
        assert result.steps[0].error == "internal error in test/probe: KeyError: 'oops'"
        assert any("Traceback" in line for line in rep.step_lines(0))
        assert rep.step_lines(1) == ["still running"]

    def test_required_inputs_and_unexpected_inputs(self, tmp_path: Path) -> None:
        result, _ = run_job(
            """
            on: push
            jobs:
              build:
                runs-on: ubuntu-latest
                steps:
                  - uses: test/probe@v1
                    with:
                      colour: blue
            """,
            tmp_path, actions=ACTIONS,
        )
        assert result.steps[0].error == "Input required and not supplied: required-thing (test/probe)"
        assert any(
            a.level == "warning" and "Unexpected input(s) 'colour'" in a.message
            for a in result.annotations
        )

    def test_a_built_in_action_is_stopped_by_the_step_timeout(self, tmp_path: Path) -> None:
        result, _ = run_job(
            """
            on: push
            jobs:
              build:
                runs-on: ubuntu-latest
                steps:
                  - uses: test/probe@v1
                    timeout-minutes: 0.005
                    with: {mode: slow, required-thing: x}
            """,
            tmp_path, actions=ACTIONS,
        )
        assert result.steps[0].error == "The step timed out after 0.005 minutes."

    @pytest.mark.parametrize("uses", ["octo/deploy@v2", "docker://alpine:3.19"])
    def test_unavailable_actions_fail_with_a_clear_message(self, tmp_path: Path, uses: str) -> None:
        result, _ = run_job(
            f"""
            on: push
            jobs:
              build:
                runs-on: ubuntu-latest
                steps:
                  - uses: {uses}
            """,
            tmp_path,
        )
        error = result.steps[0].error or ""
        assert f"action '{uses}' is not available: Shipyard runs only its built-in actions (" in error
        assert "actions/checkout" in error and "local composite actions (uses: ./path)" in error
        assert error.startswith(".github/workflows/ci.yml:7:")


ACTION_FILES = {
    ".github/actions/greet/action.yml": """
        name: Greet
        inputs:
          who:
            description: whom to greet
            default: ${{ github.actor }}
          punctuation:
            default: "!"
        outputs:
          greeting:
            description: the greeting
            value: ${{ steps.say.outputs.text }}
          inner:
            value: ${{ steps.nested.outputs.echoed }}
        runs:
          using: composite
          steps:
            - id: say
              shell: bash
              run: echo "text=Hello ${{ inputs.who }}${{ inputs.punctuation }}" >> "$GITHUB_OUTPUT"
            - id: nested
              uses: ./.github/actions/inner
              with:
                value: ${{ steps.say.outputs.text }}
              env:
                FROM_OUTER: outer-env
            - shell: bash
              run: echo "action path ends with $(basename "$GITHUB_ACTION_PATH")"
    """,
    ".github/actions/inner/action.yml": """
        name: Inner
        inputs:
          value:
            required: true
        outputs:
          echoed:
            value: ${{ steps.e.outputs.v }}
        runs:
          using: composite
          steps:
            - id: e
              shell: sh
              run: |
                echo "inner got ${{ inputs.value }} with $FROM_OUTER and $JOB_LEVEL"
                echo "v=${{ inputs.value }}" >> "$GITHUB_OUTPUT"
    """,
    ".github/actions/fails/action.yml": """
        name: Fails
        runs:
          using: composite
          steps:
            - shell: bash
              run: exit 4
            - shell: bash
              run: echo not reached
            - if: failure()
              shell: bash
              run: echo composite saw the failure
    """,
    ".github/actions/forever/action.yml": """
        name: Forever
        runs:
          using: composite
          steps:
            - uses: ./.github/actions/forever
    """,
}


@pytest.fixture
def source(tmp_path: Path) -> CheckoutSource:
    repo = make_repo(tmp_path / "repo", ACTION_FILES)
    return CheckoutSource(url=str(repo), sha=git(repo, "rev-parse", "HEAD"), ref="refs/heads/main")


class TestCompositeActions:
    """Local composite actions, loaded from the checked-out workspace."""

    def test_inputs_defaults_nesting_and_outputs(self, tmp_path: Path, source: CheckoutSource) -> None:
        result, rep = run_job(
            """
            on: push
            jobs:
              build:
                runs-on: ubuntu-latest
                env:
                  JOB_LEVEL: job-env
                steps:
                  - uses: actions/checkout@v4
                  - id: hi
                    uses: ./.github/actions/greet
                    with:
                      who: Ada
                  - id: default
                    uses: ./.github/actions/greet
                  - run: echo "${{ steps.hi.outputs.greeting }} / ${{ steps.default.outputs.greeting }} / ${{ steps.hi.outputs.inner }}"
            """,
            tmp_path, source=source,
        )
        assert result.conclusion is Conclusion.SUCCESS, result.steps
        assert rep.step_lines(1) == [
            "inner got Hello Ada! with outer-env and job-env",
            "action path ends with greet",
        ]
        assert rep.step_lines(3) == ["Hello Ada! / Hello octocat! / Hello Ada!"]
        assert result.steps[1].outputs == {"greeting": "Hello Ada!", "inner": "Hello Ada!"}

    def test_a_failing_composite_step_fails_the_using_step(self, tmp_path: Path, source: CheckoutSource) -> None:
        result, rep = run_job(
            """
            on: push
            jobs:
              build:
                runs-on: ubuntu-latest
                steps:
                  - uses: actions/checkout@v4
                  - id: f
                    uses: ./.github/actions/fails
                    continue-on-error: true
                  - run: echo "${{ steps.f.outcome }}"
            """,
            tmp_path, source=source,
        )
        assert rep.step_lines(1) == ["composite saw the failure"]
        step = result.steps[1]
        assert step.outcome is Conclusion.FAILURE and step.conclusion is Conclusion.SUCCESS
        assert "Process completed with exit code 4." in (step.error or "")
        assert rep.step_lines(2) == ["failure"]

    def test_nesting_is_limited(self, tmp_path: Path, source: CheckoutSource) -> None:
        result, _ = run_job(
            """
            on: push
            jobs:
              build:
                runs-on: ubuntu-latest
                steps:
                  - uses: actions/checkout@v4
                  - uses: ./.github/actions/forever
            """,
            tmp_path, source=source,
        )
        assert "composite actions nest more than 10 deep" in (result.steps[1].error or "")

    def test_missing_action_file_says_what_to_do(self, tmp_path: Path) -> None:
        result, _ = run_job(
            """
            on: push
            jobs:
              build:
                runs-on: ubuntu-latest
                steps:
                  - uses: ./.github/actions/greet
            """,
            tmp_path,
        )
        error = result.steps[0].error or ""
        assert "cannot find action.yml or action.yaml in './.github/actions/greet'" in error
        assert "actions/checkout" in error
