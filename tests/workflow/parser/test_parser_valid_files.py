"""Realistic workflow files parse without errors into the expected structure."""

from __future__ import annotations

from pathlib import Path

import pytest

from shipyard.workflow._model import Container, InputType, Value, Workflow
from shipyard.workflow._parser import check_workflow, load_composite_action, load_workflow
from shipyard.workflow.expressions import EvalContext

DATA = Path(__file__).resolve().parent.parent / "data"


def load(name: str) -> Workflow:
    return load_workflow(DATA / name, display_path=name)


def source(value: object) -> str:
    assert isinstance(value, Value), value
    return value.source


@pytest.mark.parametrize("path", sorted(DATA.glob("*.yml")), ids=lambda p: p.name)
def test_every_data_workflow_has_no_errors(path: Path) -> None:
    workflow, errors = check_workflow(path)
    assert [str(e) for e in errors] == []
    assert workflow is not None and workflow.jobs


class TestPythonCI:
    def test_triggers_and_filters(self) -> None:
        wf = load("python-ci.yml")
        assert wf.name == "Python CI"
        assert wf.on.events == {"push", "pull_request"}
        assert wf.on.push is not None
        assert wf.on.push.branches == ("main", "release/**")
        assert wf.on.push.paths_ignore == ("docs/**", "**.md")
        assert wf.on.pull_request is not None and wf.on.pull_request.branches == ("main",)

    def test_env_numbers_and_booleans_keep_their_string_form(self) -> None:
        wf = load("python-ci.yml")
        assert {k: v.source for k, v in wf.env.items()} == {
            "PIP_DISABLE_PIP_VERSION_CHECK": "1",
            "FORCE_COLOR": "true",
        }
        assert wf.defaults.shell == "bash"

    def test_jobs_steps_and_needs(self) -> None:
        wf = load("python-ci.yml")
        assert list(wf.jobs) == ["lint", "test"]
        lint, test = wf.jobs["lint"], wf.jobs["test"]
        assert lint.timeout_minutes == 10
        assert source(lint.runs_on) == "ubuntu-latest"
        assert [s.uses for s in lint.steps[:2]] == [
            "actions/checkout@v4",
            "actions/setup-python@v5",
        ]
        assert lint.steps[1].with_["python-version"].source == "3.12"
        assert test.needs == ("lint",)
        assert test.name is not None and test.name.source == "Test (py${{ matrix.python-version }})"
        assert test.strategy is not None and test.strategy.fail_fast is False
        matrix = test.strategy.matrix
        assert isinstance(matrix, dict)
        assert [source(v) for v in matrix["python-version"]] == ["3.10", "3.11", "3.12", "3.13"]

    def test_step_details(self) -> None:
        steps = load("python-ci.yml").jobs["test"].steps
        pytest_step = next(s for s in steps if s.id == "pytest")
        assert pytest_step.env["COVERAGE_FILE"].source == ".coverage.${{ matrix.python-version }}"
        upload = steps[-1]
        assert upload.condition is not None and upload.condition.source == "always()"
        assert upload.with_["retention-days"].source == "7"
        install = next(s for s in steps if s.name is not None and s.name.source == "Install")
        assert install.run is not None
        assert install.run.source.splitlines()[1] == 'pip install -e ".[test]"'
        assert install.location is not None and install.location.line == 62


class TestMatrix:
    def test_include_exclude_and_axes(self) -> None:
        job = load("matrix.yml").jobs["build"]
        assert job.strategy is not None
        assert job.strategy.max_parallel == 4
        matrix = job.strategy.matrix
        assert isinstance(matrix, dict)
        assert matrix["node"] == [18, 20, 22]
        assert matrix["experimental"] == [False]
        assert len(matrix["exclude"]) == 2 and len(matrix["include"]) == 2
        assert isinstance(job.continue_on_error, Value)
        assert source(job.runs_on) == "${{ matrix.os }}"

    def test_expression_matrices(self) -> None:
        wf = load("matrix.yml")
        per_target = wf.jobs["per-target"].strategy
        assert per_target is not None and isinstance(per_target.matrix, dict)
        assert source(per_target.matrix["target"]) == "${{ fromJSON(needs.plan.outputs.targets) }}"
        dynamic = wf.jobs["dynamic"].strategy
        assert dynamic is not None and isinstance(dynamic.matrix, Value)
        assert dynamic.matrix.evaluate(EvalContext({})) == {"shard": [1, 2, 3]}

    def test_on_as_a_list(self) -> None:
        assert load("matrix.yml").on.events == {"push", "pull_request"}


