"""The built-in functions: their signatures and their compiled implementations."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Final

from ._ast import Call, Literal, Node
from ._context import EvalContext, Evaluator
from ._errors import EvaluationError
from ._values import (
    ARRAY,
    MISSING,
    STRING,
    CycleError,
    fold,
    kind_of,
    loose_equal,
    to_json,
    to_string,
)

__all__ = [
    "BUILDERS",
    "FUNCTIONS",
    "STATUS_FUNCTIONS",
    "CallbackFailure",
    "FunctionSpec",
    "arity_message",
]


@dataclass(frozen=True, slots=True)
class FunctionSpec:
    key: str  # lower-case, how calls are looked up (function names ignore case)
    name: str  # as documented, for messages
    min_args: int
    max_args: int


_UNBOUNDED: Final = 1 << 30

FUNCTIONS: Final[dict[str, FunctionSpec]] = {
    spec.key: spec
    for spec in (
        FunctionSpec("contains", "contains", 2, 2),
        FunctionSpec("startswith", "startsWith", 2, 2),
        FunctionSpec("endswith", "endsWith", 2, 2),
        FunctionSpec("format", "format", 1, 255),
        FunctionSpec("join", "join", 1, 2),
        FunctionSpec("tojson", "toJSON", 1, 1),
        FunctionSpec("fromjson", "fromJSON", 1, 1),
        FunctionSpec("hashfiles", "hashFiles", 1, _UNBOUNDED),
        FunctionSpec("success", "success", 0, 0),
        FunctionSpec("failure", "failure", 0, 0),
        FunctionSpec("cancelled", "cancelled", 0, 0),
        FunctionSpec("always", "always", 0, 0),
    )
}

STATUS_FUNCTIONS: Final = frozenset({"success", "failure", "cancelled", "always"})


def _plural(count: int) -> str:
    return f"{count} argument" if count == 1 else f"{count} arguments"


def arity_message(spec: FunctionSpec, got: int) -> str:
    """``'contains' takes 2 arguments, got 1`` and friends."""
    low, high = spec.min_args, spec.max_args
    if low == high:
        wanted = "no arguments" if low == 0 else _plural(low)
    elif high >= _UNBOUNDED:
        wanted = f"at least {_plural(low)}"
    elif high == low + 1:
        wanted = f"{low} or {_plural(high)}"
    else:
        wanted = f"{low} to {_plural(high)}"
    return f"{spec.name!r} takes {wanted}, got {got}"


class CallbackFailure(Exception):
    """Carries an exception raised by a caller's hook out of evaluation untouched."""

    def __init__(self, error: Exception) -> None:
        super().__init__(error)
        self.error = error


Builder = Callable[[Call, Sequence[Evaluator]], Evaluator]

_STRING_LIKE: Final = STRING  # kinds <= STRING are the primitives


def _literal(node: Node) -> Any:
    return node.value if isinstance(node, Literal) else MISSING


# --- contains / startsWith / endsWith ------------------------------------------------


def _build_contains(call: Call, args: Sequence[Evaluator]) -> Evaluator:
    haystack_fn, needle_fn = args
    constant = _literal(call.args[1])
    if type(constant) is str:
        folded_needle = fold(constant)

        size = len(constant)

        def contains_constant(ctx: EvalContext) -> bool:
            haystack = haystack_fn(ctx)
            if type(haystack) is str:
                return constant in haystack or folded_needle in fold(haystack)
            if kind_of(haystack) == ARRAY:
                for item in haystack:
                    if type(item) is str:
                        if item == constant or (len(item) == size and fold(item) == folded_needle):
                            return True
                    elif loose_equal(item, constant):
                        return True
                return False
            return _contains(haystack, constant)

        return contains_constant

    def contains(ctx: EvalContext) -> bool:
        return _contains(haystack_fn(ctx), needle_fn(ctx))

    return contains


