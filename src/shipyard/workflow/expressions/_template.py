"""Strings with ``${{ }}`` parts, and ``if:`` conditions."""

from __future__ import annotations

from typing import Any, NoReturn

from ._ast import And, Call, Concat, Node, walk
from ._context import EvalContext
from ._errors import EvaluationError, ExpressionError, shifted
from ._expression import Expression, guarded
from ._functions import STATUS_FUNCTIONS
from ._parser import parse_ast
from ._values import to_string

__all__ = ["Template", "parse_condition", "parse_template"]

_OPEN = "${{"
_CLOSE = "}}"


def _scan(source: str) -> list[str | tuple[int, str]]:
    """Split a template into literal text and ``(offset, text)`` of each expression.

    The offset is where the expression text, without surrounding whitespace,
    starts in ``source``. A ``}}`` inside a quoted string does not close.
    """
    parts: list[str | tuple[int, str]] = []
    i = 0
    n = len(source)
    while True:
        start = source.find(_OPEN, i)
        if start < 0:
            if i < n:
                parts.append(source[i:])
            return parts
        if start > i:
            parts.append(source[i:start])
        j = start + len(_OPEN)
        in_string = False
        quote = -1
        end = -1
        while j < n:
            c = source[j]
            if c == "'":
                if in_string and source.startswith("''", j):
                    j += 2  # an escaped quote inside a string
                    continue
                in_string = not in_string
                if in_string:
                    quote = j
            elif not in_string and c == "}" and source.startswith(_CLOSE, j):
                end = j
                break
            j += 1
        if end < 0:
            if in_string:
                raise ExpressionError("unterminated string", quote)
            raise ExpressionError("'${{' is not closed by '}}'", start)
        inner = source[start + len(_OPEN) : end]
        stripped = inner.lstrip()
        offset = start + len(_OPEN) + len(inner) - len(stripped)
        parts.append((offset, stripped.rstrip()))
        i = end + len(_CLOSE)


def _single(parts: list[str | tuple[int, str]]) -> tuple[int, str] | None:
    """The expression if the template is one whole ``${{ }}`` (whitespace around allowed)."""
    expressions = [part for part in parts if isinstance(part, tuple)]
    if len(expressions) != 1:
        return None
    if any(isinstance(part, str) and part.strip() for part in parts):
        return None
    return expressions[0]


class Template:
    """A string that may contain ``${{ }}`` expressions, e.g. ``"v-${{ matrix.os }}-x"``."""

    __slots__ = ("_parts", "_single", "expressions", "is_literal", "source")

    source: str
    is_literal: bool
    expressions: list[tuple[int, Expression]]
    _parts: tuple[str | tuple[int, Expression], ...]
    _single: tuple[int, Expression] | None

    def __init__(self, source: str) -> None:
        scanned = _scan(source)
        parts: list[str | tuple[int, Expression]] = []
        expressions: list[tuple[int, Expression]] = []
        for part in scanned:
            if isinstance(part, str):
                parts.append(part)
                continue
            offset, text = part
            try:
                expression = Expression(text, parse_ast(text))
            except ExpressionError as error:
                raise shifted(error, offset) from None
            parts.append((offset, expression))
            expressions.append((offset, expression))
        single = _single(scanned)
        setattr_ = object.__setattr__
        setattr_(self, "source", source)
        setattr_(self, "is_literal", not expressions)
        setattr_(self, "expressions", expressions)
        setattr_(self, "_parts", tuple(parts))
        setattr_(self, "_single", expressions[0] if single is not None else None)

    def __setattr__(self, name: str, value: Any) -> NoReturn:
        raise AttributeError(f"{type(self).__name__} is immutable")

    def __delattr__(self, name: str) -> NoReturn:
        raise AttributeError(f"{type(self).__name__} is immutable")

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.source!r})"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Template):
            return NotImplemented
        return self.source == other.source

    def __hash__(self) -> int:
        return hash(self.source)

    def __reduce__(self) -> tuple[Any, ...]:
        return (Template, (self.source,))

    def evaluate(self, ctx: EvalContext) -> Any:
        """The value of the template.

        A template that is exactly one ``${{ expr }}`` (whitespace around is
        allowed) gives the raw value of ``expr``: a dict, list, number, bool or
        None. Otherwise the result is a string with each expression converted by
        ``to_string``. EvaluationError offsets are relative to ``source``.
        """
        if self.is_literal:
            return self.source
        if self._single is not None:
            offset, expression = self._single
            try:
                return expression.evaluate(ctx)
            except EvaluationError as error:
                raise shifted(error, offset) from None
        return self._render(ctx)

    def evaluate_str(self, ctx: EvalContext) -> str:
        """The value of the template as a string (a single expression is converted too)."""
        if self.is_literal:
            return self.source
        if self._single is not None:
            return to_string(self.evaluate(ctx))
        return self._render(ctx)

    def _render(self, ctx: EvalContext) -> str:
        out: list[str] = []
        for part in self._parts:
            if isinstance(part, str):
                out.append(part)
                continue
            offset, expression = part
            try:
                out.append(to_string(expression.evaluate(ctx)))
            except EvaluationError as error:
                raise shifted(error, offset) from None
        return "".join(out)


def _parse_template(source: str) -> Template:
    if not isinstance(source, str):
        raise ExpressionError(f"template must be a string, not {type(source).__name__}")
    return Template(source)


def parse_template(source: str) -> Template:
    """Compile a string that may contain ``${{ }}`` expressions.

    Raises ExpressionError with offsets relative to ``source``: an unclosed
    ``${{``, or the offending token of a bad expression.
    """
    result: Template = guarded(_parse_template, source)
    return result


def _condition_tree(source: str) -> Node:
    if _OPEN not in source:
        return parse_ast(source)
    scanned = _scan(source)
    single = _single(scanned)
    if single is not None:
        offset, text = single
        return parse_ast(text, offset)
    # Text around or between expressions: GitHub evaluates the whole thing as a
    # string, which is true whenever it is not empty.
    parts: list[str | Node] = []
    depth = 1
    for part in scanned:
        if isinstance(part, str):
            parts.append(part)
        else:
            node = parse_ast(part[1], part[0])
            depth = max(depth, node.depth + 1)
            parts.append(node)
    return Concat(0, tuple(parts), depth=depth)


def _parse_condition(source: str) -> Expression:
    if not isinstance(source, str):
        raise ExpressionError(f"condition must be a string, not {type(source).__name__}")
    tree = _condition_tree(source)
    if any(isinstance(node, Call) and node.name in STATUS_FUNCTIONS for node in walk(tree)):
        return Expression(source, tree)
    # No status function: the condition means `success() && (condition)`.
    success = Call(0, "success", ())
    return Expression(source, And(0, (success, tree), depth=tree.depth + 1))


def parse_condition(source: str) -> Expression:
    """Compile an ``if:`` value, with or without the ``${{ }}`` around it.

    Without a status function the condition is ``success() && (condition)``,
    as on GitHub (so ``functions()`` includes ``"success"``). Offsets in errors,
    at parse and evaluation time, are relative to ``source``.
    """
    result: Expression = guarded(_parse_condition, source)
    return result
