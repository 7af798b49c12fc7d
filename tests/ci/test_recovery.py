"""ci going down and coming back: restarts mid-pipeline, the feed caught up, git down,
runners that stop responding."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from shipyard.service import Settings
from tests.ci.conftest import GitServer, Job, running_ci, running_git, unique, wait_for
from tests.ci.test_git_feed import CI, pipelines, wait_pipelines
from tests.helpers.databases import service_settings
from tests.helpers.servers import free_port

CHAIN = """
on: push
jobs:
  a: {{runs-on: {label}, steps: [{{run: "true"}}]}}
  b: {{runs-on: {label}, needs: a, steps: [{{run: "true"}}]}}
  c: {{runs-on: {label}, needs: b, steps: [{{run: "true"}}]}}
"""


def test_a_restarted_ci_resumes_a_pipeline_without_duplicating_jobs(settings: Settings) -> None:
    label = unique("restart")
    with running_ci(settings) as ci:
        pid = ci.create(CHAIN.format(label=label))
        runner = ci.runner(label)
        runner.must_claim().finish()
        b = runner.must_claim()
        b.log(b"before restart\n")
        assignment, token = b.a, runner.token
    with running_ci(settings) as ci:
        b = Job(ci.url, assignment)
        b.size = len(b"before restart\n")
        assert b.heartbeat() is False
        b.finish(log=b"after\n")
        runner = ci.runner(label)
        c = runner.must_claim()
        assert c.key == "c"
        c.finish()
        done = ci.wait_done(pid)
        assert done["conclusion"] == "success"
        assert sorted(j["key"] for j in done["jobs"]) == ["a", "b", "c"]
        assert ci.get(f"/jobs/{b.id}/log").text == "before restart\nafter\n"
        assert runner.claim(wait=0.1) is None
        old = ci.runner(label)
        old.http.headers["Authorization"] = f"Bearer {token}"  # registered before the restart
        assert old.claim(wait=0.1) is None


def test_the_feed_consumer_catches_up_and_resumes_from_its_cursor(
    backend: str, tmp_path: Path, git_server: GitServer
) -> None:
    git = git_server
    label = unique("catchup")
    repo = git.new_repo()
    wt = git.worktree(repo)
    git.commit(wt, {".github/workflows/ci.yml": CI.format(label=label)})
    git.push(wt)
    git.commit(wt, {"a": "1"})
    git.push(wt)
    with service_settings(backend, tmp_path / "data", git_url=git.url) as settings:
        with running_ci(settings, feed_wait=1.0) as ci:
            assert len(wait_pipelines(ci, repo, 2)) == 2
            consumer = ci.app.state.consumer
            wait_for(lambda: consumer.cursor() >= 1, what="the cursor to be stored")
        git.commit(wt, {"a": "2"})
        git.push(wt)
        with running_ci(settings, feed_wait=1.0) as ci:
            wait_pipelines(ci, repo, 3)
            time.sleep(0.5)
            assert len(pipelines(ci, repo)) == 3  # nothing handled twice


def test_git_down_is_retried_and_no_event_is_lost(backend: str, tmp_path: Path) -> None:
    port = free_port()
    with service_settings(backend, tmp_path / "data", git_url=f"http://127.0.0.1:{port}") as s, \
            running_ci(s, feed_wait=1.0) as ci:
        time.sleep(0.5)  # the consumer fails a few times meanwhile
        with running_git("sqlite", tmp_path / "git", port=port) as git:
            label = unique("down")
            repo = git.new_repo()
            wt = git.worktree(repo)
            git.commit(wt, {".github/workflows/ci.yml": CI.format(label=label)})
            git.push(wt)
            [p] = wait_pipelines(ci, repo, 1)
            assert p["event"] == "push"


@pytest.fixture
def short_heartbeat(backend: str, tmp_path: Path) -> Iterator[Settings]:
    with service_settings(backend, tmp_path / "data", heartbeat_timeout=0.4,
                          lost_job_retries=1) as settings:
        yield settings


def test_lost_jobs_are_queued_again_then_failed(short_heartbeat: Settings) -> None:
    label = unique("lost")
    with running_ci(short_heartbeat) as ci:
        pid = ci.create(CHAIN.format(label=label).replace("needs: a", "needs: []"))
        runner = ci.runner(label)
        first = runner.must_claim()
        assert first.key == "a"
        first.log(b"first\n")
        wait_for(lambda: ci.jobs(pid)["a"]["status"] == "queued", 10, "the lost job to be requeued")
        assert first.heartbeat() is True
        assert first.complete().status_code == 409
        assert first.log(b"late\n").status_code == 409
        second = runner.must_claim()
        assert second.id == first.id and second.key == "a"
        second.finish(log=b"second\n")
        log = ci.get(f"/jobs/{first.id}/log").text
        assert log.startswith("first\n##[shipyard] the runner stopped responding")
        assert log.endswith("\nsecond\n")
        # No retries left for b once it is lost twice: it fails.
        b = runner.must_claim()
        wait_for(lambda: ci.jobs(pid)["b"]["status"] == "queued", 10, "b to be requeued")
        b = runner.must_claim()
        done = ci.wait_done(pid, timeout=15)
        jobs = {j["key"]: j for j in done["jobs"]}
        assert (jobs["b"]["conclusion"], jobs["b"]["error"]) == (
            "failure", "the runner stopped responding")
        assert jobs["c"]["conclusion"] == "skipped"
        assert done["conclusion"] == "failure"
        assert b.heartbeat() is True


def test_logs_are_archived_to_the_store_and_served_from_it(backend: str, tmp_path: Path) -> None:
    from shipyard.store import create_app as create_store_app
    from tests.helpers.servers import serve_app

    with service_settings("sqlite", tmp_path / "store") as store_settings, \
            serve_app(create_store_app(store_settings)) as store_url, \
            service_settings(backend, tmp_path / "data") as plain:
        label = unique("archive")
        with running_ci(plain) as ci:  # no store yet: logs stay local
            pid = ci.create(CHAIN.format(label=label))
            first = ci.runner(label).must_claim()
            first.finish(log=b"kept until a store is there\n")
        settings = plain.model_copy(update={"store_url": store_url})
        with running_ci(settings) as ci:
            logs = ci.app.state.ci.logs
            wait_for(lambda: not logs.exists(first.id), 10, "the old log to be archived")
            assert ci.get(f"/jobs/{first.id}/log").text == "kept until a store is there\n"
            assert ci.get(f"/jobs/{first.id}/log", params={"offset": 5}).text == (
                "until a store is there\n")
            second = ci.runner(label).must_claim()
            second.finish(log=b"second\n")
            wait_for(lambda: not logs.exists(second.id), 10, "the log to be archived")
            assert ci.get(f"/jobs/{second.id}/log").text == "second\n"
            assert ci.jobs(pid)["b"]["status"] == "completed"


def test_two_replicas_share_one_database(settings: Settings) -> None:
    """Plans follow changes made by the other replica; no job is handed out twice."""
    label = unique("replica")
    text = f"""
    on: push
    jobs:
      a:
        runs-on: {label}
        strategy: {{matrix: {{n: [1, 2, 3]}}}}
        steps: [{{run: "true"}}]
      b: {{runs-on: {label}, needs: a, steps: [{{run: "true"}}]}}
      c: {{runs-on: {label}, needs: [a, b], steps: [{{run: "true"}}]}}
    """
    with running_ci(settings) as one, running_ci(settings) as two:
        pid = one.create(text)
        runner_one, runner_two = one.runner(label), two.runner(label)
        claimed = []
        for i in range(3):
            job = (runner_one if i % 2 else runner_two).must_claim()
            claimed.append(job.id)
            # complete through the other replica than the one that handed it out
            other = two if i % 2 else one
            Job(other.url, job.a).finish()
        b = runner_one.must_claim()
        assert b.key == "b"
        Job(two.url, b.a).finish()
        c = runner_two.must_claim()
        assert c.key == "c" and c.a["contexts"]["needs"]["b"]["result"] == "success"
        Job(one.url, c.a).finish()
        for server in (one, two):
            done = server.wait_done(pid)
            assert done["conclusion"] == "success"
            assert sorted(j["key"] for j in done["jobs"]) == ["a (1)", "a (2)", "a (3)", "b", "c"]
        assert runner_one.claim(wait=0.1) is None and runner_two.claim(wait=0.1) is None


def test_a_cancelled_job_whose_runner_went_silent_ends_cancelled(
    short_heartbeat: Settings,
) -> None:
    label = unique("silent")
    with running_ci(short_heartbeat) as ci:
        pid = ci.create(CHAIN.format(label=label))
        runner = ci.runner(label)
        runner.must_claim()
        busy = {r["id"]: r["busy"] for r in ci.get("/runners").json()}
        assert busy[runner.id] == 1 and ci.jobs(pid)["a"]["runner_id"] == runner.id
        assert ci.post(f"/pipelines/{pid}/cancel").status_code == 200
        done = ci.wait_done(pid, timeout=10)
        assert done["conclusion"] == "cancelled"
        assert {j["key"]: j["conclusion"] for j in done["jobs"]} == {
            "a": "cancelled", "b": "cancelled", "c": "cancelled"}