def _contains(haystack: Any, needle: Any) -> bool:
    kind = kind_of(haystack)
    if kind <= _STRING_LIKE:
        if kind_of(needle) > _STRING_LIKE:
            return False
        return fold(to_string(needle)) in fold(to_string(haystack))
    if kind == ARRAY:
        return any(loose_equal(item, needle) for item in haystack)
    return False


def _build_affix(call: Call, args: Sequence[Evaluator], *, ends: bool) -> Evaluator:
    text_fn, affix_fn = args
    constant = _literal(call.args[1])

    def check(text: str, affix: str, folded_affix: str) -> bool:
        size = len(affix)
        if size > len(text):
            return False
        if size == 0:
            return True
        part = text[-size:] if ends else text[:size]
        return part == affix or fold(part) == folded_affix

    if type(constant) is str:
        folded_constant = fold(constant)

        def affix_constant(ctx: EvalContext) -> bool:
            text = text_fn(ctx)
            if type(text) is not str:
                if kind_of(text) > _STRING_LIKE:
                    return False
                text = to_string(text)
            return check(text, constant, folded_constant)

        return affix_constant

    def affix_any(ctx: EvalContext) -> bool:
        text = text_fn(ctx)
        affix = affix_fn(ctx)
        if kind_of(text) > _STRING_LIKE or kind_of(affix) > _STRING_LIKE:
            return False
        affix = to_string(affix)
        return check(to_string(text), affix, fold(affix))

    return affix_any


def _build_starts_with(call: Call, args: Sequence[Evaluator]) -> Evaluator:
    return _build_affix(call, args, ends=False)


def _build_ends_with(call: Call, args: Sequence[Evaluator]) -> Evaluator:
    return _build_affix(call, args, ends=True)


# --- format --------------------------------------------------------------------------


class _FormatError(ValueError):
    pass


def _parse_format(text: str, given: int) -> list[str | int]:
    """Split a format string into literal text and argument indexes.

    ``given`` is the number of replacement arguments. ``{{``/``}}`` are literal
    braces; ``{N}`` is argument N.
    """
    segments: list[str | int] = []
    literal: list[str] = []
    i = 0
    n = len(text)
    while i < n:
        left = text.find("{", i)
        right = text.find("}", i)
        if left >= 0 and (right < 0 or left < right):
            literal.append(text[i:left])
            if left + 1 < n and text[left + 1] == "{":
                literal.append("{")
                i = left + 2
                continue
            end = left + 1
            while end < n and "0" <= text[end] <= "9":
                end += 1
            if end == left + 1 or end >= n or text[end] != "}":
                if end > left + 1 and end < n and text[end] == ":":
                    raise _FormatError(f"format specifiers are not supported (at position {left})")
                raise _FormatError(f"invalid format string: unmatched '{{' at position {left}")
            index = int(text[left + 1 : end]) if end - left <= 4 else 256
            if index > 254:
                raise _FormatError(
                    f"invalid format string: argument index too large at position {left}"
                )
            if index >= given:
                raise _FormatError(
                    f"'{{{index}}}' refers to argument {index} but only "
                    f"{_plural(given)} {'was' if given == 1 else 'were'} given"
                )
            if literal:
                segments.append("".join(literal))
                literal = []
            segments.append(index)
            i = end + 1
        elif right >= 0:
            if right + 1 < n and text[right + 1] == "}":
                literal.append(text[i : right + 1])
                i = right + 2
                continue
            raise _FormatError(f"invalid format string: unmatched '}}' at position {right}")
        else:
            literal.append(text[i:])
            break
    if literal:
        segments.append("".join(literal))
    return segments


def _format_error(message: str, call: Call) -> EvaluationError:
    return EvaluationError(f"format: {message}", call.offset)


