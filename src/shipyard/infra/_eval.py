"""Evaluating value trees, with values that are not known until apply.

A *value tree* (see :mod:`shipyard.infra._model`) is plain JSON-like data whose strings
with ``${{ }}`` are compiled :class:`~shipyard.workflow.expressions.Template` objects.
Evaluating one in a context gives plain data again. At plan time some of what an
expression reads does not exist yet (the ``id`` of a resource still to be created, the
attributes of one about to be updated): those values are :data:`UNKNOWN`, and any
template that *reads* one evaluates to UNKNOWN as a whole ("known after apply"). At
apply time, in dependency order, every value a template reads is known.

How reads are noticed: the expression evaluator walks plain dicts and lists, and any
other Mapping/Sequence through ``obj[key]``. Values holding UNKNOWN somewhere are shown
to expressions as :class:`UObject`/:class:`UList`, whose item access records a *hit*
(in a thread-local counter) when the item is unknown. A template whose evaluation made
a hit is unknown; one that merely passes a partly unknown object along (``${{
resources.a.tags }}``) yields it with its unknown leaves intact.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Mapping, Sequence
from typing import Any, ClassVar, Final

from shipyard.workflow.expressions import EvalContext, EvaluationError, Expression, Template

__all__ = [
    "UNKNOWN",
    "TreeError",
    "UList",
    "UObject",
    "Unknown",
    "contains_unknown",
    "equal",
    "evaluate_expression",
    "evaluate_template",
    "evaluate_tree",
    "expose",
    "is_static",
    "settle",
]


class Unknown:
    """The one value that stands for "known after apply"."""

    __slots__ = ()
    _instance: ClassVar[Unknown | None] = None

    def __new__(cls) -> Unknown:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "UNKNOWN"

    def __reduce__(self) -> tuple[Any, ...]:
        return (Unknown, ())


UNKNOWN: Final = Unknown()

_SCALARS: Final = frozenset({str, int, float, bool, type(None)})


class _Hits(threading.local):
    count: int = 0


_HITS: Final = _Hits()


class UObject(Mapping[str, Any]):
    """A mapping with unknown members, as expressions see it."""

    __slots__ = ("_items",)

    def __init__(self, items: dict[str, Any]) -> None:
        self._items = items

    def __getitem__(self, key: str) -> Any:
        value = self._items[key]
        if value is UNKNOWN:
            _HITS.count += 1
            return None
        return value

    def __iter__(self) -> Iterator[str]:
        return iter(self._items)

    def __len__(self) -> int:
        return len(self._items)

    def __repr__(self) -> str:
        return f"UObject({self._items!r})"


class UList(Sequence[Any]):
    """A list with unknown items, as expressions see it."""

    __slots__ = ("_items",)

    def __init__(self, items: list[Any]) -> None:
        self._items = items

    def __getitem__(self, index: Any) -> Any:
        value = self._items[index]
        if type(index) is slice:
            if any(item is UNKNOWN for item in value):
                _HITS.count += 1
            return [None if item is UNKNOWN else item for item in value]
        if value is UNKNOWN:
            _HITS.count += 1
            return None
        return value

    def __len__(self) -> int:
        return len(self._items)

    def __repr__(self) -> str:
        return f"UList({self._items!r})"


def expose(value: Any) -> Any:
    """``value`` as expressions should see it: containers holding UNKNOWN get wrapped.

    Known values are returned as they are (no copy). A top-level UNKNOWN stays UNKNOWN:
    the container that holds it records the hit.
    """
    kind = type(value)
    if kind is dict:
        wrapped: dict[str, Any] | None = None
        for key, item in value.items():
            if item is UNKNOWN:
                shown = item
            else:
                shown = expose(item) if type(item) in (dict, list) else item
            if shown is not item or item is UNKNOWN:
                if wrapped is None:
                    wrapped = dict(value)
                wrapped[key] = shown
        return value if wrapped is None else UObject(wrapped)
    if kind is list:
        changed = False
        items: list[Any] = []
        for item in value:
            shown = item if item is UNKNOWN else expose(item) if type(item) in (dict, list) else item
            changed = changed or shown is not item or item is UNKNOWN
            items.append(shown)
        return UList(items) if changed else value
    return value


def settle(value: Any) -> Any:
    """A template's result as plain data: wrapped values back to dicts/lists with UNKNOWN."""
    kind = type(value)
    if kind in _SCALARS:
        return value
    if kind is UObject:
        return {key: settle(item) for key, item in value._items.items()}
    if kind is UList:
        return [settle(item) for item in value._items]
    if kind is dict:
        return {key: settle(item) for key, item in value.items()}
    if kind is list or kind is tuple:
        return [settle(item) for item in value]
    if isinstance(value, Mapping):
        return {key: settle(item) for key, item in value.items()}
    return value


