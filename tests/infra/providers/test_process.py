"""The process provider: real replicas (Python HTTP servers, shell loops) under the real supervisor."""

from __future__ import annotations

import http.client
import os
import random
import signal
import socket
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from shipyard.errors import ProviderError
from shipyard.infra._registry import Registry
from shipyard.infra._types import parse_type
from shipyard.infra.provider import REQUIRED, Context
from shipyard.infra.providers._supervisor import LOG_MAX_BYTES
from shipyard.infra.providers._supervisor_client import SupervisorClient
from shipyard.infra.providers._supervisor_proc import group_members, is_running, process_environ
from shipyard.infra.providers.process import Process, ProcessProvider

PROCESS = Process()

SERVER = """\
import http.server, os, sys, time
time.sleep(float(os.environ.get("DELAY", "0")))
class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        if self.path == "/fail":
            self.send_response(503); self.end_headers(); return
        body = f"{os.environ.get('VERSION', '-')} {os.environ['SHIPYARD_REPLICA']} {os.getpid()}".encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *args):
        pass
print("serving on", os.environ["PORT"], flush=True)
http.server.ThreadingHTTPServer(("127.0.0.1", int(os.environ["PORT"])), Handler).serve_forever()
"""

TCP_SERVER = """\
import os, socket, time
time.sleep(float(os.environ.get("DELAY", "0")))
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", int(os.environ["PORT"]))); s.listen()
while True:
    s.accept()[0].close()
"""


def free_ports(count: int) -> int:
    """A port p such that p .. p+count-1 are all free on 127.0.0.1.

    Below the kernel's ephemeral range (32768+), so that no outgoing connection of a
    test running alongside takes one of them meanwhile.
    """
    for _ in range(200):
        base = random.randrange(20000, 32000 - count)
        socks = []
        try:
            for port in range(base, base + count):
                sock = socket.socket()
                socks.append(sock)
                sock.bind(("127.0.0.1", port))
            return base
        except OSError:
            continue
        finally:
            for sock in socks:
                sock.close()
    raise AssertionError("no free ports")


def get(port: int, path: str = "/", timeout: float = 2.0) -> str:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request("GET", path)
        return conn.getresponse().read().decode()
    finally:
        conn.close()


def props(**values: Any) -> dict[str, Any]:
    """Every property, as the engine passes them: defaults filled in."""
    full = {k: p.default for k, p in PROCESS.properties.items() if p.default is not REQUIRED}
    full.update(values)
    return full


def stop_everything(data_dir: Path) -> None:
    """Delete what a test left and stop the supervisor it started."""
    if not data_dir.exists():
        return
    client = SupervisorClient(data_dir)
    for service in client.service_ids():
        client.remove(service)
    if any(client.layout.status_dir.glob("*.json")):
        client.ensure_running()
        for path in client.layout.status_dir.glob("*.json"):
            client.wait_gone(path.stem, 30)
    pid = client.supervisor_pid()
    if pid is not None:
        os.kill(pid, signal.SIGTERM)


@pytest.fixture
def ctx(tmp_path: Path) -> Iterator[Context]:
    stack = tmp_path / "stack"
    stack.mkdir()
    (stack / "server.py").write_text(SERVER)
    (stack / "tcp_server.py").write_text(TCP_SERVER)
    context = Context(config={}, stack_dir=stack, data_dir=tmp_path / "data", log=lambda m: None)
    yield context
    stop_everything(context.data_dir)


def server(port: int, *, replicas: int = 1, **values: Any) -> dict[str, Any]:
    health = values.pop("health_check", {"type": "http", "path": "/", "interval": 0.5})
    return props(
        command=[sys.executable, "server.py"], port=port, replicas=replicas,
        health_check=health, stop_timeout=5, **values,
    )


