"""Real jobs using the built-in artifact and cache actions against a served store."""

from __future__ import annotations

from pathlib import Path

from shipyard.store import RemoteArtifactStore, RemoteCacheStore
from shipyard.workflow._runtime import Conclusion
from shipyard.workflow.actions import RunServices
from tests.helpers.jobrun import run_job
from tests.store.conftest import Store

WORKFLOW = """
on: push
jobs:
  build:
    runs-on: ubuntu-latest
    steps:
      - run: |
          mkdir -p out/docs deps
          echo "built artifact" > out/app.txt
          echo "readme" > out/docs/README
          echo "dependency" > deps/lib.txt
      - id: up
        uses: actions/upload-artifact@v4
        with:
          name: dist
          path: out
          retention-days: 5
      - run: echo "digest=${{ steps.up.outputs.artifact-digest }}"
      - id: cache
        uses: actions/cache@v4
        with:
          path: deps
          key: deps-${{ github.sha }}
          restore-keys: deps-
      - run: echo "build hit=[${{ steps.cache.outputs.cache-hit }}]"
  use:
    runs-on: ubuntu-latest
    steps:
      - uses: actions/download-artifact@v4
        with:
          name: dist
          path: got
      - run: cat got/app.txt got/docs/README
      - id: cache
        uses: actions/cache@v4
        with:
          path: deps
          key: deps-other
          restore-keys: deps-
      - run: |
          cat deps/lib.txt
          echo "use hit=[${{ steps.cache.outputs.cache-hit }}]"
      - uses: actions/upload-artifact@v4
        continue-on-error: true
        with:
          name: dist
          path: got
"""


def services(store: Store) -> RunServices:
    """What a runner gives a job of pipeline 1 (the run id jobs get in tests) in octo/widgets."""
    client = store.client("job:3", "pipeline:1", "cache:octo/widgets", "repo:octo/widgets:read")
    return RunServices(
        artifacts=RemoteArtifactStore(client), caches=RemoteCacheStore(client, "octo/widgets")
    )


def test_artifacts_and_caches_flow_between_jobs_through_the_store(store: Store, tmp_path: Path) -> None:
    """One job uploads an artifact and saves a cache; the next downloads and restores them."""
    build, rep = run_job(WORKFLOW, tmp_path / "build", job="build", services=services(store))
    assert build.conclusion is Conclusion.SUCCESS, rep.text
    digest = store.http.get("/artifacts/1/dist").json()["digest"]
    assert f"digest={digest}" in rep.text
    assert "build hit=[]" in rep.text
    assert "Cache saved with key: deps-" + "a" * 40 in rep.text

    use, rep = run_job(WORKFLOW, tmp_path / "use", job="use", services=services(store))
    assert use.conclusion is Conclusion.SUCCESS, rep.text
    lines = rep.text.splitlines()
    assert "built artifact" in lines
    assert "readme" in lines
    assert "dependency" in lines
    assert "use hit=[false]" in lines
    errors = [step.error for step in use.steps if step.error]
    assert len(errors) == 1  # the second upload of "dist" is refused
    assert "already exists in run 1" in errors[0]

    artifact = store.http.get("/artifacts/1/dist").json()
    assert artifact["files"] == ["app.txt", "docs/README"]
    assert artifact["expires_at"] is not None
    keys = [c["key"] for c in store.http.get("/caches", params={"repo": "octo/widgets"}).json()]
    assert keys == ["deps-other", "deps-" + "a" * 40]
