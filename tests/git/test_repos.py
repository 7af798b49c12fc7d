"""Creating, listing, reading and deleting repositories through the API."""

from __future__ import annotations

import subprocess

import pytest

from shipyard.git import create_app
from shipyard.service import Settings
from tests.git.conftest import Served
from tests.helpers.databases import service_settings
from tests.helpers.servers import serve_app


class TestCreate:
    """POST /repos."""

    def test_create_answers_the_repo_and_makes_a_bare_repository_on_main(self, served: Served) -> None:
        """A new repository is a bare git repo whose HEAD is main, accepting pushes over HTTP."""
        response = served.api("POST", "/repos", json={"name": "acme/widgets", "description": "the widgets"})
        assert response.status_code == 201, response.text
        body = response.json()
        assert body["name"] == "acme/widgets"
        assert body["description"] == "the widgets"
        assert body["default_branch"] == "main"
        assert body["clone_url"] == f"http://127.0.0.1:{served.settings.port}/acme/widgets.git"
        assert isinstance(body["created_at"], float)
        git_dir = served.settings.data_dir / "repos" / "acme" / "widgets.git"
        assert (git_dir / "HEAD").read_text().strip() == "ref: refs/heads/main"
        out = subprocess.run(
            ["git", f"--git-dir={git_dir}", "config", "--get", "http.receivepack"],
            capture_output=True, text=True, check=True,
        )
        assert out.stdout.strip() == "true"
        got = served.api("GET", "/repos/acme/widgets")
        assert got.status_code == 200
        assert got.json() == body

    def test_create_emits_repo_created(self, served: Served) -> None:
        cursor = served.last_event_id()
        name = served.new_repo("created")
        kinds = [(e["kind"], e["payload"]) for e in served.events_after(cursor)]
        assert kinds == [("repo.created", {"repo": name})]

    def test_an_existing_name_is_409(self, served: Served) -> None:
        name = served.new_repo("dup")
        response = served.api("POST", "/repos", json={"name": name})
        assert response.status_code == 409
        assert "already exists" in response.json()["error"]

    @pytest.mark.parametrize("bad", [
        "", "-x", ".hidden", "a/b/c", "a//b", "/a", "a/", "x.git", "acme/x.GIT", "a b", "a\nb",
        "ü", "a" * 101, "acme/refs", "acme/commits", "acme/tree", "acme/blob", "acme/files",
        "acme/compare", "..", "a/..",
    ])
    def test_invalid_names_are_400_with_the_reason(self, served_sqlite: Served, bad: str) -> None:
        response = served_sqlite.api("POST", "/repos", json={"name": bad})
        assert response.status_code in (400, 422), response.text
        assert response.json()["error"]

    def test_a_reserved_word_is_fine_as_a_whole_name_or_an_owner(self, served_sqlite: Served) -> None:
        """Only the second part of owner/name may not be a route word."""
        for name in ("refs", "tree/app"):
            assert served_sqlite.api("POST", "/repos", json={"name": name}).status_code == 201
        assert served_sqlite.api("GET", "/repos/refs").json()["name"] == "refs"
        assert served_sqlite.api("GET", "/repos/refs/refs").json()["refs"] == {}
        assert served_sqlite.api("GET", "/repos/tree/app").json()["name"] == "tree/app"

    def test_malformed_json_is_422(self, served_sqlite: Served) -> None:
        response = served_sqlite.api(
            "POST", "/repos", content=b"{not json", headers={"Content-Type": "application/json"}
        )
        assert response.status_code == 422
        assert response.json()["error"]

    @pytest.mark.parametrize("body", [{"name": 5}, {"description": "no name"}, {"name": "ok", "owner": "x"}, []])
    def test_wrong_shapes_are_422(self, served_sqlite: Served, body: object) -> None:
        response = served_sqlite.api("POST", "/repos", json=body)
        assert response.status_code == 422
        assert response.json()["error"]

    def test_an_oversized_body_is_413(self, served_sqlite: Served) -> None:
        big = {"name": "big", "description": "x" * (2 << 20)}
        response = served_sqlite.api("POST", "/repos", json=big)
        assert response.status_code == 413
        assert "limit" in response.json()["error"]

    def test_creating_needs_repos_write(self, served_sqlite: Served) -> None:
        for scopes in (["repos:read"], ["repo:x:write"], ["feeds:read"]):
            response = served_sqlite.api("POST", "/repos", token=served_sqlite.token(*scopes), json={"name": "x"})
            assert response.status_code == 403, scopes
            assert "repos:write" in response.json()["error"]
        response = served_sqlite.api("POST", "/repos", token=served_sqlite.token("repos:write"), json={"name": "by-writer"})
        assert response.status_code == 201

    def test_no_token_is_401_with_a_basic_challenge(self, served_sqlite: Served) -> None:
        response = served_sqlite.api("POST", "/repos", token="", json={"name": "x"})
        assert response.status_code == 401
        assert response.headers["www-authenticate"] == 'Basic realm="shipyard"'

    def test_a_forged_token_is_401(self, served_sqlite: Served) -> None:
        forged = served_sqlite.admin[:-4] + "AAAA"
        response = served_sqlite.api("GET", "/repos", token=forged)
        assert response.status_code == 401
        assert "signature" in response.json()["error"]

    def test_a_leftover_directory_without_a_row_is_set_aside(self, served_sqlite: Served) -> None:
        """A directory a crash left behind does not stop the name being created, nor leak in."""
        leftover = served_sqlite.settings.data_dir / "repos" / "leftover.git"
        leftover.mkdir(parents=True)
        (leftover / "junk").write_text("old")
        assert served_sqlite.api("GET", "/repos/leftover").status_code == 404
        assert served_sqlite.api("POST", "/repos", json={"name": "leftover"}).status_code == 201
        assert not (leftover / "junk").exists()
        assert (leftover / "HEAD").exists()


