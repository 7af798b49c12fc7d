"""The agent against the real platform: git, store, ci and the gateway on loopback."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from shipyard.errors import AuthError
from shipyard.runner import Agent, Assignment
from tests.runner.stack import (
    Platform,
    alive,
    jobs_by_name,
    platform,
    repo_with,
    running_job,
    wait_file,
)

HEARTBEAT_TIMEOUT = 4.0


@pytest.fixture(scope="module")
def plat(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Platform]:
    with platform(tmp_path_factory.mktemp("platform"), heartbeat_timeout=HEARTBEAT_TIMEOUT) as p:
        yield p


class Recorder:
    """An AgentListener keeping what the agent reported."""

    def __init__(self) -> None:
        self.events: list[tuple[str, Any]] = []

    def registered(self, agent: Agent) -> None:
        self.events.append(("registered", agent.runner_id))

    def job_started(self, assignment: Assignment) -> None:
        self.events.append(("started", assignment.name))

    def job_finished(self, assignment: Assignment, conclusion: str, duration: float) -> None:
        self.events.append(("finished", (assignment.name, conclusion)))


@dataclass
class Running:
    """An agent serving in a thread of the test, and what its ``run()`` raised."""

    agent: Agent
    thread: threading.Thread
    errors: list[BaseException] = field(default_factory=list)

    def finished(self, timeout: float) -> bool:
        self.thread.join(timeout)
        return not self.thread.is_alive()


@contextmanager
def agent_running(plat: Platform, tmp_path: Path, label: str, **kwargs: Any) -> Iterator[Running]:
    """An agent serving ``label`` in a thread of the test; forced to stop at the end."""
    token = kwargs.pop("token", None) or plat.registration_token()
    kwargs.setdefault("claim_wait", 1.0)
    agent = Agent(
        plat.url, token, name=f"agent-{label}", labels=["self-hosted", label],
        work_dir=tmp_path / "agent", **kwargs,
    )
    running = Running(agent, threading.Thread(target=lambda: _run(running), daemon=True))
    running.thread.start()
    try:
        yield running
    finally:
        agent.stop(force=True)
        running.thread.join(30)


def _run(running: Running) -> None:
    try:
        running.agent.run()
    except BaseException as err:
        running.errors.append(err)


PIPELINE = """
name: CI
on: push
jobs:
  build:
    runs-on: [self-hosted, LABEL]
    outputs:
      version: ${{ steps.v.outputs.version }}
    steps:
      - uses: actions/checkout@v4
      - id: v
        run: |
          mkdir -p dist deps
          echo "built from $(cat README.md)" > dist/app.txt
          echo "a dependency" > deps/lib.txt
          echo "version=1.2.3" >> "$GITHUB_OUTPUT"
      - uses: actions/upload-artifact@v4
        with:
          name: app
          path: dist/
      - uses: actions/cache/save@v4
        with:
          path: deps
          key: deps-${{ github.sha }}
  test:
    needs: build
    runs-on: [self-hosted, LABEL]
    strategy:
      matrix:
        python: ["3.11", "3.12"]
    steps:
      - uses: actions/download-artifact@v4
        with:
          name: app
          path: got
      - id: cache
        uses: actions/cache/restore@v4
        with:
          path: deps
          key: deps-${{ github.sha }}
      - run: |
          cat got/app.txt deps/lib.txt
          echo "hit=${{ steps.cache.outputs.cache-hit }} python=${{ matrix.python }} version=${{ needs.build.outputs.version }}"
