"""The end of planning: deletes, destroy plans, targets, prevent_destroy and outputs."""

from __future__ import annotations

from collections.abc import Sequence

from shipyard.errors import InfraError, LocatedError, ValidationError
from shipyard.infra._address import Address, parse_address
from shipyard.infra._changes import DEPOSED, Action, Change, Fix, OutputChange, Plan
from shipyard.infra._eval import UNKNOWN, TreeError, equal, evaluate_tree
from shipyard.infra._graph import closure, dependents_index
from shipyard.infra._moves import matches
from shipyard.infra._plan import Planner, Walk
from shipyard.infra._refresh import is_pending
from shipyard.infra._scope import tree_is_sensitive
from shipyard.infra._state_model import State
from shipyard.workflow.expressions import EvalContext

__all__ = ["finish_plan", "match_targets"]


def finish_plan(planner: Planner, walk: Walk, state: State, *, destroy: bool,
                targets: Sequence[str]) -> Plan:
    """The plan from a completed walk (see the module docstring)."""
    changes = _with_deletes(planner, walk, destroy)
    for change in changes:
        if change.action in (Action.DELETE, Action.REPLACE) and change.address not in planner.delete_contexts:
            _delete_context(planner, walk, change)
    fixes = planner.fixes
    if destroy:
        # What changed outside on objects about to be destroyed is not worth recording.
        fixes = [f for f in fixes if f.kind != "refresh"]
    if targets:
        changes = _targeted(planner, walk, changes, targets, destroy)
    _check_prevent_destroy(changes)
    outputs = _outputs(walk, state, destroy)
    if planner.problems:
        raise InfraError("\n".join(planner.problems))
    return Plan(
        changes=changes,
        outputs=outputs,
        fixes=fixes,
        warnings=planner.warnings,
        destroy=destroy,
        targets=tuple(targets),
        refresh=planner.refresh,
        state_digest=state.digest(),
        state_lineage=state.lineage,
    )


def _delete(change_type: str, address: str, planner: Planner, walk: Walk, note: str = "") -> Change | None:
    entry = planner.entries[address]
    provider = entry.type.split("_", 1)[0]
    try:
        rtype = planner.registry.resource_type(entry.type)
        config = planner.config_for(walk.root, provider)
    except InfraError as err:
        planner.problems.append(f"{address}: {err}")
        return None
    ctx = planner.context(provider, config, planner.entry_dir(entry), address)
    planner.delete_contexts[address] = (rtype, ctx)
    refreshed = planner.refreshed_entry(address, rtype, ctx)
    if refreshed is None:
        return None
    prior = refreshed.entry
    if prior is None:
        why = "its create was interrupted before its id was known" if is_pending(entry) else "it no longer exists"
        planner.fixes.append(Fix("forget", address, note=why))
        return None
    return Change(address, change_type, Action.DELETE, prior, dependencies=tuple(prior.dependencies),
                  note=note)


def _delete_context(planner: Planner, walk: Walk, change: Change) -> None:
    prior = change.prior
    inst = change.instance
    if prior is None:
        return
    if inst is not None and inst.decl.type == prior.type:
        planner.delete_contexts[change.address] = (inst.rtype, inst.context)
        return
    provider = prior.type.split("_", 1)[0]
    try:
        rtype = planner.registry.resource_type(prior.type)
        config = planner.config_for(inst.scope if inst is not None else walk.root, provider)
    except InfraError as err:
        planner.problems.append(f"{change.address}: {err}")
        return
    ctx = planner.context(provider, config, planner.entry_dir(prior), change.address)
    planner.delete_contexts[change.address] = (rtype, ctx)


def _with_deletes(planner: Planner, walk: Walk, destroy: bool) -> list[Change]:
    changes: list[Change] = []
    for change in walk.changes:
        if not destroy:
            changes.append(change)
            continue
        prior = change.prior
        if prior is None:
            if change.address in planner.entries:
                planner.fixes.append(Fix("forget", change.address, note="it no longer exists"))
            continue
        changes.append(Change(
            change.address, prior.type, Action.DELETE, prior, dependencies=tuple(prior.dependencies),
            sensitive=change.sensitive, instance=change.instance, moved_from=change.moved_from,
        ))
    entries = planner.entries
    for address, entry in entries.items():
        if address in walk.instances:
            continue
        note = ""
        if address.endswith(DEPOSED):
            owner = entries.get(address[: -len(DEPOSED)])
            if owner is not None and owner.id == entry.id:
                planner.fixes.append(Fix("forget", address, note="a duplicate left by an interrupted replacement"))
                continue
            note = "the old object of a replacement that did not finish"
        found = _delete(entry.type, address, planner, walk, note)
        if found is not None:
            found.moved_from = planner.origin.get(address)
            changes.append(found)
    return changes


