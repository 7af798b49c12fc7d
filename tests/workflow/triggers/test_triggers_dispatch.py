"""Manual-run inputs: defaults, type conversion, required inputs and choices."""

from __future__ import annotations

import pytest

from shipyard.errors import WorkflowError
from shipyard.workflow._parser import load_workflow
from shipyard.workflow._triggers import resolve_dispatch_inputs

WORKFLOW = load_workflow(
    "deploy.yml",
    """
on:
  workflow_dispatch:
    inputs:
      environment:
        type: choice
        options: [staging, production]
        default: staging
      dry-run:
        type: boolean
        default: true
      replicas:
        type: number
        default: 2
      version:
        required: true
      verbose:
        type: boolean
      note:
        description: free text
      target:
        type: environment
jobs:
  a:
    runs-on: x
    steps: [{run: x}]
""",
)


def test_defaults_fill_what_is_not_given() -> None:
    assert resolve_dispatch_inputs(WORKFLOW, {"version": "1.2"}) == {
        "environment": "staging",
        "dry-run": True,
        "replicas": 2,
        "version": "1.2",
        "verbose": False,
        "note": "",
        "target": "",
    }


@pytest.mark.parametrize(
    ("given", "name", "value"),
    [
        ({"dry-run": "false"}, "dry-run", False),
        ({"dry-run": "TRUE"}, "dry-run", True),
        ({"dry-run": False}, "dry-run", False),
        ({"replicas": "5"}, "replicas", 5),
        ({"replicas": "-3"}, "replicas", -3),
        ({"replicas": "2.5"}, "replicas", 2.5),
        ({"replicas": "1e2"}, "replicas", 100.0),
        ({"replicas": 7}, "replicas", 7),
        ({"environment": "production"}, "environment", "production"),
        ({"target": "prod-eu"}, "target", "prod-eu"),
    ],
)
def test_given_values_are_converted_to_their_type(
    given: dict[str, object], name: str, value: object
) -> None:
    resolved = resolve_dispatch_inputs(WORKFLOW, {"version": "1", **given})
    assert resolved[name] == value
    assert type(resolved[name]) is type(value)


@pytest.mark.parametrize(
    ("given", "message"),
    [
        ({}, "input 'version' of deploy.yml is required"),
        ({"version": ""}, "input 'version' of deploy.yml is required"),
        (
            {"version": "1", "enviroment": "x"},
            "unknown input 'enviroment' for deploy.yml (did you mean 'environment'?)"
            " (inputs: dry-run, environment, note, replicas, target, verbose, version)",
        ),
        (
            {"version": "1", "environment": "prod"},
            "input 'environment' must be one of: staging, production (got 'prod')",
        ),
        ({"version": "1", "dry-run": "yes"}, "input 'dry-run' must be true or false, got 'yes'"),
        ({"version": "1", "replicas": "many"}, "input 'replicas' must be a number, got 'many'"),
        ({"version": "1", "replicas": "nan"}, "input 'replicas' must be a number, got 'nan'"),
    ],
)
def test_bad_inputs_are_refused_with_a_clear_message(given: dict[str, str], message: str) -> None:
    with pytest.raises(WorkflowError) as info:
        resolve_dispatch_inputs(WORKFLOW, given)
    assert str(info.value) == message


def test_workflow_without_dispatch_trigger() -> None:
    workflow = load_workflow(
        "ci.yml", "on: push\njobs:\n  a:\n    runs-on: x\n    steps: [{run: x}]\n"
    )
    with pytest.raises(WorkflowError, match=r"ci\.yml has no workflow_dispatch trigger"):
        resolve_dispatch_inputs(workflow, {})


def test_dispatch_without_inputs_accepts_nothing_else() -> None:
    workflow = load_workflow(
        "ci.yml", "on: workflow_dispatch\njobs:\n  a:\n    runs-on: x\n    steps: [{run: x}]\n"
    )
    assert resolve_dispatch_inputs(workflow, {}) == {}
    with pytest.raises(WorkflowError, match=r"unknown input 'x' for ci\.yml"):
        resolve_dispatch_inputs(workflow, {"x": "1"})
