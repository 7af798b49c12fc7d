"""Module instances as the evaluator sees them, and the resource instances they hold.

A :class:`Scope` is one instance of a stack folder: the root stack, or one instance of a
module (``modules.api[0]``). It holds what expressions written in that folder can read:
``var`` (the module's variables), ``resources`` (each resource's instance values) and
``modules`` (each nested module's outputs). The planner fills it in dependency order;
the applier updates the instance values as resources are created, so that expressions
evaluated later (at apply time) read the real values.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from shipyard.infra._address import Key
from shipyard.infra._eval import UNKNOWN, contains_unknown, equal, evaluate_tree, expose
from shipyard.infra._model import ModuleDecl, OutputDecl, ResourceDecl, Stack
from shipyard.infra._refs import expression_tree
from shipyard.infra.provider import Context, ResourceType
from shipyard.workflow.expressions import EvalContext, Template
from shipyard.workflow.expressions._ast import (
    ContextRef,
    Index,
    Literal,
    Member,
    Node,
    Wildcard,
    children,
)

__all__ = ["Instance", "ModuleValue", "Scope", "references_of", "tree_is_sensitive"]


@dataclass(eq=False, slots=True)
class Instance:
    """A resource instance the configuration declares, with what evaluating it needs."""

    address: str
    decl: ResourceDecl
    key: Key
    scope: Scope
    rtype: ResourceType
    context: Context
    extra: dict[str, Any]  # the count / each contexts of this instance
    dependencies: tuple[str, ...]
    sensitive: frozenset[str]

    def eval_context(self) -> EvalContext:
        """The contexts of this instance's expressions, with the values known now."""
        contexts = self.scope.contexts()
        if self.extra:
            contexts = {**contexts, **self.extra}
        return EvalContext(contexts)


class Scope:
    """One instance of a stack folder (see the module docstring)."""

    def __init__(
        self,
        stack: Stack,
        path: tuple[tuple[str, Key], ...],
        parent: Scope | None,
        var: dict[str, Any],
        var_sensitive: frozenset[str],
        dir: str,
        inherited: tuple[str, ...] = (),
    ) -> None:
        self.stack = stack
        self.path = path
        self.parent = parent
        self.var = var
        self.var_sensitive = var_sensitive
        self.dir = dir
        self.inherited = inherited
        self.resources: dict[str, Any] = {}
        self.modules: dict[str, Any] = {}
        # Per resource/module name: the addresses of every resource instance it holds.
        self.addresses: dict[str, list[str]] = {}
        self.sensitive: dict[str, frozenset[str]] = {}  # resource name -> member names
        self.output_sensitive: dict[str, bool] = {}
        self.children: dict[str, list[Scope]] = {}  # module name -> its instances
        self.providers: dict[str, dict[str, Any]] = {}  # evaluated provider configs
        # How to evaluate ``var`` again at apply time when a value was unknown at plan
        # time: the module's variable trees and the contexts they are written in.
        self.var_source: tuple[ModuleDecl, Scope, dict[str, Any]] | None = None
        self.version = 0
        self._lock = threading.Lock()
        self._var_shown: Any = expose(var)
        self._var_unknown = contains_unknown(var)

    @property
    def prefix(self) -> str:
        from shipyard.infra._address import format_address

        return format_address(None, None, self.path) if self.path else ""

    def contexts(self) -> dict[str, Any]:
        """``var``, ``resources`` and ``modules`` as expressions read them now."""
        if self._var_unknown and self.var_source is not None:
            self._resolve_var()
        return {"var": self._var_shown, "resources": self.resources, "modules": self.modules}

    def _resolve_var(self) -> None:
        # Module variables that were unknown at plan time are known once what they
        # refer to exists: every resource inside the module depends on those things.
        with self._lock:
            if not self._var_unknown or self.var_source is None:
                return
            decl, parent, extra = self.var_source
            contexts = parent.contexts()
            if extra:
                contexts = {**contexts, **extra}
            ctx = EvalContext(contexts)
            values = dict(self.var)
            for name, tree in decl.variables.items():
                values[name] = evaluate_tree(tree, ctx)
            if equal(values, self.var):
                return
            self.var = values
            self._var_shown = expose(values)
            self._var_unknown = contains_unknown(values)
        self.touched()  # outputs computed from the unknown values are stale

    def touched(self) -> None:
        """An instance value inside changed: cached module outputs are stale."""
        scope: Scope | None = self
        while scope is not None:
            scope.version += 1
            scope = scope.parent

    def output_values(self) -> dict[str, Any]:
        """This module instance's outputs, evaluated now (UNKNOWN where not known)."""
        ctx = EvalContext(self.contexts())
        out: dict[str, Any] = {}
        for name, decl in self.stack.outputs.items():
            out[name] = evaluate_output(decl, ctx)
        return out

    def set_instance(self, name: str, key: Key, value: Any) -> None:
        """Record the value expressions read for ``resources.name[key]``."""
        shown = expose(value)
        slot = self.resources.get(name)
        if key is None:
            self.resources[name] = shown
        elif isinstance(key, int):
            assert isinstance(slot, list)
            while len(slot) <= key:
                slot.append(None)
            slot[key] = shown
        else:
            assert isinstance(slot, dict)
            slot[key] = shown
        if self.parent is not None:
            self.touched()


