"""What a stack's ``${{ }}`` expressions refer to, and whether those things exist.

Stack expressions use the workflow expression language with the contexts of a stack:
``var.NAME``; ``resources.NAME.ATTR`` (``resources.NAME[0].ATTR`` with count,
``resources.NAME['key'].ATTR`` with for_each, ``resources.NAME.*.ATTR`` for all
instances); ``modules.NAME.outputs.X``; ``count.index``; ``each.key`` and
``each.value``. :func:`analyze` walks one expression's syntax tree and returns the
references it makes (offsets into the expression) and the problems it has: a context
that does not exist or is not available where the expression is written, a name or an
attribute nothing declares, an instance index that does not fit how the resource is
expanded, a workflow-only function.

Names are matched exactly first, then ignoring case, as the evaluator does.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass
from typing import Final

from shipyard.workflow._schema import did_you_mean
from shipyard.workflow.expressions import Expression, Template
from shipyard.workflow.expressions._ast import (
    Call,
    ContextRef,
    Index,
    Literal,
    Member,
    Node,
    Wildcard,
    children,
)

__all__ = [
    "CONTEXTS",
    "Found",
    "Problem",
    "Scope",
    "Site",
    "Target",
    "analyze",
    "expression_tree",
    "single_expression",
]

CONTEXTS: Final = ("var", "resources", "modules", "count", "each")
# Workflow functions that mean nothing outside a job.
_WORKFLOW_ONLY: Final = {
    "hashfiles": "hashFiles",
    "success": "success",
    "failure": "failure",
    "cancelled": "cancelled",
    "always": "always",
}
# How a resource or module is expanded into instances.
SINGLE: Final = ""
COUNT: Final = "count"
FOR_EACH: Final = "for_each"


def expression_tree(expression: Expression) -> Node:
    """The syntax tree of a compiled expression.

    The workflow library keeps it private; references are a property of the tree, so
    reading it is cheaper and surer than parsing the text a second time.
    """
    tree: Node = expression._tree
    return tree


def single_expression(template: Template) -> tuple[int, Expression] | None:
    """The expression of a template that is one whole ``${{ }}`` (spaces around allowed).

    Such a template yields the expression's value, of any type; any other template
    yields a string.
    """
    if len(template.expressions) != 1:
        return None
    offset, expression = template.expressions[0]
    source = template.source
    before = source[:offset]
    after = source[offset + len(expression.source) :]
    if before.strip() == "${{" and after.strip() == "}}":
        return offset, expression
    return None


@dataclass(frozen=True, slots=True)
class Target:
    """A resource or module expressions may name.

    ``members`` are the names that may follow it: a resource's properties, attributes
    and ``id``; a module's outputs. None when unknown (an unknown resource type, a
    module folder that could not be read): nothing is checked then, so one mistake is
    not reported again at every use. ``expansion`` is ``""``, ``"count"`` or
    ``"for_each"``; ``label`` names it in messages (``resource 'web' (process)``).
    """

    members: frozenset[str] | None
    expansion: str
    label: str


class Scope:
    """What one stack folder declares: its variables, resources and modules."""

    __slots__ = ("_folded", "modules", "resources", "variables")

    def __init__(
        self,
        variables: Collection[str],
        resources: Mapping[str, Target],
        modules: Mapping[str, Target],
    ) -> None:
        self.variables = variables
        self.resources = resources
        self.modules = modules
        self._folded: dict[str, dict[str, str]] = {}

    def resolve(self, kind: str, name: str) -> str | None:
        """The declared name ``name`` means (exactly, else ignoring case), or None."""
        names: Collection[str] = (
            self.variables
            if kind == "var"
            else self.resources
            if kind == "resources"
            else self.modules
        )
        if name in names:
            return name
        folded = self._folded.get(kind)
        if folded is None:
            folded = {}
            for declared in names:
                folded.setdefault(declared.lower(), declared)
            self._folded[kind] = folded
        return folded.get(name.lower())

    def names(self, kind: str) -> Iterable[str]:
        return (
            self.variables
            if kind == "var"
            else self.resources
            if kind == "resources"
            else self.modules
        )


@dataclass(frozen=True, slots=True)
class Site:
    """Where an expression is written: the contexts available there, and its name.

    ``where`` completes "is not available in ..." (``providers``, ``outputs``, ``the
    count expression``).
    """

    contexts: frozenset[str]
    where: str


@dataclass(frozen=True, slots=True)
class Found:
    """A reference: ``kind`` is ``var``, ``resource`` or ``module``; ``offset`` is where
    the reference starts in the expression's source."""

    kind: str
    name: str
    attribute: str | None
    offset: int


