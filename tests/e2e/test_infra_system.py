"""examples/infra-demo through the real `shipyard infra` CLI: a PostgreSQL database and
role, two `process` services using them and an HAProxy in front, applied, changed,
checked for drift after a service is killed by hand, and destroyed."""

from __future__ import annotations

import base64
import contextlib
import http.client
import json
import os
import random
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg import sql

from tests.helpers.databases import postgres_url

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "infra-demo"
RESOURCES = {
    "db_password": "random_password",
    "role": "postgres_role",
    "db": "postgres_database",
    "blue": "process",
    "green": "process",
    "front": "loadbalancer",
}
REQUESTS = 40

pytestmark = [pytest.mark.postgres, pytest.mark.slow]


def free_ports(count: int) -> list[int]:
    """``count`` distinct free ports on 127.0.0.1, below the ephemeral range so that no
    outgoing connection of a test running alongside takes one meanwhile."""
    for _ in range(200):
        ports = random.sample(range(20000, 32000), count)
        socks = []
        try:
            for port in ports:
                sock = socket.socket()
                socks.append(sock)
                sock.bind(("127.0.0.1", port))
            return ports
        except OSError:
            continue
        finally:
            for sock in socks:
                sock.close()
    raise AssertionError("no free ports")


def get(port: int, path: str = "/") -> tuple[int, dict[str, Any]]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        conn.request("GET", path)
        response = conn.getresponse()
        return response.status, json.loads(response.read())
    finally:
        conn.close()


def through(port: int, count: int = REQUESTS) -> list[dict[str, Any]]:
    """``count`` requests to the front, one after the other; each must succeed."""
    bodies = []
    for _ in range(count):
        status, body = get(port)
        assert status == 200, body
        bodies.append(body)
    return bodies


def share(bodies: list[dict[str, Any]], service: str) -> float:
    return Counter(b["service"] for b in bodies)[service] / len(bodies)


def stack_processes(root: Path) -> dict[int, str]:
    """Live processes of this run: those working in, or naming, a folder under ``root``
    (the replicas run in the stack folder, the supervisor and HAProxy in the data folder)."""
    found: dict[int, str] = {}
    prefix = str(root)
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            state = (entry / "stat").read_text().rpartition(")")[2].split()[0]
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            cwd = os.readlink(entry / "cwd")
        except OSError:
            continue  # gone meanwhile, or not ours to read
        if state == "Z":
            continue  # dead, waiting for its parent
        if prefix in cmdline or cwd == prefix or cwd.startswith(prefix + os.sep):
            found[int(entry.name)] = cmdline.strip()
    return found


def wait_for(condition: Any, timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.05)


def exists(admin_url: str, database: str, role: str) -> tuple[bool, bool]:
    with psycopg.connect(admin_url, autocommit=True) as conn:
        db = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (database,)).fetchone()
        rl = conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (role,)).fetchone()
    return db is not None, rl is not None


def password_of(admin_url: str, role: str) -> str | None:
    """The role's stored password (a SCRAM verifier), None without one."""
    with psycopg.connect(admin_url, autocommit=True) as conn:
        row = conn.execute("SELECT rolpassword FROM pg_authid WHERE rolname = %s", (role,)).fetchone()
    return None if row is None else row[0]


def drop(admin_url: str, database: str, role: str) -> None:
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(database)))
        conn.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(role)))


class Infra:
    """`shipyard infra` run as a user runs it, on a copy of the example stack."""

    def __init__(self, root: Path, variables: dict[str, str]) -> None:
        self.root = root
        self.stack = root / "infra-demo"
        self.state_dir = root / "state"
        self.env = {
            **os.environ,
            "NO_COLOR": "1",
            "SHIPYARD_INFRA_KEY": base64.b64encode(os.urandom(32)).decode(),
            **{f"SHIPYARD_VAR_{name}": value for name, value in variables.items()},
        }
        self.options: list[str] = []  # -var changes given to every later command

    def __call__(self, *args: str, expect: int = 0) -> str:
        argv = [sys.executable, "-m", "shipyard", "infra", *args, "--dir", str(self.stack)]
        if args[0] != "validate":
            argv += ["--state-dir", str(self.state_dir)]
        if args[0] in ("plan", "apply", "destroy", "drift"):
            argv += self.options
        done = subprocess.run(argv, env=self.env, capture_output=True, text=True, timeout=180,
                              check=False, start_new_session=True)
        assert done.returncode == expect, (
            f"shipyard infra {' '.join(args)} exited {done.returncode}, not {expect}\n"
            f"--- stdout\n{done.stdout}\n--- stderr\n{done.stderr}"
        )
        return done.stdout

    def state(self, address: str) -> dict[str, Any]:
        entry: dict[str, Any] = json.loads(self("state", "show", address, "--json"))
        return entry

    def outputs(self) -> dict[str, Any]:
        data: dict[str, Any] = json.loads(self("output", "--json"))
        return {name: output["value"] for name, output in data.items()}


def summary(plan: str) -> str:
    found = re.search(r"^Plan: .*$", plan, re.MULTILINE)
    assert found, plan
    return found.group(0)


def actions(plan: str) -> dict[str, tuple[str, str]]:
    """address -> (sign, type) of each change in a rendered plan."""
    return {m["address"]: (m["sign"], m["type"])
            for m in re.finditer(r"^\s+(?P<sign>[-+~/]+) (?P<address>\S+) \((?P<type>\w+)\)$",
                                 plan, re.MULTILINE)}


