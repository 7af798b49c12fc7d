"""Built-in functions, including their edge cases and hooks."""

from __future__ import annotations

import json
from typing import Any

import pytest

from shipyard.workflow.expressions import EvalContext, EvaluationError, ExpressionError, parse

DATA: dict[str, Any] = {
    "list": ["Bug", "CI", 3, True, None],
    "nums": [1, 2.5, 3.0],
    "nested": [[1], {"a": 1}],
    "obj": {"b": 2, "a": "x"},
    "empty_list": [],
    "empty_obj": {},
    "text": "Hello World",
    "n": 42,
}
CTX = EvalContext({"v": DATA})


def ev(source: str, ctx: EvalContext = CTX) -> Any:
    return parse(source).evaluate(ctx)


# --- contains ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("contains('Hello world', 'llo')", True),
        ("contains('Hello world', 'LLO')", True),  # case-insensitive
        ("contains('Hello world', 'xyz')", False),
        ("contains('abc', '')", True),
        ("contains('', '')", True),
        ("contains('', 'a')", False),
        ("contains(v.text, 'WORLD')", True),
        ("contains(v.text, v.text)", True),
        ("contains(12345, 234)", True),  # primitives are cast to strings
        ("contains(12345, '34')", True),
        ("contains(1.5, '.5')", True),
        ("contains(true, 'ru')", True),
        ("contains(null, '')", True),
        ("contains(null, 'null')", False),
        ("contains('trueish', true)", True),
        ("contains('Array', v.list)", False),  # a non-primitive needle never matches a string
        ("contains(v.list, 'bug')", True),  # arrays: any element loosely equal
        ("contains(v.list, 'BUG')", True),
        ("contains(v.list, 'Bu')", False),  # no substring matching inside arrays
        ("contains(v.list, 3)", True),
        ("contains(v.list, '3')", True),
        ("contains(v.list, 1)", True),  # true == 1
        ("contains(v.list, null)", True),
        ("contains(v.nums, 3)", True),
        ("contains(v.nums, '2.5')", True),
        ("contains(v.empty_list, null)", False),
        ("contains(v.nested, v.nested[0])", True),  # same instance
        ("contains(v.nested, fromJSON('[1]'))", False),
        ("contains(v.obj, 'a')", False),  # objects: always false
        ("contains(v.obj, 'x')", False),
        ("contains(fromJSON('[\"push\", \"pull_request\"]'), 'PUSH')", True),
    ],
)
def test_contains(source: str, expected: bool) -> None:
    assert ev(source) is expected


# --- startsWith / endsWith -----------------------------------------------------------


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("startsWith('Hello world', 'He')", True),
        ("startsWith('Hello world', 'hE')", True),
        ("startsWith('Hello world', 'world')", False),
        ("startsWith('Hello', 'Hello world')", False),
        ("startsWith('abc', '')", True),
        ("startsWith('', '')", True),
        ("startsWith(v.text, v.text)", True),
        ("startsWith(12345, 12)", True),
        ("startsWith(true, 'T')", True),
        ("startsWith(null, '')", True),
        ("startsWith(v.list, 'Bug')", False),  # non-primitives are never matched
        ("startsWith('Array', v.list)", False),
        ("startsWith('straße', 'STRAß')", True),
        ("endsWith('Hello world', 'ld')", True),
        ("endsWith('Hello world', 'LD')", True),
        ("endsWith('Hello world', 'Hello')", False),
        ("endsWith('ld', 'world')", False),
        ("endsWith('abc', '')", True),
        ("endsWith(1.5, 5)", True),
        ("endsWith(3.0, '0')", False),  # 3.0 prints as '3'
        ("endsWith(false, 'SE')", True),
        ("endsWith(v.obj, 'Object')", False),
        ("endsWith(v.text, v.text)", True),
    ],
)
def test_starts_with_and_ends_with(source: str, expected: bool) -> None:
    assert ev(source) is expected


# --- format --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("format('Hello {0} {1} {2}', 'Mona', 'the', 'Octocat')", "Hello Mona the Octocat"),
        ("format('{{Hello {0} {1} {2}!}}', 'Mona', 'the', 'Octocat')", "{Hello Mona the Octocat!}"),
        ("format('{0}{0}{1}', 'a', 'b')", "aab"),
        ("format('{1}-{0}', 'a', 'b')", "b-a"),
        ("format('no placeholders')", "no placeholders"),
        ("format('')", ""),
        ("format('{{}}')", "{}"),
        ("format('{{{0}}}', 'x')", "{x}"),
        ("format('}}{{')", "}{"),
        ("format('{{0}}', 'x')", "{0}"),
        ("format('{0}', null)", ""),
        ("format('{0}|{1}|{2}', true, 3.0, 1.25)", "true|3|1.25"),
        ("format('{0}/{1}', v.list, v.obj)", "Array/Object"),
        ("format('{0}', 'unused', 'extra')", "unused"),
        ("format('{00}', 'a')", "a"),
        ("format(42)", "42"),
        ("format(v.text)", "Hello World"),
        ("format('{0} {{0}}', v.n)", "42 {0}"),
    ],
)
def test_format(source: str, expected: str) -> None:
    assert ev(source) == expected