class TestSchema:
    def test_registered_under_its_type_name(self) -> None:
        """`process` resolves through the registry to this type."""
        assert isinstance(Registry.default().resource_type("process"), Process)
        assert ProcessProvider.resource_types == (Process,)

    def test_schema_types_parse(self) -> None:
        """Every property and attribute type parses, and defaults type-check."""
        for prop in PROCESS.properties.values():
            spec = parse_type(prop.type)
            if prop.default is not REQUIRED and prop.default is not None:
                assert spec.check(prop.default) is None
        for attr in PROCESS.attributes.values():
            parse_type(attr.type)
        assert PROCESS.properties["command"].required


class TestValidate:
    def test_valid_properties_have_no_problems(self) -> None:
        """A full, sensible configuration passes."""
        assert PROCESS.validate(server(8000, replicas=3, environment={"A": "1"})) == []

    @pytest.mark.parametrize(
        ("values", "path", "fragment"),
        [
            ({"command": ""}, "command", "empty"),
            ({"command": []}, "command", "empty list"),
            ({"command": ["ok", 3]}, "command[1]", "expected string"),
            ({"command": 5}, "command", "string or a list"),
            ({"port": 0}, "port", "between 1 and 65535"),
            ({"port": 65535, "replicas": 2}, "port", "above 65535"),
            ({"replicas": -1}, "replicas", "between 0"),
            ({"replicas": 1000}, "replicas", "between 0"),
            ({"environment": {"PORT": "1"}, "port": 80}, "environment.PORT", "set by the supervisor"),
            ({"environment": {"A=B": "1"}}, "environment.A=B", "not a valid"),
            ({"health_check": {"type": "udp"}, "port": 80}, "health_check.type", "http or tcp"),
            ({"health_check": {"path": "x"}, "port": 80}, "health_check.path", "starting with /"),
            ({"health_check": {"intervl": 1}, "port": 80}, "health_check.intervl", "unknown key"),
            ({"health_check": {"interval": 0}, "port": 80}, "health_check.interval", "positive"),
            ({"health_check": {"type": "tcp", "path": "/"}, "port": 80}, "health_check.path", "only http"),
            ({"health_check": {"type": "tcp"}, "port": None}, "health_check", "needs `port`"),
            ({"stop_signal": "BOGUS"}, "stop_signal", "unknown signal"),
            ({"stop_timeout": -1}, "stop_timeout", "negative"),
        ],
    )
    def test_problems_name_the_property(self, values: dict[str, Any], path: str, fragment: str) -> None:
        """Each mistake is reported at its property path with a readable message."""
        problems = PROCESS.validate(props(**{"command": "true", **values}))
        assert any(p == path and fragment in m for p, m in problems), problems

    def test_create_refuses_invalid_properties(self, ctx: Context) -> None:
        """create re-checks what validate checks (values known only at apply time)."""
        with pytest.raises(ProviderError, match="port: must be between"):
            PROCESS.create(ctx, props(command="true", port=70000))


