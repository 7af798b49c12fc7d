"""Applying: order, parallelism, partial failure, replacement order, saved plans."""

from __future__ import annotations

from pathlib import Path

import pytest

from shipyard.errors import StateError
from shipyard.infra import Action
from tests.infra.test_engine_types import PEAK, actions, events, files, make_engine


def items(n: int, *, delay: float = 0, chain: bool = False, extra: str = "") -> str:
    lines = ["providers:", "  folder: {root: world}", "resources:"]
    for i in range(n):
        lines += [f"  i{i}:", "    type: folder_item", "    properties:", f"      name: f{i}",
                  f"      delay: {delay}"]
        if chain and i:
            lines.append(f'      content: "${{{{ resources.i{i - 1}.path }}}}"')
        else:
            lines.append(f"      content: c{i}")
    return "\n".join(lines) + "\n" + extra


def setup(tmp_path: Path, text: str):  # type: ignore[no-untyped-def]
    (tmp_path / "s" / "world").mkdir(parents=True, exist_ok=True)
    return make_engine(tmp_path / "s", text), tmp_path / "s" / "world"


def test_dependencies_are_created_first_and_state_records_them(tmp_path: Path) -> None:
    """Each resource is created after what it refers to, with the values it produced."""
    engine, world = setup(tmp_path, items(4, chain=True))
    result = engine.apply()
    assert result.ok and result.added == 4
    assert [e for e in events(world) if not e.startswith("start")] == [f"create f{i}" for i in range(4)]
    state = engine.state()
    assert state.resources["i3"].properties["content"] == str(world / "f2")
    assert state.resources["i3"].dependencies == ["i2"]
    assert files(world)["f1"] == str(world / "f0")
    assert not engine.plan().has_changes


def test_parallelism_bound_is_respected_and_reached(tmp_path: Path) -> None:
    """Independent resources run in parallel, never more than --parallelism at once."""
    engine, world = setup(tmp_path, items(12, delay=0.05))
    result = engine.apply(parallelism=3)
    assert result.ok and result.added == 12
    assert PEAK[str(world)] == 3


def test_failure_stops_dependents_while_independents_finish(tmp_path: Path) -> None:
    """A failed create names the resource and the cause; what depends on it is not
    attempted; independent resources are created and recorded; fixing it converges."""
    text = """\
providers:
  folder: {root: world}
variables:
  fail: {type: boolean, default: true}
resources:
  bad:
    type: folder_item
    properties: {name: bad, fail: "${{ var.fail }}"}
  after_bad:
    type: folder_item
    properties: {name: after, content: "${{ resources.bad.path }}"}
  fine:
    type: folder_item
    properties: {name: fine, delay: 0.05}
"""
    engine, world = setup(tmp_path, text)
    result = engine.apply()
    assert not result.ok
    assert [(f.address, f.action) for f in result.failures] == [("bad", "create")]
    assert "refused (fail is set)" in result.failures[0].message
    assert str(result.failures[0]).startswith("bad: create failed: ")
    assert [a for a, _ in result.skipped] == ["after_bad"]
    assert result.added == 1
    assert set(engine.state().resources) == {"fine"}
    assert files(world) == {"fine": ""}
    engine.variables = {"fail": False}
    plan = engine.plan()
    assert {a: x for a, x in actions(plan).items()} == {"bad": "create", "after_bad": "create", "fine": "no-op"}
    assert engine.apply().ok
    assert not engine.plan().has_changes


def test_failed_update_keeps_the_recorded_state(tmp_path: Path) -> None:
    """An update that fails leaves the previous values recorded."""
    text = 'providers:\n  folder: {root: world}\nvariables:\n  c: {default: one}\n  f: {default: false}\nresources:\n  a:\n    type: folder_item\n    properties: {name: a, content: "${{ var.c }}", fail: "${{ var.f }}"}\n'
    engine, _world = setup(tmp_path, text)
    assert engine.apply().ok
    engine.variables = {"c": "two", "f": True}
    result = engine.apply()
    assert [f.action for f in result.failures] == ["update"]
    assert engine.state().resources["a"].properties["content"] == "one"


def test_destroy_goes_in_reverse_dependency_order(tmp_path: Path) -> None:
    """destroy deletes dependents before what they depend on, and empties the state."""
    engine, world = setup(tmp_path, items(3, chain=True))
    assert engine.apply().ok
    result = engine.destroy()
    assert result.ok and result.destroyed == 3
    deletes = [e for e in events(world) if e.startswith("delete")]
    assert deletes == ["delete f2", "delete f1", "delete f0"]
    assert engine.state().resources == {}
    assert files(world) == {}


