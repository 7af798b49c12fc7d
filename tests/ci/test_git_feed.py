"""Pushes to a real git service become pipelines: filters, tags, deletions, invalid files,
dispatch, statuses."""

from __future__ import annotations

from typing import Any

from tests.ci.conftest import CiServer, GitServer, unique, wait_for

CI = """
name: CI
on:
  push:
    branches: [main, "feature/**"]
jobs:
  build:
    runs-on: {label}
    steps: [{{run: "true"}}]
  test:
    needs: build
    runs-on: {label}
    strategy:
      matrix:
        py: ["3.11", "3.12"]
    steps: [{{run: "true"}}]
  deploy:
    needs: test
    if: github.ref == 'refs/heads/main'
    runs-on: {label}
    steps: [{{run: "true"}}]
"""

SRC_ONLY = """
name: Source
on:
  push:
    paths: ["src/**"]
jobs:
  lint: {{runs-on: {label}, steps: [{{run: "true"}}]}}
"""

RELEASE = """
name: Release
on:
  push:
    tags: ["v*"]
jobs:
  publish: {{runs-on: {label}, steps: [{{run: "true"}}]}}
"""


def pipelines(ci: CiServer, repo: str) -> list[dict[str, Any]]:
    body: list[dict[str, Any]] = ci.get("/pipelines", params={"repo": repo}).json()
    return sorted(body, key=lambda p: p["id"])


def wait_pipelines(ci: CiServer, repo: str, count: int) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = wait_for(
        lambda: (lambda ps: ps if len(ps) >= count else None)(pipelines(ci, repo)),
        20, f"{count} pipeline(s) of {repo}",
    )
    return found


class TestPushes:
    """Each push runs the workflows its ref and paths select."""

    def test_a_push_creates_a_pipeline_with_its_job_graph(
        self, ci_git: tuple[CiServer, GitServer]
    ) -> None:
        ci, git = ci_git
        label = unique("push")
        repo = git.new_repo()
        wt = git.worktree(repo)
        sha = git.commit(wt, {".github/workflows/ci.yml": CI.format(label=label),
                              "README": "hi"})
        git.push(wt)
        [p] = wait_pipelines(ci, repo, 1)
        assert (p["workflow"], p["name"], p["event"], p["ref"], p["sha"]) == (
            ".github/workflows/ci.yml", "CI", "push", "refs/heads/main", sha)
        assert [j["key"] for j in ci.pipeline(p["id"])["jobs"]] == ["build"]
        assert ci.get(f"/statuses/{repo}/{sha}").json()["state"] == "pending"
        runner = ci.runner(label)
        build = runner.must_claim()
        github = build.a["contexts"]["github"]
        assert (github["sha"], github["ref"], github["ref_name"], github["event_name"]) == (
            sha, "refs/heads/main", "main", "push")
        assert github["repository"] == repo and github["workflow"] == "CI"
        assert github["event"]["before"] == "0" * 40 and github["event"]["after"] == sha
        assert build.a["clone_url"].endswith(f"/{repo}.git")
        build.finish()
        runner.run_all()
        done = ci.wait_done(p["id"])
        assert done["conclusion"] == "success"
        assert [j["key"] for j in done["jobs"]] == ["build", "test (3.11)", "test (3.12)", "deploy"]
        status = ci.get(f"/statuses/{repo}/{sha}").json()
        assert status["state"] == "success"
        assert status["statuses"][0]["context"] == "CI"
        assert status["statuses"][0]["pipeline_id"] == p["id"]

    def test_branch_and_path_filters(self, ci_git: tuple[CiServer, GitServer]) -> None:
        ci, git = ci_git
        label = unique("filters")
        repo = git.new_repo()
        wt = git.worktree(repo)
        git.commit(wt, {".github/workflows/src.yml": SRC_ONLY.format(label=label),
                        "src/a.py": "x = 1\n"})
        git.push(wt)
        first = wait_pipelines(ci, repo, 1)
        assert [p["name"] for p in first] == ["Source"]
        git.commit(wt, {"docs/readme.md": "docs"})
        git.push(wt)
        git.commit(wt, {"src/a.py": "x = 2\n"})
        git.push(wt)
        after = wait_pipelines(ci, repo, 2)
        assert len(after) == 2  # the docs-only push ran nothing
        git.git(wt, "checkout", "-q", "-b", "other")
        git.commit(wt, {"src/b.py": "y = 1\n"})
        git.push(wt, "other")
        assert len(wait_pipelines(ci, repo, 3)) == 3

    def test_tags_run_tag_workflows_and_deletions_run_nothing(
        self, ci_git: tuple[CiServer, GitServer]
    ) -> None:
        ci, git = ci_git
        label = unique("tags")
        repo = git.new_repo()
        wt = git.worktree(repo)
        sha = git.commit(wt, {".github/workflows/ci.yml": CI.format(label=label),
                              ".github/workflows/release.yml": RELEASE.format(label=label)})
        git.push(wt)
        wait_pipelines(ci, repo, 1)
        git.git(wt, "tag", "-a", "-m", "release", "v1.0")
        git.git(wt, "tag", "nightly")
        git.push(wt, "--tags")
        ps = wait_pipelines(ci, repo, 2)
        assert [(p["name"], p["ref"]) for p in ps] == [
            ("CI", "refs/heads/main"), ("Release", "refs/tags/v1.0")]
        assert ps[1]["sha"] == sha  # the annotated tag peeled to its commit
        git.push(wt, "main:feature/x")
        assert len(wait_pipelines(ci, repo, 3)) == 3
        git.push(wt, ":feature/x", ":refs/tags/v1.0")
        git.push(wt, "main:refs/heads/feature/y")
        final = wait_pipelines(ci, repo, 4)
        assert [p["ref"] for p in final][-1] == "refs/heads/feature/y"
        assert len(final) == 4  # the two deletions started nothing

    def test_an_invalid_workflow_gives_a_failed_pipeline_with_located_errors(
        self, ci_git: tuple[CiServer, GitServer]
    ) -> None:
        ci, git = ci_git
        repo = git.new_repo()
        wt = git.worktree(repo)
        sha = git.commit(wt, {".github/workflows/bad.yml": """
            on: push
            jobs:
              build:
                runs-on: x
                steps:
                  - run: echo ${{ github.sha
              other:
                needs: missing
                runs-on: x
                steps: [{run: "true"}]
            """})
        git.push(wt)
        [p] = wait_pipelines(ci, repo, 1)
        assert (p["status"], p["conclusion"]) == ("completed", "failure")
        assert p["jobs"] == []
        assert len(p["errors"]) == 2
        assert all(e.startswith(".github/workflows/bad.yml:") for e in p["errors"])
        assert any("missing" in e for e in p["errors"])
        assert ci.get(f"/statuses/{repo}/{sha}").json()["state"] == "error"
        assert ci.post(f"/pipelines/{p['id']}/rerun").status_code == 409