class TestReadAndList:
    """GET /repos and GET /repos/{name}."""

    def test_list_is_by_name_and_pages(self, served: Served) -> None:
        for name in ("list-b", "list-a", "list-c"):
            assert served.api("POST", "/repos", json={"name": name}).status_code == 201
        names = [r["name"] for r in served.api("GET", "/repos", params={"limit": 500}).json()]
        assert names == sorted(names)
        assert {"list-a", "list-b", "list-c"} <= set(names)
        page = served.api("GET", "/repos", params={"after": "list-a", "limit": 2}).json()
        assert [r["name"] for r in page] == ["list-b", "list-c"]

    def test_any_token_may_list(self, served_sqlite: Served) -> None:
        response = served_sqlite.api("GET", "/repos", token=served_sqlite.token("feeds:read"))
        assert response.status_code == 200

    @pytest.mark.parametrize("limit", ["0", "501", "x"])
    def test_bad_limits_are_422(self, served_sqlite: Served, limit: str) -> None:
        assert served_sqlite.api("GET", "/repos", params={"limit": limit}).status_code == 422

    def test_unknown_repo_is_404(self, served_sqlite: Served) -> None:
        for path in ("/repos/nope", "/repos/acme/nope"):
            response = served_sqlite.api("GET", path)
            assert response.status_code == 404
            assert "no repository" in response.json()["error"]

    def test_reading_needs_a_read_scope_for_that_repo(self, served_sqlite: Served) -> None:
        name = served_sqlite.new_repo("scoped")
        for scopes in (["repos:read"], ["repos:write"], [f"repo:{name}:read"], [f"repo:{name}:write"]):
            assert served_sqlite.api("GET", f"/repos/{name}", token=served_sqlite.token(*scopes)).status_code == 200
        for scopes in (["repo:other:read"], ["feeds:read"]):
            response = served_sqlite.api("GET", f"/repos/{name}", token=served_sqlite.token(*scopes))
            assert response.status_code == 403
            assert name in response.json()["error"]

    def test_a_bad_name_in_the_url_is_400(self, served_sqlite: Served) -> None:
        response = served_sqlite.api("GET", "/repos/-x")
        assert response.status_code == 400
        assert "invalid repository name" in response.json()["error"]


