"""The process supervisor daemon: one per data folder, detached, adopting after kill -9."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from shipyard.infra.provider import REQUIRED, Context, Created
from shipyard.infra.providers._supervisor_client import SupervisorClient
from shipyard.infra.providers._supervisor_proc import is_running, process_environ
from shipyard.infra.providers.process import Process
from tests.infra.providers.test_process import SERVER, free_ports, stop_everything
from tests.infra.providers.test_process_lifecycle import answer, wait_for

PROCESS = Process()


def props(**values: Any) -> dict[str, Any]:
    full = {k: p.default for k, p in PROCESS.properties.items() if p.default is not REQUIRED}
    full.update(values)
    return full


def server(port: int, replicas: int = 2) -> dict[str, Any]:
    return props(
        command=[sys.executable, "server.py"], port=port, replicas=replicas,
        environment={"VERSION": "v1"}, health_check={"path": "/", "interval": 0.3},
    )


def supervisors_of(root: Path) -> list[int]:
    """Every live supervisor process of ``root``."""
    found = []
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            argv = Path(f"/proc/{entry.name}/cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        ours = b"shipyard.infra.providers._supervisor" in argv and os.fsencode(root.resolve()) in argv
        if ours and is_running(int(entry.name)):
            found.append(int(entry.name))
    return found


@pytest.fixture
def ctx(tmp_path: Path) -> Iterator[Context]:
    stack = tmp_path / "stack"
    stack.mkdir()
    (stack / "server.py").write_text(SERVER)
    context = Context(config={}, stack_dir=stack, data_dir=tmp_path / "data", log=lambda m: None)
    yield context
    stop_everything(context.data_dir)


def supervisor(ctx: Context) -> int:
    pid = SupervisorClient(ctx.data_dir).supervisor_pid()
    assert pid is not None
    return pid


class TestDaemon:
    def test_one_supervisor_for_concurrent_creates(self, ctx: Context) -> None:
        """Four creates at once in threads share one detached supervisor, not our child."""
        results: list[Created] = []
        threads = [
            threading.Thread(target=lambda: results.append(PROCESS.create(ctx, props(command="exec sleep 60"))))
            for _ in range(4)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert len(results) == 4
        assert supervisors_of(ctx.data_dir) == [supervisor(ctx)]
        status = Path(f"/proc/{supervisor(ctx)}/stat").read_text().rpartition(")")[2].split()
        assert int(status[1]) != os.getpid()  # re-parented away from us
        assert os.getsid(supervisor(ctx)) == supervisor(ctx)  # its own session
        env = process_environ(supervisor(ctx))
        assert env is not None and "SHIPYARD_INFRA_KEY" not in env

    def test_a_second_supervisor_gives_way(self, ctx: Context) -> None:
        """Starting the daemon by hand while one runs exits at once, leaving the first alone."""
        PROCESS.create(ctx, props(command="exec sleep 60"))
        first = supervisor(ctx)
        result = subprocess.run(
            [sys.executable, "-m", "shipyard.infra.providers._supervisor", str(ctx.data_dir)],
            capture_output=True, timeout=30, check=False,
        )
        assert result.returncode == 0
        assert supervisors_of(ctx.data_dir) == [first]

    def test_exits_when_it_supervises_nothing(self, ctx: Context) -> None:
        """After the last service is deleted the supervisor exits and removes its pid file."""
        created = PROCESS.create(ctx, props(command="exec sleep 60"))
        pid = supervisor(ctx)
        PROCESS.delete(ctx, created.id, {}, created.attributes)
        wait_for(lambda: not is_running(pid), timeout=5)
        assert not SupervisorClient(ctx.data_dir).layout.pid.exists()
        assert "nothing left to supervise" in SupervisorClient(ctx.data_dir).layout.log.read_text()

    def test_services_outlive_the_cli(self, ctx: Context) -> None:
        """A service created by a CLI process that then exits (its process group signalled,
        as a terminal would) goes on serving."""
        port = free_ports(2)
        script = (
            "import json, sys\n"
            "from pathlib import Path\n"
            "from shipyard.infra.provider import Context\n"
            "from shipyard.infra.providers.process import Process\n"
            "ctx = Context(config={}, stack_dir=Path(sys.argv[1]), data_dir=Path(sys.argv[2]))\n"
            "created = Process().create(ctx, json.loads(sys.argv[3]))\n"
            "print(json.dumps({'id': created.id, 'attributes': created.attributes}))\n"
        )
        cli = subprocess.Popen(
            [sys.executable, "-c", script, str(ctx.stack_dir), str(ctx.data_dir), json.dumps(server(port))],
            stdout=subprocess.PIPE, start_new_session=True,
        )
        out, _ = cli.communicate(timeout=60)
        assert cli.returncode == 0
        with pytest.raises(ProcessLookupError):
            os.killpg(cli.pid, signal.SIGHUP)  # nothing of ours is left in the CLI's group
        created = json.loads(out.splitlines()[-1])
        time.sleep(0.3)
        for i, pid in enumerate(created["attributes"]["pids"]):
            assert is_running(pid)
            assert (answer(port + i) or "").startswith(f"v1 {i} {pid}")


class TestAdoption:
    def test_kill_9_of_the_supervisor_loses_nothing(self, ctx: Context) -> None:
        """The replicas serve on after the supervisor is killed; the next read starts a new
        supervisor that adopts them (same pids) and restarts them when they die."""
        port = free_ports(2)
        wanted = server(port)
        created = PROCESS.create(ctx, wanted)
        old = supervisor(ctx)
        os.kill(old, signal.SIGKILL)
        wait_for(lambda: not is_running(old))
        assert [(answer(port + i) or "").split()[0] for i in range(2)] == ["v1", "v1"]
        observed = PROCESS.read(ctx, created.id, wanted, created.attributes)
        assert observed is not None
        new = supervisor(ctx)
        assert new != old
        assert observed.attributes["pids"] == created.attributes["pids"] and observed.notes == ()
        assert observed.properties == wanted
        adopted = created.attributes["pids"][0]
        os.kill(adopted, signal.SIGKILL)  # not the new supervisor's child: seen through /proc
        wait_for(lambda: str(adopted) not in (answer(port) or str(adopted)))
        again = PROCESS.read(ctx, created.id, wanted, created.attributes)
        assert again is not None
        assert again.notes[0].startswith(f"replica 0 (pid {adopted}) exited (its status is unknown")
        assert again.attributes["restarts"] == 1

    def test_replica_dead_while_unsupervised_is_restarted(self, ctx: Context) -> None:
        """A replica that died while no supervisor ran is started again by the next one,
        and read says what happened."""
        port = free_ports(2)
        wanted = server(port)
        created = PROCESS.create(ctx, wanted)
        old = supervisor(ctx)
        os.kill(old, signal.SIGKILL)
        wait_for(lambda: not is_running(old))
        victim = created.attributes["pids"][1]
        os.kill(victim, signal.SIGKILL)
        wait_for(lambda: answer(port + 1) is None)
        observed = PROCESS.read(ctx, created.id, wanted, created.attributes)
        assert observed is not None
        assert observed.attributes["pids"][0] == created.attributes["pids"][0]
        note = next(n for n in observed.notes if n.startswith("replica 1"))
        assert f"replica 1 (pid {victim}) exited while no supervisor was running" in note
        wait_for(lambda: (answer(port + 1) or "").startswith("v1 1"))

    def test_delete_while_the_supervisor_is_dead(self, ctx: Context) -> None:
        """delete starts a supervisor that adopts the orphaned replicas and stops them."""
        created = PROCESS.create(ctx, props(command="exec sleep 60", replicas=2))
        old = supervisor(ctx)
        os.kill(old, signal.SIGKILL)
        wait_for(lambda: not is_running(old))
        PROCESS.delete(ctx, created.id, {}, created.attributes)
        assert not any(is_running(pid) for pid in created.attributes["pids"])

    def test_sigterm_leaves_the_replicas_to_the_next_supervisor(self, ctx: Context) -> None:
        """A supervisor stopped with SIGTERM exits without stopping the replicas."""
        wanted = props(command="exec sleep 60")
        created = PROCESS.create(ctx, wanted)
        pid = supervisor(ctx)
        os.kill(pid, signal.SIGTERM)
        wait_for(lambda: not is_running(pid))
        assert is_running(created.attributes["pids"][0])
        observed = PROCESS.read(ctx, created.id, wanted, created.attributes)
        assert observed is not None and observed.attributes["pids"] == created.attributes["pids"]
