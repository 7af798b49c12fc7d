"""A stack of a `process` service behind a `loadbalancer`, through the real engine."""

from __future__ import annotations

import base64
import os
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

from shipyard.infra import Engine, LocalBackend
from shipyard.infra._registry import Registry
from shipyard.infra.provider import Context
from shipyard.infra.providers._supervisor_client import SupervisorClient
from shipyard.infra.providers._supervisor_proc import is_running
from shipyard.infra.providers.loadbalancer import LoadBalancer
from tests.infra.providers.test_loadbalancer import request
from tests.infra.providers.test_process import SERVER, free_ports, stop_everything

STACK = """\
variables:
  python: {type: string}
  port: {type: integer}
  lb_port: {type: integer}
  version: {type: string, default: v1}
resources:
  web:
    type: process
    properties:
      command: ["${{ var.python }}", server.py]
      port: ${{ var.port }}
      replicas: 2
      environment: {VERSION: "${{ var.version }}"}
      health_check: {type: http, path: /, interval: 0.3}
  lb:
    type: loadbalancer
    properties:
      frontends:
        - {name: web, bind: "127.0.0.1:${{ var.lb_port }}", backend: app}
      backends:
        app:
          health_check: {path: /, interval: 0.2}
          servers:
            - {name: web0, address: "127.0.0.1:${{ resources.web.ports[0] }}", weight: 1}
            - {name: web1, address: "127.0.0.1:${{ resources.web.ports[1] }}", weight: 1}
outputs:
  url: {value: "${{ resources.lb.urls.web }}"}
"""


def engine(tmp_path: Path, **variables: object) -> Engine:
    stack = tmp_path / "stack"
    stack.mkdir(exist_ok=True)
    (stack / "main.yaml").write_text(STACK)
    (stack / "server.py").write_text(SERVER)
    backend = LocalBackend(tmp_path / "state", key=b"k" * 32)
    return Engine(stack, backend=backend, registry=Registry.default(), variables=variables,
                  data_dir=tmp_path / "data")


def versions(port: int, count: int = 20) -> Counter[str]:
    return Counter(" ".join(request(port).split()[:2]) for _ in range(count))


def test_service_behind_a_balancer_from_apply_to_destroy(tmp_path: Path) -> None:
    """apply starts two replicas and a balancer over their ports; a new version rolls
    through; a hand-edited haproxy.cfg is drift that the next apply repairs; destroy
    stops everything, and the supervisor exits."""
    port, lb_port = free_ports(2), free_ports(1)
    variables = {"python": sys.executable, "port": port, "lb_port": lb_port}
    try:
        first = engine(tmp_path, **variables)
        result = first.apply()
        assert result.ok and result.added == 2, result.failures
        assert result.outputs["url"].value == f"http://127.0.0.1:{lb_port}"
        assert versions(lb_port) == {"v1 0": 10, "v1 1": 10}
        assert not first.plan().has_changes
        assert not first.drift().has_drift

        second = engine(tmp_path, **variables, version="v2")
        result = second.apply()
        assert result.ok and result.changed >= 1, result.failures
        time.sleep(0.5)  # the balancer's checks see the replaced replicas up again
        assert versions(lb_port) == {"v2 0": 10, "v2 1": 10}

        state = second.state().resources
        config = Path(state["lb"].attributes["config_path"])
        config.write_text(config.read_text().replace("weight 1", "weight 2"))
        report = second.drift()
        assert [item.address for item in report.items] == ["lb"]
        assert any("edited by hand" in note for note in report.items[0].notes)
        assert second.apply().ok
        assert "weight 2" not in config.read_text() and not second.drift().has_drift

        pids = state["web"].attributes["pids"]
        haproxy = state["lb"].attributes["pid"]
        result = second.destroy()
        assert result.ok and result.destroyed == 2
        assert not any(is_running(pid) for pid in [*pids, haproxy])
        client = SupervisorClient(tmp_path / "data" / "process")
        deadline = time.monotonic() + 5
        while client.supervisor_pid() is not None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert client.supervisor_pid() is None
    finally:
        stop_everything(tmp_path / "data" / "process")
        lb_dir = tmp_path / "data" / "loadbalancer"
        if lb_dir.is_dir():
            ctx = Context({}, tmp_path, lb_dir, log=lambda m: None)
            for folder in lb_dir.iterdir():
                LoadBalancer().delete(ctx, folder.name, {}, {})


def test_services_outlive_the_cli_that_applied_them(tmp_path: Path) -> None:
    """`shipyard infra apply` exits; its replicas and balancer go on serving until
    `shipyard infra destroy` (another CLI process) stops them."""
    port, lb_port = free_ports(2), free_ports(1)
    engine(tmp_path)  # writes the stack
    stack = tmp_path / "stack"
    env = {**os.environ, "SHIPYARD_INFRA_KEY": base64.b64encode(b"k" * 32).decode()}
    args = ["--dir", str(stack), "--yes", "-var", f"python={sys.executable}",
            "-var", f"port={port}", "-var", f"lb_port={lb_port}"]

    def cli(command: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "shipyard", "infra", command, *args], env=env,
            capture_output=True, text=True, timeout=120, check=False, start_new_session=True,
        )

    try:
        applied = cli("apply")
        assert applied.returncode == 0, applied.stdout + applied.stderr
        assert versions(lb_port) == {"v1 0": 10, "v1 1": 10}
        destroyed = cli("destroy")
        assert destroyed.returncode == 0, destroyed.stdout + destroyed.stderr
        assert not list((stack / ".shipyard" / "state" / "data" / "loadbalancer").iterdir())
        assert not list((stack / ".shipyard" / "state" / "data" / "process" / "services").iterdir())
    finally:
        data = stack / ".shipyard" / "state" / "data"
        stop_everything(data / "process")
        if (data / "loadbalancer").is_dir():
            ctx = Context({}, stack, data / "loadbalancer", log=lambda m: None)
            for folder in (data / "loadbalancer").iterdir():
                LoadBalancer().delete(ctx, folder.name, {}, {})