def match_targets(targets: Sequence[str], addresses: Sequence[str]) -> tuple[set[str], list[str]]:
    """The addresses each target names (a resource covers its instances, a module what
    it holds, deposed objects go with their address), and the targets naming nothing."""
    parsed: list[tuple[str, Address]] = []
    for address in addresses:
        try:
            parsed.append((address, parse_address(address.removesuffix(DEPOSED))))
        except ValueError:
            continue
    chosen: set[str] = set()
    unmatched: list[str] = []
    for target in targets:
        pattern = parse_address(target)
        found = [address for address, where in parsed if matches(pattern, where)]
        if not found:
            unmatched.append(target)
        chosen.update(found)
    return chosen, unmatched


def _targeted(planner: Planner, walk: Walk, changes: list[Change], targets: Sequence[str],
              destroy: bool) -> list[Change]:
    by_address = {c.address: c for c in changes}
    try:
        chosen, unmatched = match_targets(targets, [*by_address, *walk.instances])
    except ValueError as err:
        raise InfraError(f"--target: {err}") from None
    if unmatched:
        raise InfraError("--target matches no resource: " + ", ".join(unmatched))
    if destroy:
        graph = {c.address: c.dependencies for c in changes}
        selected = closure(chosen, dependents_index(graph))
    else:
        graph = {c.address: c.dependencies for c in changes}
        selected = closure(chosen, graph)
    selected.update(a for a in by_address if a.endswith(DEPOSED) and a[: -len(DEPOSED)] in selected)
    kept = [c for c in changes if c.address in selected]
    for change in changes:
        inst = change.instance
        if change.address in selected or inst is None:
            continue
        # Not applied: what others read from it is what the state holds.
        prior = change.prior
        if prior is not None:
            value = {**prior.properties, **prior.attributes, "id": prior.id}
        else:
            value = dict.fromkeys((*inst.rtype.properties, *inst.rtype.attributes, "id"), UNKNOWN)
        inst.scope.set_instance(inst.decl.name, inst.key, value)
    return kept


def _check_prevent_destroy(changes: list[Change]) -> None:
    errors: list[LocatedError] = []
    for change in changes:
        inst = change.instance
        if inst is None or change.action not in (Action.DELETE, Action.REPLACE):
            continue
        lifecycle = inst.decl.lifecycle
        if not lifecycle.prevent_destroy:
            continue
        where = inst.decl.locations.get(("lifecycle", "prevent_destroy"), inst.decl.location)
        if change.action is Action.DELETE:
            what = "destroy it"
        else:
            what = "replace it (" + ", ".join(str(r) for r in change.reasons) + ")"
        errors.append(LocatedError(
            f"{change.address} has lifecycle.prevent_destroy set, but this plan would {what}",
            where,
        ))
    if errors:
        raise ValidationError(errors)


def _outputs(walk: Walk, state: State, destroy: bool) -> list[OutputChange]:
    root = walk.root
    out: list[OutputChange] = []
    errors: list[LocatedError] = []
    declared = root.stack.outputs
    if not destroy:
        ctx = EvalContext(root.contexts())
        for name, decl in declared.items():
            try:
                value = evaluate_tree(decl.value, ctx)
            except TreeError as err:
                at = decl.locations.get(("value", *err.path), decl.location)
                errors.append(LocatedError(f"output '{name}': {err.error.message}", at))
                continue
            sensitive = decl.sensitive or tree_is_sensitive(decl.value, root)
            before = state.outputs.get(name)
            if before is None:
                action = Action.CREATE
            elif value is UNKNOWN or not equal(before.value, value) or before.sensitive != sensitive:
                action = Action.UPDATE
            else:
                action = Action.NOOP
            out.append(OutputChange(name, action, before, value, sensitive))
    for name, before in state.outputs.items():
        if destroy or name not in declared:
            out.append(OutputChange(name, Action.DELETE, before, None, before.sensitive))
    if errors:
        raise ValidationError(errors)
    return out
