"""The ``template`` provider: a file rendered from a template with ``${{ }}`` expressions.

The template is a file (``source``) or inline text (``template``) in the platform's one
expression language, seeing one context, ``vars``::

    listen ${{ vars.port }}
    servers ${{ join(vars.backends, ' ') }}

It is rendered at plan time (``prepare``), so a change of the template file or of
``vars`` shows in the plan as a change of ``content_sha256``; the result is written like
a ``file`` (atomically, with a mode and an owner) and kept as the ``rendered`` attribute.
A mistake in the template is a ProviderError naming the template and the line.

The stack loader evaluates ``${{ }}`` in stack files itself, so an *inline* template's
own expressions must reach this provider unevaluated (see the report to the stack owner);
templates in a ``source`` file are never seen by the loader.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from shipyard.errors import Location
from shipyard.infra.provider import Attribute, Context, Property, Provider, ProviderError
from shipyard.workflow.expressions import (
    EvalContext,
    ExpressionError,
    Template,
    parse_template,
)
from shipyard.workflow.expressions._ast import ContextRef, Member, walk

from ._files import FILE_ATTRIBUTES, FILE_PROPERTIES, LocalFile, resolve

__all__ = ["TemplateFile", "TemplateProvider", "render"]


def _position(text: str, offset: int) -> tuple[int, int]:
    """1-based line and column of ``offset`` in ``text``."""
    offset = max(0, min(offset, len(text)))
    line = text.count("\n", 0, offset) + 1
    col = offset - (text.rfind("\n", 0, offset) + 1) + 1
    return line, col


def _check(template: Template, variables: Mapping[str, Any] | None) -> ExpressionError | None:
    """The first reference to a context other than ``vars``, or to a var that is not set.

    GitHub's language gives null for both, which would render as nothing; a template
    silently missing a value is worse than an error. ``variables`` None skips the second
    check (the values are not known yet).
    """
    names = None if variables is None else {str(key).lower() for key in variables}
    for offset, expression in template.expressions:
        for node in walk(expression._tree):
            if isinstance(node, ContextRef) and node.name.lower() != "vars":
                return ExpressionError(
                    f"unknown context {node.name!r}: a template sees only `vars`",
                    offset + node.offset,
                )
            if (
                names is not None
                and isinstance(node, Member)
                and isinstance(node.target, ContextRef)
                and node.target.name.lower() == "vars"
                and node.name.lower() not in names
            ):
                known = ", ".join(sorted(str(key) for key in variables or {})) or "none"
                return ExpressionError(
                    f"vars.{node.name} is not set (vars has: {known})", offset + node.offset
                )
    return None


def render(text: str, variables: Mapping[str, Any], origin: str) -> str:
    """``text`` rendered with ``vars``; ProviderError ``origin:line:col: message``."""
    try:
        template = parse_template(text)
        problem = _check(template, variables)
        if problem is not None:
            raise problem
        return template.evaluate_str(EvalContext({"vars": dict(variables)}))
    except ExpressionError as error:
        line, col = _position(text, error.offset)
        raise ProviderError(f"{Location(origin, line, col)}: {error.message}") from None


class TemplateFile(LocalFile):
    """``template``: a file rendered from a template and ``vars``."""

    name = "template"
    description = (
        "A local file rendered from a template (`source` file or inline `template`) whose "
        "${{ vars.NAME }} expressions see `vars`. Import with its path."
    )
    properties = {
        "path": FILE_PROPERTIES["path"],
        "source": Property(
            type="string",
            description="The template file, relative to the stack's folder (or absolute).",
        ),
        "template": Property(type="string", verbatim=True, description=(
            "The template text itself, taken as written: its ${{ }} see vars only.")),
        "vars": Property(type="map(any)", description="The values the template sees as `vars`."),
        "mode": FILE_PROPERTIES["mode"],
        "owner": FILE_PROPERTIES["owner"],
        "content_sha256": FILE_PROPERTIES["content_sha256"],
    }
    attributes = {
        **FILE_ATTRIBUTES,
        "rendered": Attribute(description="The rendered text."),
    }

    def validate(self, properties: Mapping[str, Any]) -> list[tuple[str, str]]:
        problems = self.validate_file(properties)
        source, inline = properties.get("source"), properties.get("template")
        if source is not None and inline is not None:
            problems.append(("template", "set only one of source and template"))
        elif (
            source is None
            and inline is None
            and "source" in properties
            and "template" in properties
        ):
            problems.append(("source", "set one of source (a file) and template (the text)"))
        if source == "":
            problems.append(("source", "must name a file"))
        if isinstance(inline, str):
            # Without vars (not known yet) only the contexts can be checked.
            variables: Mapping[str, Any] | None = None
            if "vars" in properties:
                variables = properties["vars"] or {}
            try:
                problem = _check(parse_template(inline), variables)
            except ExpressionError as error:
                problem = error
            if problem is not None:
                line, col = _position(inline, problem.offset)
                problems.append(("template", f"line {line}, column {col}: {problem.message}"))
        return problems

    def _text(self, ctx: Context, properties: Mapping[str, Any]) -> tuple[str, str]:
        """The template text and how to name it in errors."""
        inline = properties.get("template")
        if inline is not None:
            return str(inline), "inline template"
        source = properties.get("source")
        if source is None:
            raise ProviderError("set one of source (a file) and template (the text)")
        path = resolve(ctx, str(source))
        try:
            return path.read_text(encoding="utf-8"), str(path)
        except FileNotFoundError:
            raise ProviderError(f"template {path} does not exist") from None
        except UnicodeDecodeError as error:
            raise ProviderError(f"template {path} is not UTF-8 text ({error.reason})") from None
        except OSError as error:
            raise ProviderError(f"cannot read template {path}: {error.strerror or error}") from None

    def rendered(self, ctx: Context, properties: Mapping[str, Any]) -> str:
        text, origin = self._text(ctx, properties)
        return render(text, properties.get("vars") or {}, origin)

    def content(self, ctx: Context, properties: Mapping[str, Any]) -> bytes:
        return self.rendered(ctx, properties).encode("utf-8")

    def extra_attributes(
        self, ctx: Context, properties: Mapping[str, Any], data: bytes
    ) -> dict[str, Any]:
        return {"rendered": data.decode("utf-8", errors="replace")}


class TemplateProvider(Provider):
    """Files rendered from templates."""

    name = "template"
    description = "Files rendered from templates with ${{ }} expressions over `vars`."
    resource_types = (TemplateFile,)
