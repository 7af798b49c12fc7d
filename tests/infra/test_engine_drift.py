"""Drift beyond properties: attributes and provider notes, and how plan/apply record them.

A ``process`` replica killed by hand (the supervisor restarts it: new pid, one more
restart) and a ``command`` whose ``read`` script reports another output are drift; the
plan shows them as changed outside of Shipyard (not as updates), and apply records them
without calling the provider, after which drift is clean.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import time
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest

from shipyard.infra import UNKNOWN, Action, Engine, LocalBackend
from shipyard.infra._registry import Registry
from shipyard.infra._render import Painter, render_apply, render_drift, render_plan
from shipyard.infra.provider import (
    Attribute,
    Context,
    Created,
    Observed,
    Property,
    Provider,
    ResourceType,
)
from shipyard.infra.providers.command import CommandProvider
from shipyard.infra.providers.file import FileProvider
from shipyard.infra.providers.null import NullProvider
from shipyard.infra.providers.process import ProcessProvider
from shipyard.infra.providers.template import TemplateProvider
from tests.infra.providers.test_process import stop_everything
from tests.infra.test_cli_infra import infra
from tests.infra.test_engine_types import KEY

PLAIN = Painter(False)


class Gauge(ResourceType):
    """``gauge``: the file ``<stack>/<name>.json`` holding ``{"value": ..., "note": ...}``;
    ``value`` is an attribute, ``note`` (when set) what ``read`` says about it."""

    name = "gauge"
    description = "A value and a note in a file (for drift tests)."
    properties = {"name": Property(replace=True)}
    attributes = {"value": Attribute(type="any")}

    def create(self, ctx: Context, properties: Mapping[str, Any]) -> Created:
        path = ctx.stack_dir / f"{properties['name']}.json"
        path.write_text(json.dumps({"value": 1}))
        return Created(str(properties["name"]), {"value": 1})

    def read(self, ctx: Context, id: str, properties: Mapping[str, Any],
             attributes: Mapping[str, Any]) -> Observed | None:
        data = json.loads((ctx.stack_dir / f"{id}.json").read_text())
        notes = (data["note"],) if data.get("note") else ()
        return Observed({"name": id}, {"value": data["value"]}, notes)

    def delete(self, ctx: Context, id: str, properties: Mapping[str, Any],
               attributes: Mapping[str, Any]) -> None:
        (ctx.stack_dir / f"{id}.json").unlink(missing_ok=True)


class GaugeProvider(Provider):
    name = "gauge"
    resource_types = (Gauge,)


def engine(stack: Path, text: str, *, providers: tuple[type[Provider], ...] = ()) -> Engine:
    stack.mkdir(parents=True, exist_ok=True)
    (stack / "main.yaml").write_text(text)
    registry = Registry(providers=[NullProvider, CommandProvider, ProcessProvider, FileProvider,
                                   TemplateProvider, *providers])
    return Engine(stack, backend=LocalBackend(stack.parent / "state", key=KEY), registry=registry,
                  data_dir=stack.parent / "data")


def wait_for(condition: Callable[[], bool], timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.05)


SERVICE = """\
resources:
  svc:
    type: process
    properties:
      command: exec sleep 60
      replicas: 2
