"""The engine: a stack, its state backend and providers, and what can be done with them.

::

    engine = Engine(Path("infra"), variables={"port": 8080})
    with engine.operation("apply") as op:          # takes the state's lease
        plan = op.plan()
        if plan.has_changes:
            result = op.apply(plan, reporter)

``Engine.plan()``/``apply()``/``destroy()`` are the same in one call. Reads that need no
lease (``drift``, ``graph``, ``outputs``, ``state``) read the backend directly.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any

from shipyard.errors import InfraError, StateError
from shipyard.infra._address import format_address, parse_address
from shipyard.infra._apply import Applier, ApplyResult, Reporter, noop_reporter, sensitive_names
from shipyard.infra._changes import Plan
from shipyard.infra._crypto import Keyring
from shipyard.infra._drift import DriftReport, find_drift
from shipyard.infra._finish import finish_plan
from shipyard.infra._graph import dot
from shipyard.infra._model import Stack
from shipyard.infra._plan import LogSink, Planner
from shipyard.infra._planfile import load_plan, plan_fingerprint, save_plan, stack_digest
from shipyard.infra._refresh import Refreshed, provider_failure
from shipyard.infra._registry import Registry
from shipyard.infra._stack import load_stack
from shipyard.infra._state import LocalBackend, default_owner
from shipyard.infra._state_model import Backend, OutputState, ResourceState, Session, State

__all__ = ["Engine", "Operation"]


class Engine:
    """A stack folder with its state and providers (see the module docstring).

    ``variables`` are the root variables' values (already typed; see
    :func:`shipyard.infra.parse_variables` for ``-var`` strings). The state lives in
    ``state_dir`` (default ``<stack>/.shipyard/state``) unless a ``backend`` is given;
    providers keep runtime files under ``data_dir`` (default ``<state_dir>/data``).
    """

    def __init__(
        self,
        stack_dir: Path,
        *,
        backend: Backend | None = None,
        registry: Registry | None = None,
        variables: Mapping[str, Any] | None = None,
        state_dir: Path | None = None,
        data_dir: Path | None = None,
        owner: str | None = None,
        keyring: Keyring | None = None,
    ) -> None:
        self.stack_dir = Path(stack_dir).resolve()
        self.state_dir = Path(state_dir) if state_dir is not None else self.stack_dir / ".shipyard" / "state"
        if backend is None:
            backend = LocalBackend(self.state_dir)
        self.backend = backend
        if keyring is None:
            keyring = backend.keyring if isinstance(backend, LocalBackend) else Keyring()
        self.keyring = keyring
        self.registry = registry if registry is not None else Registry.default()
        self.variables = dict(variables or {})
        self.data_dir = Path(data_dir) if data_dir is not None else self.state_dir / "data"
        self.owner = owner or default_owner()
        self.sink = LogSink()
        self._stack: Stack | None = None

    # ------------------------------------------------------------------ the stack

    def stack(self) -> Stack:
        """The loaded stack (ValidationError listing every mistake)."""
        if self._stack is None:
            if not self.stack_dir.is_dir():
                raise InfraError(f"{self.stack_dir}: no such stack folder")
            self._stack = load_stack(self.stack_dir, self.registry)
        return self._stack

    def stack_digest(self, variables: Mapping[str, Any] | None = None) -> str:
        return stack_digest(self.stack(), dict(self.variables if variables is None else variables))

    def sensitive_variables(self) -> set[str]:
        return {n for n, d in self.stack().variables.items() if d.sensitive}

    def planner(self, state: State, *, refresh: bool = True, parallelism: int = 10,
                refreshed: dict[str, Refreshed] | None = None,
                variables: Mapping[str, Any] | None = None) -> Planner:
        return Planner(
            self.stack(), self.registry, dict(self.variables if variables is None else variables), state,
            data_dir=self.data_dir, sink=self.sink, parallelism=parallelism, refresh=refresh,
            refreshed=refreshed,
        )

    # ------------------------------------------------------------------ sessions

    @contextmanager
    def operation(self, name: str, *, wait: float = 0.0, force_unlock: bool = False) -> Iterator[Operation]:
        """Hold the state's lease for one operation (LockedError names the holder)."""
        self.stack()  # a broken stack fails before the lease is taken
        with self.backend.session(self.owner, name, wait=wait, force_unlock=force_unlock) as session:
            yield Operation(self, session)

    def plan(self, *, targets: Sequence[str] = (), refresh: bool = True, destroy: bool = False,
             parallelism: int = 10, wait: float = 0.0) -> Plan:
        with self.operation("plan", wait=wait) as op:
            return op.plan(targets=targets, refresh=refresh, destroy=destroy, parallelism=parallelism)

    def apply(self, plan: Plan | None = None, *, targets: Sequence[str] = (), destroy: bool = False,
              parallelism: int = 10, reporter: Reporter | None = None, wait: float = 0.0) -> ApplyResult:
        """Apply ``plan`` (StateError if the state changed since it was made), or plan
        and apply at once."""
        with self.operation("destroy" if destroy else "apply", wait=wait) as op:
            if plan is None:
                plan = op.plan(targets=targets, destroy=destroy, parallelism=parallelism)
            return op.apply(plan, reporter=reporter, parallelism=parallelism)

    def destroy(self, **options: Any) -> ApplyResult:
        return self.apply(destroy=True, **options)

    def import_(self, address: str, id: str, *, wait: float = 0.0) -> ResourceState:
        """Adopt the existing thing ``id`` as the declared resource ``address``."""
        with self.operation("import", wait=wait) as op:
            return op.import_(address, id)

    # ------------------------------------------------------------------ reads

    def state(self) -> State:
        return self.backend.read()

    def outputs(self) -> dict[str, OutputState]:
        return dict(self.backend.read().outputs)

    def drift(self, *, parallelism: int = 10) -> DriftReport:
        """Read every recorded resource and report differences; writes nothing."""
        planner = self.planner(self.backend.read(), parallelism=parallelism)
        planner.run()
        root = planner.walk.root if planner.walk is not None else None
        for address, entry in planner.entries.items():
            if address in planner.refreshed:
                continue
            provider = entry.type.split("_", 1)[0]
            rtype = self.registry.resource_type(entry.type)
            ctx = planner.context(provider, planner.config_for(root, provider),
                                  planner.entry_dir(entry), address)
            planner.refreshed_entry(address, rtype, ctx)
        if planner.problems:
            raise InfraError("\n".join(planner.problems))
        return find_drift(planner)

    def graph(self) -> str:
        """The resource instances and their dependencies as Graphviz DOT."""
        state = self.backend.read()
        planner = self.planner(state, refresh=False)
        walk = planner.run()
        graph: dict[str, tuple[str, ...]] = {}
        labels: dict[str, str] = {}
        for address, inst in walk.instances.items():
            graph[address] = inst.dependencies
            labels[address] = f"{address}\n({inst.decl.type})"
        for address, entry in planner.entries.items():
            if address not in graph:
                graph[address] = tuple(entry.dependencies)
                labels[address] = f"{address}\n({entry.type}, not in the stack)"
        return dot(graph, labels=labels, name=self.stack_dir.name)

    def save_plan(self, plan: Plan, path: Path) -> None:
        """Write ``plan`` (made by an operation of this engine) to ``path``."""
        planner = plan.binding
        if not isinstance(planner, Planner):
            raise InfraError("only a plan made by this engine can be saved")
        if plan.applied:
            raise InfraError("this plan was applied already: there is nothing left to save")
        save_plan(path, plan, stack_dir=self.stack_dir, digest=self.stack_digest(planner.variables),
                  variables=planner.variables, sensitive=self.sensitive_variables(),
                  refreshed=planner.refreshed, keyring=self.keyring)