def _build_format(call: Call, args: Sequence[Evaluator]) -> Evaluator:
    format_fn = args[0]
    values = args[1:]
    given = len(values)
    constant = _literal(call.args[0])

    def render(ctx: EvalContext, segments: list[str | int]) -> str:
        cache: dict[int, str] = {}
        out: list[str] = []
        for segment in segments:
            if type(segment) is str:
                out.append(segment)
                continue
            assert isinstance(segment, int)
            text = cache.get(segment)
            if text is None:
                text = cache[segment] = to_string(values[segment](ctx))
            out.append(text)
        return "".join(out)

    if constant is not MISSING:
        try:
            fixed: list[str | int] | None = _parse_format(to_string(constant), given)
            problem = ""
        except _FormatError as error:
            fixed, problem = None, str(error)

        def format_constant(ctx: EvalContext) -> str:
            if fixed is None:
                raise _format_error(problem, call)
            return render(ctx, fixed)

        return format_constant

    def format_any(ctx: EvalContext) -> str:
        try:
            segments = _parse_format(to_string(format_fn(ctx)), given)
        except _FormatError as error:
            raise _format_error(str(error), call) from None
        return render(ctx, segments)

    return format_any


# --- join / toJSON / fromJSON --------------------------------------------------------


def _build_join(call: Call, args: Sequence[Evaluator]) -> Evaluator:
    items_fn = args[0]
    separator_fn = args[1] if len(args) > 1 else None

    def join(ctx: EvalContext) -> str:
        items = items_fn(ctx)
        kind = kind_of(items)
        if kind == ARRAY and len(items) > 0:
            separator = ","
            if separator_fn is not None and len(items) > 1:
                value = separator_fn(ctx)
                if kind_of(value) <= _STRING_LIKE:
                    separator = to_string(value)
            return separator.join([to_string(item) for item in items])
        if kind <= _STRING_LIKE:
            return to_string(items)
        return ""

    return join


def _build_to_json(call: Call, args: Sequence[Evaluator]) -> Evaluator:
    (value_fn,) = args

    def to_json_fn(ctx: EvalContext) -> str:
        try:
            return to_json(value_fn(ctx))
        except CycleError:
            raise EvaluationError("toJSON: the value contains itself", call.offset) from None

    return to_json_fn


def _build_from_json(call: Call, args: Sequence[Evaluator]) -> Evaluator:
    (text_fn,) = args

    def from_json(ctx: EvalContext) -> Any:
        text = to_string(text_fn(ctx))
        try:
            return json.loads(text)
        except RecursionError:
            message = "fromJSON: the JSON is nested too deeply"
        except json.JSONDecodeError as error:
            message = f"fromJSON: invalid JSON: {error}"
        except ValueError as error:
            message = f"fromJSON: invalid JSON: {error}"
        raise EvaluationError(message, call.offset)

    return from_json


# --- hashFiles and the status functions ----------------------------------------------


def _build_hash_files(call: Call, args: Sequence[Evaluator]) -> Evaluator:
    def hash_files(ctx: EvalContext) -> str:
        patterns = [to_string(fn(ctx)) for fn in args]
        hook = ctx.hash_files
        if hook is None:
            raise EvaluationError("hashFiles is not available here", call.offset)
        try:
            result = hook(patterns)
        except Exception as error:
            raise CallbackFailure(error) from error
        return result if type(result) is str else to_string(result)

    return hash_files


_STATUS_DEFAULTS: Final = {"success": True, "failure": False, "cancelled": False, "always": True}


def _build_status(call: Call, args: Sequence[Evaluator]) -> Evaluator:
    name = call.name
    default = _STATUS_DEFAULTS[name]

    def status(ctx: EvalContext) -> bool:
        hook = ctx.status
        if hook is None:
            return default
        try:
            return bool(hook(name))
        except Exception as error:
            raise CallbackFailure(error) from error

    return status


BUILDERS: Final[dict[str, Builder]] = {
    "contains": _build_contains,
    "startswith": _build_starts_with,
    "endswith": _build_ends_with,
    "format": _build_format,
    "join": _build_join,
    "tojson": _build_to_json,
    "fromjson": _build_from_json,
    "hashfiles": _build_hash_files,
    "success": _build_status,
    "failure": _build_status,
    "cancelled": _build_status,
    "always": _build_status,
}
