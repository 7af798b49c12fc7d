"""The API's edges: bad requests get a 4xx with a message, the feed, metrics, schema."""

from __future__ import annotations

import base64
import time

import httpx
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from shipyard.ci import LOG_CHUNK_LIMIT, metadata
from shipyard.service import Database, Settings, TokenSigner
from tests.ci.conftest import CiServer, running_ci, unique


def test_the_migrated_schema_matches_the_tables(settings: Settings) -> None:
    with running_ci(settings):
        pass
    db = Database(*settings.database_for("ci"))
    try:
        with db.engine.connect() as conn:
            context = MigrationContext.configure(conn, opts={"include_schemas": False})
            assert compare_metadata(context, metadata) == []
    finally:
        db.dispose()


class TestBadRequests:
    """Nothing a client sends gets a 500."""

    def test_tokens(self, ci: CiServer) -> None:
        assert ci.http.get("/pipelines", headers={"Authorization": ""}).status_code == 401
        assert httpx.get(f"{ci.url}/pipelines").headers["www-authenticate"].startswith("Basic")
        forged = TokenSigner(b"another-secret-0123456789").issue("x", ["admin"])
        expired = ci.signer.issue("x", ["admin"], ttl=-10)
        for token in (forged, expired, "garbage", "sy_abc.def"):
            response = ci.get("/pipelines", headers={"Authorization": f"Bearer {token}"})
            assert response.status_code == 401 and response.json()["error"]
        basic = base64.b64encode(f"x:{ci.admin}".encode()).decode()
        assert ci.get("/runners", headers={"Authorization": f"Basic {basic}"}).status_code == 200
        reader = ci.token("repos:read")
        assert ci.get("/events", headers={"Authorization": f"Bearer {reader}"}).status_code == 403
        assert ci.post("/pipelines/1/cancel",
                       headers={"Authorization": f"Bearer {reader}"}).status_code == 403
        assert ci.post("/runners/claim", json={}).status_code == 403  # admin is no runner

    def test_job_tokens_only_reach_their_job(self, ci: CiServer) -> None:
        label = unique("scoped")
        ci.create(f"""
        on: push
        jobs:
          a: {{runs-on: {label}, steps: [{{run: "true"}}]}}
          b: {{runs-on: {label}, steps: [{{run: "true"}}]}}
        """)
        runner = ci.runner(label)
        a, b = runner.must_claim(), runner.must_claim()
        assert a.http.post(f"/jobs/{b.id}/log", content=b"x").status_code == 403
        assert a.http.post(f"/jobs/{b.id}/complete", json={"conclusion": "success"}).status_code == 403
        assert a.http.post(f"/jobs/{b.id}/heartbeat").status_code == 403
        assert runner.http.post(f"/jobs/{a.id}/complete",
                                json={"conclusion": "success"}).status_code == 403
        a.finish()
        b.finish()

    def test_unknown_ids_wrong_types_and_oversized_bodies(self, ci: CiServer) -> None:
        for path in ("/pipelines/999999", "/jobs/999999", "/jobs/999999/log"):
            response = ci.get(path)
            assert response.status_code == 404 and response.json()["error"]
        for path in ("/pipelines/999999/cancel", "/pipelines/999999/rerun", "/jobs/999999/cancel",
                     "/jobs/999999/rerun", "/jobs/999999/heartbeat"):
            assert ci.post(path).status_code == 404, path
        assert ci.http.delete("/runners/999999").status_code == 404
        assert ci.get("/pipelines/abc").status_code == 422
        assert ci.get(f"/pipelines/{2**63}").status_code == 422
        assert ci.get("/pipelines/0").status_code == 422
        assert ci.get("/pipelines", params={"limit": 501}).status_code == 422
        assert ci.get("/pipelines", params={"status": "bogus"}).status_code == 422
        assert ci.get("/events", params={"wait": 61}).status_code == 422
        assert ci.post("/dispatch", json={"repo": 5}).status_code == 422
        assert ci.post("/dispatch", content=b"{not json",
                       headers={"content-type": "application/json"}).status_code == 422
        assert ci.post("/dispatch", json=[1, 2]).status_code == 422
        big = {"repo": "x", "workflow": "y", "ref": "main", "inputs": {"a": "x" * (2 << 20)}}
        response = ci.post("/dispatch", json=big)
        assert response.status_code == 413 and response.json()["error"]
        reg = ci.post("/runners/registration-token").json()["token"]
        bad_names = [{"name": ""}, {"name": "a b"}, {"name": "x", "concurrency": 0},
                     {"name": "x", "labels": "linux"}, {"name": "x", "labels": [""]}]
        for body in bad_names:
            response = httpx.post(f"{ci.url}/runners/register", json=body,
                                  headers={"Authorization": f"Bearer {reg}"})
            assert response.status_code == 422, body
        runner = ci.runner(unique("bad"))
        assert runner.http.post("/runners/claim", json={"wait": 100}).status_code == 422
        assert runner.http.post("/runners/claim", json={"wait": "soon"}).status_code == 422

    def test_protocol_bodies(self, ci: CiServer) -> None:
        label = unique("body")
        ci.create(f"""
        on: push
        jobs:
          a: {{runs-on: {label}, steps: [{{run: "true"}}]}}
        """)
        job = ci.runner(label).must_claim()
        assert job.http.post(f"/jobs/{job.id}/log", params={"offset": -1}).status_code == 422
        assert job.http.post(f"/jobs/{job.id}/log", params={"offset": "x"}).status_code == 422
        too_big = b"x" * (LOG_CHUNK_LIMIT + 1)
        assert job.http.post(f"/jobs/{job.id}/log", content=too_big).status_code == 413
        for body in ({"conclusion": "great"}, {"conclusion": "success", "log_size": -1},
                     {"conclusion": "success", "outputs": {"a": {"b": 1}}},
                     {"conclusion": "success", "steps": [{"number": 1, "status": "done"}]}):
            assert job.http.post(f"/jobs/{job.id}/complete", json=body).status_code == 422, body
        assert job.http.post(f"/jobs/{job.id}/steps", json={"steps": "x"}).status_code == 422
        job.finish()


