"""to_string and is_truthy: GitHub's coercions to string and boolean."""

from __future__ import annotations

import math
from collections import OrderedDict
from typing import Any

import pytest

from shipyard.workflow.expressions import is_truthy, to_string


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (None, ""),
        (True, "true"),
        (False, "false"),
        ("", ""),
        ("text", "text"),
        (0, "0"),
        (-0.0, "-0"),
        (42, "42"),
        (-7, "-7"),
        (3.0, "3"),
        (1.5, "1.5"),
        (-2.5, "-2.5"),
        (0.1 + 0.2, "0.3"),  # 15 significant digits, like GitHub
        (1 / 3, "0.333333333333333"),
        (0.0001, "0.0001"),
        (0.00001, "1E-05"),
        (1.5e-7, "1.5E-07"),
        (123456789012345, "123456789012345"),
        (999999999999999, "999999999999999"),
        (1e15, "1E+15"),
        (10**15, "1E+15"),
        (1234567890123456789, "1.23456789012346E+18"),
        (1e21, "1E+21"),
        (1.7976931348623157e308, "1.79769313486232E+308"),
        (10**400, "Infinity"),
        (-(10**400), "-Infinity"),
        (math.inf, "Infinity"),
        (-math.inf, "-Infinity"),
        (math.nan, "NaN"),
        ([], "Array"),
        ([1, 2], "Array"),
        ((1,), "Array"),
        ({}, "Object"),
        ({"a": 1}, "Object"),
        (OrderedDict(a=1), "Object"),
        (object(), "Object"),
    ],
)
def test_to_string(value: Any, expected: str) -> None:
    assert to_string(value) == expected


def test_to_string_of_str_subclass_is_a_plain_str() -> None:
    class Name(str):
        pass

    assert type(to_string(Name("x"))) is str


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (None, False),
        (False, False),
        (True, True),
        (0, False),
        (0.0, False),
        (-0.0, False),
        (math.nan, False),
        ("", False),
        (1, True),
        (-1, True),
        (0.5, True),
        (math.inf, True),
        ("0", True),
        ("false", True),
        (" ", True),
        ([], True),
        ({}, True),
        ([0], True),
        (object(), True),
    ],
)
def test_is_truthy(value: Any, expected: bool) -> None:
    assert is_truthy(value) is expected
