"""Planning: each action, its diff and reasons, masking, unknown values, expansion."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest

from shipyard.errors import InfraError, ValidationError
from shipyard.infra import UNKNOWN, Action
from shipyard.infra._render import Painter, render_plan
from tests.infra.test_engine_types import actions, events, files, make_engine

PLAIN = Painter(False)

TWO = """\
providers:
  folder: {root: world}
resources:
  a:
    type: folder_item
    properties: {name: a.txt, content: "${{ var.content }}"}
  b:
    type: "null"
    properties:
      input: "${{ resources.a.path }}:${{ resources.a.size }}"
variables:
  content: {type: string, default: one}
"""


def stack(tmp_path: Path, text: str = TWO, **variables: object):  # type: ignore[no-untyped-def]
    (tmp_path / "s" / "world").mkdir(parents=True, exist_ok=True)
    return make_engine(tmp_path / "s", text, variables=dict(variables))


def test_create_plan_shows_values_and_known_after_apply(tmp_path: Path) -> None:
    """A first plan creates everything; values from resources still to create are unknown."""
    plan = stack(tmp_path).plan()
    assert actions(plan) == {"a": "create", "b": "create"}
    b = next(c for c in plan.changes if c.address == "b")
    assert b.after is not None and b.after["input"] is UNKNOWN
    text = render_plan(plan, PLAIN)
    assert "+ a (folder_item)" in text
    assert '+ content = "one"' in text
    assert "+ input = (known after apply)" in text
    assert text.rstrip().endswith("Plan: 2 to add, 0 to change, 0 to replace, 0 to destroy.")
    assert plan.has_changes


def test_no_changes_after_apply(tmp_path: Path) -> None:
    """Right after an apply the plan is all no-ops and says so."""
    engine = stack(tmp_path)
    assert engine.apply().ok
    plan = engine.plan()
    assert set(actions(plan).values()) == {"no-op"}
    assert not plan.has_changes
    assert "No changes." in render_plan(plan, PLAIN)


def test_update_in_place_shows_the_changed_value_and_unknown_dependents(tmp_path: Path) -> None:
    """A changed updatable property is an update; what reads a non-stable attribute of
    it becomes known only after apply (and so is updated too)."""
    engine = stack(tmp_path)
    assert engine.apply().ok
    engine.variables = {"content": "two!"}
    plan = engine.plan()
    assert actions(plan) == {"a": "update", "b": "update"}
    a, b = plan.changes
    assert [(d.text, d.before, d.after, d.forces_replacement) for d in a.diffs] == [
        ("content", "one", "two!", False)
    ]
    assert b.after is not None and b.after["input"] is UNKNOWN
    text = render_plan(plan, PLAIN)
    assert '~ content = "one" → "two!"' in text
    assert "~ input = " in text and "→ (known after apply)" in text
    assert "Plan: 0 to add, 2 to change, 0 to replace, 0 to destroy." in text


def test_replace_names_the_property_that_forces_it(tmp_path: Path) -> None:
    """Changing a replace-only property plans a replacement with that reason."""
    engine = stack(tmp_path, TWO.replace("name: a.txt", "name: \"${{ var.name }}\"")
                   + "  name: {type: string, default: a.txt}\n")
    assert engine.apply().ok
    engine.variables = {"name": "renamed.txt"}
    plan = engine.plan()
    assert actions(plan)["a"] == "replace"
    a = plan.changes[0]
    assert a.reasons == ["name"]
    assert [(d.text, d.forces_replacement) for d in a.diffs] == [("name", True)]
    text = render_plan(plan, PLAIN)
    assert "-/+ a (folder_item)" in text
    assert "# forces replacement" in text
    assert "1 to replace" in text


def test_removed_resource_is_destroyed(tmp_path: Path) -> None:
    """A resource no longer declared is deleted; the plan names it."""
    engine = stack(tmp_path)
    assert engine.apply().ok
    (tmp_path / "s" / "main.yaml").write_text(TWO.split("  b:")[0] + "variables:\n  content: {type: string, default: one}\n")
    engine = make_engine(tmp_path / "s")
    plan = engine.plan()
    assert actions(plan) == {"a": "no-op", "b": "delete"}
    assert "- b (null)" in render_plan(plan, PLAIN)
    assert "1 to destroy" in render_plan(plan, PLAIN)


def test_nested_changes_are_shown_by_path(tmp_path: Path) -> None:
    """A change deep inside a value is shown at its path, not as the whole value."""
    text = 'resources:\n  n:\n    type: "null"\n    properties:\n      input: {tags: {a: 1, b: [x, y]}, keep: true}\n'
    engine = make_engine(tmp_path / "s", text)
    assert engine.apply().ok
    engine = make_engine(tmp_path / "s", text.replace("a: 1", "a: 2").replace("[x, y]", "[x, z]").replace("keep: true", "added: 1"))
    plan = engine.plan()
    diffs = [(d.text, d.before, d.after) for d in plan.changes[0].diffs]
    assert ("input.tags.a", 1, 2) in diffs
    assert ("input.tags.b[1]", "y", "z") in diffs
    assert any(d[0] == "input.keep" and d[1] is True for d in diffs)
    assert any(d[0] == "input.added" and d[2] == 1 for d in diffs)


def test_true_is_not_one(tmp_path: Path) -> None:
    """A boolean replaced by a number is a change (Python would call them equal)."""
    engine = make_engine(tmp_path / "s", 'resources:\n  n:\n    type: "null"\n    properties: {input: true}\n')
    assert engine.apply().ok
    engine = make_engine(tmp_path / "s", 'resources:\n  n:\n    type: "null"\n    properties: {input: 1}\n')
    assert actions(engine.plan()) == {"n": "update"}


SECRET = """\
providers:
  folder: {root: world}