class TestNeedsAndOutputs:
    def test_outputs_and_conditions(self) -> None:
        wf = load("needs-outputs.yml")
        assert wf.on.push is not None and wf.on.push.tags == ("v[0-9]+.[0-9]+.[0-9]+",)
        assert wf.jobs["version"].outputs["version"].source == "${{ steps.v.outputs.version }}"
        publish = wf.jobs["publish"]
        assert publish.needs == ("version", "build")
        assert publish.environment is not None
        assert publish.environment.name.source == "production"
        assert publish.environment.url is not None
        notify = wf.jobs["notify"]
        assert notify.condition is not None and notify.condition.expression.uses_status_function()


class TestDispatch:
    def test_inputs_of_every_type(self) -> None:
        wf = load("dispatch.yml")
        inputs = wf.on.workflow_dispatch
        assert inputs is not None
        assert inputs["environment"].type is InputType.CHOICE
        assert inputs["environment"].options == ("staging", "production")
        assert inputs["environment"].default == "staging"
        assert inputs["dry-run"].default is True
        assert inputs["replicas"].default == 2
        assert inputs["version"].required and inputs["version"].type is InputType.STRING
        assert inputs["target"].type is InputType.ENVIRONMENT
        assert inputs["version"].location is not None and inputs["version"].location.line == 17

    def test_run_name_concurrency_and_expression_timeout(self) -> None:
        wf = load("dispatch.yml")
        assert wf.run_name is not None and "inputs.environment" in wf.run_name.source
        assert wf.concurrency is not None
        assert wf.concurrency.group.source == "deploy-${{ inputs.environment }}"
        assert wf.concurrency.cancel_in_progress is False
        job = wf.jobs["deploy"]
        assert isinstance(job.timeout_minutes, Value)
        assert (
            job.environment is not None
            and job.environment.name.source == "${{ inputs.environment }}"
        )
        assert job.steps[0].working_directory is not None


class TestSchedule:
    def test_crons_and_runner_forms(self) -> None:
        wf = load("schedule.yml")
        assert [s.cron for s in wf.on.schedule] == ["30 2 * * *", "0 */6 * * MON-FRI"]
        assert wf.on.workflow_dispatch == {}
        assert [source(v) for v in wf.jobs["audit"].runs_on] == ["self-hosted", "linux", "x64"]  # type: ignore[union-attr]
        runs_on = wf.jobs["cleanup"].runs_on
        assert isinstance(runs_on, dict) and source(runs_on["group"]) == "maintenance"
        step = wf.jobs["audit"].steps[1]
        assert step.timeout_minutes == 30 and step.continue_on_error is True
        assert wf.jobs["cleanup"].steps[0].shell == "python {0}"


class TestAnchors:
    def test_aliases_are_expanded(self) -> None:
        wf = load("anchors.yml")
        assert wf.on.pull_request is not None
        assert wf.on.pull_request.branches == ("main", "develop")
        unit, integration = wf.jobs["unit"], wf.jobs["integration"]
        assert {k: v.source for k, v in integration.env.items()} == {"LANG": "C.UTF-8", "TZ": "UTC"}
        assert [s.uses for s in integration.steps] == ["actions/checkout@v4", None, None]
        assert integration.steps[1].name is not None
        assert integration.steps[1].name.source == "Install"
        # An aliased step reports where its anchor was written.
        assert integration.steps[0].location == unit.steps[0].location


