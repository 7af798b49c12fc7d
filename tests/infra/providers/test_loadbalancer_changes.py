"""The loadbalancer provider over time: seamless reloads, runtime weights, bad changes, drift."""

from __future__ import annotations

import http.client
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from shipyard.errors import ProviderError
from shipyard.infra.provider import Context
from shipyard.infra.providers._haproxy_config import digest, render
from shipyard.infra.providers._supervisor_proc import is_running
from shipyard.infra.providers.loadbalancer import LoadBalancer
from tests.infra.providers.test_loadbalancer import (
    Backends,
    balancer,
    instance,
    listener_inode,
    props,
    request,
    spread,
    worker,
)
from tests.infra.providers.test_process import free_ports

LB = LoadBalancer()


@pytest.fixture
def backends() -> Iterator[Backends]:
    found = Backends()
    yield found
    found.close()


@pytest.fixture
def ctx(tmp_path: Path) -> Iterator[Context]:
    # A deep folder: the master socket's path is over the 108-byte limit of unix sockets.
    deep = tmp_path / ("d" * 60) / ("e" * 60)
    deep.mkdir(parents=True)
    context = Context(config={}, stack_dir=deep, data_dir=deep / "data" / "loadbalancer", log=lambda m: None)
    yield context
    if context.data_dir.is_dir():
        for folder in context.data_dir.iterdir():
            LB.delete(context, folder.name, {}, {})


class TestReload:
    def test_reloads_refuse_no_request(self, ctx: Context, backends: Backends) -> None:
        """A client requesting in a loop (a new connection each time) through five reloads
        sees every request answered; the listening socket is handed over, never re-bound."""
        port = free_ports(1)
        a, b = backends.start("a"), backends.start("b")
        configs = [
            balancer(port, [("a", a, 1), ("b", b, 1)]),
            balancer(port, [("a", a, 1)]),
        ]
        created = LB.create(ctx, configs[0])
        assert len(str(instance(ctx, created.id).socket)) > 108
        inode = listener_inode(port)
        results: list[str] = []
        failures: list[str] = []
        done = threading.Event()

        def client() -> None:
            while not done.is_set() and len(results) + len(failures) < 20000:
                try:
                    results.append(request(port))
                except (OSError, http.client.HTTPException, AssertionError) as err:
                    failures.append(repr(err))

        thread = threading.Thread(target=client)
        thread.start()
        workers = [worker(ctx, created.id)]
        attrs = created.attributes
        try:
            for i in range(1, 6):
                time.sleep(0.15)
                attrs = LB.update(ctx, created.id, configs[(i - 1) % 2], configs[i % 2], attrs)
                workers.append(worker(ctx, created.id))
            time.sleep(0.15)
        finally:
            done.set()
            thread.join()
        assert failures == []
        assert len(results) > 100 and set(results) == {"a", "b"}
        assert len(set(workers)) == 6, "each update reloads: a new worker"
        assert attrs["pid"] == created.attributes["pid"], "the master stays"
        assert listener_inode(port) == inode

    def test_server_removed(self, ctx: Context, backends: Backends) -> None:
        """A server removed from a backend gets no more requests; the file says so."""
        port = free_ports(1)
        a, b = backends.start("a"), backends.start("b")
        before = balancer(port, [("a", a, 1), ("b", b, 1)])
        created = LB.create(ctx, before)
        assert set(spread(port, 10)) == {"a", "b"}
        after = balancer(port, [("b", b, 1)])
        LB.update(ctx, created.id, before, after, created.attributes)
        assert spread(port, 20) == {"b": 20}
        assert Path(created.attributes["config_path"]).read_text() == render(after)

    def test_weights_change_through_the_runtime_api(self, ctx: Context, backends: Backends) -> None:
        """A change of weights only is applied without a reload (same worker), and the
        file is rewritten to match."""
        port = free_ports(1)
        a, b = backends.start("a"), backends.start("b")
        before = balancer(port, [("a", a, 1), ("b", b, 1)])
        created = LB.create(ctx, before)
        first = worker(ctx, created.id)
        after = balancer(port, [("a", a, 3), ("b", b, 1)])
        LB.update(ctx, created.id, before, after, created.attributes)
        assert worker(ctx, created.id) == first
        assert instance(ctx, created.id).server_weights() == {("app", "a"): 3, ("app", "b"): 1}
        counts = spread(port, 200)
        assert 130 <= counts["a"] <= 170, counts
        assert Path(created.attributes["config_path"]).read_text() == render(after)
        drained = balancer(port, [("a", a, 0), ("b", b, 1)])
        LB.update(ctx, created.id, after, drained, created.attributes)
        assert spread(port, 20) == {"b": 20}


