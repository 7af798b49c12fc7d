"""Pipelines flowing through the queue: needs and outputs, fail-fast, if, cancel, rerun,
concurrency groups, timeouts, reusable workflows."""

from __future__ import annotations

from tests.ci.conftest import CiServer, Job, unique, wait_for


def graph(label: str) -> str:
    return f"""
    on: push
    jobs:
      build:
        runs-on: {label}
        outputs:
          version: ${{{{ steps.v.outputs.version }}}}
        steps:
          - id: v
            run: echo version=1.2 >> "$GITHUB_OUTPUT"
      test:
        needs: build
        runs-on: {label}
        strategy:
          matrix:
            py: ["3.11", "3.12"]
        steps:
          - run: echo ${{{{ needs.build.outputs.version }}}}
      deploy:
        needs: test
        if: github.ref == 'refs/heads/main'
        runs-on: {label}
        steps:
          - run: echo deploy
      never:
        needs: build
        if: github.ref == 'refs/heads/other'
        runs-on: {label}
        steps:
          - run: echo never
    """


class TestGraph:
    """needs, outputs, matrix and if move through the queue like a local run."""

    def test_needs_outputs_matrix_and_if(self, ci: CiServer) -> None:
        label = unique("graph")
        pid = ci.create(graph(label))
        assert list(ci.jobs(pid)) == ["build"]
        runner = ci.runner(label)
        build = runner.must_claim()
        assert build.a["contexts"]["needs"] == {}
        build.finish(outputs={"version": "1.2"})
        jobs = ci.jobs(pid)
        assert jobs["never"]["status"] == "completed" and jobs["never"]["conclusion"] == "skipped"
        legs = [runner.must_claim(), runner.must_claim()]
        assert sorted(j.key for j in legs) == ["test (3.11)", "test (3.12)"]
        for leg in legs:
            assert leg.a["contexts"]["needs"] == {
                "build": {"result": "success", "outputs": {"version": "1.2"}}}
            assert leg.a["contexts"]["matrix"]["py"] in ("3.11", "3.12")
            assert leg.a["contexts"]["strategy"]["job-total"] == 2
            leg.finish()
        deploy = runner.must_claim()
        assert deploy.key == "deploy"
        assert deploy.a["contexts"]["needs"]["test"]["result"] == "success"
        deploy.finish()
        p = ci.wait_done(pid)
        assert p["conclusion"] == "success"
        by_key = {j["key"]: j for j in p["jobs"]}
        assert set(by_key) == {"build", "test (3.11)", "test (3.12)", "deploy", "never"}
        assert by_key["build"]["outputs"] == {"version": "1.2"}
        assert by_key["test (3.11)"]["needs"] == ["build"]
        assert by_key["test (3.12)"]["matrix"] == {"py": "3.12"}

    def test_a_failed_need_skips_dependents_and_fails_the_pipeline(self, ci: CiServer) -> None:
        label = unique("fail")
        pid = ci.create(graph(label))
        ci.runner(label).must_claim().finish("failure")
        p = ci.wait_done(pid)
        assert p["conclusion"] == "failure"
        assert {j["key"]: j["conclusion"] for j in p["jobs"]} == {
            "build": "failure", "test": "skipped", "deploy": "skipped", "never": "skipped"}

    def test_continue_on_error_and_always(self, ci: CiServer) -> None:
        label = unique("coe")
        pid = ci.create(f"""
        on: push
        jobs:
          flaky:
            runs-on: {label}
            continue-on-error: true
            steps: [{{run: "false"}}]
          report:
            needs: flaky
            if: always()
            runs-on: {label}
            steps: [{{run: "true"}}]
        """)
        runner = ci.runner(label)
        flaky = runner.must_claim()
        assert flaky.a["continue_on_error"] is True
        flaky.finish("failure")
        runner.must_claim().finish()
        assert ci.wait_done(pid)["conclusion"] == "success"


    def test_a_job_whose_settings_do_not_evaluate_fails_without_running(
        self, ci: CiServer
    ) -> None:
        label = unique("badtimeout")
        pid = ci.create(f"""
        on: push
        jobs:
          odd:
            runs-on: {label}
            strategy: {{fail-fast: false, matrix: {{t: ["5", "soon"]}}}}
            timeout-minutes: ${{{{ matrix.t }}}}
            steps: [{{run: "true"}}]
        """)
        jobs = ci.jobs(pid)
        assert jobs["odd (soon)"]["conclusion"] == "failure"
        assert "timeout-minutes" in jobs["odd (soon)"]["error"]
        job = ci.runner(label).must_claim()
        assert job.key == "odd (5)" and job.a["timeout_minutes"] == 5
        job.finish()
        assert ci.wait_done(pid)["conclusion"] == "failure"