class TestContainers:
    def test_container_and_services(self) -> None:
        wf = load("containers.yml")
        assert wf.on.pull_request is not None
        assert wf.on.pull_request.types == ("opened", "synchronize", "labeled")
        assert wf.on.pull_request.paths == ("src/**", "tests/**", "!**.md")
        job = wf.jobs["integration"]
        assert isinstance(job.container, Container)
        assert job.container.image.source == "python:3.12-slim"
        assert [p.source for p in job.container.ports] == ["8080"]
        assert job.container.options is not None and job.container.options.source == "--cpus 2"
        postgres = job.services["postgres"]
        assert postgres.env["POSTGRES_PASSWORD"].source == "${{ secrets.DB_PASSWORD }}"
        assert postgres.options is not None
        assert postgres.options.source == (
            "--health-cmd pg_isready --health-interval 10s --health-retries 5"
        )
        assert set(job.services["redis"].credentials) == {"username", "password"}

    def test_container_as_a_string_and_docker_step(self) -> None:
        job = load("containers.yml").jobs["lint-in-image"]
        assert (
            job.container is not None
            and job.container.image.source == "ghcr.io/acme/linters:latest"
        )
        assert job.steps[0].uses == "docker://alpine:3.20"


class TestReusable:
    def test_called_workflow(self) -> None:
        call = load("reusable.yml").on.workflow_call
        assert call is not None
        assert call.inputs["python-version"].default == "3.12"
        assert call.inputs["run-tests"].type is InputType.BOOLEAN
        assert call.inputs["shards"].default == 1
        assert call.outputs["artifact"].source == "${{ jobs.build.outputs.artifact }}"
        assert call.secrets == {"pypi-token": True, "optional-token": False}

    def test_caller_jobs(self) -> None:
        wf = load("reusable-caller.yml")
        build = wf.jobs["build"]
        assert build.uses == "./.github/workflows/reusable.yml"
        assert build.steps == () and build.runs_on is None
        assert {k: v.source for k, v in build.with_.items()} == {
            "python-version": "3.11",
            "run-tests": "true",
            "shards": "4",
        }
        assert isinstance(build.secrets, dict) and "pypi-token" in build.secrets
        shared = wf.jobs["shared"]
        assert shared.uses == "acme/shared-workflows/.github/workflows/deploy.yml@v2"
        assert shared.secrets == "inherit"
        assert wf.on.push is not None and wf.on.push.tags_ignore == ("nightly-*",)


class TestOtherEvents:
    def test_activity_types_of_other_events(self) -> None:
        wf = load("release.yml")
        assert wf.on.events == {"release", "issues", "workflow_run"}
        assert wf.on.activity_types == {
            "release": ("published", "prereleased"),
            "issues": ("opened", "labeled"),
            "workflow_run": ("completed",),
        }


class TestCompositeAction:
    def test_action_parses(self) -> None:
        action = load_composite_action(DATA / "action" / "action.yml")
        assert action.name == "Setup toolchain"
        assert action.inputs["version"].required
        assert action.inputs["cache"].default is not None
        assert action.inputs["cache"].default.source == "true"
        assert action.outputs["path"].source == "${{ steps.install.outputs.path }}"
        assert [s.shell for s in action.steps] == ["bash", None, "python"]
        assert action.steps[1].uses == "actions/cache@v4"
        assert action.steps[1].condition is not None


def test_workflow_keeps_its_source_and_display_path() -> None:
    text = (DATA / "schedule.yml").read_text()
    wf = load_workflow("ignored.yml", text, display_path="shown.yml")
    assert wf.path == "shown.yml" and wf.source == text
    assert wf.jobs["audit"].location is not None
    assert wf.jobs["audit"].location.file == "shown.yml"


def test_bytes_with_bom_are_read() -> None:
    text = (DATA / "schedule.yml").read_bytes()
    wf = load_workflow("x.yml", b"\xef\xbb\xbf" + text)
    assert wf.name == "Nightly"
