"""The runner protocol, driven over HTTP as the runner agent drives it."""

from __future__ import annotations

import threading
import time
from collections import Counter
from typing import Any

import httpx
import pytest

from shipyard.ci._queue import RunnerDraining, RunnerInfo
from shipyard.service import Database, Settings
from tests.ci.conftest import CiServer, Job, Runner, running_ci, unique


def one_job(label: str, steps: str = "- run: echo hi") -> str:
    return f"""
    on: push
    jobs:
      build:
        runs-on: {label}
        steps:
          {steps}
    """


class TestRegistration:
    """Registration tokens, runner tokens, the runners list."""

    def test_register_with_a_registration_token_and_list(self, ci: CiServer) -> None:
        runner = ci.runner("Linux", "X64")
        listed = {r["id"]: r for r in ci.get("/runners").json()}
        assert listed[runner.id]["labels"] == ["Linux", "X64"]
        assert listed[runner.id]["status"] == "online"
        assert listed[runner.id]["busy"] == 0

    def test_registering_a_name_again_revokes_the_old_token(self, ci: CiServer) -> None:
        name = unique("same")
        first = ci.runner("a", name=name)
        second = ci.runner("a", name=name)
        assert first.id == second.id
        assert first.http.post("/runners/claim", json={"wait": 0}).status_code == 401
        assert second.http.post("/runners/claim", json={"wait": 0}).status_code == 204

    def test_a_deleted_runner_token_is_refused(self, ci: CiServer) -> None:
        runner = ci.runner("a")
        assert ci.http.delete(f"/runners/{runner.id}").status_code == 204
        response = runner.http.post("/runners/claim", json={"wait": 0})
        assert response.status_code == 401
        assert "revoked" in response.json()["error"]
        assert ci.http.delete(f"/runners/{runner.id}").status_code == 404

    def test_register_needs_the_register_scope(self, ci: CiServer) -> None:
        token = ci.token("pipelines:write")
        response = httpx.post(f"{ci.url}/runners/register", json={"name": "x"},
                              headers={"Authorization": f"Bearer {token}"})
        assert response.status_code == 403
        response = ci.post("/runners/registration-token",
                           headers={"Authorization": f"Bearer {token}"})
        assert response.status_code == 403


