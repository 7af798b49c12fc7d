"""Value trees of stack files: YAML nodes to values, ``${{ }}`` compiled and checked.

A :class:`Values` reads the values of one declaration: strings with ``${{`` become
Templates whose expressions are checked against the stack's :class:`Scope` at the
:class:`Site` where they are written; every reference found is kept (with its exact
``file:line:col``) and every path inside the declaration gets its location.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from shipyard.errors import Location
from shipyard.infra._model import Path_, Reference
from shipyard.infra._refs import Found, Scope, Site, analyze
from shipyard.infra._types import ANY, TypeSpec, ValuePath, conform
from shipyard.workflow._parse_common import Reader
from shipyard.workflow._yaml import Node, ScalarNode
from shipyard.workflow.expressions import (
    Expression,
    ExpressionError,
    Template,
    parse,
    parse_template,
)

__all__ = ["Values", "compile_expression", "compile_template"]


@lru_cache(maxsize=16384)
def compile_template(text: str) -> Template | ExpressionError:
    # Stacks repeat strings (count-expanded names, the same reference in many places).
    try:
        return parse_template(text)
    except ExpressionError as err:
        return err


@lru_cache(maxsize=1024)
def compile_expression(text: str) -> Expression | ExpressionError:
    try:
        return parse(text)
    except ExpressionError as err:
        return err


class Values:
    """Reads the value trees of one declaration written in one file."""

    __slots__ = ("literal", "locations", "prefix", "reader", "references", "scope", "site", "verbatim")

    def __init__(
        self,
        reader: Reader,
        scope: Scope,
        site: Site,
        locations: dict[Path_, Location],
        references: list[Reference],
    ) -> None:
        self.reader = reader
        self.scope = scope
        self.site = site
        self.locations = locations
        self.references = references
        self.prefix: Path_ = ()
        self.literal: str | None = None
        self.verbatim = False

    def locate(self, node: ScalarNode, offset: int) -> Location:
        """Where character ``offset`` of a scalar's value is written."""
        line, col = self.position(node, offset)
        return Location(self.reader.file, line, col)

    def position(self, node: ScalarNode, offset: int) -> tuple[int, int]:
        if node.line == node.end_line and node.style in ("", "'", '"'):
            # One line, written as it reads (no escapes): the common case, found directly
            # rather than by walking the scalar character by character.
            source = self.reader.source
            start = source.index(node.line, node.col)
            raw = source.text[start : source.index(node.end_line, node.end_col)]
            if node.style:
                raw = raw[1:-1]
                start += 1
            if raw == node.text and 0 <= offset <= len(raw):
                return source.position(start + offset)
        return self.reader.source.locate_in_scalar(node, offset)

    def tree(
        self,
        node: Node,
        spec: TypeSpec = ANY,
        *,
        prefix: Path_ = (),
        path: ValuePath = (),
        what: str = "",
        site: Site | None = None,
        literal: str | None = None,
        verbatim: bool = False,
    ) -> Any:
        """The value of ``node`` as ``spec``; problems reported as ``{what} {path}: ...``.

        ``path`` is the value's path as messages name it (``("port",)``); its place in
        the declaration, for locations, is ``prefix + path``. With ``literal`` set
        (``"a variable's default"``), expressions are refused there; ``verbatim`` strings
        are kept as written, ``${{ }}`` and all.
        """
        errors: list[tuple[Node, str]] = []
        self.prefix = prefix
        self.literal = literal
        self.verbatim = verbatim
        saved = self.site
        if site is not None:
            self.site = site
        try:
            value = conform(spec, node, path, errors, self.string, visit=self._visit)
        finally:
            self.site = saved
        for at, message in errors:
            self.reader.error(at, f"{what} {message}" if what else message)
        return value

    def _visit(self, path: ValuePath, node: Node) -> None:
        self.locations[self.prefix + path] = self.reader.loc(node)

    def string(self, node: ScalarNode, path: ValuePath) -> Any:
        """A string scalar's value: itself, or a checked Template (None if it is broken)."""
        text: str = node.value
        if "${{" not in text or self.verbatim:
            return text
        if self.literal is not None:
            self.reader.error(node, f"expressions are not allowed in {self.literal}")
            return None
        return self.template(node)

    def template(self, node: ScalarNode, site: Site | None = None) -> Template | None:
        compiled = compile_template(node.value)
        if isinstance(compiled, ExpressionError):
            self.expression_error(node, 0, compiled)
            return None
        for offset, expression in compiled.expressions:
            self.check(node, offset, expression, site)
        return compiled

    def expression_error(self, node: ScalarNode, offset: int, err: ExpressionError) -> None:
        line, col = self.position(node, offset + err.offset)
        self.reader.error_at(line, col, err.message)

    def check(
        self, node: ScalarNode, offset: int, expression: Expression, site: Site | None = None
    ) -> list[Found]:
        """Check one expression written at ``offset`` in ``node``; keep its references."""
        found, problems = analyze(expression, self.scope, site or self.site)
        for problem in problems:
            line, col = self.position(node, offset + problem.offset)
            self.reader.error_at(line, col, problem.message)
        for ref in found:
            self.references.append(
                Reference(ref.kind, ref.name, ref.attribute, self.locate(node, offset + ref.offset))
            )
        return found
