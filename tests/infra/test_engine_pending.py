"""Pending entries and the provider interface's ``external`` and ``find``.

Before creating an ``external`` resource the engine records a pending entry (a kill
during the call leaves a trace); a type whose resources live only in the state (``null``,
``random_*``: ``external = False``) gets none. ``find`` is a documented method that
returns None unless a type overrides it.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from shipyard.errors import ProviderError
from shipyard.infra import LocalBackend
from shipyard.infra._refresh import refresh_entry
from shipyard.infra._registry import Registry
from shipyard.infra._state_model import ResourceState
from shipyard.infra.provider import Context, Created, Observed, Property, Provider, ResourceType
from shipyard.infra.providers.null import NullData
from shipyard.infra.providers.random import RandomId, RandomInteger, RandomPassword, RandomString
from tests.infra.test_engine_types import KEY, FolderItem, make_engine


class _Witness(ResourceType):
    """Creating one writes ``<stack>/<name>.seen``: what the state (read from disk, as
    another process would) holds for it at that moment."""

    properties = {"name": Property(replace=True), "fail": Property(type="boolean", default=False)}

    def create(self, ctx: Context, properties: Mapping[str, Any]) -> Created:
        if properties.get("fail"):
            raise ProviderError(f"{properties['name']}: refused (fail is set)")
        state = LocalBackend(Path(ctx.config["state"]), key=KEY).read()
        entry = state.resources.get(str(properties["name"]))
        seen = "nothing" if entry is None else f"tainted={entry.tainted} id={entry.id!r}"
        (ctx.stack_dir / f"{properties['name']}.seen").write_text(seen)
        (ctx.stack_dir / f"{properties['name']}.thread").write_text(threading.current_thread().name)
        return Created(str(properties["name"]))

    def read(self, ctx: Context, id: str, properties: Mapping[str, Any],
             attributes: Mapping[str, Any]) -> Observed | None:
        return Observed(dict(properties))

    def delete(self, ctx: Context, id: str, properties: Mapping[str, Any],
               attributes: Mapping[str, Any]) -> None:
        return None


class WitnessThing(_Witness):
    name = "witness_thing"
    description = "Exists outside the state."


class WitnessValue(_Witness):
    name = "witness_value"
    description = "Exists only in the state."
    external = False


class WitnessProvider(Provider):
    name = "witness"
    config = {"state": Property(description="The state folder to look at.")}
    resource_types = (WitnessThing, WitnessValue)


STACK = """\
providers:
  witness: {{state: "{state}"}}
resources:
  thing:
    type: witness_thing
    properties: {{name: thing}}
  value:
    type: witness_value
    properties: {{name: value}}
"""


def test_only_external_types_get_a_pending_entry_before_create(tmp_path: Path) -> None:
    """While an external resource is created, the durable state already holds its
    pending entry (tainted, no id); while a state-only one is, it holds nothing."""
    stack = tmp_path / "s"
    engine = make_engine(stack, STACK.format(state=tmp_path / "s-state"))
    engine.registry = Registry(providers=[WitnessProvider])
    assert engine.apply().ok
    assert (stack / "thing.seen").read_text() == "tainted=True id=''"
    assert (stack / "value.seen").read_text() == "nothing"
    state = engine.state().resources
    assert (state["thing"].id, state["value"].id) == ("thing", "value")
    assert not state["thing"].tainted and not state["value"].tainted


def test_state_only_operations_run_on_the_applying_thread(tmp_path: Path) -> None:
    """An operation on a state-only resource is a few dictionary copies: the applying
    thread runs it; an external one goes to a worker thread."""
    stack = tmp_path / "s"
    engine = make_engine(stack, STACK.format(state=tmp_path / "s-state"))
    engine.registry = Registry(providers=[WitnessProvider])
    assert engine.apply().ok
    assert (stack / "value.thread").read_text() == threading.current_thread().name
    assert (stack / "thing.thread").read_text().startswith("infra-apply-")


def test_state_only_types_are_not_external() -> None:
    """null and every random type live in the state alone; a type is external unless
    it says otherwise."""
    for cls in (NullData, RandomId, RandomString, RandomPassword, RandomInteger):
        assert cls.external is False, cls.name
    assert FolderItem.external is True


def test_find_is_documented_and_returns_none_unless_overridden(tmp_path: Path) -> None:
    """ResourceType.find returns None by default and can_find tells whether a type
    overrides it; refreshing a pending entry of a type that cannot look says so."""
    null = NullData()
    ctx = Context({}, tmp_path, tmp_path)
    assert null.find(ctx, {"input": 1}) is None
    assert not NullData.can_find() and FolderItem.can_find()
    assert ResourceType.find.__doc__ and "interrupted" in ResourceType.find.__doc__
    pending = ResourceState("n", "null", "", {"input": 1}, {}, [], [], tainted=True)
    found = refresh_entry(null, ctx, pending)
    assert found.entry is None and "null cannot look for it" in found.notes[0]


def test_a_failed_create_leaves_no_entry_either_way(tmp_path: Path) -> None:
    """A create that fails leaves nothing in the state, whether a pending entry was
    written before it (external) or not (state only); fixed, the next apply creates."""
    stack = tmp_path / "s"
    text = STACK.format(state=tmp_path / "s-state").replace("{name: thing}", "{name: thing, fail: true}")
    text = text.replace("{name: value}", "{name: value, fail: true}")
    engine = make_engine(stack, text)
    engine.registry = Registry(providers=[WitnessProvider])
    result = engine.apply()
    assert sorted(f.address for f in result.failures) == ["thing", "value"]
    assert engine.state().resources == {}
    engine = make_engine(stack, STACK.format(state=tmp_path / "s-state"))
    engine.registry = Registry(providers=[WitnessProvider])
    assert engine.apply().ok and set(engine.state().resources) == {"thing", "value"}