class TestClaim:
    """Claims hand out queued jobs whose labels the runner has, once each."""

    def test_assignment_carries_what_the_runner_needs(self, ci: CiServer) -> None:
        label = unique("lbl")
        pid = ci.create(one_job(label), repo="octo/demo")
        job = ci.runner(label).must_claim()
        a = job.a
        assert a["pipeline_id"] == pid and a["attempt"] == 1
        assert a["key"] == "build" and a["job"] == "build" and a["name"] == "build"
        assert a["repo"] == "octo/demo" and a["sha"] == "a" * 40 and a["ref"] == "refs/heads/main"
        assert a["clone_url"] == f"http://127.0.0.1:{ci.settings.port}/octo/demo.git"
        assert a["workflow"]["path"] == ".github/workflows/ci.yml"
        assert f"runs-on: {label}" in a["workflow"]["text"]
        assert set(a["contexts"]) >= {"github", "needs", "matrix", "strategy", "inputs", "vars",
                                      "secrets", "env"}
        assert a["contexts"]["github"]["run_id"] == str(pid)
        assert a["labels"] == [label]
        assert a["continue_on_error"] is False and a["timeout_minutes"] == 360
        assert a["run_id"] == str(pid) and a["run_attempt"] == 1
        claims = ci.signer.verify(a["token"])
        assert claims.scopes == {f"job:{job.id}", "repo:octo/demo:read", f"pipeline:{pid}",
                                 "cache:octo/demo"}
        assert claims.expires_at is not None
        assert 360 * 60 + 3600 - 5 < claims.expires_at - claims.issued_at <= 360 * 60 + 3600
        assert ci.jobs(pid)["build"]["status"] == "running"
        assert ci.pipeline(pid)["status"] == "running"

    def test_no_job_within_the_wait_is_204(self, ci: CiServer) -> None:
        assert ci.runner(unique("idle")).claim(wait=0.2) is None

    def test_labels_must_all_be_among_the_runners_case_insensitively(self, ci: CiServer) -> None:
        label = unique("Lbl")
        ci.create(one_job(f"[self-hosted, {label}, gpu]"))
        assert ci.runner(label.lower()).claim(wait=0.1) is None
        job = ci.runner(label.upper(), "GPU").must_claim(wait=1)
        job.finish()

    def test_the_runner_name_is_an_implicit_label(self, ci: CiServer) -> None:
        name = unique("named")
        ci.create(one_job(name))
        job = ci.runner(name=name).must_claim(wait=1)
        job.finish()

    def test_a_waiting_claim_wakes_when_a_job_is_queued(self, ci: CiServer) -> None:
        label = unique("wake")
        runner = ci.runner(label)
        got: list[object] = []
        thread = threading.Thread(target=lambda: got.append(runner.claim(wait=20)))
        thread.start()
        threading.Event().wait(0.3)
        ci.create(one_job(label))
        thread.join(10)
        assert got and got[0] is not None

    def test_a_claim_asked_again_after_a_lost_answer_gets_its_job_again(
        self, ci: CiServer
    ) -> None:
        """The answer to a claim never reached the runner (ci died once the claim was
        recorded): asking again with the claim's id hands the same job over, with a
        token that works, instead of leaving it to fail as lost."""
        label = unique("again")
        ci.create(one_job(label))
        runner = ci.runner(label)
        first = runner.claim(wait=1, claim_id="claim-0001")  # its answer "lost"
        assert first is not None
        other = ci.runner(label)
        assert other.claim(wait=0, claim_id="claim-0001", again=True) is None  # not its claim
        assert runner.claim(wait=0, claim_id="claim-0002", again=True) is None  # nor this one
        again = runner.claim(wait=0, claim_id="claim-0001", again=True)
        assert again is not None and again.id == first.id
        again.finish()
        assert ci.get(f"/jobs/{first.id}").json()["conclusion"] == "success"
        # Once the job is done, the same question hands out nothing more.
        assert runner.claim(wait=0, claim_id="claim-0001", again=True) is None

    def test_a_draining_runner_asking_again_still_gets_the_job_it_was_handed(
        self, ci: CiServer
    ) -> None:
        label = unique("againdrain")
        ci.create(one_job(label))
        runner = ci.runner(label)
        first = runner.must_claim(wait=1)
        assert runner.http.post("/runners/drain", json={}).status_code == 204
        assert runner.claim(wait=0) is None
        assert runner.claim(wait=0, claim_id="never-used", again=True) is None
        # The job above was claimed without an id: nothing to find by one.
        label2 = unique("againdrain2")
        ci.create(one_job(label2))
        runner2 = ci.runner(label2)
        taken = runner2.claim(wait=1, claim_id="drained-claim")
        assert taken is not None
        assert runner2.http.post("/runners/drain", json={}).status_code == 204
        again = runner2.claim(wait=0, claim_id="drained-claim", again=True)
        assert again is not None and again.id == taken.id
        first.finish()
        again.finish()

    def test_bad_claim_ids_are_refused(self, ci: CiServer) -> None:
        runner = ci.runner(unique("badid"))
        for bad in ("short", "x" * 65, "spaces not allowed", 12345678):
            response = runner.http.post("/runners/claim", json={"wait": 0, "claim_id": bad})
            assert response.status_code == 422, (bad, response.text)

    def test_concurrent_claims_never_hand_a_job_out_twice(self, ci: CiServer) -> None:
        label = unique("race")
        ci.create(f"""
        on: push
        jobs:
          t:
            runs-on: {label}
            strategy:
              matrix:
                n: [{", ".join(str(i) for i in range(24))}]
            steps:
              - run: echo
        """)
        runners = [ci.runner(label) for _ in range(4)]
        claimed: list[int] = []
        lock = threading.Lock()

        def work(r: object) -> None:
            assert hasattr(r, "claim")
            while (job := r.claim(wait=0.5)) is not None:
                with lock:
                    claimed.append(job.id)

        threads = [threading.Thread(target=work, args=(r,)) for r in runners for _ in range(3)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
        assert len(claimed) == 24
        assert max(Counter(claimed).values()) == 1


class TestLogs:
    """Log appends by byte offset: retried, overlapping and gapped uploads."""

    def test_appends_retries_overlaps_and_gaps(self, ci: CiServer) -> None:
        label = unique("log")
        ci.create(one_job(label))
        job = ci.runner(label).must_claim()
        assert job.log(b"hello ").json() == {"size": 6}
        assert job.log(b"hello ", offset=0).json() == {"size": 6}  # a retry: nothing twice
        assert job.log(b"lo world\n", offset=3).json() == {"size": 12}  # overlap skipped
        gap = job.log(b"x", offset=40)
        assert gap.status_code == 409 and gap.json()["size"] == 12
        assert "error" in gap.json()
        assert job.log(b"", offset=12).json() == {"size": 12}
        assert ci.get(f"/jobs/{job.id}/log").text == "hello world\n"
        assert ci.get(f"/jobs/{job.id}/log", params={"offset": 6}).text == "world\n"
        job.finish(log=b"end\n")
        assert ci.get(f"/jobs/{job.id}/log").text == "hello world\nend\n"

    def test_follow_streams_until_the_job_ends(self, ci: CiServer) -> None:
        label = unique("follow")
        ci.create(one_job(label))
        job = ci.runner(label).must_claim()
        job.log(b"first\n")
        chunks: list[bytes] = []

        def follow() -> None:
            with ci.http.stream("GET", f"/jobs/{job.id}/log", params={"follow": "true"}) as r:
                chunks.extend(r.iter_bytes())

        thread = threading.Thread(target=follow)
        thread.start()
        threading.Event().wait(0.3)
        job.log(b"second\n")
        threading.Event().wait(0.2)
        job.finish(log=b"third\n")
        thread.join(10)
        assert not thread.is_alive()
        assert b"".join(chunks) == b"first\nsecond\nthird\n"

    def test_a_complete_log_is_closed_to_new_bytes(self, ci: CiServer) -> None:
        label = unique("closed")
        ci.create(one_job(label))
        job = ci.runner(label).must_claim()
        job.log(b"abc")
        assert job.complete().status_code == 200  # log_size: what ci holds
        assert ci.get(f"/jobs/{job.id}").json()["log_complete"] is True
        assert job.log(b"abc", offset=0).status_code == 200  # a late retry of stored bytes
        assert job.log(b"more", offset=3).status_code == 409

    def test_a_completion_without_log_size_closes_the_log_as_it_is(self, ci: CiServer) -> None:
        """What runners that predate log_size on completions rely on."""
        label = unique("nosize")
        ci.create(one_job(label))
        job = ci.runner(label).must_claim()
        job.log(b"all of it\n")
        response = job.http.post(f"/jobs/{job.id}/complete", json={"conclusion": "success"})
        assert response.status_code == 200 and response.json()["log_complete"] is True
        assert ci.get(f"/jobs/{job.id}").json()["log_complete"] is True
        assert job.log(b"late\n").status_code == 409
        assert ci.get(f"/jobs/{job.id}/log").text == "all of it\n"


class TestLogAfterCompletion:
    """A completion with a log_size beyond what ci holds: the job ends, the log follows."""

    def test_the_job_ends_at_once_and_the_log_closes_when_the_rest_arrives(
        self, ci: CiServer
    ) -> None:
        label = unique("early")
        pid = ci.create(one_job(label))
        job = ci.runner(label).must_claim()
        assert job.log(b"abc").status_code == 200
        response = job.complete(log_size=10)
        assert response.status_code == 200
        assert response.json()["log_complete"] is False
        state = ci.get(f"/jobs/{job.id}").json()
        assert (state["status"], state["conclusion"], state["log_complete"]) == (
            "completed", "success", False)
        assert state["finished_at"] is not None
        assert ci.pipeline(pid)["status"] == "completed"
        assert job.log(b"defg").json() == {"size": 7}
        assert ci.get(f"/jobs/{job.id}").json()["log_complete"] is False
        assert job.complete(log_size=10).json()["log_complete"] is False  # a repeat: same
        assert job.log(b"hij").json() == {"size": 10}  # reaches log_size: closed
        assert ci.get(f"/jobs/{job.id}").json()["log_complete"] is True
        assert ci.get(f"/jobs/{job.id}/log").content == b"abcdefghij"
        assert job.log(b"x").status_code == 409  # closed

    def test_bytes_beyond_log_size_are_refused_and_nothing_is_written(
        self, ci: CiServer
    ) -> None:
        label = unique("beyond")
        ci.create(one_job(label))
        job = ci.runner(label).must_claim()
        job.log(b"12345")
        assert job.complete(log_size=8).status_code == 200
        refused = job.log(b"6789")  # ends at 9, past 8
        assert refused.status_code == 409
        assert "log_size" in refused.json()["error"]
        assert ci.get(f"/jobs/{job.id}/log").content == b"12345"
        assert job.log(b"678").json() == {"size": 8}
        assert ci.get(f"/jobs/{job.id}").json()["log_complete"] is True

    def test_what_needs_the_job_starts_while_its_log_is_open(self, ci: CiServer) -> None:
        label = unique("needs")
        pid = ci.create(f"""
        on: push
        jobs:
          a: {{runs-on: {label}, steps: [{{run: "true"}}]}}
          b: {{runs-on: {label}, needs: a, steps: [{{run: "true"}}]}}
        """)
        runner = ci.runner(label)
        a = runner.must_claim()
        a.log(b"a line\n")
        assert a.complete(log_size=1 << 20).status_code == 200
        b = runner.must_claim(wait=5)
        assert b.key == "b"
        b.finish()
        done = ci.wait_done(pid)
        assert done["conclusion"] == "success"
        assert {j["key"]: j["log_complete"] for j in done["jobs"]} == {"a": False, "b": True}

    def test_a_follower_reads_the_whole_log_until_it_closes(self, ci: CiServer) -> None:
        label = unique("follow-open")
        ci.create(one_job(label))
        job = ci.runner(label).must_claim()
        job.log(b"first\n")
        chunks: list[bytes] = []

        def follow() -> None:
            with ci.http.stream("GET", f"/jobs/{job.id}/log", params={"follow": "true"}) as r:
                chunks.extend(r.iter_bytes())

        thread = threading.Thread(target=follow)
        thread.start()
        rest = b"second\n" + b"x" * 100_000 + b"\nlast\n"
        assert job.complete(log_size=6 + len(rest)).status_code == 200
        threading.Event().wait(0.5)
        assert thread.is_alive(), "the follower stopped at the completion, not the log's end"
        assert job.log(rest[:50_000]).status_code == 200
        threading.Event().wait(0.2)
        assert job.log(rest[50_000:]).status_code == 200
        thread.join(10)
        assert not thread.is_alive()
        assert b"".join(chunks) == b"first\n" + rest
        # Reading from an offset of a closed log, and without follow, agree.
        assert ci.get(f"/jobs/{job.id}/log").content == b"first\n" + rest

    def test_heartbeats_keep_an_open_log_alive_and_end_with_it(self, ci: CiServer) -> None:
        label = unique("hb-open")
        ci.create(one_job(label))
        runner = ci.runner(label)
        job = runner.must_claim()
        assert job.complete(log_size=4).status_code == 200
        assert job.heartbeat() is False  # nothing to stop: the log is on its way
        assert runner.http.post(f"/jobs/{job.id}/heartbeat").json() == {"cancel": False}
        job.log(b"done")
        assert job.heartbeat() is True

    def test_bad_log_sizes_are_refused(self, ci: CiServer) -> None:
        label = unique("badsize")
        ci.create(one_job(label))
        job = ci.runner(label).must_claim()
        for bad in (-1, "ten", 2**60, 1.5, True):
            response = job.http.post(f"/jobs/{job.id}/complete",
                                     json={"conclusion": "success", "log_size": bad})
            assert response.status_code == 422, (bad, response.text)
        assert ci.get(f"/jobs/{job.id}").json()["status"] == "running"


class TestStepsAndCompletion:
    """Steps are upserted by number; completion is idempotent."""

    def test_steps_upsert_and_complete_twice(self, ci: CiServer) -> None:
        label = unique("steps")
        pid = ci.create(one_job(label))
        job = ci.runner(label).must_claim()
        steps = [{"number": 1, "name": "Set up", "status": "in_progress", "started_at": 1.0}]
        assert job.http.post(f"/jobs/{job.id}/steps", json={"steps": steps}).status_code == 204
        steps = [{"number": 1, "name": "Set up", "status": "completed", "conclusion": "success",
                  "finished_at": 2.0},
                 {"number": 2, "name": "Run", "status": "in_progress"}]
        assert job.http.post(f"/jobs/{job.id}/steps", json={"steps": steps}).status_code == 204
        got = ci.get(f"/jobs/{job.id}").json()["steps"]
        assert [(s["number"], s["status"], s["started_at"]) for s in got] == [
            (1, "completed", 1.0), (2, "in_progress", None)]
        body = {"conclusion": "failure", "outputs": {"a": "1"}, "log_size": 0, "error": "boom",
                "steps": [{"number": 2, "name": "Run", "status": "completed",
                           "conclusion": "failure"}]}
        first = job.http.post(f"/jobs/{job.id}/complete", json=body)
        assert first.status_code == 200
        assert first.json()["conclusion"] == "failure" and first.json()["error"] == "boom"
        body["conclusion"] = "success"
        again = job.http.post(f"/jobs/{job.id}/complete", json=body)
        assert again.status_code == 200 and again.json()["conclusion"] == "failure"
        p = ci.pipeline(pid)
        assert (p["status"], p["conclusion"]) == ("completed", "failure")
        assert [s["conclusion"] for s in p["jobs"][0]["steps"]] == ["success", "failure"]

    def test_duplicate_step_numbers_are_refused(self, ci: CiServer) -> None:
        label = unique("dup")
        ci.create(one_job(label))
        job = ci.runner(label).must_claim()
        steps = [{"number": 1, "status": "completed"}, {"number": 1, "status": "completed"}]
        assert job.complete(steps=steps).status_code == 422
        assert job.http.post(f"/jobs/{job.id}/steps", json={"steps": steps}).status_code == 422

    def test_heartbeat_by_the_runner_or_the_job(self, ci: CiServer) -> None:
        label = unique("hb")
        ci.create(one_job(label))
        runner = ci.runner(label)
        job = runner.must_claim()
        assert job.heartbeat() is False
        response = runner.http.post(f"/jobs/{job.id}/heartbeat")
        assert response.json() == {"cancel": False}
        other = ci.runner(label)
        assert other.http.post(f"/jobs/{job.id}/heartbeat").status_code == 403
        job.finish()
        assert job.heartbeat() is True  # finished: nothing to keep running


def matrix_jobs(label: str, n: int) -> str:
    return f"""
    on: push
    jobs:
      t:
        runs-on: {label}
        strategy:
          matrix:
            n: [{", ".join(str(i) for i in range(n))}]
        steps:
          - run: echo
    """


def drain(runner: Runner, url: str | None = None, **kwargs: Any) -> httpx.Response:
    """``POST /runners/drain`` with the runner's token (through another replica: ``url``)."""
    if url is None:
        return runner.http.post("/runners/drain", **kwargs)
    headers = {"Authorization": f"Bearer {runner.token}"}
    return httpx.post(f"{url}/runners/drain", headers=headers, timeout=30, **kwargs)


class PendingClaim:
    """A claim long-polling in a thread; when it ended and what it brought."""

    def __init__(self, runner: Runner, wait: float = 20.0) -> None:
        self.result: list[Job | None] = []
        self.ended = 0.0
        self.thread = threading.Thread(target=self._claim, args=(runner, wait))
        self.thread.start()
        time.sleep(0.3)  # long-polling by now

    def _claim(self, runner: Runner, wait: float) -> None:
        self.result.append(runner.claim(wait=wait))
        self.ended = time.monotonic()

    def join(self, timeout: float) -> Job | None:
        self.thread.join(timeout)
        assert not self.thread.is_alive(), "the claim is still pending"
        return self.result[0]


class TestDraining:
    """A draining runner's claims end at once with 204 and it gets no job; its jobs go on."""

    def test_drain_wakes_a_pending_claim_within_a_second_with_204(self, ci: CiServer) -> None:
        runner = ci.runner(unique("drain"))
        pending = PendingClaim(runner)
        drained_at = time.monotonic()
        assert drain(runner, json={}).status_code == 204
        assert pending.join(5) is None
        assert pending.ended - drained_at < 1.0
        listed = {r["id"]: r for r in ci.get("/runners").json()}
        assert listed[runner.id]["status"] == "draining"

    def test_a_job_queued_right_after_drain_goes_to_another_runner(self, ci: CiServer) -> None:
        label = unique("after")
        draining, other = ci.runner(label), ci.runner(label)
        pending = PendingClaim(draining)
        assert drain(draining).status_code == 204
        pid = ci.create(one_job(label))
        assert pending.join(5) is None
        started = time.monotonic()
        assert draining.claim(wait=10) is None  # at once, though a job of its labels waits
        assert time.monotonic() - started < 1.0
        assert ci.jobs(pid)["build"]["status"] == "queued"
        job = other.must_claim(wait=1)
        assert ci.jobs(pid)["build"]["runner_id"] == other.id
        job.finish()

    def test_the_update_that_takes_a_job_refuses_a_runner_drained_meanwhile(
        self, ci: CiServer
    ) -> None:
        """A claim holding what it read before the drain still gets no job."""
        label = unique("stale")
        runner = ci.runner(label)
        assert drain(runner).status_code == 204
        pid = ci.create(one_job(label))
        before = RunnerInfo(runner.id, runner.name, frozenset({label, "self-hosted"}))
        with pytest.raises(RunnerDraining):
            ci.app.state.ci.queue.try_claim(before)
        assert ci.jobs(pid)["build"]["status"] == "queued"
        ci.runner(label).must_claim(wait=1).finish()

    def test_no_job_is_lost_when_a_drain_races_claims(self, ci: CiServer) -> None:
        """Every job goes to a claim of the draining runner before the drain, or to another."""
        label = unique("racing")
        draining, other = ci.runner(label), ci.runner(label)
        got: list[Job] = []
        lock = threading.Lock()

        def claim() -> None:
            while (job := draining.claim(wait=10)) is not None:
                with lock:
                    got.append(job)

        threads = [threading.Thread(target=claim) for _ in range(3)]
        for thread in threads:
            thread.start()
        time.sleep(0.3)
        pid = ci.create(matrix_jobs(label, 24))
        assert drain(draining).status_code == 204
        for thread in threads:
            thread.join(10)
            assert not thread.is_alive()
        rest = other.run_all(wait=0.5)
        for job in got:
            job.finish()
        jobs = ci.wait_done(pid)["jobs"]
        assert len(jobs) == 24 and all(j["conclusion"] == "success" for j in jobs)
        mine = {j["id"] for j in jobs if j["runner_id"] == draining.id}
        assert mine == {job.id for job in got}  # nothing handed to it that it did not get
        assert {j["id"] for j in jobs if j["runner_id"] == other.id} == {job.id for job in rest}

    def test_running_jobs_of_a_draining_runner_complete(self, ci: CiServer) -> None:
        label = unique("busy")
        pid = ci.create(one_job(label))
        runner = ci.runner(label)
        job = runner.must_claim()
        assert drain(runner).status_code == 204
        assert drain(runner).status_code == 204  # again: nothing changes
        listed = {r["id"]: r for r in ci.get("/runners").json()}
        assert (listed[runner.id]["status"], listed[runner.id]["busy"]) == ("draining", 1)
        assert runner.http.post(f"/jobs/{job.id}/heartbeat").json() == {"cancel": False}
        assert job.heartbeat() is False
        steps = [{"number": 1, "name": "step", "status": "in_progress"}]
        assert job.http.post(f"/jobs/{job.id}/steps", json={"steps": steps}).status_code == 204
        job.finish(log=b"still running\n")
        assert ci.pipeline(pid)["conclusion"] == "success"
        assert ci.get(f"/jobs/{job.id}/log").text == "still running\n"

    def test_registering_again_makes_a_runner_that_is_not_draining(self, ci: CiServer) -> None:
        label, name = unique("again"), unique("again")
        first = ci.runner(label, name=name)
        assert drain(first).status_code == 204
        second = ci.runner(label, name=name)
        listed = {r["id"]: r for r in ci.get("/runners").json()}
        assert listed[second.id]["status"] == "online"
        assert drain(first).status_code == 401  # the old token died with the registration
        ci.create(one_job(label))
        second.must_claim(wait=1).finish()

    def test_resume_undoes_a_drain(self, ci: CiServer) -> None:
        label = unique("resume")
        runner = ci.runner(label)
        assert drain(runner).status_code == 204
        assert runner.http.post("/runners/resume").status_code == 204
        listed = {r["id"]: r for r in ci.get("/runners").json()}
        assert listed[runner.id]["status"] == "online"
        ci.create(one_job(label))
        runner.must_claim(wait=1).finish()

    def test_drain_needs_the_runner_s_own_valid_token(self, ci: CiServer) -> None:
        label = unique("who")
        runner = ci.runner(label)
        assert httpx.post(f"{ci.url}/runners/drain").status_code == 401
        assert ci.post("/runners/drain").status_code == 403  # admin: no runner to drain
        ci.create(one_job(label))
        job = runner.must_claim()
        assert job.http.post("/runners/drain").status_code == 403  # a job token
        assert ci.post("/runners/resume").status_code == 403
        job.finish()
        assert ci.http.delete(f"/runners/{runner.id}").status_code == 204
        response = drain(runner)
        assert response.status_code == 401 and "revoked" in response.json()["error"]

    def test_drain_bodies_are_optional_and_bad_ones_are_4xx(self, ci: CiServer) -> None:
        runner = ci.runner(unique("body"))
        assert drain(runner).status_code == 204  # no body at all
        assert drain(runner, json={"anything": 1}).status_code == 204
        for bad in (b"{not json", b"[1, 2]", b"3"):
            response = drain(runner, content=bad, headers={"Content-Type": "application/json"})
            assert 400 <= response.status_code < 500 and response.json()["error"], bad


def test_a_drain_through_one_replica_holds_on_the_other(settings: Settings) -> None:
    """The drain is in the database: a claim on another replica ends and gets no job."""
    label = unique("replicas")
    with running_ci(settings) as one, running_ci(settings) as two:
        draining, other = one.runner(label), two.runner(label)
        pending = PendingClaim(draining)  # long-polling on replica one
        drained_at = time.monotonic()
        assert drain(draining, url=two.url).status_code == 204
        assert pending.join(10) is None
        assert pending.ended - drained_at < 3.0  # replica one re-checks every second
        pid = two.create(one_job(label))
        assert draining.claim(wait=5) is None
        job = other.must_claim(wait=5)
        assert job.a["pipeline_id"] == pid
        job.finish()
        for server in (one, two):
            listed = {r["id"]: r for r in server.get("/runners").json()}
            assert listed[draining.id]["status"] == "draining"


def _alembic(db: Database, revision: str, down: bool = False) -> None:
    """Move ci's schema to ``revision`` (as ``Database.migrate`` does for the head)."""
    from alembic import command
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", "shipyard.ci:migrations")
    cfg.attributes["database"] = db
    with db.engine.begin() as conn:
        cfg.attributes["connection"] = conn
        (command.downgrade if down else command.upgrade)(cfg, revision)


def test_runners_registered_before_the_drain_migration_serve_after_it(
    settings: Settings,
) -> None:
    """Migration 0002 adds ``draining`` (false for runners already there) and reverts."""
    from sqlalchemy import text

    db = Database(*settings.database_for("ci"))
    try:
        _alembic(db, "0001")
        with db.engine.begin() as conn:
            conn.execute(text(
                "INSERT INTO runners (name, labels, concurrency, executor, version, jti, "
                "created_at, last_seen, deleted) VALUES ('old', '[\"old-label\"]', 1, 'local', "
                "'0', 'j1', 1.0, 1.0, false)"
            ))
            runner_id = conn.execute(text("SELECT id FROM runners WHERE name = 'old'")).scalar()
        with running_ci(settings) as ci:  # migrates to the head
            token = ci.signer.issue(f"runner:{runner_id}:j1", [f"runner:{runner_id}"])
            http = httpx.Client(base_url=ci.url, timeout=30,
                                headers={"Authorization": f"Bearer {token}"})
            with http:
                ci.create(one_job("old-label"))
                assert http.post("/runners/claim", json={"wait": 5}).status_code == 200
                assert http.post("/runners/drain").status_code == 204
        _alembic(db, "0001", down=True)
        _alembic(db, "head")
        with db.engine.connect() as conn:
            assert conn.execute(text("SELECT draining FROM runners")).scalar() in (False, 0)
    finally:
        db.dispose()
