"""Drift: what changed in the real world since the last apply (read-only).

Every recorded resource is read again; each property the provider reports with a value
other than the recorded one is a difference, and a resource that no longer exists is
reported as gone. Nothing is written: ``apply`` brings the real world back in line.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from shipyard.infra._changes import ABSENT, Diff, diff_values
from shipyard.infra._plan import Planner
from shipyard.infra._refresh import is_pending
from shipyard.infra._state_model import ResourceState

__all__ = ["DriftItem", "DriftReport", "find_drift"]


@dataclass(slots=True)
class DriftItem:
    """One resource whose real thing differs from the state.

    ``kind`` is ``changed`` (see ``diffs``: before = recorded, after = real), ``gone``
    (it no longer exists) or ``interrupted`` (a create that never finished).
    """

    address: str
    type: str
    id: str
    kind: str
    diffs: list[Diff] = field(default_factory=list)
    notes: tuple[str, ...] = ()
    sensitive: frozenset[str] = frozenset()

    def to_json(self) -> dict[str, Any]:
        def shown(value: Any, sensitive: bool) -> Any:
            if value is ABSENT:
                return None
            return {"sensitive": True} if sensitive else value

        return {
            "address": self.address,
            "type": self.type,
            "id": self.id,
            "kind": self.kind,
            "changes": [
                {
                    "path": d.text,
                    "state": shown(d.before, d.path[0] in self.sensitive),
                    "real": shown(d.after, d.path[0] in self.sensitive),
                }
                for d in self.diffs
            ],
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
    diffs: list[Diff] = []
    for name, real in (found.observed or {}).items():
        diffs.extend(diff_values(entry.properties.get(name, ABSENT), real, (name,)))
    if not diffs:
        return None
    return DriftItem(address, entry.type, entry.id, "changed", diffs, found.notes, sensitive)


def find_drift(planner: Planner) -> DriftReport:
    """The drift found by a planner that has refreshed every entry (``run`` done)."""
    items: list[DriftItem] = []
    for address, entry in planner.entries.items():
        item = _item(address, entry, planner)
        if item is not None:
            items.append(item)
    return DriftReport(items, len(planner.entries))