"""


class TestPipelines:
    def test_a_pipeline_runs_matrix_needs_outputs_artifacts_and_caches(
        self, plat: Platform, tmp_path: Path
    ) -> None:
        repo, label = repo_with(plat, tmp_path, PIPELINE)
        recorder = Recorder()
        with agent_running(plat, tmp_path, label, concurrency=2, listener=recorder):
            pipeline = plat.finished_pipeline(repo)
        assert pipeline["conclusion"] == "success", pipeline
        jobs = jobs_by_name(pipeline)
        assert set(jobs) == {"build", "test (3.11)", "test (3.12)"}
        assert jobs["build"]["outputs"] == {"version": "1.2.3"}
        for python in ("3.11", "3.12"):
            log = plat.job_log(jobs[f"test ({python})"]["id"])
            assert f"built from hi\na dependency\nhit=true python={python} version=1.2.3\n" in log
        build_log = plat.job_log(jobs["build"]["id"])
        headers = [line for line in build_log.splitlines() if line.startswith("##[group]")]
        assert headers == [
            "##[group]Set up job",
            "##[group]Run actions/checkout@v4",
            '##[group]Run mkdir -p dist deps',
            "##[group]Run actions/upload-artifact@v4",
            "##[group]Run actions/cache/save@v4",
            "##[group]Post Run actions/checkout@v4",
        ]
        steps = jobs["build"]["steps"]
        assert [s["number"] for s in steps] == [1, 2, 3, 4, 5]
        assert all(s["status"] == "completed" and s["conclusion"] == "success" for s in steps)
        assert recorder.events[0][0] == "registered"
        assert ("finished", ("build", "success")) in recorder.events
        assert sum(1 for kind, _ in recorder.events if kind == "started") == 3

    def test_a_long_log_arrives_complete_and_in_order(self, plat: Platform, tmp_path: Path) -> None:
        repo, label = repo_with(plat, tmp_path, """
            on: push
            jobs:
              out:
                runs-on: [self-hosted, LABEL]
                steps:
                  - run: seq 1 300000
                  - run: echo after
        """)
        with agent_running(plat, tmp_path, label):
            pipeline = plat.finished_pipeline(repo)
        job = pipeline["jobs"][0]
        log = plat.job_log(job["id"])
        body = log.split("##[group]Run seq 1 300000\n", 1)[1].split("##[endgroup]\n", 1)[0]
        assert body == "".join(f"{i}\n" for i in range(1, 300001))
        assert log.endswith("##[group]Run echo after\nafter\n##[endgroup]\n")

    def test_a_failing_step_fails_the_job_with_its_error(self, plat: Platform, tmp_path: Path) -> None:
        repo, label = repo_with(plat, tmp_path, """
            on: push
            jobs:
              fails:
                runs-on: [self-hosted, LABEL]
                steps:
                  - run: echo "::error title=Bad::it broke"; exit 4
                  - run: echo never
        """)
        with agent_running(plat, tmp_path, label):
            pipeline = plat.finished_pipeline(repo)
        job = pipeline["jobs"][0]
        assert (job["conclusion"], pipeline["conclusion"]) == ("failure", "failure")
        assert "exit code 4" in job["error"]
        assert [s["conclusion"] for s in job["steps"]] == ["failure", "skipped"]
        assert "##[error]Process completed with exit code 4.\n" in plat.job_log(job["id"])


class TestCancelAndLoss:
    def test_a_cancel_through_the_heartbeat_kills_the_job_within_seconds(
        self, plat: Platform, tmp_path: Path
    ) -> None:
        pidfile = tmp_path / "pid"
        repo, label = repo_with(plat, tmp_path, f"""
            on: push
            jobs:
              slow:
                runs-on: [self-hosted, LABEL]
                steps:
                  - run: echo $$ > {pidfile}; exec sleep 600
        """)
        with agent_running(plat, tmp_path, label):
            pid = int(wait_file(pidfile))
            job = running_job(plat, repo)
            started = time.monotonic()
            with plat.client() as c:
                c.post(f"/jobs/{job['id']}/cancel").raise_for_status()
            pipeline = plat.finished_pipeline(repo, timeout=30)
            took = time.monotonic() - started
        assert pipeline["jobs"][0]["conclusion"] == "cancelled"
        assert took < HEARTBEAT_TIMEOUT + 4
        assert not alive(pid)

    def test_a_killed_agent_s_job_is_marked_lost(self, plat: Platform, tmp_path: Path) -> None:
        pidfile = tmp_path / "pid"
        repo, label = repo_with(plat, tmp_path, f"""
            on: push
            jobs:
              slow:
                runs-on: [self-hosted, LABEL]
                steps:
                  - run: echo $$ > {pidfile}; exec sleep 600
        """)
        code = (
            "from pathlib import Path; from shipyard.runner import Agent; "
            f"Agent({plat.url!r}, {plat.registration_token()!r}, name='doomed', "
            f"labels=['self-hosted', {label!r}], work_dir=Path({str(tmp_path / 'w')!r}), "
            "claim_wait=1.0).run()"
        )
        proc = subprocess.Popen([sys.executable, "-c", code], cwd=tmp_path)
        pid = None
        try:
            pid = int(wait_file(pidfile))
            killed = time.monotonic()
            proc.send_signal(signal.SIGKILL)
            proc.wait(10)
            pipeline = plat.finished_pipeline(repo, timeout=HEARTBEAT_TIMEOUT + 20)
            took = time.monotonic() - killed
        finally:
            proc.kill()
            if pid is not None:
                with suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
        job = pipeline["jobs"][0]
        assert job["conclusion"] == "failure"
        assert job["error"] == "the runner stopped responding"
        assert took < HEARTBEAT_TIMEOUT + 10


class TestStopping:
    def test_stop_lets_the_running_job_finish_and_claims_nothing_more(
        self, plat: Platform, tmp_path: Path
    ) -> None:
        flag = tmp_path / "started"
        repo, label = repo_with(plat, tmp_path, f"""
            on: push
            jobs:
              work:
                runs-on: [self-hosted, LABEL]
                strategy:
                  matrix:
                    n: [1, 2]
                steps:
                  - run: echo go > {flag}; sleep 1; echo finished ${{{{ matrix.n }}}}
        """)
        with agent_running(plat, tmp_path, label, concurrency=1) as running:
            wait_file(flag)
            running.agent.stop()
            assert running.finished(30)
        pipeline = plat.pipeline(plat.pipelines(repo)[0]["id"])
        states = sorted((j["status"], j["conclusion"]) for j in pipeline["jobs"])
        assert states == [("completed", "success"), ("queued", None)]
        assert running.agent.jobs_run == 1
        with plat.client() as c:
            c.post(f"/pipelines/{pipeline['id']}/cancel").raise_for_status()

    def test_a_second_stop_cancels_running_jobs(self, plat: Platform, tmp_path: Path) -> None:
        pidfile = tmp_path / "pid"
        repo, label = repo_with(plat, tmp_path, f"""
            on: push
            jobs:
              slow:
                runs-on: [self-hosted, LABEL]
                steps:
                  - run: echo $$ > {pidfile}; exec sleep 600
        """)
        with agent_running(plat, tmp_path, label) as running:
            pid = int(wait_file(pidfile))
            running.agent.stop()
            time.sleep(0.3)
            assert running.thread.is_alive()
            running.agent.stop()
            assert running.finished(15)
        assert not alive(pid)
        pipeline = plat.finished_pipeline(repo, timeout=10)
        assert pipeline["jobs"][0]["conclusion"] == "cancelled"


    def test_a_stopping_agent_ships_the_rest_of_a_log_it_completed_early(
        self, plat: Platform, tmp_path: Path
    ) -> None:
        """ci hears the result first; the slot (and the stop) waits for the whole log,
        whose open state the agent's heartbeats keep alive past the heartbeat timeout."""
        repo, label = repo_with(plat, tmp_path, """
            on: push
            jobs:
              loud:
                runs-on: [self-hosted, LABEL]
                steps:
                  - run: seq 1 1000000
        """)
        plat.faults.inject["/log"] = [503] * 6  # about 6 s of retries: longer than the timeout
        try:
            with agent_running(plat, tmp_path, label, concurrency=1) as running:

                def completed() -> dict[str, Any] | None:
                    found = plat.pipelines(repo)
                    job = plat.pipeline(found[-1]["id"])["jobs"][0] if found else None
                    return job if job and job["status"] == "completed" else None

                job = plat.wait_for("the job to complete", completed, 30)
                assert job["conclusion"] == "success"
                assert job["log_complete"] is False
                assert running.thread.is_alive()
                running.agent.stop()
                assert running.finished(30)
                assert running.agent.jobs_run == 1
        finally:
            plat.faults.inject.clear()
        with plat.client() as c:
            assert c.get(f"/jobs/{job['id']}").json()["log_complete"] is True
        log = plat.job_log(job["id"])
        body = log.split("##[group]Run seq 1 1000000\n", 1)[1]
        assert body == "".join(f"{i}\n" for i in range(1, 1000001)) + "##[endgroup]\n"


