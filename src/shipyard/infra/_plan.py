"""Planning: the stack evaluated against the (refreshed) state, instance by instance.

The planner walks each stack folder's resources and modules in dependency order,
expanding ``count``/``for_each`` into instances and modules into :class:`Scope` s. For
each instance it evaluates the properties (UNKNOWN where they read what does not exist
yet), fills defaults, checks types, lets the resource type validate and prepare them,
and compares them with the refreshed state: create, update, replace (with the
properties that force it), or nothing. Entries of the state the configuration no
longer declares are deleted. See :mod:`shipyard.infra._finish` for what follows the walk
(targets, prevent_destroy, outputs).
"""

from __future__ import annotations

import copy
import os
from collections.abc import Mapping
from typing import Any

from shipyard.errors import InfraError, LocatedError, Location
from shipyard.infra._address import Key, format_address
from shipyard.infra._changes import Action, Change, Diff, Fix, diff_values, outside_changes
from shipyard.infra._eval import (
    UNKNOWN,
    TreeError,
    contains_unknown,
    evaluate_tree,
    expose,
    is_static,
)
from shipyard.infra._graph import topological_order
from shipyard.infra._model import ModuleDecl, Reference, ResourceDecl, Stack
from shipyard.infra._moves import apply_moves
from shipyard.infra._planning import (
    LogSink,
    PlannerBase,
    Walk,
    decl_refs,
    default_of,
    is_unknown,
    locate,
    path_of,
    spec,
)
from shipyard.infra._refresh import Refreshed, is_pending, provider_failure
from shipyard.infra._scope import Instance, ModuleValue, Scope, tree_is_sensitive
from shipyard.infra._state_model import ResourceState
from shipyard.infra.provider import REQUIRED
from shipyard.workflow.expressions import EvalContext

__all__ = ["LogSink", "Planner", "Walk"]

_KEEPS_ID = (Action.NOOP, Action.UPDATE)


