"""Templates (strings with ${{ }} parts) and if: conditions."""

from __future__ import annotations

from typing import Any

import pytest

from shipyard.workflow.expressions import (
    EvalContext,
    EvaluationError,
    Expression,
    ExpressionError,
    Template,
    is_truthy,
    parse_condition,
    parse_template,
)

CTX = EvalContext(
    {
        "matrix": {"os": "linux", "node": 20, "flags": ["a", "b"], "cfg": {"k": "v"}, "none": None},
        "github": {"ref": "refs/heads/main", "event_name": "push"},
    }
)


# --- templates -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("${{ matrix.node }}", 20),
        ("${{matrix.node}}", 20),
        ("  ${{ matrix.node }}  ", 20),  # whitespace around a single expression is allowed
        ("${{ matrix.node }}\n", 20),
        ("${{ matrix.flags }}", ["a", "b"]),
        ("${{ matrix.cfg }}", {"k": "v"}),
        ("${{ matrix.none }}", None),
        ("${{ true }}", True),
        ("${{ 1.5 }}", 1.5),
        ("${{ matrix.flags.* }}", ["a", "b"]),
        ("${{ 'It''s open source!' }}", "It's open source!"),
    ],
)
def test_single_whole_expression_gives_the_raw_value(source: str, expected: Any) -> None:
    template = parse_template(source)
    assert not template.is_literal
    value = template.evaluate(CTX)
    assert value == expected
    assert type(value) is type(expected)


def test_single_expression_returns_the_same_object() -> None:
    assert parse_template("${{ matrix.cfg }}").evaluate(CTX) is CTX.contexts["matrix"]["cfg"]


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("v-${{ matrix.os }}-x", "v-linux-x"),
        ("node ${{ matrix.node }}", "node 20"),
        ("${{ matrix.os }}${{ matrix.node }}", "linux20"),
        ("${{ matrix.os }} ${{ matrix.node }}", "linux 20"),
        ("flags=${{ matrix.flags }}", "flags=Array"),
        ("cfg=${{ matrix.cfg }}", "cfg=Object"),
        ("none=[${{ matrix.none }}]", "none=[]"),
        ("b=${{ true }}", "b=true"),
        ("n=${{ 3.0 }}", "n=3"),
        ("${{ 'a}}b' }}!", "a}}b!"),  # '}}' inside a string does not close
        ("${{ 'it''s }}' }}.", "it's }}."),
        ("${{ matrix.os }}}", "linux}"),
        ("{{ not }} an ${ expression }", "{{ not }} an ${ expression }"),
        ("$${{ matrix.os }}", "$linux"),
        (
            "${{ format('{0}', matrix.os) }}-${{ toJSON(matrix.flags) }}",
            'linux-[\n  "a",\n  "b"\n]',
        ),
    ],
)
def test_text_with_expressions_is_interpolated_as_a_string(source: str, expected: str) -> None:
    assert parse_template(source).evaluate(CTX) == expected
    assert parse_template(source).evaluate_str(CTX) == expected


@pytest.mark.parametrize(
    "source", ["", "plain text", "echo $HOME", "{{ x }}", "$ {{ x }}", "${ { x }}"]
)
def test_text_without_expressions_is_literal(source: str) -> None:
    template = parse_template(source)
    assert template.is_literal
    assert template.expressions == []
    assert template.evaluate(CTX) == source
    assert template.evaluate_str(CTX) == source


def test_evaluate_str_converts_a_single_expression() -> None:
    assert parse_template("${{ matrix.node }}").evaluate_str(CTX) == "20"
    assert parse_template("${{ matrix.none }}").evaluate_str(CTX) == ""
    assert parse_template("${{ matrix.flags }}").evaluate_str(CTX) == "Array"


def test_expressions_list_offsets_point_at_each_expression_text() -> None:
    source = "a-${{ matrix.os }}-${{matrix.node}}-${{   github.ref }}"
    template = parse_template(source)
    assert [(offset, expression.source) for offset, expression in template.expressions] == [
        (6, "matrix.os"),
        (22, "matrix.node"),
        (42, "github.ref"),
    ]
    for offset, expression in template.expressions:
        assert source[offset : offset + len(expression.source)] == expression.source
        assert isinstance(expression, Expression)


def test_template_source_and_contexts() -> None:
    template = parse_template("x ${{ matrix.os }} ${{ GitHub.ref }}")
    assert template.source == "x ${{ matrix.os }} ${{ GitHub.ref }}"
    contexts = set().union(*(e.contexts() for _, e in template.expressions))
    assert contexts == {"matrix", "github"}


@pytest.mark.parametrize(
    ("source", "message", "offset"),
    [
        ("abc ${{ matrix.os", "'${{' is not closed by '}}'", 4),
        ("${{", "'${{' is not closed by '}}'", 0),
        ("ok ${{ a }} ${{ b }", "'${{' is not closed by '}}'", 12),
        ("x ${{ 'abc }}", "unterminated string", 6),
        ("x ${{ 'it''s }}", "unterminated string", 6),
        ("${{ }}", "expected an expression", 4),
        ("a ${{}}", "expected an expression", 5),
        ("v-${{ matrix.os == }}", "unexpected end of expression", 18),
        ("v-${{ matrix.os = 'x' }}", "unexpected character '=' (did you mean '=='?)", 16),
        ("${{ a }} and ${{ contians(a, b) }}", "unknown function 'contians'", 17),
        ("  ${{   1 + 2 }}", "invalid number '+'", 10),
    ],
)
def test_template_errors_have_offsets_relative_to_the_template(
    source: str, message: str, offset: int
) -> None:
    with pytest.raises(ExpressionError) as info:
        parse_template(source)
    assert info.value.message == message
    assert info.value.offset == offset