def runner_status(plat: Platform, runner_id: int | None) -> str:
    with plat.client() as c:
        return str({r["id"]: r for r in c.get("/runners").json()}[runner_id]["status"])


def claim_pending(running: Running) -> None:
    """Wait until the agent has registered and its claim is long-polling."""
    agent = running.agent
    deadline = time.monotonic() + 30
    while not (agent.runner_id is not None and agent.claim_pending):
        assert time.monotonic() < deadline and running.thread.is_alive(), running.errors
        time.sleep(0.02)
    time.sleep(0.2)  # the request has reached ci


class TestDraining:
    def test_stopping_an_idle_agent_drains_it_and_returns_at_once(
        self, plat: Platform, tmp_path: Path
    ) -> None:
        """The long-polling claim (30 s) ends with the drain, not with its wait."""
        with agent_running(plat, tmp_path, f"idle{os.getpid()}", claim_wait=30.0) as running:
            claim_pending(running)
            started = time.monotonic()
            running.agent.stop()
            assert running.finished(5)
            took = time.monotonic() - started
        assert took < 1.0
        assert running.agent.drained and not running.errors
        assert runner_status(plat, running.agent.runner_id) == "draining"

    def test_a_stopping_idle_runner_process_exits_0_within_3_s(
        self, plat: Platform, tmp_path: Path
    ) -> None:
        proc = subprocess.Popen(
            [sys.executable, "-m", "shipyard", "runner", "--server", plat.url,
             "--token", plat.registration_token(), "--labels", f"proc{os.getpid()}",
             "--work-dir", str(tmp_path / "w")],
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
            env={**os.environ, "COLUMNS": "200"},
        )
        try:
            assert proc.stdout is not None
            for line in proc.stdout:
                if "connected to" in line:
                    break
            time.sleep(0.5)  # its claim is long-polling
            started = time.monotonic()
            proc.send_signal(signal.SIGTERM)
            code = proc.wait(10)
            took = time.monotonic() - started
            assert "Runner stopped after 0 jobs" in proc.stdout.read()
        finally:
            proc.kill()
            proc.wait()
            if proc.stdout is not None:
                proc.stdout.close()
        assert code == 0
        assert took < 3.0

    def test_stop_finishes_the_running_job_and_takes_no_job_queued_after(
        self, plat: Platform, tmp_path: Path
    ) -> None:
        """With a slot free, a claim is pending beside the job: it ends, the job does not."""
        flag = tmp_path / "started"
        repo, label = repo_with(plat, tmp_path, f"""
            on: push
            jobs:
              first:
                runs-on: [self-hosted, LABEL]
                steps:
                  - run: echo go > {flag}; sleep 1.5; echo finished
              second:
                needs: first
                runs-on: [self-hosted, LABEL]
                steps:
                  - run: echo never here
        """)
        with agent_running(plat, tmp_path, label, concurrency=2, claim_wait=30.0) as running:
            wait_file(flag)
            claim_pending(running)
            running.agent.stop()
            assert running.finished(30)
        assert running.agent.drained and running.agent.jobs_run == 1
        pipeline = plat.pipeline(plat.pipelines(repo)[0]["id"])
        jobs = jobs_by_name(pipeline)
        assert (jobs["first"]["status"], jobs["first"]["conclusion"]) == ("completed", "success")
        assert "\nfinished\n" in plat.job_log(jobs["first"]["id"])
        assert jobs["second"]["status"] == "queued"  # queued after the drain: left for others
        with plat.client() as c:
            c.post(f"/pipelines/{pipeline['id']}/cancel").raise_for_status()

    def test_when_ci_cannot_drain_the_pending_claim_is_waited_for(
        self, plat: Platform, tmp_path: Path
    ) -> None:
        plat.faults.inject["/runners/drain"] = [503]
        try:
            with agent_running(plat, tmp_path, f"nodrain{os.getpid()}", claim_wait=2.0) as running:
                claim_pending(running)
                running.agent.stop()
                time.sleep(0.5)
                assert running.thread.is_alive()  # a job ci hands out meanwhile is not lost
                assert running.finished(10)
        finally:
            plat.faults.inject.clear()
        assert not running.agent.drained and not running.errors

    def test_an_agent_on_a_drained_runner_s_token_serves_again(
        self, plat: Platform, tmp_path: Path
    ) -> None:
        repo, label = repo_with(plat, tmp_path, """
            on: push
            jobs:
              one:
                runs-on: [self-hosted, LABEL]
                steps:
                  - run: echo hi
        """)
        with plat.client(plat.registration_token()) as c:
            reg = c.post("/runners/register", json={
                "name": f"drained-{label}", "labels": ["self-hosted", label], "concurrency": 1,
                "executor": "local", "version": "test",
            }).json()
        with plat.client(reg["token"]) as c:
            c.post("/runners/drain").raise_for_status()  # as its last agent did on stopping
        with agent_running(plat, tmp_path, label, token=reg["token"]):
            pipeline = plat.finished_pipeline(repo)
        assert pipeline["jobs"][0]["conclusion"] == "success"

    def test_a_runner_drained_under_a_serving_agent_is_not_hammered(
        self, plat: Platform, tmp_path: Path
    ) -> None:
        """Another agent on the same token stopped: claims answered at once back off."""
        with agent_running(plat, tmp_path, f"shared{os.getpid()}", claim_wait=5.0) as running:
            claim_pending(running)
            token = running.agent.runner_token
            with plat.client(token) as c:
                c.post("/runners/drain").raise_for_status()
            before = plat.faults.count("runners/claim")
            time.sleep(2.0)
            sent = plat.faults.count("runners/claim") - before
            assert running.thread.is_alive() and not running.agent.stopping
        assert 1 <= sent <= 5, sent


