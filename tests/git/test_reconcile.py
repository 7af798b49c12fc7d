"""Ref changes the service did not record (it was down, or killed mid-push) are recorded
exactly once at its next start; two services on one data dir record each change once."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

from shipyard.git import create_app
from shipyard.service import Settings
from tests.git.conftest import ZERO, Served, git_client_env
from tests.helpers.servers import free_port, serve_app


@contextmanager
def running(settings: Settings, workdir: Path) -> Iterator[Served]:
    """A git service app on ``settings``, served in this process until the block ends."""
    workdir.mkdir(parents=True, exist_ok=True)
    with serve_app(create_app(settings)) as url:
        yield Served(settings, url, workdir)


def _bare(settings: Settings, name: str) -> Path:
    return settings.data_dir / "repos" / f"{name}.git"


def test_changes_made_while_down_are_recorded_once_at_start(settings: Settings, tmp_path: Path) -> None:
    """Refs moved, created and deleted behind the service's back: one event each at the next start, none at the one after."""
    with running(settings, tmp_path) as s:
        name = s.new_repo("down")
        wt = s.checkout(name)
        first = s.commit(wt, {"a": "1"})
        s.git(wt, "push", "-q", "origin", "main", "main:old")
        cursor = s.last_event_id()
    # With the service down, change the bare repository with plain git.
    bare = _bare(settings, name)
    second = s.commit(wt, {"a": "2"})
    s.git(wt, "push", "-q", str(bare), "main", "main:refs/tags/v2", ":old")
    with running(settings, tmp_path) as s2:
        assert s2.ref_events(cursor, name) == [
            ("refs/heads/main", first, second),
            ("refs/heads/old", first, ZERO),
            ("refs/tags/v2", ZERO, second),
        ]
        after_first_start = s2.last_event_id()
    with running(settings, tmp_path) as s3:
        assert s3.events_after(after_first_start) == []
        # and the next push is diffed against the reconciled state
        third = s3.commit(wt, {"a": "3"})
        s3.git(wt, "push", "-q", s3.remote(name), "main")
        assert s3.ref_events(after_first_start, name) == [("refs/heads/main", second, third)]


def test_a_directory_without_a_row_is_ignored_at_start(settings: Settings, tmp_path: Path) -> None:
    stray = _bare(settings, "stray")
    subprocess.run(["git", "init", "-q", "--bare", str(stray)], check=True, env=git_client_env(tmp_path))
    with running(settings, tmp_path) as s:
        assert s.events_after(0) == []
        assert s.api("GET", "/repos/stray").status_code == 404


@contextmanager
def service_process(settings: Settings, workdir: Path) -> Iterator[tuple[subprocess.Popen[bytes], Served]]:
    """The git service in a process of its own (so it can be killed with SIGKILL)."""
    port = free_port()
    env = {
        **os.environ,
        "SHIPYARD_DATA_DIR": str(settings.data_dir),
        "SHIPYARD_DATABASE_URL": settings.database_url,
        "SHIPYARD_DATABASE_SCHEMA_PREFIX": settings.database_schema_prefix,
        "SHIPYARD_SECRET": settings.secret,
        "SHIPYARD_LOG_LEVEL": "warning",
    }
    code = f"from shipyard.service import load_settings, serve; serve('git', load_settings(), host='127.0.0.1', port={port})"
    proc = subprocess.Popen([sys.executable, "-c", code], env=env, stderr=subprocess.PIPE)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"the git service did not start: {proc.stderr.read() if proc.stderr else ''!r}")
            time.sleep(0.05)
        yield proc, Served(settings, url, workdir)
    finally:
        if proc.poll() is None:
            proc.terminate()
            proc.wait(10)
        if proc.stderr:
            proc.stderr.close()