variables:
  password: {type: string, sensitive: true}
resources:
  a:
    type: folder_item
    properties: {name: a.txt, secret: hush-1}
  b:
    type: "null"
    properties: {input: "pw=${{ var.password }}"}
"""


def test_sensitive_values_are_masked_in_plans_and_json(tmp_path: Path) -> None:
    """Sensitive properties, and values made from sensitive variables, never show."""
    engine = stack(tmp_path, SECRET, password="s3cr3t")
    plan = engine.plan()
    text = render_plan(plan, PLAIN)
    assert "+ secret = (sensitive)" in text
    assert "+ input = (sensitive)" in text
    dumped = json.dumps(plan.to_json())
    assert "hush-1" not in text and "s3cr3t" not in text
    assert "hush-1" not in dumped and "s3cr3t" not in dumped
    assert engine.apply().ok
    state_dir = tmp_path / "s-state"
    for path in state_dir.rglob("*"):
        if path.is_file():
            data = path.read_bytes()
            assert b"hush-1" not in data and b"s3cr3t" not in data, path
    engine.variables = {"password": "other"}
    plan = engine.plan()
    text = render_plan(plan, PLAIN)
    assert "~ input = (sensitive) → (sensitive)" in text
    assert "other" not in text


def test_tainted_entry_is_replaced(tmp_path: Path) -> None:
    """A resource recorded as tainted is replaced, with that reason."""
    engine = stack(tmp_path)
    assert engine.apply().ok
    with engine.backend.session("test", "taint") as session:
        session.put(replace(session.state.resources["a"], tainted=True))
    plan = engine.plan()
    a = plan.changes[0]
    assert a.action is Action.REPLACE
    assert a.reasons == ["tainted: a previous apply did not finish it"]


def test_ignore_changes_keeps_the_recorded_value(tmp_path: Path) -> None:
    """ignore_changes: a changed value in the stack or outside is not a change."""
    text = TWO.replace("    properties: {name: a.txt", "    lifecycle: {ignore_changes: [content]}\n    properties: {name: a.txt")
    engine = stack(tmp_path, text)
    assert engine.apply().ok
    engine.variables = {"content": "different"}
    (tmp_path / "s" / "world" / "a.txt").write_text("xyz")  # same size: b reads the size
    plan = engine.plan()
    assert actions(plan) == {"a": "no-op", "b": "no-op"}


def test_type_errors_are_located(tmp_path: Path) -> None:
    """A value of the wrong type from an expression is reported at file:line:col."""
    text = 'variables:\n  d: {default: soon}\nresources:\n  a:\n    type: folder_item\n    properties: {name: x, delay: "${{ var.d }}"}\n'
    with pytest.raises(ValidationError) as caught:
        stack(tmp_path, text).plan()
    message = str(caught.value)
    assert "main.yaml:6:" in message
    assert "property 'delay': expected number, got string" in message


def test_validate_problems_are_located(tmp_path: Path) -> None:
    """The resource type's own validation problems are reported where the value is."""
    text = 'providers:\n  folder: {root: world}\nresources:\n  a:\n    type: folder_item\n    properties:\n      name: "${{ \'../x\' }}"\n'
    with pytest.raises(ValidationError) as caught:
        stack(tmp_path, text).plan()
    assert "main.yaml:7:" in str(caught.value)
    assert "name: must be a plain file name" in str(caught.value)


