"""Operators: precedence, short-circuit values, loose equality and ordering."""

from __future__ import annotations

from typing import Any

import pytest

from shipyard.workflow.expressions import EvalContext, parse

OBJ: dict[str, Any] = {"a": 1}
ARR: list[Any] = [1, 2]
CTX = EvalContext(
    {
        "v": {
            "obj": OBJ,
            "obj2": {"a": 1},
            "arr": ARR,
            "arr2": [1, 2],
            "empty": "",
            "zero": 0,
            "text": "Hello",
            "null": None,
            "t": True,
            "f": False,
        },
        "calls": {},
    }
)


def ev(source: str) -> Any:
    return parse(source).evaluate(CTX)


# --- && and || ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("'a' || 'b'", "a"),
        ("'' || 'default'", "default"),
        ("null || 'default'", "default"),
        ("0 || 'default'", "default"),
        ("false || 0", 0),
        ("v.missing || v.text", "Hello"),
        ("null || false || '' || 'last'", "last"),
        ("null || false", False),
        ("v.arr || 'x'", ARR),
        ("'a' && 'b'", "b"),
        ("'' && 'b'", ""),
        ("0 && 'b'", 0),
        ("null && 'b'", None),
        ("1 && 2 && 3", 3),
        ("1 && 0 && 3", 0),
        ("0 && 1 && 3", 0),
        ("1 && 2 && 3 && 4", 4),
        ("1 && 2 && null && 4", None),
        ("'' && 2 && 3 && 4", ""),
        ("null || '' || 0 || 'x' || 'y'", "x"),
        ("true && 'yes' || 'no'", "yes"),
        ("false && 'yes' || 'no'", "no"),
    ],
)
def test_and_or_return_the_deciding_operand(source: str, expected: Any) -> None:
    assert ev(source) == expected


def test_or_returns_first_truthy_operand_by_identity() -> None:
    assert ev("v.missing || v.obj") is OBJ


def test_and_or_short_circuit() -> None:
    # fromJSON('x') would fail; it is never evaluated.
    assert ev("true || fromJSON('x')") is True
    assert ev("false && fromJSON('x')") is False
    assert ev("'' || 1 || fromJSON('x')") == 1


# --- ! -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("!true", False),
        ("!false", True),
        ("!null", True),
        ("!0", True),
        ("!-0", True),
        ("!NaN", True),
        ("!''", True),
        ("!'false'", False),
        ("!'0'", False),
        ("!1", False),
        ("!v.arr", False),
        ("!v.obj", False),
        ("!!'x'", True),
        ("!!!'x'", False),
        ("! v.missing", True),
    ],
)
def test_not_negates_truthiness(source: str, expected: bool) -> None:
    assert ev(source) is expected


# --- precedence ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("true || false && false", True),  # && binds tighter than ||
        ("(true || false) && false", False),
        ("false && false || true", True),
        ("1 == 1 && 2 == 2", True),
        ("1 == 2 || 3 == 3", True),
        ("!true == false", True),  # ! binds tighter than ==
        ("!(true == false)", True),
        ("!1 == 0", True),
        ("1 < 2 == true", True),  # < binds tighter than ==
        ("true == 1 < 2", True),
        ("2 > 1 == 1 > 0", True),
        ("1 == 1 == true", True),  # left-associative
        ("3 > 2 > 1", False),  # (3 > 2) > 1 -> true > 1 -> 1 > 1
        ("'a' == 'b' || 'c'", "c"),
        ("v.obj.a == 1", True),  # . binds tighter than everything
        ("!v.t", False),
        ("v['arr'][1] == 2", True),
    ],
)
def test_operator_precedence(source: str, expected: Any) -> None:
    assert ev(source) == expected


