"""The checking reader shared by the workflow and action parsers.

A :class:`Reader` walks YAML nodes, turns them into model values and records every
problem as a located error instead of stopping at the first one.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from functools import lru_cache

from shipyard.errors import LocatedError, Location
from shipyard.workflow._model import Condition, Tree, Value
from shipyard.workflow._schema import (
    AVAILABILITY,
    KNOWN_CONTEXTS,
    KNOWN_SHELLS,
    SPECIAL_FUNCTIONS,
    did_you_mean,
    kind_of,
)
from shipyard.workflow._yaml import MappingNode, Node, ScalarNode, SequenceNode, SourceText
from shipyard.workflow._yaml_source import clean_message
from shipyard.workflow.expressions import (
    Expression,
    ExpressionError,
    Template,
    parse_condition,
    parse_template,
)

Entries = dict[str, tuple[ScalarNode, Node]]

_FUNCTION_NAMES = {
    "hashfiles": "hashFiles",
    "success": "success",
    "failure": "failure",
    "cancelled": "cancelled",
    "always": "always",
}


@lru_cache(maxsize=16384)
def _compile_template(text: str) -> Template | ExpressionError:
    # Workflows repeat the same strings (runner labels, action refs) across files.
    try:
        return parse_template(text)
    except ExpressionError as err:
        return err


@lru_cache(maxsize=4096)
def _compile_condition(text: str) -> Expression | ExpressionError:
    try:
        return parse_condition(text)
    except ExpressionError as err:
        return err


def _name_offset(source: str, start: int, name: str) -> int:
    """Best offset of a context name inside an expression starting at ``start``."""
    found = re.search(rf"(?<![\w.'-]){re.escape(name)}(?![\w-])", source[start:], re.IGNORECASE)
    return start + found.start() if found else start


def node_kind(node: Node) -> str:
    if isinstance(node, ScalarNode):
        return kind_of(node.value)
    return "a mapping" if isinstance(node, MappingNode) else "a list"


def scalar_string(node: ScalarNode) -> str:
    """A scalar's string form: numbers as written, booleans lower-case, null empty."""
    value = node.value
    if value is None:
        return ""
    if value is True:
        return "true"
    if value is False:
        return "false"
    return node.text


