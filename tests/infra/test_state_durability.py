"""Crashes and damage: a killed writer loses nothing it acknowledged; damage is named."""

from __future__ import annotations

import hashlib
import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from shipyard.errors import StateError
from shipyard.infra._state import LocalBackend, ResourceState, State

KEY = bytes(range(32))

# A child that records a stream of changes, printing each one after it returned (so
# after it is durable), and commits every 13 changes. Thread t of a run makes changes
# i = start + t, start + t + threads, ...: change i removes t{t}-r{(i*7) % 17} when
# i % 5 == 4, else puts t{t}-r{i % 17} with value i (and a sensitive secret). The
# parent kills it with SIGKILL at a random point.
WRITER = """
import sys, threading
from pathlib import Path
from shipyard.infra._state import LocalBackend, ResourceState
state_dir, start, threads = Path(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
b = LocalBackend(state_dir, key=bytes(range(32)), lease_ttl=60)
s = b.session("writer@test", "apply", force_unlock=True)
print("open", flush=True)
out = threading.Lock()

def run(t):
    i = start + t
    while True:
        if i % 5 == 4:
            s.remove(f"t{t}-r{(i * 7) % 17}")
        else:
            s.put(ResourceState(f"t{t}-r{i % 17}", "null", f"id{i}",
                                {"v": i, "secret": f"s{i}"}, {"a": [i]}, [], ["secret"]))
        with out:
            print(f"done {t} {i}", flush=True)
        if (i - start) // threads % 13 == 12:
            s.commit()
            with out:
                print(f"commit {t} {i}", flush=True)
        i += threads

workers = [threading.Thread(target=run, args=(t,)) for t in range(threads)]
for w in workers:
    w.start()
for w in workers:
    w.join()
"""


def apply_change(model: dict[str, int], t: int, i: int) -> None:
    """Change i of thread t, applied to a model of the state (address -> value)."""
    if i % 5 == 4:
        model.pop(f"t{t}-r{(i * 7) % 17}", None)
    else:
        model[f"t{t}-r{i % 17}"] = i


def values(state: State) -> dict[str, int]:
    out = {}
    for address, rs in state.resources.items():
        v = rs.properties["v"]
        assert rs.properties == {"v": v, "secret": f"s{v}"}
        assert rs.attributes == {"a": [v]}
        assert rs.sensitive == ["secret"]
        out[address] = v
    return out