class TestFeedsAndMetrics:
    """The ci feed, statuses of unknown commits, metrics, the runners list."""

    def test_events_feed_long_polls_and_orders(self, ci: CiServer) -> None:
        last = ci.get("/events", params={"after": 0, "limit": 500}).json()
        cursor = last["last_id"]
        while True:
            page = ci.get("/events", params={"after": cursor, "limit": 500}).json()
            if not page["events"]:
                break
            cursor = page["last_id"]
        label = unique("feed")
        started = time.monotonic()
        pid = ci.create(f"""
        on: push
        jobs:
          a: {{runs-on: {label}, steps: [{{run: "true"}}]}}
        """)
        page = ci.get("/events", params={"after": cursor, "wait": 5}).json()
        assert time.monotonic() - started < 4
        kinds = [(e["kind"], e["payload"].get("status")) for e in page["events"]
                 if e["payload"].get("pipeline_id", e["payload"].get("id")) == pid]
        assert kinds[:2] == [("pipeline.updated", "queued"), ("job.updated", "queued")]
        ids = [e["id"] for e in page["events"]]
        assert ids == sorted(ids) and page["last_id"] == ids[-1]
        feeds = ci.token("feeds:read")
        assert ci.get("/events", headers={"Authorization": f"Bearer {feeds}"}).status_code == 200

    def test_statuses_of_an_unknown_commit_and_metrics(self, ci: CiServer) -> None:
        body = ci.get(f"/statuses/owner/none/{'b' * 40}").json()
        assert body == {"sha": "b" * 40, "state": "pending", "statuses": []}
        assert ci.get(f"/statuses/x/{'b' * 65}").status_code == 400
        text = ci.get("/metrics").text
        for name in ("shipyard_ci_jobs_queued ", "shipyard_ci_jobs_started_total",
                     "shipyard_ci_jobs_finished_total", "shipyard_ci_claim_latency_seconds_bucket"):
            assert name in text, name
        assert ci.get("/openapi.json").json()["paths"]["/runners/claim"]
