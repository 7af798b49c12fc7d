"""Compile a syntax tree into nested Python closures.

Each node becomes one closure taking an EvalContext. Common shapes get
specialised closures: a context followed by property names is one closure
that walks the path, comparisons against a string literal pre-fold the
literal, and ``&&``/``||`` with two or three operands are unrolled.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, Final

from ._ast import (
    And,
    Call,
    Compare,
    Concat,
    ContextRef,
    Index,
    Literal,
    Member,
    Node,
    Not,
    Or,
    Wildcard,
)
from ._context import EvalContext, Evaluator
from ._functions import BUILDERS
from ._values import (
    MISSING,
    STRING,
    array_index,
    fold,
    greater,
    index_value,
    is_truthy,
    kind_of,
    less,
    lookup,
    loose_equal,
    member,
    parse_number,
    to_number,
    to_string,
    wildcard,
)

__all__ = ["compile_node"]


def compile_node(node: Node) -> Evaluator:
    """The closure that evaluates ``node``."""
    if isinstance(node, Literal):
        return _compile_literal(node.value)
    if isinstance(node, (ContextRef, Member)):
        path = _static_path(node)
        if path is not None:
            return _compile_path(*path)
    if isinstance(node, Member):
        return _compile_member(compile_node(node.target), node.name)
    if isinstance(node, ContextRef):  # pragma: no cover - _static_path always handles it
        return _compile_path(node.name, ())
    if isinstance(node, Index):
        return _compile_index(node)
    if isinstance(node, Wildcard):
        target = compile_node(node.target)
        return lambda ctx: wildcard(target(ctx))
    if isinstance(node, Not):
        return _compile_not(compile_node(node.operand))
    if isinstance(node, Compare):
        return _compile_compare(node)
    if isinstance(node, And):
        return _compile_and([compile_node(op) for op in node.operands])
    if isinstance(node, Or):
        return _compile_or([compile_node(op) for op in node.operands])
    if isinstance(node, Call):
        return BUILDERS[node.name](node, [compile_node(arg) for arg in node.args])
    if isinstance(node, Concat):
        return _compile_concat(node)
    raise TypeError(f"unknown node {node!r}")  # pragma: no cover


def _compile_literal(value: Any) -> Evaluator:
    return lambda ctx: value


# --- paths ---------------------------------------------------------------------------


def _static_path(node: Node) -> tuple[str, tuple[str, ...]] | None:
    """``github.event.ref`` -> ("github", ("event", "ref")); None for other shapes."""
    names: list[str] = []
    while isinstance(node, Member):
        names.append(node.name)
        node = node.target
    if not isinstance(node, ContextRef):
        return None
    names.reverse()
    return node.name, tuple(names)


def _context_getter(name: str) -> Callable[[Mapping[str, Any]], Any]:
    lowered = name.lower()
    folded = fold(name)

    def get(contexts: Mapping[str, Any]) -> Any:
        value = contexts.get(lowered, MISSING)
        if value is MISSING:
            value = contexts.get(name, MISSING)
            if value is MISSING:
                value = lookup(contexts, name, folded)
                if value is MISSING:
                    return None
        return value

    return get


def _compile_path(context: str, names: tuple[str, ...]) -> Evaluator:
    get_context = _context_getter(context)
    steps = tuple((name, fold(name), array_index(name)) for name in names)

    if not steps:
        return lambda ctx: get_context(ctx.contexts)

    if len(steps) == 1:
        ((key, folded, index),) = steps

        def path1(ctx: EvalContext) -> Any:
            value = get_context(ctx.contexts)
            if type(value) is dict:
                found = value.get(key, MISSING)
                if found is not MISSING:
                    return found
            return member(value, key, folded, index)

        return path1

    def path(ctx: EvalContext) -> Any:
        value = get_context(ctx.contexts)
        for key, folded, index in steps:
            if type(value) is dict:
                found = value.get(key, MISSING)
                if found is not MISSING:
                    value = found
                    continue
            elif value is None:
                return None
            value = member(value, key, folded, index)
        return value

    return path


def _compile_member(target: Evaluator, name: str) -> Evaluator:
    folded = fold(name)
    index = array_index(name)

    def get_member(ctx: EvalContext) -> Any:
        return member(target(ctx), name, folded, index)

    return get_member


def _compile_index(node: Index) -> Evaluator:
    target = compile_node(node.target)
    if isinstance(node.index, Literal) and type(node.index.value) is str:
        return _compile_member(target, node.index.value)
    index = compile_node(node.index)

    def get_index(ctx: EvalContext) -> Any:
        return index_value(target(ctx), index(ctx))

    return get_index


# --- operators -----------------------------------------------------------------------


def _compile_not(operand: Evaluator) -> Evaluator:
    def negate(ctx: EvalContext) -> bool:
        value = operand(ctx)
        if value is True:
            return False
        if value is False:
            return True
        return not is_truthy(value)

    return negate


def _compile_and(operands: list[Evaluator]) -> Evaluator:
    if len(operands) == 2:
        first, second = operands

        def and2(ctx: EvalContext) -> Any:
            value = first(ctx)
            if value is True or (value is not False and is_truthy(value)):
                return second(ctx)
            return value

        return and2

    if len(operands) == 3:
        first, second, third = operands

        def and3(ctx: EvalContext) -> Any:
            value = first(ctx)
            if not (value is True or (value is not False and is_truthy(value))):
                return value
            value = second(ctx)
            if value is True or (value is not False and is_truthy(value)):
                return third(ctx)
            return value

        return and3

    *leading, last = operands

    def and_n(ctx: EvalContext) -> Any:
        for operand in leading:
            value = operand(ctx)
            if not (value is True or (value is not False and is_truthy(value))):
                return value
        return last(ctx)

    return and_n


def _compile_or(operands: list[Evaluator]) -> Evaluator:
    if len(operands) == 2:
        first, second = operands

        def or2(ctx: EvalContext) -> Any:
            value = first(ctx)
            if value is True or (value is not False and is_truthy(value)):
                return value
            return second(ctx)

        return or2

    *leading, last = operands

    def or_n(ctx: EvalContext) -> Any:
        for operand in leading:
            value = operand(ctx)
            if value is True or (value is not False and is_truthy(value)):
                return value
        return last(ctx)

    return or_n


def _equal_to_string(operand: Evaluator, constant: str, *, negate: bool) -> Evaluator:
    """``x == 'literal'`` (or ``!=``) with the literal folded once."""
    folded = fold(constant)
    size = len(constant)
    as_number = parse_number(constant)

    def equal(value: Any) -> bool:
        if type(value) is str:
            return value == constant or (len(value) == size and fold(value) == folded)
        kind = kind_of(value)
        if kind == STRING:
            return loose_equal(value, constant)
        if kind < STRING:
            return bool(to_number(value) == as_number)
        return False

    if negate:
        return lambda ctx: not equal(operand(ctx))
    return lambda ctx: equal(operand(ctx))


def _compile_compare(node: Compare) -> Evaluator:
    op = node.op
    if op in ("==", "!="):
        negate = op == "!="
        for constant_side, other in ((node.right, node.left), (node.left, node.right)):
            if isinstance(constant_side, Literal) and type(constant_side.value) is str:
                return _equal_to_string(compile_node(other), constant_side.value, negate=negate)
    left = compile_node(node.left)
    right = compile_node(node.right)
    if op == "==":
        return lambda ctx: loose_equal(left(ctx), right(ctx))
    if op == "!=":
        return lambda ctx: not loose_equal(left(ctx), right(ctx))
    if op == "<":
        return lambda ctx: less(left(ctx), right(ctx))
    if op == ">":
        return lambda ctx: greater(left(ctx), right(ctx))

    strict = less if op == "<=" else greater

    def compare_or_equal(ctx: EvalContext) -> bool:
        a = left(ctx)
        b = right(ctx)
        return loose_equal(a, b) or strict(a, b)

    return compare_or_equal


# --- templates used as conditions ----------------------------------------------------


def _compile_concat(node: Concat) -> Evaluator:
    parts: Final = tuple(
        part if isinstance(part, str) else compile_node(part) for part in node.parts
    )

    def concat(ctx: EvalContext) -> str:
        return "".join(part if isinstance(part, str) else to_string(part(ctx)) for part in parts)

    return concat
