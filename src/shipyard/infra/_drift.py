"""Drift: what changed in the real world since the last apply (read-only).

Every recorded resource is read again. Each property and each attribute the provider
reports with a value other than the recorded one is a difference (a process's ``pids``
after the supervisor restarted a replica that was killed, a ``command``'s ``output`` as
its ``read`` script reports it), the provider's notes explain them, and a resource
that no longer exists is reported as gone. Notes alone are drift too (a replica failing
its health check). Nothing is written: ``apply`` brings the real world back in line
with the stack, and records in the state what changed outside it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from shipyard.infra._changes import Diff, diffs_json, outside_changes
from shipyard.infra._plan import Planner
from shipyard.infra._refresh import is_pending
from shipyard.infra._state_model import ResourceState

__all__ = ["DriftItem", "DriftReport", "find_drift"]


@dataclass(slots=True)
class DriftItem:
    """One resource whose real thing differs from the state.

    ``kind`` is ``changed`` (see ``diffs`` for the properties and ``attribute_diffs``
    for the attributes: before = recorded, after = real; either may be empty when the
    provider's ``notes`` alone say what is wrong), ``gone`` (it no longer exists) or
    ``interrupted`` (a create that never finished).
    """

    address: str
    type: str
    id: str
    kind: str
    diffs: list[Diff] = field(default_factory=list)
    notes: tuple[str, ...] = ()
    sensitive: frozenset[str] = frozenset()
    attribute_diffs: list[Diff] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {
            "address": self.address,
            "type": self.type,
            "id": self.id,
            "kind": self.kind,
            "changes": diffs_json(self.diffs, self.sensitive, "state", "real"),
            "attribute_changes": diffs_json(self.attribute_diffs, self.sensitive, "state", "real"),
            "notes": list(self.notes),
        }


@dataclass(slots=True)
class DriftReport:
    """The result of a drift check: ``items`` lists each drifted resource."""

    items: list[DriftItem]
    checked: int

    @property
    def has_drift(self) -> bool:
        return bool(self.items)

    def to_json(self) -> dict[str, Any]:
        return {
            "drift": self.has_drift,
            "checked": self.checked,
            "resources": [item.to_json() for item in self.items],
        }


def _item(address: str, entry: ResourceState, planner: Planner) -> DriftItem | None:
    sensitive = frozenset(entry.sensitive)
    if is_pending(entry):
        found = planner.refreshed.get(address)
        notes = found.notes if found is not None else ()
        if found is not None and found.adopted:
            notes = ("a create was interrupted, and what it made exists: the next apply adopts it",)
        return DriftItem(address, entry.type, entry.id, "interrupted", notes=notes, sensitive=sensitive)
    found = planner.refreshed.get(address)
    if found is None:
        return None
    if found.entry is None:
        return DriftItem(address, entry.type, entry.id, "gone", notes=found.notes, sensitive=sensitive)
    diffs, attribute_diffs = outside_changes(entry, found.entry)
    if not diffs and not attribute_diffs and not found.notes:
        return None
    return DriftItem(address, entry.type, entry.id, "changed", diffs, found.notes, sensitive,
                     attribute_diffs)


def find_drift(planner: Planner) -> DriftReport:
    """The drift found by a planner that has refreshed every entry (``run`` done)."""
    items: list[DriftItem] = []
    for address, entry in planner.entries.items():
        item = _item(address, entry, planner)
        if item is not None:
            items.append(item)
    return DriftReport(items, len(planner.entries))
