"""Applying a plan: provider calls in dependency order, recorded one by one.

The plan's operations (see :mod:`shipyard.infra._operations` for their order) run up
to ``parallelism`` at once on worker threads; the scheduler (the calling thread) starts
operations as their predecessors finish and reports progress. Operations on resources
that exist only in the state (``null``) are a few dictionary copies: the scheduler runs
those itself.
Every provider call is recorded in the state (``Session.put``/``remove``, durable when
they return) before anything that depends on it starts. Before ``create`` is called on
an ``external`` resource type a *pending* entry is recorded (see
:mod:`shipyard.infra._refresh`), so that a process killed during the call leaves a trace
the next plan acts on; a type whose resources exist only in the state (``null``,
``random_*``) needs none, nor that its records reach the disk before the next operation
starts (see :class:`~shipyard.infra._state_model.Session`). A failed operation stops
what depends on it; independent operations carry on.
"""

from __future__ import annotations

import queue
import signal
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from types import FrameType
from typing import Any, Protocol

from shipyard.errors import InfraError, LocatedError, StateError
from shipyard.infra._changes import DEPOSED, Action, Change, Plan
from shipyard.infra._eval import UNKNOWN, TreeError, contains_unknown, evaluate_tree, expose
from shipyard.infra._operations import Op, build_operations
from shipyard.infra._plan import Planner
from shipyard.infra._refresh import provider_failure
from shipyard.infra._scope import evaluate_output
from shipyard.infra._state_model import OutputState, ResourceState, Session
from shipyard.workflow.expressions import EvalContext

__all__ = ["Applier", "ApplyResult", "Failure", "Reporter"]


class Reporter(Protocol):
    """Receives apply progress; called from the applying thread (``log`` from any)."""

    def starting(self, address: str, action: str) -> None: ...

    def finished(self, address: str, action: str, seconds: float, detail: str) -> None: ...

    def failed(self, address: str, action: str, seconds: float, message: str) -> None: ...

    def skipped(self, address: str, reason: str) -> None: ...

    def log(self, address: str, message: str) -> None: ...


@dataclass(frozen=True, slots=True)
class Failure:
    """An operation that failed: ``message`` names the cause."""

    address: str
    action: str
    message: str

    def __str__(self) -> str:
        return f"{self.address}: {self.action} failed: {self.message}"


@dataclass(slots=True)
class ApplyResult:
    """What an apply did."""

    added: int = 0
    changed: int = 0
    replaced: int = 0
    destroyed: int = 0
    refreshed: int = 0  # objects changed outside Shipyard, recorded as read
    failures: list[Failure] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (address, why)
    seconds: float = 0.0
    interrupted: bool = False
    outputs: dict[str, OutputState] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.failures and not self.skipped and not self.interrupted


def sensitive_names(sensitive: frozenset[str], props: dict[str, Any], attrs: dict[str, Any]) -> list[str]:
    """The names to record as sensitive: ``sensitive``, and the attributes that repeat a
    sensitive property's value (``null``'s ``output`` mirrors its ``input``)."""
    names = set(sensitive)
    secrets = [props[n] for n in sensitive if props.get(n) is not None]
    if secrets:
        for name, value in attrs.items():
            if name in names or value is None:
                continue
            if any(value == s or (type(s) is str and len(s) >= 3 and type(value) is str and s in value)
                   for s in secrets):
                names.add(name)
    return sorted(names)


class OpError(Exception):
    pass


