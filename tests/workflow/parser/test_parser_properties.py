"""Whatever the input, reading a workflow gives a Workflow or located errors, nothing else."""

from __future__ import annotations

from typing import Any

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from shipyard.errors import LocatedError
from shipyard.workflow._model import Workflow
from shipyard.workflow._parser import check_composite_action, check_workflow

SETTINGS = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])

KEYS = [
    "name", "run-name", "on", "permissions", "env", "defaults", "concurrency", "jobs",
    "needs", "runs-on", "environment", "outputs", "if", "steps", "timeout-minutes",
    "strategy", "matrix", "include", "exclude", "fail-fast", "max-parallel",
    "continue-on-error", "container", "services", "image", "credentials", "ports",
    "volumes", "options", "uses", "with", "secrets", "id", "run", "shell",
    "working-directory", "push", "pull_request", "pull_request_target", "schedule", "cron",
    "workflow_dispatch", "workflow_call", "inputs", "type", "required", "default",
    "branches", "branches-ignore", "tags", "paths", "paths-ignore", "types", "group",
    "labels", "cancel-in-progress", "url", "run", "build", "test", "deploy", "<<", "a-b",
]  # fmt: skip

SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(10**6), max_value=10**6),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from(
        [
            "push", "ubuntu-latest", "actions/checkout@v4", "./local", "docker://alpine",
            "${{ matrix.os }}", "${{ github.ref == 'x' }}", "${{ steps.a.outputs.b }}",
            "${{", "}}", "${{ 1 + }}", "* * * * *", "61 * * * *", "inherit", "read-all",
            "choice", "boolean", "number", "bash", "main", "[", "!x", "**", "a/b/.github/workflows/c.yml@v1",
            "./.github/workflows/x.yml", "composite", "x{0}", "always()", "build",
        ]
    ),
    st.text(max_size=20),
)  # fmt: skip

TREES = st.recursive(
    SCALARS,
    lambda children: st.one_of(
        st.lists(children, max_size=4),
        st.dictionaries(st.sampled_from(KEYS), children, max_size=5),
    ),
    max_leaves=40,
)

WORKFLOW_LIKE = st.fixed_dictionaries(
    {},
    optional={
        "name": SCALARS,
        "on": TREES,
        "env": TREES,
        "permissions": TREES,
        "concurrency": TREES,
        "jobs": st.dictionaries(
            st.sampled_from(["build", "test", "deploy", "1bad", "a b"]),
            st.fixed_dictionaries(
                {},
                optional={
                    "runs-on": TREES,
                    "needs": TREES,
                    "steps": st.lists(TREES, max_size=4),
                    "strategy": TREES,
                    "if": SCALARS,
                    "uses": SCALARS,
                    "container": TREES,
                    "services": TREES,
                    "outputs": TREES,
                },
            ),
            max_size=4,
        ),
    },
)


def assert_outcome(result: tuple[Any, list[LocatedError]], kind: type) -> None:
    parsed, errors = result
    assert isinstance(errors, list)
    for error in errors:
        assert isinstance(error, LocatedError)
        assert error.location is not None
        assert error.location.line >= 1 and error.location.col >= 1
        assert "\n" not in error.message and error.message
    if not errors:
        assert isinstance(parsed, kind)
    positions = [(e.location.line, e.location.col) for e in errors if e.location]
    assert positions == sorted(positions)


def dump(data: Any) -> str:
    return yaml.safe_dump(data, sort_keys=False, allow_unicode=True, width=60)


@SETTINGS
@given(st.text(max_size=400))
def test_random_text(text: str) -> None:
    assert_outcome(check_workflow("wf.yml", text), Workflow)


@SETTINGS
@given(st.binary(max_size=400))
def test_random_bytes(data: bytes) -> None:
    assert_outcome(check_workflow("wf.yml", data), Workflow)


@SETTINGS
@given(WORKFLOW_LIKE)
def test_workflow_shaped_structures(data: dict[str, Any]) -> None:
    assert_outcome(check_workflow("wf.yml", dump(data)), Workflow)


@SETTINGS
@given(TREES, st.integers(min_value=0, max_value=400), st.text(max_size=8))
def test_structures_with_text_spliced_in(data: Any, at: int, junk: str) -> None:
    text = dump({"on": "push", "jobs": {"build": data}})
    text = text[:at] + junk + text[at:]
    assert_outcome(check_workflow("wf.yml", text), Workflow)


@SETTINGS
@given(TREES)
def test_composite_action_shaped_structures(data: Any) -> None:
    text = dump({"name": "x", "runs": {"using": "composite", "steps": data}, "inputs": data})
    from shipyard.workflow._model import CompositeAction

    assert_outcome(check_composite_action("action.yml", text), CompositeAction)
