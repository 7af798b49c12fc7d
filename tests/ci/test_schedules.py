"""Cron schedules of the default branch, fired by a loop driven by an injected clock."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from shipyard.ci._schedules import next_run
from tests.ci.conftest import GitServer, running_ci, unique, wait_for
from tests.ci.test_git_feed import pipelines, wait_pipelines
from tests.helpers.databases import service_settings

NIGHTLY = """
name: Nightly
on:
  schedule:
    - cron: "*/5 * * * *"
    - cron: "0 3 * * *"
jobs:
  nightly: {{runs-on: {label}, steps: [{{run: "true"}}]}}
"""


def at(text: str) -> float:
    return datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp()


def test_next_run_is_utc() -> None:
    assert next_run("0 3 * * *", at("2030-01-01T02:59:59")) == at("2030-01-01T03:00:00")
    assert next_run("*/5 * * * *", at("2030-01-01T00:05:00")) == at("2030-01-01T00:10:00")


def test_schedules_fire_once_per_due_minute(
    backend: str, tmp_path: Path, git_server: GitServer
) -> None:
    git = git_server
    now = [at("2030-01-01T00:01:00")]
    label = unique("cron")
    repo = git.new_repo()
    with service_settings(backend, tmp_path / "data", git_url=git.url) as settings, \
            running_ci(settings, clock=lambda: now[0], schedule_tick=0.05, feed_wait=1.0) as ci:
        wt = git.worktree(repo)
        sha = git.commit(wt, {".github/workflows/nightly.yml": NIGHTLY.format(label=label)})
        git.git(wt, "push", "-q", "origin", "main", "main:feature")

        def mine() -> list[dict[str, object]]:
            return [s for s in ci.get("/schedules").json() if s["repo"] == repo]

        schedules = wait_for(lambda: (lambda s: s if len(s) == 2 else None)(mine()))
        assert [(s["cron"], s["next_run"], s["ref"], s["sha"]) for s in schedules] == [
            ("*/5 * * * *", at("2030-01-01T00:05:00"), "refs/heads/main", sha),
            ("0 3 * * *", at("2030-01-01T03:00:00"), "refs/heads/main", sha),
        ]
        assert pipelines(ci, repo) == []  # a schedule-only workflow does not run on push
        now[0] = at("2030-01-01T00:06:10")
        [p] = wait_pipelines(ci, repo, 1)
        assert (p["event"], p["ref"], p["sha"], p["name"]) == (
            "schedule", "refs/heads/main", sha, "Nightly")
        job = ci.runner(label).must_claim()
        assert job.a["contexts"]["github"]["event_name"] == "schedule"
        assert job.a["contexts"]["github"]["event"]["schedule"] == "*/5 * * * *"
        job.finish()
        wait_for(lambda: mine()[0]["next_run"] == at("2030-01-01T00:10:00"))
        assert len(pipelines(ci, repo)) == 1  # the same minute never fires twice
        sources = ci.app.state.ci.sources()
        spec = sources.for_schedule(repo, ".github/workflows/nightly.yml", "*/5 * * * *",
                                    "refs/heads/main", int(at("2030-01-01T00:05:00")))
        assert spec is not None
        assert ci.app.state.ci.engine.create_pipelines([spec]) == [p["id"]]

        git.commit(wt, {"README": "unrelated"})
        git.push(wt)
        wait_for(lambda: mine()[0]["sha"] != sha)
        assert mine()[0]["next_run"] == at("2030-01-01T00:10:00")  # a kept cron keeps its time
        git.commit(wt, {".github/workflows/nightly.yml": None})
        git.push(wt)
        wait_for(lambda: mine() == [], what="the schedules to be dropped")
        now[0] = at("2030-01-01T04:00:00")
        assert len(pipelines(ci, repo)) == 1