def test_count_must_be_known_at_plan_time(tmp_path: Path) -> None:
    """count from a value known only after apply is a located error."""
    text = 'resources:\n  a:\n    type: "null"\n  b:\n    type: "null"\n    count: ${{ resources.a.output }}\n'
    with pytest.raises(ValidationError) as caught:
        make_engine(tmp_path / "s", text).plan()
    assert "main.yaml:6:" in str(caught.value)
    assert "count depends on values known only after apply" in str(caught.value)


def test_missing_required_variable(tmp_path: Path) -> None:
    """A required variable without a value is a located error telling how to set it."""
    with pytest.raises(ValidationError) as caught:
        stack(tmp_path, SECRET).plan()
    assert "variable 'password' is required: pass -var password=VALUE" in str(caught.value)


def test_variable_validation_rule(tmp_path: Path) -> None:
    """A variable's validation rule rejects a bad value with its message."""
    text = ('variables:\n  port:\n    type: integer\n    validation:\n'
            '      - condition: ${{ var.port > 1024 }}\n        message: port must be above 1024\n'
            'resources:\n  a:\n    type: "null"\n    properties: {input: "${{ var.port }}"}\n')
    with pytest.raises(ValidationError) as caught:
        make_engine(tmp_path / "s", text, variables={"port": 80}).plan()
    assert "port must be above 1024" in str(caught.value)
    assert make_engine(tmp_path / "s", variables={"port": 8080}).plan().has_changes


def test_unknown_variable_is_refused(tmp_path: Path) -> None:
    """A value for a variable the stack does not declare is an error naming it."""
    with pytest.raises(InfraError, match="no variable 'nope'"):
        stack(tmp_path, nope=1).plan()


COUNTED = """\
variables:
  n: {type: integer, default: 3}
  keys: {type: list(string), default: [x, y]}
resources:
  c:
    type: "null"
    count: ${{ var.n }}
    properties: {input: "c${{ count.index }}"}
  e:
    type: "null"
    for_each: ${{ var.keys }}
    properties: {input: "${{ each.key }}=${{ each.value }}"}
outputs:
  ids: {value: "${{ resources.c.*.id }}"}
  x: {value: "${{ resources.e['x'].output }}"}
"""


def test_count_and_for_each_changes(tmp_path: Path) -> None:
    """Fewer instances delete the last ones; a new key creates only that instance."""
    engine = make_engine(tmp_path / "s", COUNTED)
    result = engine.apply()
    assert result.ok and result.added == 5
    assert len(result.outputs["ids"].value) == 3
    assert result.outputs["x"].value == "x=x"
    engine.variables = {"n": 2, "keys": ["y", "z"]}
    plan = engine.plan()
    assert {a: x for a, x in actions(plan).items() if x != "no-op"} == {
        "c[2]": "delete", 'e["z"]': "create", 'e["x"]': "delete",
    }
    assert [o.name for o in plan.outputs if o.action is not Action.NOOP] == ["ids", "x"]
    assert engine.apply().ok
    assert not engine.plan().has_changes


