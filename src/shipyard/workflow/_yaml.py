"""A YAML loader that keeps where every node came from.

Workflow files are read the way GitHub reads them: one document, YAML 1.2 core-schema
scalars (only ``true``/``false`` are booleans, so ``on:`` and ``yes`` stay strings),
anchors and aliases allowed, merge keys (``<<:``) and duplicate keys refused.

libyaml (through PyYAML's C binding) produces the event stream; the tree is built here
without recursion, so any input — binary junk, absurd nesting, alias bombs — yields
either a tree or :class:`~shipyard.errors.LocatedError` values, never another exception.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

import yaml  # type: ignore[import-untyped, unused-ignore]

from shipyard.errors import LocatedError, Location
from shipyard.workflow._yaml_source import (
    SourceText,
    byte_offset_position,
    clean_message,
    decode_source,
)

try:  # libyaml is several times faster; PyYAML built without it still works
    from yaml.cyaml import CParser as _Parser  # type: ignore[import-untyped, attr-defined, unused-ignore]
except ImportError:  # pragma: no cover - depends on how PyYAML was built
    from yaml.parser import Parser as _PyParser  # type: ignore[import-untyped, unused-ignore]
    from yaml.reader import Reader as _PyReader  # type: ignore[import-untyped, unused-ignore]
    from yaml.scanner import Scanner as _PyScanner  # type: ignore[import-untyped, unused-ignore]

    class _Parser(_PyReader, _PyScanner, _PyParser):  # type: ignore[no-redef, misc, unused-ignore]
        def __init__(self, stream: str) -> None:
            _PyReader.__init__(self, stream)
            _PyScanner.__init__(self)
            _PyParser.__init__(self)

        def dispose(self) -> None:
            pass


__all__ = [
    "MAX_DEPTH",
    "MAX_NODES",
    "MappingNode",
    "Node",
    "ScalarNode",
    "SequenceNode",
    "SourceText",
    "YamlDocument",
    "decode_source",
    "load_yaml",
]

# Workflows nest a dozen levels at most; the limit keeps every walker far from the
# interpreter's recursion limit, whatever the input.
MAX_DEPTH = 64
# Aliases may make a small file expand to a huge tree ("billion laughs").
MAX_NODES = 200_000


class ScalarNode:
    """A scalar with its resolved value (``str``, ``int``, ``float``, ``bool`` or ``None``).

    ``text`` is the scalar exactly as its characters read (after YAML unquoting), so a
    number keeps the form it was written in. ``style`` is ``""`` for plain scalars,
    otherwise one of ``'`` ``"`` ``|`` ``>``.
    """

    __slots__ = ("col", "end_col", "end_line", "line", "style", "text", "value")

    kind = "scalar"
    size = 1
    height = 1

    def __init__(
        self, text: str, value: Any, style: str, line: int, col: int, end_line: int, end_col: int
    ) -> None:
        self.text = text
        self.value = value
        self.style = style
        self.line = line
        self.col = col
        self.end_line = end_line
        self.end_col = end_col

    def __repr__(self) -> str:
        return f"ScalarNode({self.value!r} @{self.line}:{self.col})"


class MappingNode:
    """A mapping; ``items`` keeps the source order. Keys are always scalars."""

    __slots__ = ("col", "height", "items", "line", "size")

    kind = "mapping"

    def __init__(self, line: int, col: int) -> None:
        self.items: list[tuple[ScalarNode, Node]] = []
        self.line = line
        self.col = col
        self.size = 1
        self.height = 1

    def __repr__(self) -> str:
        return f"MappingNode({len(self.items)} items @{self.line}:{self.col})"


class SequenceNode:
    """A sequence."""

    __slots__ = ("col", "height", "items", "line", "size")

    kind = "sequence"

    def __init__(self, line: int, col: int) -> None:
        self.items: list[Node] = []
        self.line = line
        self.col = col
        self.size = 1
        self.height = 1

    def __repr__(self) -> str:
        return f"SequenceNode({len(self.items)} items @{self.line}:{self.col})"


Node = ScalarNode | MappingNode | SequenceNode


@dataclass(slots=True)
class YamlDocument:
    """The result of :func:`load_yaml`: the root node (``None`` for an empty file) and errors.

    When ``fatal`` is set the YAML could not be read at all and ``root`` is ``None``.
    """

    root: Node | None
    source: SourceText
    errors: list[LocatedError] = field(default_factory=list)
    fatal: bool = False


_BOOLS = {
    "true": True, "True": True, "TRUE": True,
    "false": False, "False": False, "FALSE": False,
}  # fmt: skip
_NULLS = frozenset(("", "~", "null", "Null", "NULL"))
_INT_RE = re.compile(r"[-+]?[0-9]+\Z")
_OCT_RE = re.compile(r"0o[0-7]+\Z")
_HEX_RE = re.compile(r"0x[0-9a-fA-F]+\Z")
_FLOAT_RE = re.compile(r"[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?\Z")
_SPECIAL_FLOATS = {
    ".inf": float("inf"), ".Inf": float("inf"), ".INF": float("inf"),
    "+.inf": float("inf"), "+.Inf": float("inf"), "+.INF": float("inf"),
    "-.inf": float("-inf"), "-.Inf": float("-inf"), "-.INF": float("-inf"),
    ".nan": float("nan"), ".NaN": float("nan"), ".NAN": float("nan"),
}  # fmt: skip
_NUMBER_START = frozenset("0123456789+-.")
# Python refuses to convert longer digit strings; such numbers stay text.
_MAX_DIGITS = 1000


def _resolve_plain(text: str) -> Any:
    """YAML 1.2 core schema resolution of an untagged plain scalar."""
    if text in _NULLS:
        return None
    b = _BOOLS.get(text)
    if b is not None:
        return b
    if text[0] in _NUMBER_START and len(text) <= _MAX_DIGITS:
        if _INT_RE.match(text):
            return int(text, 10)
        if _FLOAT_RE.match(text):
            return float(text)
        if _OCT_RE.match(text):
            return int(text[2:], 8)
        if _HEX_RE.match(text):
            return int(text[2:], 16)
        special = _SPECIAL_FLOATS.get(text)
        if special is not None:
            return special
    return text


_TAG_PREFIX = "tag:yaml.org,2002:"


def _resolve_tagged(text: str, tag: str) -> tuple[Any, str | None]:
    """Apply an explicit tag; returns (value, error message or None)."""
    name = tag[len(_TAG_PREFIX) :] if tag.startswith(_TAG_PREFIX) else None
    if tag == "!" or name == "str":
        return text, None
    if name in ("int", "float", "bool", "null"):
        value = _resolve_plain(text) if text else None
        is_bool = isinstance(value, bool)
        if (name == "null" and value is None) or (name == "bool" and is_bool):
            return value, None
        if name == "int" and isinstance(value, int) and not is_bool:
            return value, None
        if name == "float" and isinstance(value, int | float) and not is_bool:
            return float(value), None
        return text, f"'{text}' is not a valid !!{name}"
    shown = "!!" + name if name is not None else tag
    return text, f"unsupported YAML tag '{shown}'"


_MESSAGE_REWRITES = {
    "mapping values are not allowed in this context": "mapping values are not allowed here",
    "found unexpected end of stream": "unexpected end of file",
    "found character that cannot start any token": "found a character that cannot start any token",
    "exceeded maximum nesting depth": f"document is nested too deeply (more than {MAX_DEPTH} levels)",
}


def _clean_problem(problem: str | None, context: str | None) -> str:
    text = (problem or "invalid YAML").strip()
    if text == "found unexpected end of stream" and context and "quoted scalar" in context:
        return "unterminated quoted string"
    if text.startswith("found undefined tag handle"):
        return "undefined YAML tag handle"
    text = _MESSAGE_REWRITES.get(text, text)
    if context and text.startswith("did not find expected") and "while parsing" in context:
        text = f"{text} {context.replace('while parsing', 'in')}"
    return text[:1].lower() + text[1:]


def load_yaml(data: str | bytes, file: str) -> YamlDocument:
    """Read one YAML document, keeping positions; never raises for bad input."""
    text, decode_error = decode_source(data, file)
    if text is None:
        assert decode_error is not None
        return YamlDocument(None, SourceText(""), [decode_error], fatal=True)
    source = SourceText(text)
    builder = _Builder(file, source)
    try:
        builder.run()
    except _Abort:
        pass
    except yaml.MarkedYAMLError as err:
        mark = err.problem_mark or err.context_mark
        if (
            err.problem == "found unexpected end of stream"
            and err.context
            and "quoted scalar" in err.context
            and err.context_mark is not None
        ):
            mark = err.context_mark
        line, col = (mark.line + 1, mark.column + 1) if mark is not None else (1, 1)
        message = _clean_problem(err.problem, err.context)
        if text[source.index(line, col) : source.index(line, col) + 1] == "\t":
            message = "tabs cannot be used for indentation"
        builder.errors.append(LocatedError(clean_message(message), Location(file, line, col)))
        builder.fatal = True
    except yaml.reader.ReaderError as err:
        line, col = byte_offset_position(text, err.position)
        char = err.character
        code = ord(char) if isinstance(char, str) and len(char) == 1 else char
        shown = f"character U+{code:04X}" if isinstance(code, int) else "a character"
        builder.errors.append(
            LocatedError(f"{shown} is not allowed in YAML", Location(file, line, col))
        )
        builder.fatal = True
    except yaml.YAMLError as err:
        builder.errors.append(
            LocatedError(f"invalid YAML: {err}".splitlines()[0], Location(file, 1, 1))
        )
        builder.fatal = True
    except UnicodeEncodeError as err:
        # A str holding lone surrogates cannot be handed to libyaml as UTF-8.
        line, col = source.position(err.start)
        shown = f"character U+{ord(err.object[err.start]):04X}"
        builder.errors.append(
            LocatedError(f"{shown} is not allowed in YAML", Location(file, line, col))
        )
        builder.fatal = True
    root = None if builder.fatal else builder.root
    builder.errors.sort(key=lambda e: (e.location.line, e.location.col) if e.location else (0, 0))
    return YamlDocument(root, source, builder.errors, builder.fatal)


class _Abort(Exception):
    """Stops building after an error that leaves nothing sensible to build."""


class _Builder:
    """Turns libyaml's event stream into nodes, iteratively."""

    def __init__(self, file: str, source: SourceText) -> None:
        self.file = file
        self.source = source
        self.errors: list[LocatedError] = []
        self.fatal = False
        self.root: Node | None = None

    def _error(self, message: str, line: int, col: int, *, fatal: bool = False) -> None:
        self.errors.append(LocatedError(clean_message(message), Location(self.file, line, col)))
        if fatal:
            self.fatal = True
            raise _Abort

    def run(self) -> None:
        parser = _Parser(self.source.text)
        try:
            self._build(parser)
        finally:
            parser.dispose()

    def _build(self, parser: Any) -> None:
        anchors: dict[str, Node] = {}
        # Each open collection, with the key awaiting its value (mappings) and the keys seen.
        stack: list[tuple[MappingNode | SequenceNode, list[Any], str | None]] = []
        documents = 0
        get_event = parser.get_event
        ScalarEvent = yaml.ScalarEvent
        AliasEvent = yaml.AliasEvent
        MappingStartEvent = yaml.MappingStartEvent
        SequenceStartEvent = yaml.SequenceStartEvent
        while True:
            event = get_event()
            if event is None:
                break
            cls = type(event)
            node: Node
            if cls is ScalarEvent:
                mark = event.start_mark
                end = event.end_mark
                text = event.value
                style = event.style or ""
                tag = event.tag
                if tag is None:
                    value = _resolve_plain(text) if style == "" else text
                else:
                    value, problem = _resolve_tagged(text, tag)
                    if problem:
                        self._error(problem, mark.line + 1, mark.column + 1)
                node = ScalarNode(
                    text, value, style, mark.line + 1, mark.column + 1, end.line + 1, end.column + 1
                )
                if event.anchor is not None:
                    anchors[event.anchor] = node
            elif cls is AliasEvent:
                target = anchors.get(event.anchor)
                if target is None:
                    mark = event.start_mark
                    self._error(
                        f"unknown alias '{event.anchor}'",
                        mark.line + 1,
                        mark.column + 1,
                        fatal=True,
                    )
                    return
                node = target
            elif cls is MappingStartEvent or cls is SequenceStartEvent:
                mark = event.start_mark
                if len(stack) >= MAX_DEPTH:
                    self._error(
                        f"document is nested too deeply (more than {MAX_DEPTH} levels)",
                        mark.line + 1,
                        mark.column + 1,
                        fatal=True,
                    )
                tag = event.tag
                if tag is not None and tag not in ("!", _TAG_PREFIX + "map", _TAG_PREFIX + "seq"):
                    shown = "!!" + tag[len(_TAG_PREFIX) :] if tag.startswith(_TAG_PREFIX) else tag
                    self._error(f"unsupported YAML tag '{shown}'", mark.line + 1, mark.column + 1)
                coll: MappingNode | SequenceNode
                if cls is MappingStartEvent:
                    coll = MappingNode(mark.line + 1, mark.column + 1)
                    stack.append((coll, [None, set()], event.anchor))
                else:
                    coll = SequenceNode(mark.line + 1, mark.column + 1)
                    stack.append((coll, [], event.anchor))
                continue
            elif cls is yaml.MappingEndEvent or cls is yaml.SequenceEndEvent:
                coll, _, anchor = stack.pop()
                node = coll
                # Registered only now, so an alias can never point into its own anchor.
                if anchor is not None:
                    anchors[anchor] = node
            elif cls is yaml.DocumentStartEvent:
                documents += 1
                if documents > 1:
                    mark = event.start_mark
                    self._error(
                        "expected a single YAML document, found another one",
                        mark.line + 1,
                        mark.column + 1,
                        fatal=True,
                    )
                continue
            else:
                continue
            self._attach(stack, node)

    def _attach(
        self,
        stack: list[tuple[MappingNode | SequenceNode, list[Any], str | None]],
        node: Node,
    ) -> None:
        if not stack:
            self.root = node
            return
        parent, state, _ = stack[-1]
        if len(stack) + node.height > MAX_DEPTH + 1:
            self._error(
                f"document is nested too deeply (more than {MAX_DEPTH} levels)",
                node.line,
                node.col,
                fatal=True,
            )
        parent.size += node.size
        if parent.size > MAX_NODES:
            self._error(
                f"document is too large once aliases are expanded (more than {MAX_NODES} nodes)",
                node.line,
                node.col,
                fatal=True,
            )
        if node.height + 1 > parent.height:
            parent.height = node.height + 1
        if isinstance(parent, SequenceNode):
            parent.items.append(node)
            return
        key = state[0]
        if key is None:
            state[0] = node if isinstance(node, ScalarNode) else _BAD_KEY
            if not isinstance(node, ScalarNode):
                self._error("mapping keys must be strings", node.line, node.col)
            return
        state[0] = None
        if key is _BAD_KEY:
            return
        seen: set[str] = state[1]
        name = key.text
        if key.style == "" and name == "<<":
            self._error("merge keys ('<<') are not supported", key.line, key.col)
            return
        if name in seen:
            self._error(f"duplicate key '{name}'", key.line, key.col)
            return
        seen.add(name)
        parent.items.append((key, node))


_BAD_KEY: Any = ScalarNode("", None, "", 0, 0, 0, 0)