def test_evaluation_errors_in_templates_have_offsets_relative_to_the_template() -> None:
    template = parse_template("key-${{ hashFiles('x') }}")
    with pytest.raises(EvaluationError) as info:
        template.evaluate(CTX)
    assert info.value.offset == 8
    single = parse_template("  ${{ fromJSON('{') }}")
    with pytest.raises(EvaluationError) as info:
        single.evaluate(CTX)
    assert info.value.offset == 6


def test_template_is_immutable_and_compares_by_source() -> None:
    template = parse_template("a ${{ b }}")
    with pytest.raises(AttributeError):
        template.source = "x"  # type: ignore[misc]
    with pytest.raises(AttributeError):
        del template.source
    assert template == parse_template("a ${{ b }}")
    assert template != "a ${{ b }}"
    assert hash(template) == hash(parse_template("a ${{ b }}"))
    assert template != parse_template("a ${{ c }}")
    assert isinstance(template, Template)
    assert repr(template) == "Template('a ${{ b }}')"


# --- conditions ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("github.ref == 'refs/heads/main'", True),
        ("${{ github.ref == 'refs/heads/main' }}", True),
        ("  ${{ github.ref == 'refs/heads/main' }}  ", True),
        ("github.ref != 'refs/heads/main'", False),
        ("${{ false }}", False),
        ("false", False),
        ("true", True),
        ("matrix.os", True),
        ("matrix.none", False),
        ("!matrix.none", True),
        ("github.event_name == 'push' || github.event_name == 'pull_request'", True),
    ],
)
def test_condition_with_or_without_wrapper(source: str, expected: bool) -> None:
    assert is_truthy(parse_condition(source).evaluate(CTX)) is expected


def test_condition_without_status_function_is_wrapped_in_success() -> None:
    condition = parse_condition("github.event_name == 'push'")
    assert condition.uses_status_function()
    assert condition.functions() == {"success"}
    assert condition.contexts() == {"github"}
    failed = EvalContext(CTX.contexts, status=lambda name: name in ("failure", "always"))
    assert condition.evaluate(CTX) is True
    assert condition.evaluate(failed) is False


def test_condition_with_status_function_is_not_wrapped() -> None:
    failed = EvalContext(CTX.contexts, status=lambda name: name in ("failure", "always"))
    for source in (
        "always()",
        "${{ always() }}",
        "failure() && matrix.os == 'linux'",
        "!cancelled()",
    ):
        condition = parse_condition(source)
        assert is_truthy(condition.evaluate(failed)) is True, source
        assert "success" not in condition.functions()


def test_implicit_success_keeps_the_condition_value() -> None:
    assert parse_condition("matrix.os").evaluate(CTX) == "linux"
    assert parse_condition("matrix.none").evaluate(CTX) is None


def test_condition_source_is_kept_as_given() -> None:
    assert parse_condition("${{ true }}").source == "${{ true }}"
    assert parse_condition("true").source == "true"


def test_condition_mixing_text_and_expressions_is_a_non_empty_string_so_true() -> None:
    # A famous GitHub gotcha: this is the string "false && true", which is truthy.
    condition = parse_condition("${{ false }} && true")
    assert condition.evaluate(CTX) == "false && true"
    assert is_truthy(condition.evaluate(CTX)) is True
    assert condition.contexts() == set()
    assert parse_condition("${{ matrix.none }}${{ matrix.none }}").evaluate(CTX) == ""


@pytest.mark.parametrize(
    ("source", "message", "offset"),
    [
        ("github.ref ==", "unexpected end of expression", 13),
        ("${{ github.ref == }}", "unexpected end of expression", 17),
        ("  ${{ github.ref = 'x' }}", "unexpected character '=' (did you mean '=='?)", 17),
        ("${{ a }} ${{ b c }}", "unexpected token 'c'", 15),
        ("${{ a", "'${{' is not closed by '}}'", 0),
        ("contains(github.ref)", "'contains' takes 2 arguments, got 1", 0),
        ("", "expected an expression", 0),
        ("${{ }}", "expected an expression", 4),
    ],
)
def test_condition_errors_have_offsets_relative_to_the_given_source(
    source: str, message: str, offset: int
) -> None:
    with pytest.raises(ExpressionError) as info:
        parse_condition(source)
    assert info.value.message == message
    assert info.value.offset == offset


def test_condition_evaluation_errors_have_offsets_relative_to_the_given_source() -> None:
    for source, offset in (
        ("fromJSON('x')", 0),
        ("${{ fromJSON('x') }}", 4),
        ("  ${{ 1 == fromJSON('x') }}", 11),
    ):
        condition = parse_condition(source)
        with pytest.raises(EvaluationError) as info:
            condition.evaluate(CTX)
        assert info.value.offset == offset, source


def test_template_survives_pickling() -> None:
    import pickle

    template = pickle.loads(pickle.dumps(parse_template("v-${{ matrix.os }}")))
    assert template.evaluate(CTX) == "v-linux"