class TestCreate:
    def test_replicas_serve_on_consecutive_ports(self, ctx: Context) -> None:
        """create waits for the http check of every replica; replica i has PORT=port+i."""
        port = free_ports(2)
        created = PROCESS.create(ctx, server(port, replicas=2, environment={"VERSION": "v1"}))
        attrs = created.attributes
        assert attrs["ports"] == [port, port + 1]
        assert attrs["url"] == f"http://127.0.0.1:{port}"
        assert attrs["restarts"] == 0
        for i, pid in enumerate(attrs["pids"]):
            version, replica, served_by = get(port + i).split()
            assert (version, replica, int(served_by)) == ("v1", str(i), pid)
            env = process_environ(pid)
            assert env is not None and env["PORT"] == str(port + i) and env["SHIPYARD_REPLICA"] == str(i)
            assert "SHIPYARD_INFRA_KEY" not in env
            assert os.getsid(pid) == pid  # its own session: the terminal's signals do not reach it
        assert all(Path(p).exists() for p in attrs["logs"])
        assert "serving on" in Path(attrs["logs"][0]).read_text()

    def test_tcp_check_waits_for_the_listener(self, ctx: Context) -> None:
        """A tcp check passes only once the replica accepts connections."""
        port = free_ports(1)
        started = time.monotonic()
        PROCESS.create(ctx, props(
            command=[sys.executable, "tcp_server.py"], port=port, environment={"DELAY": "0.6"},
            health_check={"type": "tcp", "interval": 0.2},
        ))
        assert time.monotonic() - started >= 0.6
        socket.create_connection(("127.0.0.1", port), timeout=2).close()

    def test_port_without_check_means_a_tcp_check(self, ctx: Context) -> None:
        """With a port and no health_check, create waits until the port accepts."""
        port = free_ports(1)
        PROCESS.create(ctx, props(command=[sys.executable, "server.py"], port=port, environment={"DELAY": "0.4"}))
        assert get(port).split()[1] == "0"

    def test_without_port_a_replica_counts_once_it_stays_up(self, ctx: Context) -> None:
        """No port, no check: ready after half a second of running; working_dir is honoured."""
        (ctx.stack_dir / "sub").mkdir()
        created = PROCESS.create(ctx, props(command="pwd > where; exec sleep 60", working_dir="sub"))
        assert created.attributes["ports"] == [] and created.attributes["url"] is None
        assert (ctx.stack_dir / "sub" / "where").read_text().strip() == str((ctx.stack_dir / "sub").resolve())

    def test_exit_at_start_is_an_error_with_the_log(self, ctx: Context) -> None:
        """A replica that exits before it is ready fails create with its status and output."""
        with pytest.raises(ProviderError) as caught:
            PROCESS.create(ctx, props(command="echo the database is down >&2; exit 3", port=free_ports(1)))
        message = str(caught.value)
        assert "exited with status 3 before it became ready" in message
        assert "the database is down" in message
        client = SupervisorClient(ctx.data_dir)
        assert client.service_ids() == [] and not list(client.layout.status_dir.glob("*.json"))

    def test_never_healthy_is_an_error_after_the_start_period(self, ctx: Context) -> None:
        """A replica that runs but never passes its check fails create after start_period,
        and is stopped."""
        started = time.monotonic()
        with pytest.raises(ProviderError, match="not healthy after the start period of 1 s") as caught:
            PROCESS.create(ctx, props(
                command="echo warming up; exec sleep 60", port=free_ports(1),
                health_check={"type": "tcp", "start_period": 1, "interval": 0.2},
            ))
        assert 1 <= time.monotonic() - started < 10
        assert "warming up" in str(caught.value)
        assert SupervisorClient(ctx.data_dir).service_ids() == []

    def test_failing_http_check_reports_the_status(self, ctx: Context) -> None:
        """An http check answered 503 says so in the error."""
        port = free_ports(1)
        with pytest.raises(ProviderError, match="answered 503"):
            PROCESS.create(ctx, server(port, health_check={"path": "/fail", "start_period": 1, "interval": 0.2}))

    def test_program_that_cannot_start(self, ctx: Context) -> None:
        """A command list naming no program fails create, naming the reason."""
        with pytest.raises(ProviderError, match="could not be started: No such file"):
            PROCESS.create(ctx, props(command=["/nonexistent/program"]))

    def test_missing_working_dir(self, ctx: Context) -> None:
        """A working_dir that does not exist is an error before anything starts."""
        with pytest.raises(ProviderError, match="is not a folder"):
            PROCESS.create(ctx, props(command="true", working_dir="nope"))