@dataclass(frozen=True, slots=True)
class Problem:
    offset: int
    message: str


# A step of an access path after its context: (kind, value, offset) where kind is
# "name" (.x), "key" (['x']), "index" ([0]), "dynamic" ([expr]) or "all" (.* / [*]).
_Step = tuple[str, str | int | None, int]


def analyze(expression: Expression, scope: Scope, site: Site) -> tuple[list[Found], list[Problem]]:
    """The references ``expression`` makes and its problems, offsets into its source."""
    walker = _Walker(scope, site)
    pending = [expression_tree(expression)]
    while pending:
        node = pending.pop()
        if isinstance(node, ContextRef | Member | Index | Wildcard):
            steps: list[Node] = []
            base: Node = node
            while isinstance(base, Member | Index | Wildcard):
                steps.append(base)
                if isinstance(base, Index):
                    pending.append(base.index)
                base = base.target
            steps.reverse()
            if isinstance(base, ContextRef):
                walker.path(base, [_step(s) for s in steps])
            else:
                pending.append(base)
            continue
        if isinstance(node, Call):
            shown = _WORKFLOW_ONLY.get(node.name)
            if shown is not None:
                walker.problem(node.offset, f"function '{shown}' cannot be used in stack files")
        pending.extend(children(node))
    walker.found.sort(key=lambda f: f.offset)
    walker.problems.sort(key=lambda p: p.offset)
    return walker.found, walker.problems


def _step(node: Node) -> _Step:
    if isinstance(node, Member):
        return ("name", node.name, node.offset)
    if isinstance(node, Wildcard):
        return ("all", None, node.offset)
    assert isinstance(node, Index)
    index = node.index
    if isinstance(index, Literal):
        value = index.value
        if isinstance(value, str):
            return ("key", value, index.offset)
        if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
            return ("index", value, index.offset)
    return ("dynamic", None, index.offset)


def _named(step: _Step | None) -> str | None:
    """The name a step reads (``.x`` or ``['x']``), or None."""
    if step is not None and step[0] in ("name", "key"):
        assert isinstance(step[1], str)
        return step[1]
    return None