class TestBadChanges:
    def test_refused_update_keeps_the_old_config_serving(self, ctx: Context, backends: Backends) -> None:
        """haproxy -c refuses the new config: error with its message, nothing touched."""
        port = free_ports(1)
        a = backends.start("a")
        before = balancer(port, [("a", a, 1)])
        created = LB.create(ctx, before)
        first = worker(ctx, created.id)
        bad = balancer(port, [("a", a, 1), ("x", "no-such-host.invalid:80", 1)])
        with pytest.raises(ProviderError, match=r"no-such-host\.invalid"):
            LB.update(ctx, created.id, before, bad, created.attributes)
        assert worker(ctx, created.id) == first
        assert Path(created.attributes["config_path"]).read_text() == render(before)
        assert request(port) == "a"

    def test_failed_reload_keeps_serving_and_restores_the_file(self, ctx: Context, backends: Backends) -> None:
        """A config that passes -c but cannot load (a port taken meanwhile) fails the update
        with haproxy's alert; the old worker serves on and the file is the old one again."""
        port = free_ports(2)
        a = backends.start("a")
        before = balancer(port, [("a", a, 1)])
        created = LB.create(ctx, before)
        first = worker(ctx, created.id)
        after = props(
            frontends=[*before["frontends"], {"name": "more", "bind": port + 1, "backend": "app"}],
            backends=before["backends"],
        )
        with socket.socket() as taken:
            taken.bind(("127.0.0.1", port + 1))
            taken.listen()
            with pytest.raises(ProviderError, match="cannot bind socket"):
                LB.update(ctx, created.id, before, after, created.attributes)
        assert Path(created.attributes["config_path"]).read_text() == render(before)
        assert request(port) == "a"
        assert first in (instance(ctx, created.id).show_proc() or pytest.fail("no master")).workers
        attrs = LB.update(ctx, created.id, before, after, created.attributes)  # port free again
        assert request(port + 1) == "a" and attrs["urls"]["more"] == f"http://127.0.0.1:{port + 1}"


class TestDrift:
    def test_untouched_balancer_shows_no_drift(self, ctx: Context, backends: Backends) -> None:
        """read of an untouched balancer returns the state's properties, without notes."""
        wanted = balancer(free_ports(1), [("a", backends.start("a"), 2)])
        created = LB.create(ctx, wanted)
        observed = LB.read(ctx, created.id, wanted, created.attributes)
        assert observed is not None
        assert observed.properties == wanted and observed.notes == ()
        assert observed.attributes == created.attributes

    def test_not_running(self, ctx: Context, backends: Backends) -> None:
        """A killed haproxy reads as running: false with a note; update starts it again."""
        port = free_ports(1)
        wanted = balancer(port, [("a", backends.start("a"), 1)])
        created = LB.create(ctx, wanted)
        pid = created.attributes["pid"]
        instance(ctx, created.id).stop(pid, None, timeout=0)
        observed = LB.read(ctx, created.id, wanted, created.attributes)
        assert observed is not None and observed.properties["running"] is False
        assert observed.notes[0].startswith(f"haproxy (pid {pid}) is not running")
        attrs = LB.update(ctx, created.id, observed.properties, wanted, created.attributes)
        assert attrs["pid"] != pid and is_running(attrs["pid"])
        assert request(port) == "a"
        again = LB.read(ctx, created.id, wanted, attrs)
        assert again is not None and again.properties["running"] is True and again.notes == ()

    def test_config_edited_by_hand(self, ctx: Context, backends: Backends) -> None:
        """A hand edit of haproxy.cfg shows as a different config_digest; update puts the
        generated file back and reloads it."""
        port = free_ports(1)
        a, b = backends.start("a"), backends.start("b")
        wanted = balancer(port, [("a", a, 1)])
        created = LB.create(ctx, wanted)
        path = Path(created.attributes["config_path"])
        edited = path.read_text().replace(f"server a {a}", f"server a {b}")
        path.write_text(edited)
        instance(ctx, created.id).command("reload")
        time.sleep(0.3)
        assert request(port) == "b"
        observed = LB.read(ctx, created.id, wanted, created.attributes)
        assert observed is not None and observed.properties["config_digest"] == digest(edited)
        assert any("edited by hand" in note for note in observed.notes)
        LB.update(ctx, created.id, observed.properties, wanted, created.attributes)
        assert path.read_text() == render(wanted) and request(port) == "a"

    def test_weight_changed_through_the_runtime_api(self, ctx: Context, backends: Backends) -> None:
        """A weight set by hand on the runtime API is observed; update sets it back."""
        port = free_ports(1)
        a, b = backends.start("a"), backends.start("b")
        wanted = balancer(port, [("a", a, 1), ("b", b, 1)])
        created = LB.create(ctx, wanted)
        instance(ctx, created.id).set_weight("app", "b", 0)
        observed = LB.read(ctx, created.id, wanted, created.attributes)
        assert observed is not None
        assert [s["weight"] for s in observed.properties["backends"]["app"]["servers"]] == [1, 0]
        assert observed.notes == (
            "server app/b has weight 0 in the running haproxy (changed through the runtime API), "
            "1 in the configuration",
        )
        first = worker(ctx, created.id)
        LB.update(ctx, created.id, observed.properties, wanted, created.attributes)
        assert worker(ctx, created.id) == first
        assert instance(ctx, created.id).server_weights() == {("app", "a"): 1, ("app", "b"): 1}

    def test_import(self, ctx: Context, backends: Backends) -> None:
        """import_ reads an existing balancer by id; an unknown id is an error."""
        wanted = balancer(free_ports(1), [("a", backends.start("a"), 1)])
        created = LB.create(ctx, wanted)
        assert LB.import_(ctx, created.id).properties == wanted
        with pytest.raises(ProviderError, match="no load balancer 'lb-nope'"):
            LB.import_(ctx, "lb-nope")

    def test_find_adopts_an_interrupted_create(self, ctx: Context, backends: Backends) -> None:
        """A balancer whose create never returned is found by its properties, once."""
        wanted = balancer(free_ports(1), [("a", backends.start("a"), 1)])
        created = LB.create(ctx, wanted)
        meta = ctx.data_dir / created.id / "instance.json"
        meta.write_text(meta.read_text().replace('"pending":false', '"pending":true'))
        found = LB.find(ctx, wanted)
        assert found is not None and found.id == created.id
        assert LB.find(ctx, wanted) is None
        assert is_running(created.attributes["pid"])
