"""What a plan is made of: per-instance changes with attribute-level diffs.

These are the engine's public results: the CLI renders them, ``--json`` prints
:meth:`Plan.to_json`, and the deploy service reads them. Values inside may be
:data:`~shipyard.infra._eval.UNKNOWN` ("known after apply").
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Final

from shipyard.infra._eval import UNKNOWN, Unknown, equal
from shipyard.infra._state_model import OutputState, ResourceState
from shipyard.infra._types import path_text

if TYPE_CHECKING:
    from shipyard.infra._scope import Instance

__all__ = [
    "ABSENT",
    "Action",
    "Change",
    "Diff",
    "Fix",
    "OutputChange",
    "Plan",
    "diff_values",
    "diffs_json",
    "masked",
    "outside_changes",
]


class _Absent:
    """No value at this path (a key added or removed)."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "ABSENT"


ABSENT: Final = _Absent()


class Action(enum.StrEnum):
    CREATE = "create"
    UPDATE = "update"
    REPLACE = "replace"
    DELETE = "delete"
    NOOP = "no-op"


@dataclass(frozen=True, slots=True)
class Diff:
    """One changed value inside a resource's properties: ``path`` is ``("tags", "a")``."""

    path: tuple[str | int, ...]
    before: Any  # ABSENT when added
    after: Any  # ABSENT when removed, UNKNOWN when known only after apply
    forces_replacement: bool = False

    @property
    def text(self) -> str:
        return path_text(self.path)


def diff_values(before: Any, after: Any, path: tuple[str | int, ...] = ()) -> list[Diff]:
    """The differences from ``before`` to ``after``, as deep as both sides have the same
    shape (mappings by key, lists of the same length by index)."""
    if after is UNKNOWN:
        return [Diff(path, before, after)]
    if equal(before, after):
        return []
    if type(before) is dict and type(after) is dict and path:
        out: list[Diff] = []
        for key, value in before.items():
            out.extend(diff_values(value, after.get(key, ABSENT), (*path, key)))
        for key, value in after.items():
            if key not in before:
                out.append(Diff((*path, key), ABSENT, value))
        return out
    if type(before) is list and type(after) is list and len(before) == len(after) and path:
        out = []
        for index, (old, new) in enumerate(zip(before, after, strict=True)):
            out.extend(diff_values(old, new, (*path, index)))
        return out
    return [Diff(path, before, after)]


@dataclass(slots=True)
class Change:
    """What the plan does to one resource instance.

    ``prior`` is the instance as recorded and refreshed (None when it does not exist);
    ``after``/``attributes`` the planned properties and attributes (None for a delete).
    ``reasons`` say why a replacement is needed (the properties that force it,
    ``tainted`` ...); ``note`` explains anything else worth knowing.
    """

    address: str
    type: str
    action: Action
    prior: ResourceState | None
    after: dict[str, Any] | None = None
    attributes: dict[str, Any] | None = None
    diffs: list[Diff] = field(default_factory=list)
    reasons: list[str] = field(default_factory=list)
    sensitive: frozenset[str] = frozenset()
    create_before_destroy: bool = False
    dependencies: tuple[str, ...] = ()
    instance: Instance | None = None
    note: str = ""
    moved_from: str | None = None

    @property
    def deposed(self) -> bool:
        return self.address.endswith(DEPOSED)

    @property
    def base_address(self) -> str:
        return self.address[: -len(DEPOSED)] if self.deposed else self.address

    def to_json(self) -> dict[str, Any]:
        sensitive = self.sensitive
        return {
            "address": self.address,
            "type": self.type,
            "action": self.action.value,
            "id": self.prior.id if self.prior is not None and self.prior.id else None,
            "reasons": list(self.reasons),
            "create_before_destroy": self.create_before_destroy,
            "moved_from": self.moved_from,
            "note": self.note or None,
            "changes": [
                {
                    "path": d.text,
                    "before": _json_value(d.before, d.path[0] in sensitive if d.path else False),
                    "after": _json_value(d.after, d.path[0] in sensitive if d.path else False),
                    "forces_replacement": d.forces_replacement,
                }
                for d in self.diffs
            ],
            "after": None if self.after is None else masked(self.after, sensitive, json=True),
        }


DEPOSED: Final = "~deposed"  # the address suffix of an object replaced but not yet deleted

SENSITIVE_TEXT: Final = "(sensitive)"
UNKNOWN_TEXT: Final = "(known after apply)"


def _json_value(value: Any, sensitive: bool) -> Any:
    if value is ABSENT:
        return {"absent": True}
    if isinstance(value, Unknown):
        return {"unknown": True}
    if sensitive:
        return {"sensitive": True}
    return _json_tree(value)


def _json_tree(value: Any) -> Any:
    if isinstance(value, Unknown):
        return {"unknown": True}
    if type(value) is dict:
        return {k: _json_tree(v) for k, v in value.items()}
    if type(value) is list:
        return [_json_tree(v) for v in value]
    return value


def masked(values: dict[str, Any], sensitive: frozenset[str], *, json: bool = False) -> dict[str, Any]:
    """``values`` with sensitive members hidden (and, for JSON, unknown ones marked)."""
    out: dict[str, Any] = {}
    for name, value in values.items():
        if name in sensitive and value is not None:
            out[name] = {"sensitive": True} if json else SENSITIVE_TEXT
        else:
            out[name] = _json_tree(value) if json else value
    return out


