"""``kill -9`` of ``shipyard infra apply`` at random points, then apply again.

The real world is a folder of files (``folder_item``, loaded by the real ``shipyard``
command as an installed provider). After each kill the state and the folder must agree
(every recorded object exists; every file is recorded, at worst as a pending create),
nothing may ever be created twice, and the next apply must converge.
"""

from __future__ import annotations

import base64
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from shipyard.infra import LocalBackend
from tests.infra.test_engine_types import doubles, events, files, plugin_path

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]
SHIPYARD = str(Path(sys.executable).parent / "shipyard")
KEY = base64.b64encode(os.urandom(32)).decode()
COUNT = 200


def stack_text(version: int) -> str:
    lines = ["providers:", "  folder: {root: world}", "resources:"]
    for i in range(COUNT):
        # Version 2 renames a third of the items: replacements, half of them
        # create-before-destroy; the other versions change contents in place.
        renamed = version == 2 and i % 3 == 0
        name = f"r{i}" if renamed else f"f{i}"
        lines += [f"  i{i}:", "    type: folder_item"]
        if renamed and i % 2 == 0:
            lines.append("    lifecycle: {create_before_destroy: true}")
        lines += ["    properties:", f"      name: {name}", f"      content: v{version}-{i}",
                  "      delay: 0.002"]
    return "\n".join(lines) + "\n"


def expected(version: int) -> dict[str, str]:
    out: dict[str, str] = {}
    for i in range(COUNT):
        name = f"r{i}" if version == 2 and i % 3 == 0 else f"f{i}"
        out[name] = f"v{version}-{i}"
    return out


