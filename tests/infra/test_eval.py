"""Evaluation with values known only after apply (UNKNOWN)."""

from __future__ import annotations

from typing import Any

import pytest

from shipyard.infra._eval import (
    UNKNOWN,
    TreeError,
    UList,
    UObject,
    contains_unknown,
    equal,
    evaluate_template,
    evaluate_tree,
    expose,
    is_static,
    settle,
)
from shipyard.workflow.expressions import EvalContext, parse_template


def ev(text: str, **contexts: Any) -> Any:
    return evaluate_template(parse_template(text), EvalContext({k: expose(v) for k, v in contexts.items()}))


RESOURCES = {
    "a": {"id": UNKNOWN, "input": "x", "tags": {"k": "v", "later": UNKNOWN}},
    "b": [{"id": "b0"}, {"id": UNKNOWN}],
    "c": {"id": "c", "list": [1, UNKNOWN]},
}


def test_reading_an_unknown_value_makes_the_template_unknown() -> None:
    """Any template that reads an unknown value is unknown as a whole."""
    assert ev("${{ resources.a.id }}", resources=RESOURCES) is UNKNOWN
    assert ev("prefix-${{ resources.a.id }}", resources=RESOURCES) is UNKNOWN
    assert ev("${{ format('{0}/{1}', resources.a.input, resources.a.id) }}", resources=RESOURCES) is UNKNOWN
    assert ev("${{ resources.b[1].id }}", resources=RESOURCES) is UNKNOWN
    assert ev("${{ resources.b.*.id }}", resources=RESOURCES) is UNKNOWN
    assert ev("${{ toJSON(resources.a.tags) }}", resources=RESOURCES) is UNKNOWN
    assert ev("${{ resources.c.list[1] }}", resources=RESOURCES) is UNKNOWN
    assert ev("${{ join(resources.c.list, ',') }}", resources=RESOURCES) is UNKNOWN


def test_known_parts_of_partly_unknown_values_stay_known() -> None:
    """Known members of an object with unknown ones are read normally."""
    assert ev("${{ resources.a.input }}", resources=RESOURCES) == "x"
    assert ev("${{ resources.a.tags.k }}", resources=RESOURCES) == "v"
    assert ev("${{ resources.b[0].id }}", resources=RESOURCES) == "b0"
    assert ev("${{ resources.c.list[0] }}", resources=RESOURCES) == 1


def test_passing_a_partly_unknown_value_along_keeps_its_unknown_leaves() -> None:
    """A template that yields a whole object gives it back with UNKNOWN inside."""
    assert ev("${{ resources.a.tags }}", resources=RESOURCES) == {"k": "v", "later": UNKNOWN}
    assert ev("${{ resources.c.list }}", resources=RESOURCES) == [1, UNKNOWN]


def test_an_evaluation_error_caused_by_an_unknown_is_not_an_error() -> None:
    """fromJSON of a value not known yet is unknown, not a parse failure."""
    assert ev("${{ fromJSON(resources.a.id) }}", resources=RESOURCES) is UNKNOWN
    from shipyard.workflow.expressions import EvaluationError

    with pytest.raises(EvaluationError):
        ev("${{ fromJSON('{') }}", resources=RESOURCES)


def test_trees_evaluate_leaf_by_leaf_and_errors_name_the_path() -> None:
    """A value tree evaluates each template; a failing one is reported with its path."""
    tree = {"a": [parse_template("${{ var.x }}"), {"b": parse_template("${{ resources.a.id }}")}], "c": 3}
    ctx = EvalContext({"var": {"x": 1}, "resources": expose(RESOURCES)})
    assert evaluate_tree(tree, ctx) == {"a": [1, {"b": UNKNOWN}], "c": 3}
    broken = {"x": [0, {"y": parse_template("${{ fromJSON('nope') }}")}]}
    with pytest.raises(TreeError) as caught:
        evaluate_tree(broken, ctx)
    assert caught.value.path == ("x", 1, "y")
    assert is_static({"a": [1, {"b": "c"}]}) and not is_static(tree)


def test_expose_and_settle_round_trip() -> None:
    """Exposed values wrap only containers holding UNKNOWN; settling unwraps them."""
    known = {"a": [1, {"b": 2}]}
    assert expose(known) is known
    shown = expose(RESOURCES["a"])
    assert isinstance(shown, UObject)
    assert isinstance(expose([1, UNKNOWN]), UList)
    assert settle(shown) == RESOURCES["a"]
    assert contains_unknown(RESOURCES) and not contains_unknown(known)


def test_equal_tells_booleans_from_numbers() -> None:
    """JSON equality: true is not 1, 1 is 1.0, containers compare deeply."""
    assert not equal(True, 1)
    assert not equal({"a": [True]}, {"a": [1]})
    assert equal(1, 1.0)
    assert equal({"a": [1, {"b": None}]}, {"a": [1, {"b": None}]})
    assert not equal({"a": 1}, {"a": 1, "b": 2})
