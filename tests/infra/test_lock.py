"""Leases: one writer at a time, named when refused, taken over when its holder died."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from shipyard.errors import LockedError
from shipyard.infra._lock import LockInfo, default_owner, process_start
from shipyard.infra._state import LocalBackend, ResourceState

KEY = bytes(range(32))

# Takes the lease (ttl argv[2]) as owner argv[3], says "held <pid>", puts a resource
# whenever a line arrives on stdin and reports the outcome, until stdin closes.
HOLDER = """
import sys
from pathlib import Path
from shipyard.errors import LockedError
from shipyard.infra._state import LocalBackend, ResourceState
b = LocalBackend(Path(sys.argv[1]), key=bytes(range(32)), lease_ttl=float(sys.argv[2]))
s = b.session(sys.argv[3], "apply")
print("held", flush=True)
for n, line in enumerate(sys.stdin):
    try:
        s.put(ResourceState(f"r{n}", "null", "i", {}, {}, [], []))
        print("put ok", flush=True)
    except LockedError as e:
        print(f"put refused: {e}", flush=True)
s.close()
"""

# Says "ready", waits for a line on stdin, then tries the lease once; holds it
# argv[2] s if won.
RACER = """
import os, sys, time
from pathlib import Path
from shipyard.errors import LockedError
from shipyard.infra._state import LocalBackend
b = LocalBackend(Path(sys.argv[1]), key=bytes(range(32)), lease_ttl=30)
print("ready", flush=True)
sys.stdin.readline()
try:
    s = b.session(f"racer{os.getpid()}@test", "apply")
except LockedError as e:
    print(f"lost {e}", flush=True)
else:
    print("won", flush=True)
    time.sleep(float(sys.argv[2]))
    s.close()
"""


# Takes a 20 ms lease argv[2] times and never releases it, as if it died holding it:
# each next taker takes over an expired lease. Prints "<new id> <id taken over>".
TAKER = """
import os, sys
from pathlib import Path
from shipyard.infra._lock import LeaseFile
leases = LeaseFile(Path(sys.argv[1]), ttl=0.02)
print("ready", flush=True)
sys.stdin.readline()
for _ in range(int(sys.argv[2])):
    lease = leases.acquire(f"taker{os.getpid()}@test", "apply", wait=30)
    print(lease.info.id, lease.replaced.id if lease.replaced else "-", flush=True)