class TestResilience:
    def test_the_agent_rides_out_failing_and_garbled_answers(
        self, plat: Platform, tmp_path: Path
    ) -> None:
        repo, label = repo_with(plat, tmp_path, """
            on: push
            jobs:
              one:
                runs-on: [self-hosted, LABEL]
                steps:
                  - run: echo survived
        """)
        plat.faults.inject.update({
            "/runners/register": ["garbage", 503],
            "/runners/claim": [502, "garbage"],
            "/log": [503],
            "/complete": [500, "garbage"],
        })
        try:
            with agent_running(plat, tmp_path, label):
                pipeline = plat.finished_pipeline(repo)
        finally:
            plat.faults.inject.clear()
        job = pipeline["jobs"][0]
        assert job["conclusion"] == "success"
        assert plat.job_log(job["id"]).count("\nsurvived\n") == 1

    def test_an_assignment_the_agent_cannot_read_fails_its_job(
        self, plat: Platform, tmp_path: Path
    ) -> None:
        repo, label = repo_with(plat, tmp_path, """
            on: push
            jobs:
              one:
                runs-on: [self-hosted, LABEL]
                steps:
                  - run: echo never
        """)

        def spoil(body: dict[str, Any]) -> dict[str, Any]:
            body.pop("workflow", None)
            return body

        plat.faults.inject["/runners/claim"] = [spoil]
        try:
            with agent_running(plat, tmp_path, label):
                pipeline = plat.finished_pipeline(repo)
        finally:
            plat.faults.inject.clear()
        job = pipeline["jobs"][0]
        assert job["conclusion"] == "failure"
        assert "the runner could not read the job: workflow: Field required" in job["error"]

    def test_a_job_whose_claim_answer_was_lost_is_run_once_all_the_same(
        self, plat: Platform, tmp_path: Path
    ) -> None:
        """ci recorded the claim, the answer never came (ci died meanwhile): the agent asks
        again with the same claim and gets the job, instead of it failing as lost."""
        marks = tmp_path / "runs"
        repo, label = repo_with(plat, tmp_path, f"""
            on: push
            jobs:
              one:
                runs-on: [self-hosted, LABEL]
                steps:
                  - run: echo ran >> {marks}
        """)
        plat.wait_for("the job queued", lambda: [
            j for p in plat.pipelines(repo) for j in plat.pipeline(p["id"])["jobs"]
            if j["status"] == "queued"])
        plat.faults.inject["/runners/claim"] = ["lost"]
        try:
            with agent_running(plat, tmp_path, label):
                pipeline = plat.finished_pipeline(repo, timeout=HEARTBEAT_TIMEOUT * 5)
        finally:
            plat.faults.inject.clear()
        assert pipeline["conclusion"] == "success", pipeline["jobs"][0].get("error")
        assert marks.read_text() == "ran\n"
        assert not plat.faults.inject.get("/runners/claim"), "the fault was not used"

    def test_an_unreachable_server_is_retried_until_the_agent_is_stopped(self, tmp_path: Path) -> None:
        import socket

        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))  # nothing listens: connections are refused
        agent = Agent(f"http://127.0.0.1:{sock.getsockname()[1]}", "sy_x.y", work_dir=tmp_path)
        thread = threading.Thread(target=agent.run, daemon=True)
        thread.start()
        time.sleep(1.0)
        assert thread.is_alive() and agent.runner_id is None
        agent.stop()
        thread.join(5)
        assert not thread.is_alive()
        sock.close()

    def test_a_deleted_runner_s_agent_ends_with_an_auth_error(
        self, plat: Platform, tmp_path: Path
    ) -> None:
        with agent_running(plat, tmp_path, f"del{os.getpid()}") as running:
            agent = running.agent
            plat.wait_for("registration", lambda: agent.runner_id is not None, 30)
            with plat.client() as c:
                c.delete(f"/runners/{agent.runner_id}").raise_for_status()
            assert running.finished(30)
        assert len(running.errors) == 1 and isinstance(running.errors[0], AuthError)


