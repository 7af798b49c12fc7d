"""Matrix expansion follows GitHub's documented include/exclude rules."""

from __future__ import annotations

import textwrap

import pytest

from shipyard.workflow._matrix import MatrixError, expand_matrix, matrix_suffix
from shipyard.workflow._parser import load_workflow
from shipyard.workflow.expressions import EvalContext


def combos(matrix_yaml: str, contexts: dict | None = None) -> list[dict]:
    text = "on: push\njobs:\n  j:\n    runs-on: x\n    strategy:\n      matrix:\n"
    text += textwrap.indent(textwrap.dedent(matrix_yaml), " " * 8)
    text += "    steps:\n      - run: 'true'\n"
    wf = load_workflow("m.yml", text)
    return expand_matrix(wf.jobs["j"].strategy, EvalContext(contexts or {}))


def test_axes_form_a_product_with_the_first_axis_varying_slowest():
    assert combos("os: [a, b]\nv: [1, 2]\n") == [
        {"os": "a", "v": 1}, {"os": "a", "v": 2}, {"os": "b", "v": 1}, {"os": "b", "v": 2},
    ]


def test_exclude_removes_combinations_matching_all_its_keys():
    got = combos("os: [a, b]\nv: [1, 2]\nexclude:\n  - os: a\n    v: 2\n")
    assert got == [{"os": "a", "v": 1}, {"os": "b", "v": 1}, {"os": "b", "v": 2}]


def test_partial_exclude_removes_every_combination_with_that_value():
    assert combos("os: [a, b]\nv: [1, 2]\nexclude:\n  - os: a\n") == [
        {"os": "b", "v": 1}, {"os": "b", "v": 2},
    ]


def test_include_adds_keys_to_matching_combinations_github_example():
    # The worked example from GitHub's documentation.
    got = combos(
        """\
        fruit: [apple, pear]
        animal: [cat, dog]
        include:
          - color: green
          - color: pink
            animal: cat
          - fruit: apple
            shape: circle
          - fruit: banana
          - fruit: banana
            animal: cat
        """
    )
    assert got == [
        {"fruit": "apple", "animal": "cat", "color": "pink", "shape": "circle"},
        {"fruit": "apple", "animal": "dog", "color": "green", "shape": "circle"},
        {"fruit": "pear", "animal": "cat", "color": "pink"},
        {"fruit": "pear", "animal": "dog", "color": "green"},
        {"fruit": "banana"},
        {"fruit": "banana", "animal": "cat"},
    ]


def test_include_never_overwrites_an_original_axis_value():
    got = combos("os: [a]\ninclude:\n  - os: b\n    extra: 1\n")
    assert got == [{"os": "a"}, {"os": "b", "extra": 1}]


def test_only_include_gives_one_combination_per_entry():
    assert combos("include:\n  - a: 1\n  - a: 2\n    b: x\n") == [{"a": 1}, {"a": 2, "b": "x"}]


def test_matrix_from_json_expression():
    text = textwrap.dedent(
        """\
        on: push
        jobs:
          j:
            runs-on: x
            strategy:
              matrix: ${{ fromJSON(inputs.m) }}
            steps:
              - run: 'true'
        """
    )
    wf = load_workflow("m.yml", text)
    ctx = EvalContext({"inputs": {"m": '{"py": ["3.11", "3.12"], "include": [{"py": "3.12", "x": true}]}'}})
    assert expand_matrix(wf.jobs["j"].strategy, ctx) == [{"py": "3.11"}, {"py": "3.12", "x": True}]


def test_axis_from_json_expression():
    got = combos("py: ${{ fromJSON('[\"3.11\", \"3.12\"]') }}\n")
    assert got == [{"py": "3.11"}, {"py": "3.12"}]


def test_axis_that_evaluates_to_a_non_list_is_a_located_error():
    with pytest.raises(MatrixError, match="axis 'py' must be a list, got a string"):
        combos("py: ${{ 'x' }}\n")


def test_too_many_combinations_is_an_error():
    with pytest.raises(MatrixError, match="at most 256"):
        combos("a: [1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17]\nb: [1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16]\n")


def test_suffix_lists_values_in_order():
    assert matrix_suffix({"os": "ubuntu", "py": 3.1, "flag": True}) == "(ubuntu, 3.1, true)"