@pytest.mark.parametrize(
    ("source", "message"),
    [
        ("format('{0')", "format: invalid format string: unmatched '{' at position 0"),
        ("format('abc{')", "format: invalid format string: unmatched '{' at position 3"),
        ("format('a}b')", "format: invalid format string: unmatched '}' at position 1"),
        ("format('{0}}', 'x')", "format: invalid format string: unmatched '}' at position 3"),
        ("format('{}', 'x')", "format: invalid format string: unmatched '{' at position 0"),
        ("format('{ 0 }', 'x')", "format: invalid format string: unmatched '{' at position 0"),
        ("format('{a}', 'x')", "format: invalid format string: unmatched '{' at position 0"),
        ("format('{-1}', 'x')", "format: invalid format string: unmatched '{' at position 0"),
        ("format('{1}', 'x')", "format: '{1}' refers to argument 1 but only 1 argument was given"),
        ("format('{0}')", "format: '{0}' refers to argument 0 but only 0 arguments were given"),
        (
            "format('{2}', 'a', 'b')",
            "format: '{2}' refers to argument 2 but only 2 arguments were given",
        ),
        ("format('{0:x}', 1)", "format: format specifiers are not supported (at position 0)"),
        (
            "format('{99999}', 1)",
            "format: invalid format string: argument index too large at position 0",
        ),
    ],
)
def test_format_errors_are_evaluation_errors(source: str, message: str) -> None:
    expression = parse(source)  # parsing is fine; the error comes at evaluation time
    with pytest.raises(EvaluationError) as info:
        expression.evaluate(CTX)
    assert info.value.message == message
    assert info.value.offset == 0


def test_format_with_computed_format_string() -> None:
    assert ev("format(v.fmt, 'x')", EvalContext({"v": {"fmt": "<{0}>"}})) == "<x>"
    with pytest.raises(EvaluationError, match="unmatched"):
        ev("format(v.fmt, 'x')", EvalContext({"v": {"fmt": "<{0>"}}))


def test_format_evaluates_only_the_arguments_it_uses() -> None:
    assert ev("format('{1}', fromJSON('bad json'), 'ok')") == "ok"


def test_format_error_offset_points_at_the_call() -> None:
    with pytest.raises(EvaluationError) as info:
        parse("'x' == format('{')").evaluate(CTX)
    assert info.value.offset == 7


# --- join ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("join(v.list)", "Bug,CI,3,true,"),
        ("join(v.list, ', ')", "Bug, CI, 3, true, "),
        ("join(v.nums, '+')", "1+2.5+3"),
        ("join(v.nested, ';')", "Array;Object"),
        ("join(v.empty_list, ',')", ""),
        ("join(fromJSON('[\"only\"]'), ',')", "only"),
        ("join(v.nums, 1)", "112.513"),
        ("join(v.nums, null)", "12.53"),
        ("join(v.nums, true)", "1true2.5true3"),
        ("join(v.nums, v.obj)", "1,2.5,3"),  # a non-primitive separator falls back to ','
        ("join('a string')", "a string"),  # primitives are converted to strings
        ("join(42)", "42"),
        ("join(true, '-')", "true"),
        ("join(null)", ""),
        ("join(v.obj)", ""),  # objects give ''
        ("join(v.obj.*, '|')", "2|x"),
    ],
)
def test_join(source: str, expected: str) -> None:
    assert ev(source) == expected


# --- toJSON --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("toJSON(null)", "null"),
        ("toJSON(true)", "true"),
        ("toJSON(false)", "false"),
        ("toJSON(1)", "1"),
        ("toJSON(1.0)", "1"),
        ("toJSON(1.5)", "1.5"),
        ("toJSON(1e20)", "1E+20"),
        ("toJSON('text')", '"text"'),
        ("toJSON('quote \" backslash \\ tab \t')", '"quote \\" backslash \\\\ tab \\t"'),
        ("toJSON('é ✓')", '"é ✓"'),
        ("toJSON(v.empty_list)", "[]"),
        ("toJSON(v.empty_obj)", "{}"),
        ("toJSON(v.obj)", '{\n  "b": 2,\n  "a": "x"\n}'),
        ("toJSON(v.nums)", "[\n  1,\n  2.5,\n  3\n]"),
        ("toJSON(v.nested)", '[\n  [\n    1\n  ],\n  {\n    "a": 1\n  }\n]'),
        (
            'toJSON(fromJSON(\'{"a": [], "b": {}, "c": [{}]}\'))',
            '{\n  "a": [],\n  "b": {},\n  "c": [\n    {}\n  ]\n}',
        ),
    ],
)
def test_to_json(source: str, expected: str) -> None:
    assert ev(source) == expected


