"""The runner protocol, driven over HTTP as the runner agent drives it."""

from __future__ import annotations

import threading
from collections import Counter

import httpx

from tests.ci.conftest import CiServer, unique


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

    def test_a_finished_jobs_log_is_closed_and_a_too_long_log_size_is_409(self, ci: CiServer) -> None:
        label = unique("closed")
        ci.create(one_job(label))
        job = ci.runner(label).must_claim()
        job.log(b"abc")
        response = job.http.post(f"/jobs/{job.id}/complete",
                                 json={"conclusion": "success", "log_size": 10})
        assert response.status_code == 409
        assert job.complete().status_code == 200
        assert job.log(b"abc", offset=0).status_code == 200  # a late retry of stored bytes
        assert job.log(b"more", offset=3).status_code == 409


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