def test_moved_renames_without_destroy_or_create(tmp_path: Path) -> None:
    """A moved block turns a rename into a state move: nothing destroyed or created."""
    engine = stack(tmp_path)
    assert engine.apply().ok
    before = events(tmp_path / "s" / "world")
    text = TWO.replace("  a:\n", "  first:\n").replace("resources.a.", "resources.first.")
    engine = make_engine(tmp_path / "s", text + "moved:\n  - from: a\n    to: first\n")
    plan = engine.plan()
    assert actions(plan) == {"first": "no-op", "b": "no-op"}
    assert [(f.kind, f.source, f.address) for f in plan.fixes if f.visible] == [("move", "a", "first")]
    assert "# a has moved to first" in render_plan(plan, PLAIN)
    assert plan.has_changes
    assert engine.apply().ok
    assert events(tmp_path / "s" / "world") == before
    state = engine.state()
    assert set(state.resources) == {"first", "b"}
    assert state.resources["b"].dependencies == ["first"]
    assert not engine.plan().has_changes


def test_moved_covers_every_instance_and_modules(tmp_path: Path) -> None:
    """moved without a key moves each instance; moved of a module moves what it holds."""
    module = 'variables:\n  v: {default: m}\nresources:\n  x:\n    type: "null"\n    properties: {input: "${{ var.v }}"}\n'
    text = ('resources:\n  old:\n    type: "null"\n    count: 2\n'
            'modules:\n  m1:\n    source: ./mod\n')
    engine = make_engine(tmp_path / "s", text, extra={"mod/main.yaml": module})
    assert engine.apply().ok
    ids = {a: e.id for a, e in engine.state().resources.items()}
    text = text.replace("old:", "new:").replace("m1:", "m2:")
    engine = make_engine(tmp_path / "s", text + "moved:\n  - {from: old, to: new}\n  - {from: modules.m1, to: modules.m2}\n")
    plan = engine.plan()
    assert set(actions(plan).values()) == {"no-op"}
    assert engine.apply().ok
    moved = {a: e.id for a, e in engine.state().resources.items()}
    assert moved == {"new[0]": ids["old[0]"], "new[1]": ids["old[1]"], "modules.m2.x": ids["modules.m1.x"]}


MODULE = """\
variables:
  name: {type: string}
resources:
  item:
    type: folder_item
    properties: {name: "${{ var.name }}", content: "from ${{ var.name }}"}
outputs:
  path: {value: "${{ resources.item.path }}"}
"""

TWICE = """\
providers:
  folder: {root: world}
modules:
  one:
    source: ./mod
    variables: {name: one.txt}
  two:
    source: ./mod
    variables: {name: "${{ resources.seed.output }}.txt"}
resources:
  seed:
    type: "null"
    properties: {input: two}
  user:
    type: "null"
    properties: {input: "${{ modules.one.outputs.path }},${{ modules.two.outputs.path }}"}
outputs:
  paths: {value: "${{ resources.user.output }}"}
"""


def test_module_used_twice(tmp_path: Path) -> None:
    """One module folder used twice gives two independent sets of instances; values
    flow into and out of each."""
    world = tmp_path / "s" / "world"
    text = TWICE.replace("root: world", f"root: {world}")  # not relative to the module's folder
    engine = make_engine(tmp_path / "s", text, extra={"mod/main.yaml": MODULE})
    world.mkdir()
    plan = engine.plan()
    assert actions(plan) == {
        "modules.one.item": "create", "seed": "create", "modules.two.item": "create", "user": "create",
    }
    two = next(c for c in plan.changes if c.address == "modules.two.item")
    assert two.after is not None and two.after["name"] is UNKNOWN
    assert "seed" in two.dependencies
    result = engine.apply()
    assert result.ok, result.failures
    assert files(world) == {"one.txt": "from one.txt", "two.txt": "from two.txt"}
    assert result.outputs["paths"].value == f"{world}/one.txt,{world}/two.txt"
    assert engine.state().resources["modules.two.item"].dir == "mod"
    assert not engine.plan().has_changes


