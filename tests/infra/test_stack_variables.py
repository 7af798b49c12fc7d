"""Stack variables: types, defaults, and validation rules over ``var``."""

from __future__ import annotations

from pathlib import Path

from shipyard.infra.provider import REQUIRED
from shipyard.workflow.expressions import EvalContext
from tests.infra.stacks import load, stack_errors


def test_variables_are_read_with_types_defaults_and_rules(tmp_path: Path) -> None:
    stack = load(
        tmp_path,
        {
            "main.yaml": """\
                variables:
                  port:
                    type: integer
                    default: 8080
                    description: Port the API listens on
                    validation:
                      - condition: ${{ var.port > 1024 }}
                        message: port must be above 1024
                      - condition: var.port < 65536
                        message: port must be below 65536
                  password: {type: string, sensitive: true}
                  anything:
                  names: {type: " list( string ) ", default: [a, 1, true]}
                  nothing: {type: map(any), default: null}
            """
        },
    )
    v = stack.variables
    port = v["port"]
    assert (port.type, port.default, port.description, port.sensitive) == (
        "integer",
        8080,
        "Port the API listens on",
        False,
    )
    assert [r.message for r in port.validations] == [
        "port must be above 1024",
        "port must be below 65536",
    ]
    checks = [r.condition.evaluate(EvalContext({"var": {"port": 80}})) for r in port.validations]
    assert checks == [False, True]
    assert port.validations[0].location.line == 7
    assert (v["password"].default, v["password"].sensitive) == (REQUIRED, True)
    assert (v["anything"].type, v["anything"].default) == ("any", REQUIRED)
    assert (v["names"].type, v["names"].default) == ("list(string)", ["a", "1", "true"])
    assert (v["nothing"].type, v["nothing"].default) == ("map(any)", None)
    assert port.location.line == 2


def test_types_and_defaults_are_checked(tmp_path: Path) -> None:
    assert stack_errors(
        tmp_path,
        {
            "main.yaml": """\
                variables:
                  a: {type: integr, default: 1}
                  b: {type: integer, default: "8080"}
                  c: {type: list(integer), default: [1, x, 2.5]}
                  d: {type: map(string), default: {k: [v]}}
                  e: {type: boolean, default: "${{ var.a }}"}
                  f: {type: "${{ var.t }}"}
                  g: {type: [string]}
                  h: {description: [x], sensitive: maybe}
            """
        },
    ) == [
        "main.yaml:2:13: unknown type 'integr' (did you mean 'integer'?); types are string,"
        " number, integer, boolean, any, list(T) and map(T)",
        "main.yaml:3:31: default: expected integer, got string",
        "main.yaml:4:41: default[1]: expected integer, got string",
        "main.yaml:4:44: default[2]: expected integer, got number 2.5",
        "main.yaml:5:39: default.k: expected string, got list",
        "main.yaml:6:31: expressions are not allowed in a variable's default",
        "main.yaml:7:13: expressions are not allowed in a type",
        "main.yaml:8:13: expected a string, got a list",
        "main.yaml:9:20: expected a string, got a list",
        "main.yaml:9:36: expected a boolean, got a string",
    ]


def test_validation_rules_must_be_conditions_over_the_variable(tmp_path: Path) -> None:
    assert stack_errors(
        tmp_path,
        {
            "main.yaml": """\
                variables:
                  other: {default: 1}
                  port:
                    type: integer
                    validation:
                      - condition: ${{ var.other > 1 }}
                        message: reads another variable only
                      - condition: ${{ resources.x.id }} and ${{ var.port }}
                        message: two expressions
                      - condition: true
                        message: a boolean
                      - condition: ${{ var.port > }}
                        message: broken
                      - condition: ${{ var.prot > 1 }}
                        message: ""
                      - message: no condition
                      - {condition: "${{ var.port > 1 }}"}
                      - condition: ${{ resources.db.id == var.port }}
                        message: resources are not available
                  single:
                    validation: {condition: "${{ var.single }}", message: one rule alone}
            """
        },
    ) == [
        "main.yaml:6:20: the condition must test the variable: use var.port",
        "main.yaml:8:20: a condition is one ${{ }} expression with nothing around it",
        "main.yaml:10:20: expected an expression such as ${{ var.x > 0 }}, got boolean",
        "main.yaml:12:34: unexpected end of expression",
        "main.yaml:14:20: the condition must test the variable: use var.port",
        "main.yaml:14:28: unknown variable 'prot' (did you mean 'port'?)",
        "main.yaml:15:18: the message cannot be empty",
        "main.yaml:16:9: 'condition' is required",
        "main.yaml:17:9: 'message' is required",
        "main.yaml:18:24: 'resources' is not available in the validation of variable 'port'"
        " (only var)",
    ]