class Planner(PlannerBase):
    """One planning pass (see the module docstring). Use :meth:`run`."""

    # ------------------------------------------------------------------ entry point

    def run(self) -> Walk:
        moves = apply_moves(self.stack, self.state.resources)
        self.errors.extend(moves.errors)
        self.warnings.extend(moves.warnings)
        self.entries = moves.entries
        self.origin = moves.origin
        for address in moves.dropped:
            self.fixes.append(Fix("forget", address, note="left behind by an interrupted move"))
        for new, old in moves.origin.items():
            self.fixes.append(Fix("move", new, self.entries[new], source=old))
        for address in moves.redepended:
            self.fixes.append(Fix("record", address, self.entries[address]))
        root = Scope(self.stack, (), None, self._root_variables(), self._root_sensitive(), ".")
        self.walk = Walk(root)
        self._configure(root)
        self._raise_errors()
        if self.refresh and not self.given_refreshed:
            self._prefetch(root)
        self._walk(root)
        self._raise_errors()
        return self.walk

    # ------------------------------------------------------------------ the walk

    def _order(self, stack: Stack) -> list[tuple[str, str]]:
        found = self._orders.get(id(stack))
        if found is not None:
            return found
        graph: dict[tuple[str, str], list[tuple[str, str]]] = {}
        for name, decl in stack.resources.items():
            graph[("resource", name)] = decl_refs(decl.references, decl.depends_on)
        for name, mdecl in stack.modules.items():
            graph[("module", name)] = decl_refs(mdecl.references, mdecl.depends_on)
        try:
            order = topological_order(graph)
        except ValueError as err:  # the loader reports cycles; this is a safety net
            raise InfraError(f"{stack.dir}: {err}") from None
        self._orders[id(stack)] = order
        return order

    def _dir_of(self, stack: Stack) -> str:
        found = self._dirs.get(id(stack))
        if found is None:
            found = self._dirs[id(stack)] = os.path.relpath(stack.dir, self.stack.dir)
        return found

    def _walk(self, scope: Scope) -> None:
        stack = scope.stack
        for kind, name in self._order(stack):
            if kind == "resource":
                self._plan_resource(scope, stack.resources[name])
            else:
                self._plan_module(scope, stack.modules[name])
        for name, decl in stack.outputs.items():
            scope.output_sensitive[name] = decl.sensitive or tree_is_sensitive(decl.value, scope)

    def _deps(self, scope: Scope, references: tuple[Reference, ...],
              depends_on: tuple[tuple[str, Location], ...]) -> tuple[str, ...]:
        out: dict[str, None] = dict.fromkeys(scope.inherited)
        for kind, name in decl_refs(references, depends_on):
            key = name if kind == "resource" else "modules." + name
            out.update(dict.fromkeys(scope.addresses.get(key, ())))
        return tuple(out)

    def _expand(self, scope: Scope, count: Any, for_each: Any, locations: Mapping[Any, Location],
                location: Location) -> list[tuple[Key, dict[str, Any]]] | None:
        if count is None and for_each is None:
            return [(None, {})]
        ctx = EvalContext(scope.contexts())
        path = ("count",) if count is not None else ("for_each",)
        at = locate(locations, path, location)
        try:
            value = evaluate_tree(count if count is not None else for_each, ctx)
        except TreeError as err:
            self.errors.append(LocatedError(err.error.message, at))
            return None
        if contains_unknown(value) if count is not None else (
            value is UNKNOWN or (type(value) is list and contains_unknown(value))
        ):
            self.errors.append(LocatedError(
                f"{path[0]} depends on values known only after apply: use variables, or values"
                " of resources that already exist",
                at,
            ))
            return None
        if count is not None:
            if type(value) is float and value.is_integer():
                value = int(value)
            if type(value) is not int or value < 0:
                self.errors.append(LocatedError(f"count must be a non-negative whole number, got {value!r}", at))
                return None
            return [(i, {"count": {"index": i}}) for i in range(value)]
        if type(value) is list:
            keys: dict[str, None] = {}
            for item in value:
                if type(item) is not str:
                    self.errors.append(LocatedError(f"for_each keys must be strings, got {item!r}", at))
                    return None
                keys[item] = None
            return [(k, {"each": {"key": k, "value": k}}) for k in keys]
        if type(value) is dict:
            return [(k, {"each": {"key": k, "value": expose(v)}}) for k, v in value.items()]
        self.errors.append(LocatedError(f"for_each must be a list of strings or a mapping, got {value!r}", at))
        return None

    def _plan_module(self, scope: Scope, decl: ModuleDecl) -> None:
        assert self.walk is not None
        deps = self._deps(scope, decl.references, decl.depends_on)
        keys = self._expand(scope, decl.count, decl.for_each, decl.locations, decl.location) or []
        addresses = scope.addresses.setdefault("modules." + decl.name, [])
        children = scope.children.setdefault(decl.name, [])
        slot: Any = [] if decl.count is not None else {} if decl.for_each is not None else None
        inner = decl.stack
        for key, extra in keys:
            ctx = EvalContext({**scope.contexts(), **extra})
            values: dict[str, Any] = {}
            sensitive: set[str] = set()
            for name, vdecl in inner.variables.items():
                tree = decl.variables.get(name)
                if name not in decl.variables:
                    if vdecl.default is REQUIRED:
                        continue  # reported by the loader
                    values[name] = copy.deepcopy(vdecl.default)
                else:
                    try:
                        values[name] = evaluate_tree(tree, ctx)
                    except TreeError as err:
                        where = locate(decl.locations, ("variables", name, *err.path), decl.location)
                        self.errors.append(LocatedError(err.error.message, where))
                        values[name] = UNKNOWN
                        continue
                    if tree_is_sensitive(tree, scope):
                        sensitive.add(name)
                if vdecl.sensitive:
                    sensitive.add(name)
                problem = spec(vdecl.type).check(values[name], skip=is_unknown)
                if problem is not None:
                    where = locate(decl.locations, ("variables", name), decl.location)
                    self.errors.append(LocatedError(f"variable '{name}': {problem}", where))
            path = (*scope.path, (decl.name, key))
            child = Scope(inner, path, scope, values, frozenset(sensitive), self._dir_of(inner),
                          tuple(dict.fromkeys((*scope.inherited, *deps))))
            if contains_unknown(values):
                child.var_source = (decl, scope, extra)
            self._validate_variables(inner, values, f" (in {format_address(None, None, path)})")
            self._configure(child)
            self._walk(child)
            # Depending on the module means depending on what it holds and on what its
            # variables come from (a module without resources still passes values on).
            addresses.extend(child.inherited)
            for found in child.addresses.values():
                addresses.extend(found)
            children.append(child)
            value = ModuleValue(child)
            if slot is None:
                slot = value
            elif isinstance(slot, list):
                slot.append(value)
            else:
                slot[key] = value
        scope.modules[decl.name] = slot if slot is not None else ModuleValue(
            Scope(inner, (*scope.path, (decl.name, None)), scope, {}, frozenset(), self._dir_of(inner))
        )

    def _plan_resource(self, scope: Scope, decl: ResourceDecl) -> None:
        assert self.walk is not None
        provider = decl.type.split("_", 1)[0]
        try:
            rtype = self.registry.resource_type(decl.type)
            config = self.config_for(scope, provider)
        except InfraError as err:
            self.errors.append(LocatedError(str(err), decl.location))
            scope.resources[decl.name] = None
            return
        deps = self._deps(scope, decl.references, decl.depends_on)
        sensitive = {n for n, p in rtype.properties.items() if p.sensitive}
        sensitive.update(n for n, a in rtype.attributes.items() if a.sensitive)
        for name, tree in decl.properties.items():
            if name not in sensitive and tree_is_sensitive(tree, scope):
                sensitive.add(name)
        members = frozenset(sensitive)
        scope.sensitive[decl.name] = members
        keys = self._expand(scope, decl.count, decl.for_each, decl.locations, decl.location) or []
        scope.resources[decl.name] = [] if decl.count is not None else {} if decl.for_each is not None else None
        addresses = scope.addresses.setdefault(decl.name, [])
        static = self._static.get(id(decl))
        if static is None:
            static = self._static[id(decl)] = is_static(decl.properties)
        stack_dir = scope.stack.dir
        for key, extra in keys:
            address = format_address(decl.name, key, scope.path)
            ctx = self.context(provider, config, stack_dir, address)
            inst = Instance(address, decl, key, scope, rtype, ctx, extra, deps, members)
            change = self._plan_instance(inst, static)
            self.walk.instances[address] = inst
            self.walk.changes.append(change)
            addresses.append(address)
            value = dict(change.after or {})
            value.update(change.attributes or {})
            prior = change.prior
            value["id"] = prior.id if prior is not None and change.action in _KEEPS_ID else UNKNOWN
            scope.set_instance(decl.name, key, value)

    # ------------------------------------------------------------------ one instance

    def desired(self, inst: Instance, static: bool, errors: list[LocatedError]) -> dict[str, Any] | None:
        """The instance's properties as they would be applied (UNKNOWN where not known
        yet), or None with ``errors`` filled in."""
        decl = inst.decl
        rtype = inst.rtype
        schema = rtype.properties
        if static:
            props = dict(decl.properties)
        else:
            try:
                props = evaluate_tree(decl.properties, inst.eval_context())
            except TreeError as err:
                at = locate(decl.locations, ("properties", *err.path), decl.location)
                errors.append(LocatedError(f"{inst.address}: {err.error.message}", at))
                return None
        for name, prop in schema.items():
            if name not in props:
                props[name] = default_of(prop)
        failed = False
        for name, value in props.items():
            declared = schema.get(name)
            if declared is None or value is None or value is UNKNOWN:
                continue
            problem = spec(declared.type).check(value, skip=is_unknown)
            if problem is not None:
                at = locate(decl.locations, ("properties", name), decl.location)
                errors.append(LocatedError(f"{inst.address}: property '{name}': {problem}", at))
                failed = True
        if failed:
            return None
        unknown = any(contains_unknown(v) for v in props.values())
        known = {k: v for k, v in props.items() if not contains_unknown(v)} if unknown else props
        try:
            problems = rtype.validate(known)
        except Exception as err:
            errors.append(LocatedError(f"{inst.address}: {provider_failure(err)}", decl.location))
            return None
        for path, message in problems:
            at = locate(decl.locations, ("properties", *path_of(path)), decl.location)
            errors.append(LocatedError(f"{inst.address}: {path}: {message}", at))
        if problems:
            return None
        if unknown:
            for name, prop in schema.items():
                if prop.derived:
                    props[name] = UNKNOWN
            return props
        try:
            return rtype.prepare(inst.context, props)
        except Exception as err:
            errors.append(LocatedError(f"{inst.address}: {provider_failure(err)}", decl.location))
            return None

    def _plan_instance(self, inst: Instance, static: bool) -> Change:
        decl = inst.decl
        rtype = inst.rtype
        errors: list[LocatedError] = []
        props = self.desired(inst, static, errors)
        refreshed = self.refreshed_entry(inst.address, rtype, inst.context)
        prior = refreshed.entry if refreshed is not None else None
        entry = self.entries.get(inst.address)

        def change(action: Action, after: dict[str, Any], attrs: dict[str, Any],
                   diffs: list[Diff] | None = None, reasons: list[str] | None = None,
                   note: str = "") -> Change:
            return Change(
                inst.address, decl.type, action, prior, after, attrs, diffs or [], reasons or [],
                inst.sensitive, decl.lifecycle.create_before_destroy, inst.dependencies, inst,
                note, self.origin.get(inst.address),
            )

        unknown_attrs = dict.fromkeys(rtype.attributes, UNKNOWN)
        if props is None:
            self.errors.extend(errors)
            return change(Action.NOOP, dict.fromkeys(rtype.properties, UNKNOWN), unknown_attrs)
        if refreshed is not None and refreshed.adopted and prior is not None:
            self.fixes.append(Fix("record", inst.address, prior,
                                  note="found after an interrupted create: adopted"))
        if prior is None:
            note = ""
            if entry is not None and is_pending(entry):
                note = "a previous create was interrupted"
                if refreshed is not None and refreshed.notes:
                    note += "; " + refreshed.notes[0]
            elif entry is not None:
                note = "it no longer exists (deleted outside this stack)"
            return change(Action.CREATE, props, unknown_attrs, note=note)
        after = props
        ignored = decl.lifecycle.ignore_changes
        if ignored:
            after = dict(props)
            for name in rtype.properties if "*" in ignored else ignored:
                if name in prior.properties:
                    after[name] = prior.properties[name]
        diffs: list[Diff] = []
        before = prior.properties
        for name, value in after.items():
            old = before.get(name)
            if old is not value:
                diffs.extend(diff_values(old, value, (name,)))
        reasons: list[str] = []
        if prior.type != decl.type:
            reasons.append(f"type changed from {prior.type} to {decl.type}")
        elif prior.tainted:
            reasons.append("tainted: a previous apply did not finish it")
        if diffs:
            forcing = self._forcing(inst, prior, after, diffs)
            if forcing:
                diffs = [Diff(d.path, d.before, d.after, d.path[0] in forcing) for d in diffs]
                reasons.extend(n for n in after if n in forcing)
        # What the provider said when reading it (a process restarted after a crash).
        said = "; ".join(refreshed.notes) if refreshed is not None else ""
        if reasons:
            return change(Action.REPLACE, after, unknown_attrs, diffs, reasons, note=said)
        if diffs:
            attrs = {
                n: prior.attributes.get(n) if a.stable else UNKNOWN for n, a in rtype.attributes.items()
            }
            return change(Action.UPDATE, after, attrs, diffs, note=said)
        if entry is not None and prior != entry and not (refreshed and refreshed.adopted):
            self.fixes.append(self._changed_outside(inst, entry, prior, refreshed))
        return change(Action.NOOP, after, prior.attributes)

    @staticmethod
    def _changed_outside(inst: Instance, entry: ResourceState, prior: ResourceState,
                         refreshed: Refreshed | None) -> Fix:
        """The state fix recording what changed outside Shipyard on an object the plan
        leaves alone (like Terraform's "objects have changed outside of Terraform")."""
        diffs, attribute_diffs = outside_changes(entry, prior)
        if not diffs and not attribute_diffs:
            return Fix("record", inst.address, prior)  # equal values of another type (1 and 1.0)
        return Fix("refresh", inst.address, prior, diffs=diffs, attribute_diffs=attribute_diffs,
                   notes=refreshed.notes if refreshed is not None else (),
                   sensitive=inst.sensitive | frozenset(entry.sensitive))

    def _forcing(self, inst: Instance, prior: ResourceState, after: dict[str, Any],
                 diffs: list[Diff]) -> set[str | int]:
        """The changed properties that force a replacement."""
        rtype = inst.rtype
        schema = rtype.properties
        forcing: set[str | int] = set()
        for d in diffs:
            prop = schema.get(str(d.path[0]))
            if not rtype.updatable or (prop is not None and prop.replace):
                forcing.add(d.path[0])
        if prior.type == inst.decl.type and not any(contains_unknown(v) for v in after.values()):
            try:
                forcing.update(rtype.requires_replace(prior.properties, after))
            except Exception as err:
                self.errors.append(LocatedError(f"{inst.address}: {provider_failure(err)}", inst.decl.location))
        return forcing
