"""Type expressions: ``string``, ``number``, ``integer``, ``boolean``, ``any``, ``list(T)``, ``map(T)``.

Resource properties, provider configuration and stack variables declare their type
with one of these. A :class:`TypeSpec` checks a value (``check``), turns a ``-var k=v``
string into a value of the type (``coerce_cli``) and, for the stack loader, turns a YAML
node into a value of the type (:func:`conform`).

Rules, the same everywhere: booleans are never numbers; ``integer`` is a whole ``int``
(``3.0`` is a number, not an integer); ``number`` is a finite int or float; ``null`` at
the top means "no value" and is accepted for every type, but not inside a list or a map.
Where a string is expected, a plain YAML scalar that YAML reads as a number or a
boolean (``version: 1.20``, ``PORT: 8080``) is taken as the text it is written as, the
way Terraform converts primitives: YAML's typing of unquoted scalars is an accident of
syntax, not a choice of the author.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Final

from shipyard.infra._refs import single_expression
from shipyard.workflow._parse_common import scalar_string
from shipyard.workflow._schema import did_you_mean
from shipyard.workflow._yaml import MappingNode, Node, ScalarNode, SequenceNode, load_yaml
from shipyard.workflow.expressions import Template

__all__ = [
    "ANY",
    "PRIMITIVES",
    "TypeSpec",
    "conform",
    "kind_name",
    "parse_type",
    "path_text",
]

PRIMITIVES: Final = ("string", "number", "integer", "boolean", "any")
_COLLECTIONS: Final = ("list", "map")
# Deeper types are a mistake, and the limit keeps every walk far from the recursion limit.
_MAX_NESTING: Final = 16
_TOKEN = re.compile(r"\s*(?:([A-Za-z_][A-Za-z0-9_]*)|(\()|(\))|(\S))")
_INTEGER = re.compile(r"[-+]?[0-9]+\Z")
_NUMBER = re.compile(r"[-+]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][-+]?[0-9]+)?\Z")
_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_-]*\Z")

# A path inside a value: mapping keys and list indexes.
ValuePath = tuple[str | int, ...]


def kind_name(value: object) -> str:
    """How a value's kind is named in messages: ``string``, ``number``, ``boolean`` ..."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str | Template):
        return "string"
    if isinstance(value, list | tuple):
        return "list"
    if isinstance(value, dict):
        return "map"
    return type(value).__name__


def path_text(path: ValuePath) -> str:
    """``("ports", 1, "host")`` -> ``ports[1].host``; odd keys as ``["a b"]``."""
    out: list[str] = []
    for step in path:
        if isinstance(step, int):
            out.append(f"[{step}]")
        elif _IDENTIFIER.match(step):
            out.append(f".{step}" if out else step)
        else:
            out.append('["' + step.replace("\\", "\\\\").replace('"', '\\"') + '"]')
    return "".join(out)