class _Walker:
    __slots__ = ("found", "problems", "scope", "site")

    def __init__(self, scope: Scope, site: Site) -> None:
        self.scope = scope
        self.site = site
        self.found: list[Found] = []
        self.problems: list[Problem] = []

    def problem(self, offset: int, message: str) -> None:
        self.problems.append(Problem(offset, message))

    def path(self, ref: ContextRef, steps: list[_Step]) -> None:
        context = ref.name.lower()
        if context not in CONTEXTS:
            available = sorted(self.site.contexts)
            hint = did_you_mean(ref.name, available)
            self.problem(
                ref.offset,
                f"unknown context '{ref.name}'{hint}; available in {self.site.where}: "
                + ", ".join(available),
            )
            return
        first = steps[0] if steps else None
        if context == "count":
            self._count(ref, first)
        elif context == "each":
            self._each(ref, first)
        elif context not in self.site.contexts:
            only = ", ".join(sorted(self.site.contexts))
            self.problem(
                ref.offset, f"'{context}' is not available in {self.site.where} (only {only})"
            )
        elif context == "var":
            self._var(ref, steps)
        else:
            self._target(ref, context, steps)

    def _count(self, ref: ContextRef, first: _Step | None) -> None:
        if _named(first) != "index":
            offset = first[2] if first is not None else ref.offset
            shown = f"count.{first[1]}" if first is not None and first[1] is not None else "count"
            self.problem(offset, f"'{shown}' does not exist: count has only count.index")
        elif "count" not in self.site.contexts:
            self.problem(
                ref.offset,
                f"count.index is not available in {self.site.where}: only where count is set",
            )

    def _each(self, ref: ContextRef, first: _Step | None) -> None:
        name = _named(first)
        if name not in ("key", "value"):
            offset = first[2] if first is not None else ref.offset
            shown = f"each.{first[1]}" if first is not None and first[1] is not None else "each"
            self.problem(offset, f"'{shown}' does not exist: use each.key or each.value")
        elif "each" not in self.site.contexts:
            self.problem(
                ref.offset,
                f"each.{name} is not available in {self.site.where}: only where for_each is set",
            )

    def _var(self, ref: ContextRef, steps: list[_Step]) -> None:
        name = _named(steps[0] if steps else None)
        if name is None:
            self.problem(ref.offset, "a variable is read by its name: var.NAME")
            return
        declared = self.scope.resolve("var", name)
        if declared is None:
            hint = did_you_mean(name, self.scope.names("var"))
            self.problem(steps[0][2], f"unknown variable '{name}'{hint}")
            return
        attribute = _named(steps[1]) if len(steps) > 1 else None
        self.found.append(Found("var", declared, attribute, ref.offset))

    def _target(self, ref: ContextRef, context: str, steps: list[_Step]) -> None:
        what = "resource" if context == "resources" else "module"
        name = _named(steps[0] if steps else None)
        if name is None:
            self.problem(ref.offset, f"a {what} is read by its name: {context}.NAME")
            return
        declared = self.scope.resolve(context, name)
        if declared is None:
            hint = did_you_mean(name, self.scope.names(context))
            self.problem(steps[0][2], f"unknown {what} '{name}'{hint}")
            return
        targets = self.scope.resources if context == "resources" else self.scope.modules
        target = targets[declared]
        rest = self._instance(context, declared, target, steps[1:])
        if rest is None:
            return
        if context == "modules":
            self._module_output(declared, target, rest, ref.offset)
            return
        attribute = _named(rest[0]) if rest else None
        if attribute is not None and target.members is not None and attribute not in target.members:
            lowered = {m.lower(): m for m in target.members}
            found = lowered.get(attribute.lower())
            if found is None:
                hint = did_you_mean(attribute, sorted(target.members))
                self.problem(rest[0][2], f"{target.label} has no attribute '{attribute}'{hint}")
                return
            attribute = found
        self.found.append(Found("resource", declared, attribute, ref.offset))

    def _instance(
        self, context: str, name: str, target: Target, steps: list[_Step]
    ) -> list[_Step] | None:
        """The steps after the instance selector, or None after reporting a misfit."""
        first = steps[0] if steps else None
        kind = first[0] if first is not None else None
        expansion = target.expansion
        example = f"{context}.{name}"
        if kind == "all":
            return steps[1:]
        if expansion == SINGLE:
            if kind in ("index", "dynamic"):
                assert first is not None
                self.problem(
                    first[2],
                    f"{target.label} has no count or for_each: it has one instance, {example}",
                )
                return None
            return steps
        if kind is None:
            return steps
        assert first is not None
        if kind == "dynamic":
            return steps[1:]
        if expansion == COUNT:
            if kind == "index":
                return steps[1:]
            if kind == "key":
                self.problem(
                    first[2],
                    f"{target.label} uses count: pick an instance by number, {example}[0]",
                )
                return None
        else:
            if kind == "key":
                return steps[1:]
            if kind == "index":
                self.problem(
                    first[2],
                    f"{target.label} uses for_each: pick an instance by key, {example}['key']",
                )
                return None
        self.problem(
            first[2],
            f"{target.label} uses {expansion}: pick one instance ({example}[...]) or all of"
            f" them ({example}.*)",
        )
        return None

    def _module_output(self, name: str, target: Target, rest: list[_Step], offset: int) -> None:
        if not rest:
            self.found.append(Found("module", name, None, offset))
            return
        if (_named(rest[0]) or "").lower() != "outputs":
            self.problem(
                rest[0][2], f"a module is read through its outputs: modules.{name}.outputs.NAME"
            )
            return
        output = _named(rest[1]) if len(rest) > 1 else None
        if output is not None and target.members is not None and output not in target.members:
            lowered = {m.lower(): m for m in target.members}
            found = lowered.get(output.lower())
            if found is None:
                hint = did_you_mean(output, sorted(target.members))
                self.problem(rest[1][2], f"{target.label} has no output '{output}'{hint}")
                return
            output = found
        self.found.append(Found("module", name, output, offset))
