"""Contexts, properties, indexes and object filters."""

from __future__ import annotations

from types import MappingProxyType
from typing import Any

import pytest

from shipyard.workflow.expressions import EvalContext, ExpressionError, parse

LABELS = [{"name": "bug", "id": 1}, {"name": "ci", "id": 2}, {"id": 3}]
GITHUB: dict[str, Any] = {
    "event_name": "push",
    "Ref": "refs/heads/main",
    "event": {
        "issue": {"labels": LABELS},
        "commits": [
            {"id": "a", "files": ["x.py", "y.py"]},
            {"id": "b", "files": ["z.md"]},
        ],
    },
}
CTX = EvalContext(
    {
        "github": GITHUB,
        "matrix": {"os": "linux", "node": 20, "include": [1, 2, 3], "nested": [[1, 2], [3, 4]]},
        "steps": {"my-step": {"outputs": {"out-1": "v"}}},
        "fruits": [
            {"name": "apple", "quantity": 1},
            {"name": "orange", "quantity": 2},
            {"name": "pear", "quantity": 1},
        ],
        "vegetables": {"carrot": {"color": "orange"}, "kale": {"color": "green"}},
        "text": "abc",
        "nothing": None,
    }
)


def ev(source: str, ctx: EvalContext = CTX) -> Any:
    return parse(source).evaluate(ctx)


# --- contexts and properties ---------------------------------------------------------


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("github.event_name", "push"),
        ("GitHub.Event_Name", "push"),  # context and property names ignore case
        ("GITHUB.EVENT_NAME", "push"),
        ("github.ref", "refs/heads/main"),  # stored as "Ref"
        ("github['event_name']", "push"),
        ("github['EVENT_NAME']", "push"),
        ("steps.my-step.outputs.out-1", "v"),  # '-' is part of names
        ("steps['my-step'].outputs['out-1']", "v"),
        ("matrix.node", 20),
        ("matrix.include[0]", 1),
        ("matrix.include[2]", 3),
        ("matrix.nested[1][0]", 3),
        ("(matrix).os", "linux"),
        ('fromJSON(\'{"a": {"b": 5}}\').a.b', 5),
        ("fromJSON('[10, 20]')[1]", 20),
    ],
)
def test_property_and_index_access(source: str, expected: Any) -> None:
    assert ev(source) == expected


@pytest.mark.parametrize(
    "source",
    [
        "github.nope",
        "github.nope.deeper.still",
        "nosuchcontext",
        "nosuchcontext.x",
        "github.event_name.length",  # properties of strings are null
        "text[0]",  # strings cannot be indexed
        "matrix.node.x",
        "matrix.include[3]",  # out of range
        "matrix.include[-1]",
        "matrix.include[NaN]",
        "matrix.include['x']",
        "matrix.include.x",
        "matrix.include[fromJSON('[]')]",
        "github[fromJSON('{}')]",
        "nothing.x",
        "nothing[0]",
        "matrix.include[4294967296]",
    ],
)
def test_missing_values_are_null_never_errors(source: str) -> None:
    assert ev(source) is None


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("matrix.include[1.9]", 2),  # indexes are floored
        ("matrix.include['1']", 2),  # and coerced to numbers
        ("matrix.include[true]", 2),
        ("matrix.include[null]", 1),
        ("matrix.include[' 2 ']", 3),
        ("matrix['include'][0]", 1),
        ("github[format('{0}_{1}', 'event', 'name')]", "push"),
        ('fromJSON(\'{"1": "one", "true": "yes"}\')[1]', "one"),  # keys coerced to strings
        ('fromJSON(\'{"1": "one", "true": "yes"}\')[true]', "yes"),
    ],
)
def test_index_coercion(source: str, expected: Any) -> None:
    assert ev(source) == expected


def test_exact_key_wins_over_case_insensitive_match() -> None:
    ctx = EvalContext({"c": {"KEY": 1, "key": 2}})
    assert ev("c.key", ctx) == 2
    assert ev("c.KEY", ctx) == 1
    assert ev("c.Key", ctx) in (1, 2)


def test_context_names_in_the_mapping_may_use_any_case() -> None:
    ctx = EvalContext({"GitHub": {"x": 1}})
    assert ev("github.x", ctx) == 1
    assert ev("GITHUB.x", ctx) == 1


def test_any_mapping_and_sequence_types_work() -> None:
    ctx = EvalContext(MappingProxyType({"m": MappingProxyType({"Key": (1, 2, 3)})}))
    assert ev("m.key[1]", ctx) == 2
    assert ev("m.key.*", ctx) == [1, 2, 3]
    assert ev("toJSON(m)", ctx) == '{\n  "Key": [\n    1,\n    2,\n    3\n  ]\n}'


