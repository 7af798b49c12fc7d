"""Speed and size of the local state: the engine's benchmarks depend on them.

Each timing is the best of three runs, against the targets the infra design sets:
1,000 puts and a commit in under 0.3 s, a state of 10,000 resources opened in under
0.5 s, snapshots linear in the resource count. A put must be durable, so it cannot be
faster than the disk's flush: when other work makes the disk slow (the suite runs on
shared machines), the put targets are relative to the time this disk takes for 1,000
bare ``fdatasync``s of a preallocated file, measured alongside — one flush per
sequential put plus a little, and far fewer than one per put from ten threads.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from pathlib import Path

from shipyard.infra._state import LocalBackend, ResourceState, State
from shipyard.infra._state_codec import dumps, split_resource

KEY = bytes(range(32))


def resource(i: int, *, chained: bool = False) -> ResourceState:
    """A resource of 10 properties, like a typical process or postgres resource."""
    return ResourceState(
        address=f"res_{i}",
        type="null",
        id=f"{i:08x}-4c7e-9a51-0d6f2b3e8c11",
        properties={f"prop_{k}": f"value {i}.{k}" for k in range(8)}
        | {"port": 8000 + i % 1000, "enabled": True},
        attributes={"created": "2025-01-01T00:00:00Z"},
        dependencies=[f"res_{i - 1}"] if chained and i else [],
        sensitive=[],
    )


def best_of(runs: int, fn: Callable[[int], float]) -> float:
    return min(fn(run) for run in range(runs))


def flush_time(folder: Path) -> float:
    """Seconds this disk takes for 1,000 in-place 400-byte writes, each fdatasync'd
    (estimated from 500)."""
    path = folder / "floor"
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        os.pwrite(fd, bytes(1 << 20), 0)
        os.fsync(fd)
        started = time.perf_counter()
        for i in range(500):
            os.pwrite(fd, b"x" * 400, i * 400)
            os.fdatasync(fd)
        return 2 * (time.perf_counter() - started)
    finally:
        os.close(fd)
        path.unlink()


def within_target(tmp_path: Path, run: Callable[[int], float], ratio: float) -> None:
    """Some of three runs took under 0.3 s, or under ``ratio`` x the disk's flush time
    for 1,000 puts measured just before it (the disk is shared and its speed varies)."""
    seen = []
    for n in range(3):
        floor = flush_time(tmp_path)
        elapsed = run(n)
        seen.append((round(elapsed, 3), round(floor, 3)))
        if elapsed < max(0.3, ratio * floor):
            return
    raise AssertionError(f"(seconds, flush time) of each run: {seen}")


def test_1000_sequential_puts_and_a_commit_take_one_flush_each_under_0_3_s(tmp_path: Path) -> None:
    def run(n: int) -> float:
        backend = LocalBackend(tmp_path / str(n), key=KEY)
        items = [resource(i) for i in range(1000)]
        with backend.session("bench@host", "apply") as s:
            started = time.perf_counter()
            for rs in items:
                s.put(rs)
            s.commit()
            elapsed = time.perf_counter() - started
        assert len(backend.read().resources) == 1000
        return elapsed

    within_target(tmp_path, run, 1.3)


def test_1000_puts_from_10_threads_share_flushes_under_0_3_s(tmp_path: Path) -> None:
    def run(n: int) -> float:
        backend = LocalBackend(tmp_path / str(n), key=KEY)
        with backend.session("bench@host", "apply") as s:

            def work(t: int) -> None:
                for i in range(t, 1000, 10):
                    s.put(resource(i))

            threads = [threading.Thread(target=work, args=(t,)) for t in range(10)]
            started = time.perf_counter()
            for th in threads:
                th.start()
            for th in threads:
                th.join()
            s.commit()
            elapsed = time.perf_counter() - started
        assert len(backend.read().resources) == 1000
        return elapsed

    within_target(tmp_path, run, 0.5)


def test_a_state_of_10000_resources_opens_in_under_0_5_s(tmp_path: Path) -> None:
    backend = LocalBackend(tmp_path, key=KEY)
    backend.write_version(
        State(resources={f"res_{i}": resource(i) for i in range(10_000)}), "seed", "x"
    )

    def read(_: int) -> float:
        started = time.perf_counter()
        state = LocalBackend(tmp_path, key=KEY).read()
        elapsed = time.perf_counter() - started
        assert len(state.resources) == 10_000
        return elapsed

    def session(_: int) -> float:
        started = time.perf_counter()
        with LocalBackend(tmp_path, key=KEY).session("bench@host", "plan") as s:
            assert len(s.state.resources) == 10_000
        return time.perf_counter() - started

    assert best_of(3, read) < 0.5
    assert best_of(3, session) < 0.5


def test_snapshot_size_is_linear_in_the_number_of_resources(tmp_path: Path) -> None:
    """At 100, 1,000 and 10,000 resources, chained or not, a snapshot is its resources'
    records plus two bytes each (a comma and a newline) plus a fixed header of under 1 KB."""
    per_resource = []
    for n in (100, 1000, 10_000):
        for chained in (False, True):
            backend = LocalBackend(tmp_path / f"{n}-{chained}", key=KEY)
            resources = {f"res_{i}": resource(i, chained=chained) for i in range(n)}
            backend.write_version(State(resources=resources), "seed", "x")
            size = backend.version_path(1).stat().st_size
            records = sum(len(dumps(split_resource(rs)[0])) for rs in resources.values())
            assert 0 < size - records - 2 * n < 1000, (n, chained)
            per_resource.append(size / n)
    assert max(per_resource) / min(per_resource) < 1.1, per_resource
