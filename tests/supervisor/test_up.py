"""`shipyard up` end to end: real processes, real ports, real signals."""

from __future__ import annotations

import os
import re
import signal
import socket
import stat
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.helpers.databases import _drop_schemas, postgres_url
from tests.supervisor._up import Up, alive, running_up, spawn_up

SERVICES = ("git", "store", "ci", "gateway")


@pytest.fixture(scope="module")
def up(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Up]:
    """One installation with no runners, shared by the tests that only look at it."""
    root = tmp_path_factory.mktemp("up")
    with running_up(root / "data", "--runners", "0", "--verbose") as running:
        yield running


def _wait(predicate: object, timeout: float = 30, step: float = 0.05) -> bool:
    assert callable(predicate)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(step)
    return False


class TestStart:
    """Starting: every service healthy, the URL and admin token printed and kept."""

    def test_every_service_is_healthy_and_reported(self, up: Up):
        for name in SERVICES:
            assert re.search(rf"✓ {name}\s+healthy in\s+[\d.]+ s", up.output), up.output
        assert httpx.get(up.url + "/healthz").status_code == 200

    def test_url_and_admin_token_are_printed(self, up: Up):
        assert f"Shipyard is up at {up.url}" in up.output
        assert f"admin token: {up.token}" in up.output
        with up.api() as api:
            assert api.get("/whoami").json()["scopes"] == ["admin"]

    def test_admin_token_file_is_private(self, up: Up):
        mode = stat.S_IMODE((up.data_dir / "admin.token").stat().st_mode)
        assert mode == 0o600

    def test_cli_config_is_written_when_the_user_has_none(self, up: Up):
        config = up.home / "config.toml"
        assert stat.S_IMODE(config.stat().st_mode) == 0o600
        text = config.read_text()
        assert f'server = "{up.url}"' in text
        assert f'token = "{up.token}"' in text

    def test_each_child_has_a_pid_file_and_a_log(self, up: Up):
        for name in SERVICES:
            pid = up.pid(name)
            assert alive(pid)
            argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
            assert argv[argv.index(b"shipyard.service") + 1] == name.encode()
            assert (up.data_dir / "logs" / f"{name}.log").stat().st_size > 0
        assert int((up.data_dir / "run" / "up.pid").read_text()) == up.proc.pid

    def test_services_listen_on_loopback_ports_of_their_own(self, up: Up):
        urls = {_service_url(up, name) for name in ("git", "store", "ci")}
        assert all(url.startswith("http://127.0.0.1:") for url in urls)
        assert len(urls) == 3

    def test_verbose_echoes_the_services_logs(self, up: Up):
        assert re.search(r"(git|store|ci|gateway) │ ", up.output), up.output

    def test_second_up_on_the_same_data_dir_is_refused(self, up: Up):
        other = spawn_up(up.data_dir, "--runners", "0")
        assert other.proc.wait(60) == 1
        other.stop()
        assert f"already running with data dir {up.data_dir}" in other.output
        assert f"(pid {up.proc.pid})" in other.output
        assert httpx.get(up.url + "/healthz").status_code == 200  # the first one is unharmed


def _service_url(up: Up, name: str) -> str:
    env = Path(f"/proc/{up.pid('gateway')}/environ").read_bytes().split(b"\0")
    line = next(e for e in env if e.startswith(f"SHIPYARD_{name.upper()}_URL=".encode()))
    return line.split(b"=", 1)[1].decode()