"""


def start_together(code: str, *args: str, count: int) -> list[subprocess.Popen[str]]:
    """Start ``count`` children, wait until all say "ready", then release them at once."""
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", code, *args],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        for _ in range(count)
    ]
    for p in procs:
        assert p.stdout is not None and p.stdout.readline() == "ready\n"
    for p in procs:
        assert p.stdin is not None
        p.stdin.write("go\n")
        p.stdin.flush()
    return procs


def write_lease(state_dir: Path, *, pid: int, host: str | None = None, ttl: float = 30,
                process_start: str | None = None) -> LockInfo:
    """Leave the lease another process would hold (``host``: this one by default)."""
    now = datetime.now(UTC)
    host = host or os.uname().nodename
    info = LockInfo(os.urandom(16).hex(), f"alice@{host}", pid, host, "apply", now,
                    now + timedelta(seconds=ttl), ttl, process_start)
    state_dir.mkdir(parents=True, exist_ok=True)
    (state_dir / "lease.json").write_text(json.dumps(info.to_json()))
    return info


def resource(address: str) -> ResourceState:
    return ResourceState(address, "null", "id", {}, {}, [], [])


def start_holder(state_dir: Path, ttl: float, owner: str = "holder@test") -> subprocess.Popen[str]:
    proc = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(state_dir), str(ttl), owner],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    assert proc.stdout.readline() == "held\n"
    return proc


def kill9(proc: subprocess.Popen[str]) -> None:
    proc.send_signal(signal.SIGKILL)
    proc.communicate()
    assert proc.returncode == -signal.SIGKILL


def ask_to_put(proc: subprocess.Popen[str]) -> str:
    assert proc.stdin is not None and proc.stdout is not None
    proc.stdin.write("go\n")
    proc.stdin.flush()
    return proc.stdout.readline().strip()


@pytest.fixture
def backend(tmp_path: Path) -> LocalBackend:
    return LocalBackend(tmp_path / "state", key=KEY, lease_ttl=30)


class TestRefusal:
    def test_a_second_session_is_refused_naming_the_holder(self, backend: LocalBackend) -> None:
        with backend.session("alice@host", "apply"):
            with pytest.raises(LockedError) as err:
                backend.session("bob@host", "plan")
            message = str(err.value)
            assert re.match(
                rf"state is locked by alice@host \(pid {os.getpid()} on \S+\) running apply "
                r"since \d\d:\d\d:\d\d; the lease expires at \d\d:\d\d:\d\d",
                message,
            ), message
            assert "--force-unlock" in message
            assert "--lock-timeout" in message

    def test_the_holder_in_another_process_is_named_with_its_pid(
        self, backend: LocalBackend
    ) -> None:
        owner = default_owner()
        proc = start_holder(backend.dir, 30, owner)
        try:
            with pytest.raises(
                LockedError, match=rf"locked by {re.escape(owner)} \(pid {proc.pid}\)"
            ):
                backend.session("bob@host", "plan")
            info = backend.lock_info()
            assert info is not None
            assert (info.owner, info.pid, info.operation) == (owner, proc.pid, "apply")
            assert info.host == os.uname().nodename
            assert not info.expired()
        finally:
            proc.communicate("")
        assert proc.returncode == 0
        assert backend.lock_info() is None

    def test_the_lease_is_released_on_exit(self, backend: LocalBackend) -> None:
        with backend.session("alice@host", "apply"):
            assert backend.lock_info() is not None
        assert backend.lock_info() is None
        with backend.session("bob@host", "apply"):
            pass


class TestWaiting:
    def test_a_waiting_session_gets_the_lease_when_the_holder_finishes(
        self, backend: LocalBackend
    ) -> None:
        held = backend.session("alice@host", "apply")
        timer = threading.Timer(0.3, held.close)
        timer.start()
        started = time.monotonic()
        with backend.session("bob@host", "apply", wait=10) as s:
            waited = time.monotonic() - started
            assert s.lease.owner == "bob@host"
        timer.join()
        assert 0.25 <= waited < 2.0

    def test_waiting_gives_up_after_the_timeout_naming_the_holder(
        self, backend: LocalBackend
    ) -> None:
        with backend.session("alice@host", "apply"):
            started = time.monotonic()
            with pytest.raises(
                LockedError, match=r"still locked after waiting 0.3 s, by alice@host"
            ):
                backend.session("bob@host", "plan", wait=0.3)
            assert 0.3 <= time.monotonic() - started < 1.5


class TestExpiry:
    def test_a_lease_kept_alive_by_renewal_outlives_its_ttl(self, tmp_path: Path) -> None:
        backend = LocalBackend(tmp_path, key=KEY, lease_ttl=0.4)
        with backend.session("alice@host", "apply") as s:
            time.sleep(1.0)
            with pytest.raises(LockedError, match="alice@host"):
                backend.session("bob@host", "plan")
            s.put(resource("a"))
        assert "a" in backend.read().resources

    def test_the_lease_of_a_killed_holder_on_this_host_is_taken_over_at_once(
        self, tmp_path: Path
    ) -> None:
        """kill -9 leaves a 30 s lease behind; its pid runs nothing now, so the next
        session takes it over at once, says so, and recovers the dead holder's journal."""
        backend = LocalBackend(tmp_path, key=KEY, lease_ttl=30)
        proc = start_holder(tmp_path, 30)
        assert ask_to_put(proc) == "put ok"
        kill9(proc)
        dead = backend.lock_info()
        assert dead is not None and dead.pid == proc.pid and not dead.expired()
        assert dead.process_start is not None
        with backend.session("bob@host", "apply") as s:
            assert s.lease.pid == os.getpid()
            assert s.took_over is not None and s.took_over.pid == proc.pid
            assert s.notice is not None and s.notice.startswith(
                f"took over the lease of holder@test (pid {proc.pid}, no longer running), "
                "which was running apply since "
            ), s.notice
            assert "r0" in s.state.resources  # the dead holder's journal was recovered
        with backend.session("bob@host", "apply") as s:
            assert s.took_over is None and s.notice is None

    def test_a_pid_now_used_by_another_process_is_not_the_holder(self, tmp_path: Path) -> None:
        """A lease naming a running process that started at another time than the
        holder (its pid was reused) is taken over at once; naming that very process,
        it is not."""
        backend = LocalBackend(tmp_path, key=KEY)
        other = subprocess.Popen(["sleep", "30"])
        try:
            started = process_start(other.pid)
            assert started is not None
            write_lease(tmp_path, pid=other.pid, process_start=started)
            with pytest.raises(LockedError, match=rf"pid {other.pid}\)"):
                backend.session("bob@host", "apply")
            write_lease(tmp_path, pid=other.pid, process_start=started + "0")
            with backend.session("bob@host", "apply") as s:
                assert s.notice is not None and f"(pid {other.pid}, no longer running)" in s.notice
        finally:
            other.kill()
            other.wait()

    def test_a_killed_holder_not_yet_reaped_is_gone(self, tmp_path: Path) -> None:
        """A holder killed but not yet waited for by its parent (a zombie) still has
        its pid: it is gone all the same."""
        backend = LocalBackend(tmp_path, key=KEY)
        holder = start_holder(tmp_path, 30)
        holder.send_signal(signal.SIGKILL)
        deadline = time.monotonic() + 10
        while Path(f"/proc/{holder.pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z":
            assert time.monotonic() < deadline
            time.sleep(0.01)
        try:
            with backend.session("bob@host", "apply") as s:
                assert s.took_over is not None and s.took_over.pid == holder.pid
        finally:
            holder.communicate()

    def test_the_lease_of_another_host_is_taken_over_once_expired(self, tmp_path: Path) -> None:
        """A process on another host cannot be seen: its lease blocks until its ttl has
        passed, then is taken over, saying it expired."""
        backend = LocalBackend(tmp_path, key=KEY)
        info = write_lease(tmp_path, pid=os.getpid() + 100_000, host="elsewhere", ttl=0.6)
        with pytest.raises(LockedError, match=r"locked by alice@elsewhere \(pid \d+\) running apply"):
            backend.session("bob@host", "apply")
        time.sleep(max(0.0, info.expires.timestamp() - time.time()) + 0.05)
        with backend.session("bob@host", "apply") as s:
            assert s.took_over == info
            assert s.notice is not None and s.notice.startswith(
                "took over the expired lease of alice@elsewhere (pid"
            ), s.notice

    def test_a_waiting_session_takes_over_when_a_lease_of_another_host_expires(
        self, tmp_path: Path
    ) -> None:
        backend = LocalBackend(tmp_path, key=KEY)
        write_lease(tmp_path, pid=1, host="elsewhere", ttl=0.5)
        started = time.monotonic()
        with backend.session("bob@host", "apply", wait=5) as s:
            assert 0.4 < time.monotonic() - started < 1.5
            assert s.took_over is not None and s.took_over.host == "elsewhere"

    def test_processes_racing_for_an_expired_lease_have_exactly_one_winner(
        self, tmp_path: Path
    ) -> None:
        """Six processes see a killed holder's expired lease at once: one wins, the five
        others are refused naming the winner (not the dead holder)."""
        backend = LocalBackend(tmp_path, key=KEY)
        holder = start_holder(tmp_path, 0.2)
        kill9(holder)
        time.sleep(0.25)
        info = backend.lock_info()
        assert info is not None and info.pid == holder.pid and info.expired()
        racers = start_together(RACER, str(tmp_path), "0.3", count=6)
        outcomes = {p.pid: p.communicate()[0].strip() for p in racers}
        winners = [pid for pid, out in outcomes.items() if out == "won"]
        assert len(winners) == 1, outcomes
        for pid, out in outcomes.items():
            if pid != winners[0]:
                assert out.startswith(f"lost state is locked by racer{winners[0]}@test"), out
                assert f"pid {holder.pid}" not in out

    def test_each_expired_lease_is_taken_over_by_exactly_one_process(self, tmp_path: Path) -> None:
        """Six processes each take 15 short leases that are never released, all polling
        for the current one to expire: 90 take-overs, and no expired lease is taken over
        twice (which two processes reading it then both writing their own would do)."""
        takers = start_together(TAKER, str(tmp_path), "15", count=6)
        lines = [line for p in takers for line in p.communicate()[0].split("\n") if line]
        assert all(p.returncode == 0 for p in takers)
        taken = [line.split() for line in lines]
        assert len(taken) == 90
        replaced = [old for _, old in taken]
        assert replaced.count("-") == 1  # the very first lease replaced none
        assert len(set(replaced)) == 90, "an expired lease was taken over twice"
        # They form one chain: every lease but the last was taken over by the next.
        new_ids = {new for new, _ in taken}
        assert set(replaced) - {"-"} <= new_ids
        assert len(new_ids - set(replaced)) == 1

    def test_a_holder_suspended_past_its_ttl_cannot_write_after_a_take_over(
        self, tmp_path: Path
    ) -> None:
        """SIGSTOP past the ttl, another takes the lease, SIGCONT: the first is refused."""
        backend = LocalBackend(tmp_path, key=KEY)
        proc = start_holder(tmp_path, 0.4)
        try:
            proc.send_signal(signal.SIGSTOP)
            with backend.session("bob@host", "apply", wait=5) as s:
                proc.send_signal(signal.SIGCONT)
                answer = ask_to_put(proc)
                assert answer.startswith(
                    "put refused: the lease on the state was taken by bob@host"
                ), answer
                s.put(resource("mine"))
        finally:
            proc.send_signal(signal.SIGCONT)
            proc.communicate("")
        assert set(backend.read().resources) == {"mine"}

    def test_a_holder_suspended_past_its_ttl_goes_on_if_nobody_took_the_lease(
        self, tmp_path: Path
    ) -> None:
        proc = start_holder(tmp_path, 0.2)
        try:
            proc.send_signal(signal.SIGSTOP)
            time.sleep(0.4)
            info = LocalBackend(tmp_path).lock_info()
            assert info is not None and info.expired()
            proc.send_signal(signal.SIGCONT)
            assert ask_to_put(proc) == "put ok"
        finally:
            proc.send_signal(signal.SIGCONT)
            proc.communicate("")
        assert "r0" in LocalBackend(tmp_path, key=KEY).read().resources


class TestForceUnlock:
    def test_force_unlock_removes_any_lease_and_returns_it(self, backend: LocalBackend) -> None:
        held = backend.session("alice@host", "apply")
        held.put(resource("a"))
        removed = backend.force_unlock()
        assert isinstance(removed, LockInfo) and removed.owner == "alice@host"
        assert backend.lock_info() is None
        assert backend.force_unlock() is None
        with backend.session("bob@host", "apply") as s:
            assert set(s.state.resources) == {"a"}  # alice's journal, recovered
            s.put(resource("b"))
            # The old holder notices at its next change, and cannot commit.
            with pytest.raises(LockedError, match=r"taken by bob@host"):
                held.put(resource("c"))
            with pytest.raises(LockedError, match=r"taken by bob@host"):
                held.commit()
            held.close()
        assert set(backend.read().resources) == {"a", "b"}

    def test_a_session_can_force_the_lease(self, backend: LocalBackend) -> None:
        held = backend.session("alice@host", "apply")
        with backend.session("bob@host", "apply", force_unlock=True) as s:
            assert s.lease.owner == "bob@host"
            with pytest.raises(LockedError, match="taken by bob@host"):
                held.put(resource("a"))
        held.close()
        assert backend.lock_info() is None

    def test_force_unlock_of_a_state_that_does_not_exist_is_none(self, tmp_path: Path) -> None:
        assert LocalBackend(tmp_path / "nothing").force_unlock() is None
        assert not (tmp_path / "nothing").exists()