class TestDelete:
    def test_delete_stops_the_whole_process_group(self, ctx: Context) -> None:
        """delete stops the replica and what it started, and forgets its logs."""
        created = PROCESS.create(ctx, props(command="sleep 300 & sleep 300 & wait", replicas=2))
        pids = created.attributes["pids"]
        assert all(len(group_members(pid)) == 3 for pid in pids)
        PROCESS.delete(ctx, created.id, {}, created.attributes)
        assert all(group_members(pid) == [] for pid in pids)
        assert not Path(created.attributes["logs"][0]).exists()
        assert PROCESS.read(ctx, created.id, {}, created.attributes) is None

    def test_delete_of_something_gone_is_not_an_error(self, ctx: Context) -> None:
        """Deleting twice, or an id never made, succeeds quietly."""
        created = PROCESS.create(ctx, props(command="exec sleep 60"))
        PROCESS.delete(ctx, created.id, {}, created.attributes)
        PROCESS.delete(ctx, created.id, {}, created.attributes)
        PROCESS.delete(ctx, "proc-000000000000", {}, {})

    def test_stop_signal_then_sigkill_after_the_timeout(self, ctx: Context) -> None:
        """The stop signal is sent first; a replica ignoring it is killed after stop_timeout."""
        marker = ctx.stack_dir / "got-int"
        polite = PROCESS.create(ctx, props(
            command=f"trap 'echo int > {marker}; exit 0' INT; while true; do sleep 0.05; done",
            stop_signal="INT",
        ))
        stubborn = PROCESS.create(ctx, props(
            command="trap '' TERM; while true; do sleep 0.05; done", stop_timeout=1,
        ))
        PROCESS.delete(ctx, polite.id, {}, polite.attributes)
        assert marker.read_text() == "int\n"
        began = time.monotonic()
        PROCESS.delete(ctx, stubborn.id, {}, stubborn.attributes)
        assert 1 <= time.monotonic() - began < 5
        assert not is_running(stubborn.attributes["pids"][0])


class TestImportAndFind:
    def test_import_adopts_an_existing_service(self, ctx: Context) -> None:
        """import_ reports the properties and attributes of a service by id."""
        port = free_ports(1)
        created = PROCESS.create(ctx, server(port, environment={"VERSION": "v9"}))
        observed = PROCESS.import_(ctx, created.id)
        assert observed.properties["environment"] == {"VERSION": "v9"}
        assert observed.properties["port"] == port and observed.properties["replicas"] == 1
        assert observed.attributes["pids"] == created.attributes["pids"]

    def test_import_of_an_unknown_id(self, ctx: Context) -> None:
        """import_ of an id the supervisor does not know is an error naming the known ones."""
        with pytest.raises(ProviderError, match="no process 'proc-x'"):
            PROCESS.import_(ctx, "proc-x")

    def test_find_adopts_what_an_interrupted_create_left(self, ctx: Context) -> None:
        """A service whose create never returned is found again by its properties, once."""
        wanted = props(command="exec sleep 60")
        created = PROCESS.create(ctx, wanted)
        client = SupervisorClient(ctx.data_dir)
        client.mark_pending(created.id)  # as if the CLI had died before create returned
        assert PROCESS.find(ctx, props(command="exec sleep 61")) is None
        found = PROCESS.find(ctx, wanted)
        assert found is not None and found.id == created.id
        assert found.attributes["pids"] == created.attributes["pids"]
        assert PROCESS.find(ctx, wanted) is None


class TestLogs:
    def test_logs_are_rotated_and_bounded(self, ctx: Context) -> None:
        """A replica writing more than the limit gets its log copied to .1 and truncated."""
        half = LOG_MAX_BYTES // 2
        created = PROCESS.create(ctx, props(
            command=f"for i in 1 2 3; do head -c {half} /dev/zero | tr '\\0' x; echo; done; exec sleep 60",
        ))
        log = Path(created.attributes["logs"][0])
        rotated = log.with_name(log.name + ".1")
        deadline = time.monotonic() + 10
        while not rotated.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert rotated.exists()
        time.sleep(0.2)
        assert log.stat().st_size <= LOG_MAX_BYTES
        assert rotated.stat().st_size > LOG_MAX_BYTES