"""


@pytest.fixture
def service(tmp_path: Path) -> Iterator[Engine]:
    eng = engine(tmp_path / "stack", SERVICE)
    try:
        yield eng
    finally:
        stop_everything(tmp_path / "data" / "process")


class TestKilledReplica:
    def test_a_restart_is_drift_recorded_by_apply_without_touching_the_process(
        self, service: Engine
    ) -> None:
        """kill -9 of a replica: drift reports its pids and restarts (recorded and real)
        with the supervisor's note; the plan shows it changed outside of Shipyard, not as
        an update; apply records it without calling the provider (the restarted replica
        keeps its pid); the next drift and plan are clean."""
        assert service.apply().ok
        assert not service.drift().has_drift
        recorded = service.state().resources["svc"].attributes
        old, other = recorded["pids"]
        assert recorded["restarts"] == 0
        os.kill(old, signal.SIGKILL)

        def restarted() -> bool:
            item = next(iter(service.drift().items), None)
            return item is not None and item.notes != () and "restarted as pid" in item.notes[0]

        wait_for(restarted)
        report = service.drift()
        assert report.has_drift and [i.address for i in report.items] == ["svc"]
        item = report.items[0]
        assert item.kind == "changed" and item.diffs == []
        changed = {d.text: (d.before, d.after) for d in item.attribute_diffs}
        new = changed["pids[0]"][1]
        assert changed == {"pids[0]": (old, new), "restarts": (0, 1)} and new != old
        assert item.notes == (f"replica 0 (pid {old}) killed by signal 9 (SIGKILL); restarted as pid {new}",)
        text = render_drift(report, PLAIN)
        assert f"pids[0] (attribute): state {old}, real {new}" in text
        assert "restarts (attribute): state 0, real 1" in text
        assert f"note: replica 0 (pid {old}) killed by signal 9" in text
        as_json = report.to_json()["resources"][0]
        assert as_json["changes"] == []
        assert {"path": "pids[0]", "state": old, "real": new} in as_json["attribute_changes"]

        plan = service.plan()
        assert [c.action for c in plan.changes] == [Action.NOOP]
        assert plan.has_changes and plan.counts == {"add": 0, "change": 0, "replace": 0, "destroy": 0}
        shown = render_plan(plan, PLAIN)
        assert "Objects have changed outside of Shipyard" in shown
        assert "# svc changed outside of Shipyard" in shown
        assert f"~ pids[0] = {old} → {new}  (attribute)" in shown
        assert "will be updated" not in shown
        assert "1 object changed outside of Shipyard to record in the state." in shown
        state_changes = plan.to_json()["state_changes"]
        assert [(s["kind"], s["address"]) for s in state_changes] == [("refresh", "svc")]
        assert state_changes[0]["notes"] == list(item.notes)

        result = service.apply(plan)
        assert result.ok and result.refreshed == 1
        assert (result.added, result.changed, result.replaced, result.destroyed) == (0, 0, 0, 0)
        assert "1 changed outside of Shipyard recorded" in render_apply(result, PLAIN)
        after = service.state().resources["svc"].attributes
        assert after["pids"] == [new, other] and after["restarts"] == 1
        assert not service.drift().has_drift
        assert not service.plan().has_changes


class TestCommandRead:
    STACK = """\
resources:
  probe:
    type: command
    properties:
      create: echo one > value; cat value
      read: cat value
      delete: rm -f value
  user:
    type: "null"
    properties: {input: "${{ resources.probe.output }}"}