@dataclass(frozen=True, slots=True)
class TypeSpec:
    """A parsed type expression. ``element`` is set for ``list`` and ``map``."""

    kind: str
    element: TypeSpec | None = None

    def __str__(self) -> str:
        if self.element is None:
            return self.kind
        return f"{self.kind}({self.element})"

    def check(self, value: Any, *, skip: Callable[[Any], bool] | None = None) -> str | None:
        """None when ``value`` has this type, else a message.

        The message names the place inside the value for nested problems:
        ``"[2]: expected string, got boolean"``. Values for which ``skip`` returns True
        (values not known yet, expressions) are accepted wherever they are.
        """
        if value is None:
            return None
        return self._check(value, skip, ())

    def _check(self, value: Any, skip: Callable[[Any], bool] | None, path: ValuePath) -> str | None:
        if skip is not None and skip(value):
            return None
        problem = self.mismatch(value)
        if problem is not None:
            return f"{path_text(path)}: {problem}" if path else problem
        element = self.element
        if element is None or element.kind == "any":
            return None
        items = enumerate(value) if self.kind == "list" else value.items()
        for key, item in items:
            if item is None:
                inner = (*path, key)
                return f"{path_text(inner)}: expected {element}, got null"
            problem = element._check(item, skip, (*path, key))
            if problem is not None:
                return problem
        return None

    def mismatch(self, value: Any) -> str | None:
        """Whether ``value`` itself (not its elements) is of this kind; a message if not."""
        kind = self.kind
        if kind == "any":
            return None
        if kind == "string":
            ok = isinstance(value, str)
        elif kind == "boolean":
            ok = isinstance(value, bool)
        elif kind == "integer":
            ok = isinstance(value, int) and not isinstance(value, bool)
            if not ok and isinstance(value, float):
                return f"expected integer, got number {value!r}"
        elif kind == "number":
            ok = isinstance(value, int | float) and not isinstance(value, bool)
            if ok and isinstance(value, float) and not math.isfinite(value):
                return f"expected a finite number, got {value!r}"
        elif kind == "list":
            ok = isinstance(value, list | tuple)
        else:
            ok = isinstance(value, dict) and all(isinstance(k, str) for k in value)
        if ok:
            return None
        return f"expected {self}, got {kind_name(value)}"

    def coerce_cli(self, text: str) -> Any:
        """The value a ``-var name=TEXT`` gives a variable of this type.

        ``string`` takes the text as it is; ``integer``, ``number`` and ``boolean``
        (``true``/``false``) parse it; ``list(T)``/``map(T)`` read it as a YAML/JSON
        flow collection (``[a, b]``, ``{"k": 1}``); ``any`` reads a flow collection, a
        number or ``true``/``false`` as such and anything else as a string.
        Raises ValueError with a message.
        """
        kind = self.kind
        if kind == "string":
            return text
        stripped = text.strip()
        if kind == "integer":
            if _INTEGER.match(stripped):
                return int(stripped)
            raise ValueError(f"expected integer, got {text!r}")
        if kind == "number":
            number = _number(stripped)
            if number is None:
                raise ValueError(f"expected number, got {text!r}")
            return number
        if kind == "boolean":
            lowered = stripped.lower()
            if lowered in ("true", "false"):
                return lowered == "true"
            raise ValueError(f"expected boolean (true or false), got {text!r}")
        if kind == "any" and not stripped.startswith(("[", "{")):
            number = _number(stripped)
            if number is not None:
                return number
            if stripped in ("true", "false"):
                return stripped == "true"
            return text
        return self._coerce_collection(text)

    def _coerce_collection(self, text: str) -> Any:
        if not text.lstrip().startswith(("[", "{")):
            shown = "[a, b]" if self.kind == "list" else "{key: value}"
            raise ValueError(f"expected {self} written as {shown}, got {text!r}")
        doc = load_yaml(text, "-var")
        if doc.errors or doc.root is None:
            first = doc.errors[0] if doc.errors else None
            where = f" (column {first.location.col})" if first and first.location else ""
            message = first.message if first else "no value"
            raise ValueError(f"cannot read {text!r} as {self}: {message}{where}")
        errors: list[tuple[Node, str]] = []
        value = conform(self, doc.root, (), errors, _plain_string)
        if errors:
            message = errors[0][1]
            raise ValueError(f"cannot read {text!r} as {self}: {message}")
        return value


def _plain_string(node: ScalarNode, path: ValuePath) -> Any:
    return node.value


def _number(text: str) -> int | float | None:
    if _INTEGER.match(text):
        return int(text)
    if _NUMBER.match(text):
        value = float(text)
        return value if math.isfinite(value) else None
    return None


ANY: Final = TypeSpec("any")


@lru_cache(maxsize=1024)
def parse_type(text: str) -> TypeSpec:
    """Parse a type expression; raises ValueError naming what is wrong."""
    if not isinstance(text, str):
        raise ValueError(f"a type must be a string, got {kind_name(text)}")
    tokens: list[tuple[str, int]] = []
    pos = 0
    while pos < len(text):
        match = _TOKEN.match(text, pos)
        if match is None:  # only trailing whitespace is left
            break
        tokens.append((match.group(match.lastindex or 0), match.start(match.lastindex or 0)))
        pos = match.end()
    if not tokens:
        raise ValueError(
            "a type cannot be empty (use string, number, integer, boolean, any, list(T) or map(T))"
        )
    parser = _TypeParser(text, tokens)
    spec = parser.parse(0)
    if parser.pos < len(tokens):
        token, at = tokens[parser.pos]
        raise ValueError(f"invalid type {text!r}: unexpected {token!r} at column {at + 1}")
    return spec