class TestFailFast:
    """A failed matrix leg cancels its siblings (the running one through its heartbeat)."""

    def test_fail_fast(self, ci: CiServer) -> None:
        label = unique("ff")
        pid = ci.create(f"""
        on: push
        jobs:
          test:
            runs-on: {label}
            strategy:
              max-parallel: 2
              matrix:
                n: [1, 2, 3]
            steps: [{{run: "true"}}]
        """)
        runner = ci.runner(label)
        first, second = runner.must_claim(), runner.must_claim()
        assert runner.claim(wait=0.1) is None  # max-parallel holds the third
        first.finish("failure")
        assert second.heartbeat() is True
        assert ci.jobs(pid)[second.key]["status"] == "cancelling"
        second.finish("cancelled")
        p = ci.wait_done(pid)
        assert p["conclusion"] == "failure"
        assert sorted(j["conclusion"] for j in p["jobs"]) == ["cancelled", "cancelled", "failure"]


class TestCancel:
    """Cancelling pipelines and jobs."""

    def test_cancel_a_pipeline(self, ci: CiServer) -> None:
        label = unique("cancel")
        pid = ci.create(f"""
        on: push
        jobs:
          a: {{runs-on: {label}, steps: [{{run: "true"}}]}}
          b: {{runs-on: {label}-none, steps: [{{run: "true"}}]}}
          c: {{runs-on: {label}, needs: [a], steps: [{{run: "true"}}]}}
        """)
        job = ci.runner(label).must_claim()
        response = ci.post(f"/pipelines/{pid}/cancel")
        assert response.status_code == 200
        jobs = {j["key"]: j for j in response.json()["jobs"]}
        assert jobs["a"]["status"] == "cancelling"
        assert jobs["b"]["conclusion"] == "cancelled"
        assert jobs["c"]["conclusion"] == "cancelled"
        assert job.heartbeat() is True
        job.finish("cancelled")
        p = ci.wait_done(pid)
        assert p["conclusion"] == "cancelled"
        assert ci.post(f"/pipelines/{pid}/cancel").status_code == 409

    def test_cancel_one_queued_job(self, ci: CiServer) -> None:
        label = unique("cancel1")
        pid = ci.create(f"""
        on: push
        jobs:
          a: {{runs-on: {label}, steps: [{{run: "true"}}]}}
          b: {{runs-on: {label}, needs: a, steps: [{{run: "true"}}]}}
        """)
        job_id = ci.jobs(pid)["a"]["id"]
        response = ci.post(f"/jobs/{job_id}/cancel")
        assert response.status_code == 200 and response.json()["conclusion"] == "cancelled"
        p = ci.wait_done(pid)
        assert {j["key"]: j["conclusion"] for j in p["jobs"]} == {"a": "cancelled", "b": "skipped"}
        assert ci.post(f"/jobs/{job_id}/cancel").status_code == 409

    def test_a_success_reported_after_cancel_stands(self, ci: CiServer) -> None:
        label = unique("late")
        pid = ci.create(f"""
        on: push
        jobs:
          a: {{runs-on: {label}, steps: [{{run: "true"}}]}}
        """)
        job = ci.runner(label).must_claim()
        ci.post(f"/jobs/{job.id}/cancel")
        job.finish("success")  # it ended before it saw the cancel
        assert ci.wait_done(pid)["conclusion"] == "success"


