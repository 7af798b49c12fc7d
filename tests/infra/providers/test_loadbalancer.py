"""The loadbalancer provider: a real HAProxy 2.6 in front of real HTTP servers on loopback."""

from __future__ import annotations

import http.client
import http.server
import json
import os
import signal
import socket
import subprocess
import sys
import threading
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from shipyard.errors import ProviderError
from shipyard.infra._registry import Registry
from shipyard.infra._types import parse_type
from shipyard.infra.provider import REQUIRED, Context
from shipyard.infra.providers._haproxy_config import digest, render
from shipyard.infra.providers._haproxy_runtime import Instance
from shipyard.infra.providers._supervisor_proc import group_members, is_running
from shipyard.infra.providers.loadbalancer import LoadBalancer, LoadBalancerProvider
from tests.infra.providers.test_process import free_ports

LB = LoadBalancer()


class _Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        body = self.server.name.encode()  # type: ignore[attr-defined]
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


class Backends:
    """Named HTTP servers on loopback, each answering its own name."""

    def __init__(self) -> None:
        self.servers: dict[str, http.server.ThreadingHTTPServer] = {}

    def start(self, name: str) -> str:
        srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        srv.name = name  # type: ignore[attr-defined]
        srv.daemon_threads = True
        threading.Thread(target=srv.serve_forever, args=(0.05,), daemon=True).start()
        self.servers[name] = srv
        return f"127.0.0.1:{srv.server_address[1]}"

    def close(self) -> None:
        for srv in self.servers.values():
            srv.shutdown()
            srv.server_close()


@pytest.fixture
def backends() -> Iterator[Backends]:
    found = Backends()
    yield found
    found.close()


@pytest.fixture
def ctx(tmp_path: Path) -> Iterator[Context]:
    stack = tmp_path / "stack"
    stack.mkdir()
    context = Context(config={}, stack_dir=stack, data_dir=tmp_path / "data" / "loadbalancer", log=lambda m: None)
    yield context
    if context.data_dir.is_dir():
        for folder in context.data_dir.iterdir():
            LB.delete(context, folder.name, {}, {})


def props(**values: Any) -> dict[str, Any]:
    full = {k: p.default for k, p in LB.properties.items() if p.default is not REQUIRED and not p.derived}
    full.update(values)
    return LB.prepare(Context({}, Path("."), Path(".")), full)


def balancer(port: int, servers: list[tuple[str, str, int]], **values: Any) -> dict[str, Any]:
    return props(
        frontends=[{"name": "web", "bind": port, "backend": "app"}],
        backends={"app": {
            "servers": [{"name": n, "address": a, "weight": w} for n, a, w in servers],
            "health_check": {"path": "/", "interval": 0.2},
        }},
        **values,
    )


def request(port: int, timeout: float = 2.0) -> str:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request("GET", "/")
        response = conn.getresponse()
        body = response.read().decode()
        assert response.status == 200, (response.status, body)
        return body
    finally:
        conn.close()


def spread(port: int, count: int) -> Counter[str]:
    return Counter(request(port) for _ in range(count))


def instance(ctx: Context, lb: str) -> Instance:
    return Instance(ctx.data_dir / lb, "/usr/sbin/haproxy")


def worker(ctx: Context, lb: str) -> int:
    info = instance(ctx, lb).show_proc()
    assert info is not None and len(info.workers) == 1
    return info.workers[0]


def listener_inode(port: int) -> str:
    """The inode of the socket listening on 127.0.0.1:port (from /proc/net/tcp)."""
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        if fields[1] == f"0100007F:{port:04X}" and fields[3] == "0A":
            return fields[9]
    raise AssertionError(f"nothing listens on {port}")


class TestSchema:
    def test_registered_under_its_type_name(self) -> None:
        """`loadbalancer` resolves through the registry to this type."""
        assert isinstance(Registry.default().resource_type("loadbalancer"), LoadBalancer)
        assert LoadBalancerProvider.resource_types == (LoadBalancer,)
        assert "haproxy" in LoadBalancerProvider.config

    def test_schema_types_parse(self) -> None:
        """Every type parses; the digest and running flag are derived by prepare."""
        for prop in LB.properties.values():
            parse_type(prop.type)
        for attr in LB.attributes.values():
            parse_type(attr.type)
        assert LB.properties["config_digest"].derived and LB.properties["running"].derived
        prepared = balancer(8080, [("a", "127.0.0.1:1", 1)])
        assert prepared["running"] is True and prepared["config_digest"] == digest(render(prepared))


