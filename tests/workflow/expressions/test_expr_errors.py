"""Parse errors: clear short messages, offsets pointing at the offending token."""

from __future__ import annotations

import pytest

from shipyard.errors import LocatedError, ShipyardError
from shipyard.workflow.expressions import (
    EvalContext,
    EvaluationError,
    ExpressionError,
    parse,
    parse_condition,
    parse_template,
)


@pytest.mark.parametrize(
    ("source", "message", "offset"),
    [
        ("", "expected an expression", 0),
        ("   ", "expected an expression", 3),
        ("a)", "unexpected token ')'", 1),
        ("(a", "expected ')' to close '(' at offset 0", 2),
        ("x && (a b)", "expected ')' to close '(' at offset 5, found token 'b'", 8),
        ("((a)", "expected ')' to close '(' at offset 0", 4),
        ("a[0", "expected ']' to close '[' at offset 1", 3),
        ("a[*", "expected ']' to close '[' at offset 1", 3),
        ("a[* == 1]", "expected ']' to close '[' at offset 1, found token '=='", 4),
        ("contains(a, b", "expected ')' to close '(' at offset 8", 13),
        ("contains(a b)", "expected ')' to close '(' at offset 8, found token 'b'", 11),
        ("contains(a,)", "unexpected token ')'", 11),
        ("contains(,a)", "unexpected token ','", 9),
        ("()", "unexpected token ')'", 1),
        ("a b", "unexpected token 'b'", 2),
        ("a ==", "unexpected end of expression", 4),
        ("== a", "unexpected token '=='", 0),
        ("a == == b", "unexpected token '=='", 5),
        ("a &&", "unexpected end of expression", 4),
        ("!", "unexpected end of expression", 1),
        ("a !", "unexpected token '!'", 2),
        ("a.", "expected a property name or '*' after '.'", 2),
        ("a.'b'", "expected a property name or '*' after '.', found token \"'b'\"", 2),
        ("a.(b)", "expected a property name or '*' after '.', found token '('", 2),
        ("'abc", "unterminated string", 0),
        ("a == 'it''s", "unterminated string", 5),
        ("contians(a, b)", "unknown function 'contians'", 0),
        ("x || Contians(a, b)", "unknown function 'Contians'", 5),
        ("contains(a)", "'contains' takes 2 arguments, got 1", 0),
        ("a || startsWith(a, b, c)", "'startsWith' takes 2 arguments, got 3", 5),
        ("a = b", "unexpected character '=' (did you mean '=='?)", 2),
        ("a & b", "unexpected character '&' (did you mean '&&'?)", 2),
        ("a | b", "unexpected character '|' (did you mean '||'?)", 2),
        ("a # b", "unexpected character '#'", 2),
        ("a#b", "unexpected character '#'", 1),
        ("a'b'", 'unexpected character "\'"', 1),
        ('"double"', "unexpected character '\"'", 0),
        ("é", "unexpected character 'é'", 0),
        ("a * b", "unexpected token '*'", 2),
        ("a*", "unexpected character '*'", 1),
        ("1abc", "invalid number '1abc'", 0),
        ("x == 1.2.3", "invalid number '1.2.3'", 5),
        ("a - 1", "invalid number '-'", 2),
        ("'abc'.length", "unexpected token '.'", 5),
        ("true[0]", "unexpected token '['", 4),
        ("a (b)", "unknown function 'a'", 0),  # whitespace may separate a call's name and '('
        ("1 (b)", "unexpected token '('", 2),
        ("github.ref(x)", "unexpected token '('", 10),
        ("a '" + "x" * 40 + "'", 'unexpected token "\'xxxxxxxxxxxxxxxxxxxxxxxxxx..."', 2),
    ],
)
def test_parse_error_message_and_offset(source: str, message: str, offset: int) -> None:
    with pytest.raises(ExpressionError) as info:
        parse(source)
    assert info.value.message == message
    assert info.value.offset == offset
    assert str(info.value) == message
    assert info.value.location is None


def test_expression_error_is_a_located_shipyard_error() -> None:
    assert issubclass(ExpressionError, LocatedError)
    assert issubclass(ExpressionError, ShipyardError)
    assert issubclass(EvaluationError, ExpressionError)
    error = ExpressionError("bad", 3)
    assert (error.message, error.offset, error.location) == ("bad", 3, None)
    assert ExpressionError("bad").offset == 0
    assert repr(EvaluationError("bad", 2)) == "EvaluationError('bad', offset=2)"


def test_expression_error_survives_pickling() -> None:
    import pickle

    error = pickle.loads(pickle.dumps(EvaluationError("boom", 7)))
    assert type(error) is EvaluationError
    assert (error.message, error.offset) == ("boom", 7)


@pytest.mark.parametrize("opener", ["(", "!", "contains(1, ", "a[", "!("])
def test_very_deep_nesting_is_an_expression_error_not_a_recursion_error(opener: str) -> None:
    for depth in (60, 1500):  # 1500 levels, still under the length limit
        source = opener * depth + "a"
        with pytest.raises(ExpressionError, match="nested too deeply"):
            parse(source)
        with pytest.raises(ExpressionError, match="nested too deeply"):
            parse_template("${{ " + source + " }}")
        with pytest.raises(ExpressionError, match="nested too deeply"):
            parse_condition(source)


@pytest.mark.parametrize(
    "source",
    [
        "a" + " == a" * 3000,
        "a" + ".b" * 3000,
        "a" + "[0]" * 3000,
        "a" + ".*" * 3000,
        "a" + " < a" * 60,
    ],
)
def test_long_chains_are_limited_too(source: str) -> None:
    with pytest.raises(ExpressionError, match="nested too deeply"):
        parse(source)


def test_reasonable_nesting_is_fine() -> None:
    assert parse("(" * 40 + "1" + ")" * 40).evaluate(EvalContext({})) == 1
    assert parse("!" * 40 + "true").evaluate(EvalContext({})) is True
    chain = " && ".join(["true"] * 2000)  # && and || chains do not nest
    assert parse(chain).evaluate(EvalContext({})) is True
    assert parse(" || ".join(["false"] * 2000)).evaluate(EvalContext({})) is False


def test_depth_error_offset_points_at_the_token_too_deep() -> None:
    with pytest.raises(ExpressionError) as info:
        parse("(" * 60 + "a" + ")" * 60)
    assert info.value.offset == 50


def test_over_long_expression_is_rejected() -> None:
    with pytest.raises(ExpressionError, match="too long"):
        parse("a || " * 5000 + "a")
    parse("'" + "x" * 20_000 + "'")  # long but under the limit


def test_non_string_input_is_an_expression_error() -> None:
    for bad in (None, 42, b"a == b", ["a"]):
        with pytest.raises(ExpressionError):
            parse(bad)  # type: ignore[arg-type]
        with pytest.raises(ExpressionError):
            parse_template(bad)  # type: ignore[arg-type]
        with pytest.raises(ExpressionError):
            parse_condition(bad)  # type: ignore[arg-type]


def test_evaluation_against_a_broken_mapping_is_an_evaluation_error() -> None:
    class Broken(dict[str, object]):
        def get(self, key: object, default: object = None) -> object:
            raise RuntimeError("broken mapping")

    with pytest.raises(EvaluationError, match="broken mapping"):
        parse("github.ref").evaluate(EvalContext(Broken()))
