"""The process provider over time: crashes, backoff, rolling updates, scaling, drift."""

from __future__ import annotations

import http.client
import itertools
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from shipyard.errors import ProviderError
from shipyard.infra.provider import REQUIRED, Context
from shipyard.infra.providers._supervisor_proc import is_running
from shipyard.infra.providers.process import Process
from tests.infra.providers.test_process import SERVER, free_ports, stop_everything

PROCESS = Process()


def props(**values: Any) -> dict[str, Any]:
    full = {k: p.default for k, p in PROCESS.properties.items() if p.default is not REQUIRED}
    full.update(values)
    return full


def server(port: int, version: str, *, replicas: int = 2, **values: Any) -> dict[str, Any]:
    env = {"VERSION": version, **values.pop("environment", {})}
    return props(
        command=[sys.executable, "server.py"], port=port, replicas=replicas, environment=env,
        health_check={"type": "http", "path": "/", "interval": 0.3}, stop_timeout=5, **values,
    )


def answer(port: int, timeout: float = 1.0) -> str | None:
    """The body served on ``port``, or None when nothing answers."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request("GET", "/")
        return conn.getresponse().read().decode()
    except (OSError, http.client.HTTPException):  # refused, or cut off by the replica's stop
        return None
    finally:
        conn.close()


def wait_for(condition: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(0.05)


@pytest.fixture
def ctx(tmp_path: Path) -> Iterator[Context]:
    stack = tmp_path / "stack"
    stack.mkdir()
    (stack / "server.py").write_text(SERVER)
    context = Context(config={}, stack_dir=stack, data_dir=tmp_path / "data", log=lambda m: None)
    yield context
    stop_everything(context.data_dir)


class TestCrashes:
    def test_killed_replica_is_restarted_and_read_says_so(self, ctx: Context) -> None:
        """kill -9 of a replica: the supervisor starts it again; read notes the old pid's
        end and the new pid, and counts the restart."""
        port = free_ports(2)
        wanted = server(port, "v1")
        created = PROCESS.create(ctx, wanted)
        old = created.attributes["pids"][0]
        os.kill(old, signal.SIGKILL)
        wait_for(lambda: (answer(port) or "").startswith("v1 0") and str(old) not in (answer(port) or ""))
        observed = PROCESS.read(ctx, created.id, wanted, created.attributes)
        assert observed is not None
        new = observed.attributes["pids"][0]
        assert new != old and observed.attributes["pids"][1] == created.attributes["pids"][1]
        assert observed.attributes["restarts"] == 1
        assert observed.properties["replicas"] == 2
        assert f"replica 0 (pid {old}) killed by signal 9 (SIGKILL); restarted as pid {new}" in observed.notes

    def test_crash_loop_backs_off(self, ctx: Context) -> None:
        """A replica that keeps exiting is restarted after 0.5 s, then 1 s, then 2 s; read
        reports it missing meanwhile, with its exit status and when it starts next."""
        starts = ctx.stack_dir / "starts"
        flag = ctx.stack_dir / "broken"
        wanted = props(command=f"echo $(date +%s.%N) >> {starts}; if [ -e {flag} ]; then exit 1; fi; exec sleep 60")
        created = PROCESS.create(ctx, wanted)
        flag.touch()
        os.kill(created.attributes["pids"][0], signal.SIGKILL)
        wait_for(lambda: len(starts.read_text().split()) >= 4, timeout=15)
        times = [float(t) for t in starts.read_text().split()]
        gaps = [b - a for a, b in itertools.pairwise(times[1:])]  # between restarts
        assert 0.95 <= gaps[0] < 1.9 and 1.9 <= gaps[1] < 3.5, gaps
        time.sleep(0.2)
        observed = PROCESS.read(ctx, created.id, wanted, created.attributes)
        assert observed is not None and observed.properties["replicas"] == 0
        assert observed.attributes["pids"] == [None] and observed.attributes["restarts"] == 3
        note = observed.notes[0]
        assert note.startswith(f"replica 0 (pid {created.attributes['pids'][0]}) killed by signal 9")
        assert "not running now (exited with status 1; next start in" in note


class TestRollingUpdate:
    def test_rolling_update_keeps_a_replica_serving(self, ctx: Context) -> None:
        """While the command's environment changes, replicas are replaced one at a time:
        every round of requests during the update finds at least one replica answering."""
        port = free_ports(2)
        before = server(port, "v1", environment={"DELAY": "0.3"})
        created = PROCESS.create(ctx, before)
        rounds: list[list[str | None]] = []
        done = threading.Event()

        def client() -> None:
            while not done.is_set():
                rounds.append([answer(port, 0.5), answer(port + 1, 0.5)])
                time.sleep(0.01)

        thread = threading.Thread(target=client)
        thread.start()
        try:
            attrs = PROCESS.update(ctx, created.id, before, server(port, "v2", environment={"DELAY": "0.3"}), created.attributes)
        finally:
            done.set()
            thread.join()
        assert len(rounds) > 20
        assert all(any(body is not None for body in r) for r in rounds), "a moment with no replica serving"
        assert any(None in r for r in rounds), "no replica was ever restarted"
        versions = {body.split()[0] for r in rounds for body in r if body}
        assert versions == {"v1", "v2"}
        assert set(attrs["pids"]).isdisjoint(created.attributes["pids"])
        assert [(answer(port + i) or "").split()[0] for i in range(2)] == ["v2", "v2"]

    def test_failed_update_rolls_back(self, ctx: Context) -> None:
        """An update whose new replica never becomes ready fails with its log and puts the
        previous spec back; the replica not yet replaced never stopped serving."""
        port = free_ports(2)
        before = server(port, "v1")
        created = PROCESS.create(ctx, before)
        broken = {**before, "command": "echo cannot bind >&2; exit 4"}
        with pytest.raises(ProviderError) as caught:
            PROCESS.update(ctx, created.id, before, broken, created.attributes)
        assert "exited with status 4 before it became ready" in str(caught.value)
        assert "cannot bind" in str(caught.value) and "rolled back to the previous spec" in str(caught.value)
        assert is_running(created.attributes["pids"][1])
        observed = PROCESS.read(ctx, created.id, before, created.attributes)
        assert observed is not None and observed.properties["command"] == before["command"]
        assert observed.properties["replicas"] == 2
        assert [(answer(port + i) or "").split()[0] for i in range(2)] == ["v1", "v1"]

    def test_unchanged_spec_restarts_nothing(self, ctx: Context) -> None:
        """An update that changes only the stop timeout keeps every replica's pid."""
        port = free_ports(2)
        before = server(port, "v1")
        created = PROCESS.create(ctx, before)
        attrs = PROCESS.update(ctx, created.id, before, {**before, "stop_timeout": 3}, created.attributes)
        assert attrs["pids"] == created.attributes["pids"]