def evaluate_output(decl: OutputDecl, ctx: EvalContext) -> Any:
    """An output's value; UNKNOWN when it cannot be evaluated yet."""
    from shipyard.infra._eval import TreeError

    try:
        return evaluate_tree(decl.value, ctx)
    except TreeError:
        return UNKNOWN


class ModuleValue(Mapping[str, Any]):
    """``modules.NAME`` (or one of its instances): ``outputs``, evaluated when read and
    cached until something inside the module changes."""

    __slots__ = ("_cache", "_version", "scope")

    def __init__(self, scope: Scope) -> None:
        self.scope = scope
        self._cache: Any = None
        self._version = -1

    def _outputs(self) -> Any:
        scope = self.scope
        if scope.var_source is not None:
            scope.contexts()  # variables known by now are evaluated (and bump the version)
        version = scope.version
        if self._version != version:
            self._cache = expose(self.scope.output_values())
            self._version = version
        return self._cache

    def __getitem__(self, key: str) -> Any:
        if key == "outputs":
            return self._outputs()
        raise KeyError(key)

    def __iter__(self) -> Iterator[str]:
        return iter(("outputs",))

    def __len__(self) -> int:
        return 1


# -- references, for sensitivity -------------------------------------------------------

# One access path: the context and its steps; a step is a member or key name, or None
# for an index or wildcard.
RefPath = tuple[str, tuple[str | None, ...]]


@lru_cache(maxsize=4096)
def references_of(template: Template) -> tuple[RefPath, ...]:
    """The access paths of every context reference in ``template``."""
    out: list[RefPath] = []
    for _, expression in template.expressions:
        _collect(expression_tree(expression), out)
    return tuple(out)


def _collect(node: Node, out: list[RefPath]) -> None:
    todo = [node]
    while todo:
        current = todo.pop()
        steps: list[str | None] = []
        cur = current
        while True:
            if isinstance(cur, Member):
                steps.append(cur.name)
                cur = cur.target
            elif isinstance(cur, Index):
                index = cur.index
                if isinstance(index, Literal) and isinstance(index.value, str):
                    steps.append(index.value)
                else:
                    steps.append(None)
                    todo.append(index)
                cur = cur.target
            elif isinstance(cur, Wildcard):
                steps.append(None)
                cur = cur.target
            else:
                break
        if isinstance(cur, ContextRef):
            steps.reverse()
            out.append((cur.name.lower(), tuple(steps)))
        else:
            todo.extend(children(cur))


def _reads_sensitive(ref: RefPath, scope: Scope) -> bool:
    context, steps = ref
    if not steps:
        return context == "var" and bool(scope.var_sensitive)
    name = steps[0]
    if context == "var":
        return name in scope.var_sensitive if name is not None else bool(scope.var_sensitive)
    if context == "resources":
        if name is None:
            return any(scope.sensitive.values())
        members = scope.sensitive.get(name, frozenset())
        if not members:
            return False
        rest = steps[1:]
        decl = scope.stack.resources.get(name)
        if decl is not None and (decl.count is not None or decl.for_each is not None) and rest:
            rest = rest[1:]
        return not rest or rest[0] is None or rest[0] in members
    if context == "modules":
        if name is None:
            return any(scope.output_sensitive.values())
        rest = steps[1:]
        mdecl = scope.stack.modules.get(name)
        if mdecl is not None and (mdecl.count is not None or mdecl.for_each is not None) and rest:
            rest = rest[1:]
        children = scope.children.get(name, [])
        if len(rest) < 2 or rest[1] is None:
            return any(any(child.output_sensitive.values()) for child in children)
        output = rest[1]
        return any(child.output_sensitive.get(output, False) for child in children)
    return False


def tree_is_sensitive(tree: Any, scope: Scope) -> bool:
    """Whether a value tree reads anything sensitive (a sensitive variable, property,
    attribute or module output), so that its value must be masked and encrypted too."""
    kind = type(tree)
    if kind is Template:
        return any(_reads_sensitive(ref, scope) for ref in references_of(tree))
    if kind is dict:
        return any(tree_is_sensitive(item, scope) for item in tree.values())
    if kind is list:
        return any(tree_is_sensitive(item, scope) for item in tree)
    return False