REPLACED = """\
providers:
  folder: {root: world}
variables:
  name: {default: old}
resources:
  a:
    type: folder_item
    lifecycle: {create_before_destroy: CBD}
    properties: {name: "${{ var.name }}"}
  user:
    type: folder_item
    properties: {name: user, content: "${{ resources.a.path }}"}
"""


@pytest.mark.parametrize("cbd", [True, False])
def test_replacement_order(tmp_path: Path, cbd: bool) -> None:
    """create_before_destroy creates the new object, repoints dependents, then deletes
    the old one; otherwise the old one goes first."""
    engine, world = setup(tmp_path, REPLACED.replace("CBD", str(cbd).lower()))
    assert engine.apply().ok
    engine.variables = {"name": "new"}
    plan = engine.plan()
    assert actions(plan) == {"a": "replace", "user": "update"}
    result = engine.apply()
    assert result.ok and result.replaced == 1 and result.changed == 1
    log = [e for e in events(world) if not e.startswith("start")][2:]
    if cbd:
        assert log == ["create new", "update user", "delete old"]
    else:
        assert log == ["delete old", "create new", "update user"]
    assert files(world) == {"new": "", "user": str(world / "new")}
    assert set(engine.state().resources) == {"a", "user"}
    assert not engine.plan().has_changes


def test_create_before_destroy_failure_keeps_the_old_object(tmp_path: Path) -> None:
    """When the new object cannot be made, the old one stays recorded and in place."""
    text = REPLACED.replace("CBD", "true").replace('properties: {name: "${{ var.name }}"}',
                                                  'properties: {name: "${{ var.name }}", fail: "${{ var.name == \'bad\' }}"}')
    engine, world = setup(tmp_path, text)
    assert engine.apply().ok
    old_id = engine.state().resources["a"].id
    engine.variables = {"name": "bad"}
    result = engine.apply()
    assert [f.address for f in result.failures] == ["a"]
    state = engine.state()
    assert set(state.resources) == {"a", "user"}
    assert state.resources["a"].id == old_id
    assert "old" in files(world)


def test_second_apply_converges_to_no_changes(tmp_path: Path) -> None:
    """Apply twice: the second plan has nothing to do, and applying it changes nothing."""
    engine, _world = setup(tmp_path, items(5, chain=True))
    assert engine.apply().ok
    before = engine.state().digest()
    result = engine.apply()
    assert result.ok and (result.added, result.changed, result.replaced, result.destroyed) == (0, 0, 0, 0)
    assert engine.state().digest() == before


def test_saved_plan_applies_exactly_and_is_refused_when_stale(tmp_path: Path) -> None:
    """A saved plan applies what it showed; after the state or the stack changed it is
    refused."""
    engine, _world = setup(tmp_path, items(2))
    saved = tmp_path / "plan.json"
    with engine.operation("plan") as op:
        engine.save_plan(op.plan(), saved)
    with engine.operation("apply") as op:
        plan = op.load_saved(saved)
        assert actions(plan) == {"i0": "create", "i1": "create"}
        assert op.apply(plan).ok
    with engine.operation("apply") as op, pytest.raises(StateError, match="the state changed since"):
        op.load_saved(saved)

    with engine.operation("plan") as op:
        engine.save_plan(op.plan(destroy=True), saved)
    engine.destroy()
    with engine.operation("apply") as op, pytest.raises(StateError, match="state changed"):
        op.load_saved(saved)

    with engine.operation("plan") as op:
        engine.save_plan(op.plan(), saved)
    (tmp_path / "s" / "main.yaml").write_text(items(3))
    engine = make_engine(tmp_path / "s")
    with engine.operation("apply") as op, pytest.raises(StateError, match="other stack files or variables"):
        op.load_saved(saved)


def test_saved_plan_keeps_sensitive_variables_encrypted(tmp_path: Path) -> None:
    """A saved plan stores sensitive variables encrypted and still applies."""
    text = 'variables:\n  pw: {sensitive: true}\nresources:\n  n:\n    type: "null"\n    properties: {input: "${{ var.pw }}"}\n'
    engine = make_engine(tmp_path / "s", text, variables={"pw": "topsecret"})
    saved = tmp_path / "plan.json"
    with engine.operation("plan") as op:
        engine.save_plan(op.plan(), saved)
    assert b"topsecret" not in saved.read_bytes()
    engine = make_engine(tmp_path / "s")  # no variables: the plan carries them
    with engine.operation("apply") as op:
        assert op.apply(op.load_saved(saved)).ok


def test_plan_from_another_state_is_refused(tmp_path: Path) -> None:
    """apply refuses a plan made before the state changed."""
    engine, _world = setup(tmp_path, items(1))
    with engine.operation("plan") as op:
        stale = op.plan()
    assert engine.apply().ok
    with engine.operation("apply") as op, pytest.raises(StateError):
        op.apply(stale)