"""

    def test_the_read_scripts_output_is_drift_and_apply_records_it(self, tmp_path: Path) -> None:
        """The read script reporting another output is drift (the output attribute and
        the note); the plan records it and updates what uses the output; after apply,
        no drift."""
        eng = engine(tmp_path / "stack", self.STACK)
        assert eng.apply().ok
        assert not eng.drift().has_drift
        (tmp_path / "stack" / "value").write_text("two\n")
        report = eng.drift()
        assert [i.address for i in report.items] == ["probe"]
        item = report.items[0]
        assert [(d.text, d.before, d.after) for d in item.attribute_diffs] == [("output", "one", "two")]
        assert item.notes == ('the read script reports "two", not "one"',)
        plan = eng.plan()
        kinds = {c.address: c.action for c in plan.changes}
        assert kinds == {"probe": Action.NOOP, "user": Action.UPDATE}
        assert [f.kind for f in plan.fixes if f.visible] == ["refresh"]
        result = eng.apply(plan)
        assert result.ok and (result.refreshed, result.changed) == (1, 1)
        state = eng.state().resources
        assert state["probe"].attributes["output"] == "two"
        assert state["user"].attributes["output"] == "two"
        assert not eng.drift().has_drift and not eng.plan().has_changes

    def test_through_the_command_line(self, tmp_path: Path) -> None:
        """drift exits 2 showing the attribute and the note, plan exits 2 saying what
        changed outside, apply --yes records it, then drift and plan exit 0."""
        stack = tmp_path / "stack"
        stack.mkdir()
        (stack / "main.yaml").write_text(self.STACK)
        assert infra(stack, "apply", "--yes").returncode == 0
        assert infra(stack, "drift").returncode == 0
        (stack / "value").write_text("two\n")
        drift = infra(stack, "drift")
        assert drift.returncode == 2, drift.stderr
        assert 'output (attribute): state "one", real "two"' in drift.stdout
        assert 'note: the read script reports "two", not "one"' in drift.stdout
        as_json = json.loads(infra(stack, "drift", "--json").stdout)
        assert as_json["resources"][0]["attribute_changes"] == [
            {"path": "output", "state": "one", "real": "two"}
        ]
        plan = infra(stack, "plan")
        assert plan.returncode == 2
        assert "# probe changed outside of Shipyard" in plan.stdout
        assert '~ output = "one" → "two"  (attribute)' in plan.stdout
        applied = infra(stack, "apply", "--yes")
        assert applied.returncode == 0, applied.stderr
        assert "1 changed outside of Shipyard recorded" in applied.stdout
        assert infra(stack, "drift").returncode == 0
        assert infra(stack, "plan").returncode == 0


class TestNotesAndSavedPlans:
    def test_a_note_alone_is_drift_but_gives_apply_nothing_to_do(self, tmp_path: Path) -> None:
        """A provider's note with every value as recorded is drift (exit 2 material);
        the plan has nothing to do about it."""
        eng = engine(tmp_path / "stack", "resources:\n  g:\n    type: gauge\n    properties: {name: g}\n",
                     providers=(GaugeProvider,))
        assert eng.apply().ok
        (tmp_path / "stack" / "g.json").write_text(json.dumps({"value": 1, "note": "the gauge is stuck"}))
        report = eng.drift()
        assert report.has_drift
        item = report.items[0]
        assert (item.kind, item.diffs, item.attribute_diffs, item.notes) == ("changed", [], [], ("the gauge is stuck",))
        assert "note: the gauge is stuck" in render_drift(report, PLAIN)
        assert not eng.plan().has_changes

    def test_a_saved_plan_records_what_changed_outside(self, tmp_path: Path) -> None:
        """plan -out then apply FILE: what changed outside is recorded as it was read
        when planning (the real world is not read again)."""
        eng = engine(tmp_path / "stack", "resources:\n  g:\n    type: gauge\n    properties: {name: g}\n",
                     providers=(GaugeProvider,))
        assert eng.apply().ok
        (tmp_path / "stack" / "g.json").write_text(json.dumps({"value": 2}))
        saved = tmp_path / "plan.json"
        with eng.operation("plan") as op:
            eng.save_plan(op.plan(), saved)
        (tmp_path / "stack" / "g.json").write_text(json.dumps({"value": 3}))
        with eng.operation("apply") as op:
            result = op.apply(op.load_saved(saved))
        assert result.ok and result.refreshed == 1
        assert eng.state().resources["g"].attributes["value"] == 2

    def test_what_changed_outside_is_not_recorded_by_a_destroy(self, tmp_path: Path) -> None:
        eng = engine(tmp_path / "stack", "resources:\n  g:\n    type: gauge\n    properties: {name: g}\n",
                     providers=(GaugeProvider,))
        assert eng.apply().ok
        (tmp_path / "stack" / "g.json").write_text(json.dumps({"value": 2}))
        plan = eng.plan(destroy=True)
        assert [f.kind for f in plan.fixes if f.visible] == []
        assert "changed outside" not in render_plan(plan, PLAIN)
        assert eng.apply(plan).ok and eng.state().resources == {}


class TestPreparedAtApply:
    STACK = """\
resources:
  src:
    type: "null"
    properties: {input: hello}
  f:
    type: file
    properties:
      path: out.txt
      content: "${{ resources.src.output }}"
  t:
    type: template
    properties:
      path: t.txt
      template: "v=${{ vars.x }}"
      vars: {x: "${{ resources.src.output }}"}
"""

    def test_derived_properties_known_only_at_apply_are_recorded(self, tmp_path: Path) -> None:
        """Properties unknown when planning (they read another resource's output) are
        prepared once known: the state records the file's and the template's
        content_sha256, and the next plan has nothing to do."""
        eng = engine(tmp_path / "stack", self.STACK)
        plan = eng.plan()
        after = {c.address: c.after or {} for c in plan.changes}
        assert "(known after apply)" in render_plan(plan, PLAIN).split("+ f (file)")[1]
        assert after["f"]["content_sha256"] is UNKNOWN and after["t"]["content_sha256"] is UNKNOWN
        assert eng.apply(plan).ok
        state = eng.state().resources
        assert state["f"].properties["content_sha256"] == hashlib.sha256(b"hello").hexdigest()
        assert state["t"].properties["content_sha256"] == hashlib.sha256(b"v=hello").hexdigest()
        assert not eng.plan().has_changes
        assert not eng.drift().has_drift