def drifted(report: str) -> list[str]:
    """The addresses a rendered drift report names (changed, gone or interrupted)."""
    return re.findall(r"^  [~!-] (\S+) \(\w+\)", report, re.MULTILINE)


def test_demo_stack_is_applied_changed_repaired_after_a_kill_and_destroyed(tmp_path: Path) -> None:
    """The example stack's database, role, services and balancer come up and serve data
    from the database in the weight ratio; a new port and weight are updated in place; a
    replica killed by hand is drift until apply; destroy leaves nothing behind."""
    admin_url = postgres_url()
    run = uuid.uuid4().hex[:10]
    database, role = f"demo_{run}", f"demo_{run}_app"
    front, blue, green, green_moved = free_ports(4)
    root = tmp_path.resolve()
    shutil.copytree(EXAMPLE, root / "infra-demo", ignore=shutil.ignore_patterns(".shipyard", "__pycache__"))
    infra = Infra(root, {
        "pg_admin_url": admin_url, "python": sys.executable, "database": database, "role": role,
        "front_port": str(front), "blue_port": str(blue), "green_port": str(green),
    })
    try:
        assert "the stack is valid: 6 resources" in infra("validate")

        plan = infra("plan", expect=2)
        assert actions(plan) == {address: ("+", kind) for address, kind in RESOURCES.items()}
        assert summary(plan) == "Plan: 6 to add, 0 to change, 0 to replace, 0 to destroy."

        applied = infra("apply", "--yes")
        assert "Apply complete: 6 added, 0 changed, 0 replaced, 0 destroyed" in applied
        assert f'url = "http://127.0.0.1:{front}"' in applied.partition("Outputs:")[2]
        assert exists(admin_url, database, role) == (True, True)
        assert (password_of(admin_url, role) or "").startswith("SCRAM-SHA-256$")

        # Both services answer through HAProxy, 3:1, with rows of the one database, connected
        # as the role. (The test server trusts loopback, so the role's password is checked
        # above as set, not by a login.)
        bodies = through(front)
        assert {b["service"] for b in bodies} == {"blue", "green"}
        assert all(b["database"] == database and b["user"] == role for b in bodies)
        assert sum(bodies[-1]["hits"].values()) == REQUESTS  # every request is a row
        assert abs(share(bodies, "blue") - 3 / 4) <= 0.1, Counter(b["service"] for b in bodies)
        assert infra("plan").startswith("No changes")

        # A new port for green and a new weight: both updated in place, nothing else.
        infra.options = ["-var", f"green_port={green_moved}", "-var", "green_weight=6"]
        plan = infra("plan", expect=2)
        assert actions(plan) == {"green": ("~", "process"), "front": ("~", "loadbalancer")}
        assert summary(plan) == "Plan: 0 to add, 2 to change, 0 to replace, 0 to destroy."
        assert f"port = {green} → {green_moved}" in plan and "weight = 1 → 6" in plan
        applied = infra("apply", "--yes")
        assert "Apply complete: 0 added, 2 changed, 0 replaced, 0 destroyed" in applied
        status, body = get(green_moved)
        assert status == 200 and body["service"] == "green" and body["port"] == green_moved
        with pytest.raises(ConnectionRefusedError):
            get(green)
        bodies = through(front)
        assert {b["service"] for b in bodies} == {"blue", "green"}
        assert abs(share(bodies, "green") - 6 / 9) <= 0.1, Counter(b["service"] for b in bodies)
        assert infra("plan").startswith("No changes")

        # kill -9 of green's replica: the supervisor starts it again, and that is drift.
        [killed] = infra.state("green")["attributes"]["pids"]
        os.kill(killed, signal.SIGKILL)
        wait_for(lambda: _answers_with_new_pid(green_moved, killed), 30, "green to be restarted")
        report = infra("drift", expect=2)
        assert drifted(report) == ["green"], report
        assert str(killed) in report  # it says which process ended

        infra("apply", "--yes")
        assert infra("drift").startswith("No drift")
        [recorded] = infra.state("green")["attributes"]["pids"]
        assert get(green_moved)[1]["pid"] == recorded
        assert {b["service"] for b in through(front, 8)} == {"blue", "green"}

        haproxy = infra.state("front")["attributes"]["pid"]
        destroyed = infra("destroy", "--yes")
        assert "Destroy complete: 6 destroyed in " in destroyed
        assert exists(admin_url, database, role) == (False, False)
        assert infra("state", "list") == ""
        assert infra.outputs() == {}
        # The supervisor leaves once it has nothing to supervise (after a second idle).
        wait_for(lambda: not stack_processes(root), 10, "the stack's processes to end")
        assert not _running(haproxy)
    finally:
        _clean_up(infra, admin_url, database, role)


def _answers_with_new_pid(port: int, old: int) -> bool:
    try:
        status, body = get(port)
    except OSError:
        return False
    return status == 200 and body["pid"] != old


def _running(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0]
    except OSError:
        return False
    return state != "Z"


def _clean_up(infra: Infra, admin_url: str, database: str, role: str) -> None:
    """Whatever the test got to: destroy, then kill what is left and drop the database."""
    try:
        subprocess.run(
            [sys.executable, "-m", "shipyard", "infra", "destroy", "--yes", "--dir", str(infra.stack),
             "--state-dir", str(infra.state_dir), *infra.options],
            env=infra.env, capture_output=True, timeout=120, check=False, start_new_session=True,
        )
    finally:
        deadline = time.monotonic() + 10
        while (left := stack_processes(infra.root)) and time.monotonic() < deadline:
            for pid in left:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            time.sleep(0.1)
        drop(admin_url, database, role)