def test_the_gateway_hop_adds_little_latency(up: Up, record_property: pytest.RecordProperty):
    """The median added by the gateway to a small request, measured against git directly."""
    headers = {"Authorization": f"Bearer {up.token}"}
    samples: dict[str, list[float]] = {"direct": [], "gateway": []}
    with httpx.Client(base_url=_service_url(up, "git"), headers=headers) as direct, \
            httpx.Client(base_url=up.url + "/api/v1", headers=headers) as gateway:
        clients = {"direct": direct, "gateway": gateway}
        for _ in range(20):  # warm up both paths and their connection pools
            for client in clients.values():
                client.get("/repos").raise_for_status()
        for _ in range(300):
            for name, client in clients.items():
                started = time.perf_counter()
                client.get("/repos").raise_for_status()
                samples[name].append(time.perf_counter() - started)
    medians = {k: sorted(v)[len(v) // 2] for k, v in samples.items()}
    overhead_ms = (medians["gateway"] - medians["direct"]) * 1000
    record_property("gateway_overhead_ms", round(overhead_ms, 3))
    print(f"median direct {medians['direct'] * 1000:.2f} ms, through the gateway "
          f"{medians['gateway'] * 1000:.2f} ms: {overhead_ms:.2f} ms added")
    assert overhead_ms < 10


class TestSupervision:
    """A child that dies is started again and becomes healthy again."""

    def test_killed_service_is_restarted(self, up: Up):
        old = up.pid("store")
        os.kill(old, signal.SIGKILL)
        up.wait_for("store exited with code -9 (killed by SIGKILL); restarting in")
        up.wait_for("store is healthy again")
        assert up.pid("store") != old
        assert alive(up.pid("store"))
        assert _wait(lambda: httpx.get(up.url + "/healthz").status_code == 200)
        with up.api() as api:
            r = api.post("/repos", json={"name": "after-restart"})
        assert r.status_code == 201

    def test_killed_gateway_is_restarted_on_the_same_port(self, up: Up):
        old = up.pid("gateway")
        os.kill(old, signal.SIGKILL)
        up.wait_for("restarted gateway")
        assert _wait(lambda: _healthy(up.url))
        assert up.pid("gateway") != old


    def test_requests_wait_for_a_restarting_service_instead_of_being_refused(self, up: Up):
        """up holds each service's listening socket: while the gateway is dead and
        restarting, a request waits in the backlog and is answered by the new one."""
        old = up.pid("gateway")
        mark = len(up.lines)
        os.kill(old, signal.SIGKILL)
        deadline = time.monotonic() + 30
        while not any("gateway exited with" in line for line in up.lines[mark:]):
            assert time.monotonic() < deadline, "the gateway's death was not noticed"
            time.sleep(0.01)
        assert not any("restarted gateway" in line for line in up.lines[mark:])
        r = httpx.get(up.url + "/healthz", timeout=30)  # sent while nothing serves the port
        assert r.status_code == 200
        assert up.pid("gateway") != old


def _healthy(url: str) -> bool:
    try:
        return httpx.get(url + "/healthz", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def _children_pids(up: Up) -> list[int]:
    return [int(p.read_text()) for p in (up.data_dir / "run").glob("*.pid") if p.stem != "up"]


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_sigterm_stops_everything_and_a_restart_resumes(tmp_path: Path, backend: str):
    """SIGTERM exits 0 leaving no process; starting again keeps token, secret and data."""
    env: dict[str, str] = {}
    if backend == "postgres":
        prefix = f"up{os.getpid()}_{int(time.time() * 1000) % 10**8}_"
        env = {"SHIPYARD_DATABASE_URL": postgres_url(), "SHIPYARD_DATABASE_SCHEMA_PREFIX": prefix}
    try:
        first = spawn_up(tmp_path / "data", "--runners", "0", env=env)
        first.wait_for("Press Ctrl-C to stop.", timeout=120)
        token = first.token
        secret = (tmp_path / "data" / "secret.key").read_bytes()
        with first.api() as api:
            assert api.post("/repos", json={"name": "kept"}).status_code == 201
        pids = _children_pids(first)
        assert len(pids) == 4
        started = time.monotonic()
        assert first.stop() == 0, first.output
        stop_took = time.monotonic() - started
        assert not [p for p in pids if alive(p)]
        assert "Stopped." in first.output
        assert not list((tmp_path / "data" / "run").glob("*.pid"))
        order = [m.group(1) for m in re.finditer(r"✓ (\w+) stopped in", first.output)]
        assert order == ["gateway", "ci", "store", "git"]

        second = spawn_up(tmp_path / "data", "--runners", "0", port=first.port, env=env)
        try:
            second.wait_for("Press Ctrl-C to stop.", timeout=120)
            assert second.token == token
            assert f"admin token: {token}" in second.output
            assert (tmp_path / "data" / "secret.key").read_bytes() == secret
            with second.api(token) as api:
                names = [r["name"] for r in api.get("/repos").json()]
            assert "kept" in names
        finally:
            assert second.stop() == 0, second.output
        assert stop_took < 30
    finally:
        if backend == "postgres":
            _drop_schemas(env["SHIPYARD_DATABASE_URL"], env["SHIPYARD_DATABASE_SCHEMA_PREFIX"])


def test_a_busy_port_is_refused_with_a_clear_message(tmp_path: Path):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        up = spawn_up(tmp_path / "data", "--runners", "0", port=port)
        assert up.proc.wait(60) == 1
        up.stop()
    assert f"cannot listen on 127.0.0.1:{port}" in up.output
    assert "--port" in up.output
    assert "Traceback" not in up.output


def test_a_service_that_cannot_start_stops_up_with_its_log(tmp_path: Path):
    """An unreachable database: `up` says which service failed, shows its log, exits 1."""
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    up = spawn_up(tmp_path / "data", "--runners", "0",
                  "--database-url", f"postgresql://nobody@127.0.0.1:{port}/none")
    assert up.proc.wait(120) == 1, up.output
    up.stop()
    assert re.search(r"error: \w+ exited with code 1 while starting", up.output), up.output
    assert "last lines of" in up.output
    assert not _children_pids(up)


def test_bad_settings_file_is_an_error_not_a_traceback(tmp_path: Path):
    data = tmp_path / "data"
    data.mkdir()
    (data / "shipyard.toml").write_text("runners = 'many'\n")
    up = spawn_up(data)
    assert up.proc.wait(60) == 1
    up.stop()
    assert "error: bad settings: runners" in up.output
    assert "Traceback" not in up.output


def test_flags_beat_the_environment_which_beats_the_file(tmp_path: Path):
    """--runners over SHIPYARD_RUNNERS over shipyard.toml; the file still sets the rest."""
    data = tmp_path / "data"
    data.mkdir()
    (data / "shipyard.toml").write_text('runners = 3\nlog_level = "warning"\n')
    with running_up(data, "--runners", "0", env={"SHIPYARD_RUNNERS": "2"}) as up:
        assert "runner" not in " ".join(p.stem for p in (data / "run").glob("*.pid"))
        env = Path(f"/proc/{up.pid('ci')}/environ").read_bytes().split(b"\0")
        assert b"SHIPYARD_LOG_LEVEL=warning" in env
        assert b"SHIPYARD_RUNNERS=0" in env


def test_children_die_with_a_killed_supervisor_and_the_dir_is_usable_again(tmp_path: Path):
    """SIGKILL of `up` leaves no service running (they ask for SIGTERM when it dies)."""
    first = spawn_up(tmp_path / "data", "--runners", "0")
    first.wait_for("Press Ctrl-C to stop.", timeout=120)
    pids = _children_pids(first)
    os.kill(first.proc.pid, signal.SIGKILL)
    first.proc.wait(30)
    first.stop()
    assert _wait(lambda: not [p for p in pids if alive(p)], timeout=30)
    with running_up(tmp_path / "data", "--runners", "0") as second:
        assert f"admin token: {first.token}" in second.output


def test_leftover_children_of_this_data_dir_are_stopped_and_others_spared(tmp_path: Path):
    import subprocess
    import sys

    from tests.helpers.databases import TEST_SECRET
    from tests.helpers.servers import free_port

    data = tmp_path / "data"
    (data / "run").mkdir(parents=True)
    leftover = subprocess.Popen(
        [sys.executable, "-m", "shipyard.service", "store", "--port", str(free_port())],
        env={**{k: v for k, v in os.environ.items() if not k.startswith("SHIPYARD_")},
             "SHIPYARD_DATA_DIR": str(data.resolve()), "SHIPYARD_SECRET": TEST_SECRET},
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    bystander = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
    try:
        (data / "run" / "store.pid").write_text(f"{leftover.pid}\n")
        (data / "run" / "ci.pid").write_text(f"{bystander.pid}\n")
        with running_up(data, "--runners", "0") as up:
            assert f"stopping store (pid {leftover.pid}) left running by an earlier" in up.output
            assert leftover.wait(30) is not None
            assert bystander.poll() is None
    finally:
        for proc in (leftover, bystander):
            proc.kill()
            proc.wait()


def test_a_second_signal_stops_at_once_and_still_exits_0(tmp_path: Path):
    """Signalled twice, `up` kills what has not stopped yet instead of waiting 10 s."""
    up = spawn_up(tmp_path / "data", "--runners", "1")
    up.wait_for("Press Ctrl-C to stop.", timeout=120)
    runner_log = tmp_path / "data" / "logs" / "runners.log"
    assert _wait(lambda: "connected to" in runner_log.read_text(), timeout=60)
    pids = _children_pids(up)
    started = time.monotonic()
    assert up.stop(hurry=True) == 0, up.output
    assert time.monotonic() - started < 8
    assert "did not stop in time; killing it" in up.output
    assert not [p for p in pids if alive(p)]


def test_what_a_killed_service_started_in_a_session_of_its_own_is_stopped(tmp_path: Path):
    """A program git started in its own session (as `git http-backend` runs) dies when
    git is killed: up finds it by the mark it inherited from git's environment."""
    import subprocess

    with running_up(tmp_path / "data", "--runners", "0") as up:
        git = up.pid("git")
        mark = next(e for e in Path(f"/proc/{git}/environ").read_bytes().split(b"\0")
                    if e.startswith(b"SHIPYARD_CHILD_OF="))
        assert mark.endswith(b"/git")
        name, _, value = mark.decode().partition("=")
        # Started as git starts its CGI programs: a session of its own, git's environment.
        orphan = subprocess.Popen(["sleep", "120"], env={**os.environ, name: value},
                                  start_new_session=True)
        try:
            mark_line = len(up.lines)
            os.kill(git, signal.SIGKILL)
            assert orphan.wait(timeout=30) == -signal.SIGKILL
            up.wait_for("restarted git", timeout=60)
            assert any("process(es) git left running" in line for line in up.lines[mark_line:])
        finally:
            if orphan.poll() is None:
                orphan.kill()
                orphan.wait()



def test_the_runners_process_starts_with_huge_pages_for_step_output(tmp_path: Path):
    """glibc's huge-page tunables for the runners (shipyard._hugepages), none for services."""
    with running_up(tmp_path / "data", "--runners", "1") as up:
        runner_log = tmp_path / "data" / "logs" / "runners.log"
        assert _wait(lambda: "connected to" in runner_log.read_text(), timeout=60)
        started_with = Path(f"/proc/{up.pid('runners')}/environ").read_bytes()
        assert b"GLIBC_TUNABLES=glibc.malloc.hugetlb=1" in started_with
        assert b"GLIBC_TUNABLES" not in Path(f"/proc/{up.pid('ci')}/environ").read_bytes()