def test_non_string_keys_are_matched_by_their_string_form() -> None:
    ctx = EvalContext({"m": {1: "one", 2.5: "two and a half", None: "null", (1, 2): "tuple"}})
    assert ev("m['1']", ctx) == "one"
    assert ev("m[1]", ctx) == "one"
    assert ev("m['2.5']", ctx) == "two and a half"
    assert ev("m['']", ctx) == "null"
    assert ev("m['Array']", ctx) is None


# --- object filters ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("fruits.*.name", ["apple", "orange", "pear"]),
        ("fruits[*].name", ["apple", "orange", "pear"]),
        ("fruits.*.quantity", [1, 2, 1]),
        ("github.event.issue.labels.*.name", ["bug", "ci"]),  # items without the key are skipped
        ("github.event.issue.labels.*.NAME", ["bug", "ci"]),
        ("github.event.issue.labels.*.nope", []),
        ("vegetables.*.color", ["orange", "green"]),  # * on an object: its values
        ("vegetables.*", [{"color": "orange"}, {"color": "green"}]),
        ("matrix.include.*", [1, 2, 3]),
        ("matrix.nested.*", [[1, 2], [3, 4]]),
        ("matrix.nested.*.*", [1, 2, 3, 4]),  # a filter on a filter flattens one level
        ("matrix.nested.*[0]", [1, 3]),  # an index applies to each element
        ("matrix.nested[*][1]", [2, 4]),
        ("github.event.commits.*.files", [["x.py", "y.py"], ["z.md"]]),
        ("github.event.commits.*.files.*", ["x.py", "y.py", "z.md"]),
        ("github.event.commits.*.files[0]", ["x.py", "z.md"]),
        ("github.event.commits.*.files[1]", ["y.py"]),
        ("(fruits.*)[0]", []),  # still a filtered array; its items are objects
        ("(fruits.*).name", ["apple", "orange", "pear"]),
        ("fruits.*.name.*", []),  # strings have no children
        ("text.*", []),  # a filter on a non-collection gives an empty array
        ("nothing.*", []),
        ("github.nope.*", []),
        ("github.nope.*.name", []),
        ("fromJSON('[]').*", []),
        ("fromJSON('{}').*", []),
    ],
)
def test_object_filters(source: str, expected: Any) -> None:
    assert ev(source) == expected


def test_filter_result_is_a_plain_list() -> None:
    assert type(ev("fruits.*.name")) is list
    assert type(ev("github.nope.*")) is list


def test_filters_work_with_functions() -> None:
    assert ev("contains(fruits.*.name, 'ORANGE')") is True
    assert ev("contains(fruits.*.name, 'banana')") is False
    assert ev("join(fruits.*.name, ', ')") == "apple, orange, pear"
    assert ev("toJSON(fruits.*.quantity)") == "[\n  1,\n  2,\n  1\n]"
    assert ev("contains(github.event.issue.labels.*.name, 'bug')") is True


def test_filtered_values_are_the_original_objects() -> None:
    assert ev("fruits.*[0]") == []
    labels = ev("github.event.issue.labels.*")
    assert labels[0] is LABELS[0]


@pytest.mark.parametrize(
    "source",
    [
        "'abc'.length",
        "'abc'[0]",
        "1.x",
        "null.x",
        "true[0]",
        "fruits.*x",
        "fruits.[0]",
        "fruits[*",
        "a.1",
    ],
)
def test_property_or_index_cannot_follow_a_literal_or_be_malformed(source: str) -> None:
    with pytest.raises(ExpressionError):
        parse(source)


def test_keywords_are_property_names_after_a_dot() -> None:
    ctx = EvalContext({"c": {"true": 1, "null": 2, "NaN": 3}})
    assert ev("c.true", ctx) == 1
    assert ev("c.null", ctx) == 2
    assert ev("c.NaN", ctx) == 3


def test_property_names_that_look_like_functions_are_properties() -> None:
    ctx = EvalContext({"c": {"contains": "x"}})
    assert ev("c.contains", ctx) == "x"


def test_other_sequences_are_arrays_but_bytes_are_not() -> None:
    ctx = EvalContext({"c": {"r": range(3), "b": b"abc"}})
    assert ev("c.r[1]", ctx) == 1
    assert ev("c.r.*", ctx) == [0, 1, 2]
    assert ev("c.b[0]", ctx) is None
    assert ev("format('{0}', c.b)", ctx) == "Object"