class TestScaling:
    def test_scale_up_and_down(self, ctx: Context) -> None:
        """replicas 1 -> 3 starts two on the next ports; 3 -> 1 stops the extra ones only."""
        port = free_ports(3)
        one = server(port, "v1", replicas=1)
        created = PROCESS.create(ctx, one)
        three = {**one, "replicas": 3}
        attrs = PROCESS.update(ctx, created.id, one, three, created.attributes)
        assert attrs["ports"] == [port, port + 1, port + 2]
        assert attrs["pids"][0] == created.attributes["pids"][0]
        assert [(answer(port + i) or "").split()[1] for i in range(3)] == ["0", "1", "2"]
        down = PROCESS.update(ctx, created.id, three, one, attrs)
        assert down["pids"] == [attrs["pids"][0]] and down["ports"] == [port]
        assert not any(is_running(pid) for pid in attrs["pids"][1:])
        assert answer(port + 1) is None

    def test_scale_to_zero_and_back(self, ctx: Context) -> None:
        """replicas 0 runs nothing but keeps the service; scaling back starts it."""
        port = free_ports(1)
        one = server(port, "v1", replicas=1)
        created = PROCESS.create(ctx, one)
        zero = PROCESS.update(ctx, created.id, one, {**one, "replicas": 0}, created.attributes)
        assert zero["pids"] == [] and answer(port) is None
        back = PROCESS.update(ctx, created.id, {**one, "replicas": 0}, one, zero)
        assert (answer(port) or "").split()[0] == "v1" and back["pids"][0] is not None


class TestDrift:
    def test_no_drift_when_nothing_changed(self, ctx: Context) -> None:
        """read of an untouched service returns the state's properties and no notes."""
        wanted = props(command="exec sleep 60", replicas=2)
        created = PROCESS.create(ctx, wanted)
        observed = PROCESS.read(ctx, created.id, wanted, created.attributes)
        assert observed is not None
        assert observed.properties == wanted and observed.notes == ()
        assert observed.attributes == created.attributes

    def test_changed_outside_the_stack(self, ctx: Context) -> None:
        """A service changed by another apply shows its real command and environment."""
        wanted = props(command="exec sleep 60", environment={"A": "1"})
        created = PROCESS.create(ctx, wanted)
        elsewhere = {**wanted, "command": "exec sleep 61", "environment": {"A": "2"}}
        attrs = PROCESS.update(ctx, created.id, wanted, elsewhere, created.attributes)
        observed = PROCESS.read(ctx, created.id, wanted, created.attributes)
        assert observed is not None
        assert observed.properties["command"] == "exec sleep 61"
        assert observed.properties["environment"] == {"A": "2"}
        assert any("different command, environment" in n for n in observed.notes)
        assert any(f"restarted as pid {attrs['pids'][0]}" in n for n in observed.notes)

    def test_deleted_outside_the_stack_reads_as_gone(self, ctx: Context) -> None:
        """A service whose spec was deleted (by another stack's destroy) reads as None."""
        wanted = props(command="exec sleep 60")
        created = PROCESS.create(ctx, wanted)
        PROCESS.delete(ctx, created.id, wanted, created.attributes)
        assert PROCESS.read(ctx, created.id, wanted, created.attributes) is None
