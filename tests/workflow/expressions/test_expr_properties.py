"""Property-based tests: no input makes parsing or evaluation fail with anything
but ExpressionError / EvaluationError, and core laws hold for random values."""

from __future__ import annotations

import math
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from shipyard.workflow.expressions import (
    EvalContext,
    EvaluationError,
    Expression,
    ExpressionError,
    Template,
    is_truthy,
    parse,
    parse_condition,
    parse_template,
    to_string,
)

SETTINGS = settings(
    max_examples=300,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)

# --- strategies ----------------------------------------------------------------------

_TOKEN_TEXT = """
    ( ) [ ] , . * ! != == < <= > >= && || = & | ' '' 'a' 'it''s' '}}' null true false NaN
    Infinity -Infinity 0 1 -1 1.5 .5 0xff 0o7 1e3 -2.99e-2 1abc github matrix env a b-c _x
    event name contains startsWith endsWith format join toJSON fromJSON hashFiles success
    failure cancelled always nope ${{ }} { } {0} $ # é
"""
TOKENS = [*_TOKEN_TEXT.split(), "\n", "\t"]

token_soup = st.lists(
    st.tuples(st.sampled_from(TOKENS), st.sampled_from(["", " ", "  "])), max_size=25
).map(lambda parts: "".join(token + space for token, space in parts))

any_text = st.one_of(st.text(max_size=60), token_soup, token_soup.map(lambda s: "${{ " + s + " }}"))

json_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(10**20), max_value=10**20),
    st.floats(min_value=-1e300, max_value=1e300),  # G15 rounds the very largest up to infinity
    st.sampled_from([math.nan, math.inf, -math.inf, -0.0]),
    st.text(max_size=12),
    st.sampled_from(
        ["", "0", "1", "1.5", " 2 ", "0x10", "true", "Infinity", "[1]", '{"a": 1}', "{0}", "{"]
    ),
)
KEYS = st.sampled_from(["a", "A", "b", "name", "Name", "event", "0", "1", "x y", ""])
json_values = st.recursive(
    json_scalars,
    lambda children: st.one_of(
        st.lists(children, max_size=4),
        st.dictionaries(KEYS, children, max_size=4),
    ),
    max_leaves=12,
)
contexts = st.dictionaries(
    st.sampled_from(["github", "matrix", "env", "a", "GitHub", "steps"]), json_values, max_size=4
)

# Grammatical expressions, to exercise evaluation rather than the parser.
NAMES = st.sampled_from(["a", "b", "name", "Name", "event", "x", "nope"])
CONTEXT_NAMES = st.sampled_from(["github", "matrix", "env", "a", "steps", "missing"])
LITERALS = st.sampled_from(
    [
        "null",
        "true",
        "false",
        "0",
        "1",
        "-1",
        "2.5",
        "NaN",
        "Infinity",
        "0xff",
        "''",
        "'a'",
        "'A'",
        "'1'",
        "'{0}'",
        "'[1, 2]'",
        '\'{"a": {"b": 1}}\'',
        "'nope'",
        "'{'",
        "'x y'",
    ]
)


def _path(base: str, steps: list[str]) -> str:
    return base + "".join(steps)


STEPS = st.one_of(
    NAMES.map(lambda n: "." + n),
    st.just(".*"),
    st.just("[*]"),
    st.sampled_from(["[0]", "[1]", "['a']", "[-1]", "[1.5]", "[null]", "['name']"]),
)
PATHS = st.builds(_path, CONTEXT_NAMES, st.lists(STEPS, max_size=4))