def test_to_json_matches_python_pretty_printing_for_plain_data() -> None:
    data = {"a": [1, "two", None, True, {"b": [], "c": {}}], "é": "\u2603", "d": {"e": [[1]]}}
    ctx = EvalContext({"data": data})
    assert ev("toJSON(data)", ctx) == json.dumps(data, indent=2, ensure_ascii=False)


def test_to_json_escapes_line_separators() -> None:
    assert ev("toJSON(v.s)", EvalContext({"v": {"s": "a\u2028b"}})) == '"a\\u2028b"'


def test_to_json_of_deeply_nested_value_does_not_overflow_the_stack() -> None:
    deep: list[Any] = []
    for _ in range(5000):
        deep = [deep]
    text = ev("toJSON(v)", EvalContext({"v": deep}))
    assert text.count("[") == 5001


def test_to_json_of_a_value_that_contains_itself_is_an_evaluation_error() -> None:
    loop: dict[str, Any] = {}
    loop["self"] = loop
    with pytest.raises(EvaluationError, match="contains itself"):
        ev("toJSON(v)", EvalContext({"v": loop}))


def test_to_json_repeated_but_not_cyclic_values_are_fine() -> None:
    shared = {"x": 1}
    assert ev("toJSON(v)", EvalContext({"v": [shared, shared]})) == (
        '[\n  {\n    "x": 1\n  },\n  {\n    "x": 1\n  }\n]'
    )


def test_to_json_of_opaque_python_objects() -> None:
    assert ev("toJSON(v)", EvalContext({"v": [object()]})) == "[\n  {}\n]"


# --- fromJSON ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("fromJSON('true')", True),
        ("fromJSON('null')", None),
        ("fromJSON('42')", 42),
        ("fromJSON('1.5')", 1.5),
        ("fromJSON('\"s\"')", "s"),
        ("fromJSON('[1, \"a\"]')", [1, "a"]),
        ('fromJSON(\'{"a": {"b": [true]}}\')', {"a": {"b": [True]}}),
        ("fromJSON(' [] ')", []),
        ("fromJSON(42)", 42),  # the argument is converted to a string first
        ("fromJSON(true)", True),
        ("fromJSON(toJSON(v.obj))", {"b": 2, "a": "x"}),
        ('fromJSON(\'{"include": [{"os": "linux"}]}\').include[0].os', "linux"),
    ],
)
def test_from_json(source: str, expected: Any) -> None:
    assert ev(source) == expected


@pytest.mark.parametrize(
    "source",
    [
        "fromJSON('')",
        "fromJSON('{')",
        "fromJSON('[1,]')",
        "fromJSON('not json')",
        "fromJSON(null)",
        "fromJSON(v.list)",  # 'Array'
        "fromJSON('{\"a\": 1} trailing')",
        "fromJSON('\"unterminated')",
    ],
)
def test_from_json_of_invalid_json_is_an_evaluation_error(source: str) -> None:
    with pytest.raises(EvaluationError, match=r"^fromJSON: invalid JSON"):
        ev(source)


def test_from_json_of_deeply_nested_json_is_an_evaluation_error_not_a_crash() -> None:
    ctx = EvalContext({"v": {"s": "[" * 100_000 + "]" * 100_000}})
    with pytest.raises(EvaluationError, match="fromJSON"):
        ev("fromJSON(v.s)", ctx)


def test_from_json_of_huge_integer_is_an_evaluation_error_not_a_crash() -> None:
    ctx = EvalContext({"v": {"s": "9" * 10_000}})
    with pytest.raises(EvaluationError, match="fromJSON"):
        ev("fromJSON(v.s)", ctx)


# --- hashFiles -----------------------------------------------------------------------


def test_hash_files_calls_the_hook_with_all_patterns_as_strings() -> None:
    seen: list[list[str]] = []

    def hash_files(patterns: list[str]) -> str:
        seen.append(patterns)
        return "abc123"

    ctx = EvalContext({"matrix": {"os": "linux"}}, hash_files=hash_files)
    assert ev("hashFiles('**/package-lock.json', matrix.os, 1)", ctx) == "abc123"
    assert seen == [["**/package-lock.json", "linux", "1"]]


