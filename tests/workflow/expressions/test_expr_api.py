"""The Expression object: introspection, immutability, reuse, the public API."""

from __future__ import annotations

import pickle
import threading
from typing import Any

import pytest

import shipyard.workflow.expressions as expressions
from shipyard.workflow.expressions import EvalContext, Expression, parse


def test_public_names() -> None:
    assert set(expressions.__all__) == {
        "EvalContext",
        "EvaluationError",
        "Expression",
        "ExpressionError",
        "Template",
        "is_truthy",
        "parse",
        "parse_condition",
        "parse_template",
        "to_string",
    }
    for name in expressions.__all__:
        assert hasattr(expressions, name)


@pytest.mark.parametrize(
    ("source", "contexts", "functions", "uses_status"),
    [
        ("1", set(), set(), False),
        ("github.ref", {"github"}, set(), False),
        ("GitHub.Ref == Matrix.OS", {"github", "matrix"}, set(), False),
        ("steps.build.outputs.x || env.Y", {"steps", "env"}, set(), False),
        ("a[b.c]", {"a", "b"}, set(), False),
        ("Contains(github.ref, 'x')", {"github"}, {"contains"}, False),
        ("success() && startsWith(a, b)", {"a", "b"}, {"success", "startswith"}, True),
        ("format('{0}', toJSON(fromJSON(x)))", {"x"}, {"format", "tojson", "fromjson"}, False),
        ("!cancelled()", set(), {"cancelled"}, True),
        ("ALWAYS()", set(), {"always"}, True),
        ("failure() || x", {"x"}, {"failure"}, True),
        ("hashFiles('**/x')", set(), {"hashfiles"}, False),
        ("join(x.*.y, ',')", {"x"}, {"join"}, False),
    ],
)
def test_introspection(
    source: str, contexts: set[str], functions: set[str], uses_status: bool
) -> None:
    expression = parse(source)
    assert expression.source == source
    assert expression.contexts() == contexts
    assert expression.functions() == functions
    assert expression.uses_status_function() is uses_status


def test_introspection_results_are_fresh_sets() -> None:
    expression = parse("a && success()")
    expression.contexts().add("zzz")
    expression.functions().add("zzz")
    assert expression.contexts() == {"a"}
    assert expression.functions() == {"success"}


def test_expression_is_immutable() -> None:
    expression = parse("a")
    with pytest.raises(AttributeError):
        expression.source = "b"  # type: ignore[misc]
    with pytest.raises(AttributeError):
        del expression.source


def test_expressions_compare_by_source_and_meaning() -> None:
    assert parse("a == 'x'") == parse("a == 'x'")
    assert hash(parse("a == 'x'")) == hash(parse("a == 'x'"))
    assert parse("a == 'x'") != parse("a == 'y'")
    assert parse("a") != "a"
    assert repr(parse("a == 'x'")) == "Expression(\"a == 'x'\")"


def test_expression_survives_pickling() -> None:
    expression = pickle.loads(pickle.dumps(parse("contains(github.ref, 'main')")))
    assert isinstance(expression, Expression)
    assert expression.evaluate(EvalContext({"github": {"ref": "refs/heads/main"}})) is True


def test_expression_is_reusable_across_contexts() -> None:
    expression = parse("matrix.os == 'linux' && matrix.node >= 18")
    results = [
        expression.evaluate(EvalContext({"matrix": {"os": os, "node": node}}))
        for os, node in (("linux", 20), ("LINUX", 18), ("linux", 16), ("windows", 20))
    ]
    assert results == [True, True, False, False]


def test_expression_is_safe_to_share_between_threads() -> None:
    expression = parse("format('{0}-{1}', matrix.n, contains(matrix.tags.*.name, 'x'))")
    errors: list[BaseException] = []

    def work(n: int) -> None:
        ctx = EvalContext({"matrix": {"n": n, "tags": [{"name": "x" if n % 2 else "y"}]}})
        try:
            for _ in range(200):
                expected = f"{n}-{'true' if n % 2 else 'false'}"
                assert expression.evaluate(ctx) == expected
        except BaseException as error:  # pragma: no cover - reported below
            errors.append(error)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []


def test_evaluate_does_not_copy_context_values() -> None:
    payload: dict[str, Any] = {"k": [1]}
    assert parse("c.payload").evaluate(EvalContext({"c": {"payload": payload}})) is payload


def test_eval_context_defaults() -> None:
    ctx = EvalContext({"a": 1})
    assert ctx.status is None
    assert ctx.hash_files is None
    assert parse("a").evaluate(ctx) == 1