def shipyard(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([SHIPYARD, "infra", *args], env=env, capture_output=True, text=True, timeout=120)


def check_consistent(state_dir: Path, world: Path) -> None:
    """After a kill: what the state records exists (unless the kill came between its
    delete and the record of it: the next refresh sees it gone); what exists is
    recorded, at worst as a pending create the next apply adopts."""
    state = LocalBackend(state_dir, key=base64.b64decode(KEY)).read()
    real = files(world)
    last: dict[str, str] = {}
    for event in events(world):
        words = event.split()
        last[words[-1]] = " ".join(words[:-1])
    recorded: set[str] = set()
    pending: set[str] = set()
    for address, entry in state.resources.items():
        name = entry.properties["name"]
        if entry.tainted and not entry.id:
            pending.add(name)
            continue
        if entry.id not in real:
            assert last.get(entry.id) in ("delete", "start delete"), f"{address} ({entry.id}) is missing"
        recorded.add(entry.id)
    unrecorded = set(real) - recorded - pending
    assert not unrecorded, f"made but not recorded: {sorted(unrecorded)}"


def test_kill_9_at_random_points_then_apply_converges(tmp_path: Path) -> None:
    """Killed anywhere in an apply of 200 resources, the next apply finishes the job:
    the state matches the folder, nothing is created twice, and a plan then has nothing
    to do (four seeded kills: creates, updates, replacements, updates)."""
    rng = random.Random(20250301)
    stack = tmp_path / "stack"
    world = stack / "world"
    world.mkdir(parents=True)
    state_dir = stack / ".shipyard" / "state"
    env = {**os.environ, "PYTHONPATH": f"{plugin_path(tmp_path)}{os.pathsep}{REPO}",
           "SHIPYARD_INFRA_KEY": KEY, "NO_COLOR": "1"}
    killed = 0
    for version in range(4):
        (stack / "main.yaml").write_text(stack_text(version))
        seen = len(events(world))
        # Kill after a random number of provider calls (3 events per call: start, done).
        target = seen + rng.randint(2, COUNT)
        proc = subprocess.Popen(
            [SHIPYARD, "infra", "apply", "--yes", "--dir", str(stack), "--force-unlock"],
            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 60
        while proc.poll() is None and len(events(world)) < target and time.monotonic() < deadline:
            time.sleep(0.0005)
        time.sleep(rng.random() * 0.003)
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
            killed += 1
        proc.wait(timeout=30)
        check_consistent(state_dir, world)

        again = shipyard(env, "apply", "--yes", "--dir", str(stack), "--force-unlock")
        assert again.returncode == 0, again.stdout[-3000:] + again.stderr[-3000:]
        assert doubles(world) == []
        assert files(world) == expected(version)
        state = LocalBackend(state_dir, key=base64.b64decode(KEY)).read()
        assert sorted(e.id for e in state.resources.values()) == sorted(expected(version))
        assert not any(e.tainted for e in state.resources.values())
        plan = shipyard(env, "plan", "--dir", str(stack))
        assert plan.returncode == 0, plan.stdout[-3000:] + plan.stderr[-3000:]
    assert killed >= 3


# ---------------------------------------------------------------------- what a kill leaves


def _engine_with(tmp_path: Path, text: str):  # type: ignore[no-untyped-def]
    from tests.infra.test_engine_types import make_engine

    (tmp_path / "s" / "world").mkdir(parents=True, exist_ok=True)
    return make_engine(tmp_path / "s", text), tmp_path / "s" / "world"


ONE = "providers:\n  folder: {root: world}\nresources:\n  a:\n    type: folder_item\n    properties: {name: a, content: hi}\n"


def test_pending_create_that_made_its_thing_is_adopted(tmp_path: Path) -> None:
    """A create killed after making its file: the next plan finds it and records it
    instead of creating it again."""
    from dataclasses import replace

    engine, world = _engine_with(tmp_path, ONE)
    assert engine.apply().ok
    with engine.backend.session("test", "simulate a kill") as session:
        entry = session.state.resources["a"]
        session.put(replace(entry, id="", attributes={}, tainted=True))  # what apply writes first
    plan = engine.plan()
    assert [(f.kind, f.address, f.note) for f in plan.fixes if f.visible] == [
        ("record", "a", "found after an interrupted create: adopted")
    ]
    assert {c.address: c.action.value for c in plan.changes} == {"a": "no-op"}
    result = engine.apply()
    assert result.ok and result.added == 0
    assert engine.state().resources["a"].id == "a"
    assert not engine.state().resources["a"].tainted
    assert doubles(world) == []
    assert not engine.plan().has_changes


def test_pending_create_that_made_nothing_is_created(tmp_path: Path) -> None:
    """A create killed before making anything is simply created by the next apply."""
    from dataclasses import replace

    engine, world = _engine_with(tmp_path, ONE)
    assert engine.apply().ok
    with engine.backend.session("test", "simulate a kill") as session:
        session.put(replace(session.state.resources["a"], id="", attributes={}, tainted=True))
    (world / "a").unlink()
    plan = engine.plan()
    assert {c.address: c.action.value for c in plan.changes} == {"a": "create"}
    assert plan.changes[0].note == "a previous create was interrupted"
    assert engine.apply().ok
    assert files(world) == {"a": "hi"}


def test_pending_create_of_a_type_that_cannot_look_is_created_with_a_warning(tmp_path: Path) -> None:
    """For a type without ``find`` the plan says that whatever the interrupted create
    made is not managed, then creates it."""
    from dataclasses import replace

    from tests.infra.test_engine_types import make_engine

    engine = make_engine(tmp_path / "s", 'resources:\n  n:\n    type: "null"\n')
    assert engine.apply().ok
    with engine.backend.session("test", "simulate a kill") as session:
        session.put(replace(session.state.resources["n"], id="", attributes={}, tainted=True))
    plan = engine.plan()
    assert plan.changes[0].action.value == "create"
    assert "null cannot look for it" in plan.changes[0].note
    assert engine.apply().ok


def test_deposed_object_left_by_a_kill_is_destroyed(tmp_path: Path) -> None:
    """The old object of a create-before-destroy replacement killed before its delete is
    deleted by the next apply; a deposed duplicate of the current object is forgotten."""
    from dataclasses import replace

    engine, world = _engine_with(tmp_path, ONE)
    assert engine.apply().ok
    (world / "old").write_text("x")
    with engine.backend.session("test", "simulate a kill") as session:
        entry = session.state.resources["a"]
        session.put(replace(entry, address="a~deposed", id="old", properties={**entry.properties, "name": "old"}))
    plan = engine.plan()
    assert {c.address: c.action.value for c in plan.changes} == {"a": "no-op", "a~deposed": "delete"}
    assert engine.apply().ok
    assert files(world) == {"a": "hi"}
    assert set(engine.state().resources) == {"a"}
    with engine.backend.session("test", "simulate a kill") as session:
        session.put(replace(session.state.resources["a"], address="a~deposed"))
    plan = engine.plan()
    assert [(f.kind, f.address) for f in plan.fixes if f.visible] == [("forget", "a~deposed")]
    assert engine.apply().ok
    assert files(world) == {"a": "hi"}