def run_and_kill(
    state_dir: Path, start: int, threads: int, rng: random.Random, count: int = 0
) -> list[str]:
    """Start a writer, kill -9 it after a random number of changes; its output lines."""
    proc = subprocess.Popen(
        [sys.executable, "-c", WRITER, str(state_dir), str(start), str(threads)],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    assert proc.stdout.readline() == "open\n"
    lines = [proc.stdout.readline().strip() for _ in range(count or rng.randint(1, 60))]
    time.sleep(rng.random() * 0.003)
    proc.send_signal(signal.SIGKILL)
    rest, _ = proc.communicate()
    assert proc.returncode == -signal.SIGKILL
    return lines + [x for x in rest.splitlines() if x]


def check_round(
    backend: LocalBackend, model: dict[str, int], lines: list[str], start: int, threads: int
) -> dict[str, int]:
    """Assert the state holds every acknowledged change (plus possibly those in flight)."""
    got = values(backend.read())
    for t in range(threads):
        done = [int(x.split()[2]) for x in lines if x.startswith(f"done {t} ")]
        assert done == list(range(start + t, start + t + threads * len(done), threads))
        mine = {a: v for a, v in model.items() if a.startswith(f"t{t}-")}
        for i in done:
            apply_change(mine, t, i)
        with_in_flight = dict(mine)
        apply_change(with_in_flight, t, start + t + threads * len(done))
        theirs = {a: v for a, v in got.items() if a.startswith(f"t{t}-")}
        assert theirs in (mine, with_in_flight), f"thread {t}"
    return got


class TestKillNine:
    def test_a_writer_killed_at_random_points_loses_no_acknowledged_change(
        self, tmp_path: Path
    ) -> None:
        """Twelve seeded kill -9s of a writer of puts, removes and commits.

        After each, the state read back is exactly the changes acknowledged before the
        kill, plus possibly the one change in flight; the next writer goes on from it.
        """
        rng = random.Random(20250101)
        backend = LocalBackend(tmp_path / "state", key=KEY)
        model: dict[str, int] = {}
        for round_ in range(12):
            start = round_ * 10_000
            lines = run_and_kill(backend.dir, start, 1, rng)
            model = check_round(backend, model, lines, start, 1)

    def test_a_multithreaded_writer_killed_keeps_every_acknowledged_change(
        self, tmp_path: Path
    ) -> None:
        """Four threads recording at once (sharing fsyncs), killed at random points."""
        rng = random.Random(7)
        backend = LocalBackend(tmp_path / "state", key=KEY)
        model: dict[str, int] = {}
        for round_ in range(5):
            start = round_ * 10_000
            lines = run_and_kill(backend.dir, start, 4, rng)
            model = check_round(backend, model, lines, start, 4)

    def test_the_next_session_stores_a_killed_writers_journal_as_a_version(
        self, tmp_path: Path
    ) -> None:
        for attempt in range(5):
            backend = LocalBackend(tmp_path / f"state{attempt}", key=KEY)
            run_and_kill(backend.dir, 0, 1, random.Random(3), count=6)
            if not backend.versions():
                break  # killed before its first commit (13 changes), as this test needs
        else:
            raise AssertionError("the writer always reached its first commit before the kill")
        before = backend.read()
        assert before.resources
        with backend.session("next@test", "plan", force_unlock=True) as s:
            assert s.state.resources == before.resources
        assert not backend.journal_path.exists()
        assert backend.versions()[-1].operation == "apply (recovered)"
        assert backend.read().resources == before.resources


def put_some(backend: LocalBackend, n: int, *, commit: bool, value: int = 0) -> None:
    """Put r0..r{n-1} (even ones with a sensitive pw): n frames after the begin frame."""
    s = backend.session("alice@host", "apply")
    for i in range(n):
        s.put(
            ResourceState(f"r{i}", "null", str(i), {"v": value}, {}, [], [])
            if i % 2
            else ResourceState(f"r{i}", "null", str(i), {"v": value, "pw": "x"}, {}, [], ["pw"])
        )
    if commit:
        s.commit()
    s.close()


def journal_frames(path: Path) -> list[tuple[int, int]]:
    """(start, end) of each frame in a journal file."""
    data = path.read_bytes()
    frames, pos = [], 0
    while pos < len(data) and data[pos] != 0:
        header_end = data.index(b"\n", pos)
        length = int(data[pos:header_end].split()[1])
        frames.append((pos, header_end + 1 + length))
        pos = header_end + 1 + length
    return frames


class TestDamage:
    def test_a_torn_last_journal_frame_is_dropped(self, tmp_path: Path) -> None:
        """A frame cut short by a crash (power loss) was never acknowledged: ignore it."""
        backend = LocalBackend(tmp_path, key=KEY)
        put_some(backend, 4, commit=False)
        frames = journal_frames(backend.journal_path)
        start, end = frames[-1]
        with open(backend.journal_path, "r+b") as f:
            f.seek(start + (end - start) // 2)
            f.write(b"\0" * (end - start))
        assert set(backend.read().resources) == {"r0", "r1", "r2"}
        with backend.session("bob@host", "plan") as s:
            assert set(s.state.resources) == {"r0", "r1", "r2"}
        assert not backend.journal_path.exists()

    def test_garbage_after_the_last_frame_is_a_torn_tail(self, tmp_path: Path) -> None:
        backend = LocalBackend(tmp_path, key=KEY)
        put_some(backend, 2, commit=False)
        _, end = journal_frames(backend.journal_path)[-1]
        with open(backend.journal_path, "r+b") as f:
            f.seek(end)
            f.write(b'@ 120 0123456789abcdef0123456789abcdef\n{"op":"put","r":{"addr')
        assert set(backend.read().resources) == {"r0", "r1"}

    def test_a_damaged_journal_frame_followed_by_good_ones_is_corruption(
        self, tmp_path: Path
    ) -> None:
        backend = LocalBackend(tmp_path, key=KEY)
        put_some(backend, 3, commit=True)
        put_some(backend, 3, commit=False, value=1)
        start, _ = journal_frames(backend.journal_path)[1]
        with open(backend.journal_path, "r+b") as f:
            f.seek(start + 45)
            f.write(b"X")
        with pytest.raises(StateError) as err:
            backend.read()
        message = str(err.value)
        assert str(backend.journal_path) in message
        assert f"frame at byte {start} is damaged" in message
        assert "shipyard infra state restore 1" in message

    def test_restoring_after_journal_damage_keeps_the_damaged_journal_aside(
        self, tmp_path: Path
    ) -> None:
        backend = LocalBackend(tmp_path, key=KEY)
        put_some(backend, 3, commit=True)
        put_some(backend, 5, commit=False, value=1)
        start, _ = journal_frames(backend.journal_path)[1]
        with open(backend.journal_path, "r+b") as f:
            f.seek(start + 45)
            f.write(b"X")
        damaged = backend.journal_path.read_bytes()
        with backend.session("alice@host", "state restore") as s:
            with pytest.raises(StateError, match="damaged"):
                _ = s.state
            s.restore(1)
        assert set(backend.read().resources) == {"r0", "r1", "r2"}
        [aside] = [p for p in tmp_path.iterdir() if p.name.startswith("journal.damaged-")]
        assert aside.read_bytes() == damaged
        assert [v.operation for v in backend.versions()] == ["apply", "state restore"]

    @pytest.mark.parametrize("damage", ["flip", "truncate", "header", "empty"])
    def test_a_damaged_version_file_is_named_with_the_way_to_restore(
        self, tmp_path: Path, damage: str
    ) -> None:
        backend = LocalBackend(tmp_path, key=KEY)
        put_some(backend, 3, commit=True)
        put_some(backend, 4, commit=True, value=1)
        path = backend.version_path(2)
        data = path.read_bytes()
        if damage == "flip":
            i = len(data) // 2
            data = data[:i] + bytes([data[i] ^ 0x20]) + data[i + 1 :]
        elif damage == "truncate":
            data = data[: len(data) - 30]
        elif damage == "header":
            data = b"{" + data
        else:
            data = b""
        path.write_bytes(data)
        with pytest.raises(StateError) as err:
            backend.read()
        message = str(err.value)
        assert f"the state version file {path} is damaged" in message
        assert "shipyard infra state restore N" in message
        assert "the previous one is 1" in message
        # The way out works: a session can still restore the previous version.
        with backend.session("alice@host", "state restore") as s:
            s.restore(1)
        assert set(backend.read().resources) == {"r0", "r1", "r2"}
        listed = {v.serial: v.operation for v in backend.versions()}
        assert listed[3] == "state restore"
        if damage in ("header", "empty"):
            assert listed[2].startswith("(damaged")

    def test_a_checksummed_file_with_bad_content_is_still_refused(self, tmp_path: Path) -> None:
        """A hand edit that recomputes the checksum but breaks the schema is named."""
        backend = LocalBackend(tmp_path, key=KEY)
        put_some(backend, 1, commit=True)
        path = backend.version_path(1)
        lines = path.read_bytes().split(b"\n", 1)[1].split(b"\n")
        lines[2] = lines[2].replace(b'"dependencies":[]', b'"dependencies":[1]')
        body = b"\n".join(lines)
        path.write_bytes(
            b"# shipyard infra state v1 sha256="
            + hashlib.sha256(body).hexdigest().encode()
            + b"\n"
            + body
        )
        with pytest.raises(StateError, match=r"r0: dependencies is not a list of strings"):
            backend.read()

    def test_a_journal_whose_version_is_missing_is_an_error(self, tmp_path: Path) -> None:
        backend = LocalBackend(tmp_path, key=KEY)
        put_some(backend, 2, commit=True)
        put_some(backend, 2, commit=False, value=1)
        backend.version_path(1).unlink()
        with pytest.raises(StateError, match=r"continues version 1, which is missing"):
            backend.read()

    def test_a_journal_already_in_a_version_is_ignored(self, tmp_path: Path) -> None:
        """A crash between writing a version and dropping the journal loses nothing."""
        backend = LocalBackend(tmp_path, key=KEY)
        put_some(backend, 2, commit=False)
        journal = backend.journal_path.read_bytes()
        with backend.session("alice@host", "apply") as s:
            s.remove("r0")
        backend.journal_path.write_bytes(journal)  # as if the unlink never happened
        assert set(backend.read().resources) == {"r1"}


def test_journal_records_are_one_json_object_per_line(tmp_path: Path) -> None:
    """The documented journal format: frames of JSON lines."""
    backend = LocalBackend(tmp_path, key=KEY)
    put_some(backend, 2, commit=False)
    data = backend.journal_path.read_bytes().rstrip(b"\0")
    records: list[dict[str, Any]] = []
    pos = 0
    while pos < len(data):
        end = data.index(b"\n", pos)
        marker, length, checksum = data[pos:end].split()
        payload = data[end + 1 : end + 1 + int(length)]
        assert marker == b"@"
        assert hashlib.sha256(payload).hexdigest()[:32] == checksum.decode()
        records += [json.loads(line) for line in payload.splitlines()]
        pos = end + 1 + int(length)
    assert [r["op"] for r in records] == ["begin", "put", "put"]
    assert records[0]["base"] == 0
    assert records[0]["owner"] == "alice@host"
    assert records[0]["pid"] == os.getpid()
    assert "pw" not in records[1]["r"]["properties"]
    assert set(records[1]["r"]["sealed"]) == {"k", "v"}


# Writes 30 KB resources with the file size limited to 400,000 bytes: the journal
# (256 KiB preallocated) cannot grow, so the 9th put fails; the session then refuses
# changes until a commit (a 270 KB version) makes the journal redundant.
FULL_DISK = """
import resource, signal, sys
from pathlib import Path
from shipyard.errors import StateError
from shipyard.infra._state import LocalBackend, ResourceState
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
b = LocalBackend(Path(sys.argv[1]), key=bytes(range(32)))
s = b.session("x@test", "apply")
resource.setrlimit(resource.RLIMIT_FSIZE, (400_000, 400_000))
def put(name, size):
    s.put(ResourceState(name, "null", "i", {"blob": "x" * size}, {}, [], []))
n = 0
try:
    while True:
        put(f"r{n}", 30_000)
        n += 1
except StateError as e:
    print(f"failed after {n}: {e}")
try:
    put("small", 10)
except StateError as e:
    print(f"refused: {e}")
s.commit()
print("committed", len(b.read().resources))
put("small", 10)
print("put after commit")
s.close()
"""


def test_a_journal_write_failure_is_reported_and_cleared_by_a_commit(tmp_path: Path) -> None:
    """A real write error (the file size limit, like a full disk) fails the put with the
    file and the cause; later changes are refused until a commit writes a version."""
    out = subprocess.run(
        [sys.executable, "-c", FULL_DISK, str(tmp_path)],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.splitlines()
    journal = tmp_path / "journal"
    assert out == [
        f"failed after 8: cannot write {journal}: [Errno 27] File too large",
        f"refused: cannot write {journal}: [Errno 27] File too large",
        "committed 9",
        "put after commit",
    ]
    state = LocalBackend(tmp_path, key=KEY).read()
    assert set(state.resources) == {f"r{i}" for i in range(9)} | {"small"}