class Reader:
    """Walks the YAML of one file, collecting located errors."""

    def __init__(self, file: str, source: SourceText) -> None:
        self.file = file
        self.source = source
        self.errors: list[LocatedError] = []

    # -- errors and positions -------------------------------------------------

    def loc(self, node: Node) -> Location:
        return Location(self.file, node.line, node.col)

    def error(self, node: Node, message: str) -> None:
        self.errors.append(LocatedError(clean_message(message), self.loc(node)))

    def error_at(self, line: int, col: int, message: str) -> None:
        self.errors.append(LocatedError(clean_message(message), Location(self.file, line, col)))

    # -- shapes ----------------------------------------------------------------

    def mapping(self, node: Node) -> MappingNode | None:
        if isinstance(node, MappingNode):
            return node
        self.error(node, f"expected a mapping, got {node_kind(node)}")
        return None

    def sequence(self, node: Node) -> SequenceNode | None:
        if isinstance(node, SequenceNode):
            return node
        self.error(node, f"expected a list, got {node_kind(node)}")
        return None

    def entries(self, node: MappingNode, allowed: Sequence[str], where: str = "") -> Entries:
        """The mapping's entries by key; unknown keys are reported (with a suggestion)."""
        out: Entries = {}
        for key, value in node.items:
            name = key.text
            if name not in allowed:
                self.error(key, f"unknown key '{name}'{where}{did_you_mean(name, allowed)}")
                continue
            out[name] = (key, value)
        return out

    def require(self, entries: Entries, name: str, at: Node) -> bool:
        if name in entries:
            return True
        self.error(at, f"'{name}' is required")
        return False

    # -- scalars ---------------------------------------------------------------

    def text(self, node: Node) -> str | None:
        """A scalar as a string (numbers and booleans as their string form)."""
        if isinstance(node, ScalarNode):
            return scalar_string(node)
        self.error(node, f"expected a string, got {node_kind(node)}")
        return None

    def literal(self, node: Node, what: str) -> str | None:
        """A string where expressions are not allowed (ids, ``uses``, ``shell``)."""
        text = self.text(node)
        if text is not None and "${{" in text:
            self.error(node, f"expressions are not allowed in {what}")
            return None
        return text

    def boolean(self, node: Node) -> bool | None:
        if isinstance(node, ScalarNode) and isinstance(node.value, bool):
            return node.value
        self.error(node, f"expected a boolean, got {node_kind(node)}")
        return None

    def string_list(self, node: Node, what: str) -> list[tuple[ScalarNode, str]]:
        """A string or a list of strings (``needs``, filters, labels)."""
        items = node.items if isinstance(node, SequenceNode) else [node]
        out: list[tuple[ScalarNode, str]] = []
        if isinstance(node, MappingNode):
            self.error(node, f"{what} must be a string or a list of strings, got a mapping")
            return out
        for item in items:
            if not isinstance(item, ScalarNode) or item.value is None:
                self.error(item, f"expected a string, got {node_kind(item)}")
                continue
            out.append((item, scalar_string(item)))
        return out

    # -- expressions -----------------------------------------------------------

    def _expression_error(self, node: ScalarNode, err: ExpressionError) -> None:
        line, col = self.source.locate_in_scalar(node, err.offset)
        self.error_at(line, col, err.message)

    def _check_names(
        self, node: ScalarNode, source: str, start: int, expr: Expression, key: str
    ) -> None:
        contexts, functions = AVAILABILITY[key]
        for name in sorted(expr.contexts()):
            if name in contexts:
                continue
            line, col = self.source.locate_in_scalar(node, _name_offset(source, start, name))
            if name not in KNOWN_CONTEXTS:
                hint = did_you_mean(name, sorted(KNOWN_CONTEXTS))
                self.error_at(line, col, f"unknown context '{name}'{hint}")
            else:
                self.error_at(line, col, f"context '{name}' is not available in {key}")
        for fn in sorted(expr.functions()):
            if fn in SPECIAL_FUNCTIONS and fn not in functions:
                shown = _FUNCTION_NAMES[fn]
                line, col = self.source.locate_in_scalar(node, _name_offset(source, start, shown))
                self.error_at(line, col, f"function '{shown}' is not available in {key}")

    def value(self, node: Node, key: str) -> Value | None:
        """A scalar that may hold ``${{ }}``, checked against the contexts ``key`` allows."""
        if not isinstance(node, ScalarNode):
            self.error(node, f"expected a string, got {node_kind(node)}")
            return None
        return self.scalar_value(node, key)

    def scalar_value(self, node: ScalarNode, key: str) -> Value | None:
        text = scalar_string(node)
        compiled = _compile_template(text)
        if isinstance(compiled, ExpressionError):
            self._expression_error(node, compiled)
            return None
        for offset, expr in compiled.expressions:
            self._check_names(node, text, offset, expr, key)
        return Value(compiled, self.loc(node))

    def condition(self, node: Node, key: str) -> Condition | None:
        if not isinstance(node, ScalarNode) or node.value is None:
            self.error(node, f"expected a string, got {node_kind(node)}")
            return None
        text = scalar_string(node)
        compiled = _compile_condition(text)
        if isinstance(compiled, ExpressionError):
            self._expression_error(node, compiled)
            return None
        self._check_names(node, text, 0, compiled, key)
        return Condition(compiled, text, self.loc(node))

    def expression_only(self, node: ScalarNode, key: str) -> Value | None:
        """A string that must be a single ``${{ }}`` (where a literal has another type)."""
        value = self.scalar_value(node, key)
        if value is not None and value.template.is_literal:
            return None
        return value

    def bool_or_expr(self, node: Node, key: str) -> bool | Value | None:
        if isinstance(node, ScalarNode):
            if isinstance(node.value, bool):
                return node.value
            if isinstance(node.value, str) and "${{" in node.value:
                return self.expression_only(node, key)
        self.error(node, f"expected a boolean or an expression, got {node_kind(node)}")
        return None

    def number_or_expr(
        self, node: Node, key: str, *, integer: bool = False
    ) -> int | float | Value | None:
        if isinstance(node, ScalarNode):
            value = node.value
            if isinstance(value, int | float) and not isinstance(value, bool):
                if integer and not float(value).is_integer():
                    self.error(node, f"expected a whole number, got {node.text}")
                    return None
                if not value > 0 or value == float("inf"):
                    self.error(node, f"expected a positive number, got {node.text}")
                    return None
                return int(value) if integer else value
            if isinstance(value, str) and "${{" in value:
                return self.expression_only(node, key)
        self.error(node, f"expected a number or an expression, got {node_kind(node)}")
        return None

    def env(self, node: Node, key: str) -> dict[str, Value]:
        """An ``env:`` mapping of names to strings (numbers and booleans as written)."""
        out: dict[str, Value] = {}
        mapping = self.mapping(node)
        if mapping is None:
            return out
        for name_node, value_node in mapping.items:
            name = name_node.text
            if not name or "=" in name or "\0" in name:
                self.error(name_node, f"invalid environment variable name '{name}'")
                continue
            if not isinstance(value_node, ScalarNode):
                self.error(
                    value_node,
                    f"expected a string, number or boolean, got {node_kind(value_node)}",
                )
                continue
            value = self.scalar_value(value_node, key)
            if value is not None:
                out[name] = value
        return out

    def tree(self, node: Node, key: str) -> Tree:
        """JSON-like data whose strings are Values (matrix, runs-on); numbers stay numbers."""
        if isinstance(node, ScalarNode):
            if isinstance(node.value, str):
                return self.scalar_value(node, key)
            return node.value  # type: ignore[no-any-return]
        if isinstance(node, SequenceNode):
            return [self.tree(item, key) for item in node.items]
        return {k.text: self.tree(v, key) for k, v in node.items}

    def shell(self, node: Node) -> str | None:
        shell = self.literal(node, "'shell'")
        if shell is None:
            return None
        if shell.strip() not in KNOWN_SHELLS and "{0}" not in shell:
            self.error(
                node,
                f"unknown shell '{shell}'{did_you_mean(shell, sorted(KNOWN_SHELLS))};"
                " a custom shell must contain '{0}'",
            )
            return None
        return shell
