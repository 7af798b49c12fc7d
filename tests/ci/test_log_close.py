"""Logs that outlive their job's completion: archived once closed, closed as lost when
their runner dies before sending the rest, kept open across a restart of ci."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from shipyard.ci._joblogs import LOST_LOG
from shipyard.service import Settings
from shipyard.store import create_app as create_store_app
from tests.ci.conftest import CiServer, Job, running_ci, unique, wait_for
from tests.helpers.databases import service_settings
from tests.helpers.servers import serve_app

ONE = """
on: push
jobs:
  a: {{runs-on: {label}, steps: [{{run: "true"}}]}}
"""


@pytest.fixture
def store_url(tmp_path: Path) -> Iterator[str]:
    with service_settings("sqlite", tmp_path / "store") as settings, \
            serve_app(create_store_app(settings)) as url:
        yield url


@pytest.fixture
def short_heartbeat(backend: str, tmp_path: Path, store_url: str) -> Iterator[Settings]:
    with service_settings(backend, tmp_path / "data", heartbeat_timeout=0.6,
                          store_url=store_url) as settings:
        yield settings


def log_complete(ci: CiServer, job: Job) -> bool:
    return bool(ci.get(f"/jobs/{job.id}").json()["log_complete"])


def stored(ci: CiServer, job: Job) -> bytes:
    """The store's copy of the job's log, once the archiver has made it."""
    logs = ci.app.state.ci.logs
    wait_for(lambda: not logs.exists(job.id), 10, "the log to be archived")
    response = ci.app.state.ci.store.get(f"/logs/{job.id}")
    assert response.status_code == 200, response.text
    return bytes(response.content)


def test_an_open_log_is_archived_once_the_rest_has_come(short_heartbeat: Settings) -> None:
    with running_ci(short_heartbeat) as ci:
        label = unique("archive-open")
        ci.create(ONE.format(label=label))
        job = ci.runner(label).must_claim()
        job.log(b"head\n")
        assert job.complete(log_size=5 + 5000).status_code == 200
        for _ in range(4):  # sent over more than twice the heartbeat timeout: appends
            time.sleep(0.4)  # alone show the runner alive
            assert job.log(b"x" * 750).status_code == 200
            assert ci.app.state.ci.logs.exists(job.id), "archived before the log was complete"
            assert ci.app.state.ci.store.get(f"/logs/{job.id}").status_code == 404
            assert not log_complete(ci, job)
        job.log(b"y" * 1999 + b"\n")
        assert log_complete(ci, job)
        whole = b"head\n" + b"x" * 3000 + b"y" * 1999 + b"\n"
        assert stored(ci, job) == whole
        assert ci.get(f"/jobs/{job.id}/log").content == whole


def test_a_runner_lost_before_the_rest_of_its_log_leaves_it_closed_with_an_error_line(
    short_heartbeat: Settings,
) -> None:
    """The runner completes with log_size, sends part of the rest, and dies."""
    with running_ci(short_heartbeat) as ci:
        label = unique("lost-log")
        pid = ci.create(ONE.format(label=label))
        job = ci.runner(label).must_claim()
        job.log(b"0123456789")
        assert job.complete(log_size=30).status_code == 200
        job.log(b"abcde")
        assert not log_complete(ci, job)
        wait_for(lambda: log_complete(ci, job), 10, "the lost log to be closed")
        state = ci.get(f"/jobs/{job.id}").json()
        assert (state["status"], state["conclusion"]) == ("completed", "success")
        line = LOST_LOG.format(held=15, size=30).encode()
        assert line == (b"##[error]the runner was lost before the job's log was complete "
                        b"(15 of 30 bytes)\n")
        whole = b"0123456789abcde\n" + line
        assert ci.get(f"/jobs/{job.id}/log").content == whole
        assert stored(ci, job) == whole
        assert job.log(b"fghij", offset=15).status_code == 409  # too late: closed
        assert ci.pipeline(pid)["conclusion"] == "success"


def test_an_open_log_survives_a_restart_of_ci_and_closes_when_the_rest_comes(
    backend: str, tmp_path: Path,
) -> None:
    with service_settings(backend, tmp_path / "data", heartbeat_timeout=30) as settings:
        label = unique("restart-open")
        with running_ci(settings) as ci:
            ci.create(ONE.format(label=label))
            job = ci.runner(label).must_claim()
            job.log(b"before ")
            assert job.complete(log_size=20).status_code == 200
            assignment = job.a
        with running_ci(settings) as ci:
            again = Job(ci.url, assignment)
            again.size = 7
            assert not log_complete(ci, again)
            assert again.log(b"the restart\n").json() == {"size": 19}
            assert not log_complete(ci, again)
            assert again.log(b"!").json() == {"size": 20}
            assert log_complete(ci, again)
            assert ci.get(f"/jobs/{again.id}/log").content == b"before the restart\n!"


def test_a_rerun_while_a_log_is_open_shows_it_and_closes_with_it(ci: CiServer) -> None:
    label = unique("rerun-open")
    pid = ci.create(f"""
    on: push
    jobs:
      a: {{runs-on: {label}, steps: [{{run: "true"}}]}}
      b: {{runs-on: {label}, needs: a, steps: [{{run: "true"}}]}}
    """)
    runner = ci.runner(label)
    a = runner.must_claim()
    a.log(b"a: ")
    assert a.complete(log_size=9).status_code == 200
    b = runner.must_claim()
    b.finish("failure")
    ci.wait_done(pid)
    assert ci.post(f"/pipelines/{pid}/rerun", json={"failed_only": True}).status_code == 200
    kept = ci.jobs(pid)["a"]
    assert kept["id"] != a.id and kept["log_complete"] is False
    a.log(b"done!\n")
    assert ci.jobs(pid)["a"]["log_complete"] is True
    assert ci.get(f"/jobs/{kept['id']}/log").content == b"a: done!\n"
    runner.must_claim().finish()


def test_a_completion_racing_the_last_append_closes_the_log_at_once(ci: CiServer) -> None:
    """The append read the job as running, the completion came, then the append wrote the
    last bytes: the log closes with that append, not a watchdog tick later."""
    label = unique("race")
    ci.create(ONE.format(label=label))
    job = ci.runner(label).must_claim()
    job.log(b"12345")
    state = ci.app.state.ci
    seen = state.queue.job_for_log(job.id, None)  # what the racing append looked at
    assert not seen.finished
    answer = state.engine.complete_job(job.id, "success", {}, None, log_size=10)
    assert answer["log_complete"] is False
    assert state.engine.joblogs.append(job.id, seen, 5, b"67890") == 10
    assert log_complete(ci, job)
    assert ci.get(f"/jobs/{job.id}/log").content == b"1234567890"


class TestLogStorePieces:
    """An append's pieces are written in order, an already-stored prefix skipped across
    piece boundaries, whatever the number of pieces."""

    def test_pieces_are_written_in_order_and_a_retry_skips_across_them(
        self, tmp_path: Path
    ) -> None:
        from shipyard.ci._logs import LogGap, LogStore

        store = LogStore(tmp_path / "logs")
        assert store.append(1, 0, [b"ab", b"cde", b"", b"f"]) == 6
        assert store.append(1, 1, [b"b", b"cd", b"efgh", b"ij"]) == 10  # 1..6 were there
        assert store.append(1, 10, b"k") == 11
        with pytest.raises(LogGap) as gap:
            store.append(1, 12, [b"x"])
        assert gap.value.size == 11
        pieces = [bytes([65 + i % 26]) * 3 for i in range(3000)]  # more than one writev
        assert store.append(1, 11, pieces) == 11 + 9000
        assert store.read(1, 0, 1 << 20) == b"abcdefghijk" + b"".join(pieces)
