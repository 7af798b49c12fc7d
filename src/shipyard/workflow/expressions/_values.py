"""The value model of expressions: kinds, coercions, comparisons and lookups.

Values are plain Python data: ``None``, ``bool``, ``int``/``float``, ``str``,
mappings (objects) and lists/tuples (arrays). Anything else is an opaque object:
truthy, ``'Object'`` as a string, never equal to anything but itself.

The rules follow GitHub Actions: loose equality that coerces mismatched
primitives to numbers, case-insensitive string comparison, JavaScript-like
truthiness, and numbers printed as .NET's ``G15`` format prints them.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping, Sequence
from typing import Any, Final

__all__ = [
    "ARRAY",
    "BOOLEAN",
    "MISSING",
    "NULL",
    "NUMBER",
    "OBJECT",
    "OPAQUE",
    "STRING",
    "FilteredArray",
    "array_index",
    "fold",
    "greater",
    "index_value",
    "is_truthy",
    "kind_of",
    "less",
    "lookup",
    "loose_equal",
    "member",
    "number_to_string",
    "parse_number",
    "to_json",
    "to_number",
    "to_string",
    "wildcard",
]

NULL: Final = 0
BOOLEAN: Final = 1
NUMBER: Final = 2
STRING: Final = 3
ARRAY: Final = 4
OBJECT: Final = 5
OPAQUE: Final = 6  # not JSON-like; behaves as an object without keys

MISSING: Final[Any] = object()

_NAN: Final = math.nan


class FilteredArray(list[Any]):
    """The array an object filter (``.*`` / ``[*]``) produces.

    A property or index applied to it applies to each of its elements instead.
    """

    __slots__ = ()


_KIND_BY_TYPE: Final[dict[type, int]] = {
    type(None): NULL,
    bool: BOOLEAN,
    int: NUMBER,
    float: NUMBER,
    str: STRING,
    list: ARRAY,
    tuple: ARRAY,
    FilteredArray: ARRAY,
    dict: OBJECT,
}


def kind_of(value: Any) -> int:
    """The kind of ``value``: one of NULL, BOOLEAN, NUMBER, STRING, ARRAY, OBJECT, OPAQUE."""
    kind = _KIND_BY_TYPE.get(type(value))
    if kind is not None:
        return kind
    if isinstance(value, (int, float)):  # subclasses (bool cannot be subclassed)
        return NUMBER
    if isinstance(value, str):
        return STRING
    if isinstance(value, Mapping):
        return OBJECT
    if isinstance(value, Sequence) and not isinstance(value, (bytes, bytearray, memoryview)):
        return ARRAY
    return OPAQUE


# --- strings -------------------------------------------------------------------------


def fold(text: str) -> str:
    """Case-fold like .NET's OrdinalIgnoreCase: upper-case each character on its own.

    The result always has the same length as ``text``, so slicing before folding
    is safe (used by startsWith/endsWith).
    """
    if text.isascii():
        return text.upper()
    upper = text.upper()
    if len(upper) == len(text):
        return upper
    # Some characters upper-case to several ('ß' -> 'SS'); keep those as they are.
    return "".join(u if len(u := c.upper()) == 1 else c for c in text)


def number_to_string(number: float | int) -> str:
    """Print a number the way GitHub does (.NET ``G15``): ``3.0`` -> ``'3'``, ``1e15`` -> ``'1E+15'``."""
    if isinstance(number, int):
        if -1_000_000_000_000_000 < number < 1_000_000_000_000_000:
            return str(int(number))
        try:
            number = float(number)
        except OverflowError:
            return "Infinity" if number > 0 else "-Infinity"
    if number != number:
        return "NaN"
    if number == math.inf:
        return "Infinity"
    if number == -math.inf:
        return "-Infinity"
    text = format(number, ".15g")
    if "e" in text:
        mantissa, exponent = text.split("e")
        return f"{mantissa}E{exponent}"
    return text


def to_string(value: Any) -> str:
    """Coerce a value to a string as GitHub does.

    ``None`` -> ``''``, booleans -> ``'true'``/``'false'``, numbers as GitHub prints
    them (``3.0`` -> ``'3'``), arrays -> ``'Array'``, objects -> ``'Object'``.
    """
    kind = kind_of(value)
    if kind == STRING:
        return str(value)
    if kind == NULL:
        return ""
    if kind == BOOLEAN:
        return "true" if value else "false"
    if kind == NUMBER:
        return number_to_string(value)
    if kind == ARRAY:
        return "Array"
    return "Object"


def is_truthy(value: Any) -> bool:
    """GitHub truthiness: ``null``, ``false``, ``0``, ``-0``, ``''`` and ``NaN`` are falsy."""
    if value is True:
        return True
    if value is False or value is None:
        return False
    kind = kind_of(value)
    if kind == STRING:
        return len(value) > 0
    if kind == NUMBER:
        return not (value == 0 or value != value)
    return True


# --- numbers -------------------------------------------------------------------------

_DECIMAL: Final = re.compile(r"[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")
_HEX: Final = re.compile(r"0x[0-9a-fA-F]+")
_OCTAL: Final = re.compile(r"0o[0-7]+")
_INT32: Final = 1 << 32


def _int32(magnitude: int) -> float:
    # Both are read as a 32-bit two's complement integer; anything larger is NaN.
    if magnitude >= _INT32:
        return _NAN
    if magnitude >= _INT32 >> 1:
        magnitude -= _INT32
    return float(magnitude)


def parse_number(text: str) -> float:
    """Read a string as a number like GitHub does; ``''`` is 0, anything unreadable NaN.

    Accepts decimal numbers with optional sign and exponent, ``0x`` hex, ``0o``
    octal and ``Infinity``/``-Infinity``, with surrounding whitespace.
    """
    text = text.strip()
    if not text:
        return 0.0
    if _DECIMAL.fullmatch(text):
        return float(text)
    if len(text) > 2 and text[0] == "0":
        if text[1] == "x" and _HEX.fullmatch(text):
            return _int32(int(text[2:].lstrip("0") or "0", 16)) if len(text) < 80 else _NAN
        if text[1] == "o" and _OCTAL.fullmatch(text):
            return _int32(int(text[2:].lstrip("0") or "0", 8)) if len(text) < 80 else _NAN
    if text in ("Infinity", "+Infinity"):
        return math.inf
    if text == "-Infinity":
        return -math.inf
    return _NAN


def to_number(value: Any) -> float | int:
    """Coerce to a number: null -> 0, booleans -> 1/0, strings parsed, others NaN."""
    kind = kind_of(value)
    if kind == NUMBER:
        return value  # type: ignore[no-any-return]
    if kind == NULL:
        return 0
    if kind == BOOLEAN:
        return 1 if value else 0
    if kind == STRING:
        return parse_number(value)
    return _NAN


# --- comparisons ---------------------------------------------------------------------

_PRIMITIVE: Final = (NULL, BOOLEAN, NUMBER, STRING)


def loose_equal(left: Any, right: Any) -> bool:
    """GitHub's ``==``: same kinds compare directly (strings ignoring case, objects
    and arrays by identity); different primitive kinds compare as numbers."""
    lk = kind_of(left)
    rk = kind_of(right)
    if lk == rk:
        if lk == STRING:
            return bool(left == right or (len(left) == len(right) and fold(left) == fold(right)))
        if lk >= ARRAY:
            return left is right
        return bool(left == right)  # NaN != NaN on its own
    if lk <= STRING and rk <= STRING:
        return to_number(left) == to_number(right)
    return False


def _order(left: Any, right: Any) -> int | None:
    """-1/0/1 for comparable values, None when ``<`` and ``>`` are both false."""
    lk = kind_of(left)
    rk = kind_of(right)
    if lk != rk:
        if lk > STRING or rk > STRING:
            return None
        left = to_number(left)
        right = to_number(right)
    elif lk == STRING:
        left = fold(left)
        right = fold(right)
    elif lk == NULL or lk > STRING:
        return None
    if left < right:
        return -1
    if left > right:
        return 1
    return 0  # equal, or NaN involved; callers only look at -1 and 1


def less(left: Any, right: Any) -> bool:
    """GitHub's ``<`` (false whenever NaN is involved or the kinds cannot be ordered)."""
    return _order(left, right) == -1