class Operation:
    """What can be done while holding the state's lease (see :meth:`Engine.operation`)."""

    def __init__(self, engine: Engine, session: Session) -> None:
        self.engine = engine
        self.session = session

    @property
    def state(self) -> State:
        return self.session.state

    def plan(self, *, targets: Sequence[str] = (), refresh: bool = True, destroy: bool = False,
             parallelism: int = 10, refreshed: dict[str, Refreshed] | None = None,
             variables: Mapping[str, Any] | None = None) -> Plan:
        """Compare the stack with the (refreshed) state; see :class:`Plan`."""
        state = self.session.state
        planner = self.engine.planner(state, refresh=refresh, parallelism=parallelism,
                                      refreshed=refreshed, variables=variables)
        walk = planner.run()
        plan = finish_plan(planner, walk, state, destroy=destroy, targets=targets)
        plan.binding = planner
        return plan

    def apply(self, plan: Plan, *, reporter: Reporter | None = None, parallelism: int = 10) -> ApplyResult:
        """Make the changes of ``plan`` (made by this operation, or another one on this
        very state); StateError if the state changed since."""
        planner = plan.binding
        if not isinstance(planner, Planner):
            raise InfraError("this plan was not made by this engine: load a saved one with load_saved")
        if plan.applied:
            raise StateError("this plan was applied already: plan again")
        # A plan made under this very lease is current (nothing else can write); any
        # other must be computed from the state as it is now.
        if planner.state is not self.session.state and plan.state_digest != self.session.state.digest():
            raise StateError("the state changed since this plan was made: plan again")
        plan.applied = True
        applier = Applier(plan, planner, self.session, reporter or noop_reporter(), parallelism)
        previous = planner.sink.target
        try:
            return applier.run()
        finally:
            planner.sink.target = previous

    def load_saved(self, path: Path, *, parallelism: int = 10) -> Plan:
        """A saved plan, computed again from what it recorded; StateError when the
        stack, the variables or the state changed since it was made."""
        engine = self.engine
        saved = load_plan(path, engine.keyring)
        if saved.stack_digest != engine.stack_digest(saved.variables):
            raise StateError(
                f"the plan {path} was made from other stack files or variables than"
                f" {engine.stack_dir} has now: plan again"
            )
        if saved.state_digest != self.session.state.digest():
            raise StateError(f"the state changed since the plan {path} was made: plan again")
        plan = self.plan(targets=saved.targets, refresh=saved.refresh, destroy=saved.destroy,
                         parallelism=parallelism, refreshed=saved.refreshed, variables=saved.variables)
        if plan_fingerprint(plan) != saved.fingerprint:
            raise StateError(
                f"the plan {path} no longer matches what the stack gives (a file it reads"
                " changed?): plan again"
            )
        return plan

    # ------------------------------------------------------------------ import

    def import_(self, address: str, id: str) -> ResourceState:
        """Adopt the existing thing ``id`` as the declared resource ``address``
        (Terraform's ``TYPE.NAME`` form is accepted too)."""
        state = self.session.state
        planner = self.engine.planner(state, refresh=False)
        walk = planner.run()
        inst = walk.instances.get(address)
        if inst is None:
            inst = _by_type_form(walk.instances, address)
        if inst is None:
            try:
                parse_address(address)
            except ValueError as err:
                raise InfraError(str(err)) from None
            raise InfraError(
                f"{address} is not declared in the stack: declare the resource first, then import it"
            )
        address = inst.address
        if address in state.resources:
            raise InfraError(
                f"{address} is already managed (id {state.resources[address].id}): run"
                f" `shipyard infra state rm {address}` first to import another thing there"
            )
        try:
            observed = inst.rtype.import_(inst.context, id)
        except Exception as err:
            raise InfraError(f"{address}: cannot import {id!r}: {provider_failure(err)}") from None
        desired: dict[str, Any] = {}
        for change in walk.changes:
            if change.address == address and change.after is not None:
                desired = {k: v for k, v in change.after.items() if not _unknownish(v)}
        properties = {**desired, **observed.properties}
        entry = ResourceState(
            address=address, type=inst.decl.type, id=id, properties=properties,
            attributes=dict(observed.attributes), dependencies=list(inst.dependencies),
            sensitive=sensitive_names(inst.sensitive, properties, dict(observed.attributes)),
            dir=inst.scope.dir,
        )
        self.session.put(entry)
        return entry

    # ------------------------------------------------------------------ state edits

    def state_remove(self, addresses: Sequence[str]) -> list[str]:
        """Forget the matching entries (the real things are left alone)."""
        from shipyard.infra._finish import match_targets

        state = self.session.state
        try:
            chosen, unmatched = match_targets(addresses, list(state.resources))
        except ValueError as err:
            raise InfraError(str(err)) from None
        if unmatched:
            raise InfraError("no resource in the state matches " + ", ".join(unmatched))
        removed = [a for a in state.resources if a in chosen]
        for address in removed:
            self.session.remove(address)
        return removed

    def state_move(self, source: str, target: str) -> list[tuple[str, str]]:
        """Rename entries: one instance, every instance of a resource, or a module's."""
        from shipyard.infra._moves import _rename

        try:
            src = parse_address(source)
            dst = parse_address(target)
        except ValueError as err:
            raise InfraError(str(err)) from None
        if (src.name is None) != (dst.name is None):
            raise InfraError("state mv moves a resource to a resource, or a module to a module")
        state = self.session.state
        moves: list[tuple[str, str]] = []
        for address in state.resources:
            try:
                where = parse_address(address.removesuffix("~deposed"))
            except ValueError:
                continue
            moved = _rename(src, dst, where)
            if moved is not None:
                suffix = address[len(address.removesuffix("~deposed")):]
                moves.append((address, format_address(moved.name, moved.key, moved.module) + suffix))
        if not moves:
            raise InfraError(f"no resource in the state matches {source}")
        moving = {old for old, _ in moves}
        for old, new in moves:
            if new in state.resources and new not in moving:
                raise InfraError(f"cannot move {old} to {new}: the state already has {new}")
        renamed = dict(moves)
        entries = {old: state.resources[old] for old, _ in moves}
        for old, new in moves:
            entry = entries[old]
            deps = [renamed.get(d, d) for d in entry.dependencies]
            self.session.put(replace(entry, address=new, dependencies=deps))
        targets = set(renamed.values())
        for old in renamed:
            if old not in targets:
                self.session.remove(old)
        for address, entry in list(state.resources.items()):
            if any(d in renamed for d in entry.dependencies) and address not in targets:
                self.session.put(replace(entry, dependencies=[renamed.get(d, d) for d in entry.dependencies]))
        return moves

    def restore(self, serial: int) -> None:
        """Make the state the content of version ``serial`` (a new version records it)."""
        self.session.restore(serial)
        self.session.commit()


def _unknownish(value: Any) -> bool:
    from shipyard.infra._eval import contains_unknown

    return contains_unknown(value)


def _by_type_form(instances: Mapping[str, Any], address: str) -> Any:
    """The instance ``address`` names in Terraform's ``[modules.M.]TYPE.NAME`` form."""
    for candidate in instances.values():
        decl = candidate.decl
        module = format_address(None, None, candidate.scope.path)
        own = format_address(decl.name, candidate.key)
        spelled = f"{module}.{decl.type}.{own}" if module else f"{decl.type}.{own}"
        if spelled == address:
            return candidate
    return None