class TestDelete:
    """DELETE /repos/{name}."""

    def test_delete_records_repo_deleted_and_removes_the_directory(self, served: Served) -> None:
        name = served.new_repo("del/ete")
        git_dir = served.settings.data_dir / "repos" / f"{name}.git"
        assert git_dir.is_dir()
        cursor = served.last_event_id()
        response = served.api("DELETE", f"/repos/{name}")
        assert response.status_code == 204
        assert not git_dir.exists()
        assert served.api("GET", f"/repos/{name}").status_code == 404
        assert [(e["kind"], e["payload"]) for e in served.events_after(cursor)] == [
            ("repo.deleted", {"repo": name})
        ]
        trash = served.settings.data_dir / "repos" / ".trash"
        assert list(trash.iterdir()) == []

    def test_delete_of_a_pushed_repo_then_create_again_starts_empty(self, served: Served) -> None:
        name = served.new_repo("again")
        wt = served.checkout(name)
        served.commit(wt, {"a.txt": "a"})
        served.git(wt, "push", "-q", "origin", "main")
        assert served.api("DELETE", f"/repos/{name}").status_code == 204
        cursor = served.last_event_id()
        assert served.api("POST", "/repos", json={"name": name}).status_code == 201
        assert served.api("GET", f"/repos/{name}/refs").json()["refs"] == {}
        served.git(wt, "push", "-q", "origin", "main")
        assert [r for r, _b, _a in served.ref_events(cursor, name)] == ["refs/heads/main"]

    def test_delete_unknown_is_404_and_needs_repos_write(self, served_sqlite: Served) -> None:
        assert served_sqlite.api("DELETE", "/repos/never-was").status_code == 404
        name = served_sqlite.new_repo("keep")
        response = served_sqlite.api("DELETE", f"/repos/{name}", token=served_sqlite.token(f"repo:{name}:write"))
        assert response.status_code == 403
        assert served_sqlite.api("GET", f"/repos/{name}").status_code == 200


def test_clone_url_uses_the_public_url(tmp_path_factory: pytest.TempPathFactory) -> None:
    """Repo.clone_url is built from the public_url setting."""
    base = tmp_path_factory.mktemp("public")
    with service_settings("sqlite", base / "data", public_url="https://git.example.com/") as settings:
        _check_public_url(settings)


def _check_public_url(settings: Settings) -> None:
    import httpx

    from shipyard.service import TokenSigner

    token = TokenSigner(settings.signing_key()).issue("t", ["admin"])
    with serve_app(create_app(settings)) as url:
        response = httpx.post(f"{url}/repos", json={"name": "o/n"}, headers={"Authorization": f"Bearer {token}"})
    assert response.json()["clone_url"] == "https://git.example.com/o/n.git"


def test_health_and_metrics(served_sqlite: Served) -> None:
    """/healthz answers ok; /metrics carries the git service's own counters."""
    assert served_sqlite.api("GET", "/healthz").json() == {"status": "ok", "service": "git"}
    text = served_sqlite.api("GET", "/metrics").text
    for metric in ("shipyard_git_pushes_total", "shipyard_git_events_total", "shipyard_git_repositories"):
        assert metric in text or metric.removesuffix("_total") in text


def test_openapi_describes_every_route(served_sqlite: Served) -> None:
    """The OpenAPI document lists the JSON API and the smart HTTP routes, names as {name}."""
    spec = served_sqlite.api("GET", "/openapi.json").json()
    assert set(spec["paths"]) >= {
        "/repos", "/repos/{name}", "/repos/{name}/refs", "/repos/{name}/commits/{rev}",
        "/repos/{name}/tree", "/repos/{name}/blob", "/repos/{name}/files", "/repos/{name}/compare",
        "/events", "/{name}.git/info/refs", "/{name}.git/git-upload-pack", "/{name}.git/git-receive-pack",
    }
    assert "RepoOut" in spec["components"]["schemas"]
