"""The operations of a plan and the order they must run in.

Each change becomes one or two *operations* (a replacement is a create and a delete).
An operation waits for the operations it must follow:

* a create/update waits for the creates/updates of what it depends on;
* a delete waits for the deletes of what depended on it (recorded in the state), and,
  when the object goes away for good (a resource removed from the stack, the old object
  of a create-before-destroy replacement), for the creates/updates of those dependents
  too, so that they stop using it first;
* a replacement deletes then creates, or with ``create_before_destroy`` creates first
  (forced on what such a resource depends on, as Terraform does, to keep the order
  acyclic).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from shipyard.errors import InfraError
from shipyard.infra._changes import Action, Change, Plan

__all__ = ["Op", "build_operations"]


@dataclass(eq=False, slots=True)
class Op:
    kind: str  # create | update | delete
    change: Change
    replacing: bool = False
    cbd: bool = False
    succs: list[Op] = field(default_factory=list)
    waiting: int = 0
    done: bool = False

    @property
    def label(self) -> str:
        if self.kind == "delete":
            if self.change.deposed:
                return "destroy (deposed)"
            return "destroy (replace)" if self.replacing else "destroy"
        if self.replacing:
            return "create (replace)"
        return self.kind

    def before(self, other: Op) -> None:
        self.succs.append(other)
        other.waiting += 1


_DONE_WORDS = {"create": "created", "update": "updated", "delete": "destroyed"}


def build_operations(plan: Plan) -> list[Op]:
    """The operations of ``plan`` with their ordering (see the module docstring)."""
    changes = {c.address: c for c in plan.changes if c.action is not Action.NOOP}
    cbd = {a for a, c in changes.items() if c.action is Action.REPLACE and c.create_before_destroy}
    todo = list(cbd)
    while todo:
        for dep in changes[todo.pop()].dependencies:
            found = changes.get(dep)
            if found is not None and found.action is Action.REPLACE and dep not in cbd:
                cbd.add(dep)
                todo.append(dep)
    ops: list[Op] = []
    writes: dict[str, Op] = {}
    deletes: dict[str, Op] = {}
    for address, change in changes.items():
        action = change.action
        if action is Action.CREATE or action is Action.UPDATE:
            op = Op(action.value, change)
            writes[address] = op
            ops.append(op)
        elif action is Action.DELETE:
            op = Op("delete", change)
            deletes[address] = op
            ops.append(op)
        else:
            create = Op("create", change, replacing=True, cbd=address in cbd)
            delete = Op("delete", change, replacing=True, cbd=address in cbd)
            writes[address] = create
            deletes[address] = delete
            ops.extend((create, delete))
            if address in cbd:
                create.before(delete)
            else:
                delete.before(create)
    for op in writes.values():
        for dep in op.change.dependencies:
            first = writes.get(dep)
            if first is not None:
                first.before(op)
    dependents: dict[str, list[str]] = {}
    for address, change in changes.items():
        if change.prior is not None:
            for dep in change.prior.dependencies:
                dependents.setdefault(dep, []).append(address)
    for address, op in deletes.items():
        base = op.change.base_address
        for_good = not op.replacing or op.cbd
        for user in dependents.get(base, ()):
            if user == address:
                continue
            other = deletes.get(user)
            if other is not None and other is not op:
                other.before(op)
            if for_good and user != base:
                write = writes.get(user)
                if write is not None:
                    write.before(op)
    _check_acyclic(ops)
    return ops


def _check_acyclic(ops: list[Op]) -> None:
    waiting = {id(op): op.waiting for op in ops}
    ready = [op for op in ops if op.waiting == 0]
    seen = 0
    while ready:
        op = ready.pop()
        seen += 1
        for succ in op.succs:
            waiting[id(succ)] -= 1
            if waiting[id(succ)] == 0:
                ready.append(succ)
    if seen != len(ops):
        stuck = sorted({op.change.address for op in ops if waiting[id(op)] > 0})
        raise InfraError("the changes cannot be ordered (a cycle among: " + ", ".join(stuck) + ")")