class TestRerun:
    """Reruns: new attempts keeping what need not run again."""

    def workflow(self, label: str) -> str:
        return f"""
        on: push
        jobs:
          a: {{runs-on: {label}, steps: [{{run: "true"}}], outputs: {{x: "${{{{ steps.s.outputs.x }}}}"}}}}
          b:
            runs-on: {label}
            strategy: {{fail-fast: false, matrix: {{n: [1, 2]}}}}
            steps: [{{run: "true"}}]
          c: {{runs-on: {label}, needs: [a, b], steps: [{{run: "true"}}]}}
        """

    def run(self, ci: CiServer, label: str, fail: str | None) -> int:
        pid = ci.create(self.workflow(label))
        ci.runner(label).run_all(
            outputs=lambda j: {"x": "from-a"} if j.key == "a" else {},
            conclusion=lambda j: "failure" if j.key == fail else "success",
        )
        return pid

    def test_rerun_failed_jobs_keeps_the_rest(self, ci: CiServer) -> None:
        label = unique("rerun")
        pid = self.run(ci, label, "b (2)")
        first = ci.wait_done(pid)
        assert first["conclusion"] == "failure"
        old = {j["key"]: j for j in first["jobs"]}
        response = ci.post(f"/pipelines/{pid}/rerun", json={"failed_only": True})
        assert response.status_code == 200, response.text
        assert response.json()["attempt"] == 2
        jobs = {j["key"]: j for j in response.json()["jobs"]}
        assert jobs["a"]["status"] == "completed" and jobs["a"]["outputs"] == {"x": "from-a"}
        assert jobs["b (1)"]["conclusion"] == "success"
        assert jobs["b (2)"]["status"] == "queued" and jobs["b (2)"]["attempt"] == 2
        assert "c" not in jobs
        kept_log = ci.get(f"/jobs/{jobs['a']['id']}/log").text
        assert kept_log == ci.get(f"/jobs/{old['a']['id']}/log").text == "done\n"
        runner = ci.runner(label)
        leg = runner.must_claim()
        assert leg.key == "b (2)" and leg.a["run_attempt"] == 2
        assert leg.a["contexts"]["github"]["run_attempt"] == "2"
        leg.finish()
        c = runner.must_claim()
        assert c.a["contexts"]["needs"]["a"]["outputs"] == {"x": "from-a"}
        c.finish()
        second = ci.wait_done(pid)
        assert second["conclusion"] == "success" and second["attempt"] == 2

    def test_rerun_one_job_and_its_dependents(self, ci: CiServer) -> None:
        label = unique("rerun1")
        pid = self.run(ci, label, None)
        first = {j["key"]: j for j in ci.wait_done(pid)["jobs"]}
        response = ci.post(f"/jobs/{first['a']['id']}/rerun")
        assert response.status_code == 200
        jobs = {j["key"]: j for j in response.json()["jobs"]}
        assert jobs["a"]["status"] == "queued"
        assert jobs["b (1)"]["status"] == jobs["b (2)"]["status"] == "completed"
        done = ci.runner(label).run_all()
        assert [j.key for j in done] == ["a", "c"]
        assert ci.wait_done(pid)["attempt"] == 2
        assert ci.post(f"/jobs/{first['a']['id']}/rerun").status_code == 409  # old attempt

    def test_rerun_everything_and_not_while_running(self, ci: CiServer) -> None:
        label = unique("rerunall")
        pid = self.run(ci, label, None)
        ci.wait_done(pid)
        response = ci.post(f"/pipelines/{pid}/rerun", json={"failed_only": False})
        assert {j["status"] for j in response.json()["jobs"]} == {"queued"}
        assert ci.post(f"/pipelines/{pid}/rerun", json={}).status_code == 409
        assert len(ci.runner(label).run_all()) == 4


class TestConcurrency:
    """concurrency groups, job- and workflow-level."""

    def test_job_group_queues_behind_the_running_one(self, ci: CiServer) -> None:
        label = unique("grp")
        text = f"""
        on: push
        jobs:
          deploy:
            runs-on: {label}
            concurrency: deploy-{label}
            steps: [{{run: "true"}}]
        """
        first = ci.create(text)
        second = ci.create(text)
        third = ci.create(text)
        assert ci.jobs(first)["deploy"]["status"] == "queued"
        assert ci.jobs(third)["deploy"]["status"] == "waiting"
        wait_for(lambda: ci.jobs(second)["deploy"]["status"] == "completed",
                 what="the older pending job to be replaced")
        assert ci.jobs(second)["deploy"]["conclusion"] == "cancelled"
        runner = ci.runner(label)
        job = runner.must_claim()
        assert job.a["pipeline_id"] == first
        assert runner.claim(wait=0.1) is None
        job.finish()
        runner.must_claim().finish()
        assert ci.wait_done(third)["conclusion"] == "success"

    def test_cancel_in_progress_cancels_the_running_pipeline(self, ci: CiServer) -> None:
        label = unique("cip")
        text = f"""
        on: push
        concurrency:
          group: ci-${{{{ github.ref }}}}-{label}
          cancel-in-progress: true
        jobs:
          a: {{runs-on: {label}, steps: [{{run: "true"}}]}}
        """
        first = ci.create(text)
        job = ci.runner(label).must_claim()
        second = ci.create(text)
        assert wait_for(job.heartbeat, what="the cancel to reach the runner")
        job.finish("cancelled")
        assert ci.wait_done(first)["conclusion"] == "cancelled"
        ci.runner(label).must_claim().finish()
        assert ci.wait_done(second)["conclusion"] == "success"

    def test_job_group_cancel_in_progress(self, ci: CiServer) -> None:
        label = unique("jcip")
        text = f"""
        on: push
        jobs:
          deploy:
            runs-on: {label}
            concurrency: {{group: "env-{label}", cancel-in-progress: true}}
            steps: [{{run: "true"}}]
        """
        first = ci.create(text)
        runner = ci.runner(label)
        old = runner.must_claim()
        second = ci.create(text)
        assert ci.jobs(second)["deploy"]["status"] == "queued"
        assert wait_for(old.heartbeat, what="the older job to be cancelled")
        old.finish("cancelled")
        assert ci.wait_done(first)["conclusion"] == "cancelled"
        runner.must_claim().finish()
        assert ci.wait_done(second)["conclusion"] == "success"

    def test_workflow_group_waits_for_the_running_pipeline(self, ci: CiServer) -> None:
        label = unique("wgrp")
        text = f"""
        on: push
        concurrency: release-{label}
        jobs:
          a: {{runs-on: {label}, steps: [{{run: "true"}}]}}
        """
        first = ci.create(text)
        second = ci.create(text)
        assert ci.pipeline(second)["jobs"] == []
        assert ci.pipeline(second)["status"] == "queued"
        runner = ci.runner(label)
        runner.must_claim().finish()
        ci.wait_done(first)
        runner.must_claim().finish()
        assert ci.wait_done(second)["conclusion"] == "success"