def _extend(children: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    def call(name: str, count: int) -> st.SearchStrategy[str]:
        return st.lists(children, min_size=count, max_size=count).map(
            lambda args: f"{name}({', '.join(args)})"
        )

    return st.one_of(
        st.tuples(
            children, st.sampled_from(["==", "!=", "<", "<=", ">", ">=", "&&", "||"]), children
        ).map(lambda t: f"{t[0]} {t[1]} {t[2]}"),
        children.map(lambda c: f"!{c}"),
        children.map(lambda c: f"({c})"),
        st.tuples(children, children).map(lambda t: f"({t[0]})[{t[1]}]"),
        children.map(lambda c: f"({c}).*"),
        call("contains", 2),
        call("startsWith", 2),
        call("endsWith", 2),
        st.integers(1, 4).flatmap(lambda n: call("format", n)),
        st.integers(1, 2).flatmap(lambda n: call("join", n)),
        call("toJSON", 1),
        call("fromJSON", 1),
        call("hashFiles", 1),
        st.sampled_from(["success()", "failure()", "cancelled()", "always()"]),
    )


expressions = st.recursive(st.one_of(LITERALS, PATHS), _extend, max_leaves=10)


def _fake_hash(patterns: list[str]) -> str:
    return f"hash-of-{len(patterns)}"


def _contexts_ok(error: ExpressionError, source: str) -> None:
    assert not error.message.startswith("internal error"), error.message
    assert 0 <= error.offset <= len(source), (error.offset, source)


def _is_json_like(value: Any) -> bool:
    stack = [value]
    seen = 0
    while stack:
        item = stack.pop()
        seen += 1
        if seen > 100_000:
            return True
        if item is None or isinstance(item, (bool, int, float, str)):
            continue
        if type(item) is list:
            stack.extend(item)
        elif type(item) is dict:
            stack.extend(item.values())
        else:
            return False
    return True


# --- parsing never crashes -----------------------------------------------------------


@SETTINGS
@given(any_text)
def test_parse_gives_an_expression_or_an_expression_error(source: str) -> None:
    try:
        result = parse(source)
    except ExpressionError as error:
        _contexts_ok(error, source)
    else:
        assert isinstance(result, Expression)


@SETTINGS
@given(any_text)
def test_parse_template_gives_a_template_or_an_expression_error(source: str) -> None:
    try:
        result = parse_template(source)
    except ExpressionError as error:
        _contexts_ok(error, source)
    else:
        assert isinstance(result, Template)
        for offset, expression in result.expressions:
            assert source[offset : offset + len(expression.source)] == expression.source


@SETTINGS
@given(any_text)
def test_parse_condition_gives_an_expression_or_an_expression_error(source: str) -> None:
    try:
        result = parse_condition(source)
    except ExpressionError as error:
        _contexts_ok(error, source)
    else:
        assert isinstance(result, Expression)
        assert result.uses_status_function()


@SETTINGS
@given(st.text(max_size=80).filter(lambda s: "${{" not in s))
def test_text_without_expression_markers_is_a_literal_template(text: str) -> None:
    template = parse_template(text)
    assert template.is_literal
    assert template.evaluate(EvalContext({})) == text


# --- evaluation never crashes --------------------------------------------------------


@SETTINGS
@given(expressions)
def test_grammatical_expressions_parse(source: str) -> None:
    parse(source)
    parse_template("x ${{ " + source + " }} y")
    parse_condition(source)


@SETTINGS
@given(expressions, contexts)
def test_evaluation_gives_a_value_or_an_evaluation_error(source: str, data: dict[str, Any]) -> None:
    expression = parse(source)
    for ctx in (EvalContext(data), EvalContext(data, hash_files=_fake_hash)):
        try:
            value = expression.evaluate(ctx)
        except EvaluationError as error:
            _contexts_ok(error, source)
        else:
            assert _is_json_like(value)
            assert isinstance(to_string(value), str)
            assert isinstance(is_truthy(value), bool)


@SETTINGS
@given(token_soup, contexts)
def test_token_soup_that_parses_evaluates_safely(source: str, data: dict[str, Any]) -> None:
    try:
        expression = parse(source)
    except ExpressionError:
        return
    try:
        expression.evaluate(EvalContext(data, hash_files=_fake_hash))
    except EvaluationError as error:
        _contexts_ok(error, source)


@SETTINGS
@given(expressions, contexts)
def test_template_evaluation_gives_a_string_or_an_evaluation_error(
    source: str, data: dict[str, Any]
) -> None:
    template = parse_template("<${{ " + source + " }}>")
    try:
        text = template.evaluate(EvalContext(data))
    except EvaluationError as error:
        assert not error.message.startswith("internal error")
        assert 5 <= error.offset <= 5 + len(source)
    else:
        assert isinstance(text, str) and text.startswith("<") and text.endswith(">")


# --- laws ----------------------------------------------------------------------------


@SETTINGS
@given(json_values, json_values)
def test_equality_is_symmetric_and_not_equal_is_its_negation(left: Any, right: Any) -> None:
    ctx = EvalContext({"v": {"l": left, "r": right}})
    equal = parse("v.l == v.r").evaluate(ctx)
    assert parse("v.r == v.l").evaluate(ctx) is equal
    assert parse("v.l != v.r").evaluate(ctx) is (not equal)


@SETTINGS
@given(json_values, json_values)
def test_ordering_is_consistent(left: Any, right: Any) -> None:
    ctx = EvalContext({"v": {"l": left, "r": right}})
    less = parse("v.l < v.r").evaluate(ctx)
    greater = parse("v.l > v.r").evaluate(ctx)
    assert not (less and greater)
    assert parse("v.r > v.l").evaluate(ctx) is less
    assert parse("v.l <= v.r").evaluate(ctx) is (less or parse("v.l == v.r").evaluate(ctx))


@SETTINGS
@given(json_values)
def test_double_negation_is_truthiness(value: Any) -> None:
    ctx = EvalContext({"v": {"x": value}})
    assert parse("!!v.x").evaluate(ctx) is is_truthy(value)
    assert parse("v.x || 'fallback'").evaluate(ctx) == (value if is_truthy(value) else "fallback")


@SETTINGS
@given(json_values)
def test_to_json_round_trips_through_from_json(value: Any) -> None:
    ctx = EvalContext({"v": {"x": value}})
    try:
        back = parse("fromJSON(toJSON(v.x))").evaluate(ctx)
    except EvaluationError:
        # NaN and Infinity print as NaN/Infinity; anything else must round-trip.
        assert "NaN" in repr(value) or "inf" in repr(value)
        return
    assert _same_json(back, value)


def _same_json(a: Any, b: Any) -> bool:
    if isinstance(b, float) or isinstance(a, float):
        if isinstance(a, bool) or isinstance(b, bool):
            return a is b
        if isinstance(a, (int, float)) and isinstance(b, (int, float)):
            if math.isnan(a) or math.isnan(b):
                return math.isnan(a) and math.isnan(b)
            return math.isclose(a, b, rel_tol=1e-14) or to_string(a) == to_string(b)
        return False
    if (
        isinstance(b, int)
        and not isinstance(b, bool)
        and isinstance(a, (int, float))
        and not isinstance(a, bool)
    ):
        return to_string(a) == to_string(b)
    if isinstance(b, list):
        return isinstance(a, list) and len(a) == len(b) and all(map(_same_json, a, b))
    if isinstance(b, dict):
        return (
            isinstance(a, dict) and a.keys() == b.keys() and all(_same_json(a[k], b[k]) for k in b)
        )
    return bool(a == b) and type(a) is type(b)


@SETTINGS
@given(st.text(max_size=30), st.text(max_size=10))
def test_string_functions_match_python_and_ignore_case(text: str, part: str) -> None:
    ctx = EvalContext({"v": {"t": text, "p": part}})
    swapped = EvalContext({"v": {"t": text.swapcase(), "p": part}})
    for function, matches in (
        ("contains", part in text),
        ("startsWith", text.startswith(part)),
        ("endsWith", text.endswith(part)),
    ):
        expression = parse(f"{function}(v.t, v.p)")
        if matches:
            assert expression.evaluate(ctx) is True
        if text.isascii():
            assert expression.evaluate(swapped) is expression.evaluate(ctx)


@SETTINGS
@given(st.floats(min_value=-1e300, max_value=1e300) | st.integers(-(10**14), 10**14))
def test_numbers_print_like_dotnet_g15_and_read_back(number: float) -> None:
    text = to_string(number)
    assert "e" not in text and ".0" not in text.split("E")[0][-2:]
    assert parse(f"'{text}' == {text}").evaluate(EvalContext({})) is True
    assert math.isclose(float(text), number, rel_tol=1e-14, abs_tol=0) or (float(text) == number)