def test_target_includes_its_dependencies_only(tmp_path: Path) -> None:
    """--target plans the target and what it depends on, nothing else."""
    text = TWO + '  other:\n    type: "null"\n    properties: {input: x}\n'
    text = text.replace("variables:\n  content: {type: string, default: one}\n", "") + "variables:\n  content: {type: string, default: one}\n"
    engine = stack(tmp_path, text)
    plan = engine.plan(targets=["b"])
    assert actions(plan) == {"a": "create", "b": "create"}
    result = engine.apply(targets=["b"])
    assert result.ok and result.added == 2
    assert set(engine.state().resources) == {"a", "b"}
    with pytest.raises(InfraError, match="matches no resource: nope"):
        engine.plan(targets=["nope"])


def test_destroy_target_includes_its_dependents(tmp_path: Path) -> None:
    """destroy --target removes the target and what depends on it."""
    engine = stack(tmp_path)
    assert engine.apply().ok
    plan = engine.plan(destroy=True, targets=["a"])
    assert actions(plan) == {"a": "delete", "b": "delete"}
    plan = engine.plan(destroy=True, targets=["b"])
    assert actions(plan) == {"b": "delete"}


def test_prevent_destroy_refuses_replace_and_destroy(tmp_path: Path) -> None:
    """prevent_destroy makes a plan that would destroy or replace it an error."""
    text = TWO.replace("    properties: {name: a.txt", "    lifecycle: {prevent_destroy: true}\n    properties: {name: \"${{ var.name }}\"")
    text += "  name: {type: string, default: a.txt}\n"
    engine = stack(tmp_path, text)
    assert engine.apply().ok
    engine.variables = {"name": "b.txt"}
    with pytest.raises(ValidationError, match=r"a has lifecycle\.prevent_destroy set, but this plan would replace it"):
        engine.plan()
    engine.variables = {}
    with pytest.raises(ValidationError, match="would destroy it"):
        engine.plan(destroy=True)
    assert engine.plan(destroy=True, targets=["b"]).counts["destroy"] == 1


def test_refresh_sees_a_deleted_thing_and_plans_to_create_it(tmp_path: Path) -> None:
    """A resource deleted outside is created again; --no-refresh does not notice."""
    engine = stack(tmp_path)
    assert engine.apply().ok
    (tmp_path / "s" / "world" / "a.txt").unlink()
    plan = engine.plan()
    assert actions(plan)["a"] == "create"
    assert "no longer exists" in plan.changes[0].note
    assert actions(engine.plan(refresh=False))["a"] == "no-op"


def test_values_pass_through_a_module_without_resources(tmp_path: Path) -> None:
    """A module that only passes a variable to an output: unknown at plan time, the
    real value at apply time, nested modules too."""
    inner = 'variables:\n  v: {}\noutputs:\n  out: {value: "${{ var.v }}"}\n'
    outer = ('variables:\n  v: {}\nmodules:\n  deeper:\n    source: ./inner\n    variables: {v: "${{ var.v }}"}\n'
             'outputs:\n  out: {value: "${{ modules.deeper.outputs.out }}"}\n')
    text = ('resources:\n  src:\n    type: "null"\n    properties: {input: x}\n'
            '  dst:\n    type: "null"\n    properties: {input: "${{ modules.pass.outputs.out }}"}\n'
            'modules:\n  pass:\n    source: ./outer\n    variables: {v: "${{ resources.src.id }}"}\n'
            'outputs:\n  seen: {value: "${{ resources.dst.output }}"}\n')
    engine = make_engine(tmp_path / "s", text, extra={"outer/main.yaml": outer, "outer/inner/main.yaml": inner})
    plan = engine.plan()
    dst = next(c for c in plan.changes if c.address == "dst")
    assert dst.after is not None and dst.after["input"] is UNKNOWN
    assert dst.dependencies == ("src",)
    result = engine.apply()
    assert result.ok, result.failures
    state = engine.state()
    assert state.resources["dst"].properties["input"] == state.resources["src"].id
    assert result.outputs["seen"].value == state.resources["src"].id
    assert not engine.plan().has_changes