# --- equality ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        # same types
        ("null == null", True),
        ("true == true", True),
        ("true == false", False),
        ("1 == 1.0", True),
        ("0 == -0", True),
        ("'abc' == 'abc'", True),
        ("'abc' == 'ABC'", True),  # strings ignore case
        ("'straße' == 'STRAßE'", True),
        ("'a' == 'b'", False),
        ("'a ' == 'a'", False),
        # mismatched primitives compare as numbers
        ("null == 0", True),
        ("null == false", True),
        ("null == ''", True),
        ("null == 'x'", False),
        ("true == 1", True),
        ("false == 0", True),
        ("true == 2", False),
        ("true == '1'", True),
        ("false == ''", True),
        ("'1' == 1", True),
        ("' 1 ' == 1", True),
        ("'1.0' == 1", True),
        ("'0x10' == 16", True),
        ("'1e2' == 100", True),
        ("'' == 0", True),
        ("'abc' == 0", False),
        ("'Infinity' == Infinity", True),
        ("'true' == true", False),  # 'true' is NaN as a number
        ("NaN == NaN", False),
        # objects and arrays: identity only
        ("v.obj == v.obj", True),
        ("v.obj == v.obj2", False),
        ("v.arr == v.arr", True),
        ("v.arr == v.arr2", False),
        ("v.arr == 'Array'", False),
        ("v.obj == 'Object'", False),
        ("v.arr == null", False),
        ("v.obj == 0", False),
        ("v.obj == true", False),
        ("fromJSON('{}') == fromJSON('{}')", False),
        # missing properties are null
        ("v.missing == null", True),
        ("v.missing == ''", True),
        ("v.missing == 0", True),
    ],
)
def test_loose_equality(source: str, expected: bool) -> None:
    assert ev(source) is expected
    negated = source.replace("==", "!=", 1)
    assert ev(negated) is (not expected)


def test_equality_is_symmetric() -> None:
    values = [
        "null",
        "true",
        "false",
        "0",
        "1",
        "'1'",
        "''",
        "'abc'",
        "'ABC'",
        "v.arr",
        "v.obj",
        "NaN",
    ]
    for left in values:
        for right in values:
            assert ev(f"{left} == {right}") is ev(f"{right} == {left}"), (left, right)


# --- ordering ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("1 < 2", True),
        ("2 < 1", False),
        ("1 <= 1", True),
        ("1 >= 1", True),
        ("2 > 1", True),
        ("1.5 > 1", True),
        ("-1 < 0", True),
        ("'a' < 'b'", True),
        ("'B' > 'a'", True),  # case-insensitive
        ("'a' < 'B'", True),
        ("'abc' <= 'ABC'", True),
        ("'abc' >= 'ABC'", True),
        ("'abc' < 'ABC'", False),
        ("'10' < '9'", True),  # strings compare as strings
        ("'10' < 9", False),  # mixed: as numbers
        ("'10' > 9", True),
        ("null < 1", True),
        ("null >= 0", True),
        ("null <= null", True),
        ("null < null", False),
        ("false < true", True),
        ("true > false", True),
        ("true >= true", True),
        ("true > 0", True),
        ("'' < 1", True),
        ("'x' < 1", False),  # NaN
        ("'x' > 1", False),
        ("'x' >= 1", False),
        ("NaN < 1", False),
        ("NaN > 1", False),
        ("NaN <= NaN", False),
        ("NaN >= NaN", False),
        ("Infinity > 1e308", True),
        ("-Infinity < -1e308", True),
        ("v.arr < 1", False),
        ("v.arr > 1", False),
        ("v.obj < v.obj", False),
        ("v.obj <= v.obj", True),  # equal (same instance)
        ("v.arr >= v.arr2", False),
        ("v.arr <= 'Array'", False),
    ],
)
def test_ordering_comparisons(source: str, expected: bool) -> None:
    assert ev(source) is expected


def test_comparisons_always_return_booleans() -> None:
    for op in ("==", "!=", "<", "<=", ">", ">="):
        assert type(ev(f"v.text {op} 'x'")) is bool
        assert type(ev(f"v.obj {op} 1")) is bool


def test_subclasses_of_plain_types_behave_like_them() -> None:
    from enum import IntEnum

    class Level(IntEnum):
        HIGH = 3

    class Name(str):
        pass

    ctx = EvalContext({"v": {"level": Level.HIGH, "name": Name("Linux")}})
    assert parse("v.level == 3").evaluate(ctx) is True
    assert parse("v.level > '2'").evaluate(ctx) is True
    assert parse("v.name == 'LINUX'").evaluate(ctx) is True
    assert parse("v.name != 'linux'").evaluate(ctx) is False
    assert parse("v.name == v.name").evaluate(ctx) is True
    assert parse("format('{0}-{1}', v.level, v.name)").evaluate(ctx) == "3-Linux"