def greater(left: Any, right: Any) -> bool:
    """GitHub's ``>``."""
    return _order(left, right) == 1


# --- property access -----------------------------------------------------------------


def lookup(obj: Any, key: str, folded: str) -> Any:
    """The value under ``key`` in mapping ``obj`` ignoring case, or MISSING.

    ``folded`` is ``fold(key)``. An exact match wins over a case-insensitive one.
    """
    if type(obj) is dict:
        value = obj.get(key, MISSING)
    else:
        try:
            value = obj[key]
        except (KeyError, TypeError, IndexError):
            value = MISSING
    if value is not MISSING:
        return value
    size = len(key)
    for name, value in obj.items():
        if type(name) is not str:
            if kind_of(name) > STRING:
                continue
            name = to_string(name)
        if len(name) == size and fold(name) == folded:
            return value
    return MISSING


def member(obj: Any, key: str, folded: str, index: int | None) -> Any:
    """``obj.key`` / ``obj['key']``: missing properties and non-objects give None.

    ``folded`` is ``fold(key)`` and ``index`` is ``array_index(key)``, both
    computed once by the caller.
    """
    kind = kind_of(obj)
    if kind == OBJECT:
        value = lookup(obj, key, folded)
        return None if value is MISSING else value
    if type(obj) is FilteredArray:
        return _filtered_index(obj, key, folded, index)
    if kind == ARRAY and index is not None and index < len(obj):
        return obj[index]
    return None


