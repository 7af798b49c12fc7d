"""The local state backend: what goes in comes back out, across versions and processes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import pytest

from shipyard.errors import StateError
from shipyard.infra._state import (
    KEEP_VERSIONS,
    LocalBackend,
    OutputState,
    ResourceState,
    State,
)

KEY = bytes(range(32))


def resource(address: str, value: Any = 1, **extra: Any) -> ResourceState:
    return ResourceState(
        address=address,
        type=extra.pop("type", "null"),
        id=extra.pop("id", f"id-{address}"),
        properties={"value": value, **extra.pop("properties", {})},
        attributes=extra.pop("attributes", {"n": 1}),
        dependencies=extra.pop("dependencies", []),
        sensitive=extra.pop("sensitive", []),
        **extra,
    )


@pytest.fixture
def backend(tmp_path: Path) -> LocalBackend:
    return LocalBackend(tmp_path / "state", key=KEY)


def reopen(backend: LocalBackend) -> LocalBackend:
    return LocalBackend(backend.dir, key=KEY)


class TestRoundTrip:
    def test_a_missing_state_reads_as_empty(self, backend: LocalBackend) -> None:
        """No folder at all is an empty state with no lineage, version 0, no lease."""
        state = backend.read()
        assert state == State("", 0, {}, {})
        assert backend.versions() == []
        assert backend.lock_info() is None

    def test_every_field_survives_a_commit_and_a_new_backend(self, backend: LocalBackend) -> None:
        """Nested values, unicode, floats, nulls, dir, tainted and outputs round-trip."""
        rich = ResourceState(
            address='modules.api[0].web["a"]',
            type="process",
            id="4121",
            properties={
                "command": ["python", "-m", "http.server"],
                "env": {"GREETING": "héllo ✓", "EMPTY": "", "NULL": None},
                "ratio": 0.1,
                "big": 2**62,
                "flag": True,
            },
            attributes={"pid": 4121, "ports": [{"host": 8080}]},
            dependencies=["db", "modules.api[0].net"],
            sensitive=[],
            dir="modules/service",
            tainted=True,
        )
        outputs = {"url": OutputState("http://x", False), "n": OutputState([1, {"a": None}], False)}
        with backend.session("alice@host", "apply") as s:
            s.put(rich)
            s.put(resource("db"))
            s.set_outputs(outputs)
        state = reopen(backend).read()
        assert state.resources == {rich.address: rich, "db": resource("db")}
        assert state.outputs == outputs
        assert state.serial == 1
        assert len(state.lineage) == 32

    def test_uncommitted_changes_are_read_back_from_the_journal(
        self, backend: LocalBackend
    ) -> None:
        """Before any commit, a reader sees every put, remove and output change."""
        s = backend.session("alice@host", "apply")
        try:
            s.put(resource("a"))
            s.put(resource("b"))
            s.put(resource("a", 2))
            s.remove("b")
            s.set_outputs({"o": OutputState(3)})
            state = reopen(backend).read()
            assert state.resources == {"a": resource("a", 2)}
            assert state.outputs == {"o": OutputState(3)}
            assert state.serial == 0
        finally:
            s.close()

    def test_the_session_keeps_a_normalized_copy(self, backend: LocalBackend) -> None:
        """Tuples read back as lists and changing the object after put changes nothing."""
        rs = resource("a", properties={"t": (1, 2)})
        with backend.session("alice@host", "apply") as s:
            s.put(rs)
            rs.properties["value"] = "changed afterwards"
            assert s.state.resources["a"].properties == {"value": 1, "t": [1, 2]}
        assert backend.read().resources["a"].properties == {"value": 1, "t": [1, 2]}

    def test_a_value_json_cannot_hold_is_refused_naming_the_resource(
        self, backend: LocalBackend
    ) -> None:
        with backend.session("alice@host", "apply") as s:
            with pytest.raises(StateError, match=r"resource web cannot be recorded"):
                s.put(resource("web", object()))
            with pytest.raises(StateError, match="web"):
                s.put(resource("web", float("nan")))
            assert s.state.resources == {}
            assert not s.changed

    def test_the_digest_is_the_same_in_another_process(self, backend: LocalBackend) -> None:
        """A saved plan made by one process is checked by another: same content, same digest."""
        with backend.session("alice@host", "apply") as s:
            for i in range(20):
                s.put(resource(f"r{i}", {"k": [i, 1.5, None], "z": "é"}))
            s.set_outputs({"o": OutputState({"b": 1, "a": 2})})
        digest = backend.read().digest()
        code = (
            "import sys; from pathlib import Path; from shipyard.infra._state import LocalBackend;"
            "print(LocalBackend(Path(sys.argv[1]), key=bytes(range(32))).read().digest())"
        )
        out = subprocess.run(
            [sys.executable, "-c", code, str(backend.dir)],
            capture_output=True,
            text=True,
            check=True,
            env={**os.environ, "PYTHONHASHSEED": "12345"},
        )
        assert out.stdout.strip() == digest

    def test_the_digest_follows_content_not_insertion_order_or_serial(self) -> None:
        a = State("L", 1, {"x": resource("x"), "y": resource("y")}, {})
        b = State("L", 7, {"y": resource("y"), "x": resource("x")}, {})
        assert a.digest() == b.digest()
        b.resources["y"].properties["value"] = 2
        assert a.digest() != b.digest()
        assert State("L").digest() != State("M").digest()

    def test_an_unchanged_put_writes_nothing(self, backend: LocalBackend) -> None:
        """Recording what is already recorded makes no version and no journal."""
        with backend.session("alice@host", "apply") as s:
            s.put(resource("a"))
        with backend.session("alice@host", "apply") as s:
            s.put(resource("a"))
            s.remove("missing")
            assert not s.changed
            assert not backend.journal_path.exists()
        assert [v.serial for v in backend.versions()] == [1]

    def test_puts_from_many_threads_all_survive_a_reopen(self, backend: LocalBackend) -> None:
        """1,000 puts from 10 threads, then a new backend reads all 1,000."""
        with backend.session("alice@host", "apply") as s:

            def work(t: int) -> None:
                for i in range(100):
                    s.put(resource(f"t{t}-{i}", i))

            threads = [threading.Thread(target=work, args=(t,)) for t in range(10)]
            for th in threads:
                th.start()
            for th in threads:
                th.join()
            # Before the commit: the journal alone must hold them all.
            assert len(reopen(backend).read().resources) == 1000
        state = reopen(backend).read()
        assert len(state.resources) == 1000
        assert state.resources["t7-99"] == resource("t7-99", 99)


class TestSessionLifecycle:
    def test_exit_commits_even_when_the_block_raised(self, backend: LocalBackend) -> None:
        with pytest.raises(RuntimeError), backend.session("alice@host", "apply") as s:
            s.put(resource("a"))
            raise RuntimeError("provider failed")
        assert [v.operation for v in backend.versions()] == ["apply"]
        assert backend.lock_info() is None
        assert not backend.journal_path.exists()

    def test_a_session_that_changed_nothing_writes_no_version(self, backend: LocalBackend) -> None:
        with backend.session("alice@host", "plan") as s:
            assert s.state.resources == {}
        assert backend.versions() == []

    def test_lineage_is_set_by_the_first_commit_and_kept(self, backend: LocalBackend) -> None:
        with backend.session("alice@host", "apply") as s:
            s.put(resource("a"))
            assert s.state.lineage == ""
            s.commit()
            lineage = s.state.lineage
            assert s.state.serial == 1
            s.put(resource("b"))
        state = backend.read()
        assert (state.lineage, state.serial) == (lineage, 2)

    def test_a_closed_session_refuses_changes(self, backend: LocalBackend) -> None:
        s = backend.session("alice@host", "apply")
        s.close()
        with pytest.raises(StateError, match="closed"):
            s.put(resource("a"))

    def test_closing_without_commit_leaves_the_journal_for_the_next_session(
        self, backend: LocalBackend
    ) -> None:
        """The next session replays it and stores it at once as a recovered version."""
        s = backend.session("alice@host", "apply")
        s.put(resource("a"))
        s.close()
        with backend.session("bob@host", "plan") as s2:
            assert s2.state.resources == {"a": resource("a")}
            assert not s2.changed
        [version] = backend.versions()
        assert (version.operation, version.resources, version.owner) == (
            "apply (recovered)",
            1,
            "bob@host",
        )
        assert not backend.journal_path.exists()


    def test_a_change_that_need_not_be_durable_reaches_the_disk_in_order(
        self, backend: LocalBackend
    ) -> None:
        """A put/remove/set_outputs with durable=False returns before it is on disk;
        the next durable change carries it (order is kept), as does the commit; a
        session closed before either loses only those changes."""
        with backend.session("alice@host", "apply") as s:
            s.put(resource("a"), durable=False)
            s.set_outputs({"o": OutputState(1, False)}, durable=False)
            assert reopen(backend).read().resources == {}
            s.put(resource("b"))
            on_disk = reopen(backend).read()
            assert set(on_disk.resources) == {"a", "b"} and on_disk.outputs["o"].value == 1
            s.remove("b", durable=False)
            s.put(resource("c"), durable=False)
        state = reopen(backend).read()
        assert set(state.resources) == {"a", "c"}
        s = backend.session("alice@host", "apply")
        s.put(resource("d"), durable=False)
        s.close()
        assert set(reopen(backend).read().resources) == {"a", "c"}


class TestVersions:
    def test_versions_list_serial_operation_time_count_and_size(
        self, backend: LocalBackend
    ) -> None:
        for op, n in (("apply", 3), ("destroy", 1)):
            with backend.session("alice@host", op) as s:
                for a in list(s.state.resources):
                    s.remove(a)
                for i in range(n):
                    s.put(resource(f"r{i}"))
        v1, v2 = backend.versions()
        assert (v1.serial, v1.operation, v1.resources, v1.owner) == (1, "apply", 3, "alice@host")
        assert (v2.serial, v2.operation, v2.resources) == (2, "destroy", 1)
        assert v1.size == backend.version_path(1).stat().st_size
        assert v1.time <= v2.time
        assert v1.time.tzinfo is not None

    def test_restore_makes_an_old_version_current_as_a_new_version(
        self, backend: LocalBackend
    ) -> None:
        with backend.session("alice@host", "apply") as s:
            s.put(resource("a"))
            s.set_outputs({"o": OutputState(1)})
        with backend.session("alice@host", "apply") as s:
            s.put(resource("b"))
            s.set_outputs({"o": OutputState(2)})
        with backend.session("alice@host", "state restore") as s:
            s.restore(1)
            assert set(s.state.resources) == {"a"}
        state = backend.read()
        assert set(state.resources) == {"a"}
        assert state.outputs == {"o": OutputState(1)}
        assert [(v.serial, v.operation) for v in backend.versions()] == [
            (1, "apply"),
            (2, "apply"),
            (3, "state restore"),
        ]
        assert set(backend.read_version(2).resources) == {"a", "b"}

    def test_a_restore_not_yet_committed_is_replayed_from_the_journal(
        self, backend: LocalBackend
    ) -> None:
        with backend.session("alice@host", "apply") as s:
            s.put(resource("a"))
        with backend.session("alice@host", "apply") as s:
            s.put(resource("b"))
        s = backend.session("alice@host", "state restore")
        s.restore(1)
        s.put(resource("c"))
        s.close()
        assert set(reopen(backend).read().resources) == {"a", "c"}

    def test_reading_a_version_that_is_not_kept_names_those_that_are(
        self, backend: LocalBackend
    ) -> None:
        with backend.session("alice@host", "apply") as s:
            s.put(resource("a"))
        with pytest.raises(StateError, match=r"version 9 .* not stored \(versions 1 to 1 are"):
            backend.read_version(9)
        with backend.session("alice@host", "apply") as s, pytest.raises(StateError):
            s.restore(9)

    def test_only_the_last_100_versions_are_kept(self, backend: LocalBackend) -> None:
        assert KEEP_VERSIONS == 100
        with backend.session("alice@host", "apply") as s:
            for i in range(105):
                s.put(resource("a", i))
                s.commit()
        serials = [v.serial for v in backend.versions()]
        assert serials == list(range(6, 106))
        assert sorted(os.listdir(backend.versions_dir)) == [f"{n:08d}.json" for n in serials]
        assert backend.read_version(6).resources["a"].properties["value"] == 5
        with pytest.raises(StateError, match="not stored"):
            backend.read_version(5)

    def test_keep_versions_is_configurable(self, tmp_path: Path) -> None:
        backend = LocalBackend(tmp_path, key=KEY, keep_versions=2)
        for i in range(4):
            with backend.session("alice@host", "apply") as s:
                s.put(resource("a", i))
        assert [v.serial for v in backend.versions()] == [3, 4]


class TestFiles:
    def test_files_are_private_to_their_owner(self, backend: LocalBackend) -> None:
        s = backend.session("alice@host", "apply")
        s.put(resource("a"))
        s.commit()
        s.put(resource("b"))
        for path in [backend.dir, backend.versions_dir]:
            assert path.stat().st_mode & 0o077 == 0, path
        for path in [backend.journal_path, backend.version_path(1)]:
            assert path.stat().st_mode & 0o077 == 0, path
        s.close()

    def test_a_snapshot_is_a_checksum_line_a_header_and_one_resource_per_line(
        self, backend: LocalBackend
    ) -> None:
        """The documented format: readable with standard tools."""
        with backend.session("alice@host", "apply") as s:
            s.put(resource("b"))
            s.put(resource("a", dir="mod"))
        lines = backend.version_path(1).read_bytes().split(b"\n")
        assert lines[0].startswith(b"# shipyard infra state v1 sha256=")
        header = json.loads(lines[1])
        assert header["format"] == "shipyard-infra-state"
        assert (header["serial"], header["resources"], header["operation"]) == (1, 2, "apply")
        assert json.loads(lines[3].rstrip(b",")) == {
            "address": "a",
            "type": "null",
            "id": "id-a",
            "properties": {"value": 1},
            "attributes": {"n": 1},
            "dependencies": [],
            "sensitive": [],
            "dir": "mod",
        }
        body = json.loads(b"\n".join(lines[2:]))
        assert [r["address"] for r in body["resources"]] == ["a", "b"]

    def test_temporary_files_of_a_killed_writer_are_removed_by_the_next_session(
        self, backend: LocalBackend
    ) -> None:
        with backend.session("alice@host", "apply") as s:
            s.put(resource("a"))
        leftovers = [backend.versions_dir / ".00000002.99.ab.tmp", backend.dir / ".journal.9.x.tmp"]
        for p in leftovers:
            p.write_bytes(b"half written")
        with backend.session("alice@host", "plan"):
            pass
        assert not any(p.exists() for p in leftovers)


def test_a_failed_commit_on_exit_is_noted_on_the_blocks_own_error(backend: LocalBackend) -> None:
    """The block's error stays the one raised; the commit failure is a note on it."""
    with pytest.raises(RuntimeError) as err, backend.session("alice@host", "apply") as s:
        s.put(resource("a"))
        backend.force_unlock()
        raise RuntimeError("provider failed")
    assert err.value.__notes__ == [
        "the state was not committed: the lease on the state was removed (force-unlocked)"
    ]
    assert backend.read().resources == {"a": resource("a")}  # still in the journal