def test_import_adopts_an_existing_thing(tmp_path: Path) -> None:
    """import records an existing thing under a declared address (TYPE.NAME works too)."""
    engine, world = setup(tmp_path, items(3))
    (world / "f0").write_text("c0")
    (world / "f1").write_text("c1")
    with engine.operation("import") as op:
        entry = op.import_("i0", "f0")
        assert (entry.address, entry.id, entry.properties["content"]) == ("i0", "f0", "c0")
        assert op.import_("folder_item.i1", "f1").address == "i1"
        with pytest.raises(Exception, match="already managed"):
            op.import_("i0", "f0")
        with pytest.raises(Exception, match="not declared"):
            op.import_("nope", "f0")
        with pytest.raises(Exception, match="there is no missing"):
            op.import_("i2", "missing")
    plan = engine.plan()
    assert actions(plan) == {"i0": "no-op", "i1": "no-op", "i2": "create"}
    assert not [e for e in events(world) if "create" in e]


def test_state_mv_and_rm(tmp_path: Path) -> None:
    """state mv renames entries (and the dependencies naming them); state rm forgets."""
    engine, world = setup(tmp_path, items(3, chain=True))
    assert engine.apply().ok
    with engine.operation("state mv") as op:
        assert op.state_move("i0", "zero") == [("i0", "zero")]
        with pytest.raises(Exception, match="already has i2"):
            op.state_move("i1", "i2")
    state = engine.state()
    assert set(state.resources) == {"zero", "i1", "i2"}
    assert state.resources["i1"].dependencies == ["zero"]
    with engine.operation("state rm") as op:
        assert op.state_remove(["zero"]) == ["zero"]
        with pytest.raises(Exception, match="matches nope"):
            op.state_remove(["nope"])
    assert set(engine.state().resources) == {"i1", "i2"}
    assert "f0" in files(world)
    plan = engine.plan()
    assert actions(plan)["i0"] == "create"


def test_drift_reports_an_edit_and_a_deletion_without_writing(tmp_path: Path) -> None:
    """drift reads the real world, reports each difference and writes nothing."""
    engine, world = setup(tmp_path, items(3))
    assert engine.apply().ok
    before = engine.state().digest()
    versions = len(engine.backend.versions())
    assert not engine.drift().has_drift
    (world / "f0").write_text("edited")
    (world / "f1").unlink()
    report = engine.drift()
    assert report.has_drift and report.checked == 3
    found = {item.address: item for item in report.items}
    assert found["i0"].kind == "changed"
    assert [(d.text, d.before, d.after) for d in found["i0"].diffs] == [("content", "c0", "edited")]
    assert found["i1"].kind == "gone"
    assert "i2" not in found
    assert engine.state().digest() == before
    assert len(engine.backend.versions()) == versions
    plan = engine.plan()
    assert {a: x for a, x in actions(plan).items() if x != "no-op"} == {"i0": "update", "i1": "create"}


def test_outputs_are_recorded_and_removed_on_destroy(tmp_path: Path) -> None:
    """Outputs are stored after apply (sensitive flag kept) and cleared by destroy."""
    text = items(1) + 'outputs:\n  p: {value: "${{ resources.i0.path }}"}\n  s: {value: x, sensitive: true}\n'
    engine, world = setup(tmp_path, text)
    result = engine.apply()
    assert result.outputs["p"].value == str(world / "f0")
    outputs = engine.outputs()
    assert outputs["s"].sensitive and outputs["s"].value == "x"
    assert engine.destroy().ok
    assert engine.outputs() == {}


def test_plan_actions_cover_replace_update_delete_together(tmp_path: Path) -> None:
    """One apply creating, updating, replacing and deleting reports each count."""
    engine, world = setup(tmp_path, items(3))
    assert engine.apply().ok
    text = items(3).replace("content: c0", "content: changed").replace("name: f1", "name: g1")
    text = text.split("  i2:")[0] + "  i3:\n    type: folder_item\n    properties: {name: f3}\n"
    engine = make_engine(tmp_path / "s", text)
    plan = engine.plan()
    assert [c.action for c in plan.actions] == [Action.UPDATE, Action.REPLACE, Action.CREATE, Action.DELETE]
    assert plan.summary() == "Plan: 1 to add, 1 to change, 1 to replace, 1 to destroy."
    result = engine.apply()
    assert (result.added, result.changed, result.replaced, result.destroyed) == (1, 1, 1, 1)
    assert files(world) == {"f0": "changed", "g1": "c1", "f3": ""}
