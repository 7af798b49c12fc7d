"""The gateway's own routes: whoami, tokens, aggregated health, metrics."""

from __future__ import annotations

import base64
import time

import httpx
import pytest

from shipyard.service import TokenSigner
from tests.gateway.conftest import Gate


class TestWhoAmI:
    """/api/v1/whoami tells who a token belongs to."""

    def test_whoami_answers_subject_scopes_and_expiry(self, gate: Gate):
        token = gate.signer.issue("alice", ["repos:write", "feeds:read"], ttl=60)
        with gate.client(token) as c:
            body = c.get("/api/v1/whoami").json()
        assert body["subject"] == "alice"
        assert body["scopes"] == ["feeds:read", "repos:write"]
        assert body["expires_at"] == pytest.approx(time.time() + 60, abs=5)

    def test_whoami_accepts_the_token_as_basic_password(self, gate: Gate):
        basic = base64.b64encode(f"git:{gate.admin}".encode()).decode()
        r = httpx.get(gate.url + "/api/v1/whoami", headers={"Authorization": f"Basic {basic}"})
        assert r.json()["subject"] == "admin"

    def test_no_token_is_401_with_basic_challenge(self, gate: Gate):
        r = httpx.get(gate.url + "/api/v1/whoami")
        assert r.status_code == 401
        assert r.headers["www-authenticate"] == 'Basic realm="shipyard"'
        assert "token" in r.json()["error"]

    def test_forged_token_is_401(self, gate: Gate):
        forged = TokenSigner(b"another-secret-0123456789").issue("admin", ["admin"])
        with gate.client(forged) as c:
            r = c.get("/api/v1/whoami")
        assert r.status_code == 401
        assert r.json() == {"error": "invalid token signature"}

    def test_expired_token_is_401(self, gate: Gate):
        old = TokenSigner(gate.signer._secret, now=lambda: time.time() - 7200).issue(
            "bob", [], ttl=60
        )
        with gate.client(old) as c:
            r = c.get("/api/v1/whoami")
        assert r.status_code == 401
        assert r.json() == {"error": "token expired"}

    def test_malformed_token_is_401(self, gate: Gate):
        with gate.client("not-a-token") as c:
            assert c.get("/api/v1/whoami").status_code == 401


class TestTokens:
    """/api/v1/tokens issues signed tokens, to admins only."""

    def test_admin_issues_a_working_token(self, gate: Gate):
        with gate.client(gate.admin) as c:
            r = c.post("/api/v1/tokens", json={"subject": "ci-bot", "scopes": ["repo:demo:read"]})
        assert r.status_code == 201
        token = r.json()["token"]
        claims = gate.signer.verify(token)
        assert claims.subject == "ci-bot"
        assert claims.scopes == {"repo:demo:read"}
        assert claims.expires_at is None
        with gate.client(token) as c:
            assert c.get("/api/v1/whoami").json()["subject"] == "ci-bot"

    def test_ttl_sets_expiry(self, gate: Gate):
        with gate.client(gate.admin) as c:
            r = c.post("/api/v1/tokens", json={"subject": "s", "scopes": [], "ttl": 120})
        assert gate.signer.verify(r.json()["token"]).expires_at == pytest.approx(time.time() + 120, abs=5)

    def test_non_admin_is_403(self, gate: Gate):
        token = gate.signer.issue("carol", ["repos:write"])
        with gate.client(token) as c:
            r = c.post("/api/v1/tokens", json={"subject": "x", "scopes": ["admin"]})
        assert r.status_code == 403
        assert "admin" in r.json()["error"]

    def test_no_token_is_401(self, gate: Gate):
        r = httpx.post(gate.url + "/api/v1/tokens", json={"subject": "x", "scopes": []})
        assert r.status_code == 401

    @pytest.mark.parametrize("body", [
        {"scopes": []},
        {"subject": "", "scopes": []},
        {"subject": "x", "scopes": "admin"},
        {"subject": "x", "scopes": ["repo demo read"]},
        {"subject": "x", "scopes": [], "ttl": -5},
        {"subject": "x", "scopes": [], "ttl": "soon"},
        {"subject": "x", "scopes": [], "extra": 1},
        ["subject"],
    ])
    def test_bad_body_is_422_with_a_message(self, gate: Gate, body: object):
        with gate.client(gate.admin) as c:
            r = c.post("/api/v1/tokens", json=body)
        assert r.status_code == 422
        assert r.json()["error"]

    def test_malformed_json_is_4xx(self, gate: Gate):
        with gate.client(gate.admin) as c:
            r = c.post("/api/v1/tokens", content=b"{not json",
                       headers={"Content-Type": "application/json"})
        assert 400 <= r.status_code < 500
        assert r.json()["error"]

    def test_oversized_body_is_413(self, gate: Gate):
        with gate.client(gate.admin) as c:
            r = c.post("/api/v1/tokens", content=b"x" * (2 << 20),
                       headers={"Content-Type": "application/json"})
        assert r.status_code == 413


class TestHealth:
    """/healthz is 200 only when every service is healthy, and names who is not."""

    def test_all_healthy_is_200(self, gate: Gate):
        r = httpx.get(gate.url + "/healthz")
        assert r.status_code == 200
        assert r.json()["status"] == "ok"

    def test_a_sick_service_is_named(self, gate: Gate):
        gate.apps["store"].state.sick = True  # type: ignore[attr-defined]
        try:
            r = httpx.get(gate.url + "/healthz")
        finally:
            gate.apps["store"].state.sick = False  # type: ignore[attr-defined]
        assert r.status_code == 503
        assert r.json()["error"] == "unhealthy: store (database is locked)"

    def test_down_services_are_named(self, lonely_gate: str):
        r = httpx.get(lonely_gate + "/healthz")
        assert r.status_code == 503
        error = r.json()["error"]
        for name in ("git", "store", "ci"):
            assert f"{name} (not reachable" in error


class TestMetrics:
    """/metrics is the gateway's own, with forwarded requests labelled by route."""

    def test_metrics_count_forwarded_requests_and_upstream_errors(self, gate: Gate, lonely_gate: str):
        with gate.client() as c:
            c.get("/api/v1/pipelines")
        httpx.get(lonely_gate + "/api/v1/pipelines")
        text = httpx.get(gate.url + "/metrics").text
        assert 'route="/api/v1/pipelines..."' in text
        assert 'shipyard_gateway_upstream_response_seconds_count{service="ci"}' in text
        lonely = httpx.get(lonely_gate + "/metrics").text
        assert 'shipyard_gateway_upstream_errors_total{reason="ConnectError",service="ci"}' in lonely