class TestValidate:
    def test_a_full_configuration_is_valid_for_haproxy_too(self, tmp_path: Path) -> None:
        """Every feature at once passes validate and `haproxy -c`."""
        full = props(
            frontends=[
                {"name": "web", "bind": "127.0.0.1:18080", "mode": "http", "backend": "app"},
                {"name": "db", "bind": 15432, "mode": "tcp", "backend": "pg"},
                {"name": "all", "bind": "*:18081", "backend": "app"},
            ],
            backends={
                "app": {"balance": "leastconn", "servers": [
                    {"name": "a", "address": "127.0.0.1:9001", "weight": 256},
                    {"name": "b", "address": "[::1]:9002", "weight": 0},
                ], "health_check": {"path": "/healthz", "interval": 1.5}},
                "pg": {"servers": [{"name": "p", "address": "localhost:5432"}], "health_check": {}},
                "unused": {"servers": []},
            },
            stats=18404,
        )
        assert LB.validate(full) == []
        Instance(tmp_path, "/usr/sbin/haproxy").check(render(full))

    @pytest.mark.parametrize(
        ("change", "path", "fragment"),
        [
            ({"frontends": [{"name": "web", "bind": 80, "backend": "nope"}]}, "frontends[0].backend", "unknown backend 'nope'; known: app"),
            ({"frontends": [{"name": "web", "bind": 80, "backend": "app"}, {"name": "web", "bind": 81, "backend": "app"}]}, "frontends[1].name", "duplicate frontend name"),
            ({"frontends": [{"name": "a", "bind": 80, "backend": "app"}, {"name": "b", "bind": "0.0.0.0:80", "backend": "app"}]}, "frontends[1].bind", "port 80 is also bound"),
            ({"frontends": [{"name": "a", "bind": "localhost", "backend": "app"}]}, "frontends[0].bind", "is not \"host:port\""),
            ({"frontends": [{"name": "a", "bind": 70000, "backend": "app"}]}, "frontends[0].bind", "between 1 and 65535"),
            ({"frontends": [{"name": "a", "bind": 80, "backend": "app", "mode": "udp"}]}, "frontends[0].mode", "http or tcp"),
            ({"frontends": [{"name": "a", "bind": 80, "backend": "app", "port": 1}]}, "frontends[0].port", "unknown key"),
            ({"frontends": [{"name": "a b", "bind": 80, "backend": "app"}]}, "frontends[0].name", "not a valid name"),
            ({"frontends": [{"name": "_x", "bind": 80, "backend": "app"}]}, "frontends[0].name", "not a valid name"),
            ({"frontends": []}, "frontends", "non-empty"),
            ({"frontends": [{"name": "a", "bind": 80, "backend": "app"}, {"name": "b", "bind": 81, "mode": "tcp", "backend": "app"}]}, "frontends[1].mode", "a backend has one mode"),
            ({"stats": 80, "frontends": [{"name": "a", "bind": 80, "backend": "app"}]}, "stats", "port 80 is also bound"),
        ],
    )
    def test_frontend_problems(self, change: dict[str, Any], path: str, fragment: str) -> None:
        """Frontend mistakes name the frontend's path and say what is wrong."""
        base = {"backends": {"app": {"servers": [{"name": "s", "address": "127.0.0.1:1"}]}}}
        problems = LB.validate({**base, **change})
        assert any(p == path and fragment in m for p, m in problems), problems

    @pytest.mark.parametrize(
        ("backend", "path", "fragment"),
        [
            ({"servers": [{"name": "s", "address": "127.0.0.1:1", "weight": 257}]}, "backends.app.servers[0].weight", "between 0 and 256"),
            ({"servers": [{"name": "s", "address": "127.0.0.1:1", "weight": -1}]}, "backends.app.servers[0].weight", "between 0 and 256"),
            ({"servers": [{"name": "s", "address": "127.0.0.1:1", "weight": "3"}]}, "backends.app.servers[0].weight", "integer"),
            ({"servers": [{"name": "s", "address": "127.0.0.1:1"}, {"name": "s", "address": "127.0.0.1:2"}]}, "backends.app.servers[1].name", "duplicate server name 's'"),
            ({"servers": [{"name": "s", "address": "127.0.0.1"}]}, "backends.app.servers[0].address", "host:port"),
            ({"servers": [{"address": "127.0.0.1:1"}]}, "backends.app.servers[0].name", "name is required"),
            ({"servers": [], "balance": "fastest"}, "backends.app.balance", "must be one of"),
            ({"servers": [], "health_check": {"path": "healthz"}}, "backends.app.health_check.path", "start with /"),
            ({"servers": [], "health_check": {"interval": 0}}, "backends.app.health_check.interval", "positive"),
            ({"servers": [], "health_check": {"every": 1}}, "backends.app.health_check.every", "unknown key"),
            ({"servers": "a"}, "backends.app.servers", "list"),
        ],
    )
    def test_backend_problems(self, backend: dict[str, Any], path: str, fragment: str) -> None:
        """Backend and server mistakes name their path and say what is wrong."""
        problems = LB.validate({
            "frontends": [{"name": "web", "bind": 80, "backend": "app"}], "backends": {"app": backend},
        })
        assert any(p == path and fragment in m for p, m in problems), problems

    def test_create_refuses_invalid_properties(self, ctx: Context) -> None:
        """create checks again, before anything is started."""
        with pytest.raises(ProviderError, match="unknown backend"):
            LB.create(ctx, props(frontends=[{"name": "w", "bind": 1, "backend": "x"}], backends={}))
        assert not ctx.data_dir.exists() or not any(ctx.data_dir.iterdir())