class Applier:
    """Runs the operations of one plan in one session."""

    def __init__(self, plan: Plan, planner: Planner, session: Session, reporter: Reporter,
                 parallelism: int = 10) -> None:
        if parallelism < 1:
            raise InfraError("parallelism must be at least 1")
        self.plan = plan
        self.planner = planner
        self.session = session
        self.reporter = reporter
        self.parallelism = parallelism
        self.result = ApplyResult()
        self._fatal: str | None = None
        self._delete_contexts = planner.delete_contexts

    # ------------------------------------------------------------------ scheduling

    def run(self) -> ApplyResult:
        started = time.perf_counter()
        self.planner.sink.target = self.reporter.log
        self._apply_fixes()
        ops = build_operations(self.plan)
        try:
            self._schedule(ops)
        finally:
            self._record_outputs()
            self.result.seconds = time.perf_counter() - started
        return self.result

    def _apply_fixes(self) -> None:
        session = self.session
        for fix in self.plan.fixes:
            if fix.kind == "move" and fix.entry is not None:
                session.put(fix.entry)
                if fix.source is not None:
                    session.remove(fix.source)
            elif fix.kind in ("record", "refresh") and fix.entry is not None:
                session.put(fix.entry)
                if fix.kind == "refresh":
                    self.result.refreshed += 1
            elif fix.kind == "forget":
                session.remove(fix.address)

    def _schedule(self, ops: list[Op]) -> None:
        ready = deque(op for op in ops if op.waiting == 0)
        todo: queue.SimpleQueue[Op | None] = queue.SimpleQueue()
        done: queue.SimpleQueue[tuple[Op, float, str | None, str] | None] = queue.SimpleQueue()
        workers: list[threading.Thread] = []
        running = 0
        remaining = len(ops)
        stopping = False
        reporter = self.reporter
        restore = self._catch_interrupt(done)
        try:
            while remaining:
                while ready and running < self.parallelism and not stopping:
                    op = ready.popleft()
                    reporter.starting(op.change.address, op.label)
                    if not self._external(op):
                        # A few dictionary copies: handing them to a worker thread and
                        # back would cost more than doing them.
                        self._settle(op, *self._attempt(op), ready)
                        remaining -= 1
                        stopping = self._fatal is not None or self.result.interrupted
                        continue
                    if len(workers) <= running:  # every worker is busy: one more
                        worker = threading.Thread(target=self._work, args=(todo, done),
                                                  name=f"infra-apply-{len(workers)}", daemon=True)
                        worker.start()
                        workers.append(worker)
                    todo.put(op)
                    running += 1
                if running == 0:
                    break
                item = done.get()
                if item is None:  # Ctrl-C: let what runs finish (and be recorded), start nothing
                    stopping = True
                    reporter.log("apply", f"interrupted: waiting for {running} running change(s) to finish")
                    continue
                running -= 1
                remaining -= 1
                self._settle(*item, ready)
                if self._fatal is not None:
                    stopping = True
        finally:
            restore()
            for _ in workers:
                todo.put(None)
        for op in ops:
            if not op.done:
                why = "interrupted" if self.result.interrupted else (
                    "not attempted: " + (self._fatal or "it depends on a change that failed")
                )
                self.result.skipped.append((op.change.address, why))
                reporter.skipped(op.change.address, why)

    def _external(self, op: Op) -> bool:
        """Whether ``op`` touches something outside the state (worth a worker thread)."""
        if op.kind == "delete":
            found = self._delete_contexts.get(op.change.address)
            return found is None or found[0].external
        inst = op.change.instance
        return inst is None or inst.rtype.external

    def _settle(self, op: Op, seconds: float, error: str | None, detail: str, ready: deque[Op]) -> None:
        """Count and report a finished operation; queue what it made ready."""
        op.done = True
        if error is None:
            self._count(op)
            self.reporter.finished(op.change.address, op.label, seconds, detail)
            for succ in op.succs:
                succ.waiting -= 1
                if succ.waiting == 0:
                    ready.append(succ)
        else:
            self.result.failures.append(Failure(op.change.address, op.label, error))
            self.reporter.failed(op.change.address, op.label, seconds, error)

    def _catch_interrupt(self, done: queue.SimpleQueue[Any]) -> Callable[[], None]:
        """Turn the first Ctrl-C into a graceful stop (a second one stops at once).

        Only the main thread receives signals; elsewhere this does nothing.
        """
        if threading.current_thread() is not threading.main_thread():
            return lambda: None
        previous = signal.getsignal(signal.SIGINT)

        def interrupted(signum: int, frame: FrameType | None) -> None:
            if self.result.interrupted:
                signal.signal(signal.SIGINT, previous)
                raise KeyboardInterrupt
            self.result.interrupted = True
            done.put(None)  # SimpleQueue.put may be called from a signal handler

        signal.signal(signal.SIGINT, interrupted)

        def restore() -> None:
            signal.signal(signal.SIGINT, previous)

        return restore

    def _count(self, op: Op) -> None:
        result = self.result
        if op.replacing:
            if op.kind == "create":
                result.replaced += 1
        elif op.kind == "create":
            result.added += 1
        elif op.kind == "update":
            result.changed += 1
        else:
            result.destroyed += 1

    def _work(self, todo: queue.SimpleQueue[Op | None],
              done: queue.SimpleQueue[tuple[Op, float, str | None, str] | None]) -> None:
        while True:
            op = todo.get()
            if op is None:
                return
            done.put((op, *self._attempt(op)))

    def _attempt(self, op: Op) -> tuple[float, str | None, str]:
        """Run ``op``: the seconds it took, the error (None if it succeeded), the detail
        to show."""
        started = time.perf_counter()
        error: str | None = None
        detail = ""
        try:
            detail = self._run(op)
        except OpError as err:
            error = str(err)
        except StateError as err:
            error = f"the state could not be recorded: {err}"
            self._fatal = error
        except Exception as err:
            error = provider_failure(err)
        return time.perf_counter() - started, error, detail

    # ------------------------------------------------------------------ operations

    def _run(self, op: Op) -> str:
        if op.kind == "delete":
            return self._delete(op)
        if op.kind == "update":
            return self._update(op)
        return self._create(op)

    def _final(self, change: Change) -> dict[str, Any]:
        """The properties to apply: if some were unknown at plan time, evaluated again
        now that what they read exists, checked, and prepared (``ResourceType.prepare``
        fills in derived properties, such as a file's ``content_sha256``, which were
        unknown too), as planning does for known values."""
        after = change.after
        assert after is not None
        inst = change.instance
        if inst is None or not any(contains_unknown(v) for v in after.values()):
            return after
        each = inst.extra.get("each")
        if each is not None and contains_unknown(each.get("value")) and inst.decl.for_each is not None:
            try:
                values = evaluate_tree(inst.decl.for_each, EvalContext(inst.scope.contexts()))
            except TreeError as err:
                raise OpError(err.error.message) from None
            if type(values) is dict:
                inst.extra = {**inst.extra, "each": {"key": inst.key, "value": expose(values.get(inst.key))}}
        errors: list[LocatedError] = []
        props = self.planner.desired(inst, False, errors)
        if props is None:
            raise OpError("; ".join(str(e) for e in errors))
        ignored = inst.decl.lifecycle.ignore_changes
        prior = change.prior
        if ignored and prior is not None and change.action is not Action.REPLACE:
            for name in inst.rtype.properties if "*" in ignored else ignored:
                if name in prior.properties:
                    props[name] = prior.properties[name]
        unknown = [name for name, value in props.items() if contains_unknown(value)]
        if unknown:
            raise OpError("still not known after its dependencies were applied: " + ", ".join(unknown))
        return props

    def _entry(self, change: Change, id: str, props: dict[str, Any], attrs: dict[str, Any],
               *, tainted: bool = False) -> ResourceState:
        inst = change.instance
        assert inst is not None
        return ResourceState(
            address=change.address,
            type=change.type,
            id=id,
            properties=props,
            attributes=attrs,
            dependencies=list(change.dependencies),
            sensitive=sensitive_names(change.sensitive, props, attrs),
            dir=inst.scope.dir,
            tainted=tainted,
        )

    def _publish(self, change: Change, entry: ResourceState) -> None:
        inst = change.instance
        if inst is not None:
            value = {**entry.properties, **entry.attributes, "id": entry.id}
            inst.scope.set_instance(inst.decl.name, inst.key, value)

    def _create(self, op: Op) -> str:
        change = op.change
        inst = change.instance
        assert inst is not None
        props = self._final(change)
        session = self.session
        prior = change.prior
        rtype = inst.rtype
        # What exists only in the state needs no record of its own on disk before what
        # depends on it goes on: records reach the disk in order, so the first durable
        # one after it (or the commit) carries it too.
        durable = rtype.external
        if op.cbd and prior is not None:
            session.put(replace(prior, address=change.address + DEPOSED), durable=durable)
        if durable:
            session.put(self._entry(change, "", props, {}, tainted=True))
        try:
            created = rtype.create(inst.context, props)
        except BaseException:
            if op.cbd and prior is not None:
                session.put(prior, durable=durable)
                session.remove(change.address + DEPOSED, durable=durable)
            else:
                session.remove(change.address, durable=durable)
            raise
        entry = self._entry(change, created.id, props, dict(created.attributes))
        session.put(entry, durable=durable)
        self._publish(change, entry)
        return f"[id={created.id}]"

    def _update(self, op: Op) -> str:
        change = op.change
        inst = change.instance
        prior = change.prior
        assert inst is not None and prior is not None
        props = self._final(change)
        attrs = inst.rtype.update(inst.context, prior.id, prior.properties, props, prior.attributes)
        entry = self._entry(change, prior.id, props, {**prior.attributes, **(attrs or {})})
        self.session.put(entry, durable=inst.rtype.external)
        self._publish(change, entry)
        return ""

    def _delete(self, op: Op) -> str:
        change = op.change
        prior = change.prior
        assert prior is not None
        found = self._delete_contexts.get(change.address)
        if found is None:
            raise InfraError(f"{change.address}: no provider context to delete it with")
        rtype, ctx = found
        address = change.address + DEPOSED if op.cbd and not change.deposed else change.address
        rtype.delete(ctx, prior.id, prior.properties, prior.attributes)
        self.session.remove(address, durable=rtype.external)
        return ""

    # ------------------------------------------------------------------ outputs

    def _record_outputs(self) -> None:
        plan = self.plan
        state = self.session.state
        if plan.destroy:
            if not plan.targets:
                self.session.set_outputs({}, durable=False)
            self.result.outputs = dict(self.session.state.outputs)
            return
        root = self.planner.walk.root if self.planner.walk is not None else None
        if root is None:
            return
        ctx = EvalContext(root.contexts())
        outputs: dict[str, OutputState] = {}
        sensitive = {o.name: o.sensitive for o in plan.outputs}
        for name, decl in root.stack.outputs.items():
            value = evaluate_output(decl, ctx)
            if contains_unknown(value) or value is UNKNOWN:
                previous = state.outputs.get(name)
                if previous is not None:
                    outputs[name] = previous
                continue
            outputs[name] = OutputState(value, sensitive.get(name, decl.sensitive))
        # Outputs are computed from the resources: the commit ending the session records
        # them, and an apply after a crash before it computes them again.
        self.session.set_outputs(outputs, durable=False)
        self.result.outputs = outputs


def noop_reporter() -> Reporter:
    """A reporter that drops everything (for callers that do not show progress)."""

    class _Quiet:
        def starting(self, address: str, action: str) -> None:
            pass

        def finished(self, address: str, action: str, seconds: float, detail: str) -> None:
            pass

        def failed(self, address: str, action: str, seconds: float, message: str) -> None:
            pass

        def skipped(self, address: str, reason: str) -> None:
            pass

        def log(self, address: str, message: str) -> None:
            pass

    return _Quiet()