def test_hash_files_without_a_hook_is_an_evaluation_error() -> None:
    with pytest.raises(EvaluationError) as info:
        ev("format('k-{0}', hashFiles('x'))")
    assert info.value.message == "hashFiles is not available here"
    assert info.value.offset == 16


def test_exceptions_from_the_hash_files_hook_pass_through_unchanged() -> None:
    class Boom(Exception):
        pass

    def hash_files(patterns: list[str]) -> str:
        raise Boom("disk on fire")

    with pytest.raises(Boom, match="disk on fire"):
        ev("hashFiles('x')", EvalContext({}, hash_files=hash_files))


# --- status functions ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "expected"),
    [("success", True), ("failure", False), ("cancelled", False), ("always", True)],
)
def test_status_functions_default_to_a_successful_run(name: str, expected: bool) -> None:
    assert ev(f"{name}()") is expected


def test_status_functions_ask_the_status_hook() -> None:
    asked: list[str] = []

    def status(name: str) -> bool:
        asked.append(name)
        return name == "failure"

    ctx = EvalContext({}, status=status)
    assert ev("failure()", ctx) is True
    assert ev("success()", ctx) is False
    assert ev("cancelled() || always()", ctx) is False
    assert asked == ["failure", "success", "cancelled", "always"]


def test_status_hook_result_is_made_boolean() -> None:
    ctx = EvalContext({}, status=lambda name: 1)  # type: ignore[arg-type,return-value]
    assert ev("success()", ctx) is True


def test_exceptions_from_the_status_hook_pass_through_unchanged() -> None:
    def status(name: str) -> bool:
        raise KeyError(name)

    with pytest.raises(KeyError):
        ev("!cancelled()", EvalContext({}, status=status))


# --- names and arity -----------------------------------------------------------------


@pytest.mark.parametrize(
    "source",
    [
        "CONTAINS('abc', 'B')",
        "StartsWith('abc', 'A')",
        "ENDSWITH('abc', 'C')",
        "tojson(true) == 'true'",
        "FromJson('true')",
        "Success()",
        "ALWAYS()",
        "Format('{0}', true) == 'true'",
        "JOIN(fromJSON('[1]')) == '1'",
    ],
)
def test_function_names_ignore_case(source: str) -> None:
    assert ev(source) is True


@pytest.mark.parametrize(
    ("source", "message"),
    [
        ("contains('a')", "'contains' takes 2 arguments, got 1"),
        ("contains('a', 'b', 'c')", "'contains' takes 2 arguments, got 3"),
        ("Contains()", "'contains' takes 2 arguments, got 0"),
        ("startsWith('a')", "'startsWith' takes 2 arguments, got 1"),
        ("endsWith()", "'endsWith' takes 2 arguments, got 0"),
        ("format()", "'format' takes 1 to 255 arguments, got 0"),
        ("join()", "'join' takes 1 or 2 arguments, got 0"),
        ("join(1, 2, 3)", "'join' takes 1 or 2 arguments, got 3"),
        ("toJSON()", "'toJSON' takes 1 argument, got 0"),
        ("toJSON(1, 2)", "'toJSON' takes 1 argument, got 2"),
        ("fromJSON()", "'fromJSON' takes 1 argument, got 0"),
        ("hashFiles()", "'hashFiles' takes at least 1 argument, got 0"),
        ("success(1)", "'success' takes no arguments, got 1"),
        ("always(true)", "'always' takes no arguments, got 1"),
        ("failure(1, 2)", "'failure' takes no arguments, got 2"),
        ("cancelled('x')", "'cancelled' takes no arguments, got 1"),
    ],
)
def test_wrong_argument_count_is_a_parse_error(source: str, message: str) -> None:
    with pytest.raises(ExpressionError) as info:
        parse(source)
    assert info.value.message == message
    assert info.value.offset == 0


def test_format_accepts_many_arguments() -> None:
    args = ", ".join(str(i) for i in range(254))
    assert ev(f"format('{{253}}', {args})") == "253"
    with pytest.raises(ExpressionError, match="'format' takes 1 to 255 arguments, got 257"):
        parse(f"format('x', {args}, 1, 2)")


def test_hash_files_accepts_many_patterns() -> None:
    ctx = EvalContext({}, hash_files=lambda patterns: str(len(patterns)))
    assert ev("hashFiles(" + ", ".join(["'a'"] * 40) + ")", ctx) == "40"


@pytest.mark.parametrize(
    "source", ["contians('a', 'b')", "toJson2(1)", "len('x')", "github.x || lower('A')"]
)
def test_unknown_function_is_a_parse_error(source: str) -> None:
    with pytest.raises(ExpressionError, match=r"^unknown function '"):
        parse(source)