class TestCreate:
    def test_weights_3_to_1_give_3_to_1(self, ctx: Context, backends: Backends) -> None:
        """400 requests through weights 3:1 reach the servers about 300:100; the stats page
        answers; attributes name the master, the file and the URLs."""
        port, stats = free_ports(2), None
        stats = port + 1
        wanted = balancer(port, [("a", backends.start("a"), 3), ("b", backends.start("b"), 1)], stats=stats)
        created = LB.create(ctx, wanted)
        counts = spread(port, 400)
        assert 270 <= counts["a"] <= 330 and counts["a"] + counts["b"] == 400, counts
        attrs = created.attributes
        assert attrs["urls"] == {"web": f"http://127.0.0.1:{port}"}
        assert attrs["stats_url"] == f"http://127.0.0.1:{stats}/"
        assert Path(attrs["config_path"]).read_text() == render(wanted)
        assert is_running(attrs["pid"]) and os.getsid(attrs["pid"]) == attrs["pid"]
        conn = http.client.HTTPConnection("127.0.0.1", stats, timeout=2)
        conn.request("GET", "/")
        assert b"Statistics Report" in conn.getresponse().read()
        conn.close()

    def test_tcp_mode(self, ctx: Context, backends: Backends) -> None:
        """A tcp frontend passes bytes through to its backend."""
        port = free_ports(1)
        created = LB.create(ctx, props(
            frontends=[{"name": "raw", "bind": f"127.0.0.1:{port}", "mode": "tcp", "backend": "app"}],
            backends={"app": {"servers": [{"name": "a", "address": backends.start("a")}]}},
        ))
        assert created.attributes["urls"] == {"raw": f"tcp://127.0.0.1:{port}"}
        assert request(port) == "a"

    def test_haproxy_refusal_is_reported_and_leaves_nothing(self, ctx: Context) -> None:
        """A configuration haproxy -c refuses (an unknown host) fails create with its message."""
        with pytest.raises(ProviderError, match="haproxy refused the configuration") as caught:
            LB.create(ctx, balancer(free_ports(1), [("a", "no-such-host.invalid:80", 1)]))
        assert "no-such-host.invalid" in str(caught.value)
        assert not any(ctx.data_dir.iterdir())

    def test_port_in_use_is_reported(self, ctx: Context) -> None:
        """A frontend port another program holds fails create with haproxy's alert."""
        with socket.socket() as taken:
            taken.bind(("127.0.0.1", 0))
            taken.listen()
            port = taken.getsockname()[1]
            with pytest.raises(ProviderError, match="cannot bind socket"):
                LB.create(ctx, balancer(port, [("a", "127.0.0.1:1", 1)]))
        assert not any(ctx.data_dir.iterdir())

    def test_outlives_the_cli(self, ctx: Context, backends: Backends) -> None:
        """A balancer created by a CLI process that exits goes on serving."""
        port = free_ports(1)
        wanted = balancer(port, [("a", backends.start("a"), 1)])
        script = (
            "import json, sys\n"
            "from pathlib import Path\n"
            "from shipyard.infra.provider import Context\n"
            "from shipyard.infra.providers.loadbalancer import LoadBalancer\n"
            "ctx = Context(config={}, stack_dir=Path('.'), data_dir=Path(sys.argv[1]), log=lambda m: None)\n"
            "print(json.dumps(LoadBalancer().create(ctx, json.loads(sys.argv[2])).attributes))\n"
        )
        cli = subprocess.run(
            [sys.executable, "-c", script, str(ctx.data_dir), json.dumps(wanted)],
            capture_output=True, timeout=60, check=True, start_new_session=True,
        )
        pid = json.loads(cli.stdout)["pid"]
        assert is_running(pid)
        assert request(port) == "a"


class TestDelete:
    def test_delete_stops_haproxy_and_frees_the_port(self, ctx: Context, backends: Backends) -> None:
        """delete ends the master and its workers, removes its folder; again is a no-op."""
        port = free_ports(1)
        created = LB.create(ctx, balancer(port, [("a", backends.start("a"), 1)]))
        pid = created.attributes["pid"]
        workers = instance(ctx, created.id).show_proc()
        assert workers is not None
        LB.delete(ctx, created.id, {}, created.attributes)
        assert not is_running(pid) and not any(is_running(w) for w in workers.workers)
        assert not (ctx.data_dir / created.id).exists()
        with socket.socket() as again:
            again.bind(("127.0.0.1", port))
        LB.delete(ctx, created.id, {}, created.attributes)
        assert LB.read(ctx, created.id, {}, created.attributes) is None

    def test_delete_after_kill_9_of_the_master(self, ctx: Context, backends: Backends) -> None:
        """Workers a killed master left are stopped by delete too."""
        port = free_ports(1)
        created = LB.create(ctx, balancer(port, [("a", backends.start("a"), 1)]))
        pid = created.attributes["pid"]
        os.kill(pid, signal.SIGKILL)
        LB.delete(ctx, created.id, {}, created.attributes)
        assert [m for m in group_members(pid) if m != pid] == []