class _TypeParser:
    __slots__ = ("pos", "text", "tokens")

    def __init__(self, text: str, tokens: list[tuple[str, int]]) -> None:
        self.text = text
        self.tokens = tokens
        self.pos = 0

    def _next(self) -> tuple[str, int] | None:
        if self.pos >= len(self.tokens):
            return None
        token = self.tokens[self.pos]
        self.pos += 1
        return token

    def parse(self, depth: int) -> TypeSpec:
        if depth > _MAX_NESTING:
            raise ValueError(f"type {self.text!r} is nested too deeply (at most {_MAX_NESTING})")
        token = self._next()
        if token is None:
            raise ValueError(f"invalid type {self.text!r}: expected a type at the end")
        name, at = token
        if name in PRIMITIVES:
            return TypeSpec(name)
        if name in _COLLECTIONS:
            opener = self._next()
            if opener is None or opener[0] != "(":
                raise ValueError(
                    f"invalid type {self.text!r}: {name} needs an element type, as in {name}(string)"
                )
            element = self.parse(depth + 1)
            closer = self._next()
            if closer is None or closer[0] != ")":
                raise ValueError(f"invalid type {self.text!r}: expected ')' to close {name}(")
            return TypeSpec(name, element)
        if not name[0].isalpha() and name[0] != "_":
            raise ValueError(f"invalid type {self.text!r}: unexpected {name!r} at column {at + 1}")
        hint = did_you_mean(name, (*PRIMITIVES, *_COLLECTIONS))
        raise ValueError(
            f"unknown type '{name}'{hint}; types are string, number, integer, boolean, any,"
            " list(T) and map(T)"
        )


StringHook = Callable[[ScalarNode, ValuePath], Any]


def conform(
    spec: TypeSpec,
    node: Node,
    path: ValuePath,
    errors: list[tuple[Node, str]],
    strings: StringHook,
    *,
    visit: Callable[[ValuePath, Node], None] | None = None,
) -> Any:
    """The value of a YAML node as a value of ``spec``, with the problems found.

    ``strings`` turns each string scalar into its value (the loader compiles
    ``${{ }}`` into Templates). Where the type wants a string, a plain scalar YAML reads
    as a number or boolean gives the text it is written as. A Template that is one whole
    ``${{ }}`` may yield any type and is not checked; one with text around it is a
    string. Problems are appended to ``errors`` as (node, message) with the path inside
    the value in front (``ports[1].host: expected string, got boolean``); ``visit``
    sees every (path, node).
    """
    if visit is not None:
        visit(path, node)
    if isinstance(node, ScalarNode):
        raw = node.value
        if raw is None:
            return None
        if isinstance(raw, str):
            value = strings(node, path)
            if value is None:  # a broken expression, already reported
                return None
        elif spec.kind == "string" and node.style == "":
            return scalar_string(node)
        else:
            value = raw
        problem: str | None
        if isinstance(value, Template):
            if spec.kind in ("string", "any") or single_expression(value) is not None:
                return value
            problem = f"expected {spec}, got string"
        else:
            problem = spec.mismatch(value)
        if problem is not None:
            errors.append((node, f"{path_text(path)}: {problem}" if path else problem))
        return value
    if spec.kind not in ("any", "list", "map"):
        got = "list" if isinstance(node, SequenceNode) else "map"
        message = f"expected {spec}, got {got}"
        errors.append((node, f"{path_text(path)}: {message}" if path else message))
        return None
    element = spec.element if spec.element is not None else ANY
    if isinstance(node, SequenceNode):
        if spec.kind == "map":
            message = f"expected {spec}, got list"
            errors.append((node, f"{path_text(path)}: {message}" if path else message))
            return None
        return [
            _element(element, item, (*path, i), errors, strings, visit)
            for i, item in enumerate(node.items)
        ]
    assert isinstance(node, MappingNode)
    if spec.kind == "list":
        message = f"expected {spec}, got map"
        errors.append((node, f"{path_text(path)}: {message}" if path else message))
        return None
    out: dict[str, Any] = {}
    for key, item in node.items:
        name = key.text
        if "${{" in name:
            message = "expressions are not allowed in keys"
            errors.append((key, f"{path_text(path)}: {message}" if path else message))
            continue
        out[name] = _element(element, item, (*path, name), errors, strings, visit)
    return out


def _element(
    spec: TypeSpec,
    node: Node,
    path: ValuePath,
    errors: list[tuple[Node, str]],
    strings: StringHook,
    visit: Callable[[ValuePath, Node], None] | None,
) -> Any:
    if isinstance(node, ScalarNode) and node.value is None and spec.kind != "any":
        errors.append((node, f"{path_text(path)}: expected {spec}, got null"))
        return None
    return conform(spec, node, path, errors, strings, visit=visit)