def array_index(key: Any) -> int | None:
    """The array index a key stands for: a non-negative number, floored; else None."""
    number = to_number(key)
    if number != number or number < 0:
        return None
    if number > 2_147_483_647:
        return None
    return int(number)  # floor: never negative here


def _filtered_index(
    items: FilteredArray, key: str | None, folded: str | None, index: int | None
) -> FilteredArray:
    result = FilteredArray()
    append = result.append
    for item in items:
        if type(item) is dict:
            if key is not None and folded is not None:
                value = item.get(key, MISSING)
                if value is MISSING:
                    value = lookup(item, key, folded)
                if value is not MISSING:
                    append(value)
            continue
        kind = kind_of(item)
        if kind == OBJECT:
            if key is not None and folded is not None:
                value = lookup(item, key, folded)
                if value is not MISSING:
                    append(value)
        elif kind == ARRAY and index is not None and index < len(item):
            append(item[index])
    return result


def index_value(obj: Any, key: Any) -> Any:
    """``obj[key]`` with a computed key."""
    obj_kind = kind_of(obj)
    if obj_kind != OBJECT and obj_kind != ARRAY:
        return None
    text = to_string(key) if kind_of(key) <= STRING else None
    if type(obj) is FilteredArray:
        return _filtered_index(obj, text, None if text is None else fold(text), array_index(key))
    if obj_kind == OBJECT:
        if text is None:
            return None
        value = lookup(obj, text, fold(text))
        return None if value is MISSING else value
    index = array_index(key)
    if index is not None and index < len(obj):
        return obj[index]
    return None


def wildcard(obj: Any) -> FilteredArray:
    """``obj.*`` / ``obj[*]``: the values of an object or the items of an array."""
    if type(obj) is FilteredArray:
        result = FilteredArray()
        for item in obj:
            kind = kind_of(item)
            if kind == OBJECT:
                result.extend(item.values())
            elif kind == ARRAY:
                result.extend(item)
        return result
    kind = kind_of(obj)
    if kind == OBJECT:
        return FilteredArray(obj.values())
    if kind == ARRAY:
        return FilteredArray(obj)
    return FilteredArray()


# --- JSON ----------------------------------------------------------------------------

_EXTRA_ESCAPES: Final = {"\u0085": "\\u0085", "\u2028": "\\u2028", "\u2029": "\\u2029"}


def _json_string(text: str) -> str:
    encoded = json.dumps(text, ensure_ascii=False)
    if "\u0085" in encoded or "\u2028" in encoded or "\u2029" in encoded:
        for char, escape in _EXTRA_ESCAPES.items():
            encoded = encoded.replace(char, escape)
    return encoded


def _json_scalar(value: Any, kind: int) -> str:
    if kind == NULL:
        return "null"
    if kind == BOOLEAN:
        return "true" if value else "false"
    if kind == NUMBER:
        return number_to_string(value)
    if kind == STRING:
        return _json_string(str(value))
    return "{}"  # an opaque value we do not know how to traverse


class CycleError(ValueError):
    """A value contains itself."""


def to_json(value: Any) -> str:
    """Pretty-print a value as JSON with 2-space indentation, as GitHub's toJSON does.

    Numbers are printed like ``to_string`` prints them. Iterative, so arbitrarily
    deep values are fine; a value that contains itself raises CycleError.
    """
    kind = kind_of(value)
    if kind != ARRAY and kind != OBJECT:
        return _json_scalar(value, kind)
    out: list[str] = []
    # Each frame: (iterator over children, is_object, id of the container).
    stack: list[tuple[Any, bool, int]] = []
    on_path: set[int] = set()

    def open_container(container: Any, container_kind: int) -> None:
        if not container:
            out.append("[]" if container_kind == ARRAY else "{}")
            return
        ident = id(container)
        if ident in on_path:
            raise CycleError("value contains itself")
        on_path.add(ident)
        if container_kind == OBJECT:
            out.append("{")
            stack.append((iter(container.items()), True, ident))
        else:
            out.append("[")
            stack.append((iter(container), False, ident))

    open_container(value, kind)
    first = True
    while stack:
        iterator, is_object, ident = stack[-1]
        try:
            child = next(iterator)
        except StopIteration:
            stack.pop()
            on_path.discard(ident)
            out.append("\n" + "  " * len(stack) + ("}" if is_object else "]"))
            first = False
            continue
        if not first:
            out.append(",")
        out.append("\n" + "  " * len(stack))
        if is_object:
            key, child = child
            out.append(_json_string(key if type(key) is str else to_string(key)))
            out.append(": ")
        child_kind = kind_of(child)
        if child_kind in (ARRAY, OBJECT):
            open_container(child, child_kind)
            first = True
            if not child:
                first = False
        else:
            out.append(_json_scalar(child, child_kind))
            first = False
    return "".join(out)