def evaluate_template(template: Template | Expression, ctx: EvalContext) -> Any:
    """The value of ``template``: UNKNOWN if it read an unknown value.

    An evaluation error caused by reading an unknown value (``fromJSON`` of an unknown
    string, say) is not an error yet: the value is simply unknown.
    """
    hits = _HITS
    before = hits.count
    try:
        value = template.evaluate(ctx)
    except EvaluationError:
        if hits.count != before:
            return UNKNOWN
        raise
    if hits.count != before:
        return UNKNOWN
    return settle(value)


class TreeError(Exception):
    """An expression failed at ``path`` inside a value tree."""

    def __init__(self, path: tuple[str | int, ...], error: EvaluationError) -> None:
        super().__init__(str(error))
        self.path = path
        self.error = error


def evaluate_tree(tree: Any, ctx: EvalContext) -> Any:
    """The value of a value tree; raises TreeError naming the path of a failing template."""
    kind = type(tree)
    if kind is Template:
        try:
            return evaluate_template(tree, ctx)
        except EvaluationError as err:
            raise TreeError((), err) from None
    if kind is dict:
        out: dict[str, Any] = {}
        for key, item in tree.items():
            try:
                out[key] = evaluate_tree(item, ctx)
            except TreeError as err:
                err.path = (key, *err.path)
                raise
        return out
    if kind is list:
        items: list[Any] = []
        for index, item in enumerate(tree):
            try:
                items.append(evaluate_tree(item, ctx))
            except TreeError as err:
                err.path = (index, *err.path)
                raise
        return items
    return tree


def is_static(tree: Any) -> bool:
    """Whether a value tree holds no template (its value is itself)."""
    kind = type(tree)
    if kind is Template:
        return False
    if kind is dict:
        return all(is_static(item) for item in tree.values())
    if kind is list:
        return all(is_static(item) for item in tree)
    return True


def contains_unknown(value: Any) -> bool:
    """Whether UNKNOWN appears anywhere in ``value``."""
    if value is UNKNOWN:
        return True
    kind = type(value)
    if kind is dict:
        return any(contains_unknown(item) for item in value.values())
    if kind is list:
        return any(contains_unknown(item) for item in value)
    return False


def equal(a: Any, b: Any) -> bool:
    """Equality of JSON values where ``true`` is not ``1`` (Python's ``==`` says it is)."""
    ta = type(a)
    tb = type(b)
    if ta is not tb:
        if ta in (int, float) and tb in (int, float):
            return bool(a == b)
        return False
    if ta is dict:
        if len(a) != len(b):
            return False
        return all(key in b and equal(item, b[key]) for key, item in a.items())
    if ta is list:
        return len(a) == len(b) and all(equal(x, y) for x, y in zip(a, b, strict=True))
    return bool(a == b)


def evaluate_expression(expression: Expression, ctx: EvalContext) -> Any:
    """The value of a bare expression (a validation condition): UNKNOWN if it read one
    (see :func:`evaluate_template`, which evaluates either alike)."""
    return evaluate_template(expression, ctx)
