"""Literals: null, booleans, numbers in every notation, strings."""

from __future__ import annotations

import math
from typing import Any

import pytest

from shipyard.workflow.expressions import EvalContext, ExpressionError, parse

CTX = EvalContext({"true": "a context named true"})


def ev(source: str) -> Any:
    return parse(source).evaluate(CTX)


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("null", None),
        ("true", True),
        ("false", False),
        ("711", 711),
        ("0", 0),
        ("-9.2", -9.2),
        ("+5", 5),
        ("1.5", 1.5),
        (".5", 0.5),
        ("5.", 5.0),
        ("0xff", 255),
        ("0xFF", 255),
        ("0x7fffffff", 2147483647),
        ("0xffffffff", -1),
        ("0o17", 15),
        ("-2.99e-2", -0.0299),
        ("1e3", 1000.0),
        ("1E+3", 1000.0),
        ("Infinity", math.inf),
        ("-Infinity", -math.inf),
        ("'Mona the Octocat'", "Mona the Octocat"),
        ("'It''s open source!'", "It's open source!"),
        ("''", ""),
        ("''''", "'"),
        ("'a\nb'", "a\nb"),
        ("'${{ not an expression }}'", "${{ not an expression }}"),
    ],
)
def test_literal_evaluates_to_its_value(source: str, expected: Any) -> None:
    value = ev(source)
    assert value == expected
    assert type(value) is type(expected)


def test_nan_literal_is_a_number_that_is_not_equal_to_itself() -> None:
    assert math.isnan(ev("NaN"))
    assert ev("NaN == NaN") is False
    assert ev("NaN != NaN") is True


def test_integer_literals_stay_int_and_decimal_literals_are_float() -> None:
    assert type(ev("42")) is int
    assert type(ev("42.0")) is float
    assert type(ev("9007199254740993")) is float  # beyond 2**53 GitHub has only doubles


def test_negative_zero_literal_keeps_its_sign() -> None:
    value = ev("-0")
    assert value == 0 and math.copysign(1, value) == -1


@pytest.mark.parametrize("source", ["True", "FALSE", "Null", "NULL"])
def test_keywords_are_lowercase_only_other_spellings_are_context_names(source: str) -> None:
    expression = parse(source)
    assert expression.contexts() == {source.lower()}


def test_keyword_spelled_differently_reads_the_context_of_that_name() -> None:
    assert ev("True") == "a context named true"


def test_whitespace_of_any_kind_separates_tokens() -> None:
    assert ev(" \t\n1\r\n==\t1 \n") is True


@pytest.mark.parametrize("source", ["1abc", "0x", "0xfg", "1.2.3", "-", "+", "1-2", "0b101", "- 1"])
def test_malformed_number_is_a_parse_error(source: str) -> None:
    with pytest.raises(ExpressionError):
        parse(source)


def test_hex_literal_wider_than_32_bits_is_a_parse_error() -> None:
    with pytest.raises(ExpressionError, match="invalid number"):
        parse("0x100000000")