class TestTimeouts:
    """timeout-minutes: ci asks the runner to stop, and the job ends failed."""

    def test_a_job_past_its_timeout_is_cancelled_and_fails(self, ci: CiServer) -> None:
        label = unique("slow")
        pid = ci.create(f"""
        on: push
        jobs:
          slow: {{runs-on: {label}, timeout-minutes: 0.01, steps: [{{run: "sleep 60"}}]}}
        """)
        job: Job = ci.runner(label).must_claim()
        assert job.a["timeout_minutes"] == 0.01
        assert wait_for(job.heartbeat, 10, "the timeout to cancel the job")
        job.finish("cancelled")
        p = ci.wait_done(pid)
        assert p["conclusion"] == "failure"
        assert p["jobs"][0]["error"] == "timed out"


class TestReusable:
    """A job calling a local reusable workflow runs the called file's jobs."""

    def test_called_workflow_jobs_get_the_called_file(self, ci: CiServer) -> None:
        label = unique("reuse")
        called = f"""\
on:
  workflow_call:
    inputs:
      target: {{type: string, required: true}}
    outputs:
      where: {{value: "${{{{ jobs.deploy.outputs.where }}}}"}}
jobs:
  deploy:
    runs-on: {label}
    outputs: {{where: "${{{{ steps.d.outputs.where }}}}"}}
    steps: [{{id: d, run: "echo where=${{{{ inputs.target }}}}"}}]
"""
        pid = ci.create(f"""
        on: push
        jobs:
          call:
            uses: ./.github/workflows/deploy.yml
            with: {{target: prod}}
          after:
            needs: call
            runs-on: {label}
            steps: [{{run: "echo ${{{{ needs.call.outputs.where }}}}"}}]
        """, called={".github/workflows/deploy.yml": called})
        runner = ci.runner(label)
        inner = runner.must_claim()
        assert inner.key == "call / deploy" and inner.a["job"] == "deploy"
        assert inner.a["workflow"] == {"path": ".github/workflows/deploy.yml", "text": called}
        assert inner.a["contexts"]["inputs"] == {"target": "prod"}
        inner.finish(outputs={"where": "prod"})
        after = runner.must_claim()
        assert after.a["contexts"]["needs"]["call"]["outputs"] == {"where": "prod"}
        after.finish()
        assert ci.wait_done(pid)["conclusion"] == "success"

    def test_rerun_of_a_failed_called_job(self, ci: CiServer) -> None:
        label = unique("reuse-rerun")
        called = f"""\
on: workflow_call
jobs:
  one: {{runs-on: {label}, steps: [{{run: "true"}}]}}
  two: {{runs-on: {label}, steps: [{{run: "true"}}]}}
"""
        pid = ci.create(f"""
        on: push
        jobs:
          call: {{uses: ./.github/workflows/c.yml}}
          after: {{needs: call, runs-on: {label}, steps: [{{run: "true"}}]}}
        """, called={".github/workflows/c.yml": called})
        runner = ci.runner(label)
        runner.run_all(conclusion=lambda j: "failure" if j.key == "call / two" else "success")
        first = ci.wait_done(pid)
        assert {j["key"]: j["conclusion"] for j in first["jobs"]} == {
            "call / one": "success", "call / two": "failure", "after": "skipped"}
        rerun = ci.post(f"/pipelines/{pid}/rerun", json={"failed_only": True}).json()
        assert {j["key"]: j["status"] for j in rerun["jobs"]} == {
            "call / one": "completed", "call / two": "queued"}
        assert [j.key for j in runner.run_all()] == ["call / two", "after"]
        assert ci.wait_done(pid)["conclusion"] == "success"