def test_a_push_killed_before_its_events_are_recorded_is_recorded_at_next_start(
    settings: Settings, tmp_path: Path
) -> None:
    """kill -9 after receive-pack moved the ref but before the event's transaction: the next start records it, once."""
    with service_process(settings, tmp_path) as (proc, s):
        name = s.new_repo("killed")
        wt = s.checkout(name)
        first = s.commit(wt, {"a": "1"})
        s.git(wt, "push", "-q", "origin", "main")
        cursor = s.last_event_id()
        # post-receive runs after the refs moved and before receive-pack ends; it holds the
        # push there until the marker is removed, while the service is killed.
        marker = tmp_path / "in-post-receive"
        hook = _bare(settings, name) / "hooks" / "post-receive"
        hook.write_text(f"#!/bin/sh\ntouch '{marker}'\nwhile [ -e '{marker}' ]; do sleep 0.05; done\n")
        hook.chmod(0o755)
        second = s.commit(wt, {"a": "2"})
        push = subprocess.Popen(
            ["git", "push", "-q", "origin", "main"], cwd=wt, env=s.env,
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 30
        while not marker.exists():
            assert time.monotonic() < deadline, "the push never reached post-receive"
            time.sleep(0.02)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(10)
        marker.unlink()
        push.wait(30)
        hook.unlink()
    with running(settings, tmp_path) as s2:
        assert s2.ref_events(cursor, name) == [("refs/heads/main", first, second)]
        settled = s2.last_event_id()
    with running(settings, tmp_path) as s3:
        assert s3.events_after(settled) == []


def test_two_services_on_one_data_dir_record_each_change_once(settings: Settings, tmp_path: Path) -> None:
    """Pushes through two services at once, to one repository: every change once, none lost."""
    with running(settings, tmp_path / "a") as a, running(settings, tmp_path / "b") as b:
        name = a.new_repo("shared")
        wt = a.checkout(name)
        base = a.commit(wt, {"f": "0"})
        a.git(wt, "push", "-q", "origin", "main")
        cursor = a.last_event_id()
        shas = {f"refs/heads/x{i}": a.commit(wt, {"f": str(i + 1)}) for i in range(8)}
        failures: list[str] = []

        def push(via: Served, ref: str) -> None:
            out = via.git(wt, "push", "-q", via.remote(name), f"{shas[ref]}:{ref}", check=False)
            if out.returncode != 0:
                failures.append(out.stderr)

        threads = [
            threading.Thread(target=push, args=(a if i % 2 else b, ref)) for i, ref in enumerate(shas)
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert failures == []
        assert sorted(a.ref_events(cursor, name)) == sorted((r, ZERO, sha) for r, sha in shas.items())
        assert base


def test_a_damaged_repository_does_not_stop_the_start(settings: Settings, tmp_path: Path) -> None:
    """One repository git cannot read is logged and skipped; the others are reconciled."""
    with running(settings, tmp_path) as s:
        broken, fine = s.new_repo("broken"), s.new_repo("fine")
        cursor = s.last_event_id()
    (_bare(settings, broken) / "HEAD").unlink()  # no longer a git repository
    wt = tmp_path / "direct"
    wt.mkdir()
    s.git(wt, "init", "-q", "-b", "main")
    sha = s.commit(wt, {"a": "1"})
    s.git(wt, "push", "-q", str(_bare(settings, fine)), "main")
    with running(settings, tmp_path) as s2:
        assert s2.api("GET", "/healthz").status_code == 200
        assert s2.ref_events(cursor, fine) == [("refs/heads/main", ZERO, sha)]
        response = s2.api("GET", f"/repos/{broken}/refs")
        assert response.status_code == 500
        assert response.json() == {"error": "internal error; see the service log"}


def test_a_stale_ref_lock_left_by_a_killed_push_is_removed_at_start(
    settings: Settings, tmp_path: Path
) -> None:
    """A receive-pack killed mid-update leaves refs/heads/main.lock; the next start clears it."""
    with running(settings, tmp_path) as s:
        name = s.new_repo("locked")
        wt = s.checkout(name)
        s.commit(wt, {"a": "1"})
        s.git(wt, "push", "-q", "origin", "main")
    lock = _bare(settings, name) / "refs" / "heads" / "main.lock"
    lock.write_text("")
    old = time.time() - 3600
    os.utime(lock, (old, old))
    fresh = _bare(settings, name) / "refs" / "heads" / "other.lock"
    fresh.write_text("")  # young: perhaps a push still finishing, so it stays
    with running(settings, tmp_path) as s2:
        assert not lock.exists() and fresh.exists()
        s2.commit(wt, {"a": "2"})
        s2.git(wt, "push", "-q", s2.remote(name), "main")