class TestDispatch:
    """workflow_dispatch with typed inputs."""

    WORKFLOW = """
    name: Manual
    on:
      workflow_dispatch:
        inputs:
          level: {{type: choice, options: [low, high], default: low}}
          count: {{type: number, required: true}}
          dry: {{type: boolean}}
    jobs:
      run: {{runs-on: {label}, steps: [{{run: "echo ${{{{ inputs.level }}}}"}}]}}
    """

    def test_dispatch_with_inputs_and_its_refusals(self, ci_git: tuple[CiServer, GitServer]) -> None:
        ci, git = ci_git
        label = unique("dispatch")
        repo = git.new_repo()
        wt = git.worktree(repo)
        sha = git.commit(wt, {".github/workflows/manual.yml": self.WORKFLOW.format(label=label),
                              ".github/workflows/ci.yml": CI.format(label=label + "-ci")})
        git.push(wt)
        body = {"repo": repo, "workflow": "manual.yml", "ref": "main",
                "inputs": {"count": "3", "dry": "true"}}
        response = ci.post("/dispatch", json=body)
        assert response.status_code == 201, response.text
        p = response.json()
        assert (p["event"], p["ref"], p["sha"]) == ("workflow_dispatch", "refs/heads/main", sha)
        assert p["inputs"] == {"level": "low", "count": 3, "dry": True}
        job = ci.runner(label).must_claim()
        assert job.a["contexts"]["inputs"] == {"level": "low", "count": 3, "dry": True}
        assert job.a["contexts"]["github"]["event_name"] == "workflow_dispatch"
        job.finish()

        def refused(status: int, **change: Any) -> str:
            response = ci.post("/dispatch", json={**body, **change})
            assert response.status_code == status, response.text
            return str(response.json()["error"])

        assert "must be one of" in refused(400, inputs={"count": 1, "level": "max"})
        assert "must be a number" in refused(400, inputs={"count": "many"})
        assert "required" in refused(400, inputs={})
        assert "unknown input" in refused(400, inputs={"count": 1, "colour": "red"})
        assert "no workflow_dispatch" in refused(400, workflow=".github/workflows/ci.yml")
        assert "no branch or tag" in refused(400, ref="nope")
        refused(404, workflow="missing.yml")
        refused(404, repo="no-such-repo")
        token = ci.token("pipelines:read")
        assert ci.post("/dispatch", json=body,
                       headers={"Authorization": f"Bearer {token}"}).status_code == 403