@dataclass(slots=True)
class OutputChange:
    """A root output's change: ``after`` is UNKNOWN when known only after apply."""

    name: str
    action: Action
    before: OutputState | None
    after: Any
    sensitive: bool

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "action": self.action.value,
            "before": None if self.before is None else _json_value(self.before.value, self.sensitive),
            "after": None if self.action is Action.DELETE else _json_value(self.after, self.sensitive),
            "sensitive": self.sensitive,
        }


@dataclass(slots=True)
class Fix:
    """A change to the state alone, made first when the plan is applied.

    ``move``: the entry at ``source`` now lives at ``address`` (a ``moved`` block);
    ``record``: write ``entry`` (an object found again, refreshed values);
    ``refresh``: write ``entry``, the object as read now: it changed outside Shipyard
    in ways that need no provider call (its attributes, such as the pids of a
    restarted process, or properties that already match the stack). ``diffs`` and
    ``attribute_diffs`` say what changed (before = recorded, after = read), ``notes``
    what the provider said about it;
    ``forget``: drop ``address`` (a create interrupted before its id was known, a
    duplicate entry left by an interrupted operation).
    """

    kind: str
    address: str
    entry: ResourceState | None = None
    source: str | None = None
    note: str = ""
    diffs: list[Diff] = field(default_factory=list)
    attribute_diffs: list[Diff] = field(default_factory=list)
    notes: tuple[str, ...] = ()
    sensitive: frozenset[str] = frozenset()

    @property
    def visible(self) -> bool:
        """Whether the plan shows it (and counts it as a change)."""
        return self.kind != "record" or bool(self.note)

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"kind": self.kind, "address": self.address, "source": self.source,
                               "note": self.note or None}
        if self.kind == "refresh":
            out["changes"] = diffs_json(self.diffs, self.sensitive)
            out["attribute_changes"] = diffs_json(self.attribute_diffs, self.sensitive)
            out["notes"] = list(self.notes)
        return out


def outside_changes(recorded: ResourceState, real: ResourceState) -> tuple[list[Diff], list[Diff]]:
    """What changed from the ``recorded`` entry to the ``real`` one (as read): the
    property differences and the attribute differences, before = recorded."""
    diffs: list[Diff] = []
    if real.properties is not recorded.properties:
        before = recorded.properties
        for name, value in real.properties.items():
            diffs.extend(diff_values(before.get(name, ABSENT), value, (name,)))
    attribute_diffs: list[Diff] = []
    if real.attributes is not recorded.attributes:
        before = recorded.attributes
        for name, value in real.attributes.items():
            attribute_diffs.extend(diff_values(before.get(name, ABSENT), value, (name,)))
    return diffs, attribute_diffs


def diffs_json(diffs: list[Diff], sensitive: frozenset[str], before: str = "before",
               after: str = "after") -> list[dict[str, Any]]:
    """``diffs`` as JSON objects (``path``, ``before``, ``after``), sensitive values masked."""
    return [
        {
            "path": d.text,
            before: _json_value(d.before, d.path[0] in sensitive if d.path else False),
            after: _json_value(d.after, d.path[0] in sensitive if d.path else False),
        }
        for d in diffs
    ]


@dataclass(slots=True)
class Plan:
    """Everything ``apply`` would do, and what it was computed from."""

    changes: list[Change]
    outputs: list[OutputChange]
    fixes: list[Fix]
    warnings: list[str]
    destroy: bool
    targets: tuple[str, ...]
    refresh: bool
    state_digest: str
    state_lineage: str
    counts: dict[str, int] = field(default_factory=dict)
    # The planner that made it (its scopes and instances), which apply needs.
    binding: Any = field(default=None, repr=False, compare=False)
    applied: bool = False

    def __post_init__(self) -> None:
        counts = dict.fromkeys(("add", "change", "replace", "destroy"), 0)
        for change in self.changes:
            action = change.action
            if action is Action.CREATE:
                counts["add"] += 1
            elif action is Action.UPDATE:
                counts["change"] += 1
            elif action is Action.REPLACE:
                counts["replace"] += 1
            elif action is Action.DELETE:
                counts["destroy"] += 1
        self.counts = counts

    @property
    def actions(self) -> list[Change]:
        """The changes that call a provider (no-ops left out)."""
        return [c for c in self.changes if c.action is not Action.NOOP]

    @property
    def has_changes(self) -> bool:
        """Whether applying would change anything (resources, outputs or the state)."""
        return (
            any(self.counts.values())
            or any(o.action is not Action.NOOP for o in self.outputs)
            or any(f.visible for f in self.fixes)
        )

    def summary(self) -> str:
        c = self.counts
        return (
            f"Plan: {c['add']} to add, {c['change']} to change, {c['replace']} to replace,"
            f" {c['destroy']} to destroy."
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "format_version": 1,
            "destroy": self.destroy,
            "targets": list(self.targets),
            "refresh": self.refresh,
            "changes": [c.to_json() for c in self.changes if c.action is not Action.NOOP],
            "outputs": [o.to_json() for o in self.outputs if o.action is not Action.NOOP],
            "state_changes": [f.to_json() for f in self.fixes if f.visible],
            "warnings": list(self.warnings),
            "summary": dict(self.counts),
            "has_changes": self.has_changes,
        }