class TestRegistration:
    def test_the_runner_is_listed_with_its_labels_and_a_runner_token_is_used_as_is(
        self, plat: Platform, tmp_path: Path
    ) -> None:
        repo, label = repo_with(plat, tmp_path, """
            on: push
            jobs:
              one:
                runs-on: [self-hosted, LABEL]
                steps:
                  - run: echo hi
        """)
        with plat.client(plat.registration_token()) as c:
            reg = c.post("/runners/register", json={
                "name": f"pre-{label}", "labels": ["self-hosted", label], "concurrency": 1,
                "executor": "local", "version": "test",
            }).json()
        with agent_running(plat, tmp_path, label, token=reg["token"]) as running:
            pipeline = plat.finished_pipeline(repo)
            assert running.agent.runner_id == reg["id"]
        assert pipeline["jobs"][0]["conclusion"] == "success"
        with plat.client() as c:
            runners = {r["name"]: r for r in c.get("/runners").json()}
        assert label in runners[f"pre-{label}"]["labels"]


def test_a_trivial_job_costs_about_three_requests(plat: Platform, tmp_path: Path) -> None:
    """Claim, log and complete per job: no step updates, no empty flushes."""
    repo, label = repo_with(plat, tmp_path, """
        on: push
        jobs:
          t:
            runs-on: [self-hosted, LABEL]
            strategy:
              matrix:
                n: [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12]
            steps:
              - run: echo ${{ matrix.n }}
    """)
    kinds = ("N/log", "N/steps", "N/complete")
    before = {k: plat.faults.count(k) for k in kinds}
    with agent_running(plat, tmp_path, label, concurrency=4):
        pipeline = plat.finished_pipeline(repo)
    assert pipeline["conclusion"] == "success"
    sent = {k: plat.faults.count(k) - before[k] for k in kinds}
    assert sent["N/complete"] == 12
    assert sent["N/log"] + sent["N/steps"] <= 12 * 1.5, sent
