"""The content API ci reads on every push: refs, commits, trees, blobs, file sets, changed paths."""

from __future__ import annotations

import base64
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.git.conftest import ZERO, Served


@dataclass
class Pushed:
    """A repository with two commits pushed, the second on main."""

    name: str
    worktree: Path
    first: str
    second: str


@pytest.fixture(scope="module")
def pushed(served_sqlite: Served) -> Pushed:
    s = served_sqlite
    assert s.api("POST", "/repos", json={"name": "acme/site"}).status_code == 201
    wt = s.checkout("acme/site")
    first = s.commit(wt, {
        "README.md": "# site\n",
        ".github/workflows/ci.yml": "on: push\n",
        ".github/CODEOWNERS": "* @acme\n",
        ".shipyard/deploy.yml": "env: prod\n",
        "src/app.py": "print(1)\n",
        "src2/other.py": "x = 2\n",
        "data.bin": bytes(range(256)) * 4,
    }, message="first\n\nwith a body")
    second = s.commit(wt, {"src/app.py": "print(2)\n", "docs/guide.md": "guide\n"}, message="second")
    s.git(wt, "push", "-q", "origin", "main", "HEAD~1:refs/heads/feature/old", "HEAD:refs/tags/v1")
    return Pushed("acme/site", wt, first, second)


class TestRefs:
    def test_refs_and_head(self, served_sqlite: Served, pushed: Pushed) -> None:
        body = served_sqlite.api("GET", "/repos/acme/site/refs").json()
        assert body == {
            "refs": {
                "refs/heads/main": pushed.second,
                "refs/heads/feature/old": pushed.first,
                "refs/tags/v1": pushed.second,
            },
            "head": "refs/heads/main",
        }

    def test_an_empty_repository_has_no_refs_but_a_head(self, served_sqlite: Served) -> None:
        name = served_sqlite.new_repo("empty")
        assert served_sqlite.api("GET", f"/repos/{name}/refs").json() == {"refs": {}, "head": "refs/heads/main"}


class TestCommits:
    def test_a_commit_by_branch_tag_sha_and_slashed_ref(self, served_sqlite: Served, pushed: Pushed) -> None:
        s = served_sqlite
        for rev in ("main", "v1", pushed.second, pushed.second[:10], "refs/heads/main", "HEAD"):
            body = s.api("GET", f"/repos/acme/site/commits/{rev}").json()
            assert body["sha"] == pushed.second, rev
            assert body["parents"] == [pushed.first]
            assert body["message"] == "second\n"
        body = s.api("GET", "/repos/acme/site/commits/feature/old").json()
        assert body["sha"] == pushed.first
        assert body["parents"] == []
        assert body["message"] == "first\n\nwith a body\n"
        assert body["author"]["name"] == "Test Author"
        assert body["author"]["email"] == "author@example.com"
        assert isinstance(body["author"]["date"], float) and body["author"]["date"] > 1e9
        assert body["committer"]["email"] == "author@example.com"
        tree = s.git(pushed.worktree, "rev-parse", f"{pushed.first}^{{tree}}").stdout.strip()
        assert body["tree"] == tree

    def test_a_revision_like_a_route_word_on_a_one_part_repo(self, served_sqlite: Served) -> None:
        """/repos/a/commits/commits/x is commit 'commits/x' of a (a/commits cannot exist)."""
        s = served_sqlite
        name = s.new_repo("words")
        wt = s.checkout(name)
        sha = s.commit(wt, {"a": "1"})
        s.git(wt, "push", "-q", "origin", "main:commits/x")
        assert s.api("GET", f"/repos/{name}/commits/commits/x").json()["sha"] == sha

    @pytest.mark.parametrize("rev", ["nope", "main~99", "0" * 40, "main..v1", "main:README.md"])
    def test_unknown_revisions_are_404(self, served_sqlite: Served, pushed: Pushed, rev: str) -> None:
        response = served_sqlite.api("GET", f"/repos/acme/site/commits/{rev}")
        assert response.status_code == 404
        assert "unknown revision" in response.json()["error"]

    @pytest.mark.parametrize("rev", ["--all", "-h", "--output=/tmp/owned", "--exec-path"])
    def test_option_injection_is_refused(self, served_sqlite: Served, pushed: Pushed, rev: str) -> None:
        response = served_sqlite.api("GET", f"/repos/acme/site/commits/{rev}")
        assert response.status_code == 400
        assert "may not start with '-'" in response.json()["error"]
        for path in ("tree", "files", "blob"):
            response = served_sqlite.api("GET", f"/repos/acme/site/{path}", params={"rev": rev, "path": "README.md"})
            assert response.status_code == 400, path
        response = served_sqlite.api("GET", "/repos/acme/site/compare", params={"base": rev, "head": "main"})
        assert response.status_code == 400

    def test_an_empty_revision_is_400(self, served_sqlite: Served, pushed: Pushed) -> None:
        assert served_sqlite.api("GET", "/repos/acme/site/commits/").status_code == 400


class TestTree:
    def test_root_listing(self, served_sqlite: Served, pushed: Pushed) -> None:
        body = served_sqlite.api("GET", "/repos/acme/site/tree", params={"rev": "main"}).json()
        assert body["commit"] == pushed.second
        entries = {e["path"]: e for e in body["entries"]}
        assert set(entries) == {".github", ".shipyard", "README.md", "data.bin", "docs", "src", "src2"}
        assert entries["src"]["type"] == "tree" and entries["src"]["size"] is None
        assert entries["src"]["mode"] == "040000"
        assert entries["README.md"] == {
            "path": "README.md", "type": "blob", "mode": "100644",
            "sha": entries["README.md"]["sha"], "size": 7,
        }

    def test_a_subdirectory_recursive_with_paths_from_the_root(self, served_sqlite: Served, pushed: Pushed) -> None:
        body = served_sqlite.api(
            "GET", "/repos/acme/site/tree", params={"rev": pushed.first, "path": ".github/", "recursive": "true"}
        ).json()
        assert [(e["path"], e["type"]) for e in body["entries"]] == [
            (".github/CODEOWNERS", "blob"), (".github/workflows", "tree"), (".github/workflows/ci.yml", "blob"),
        ]

    def test_rev_defaults_to_head(self, served_sqlite: Served, pushed: Pushed) -> None:
        assert served_sqlite.api("GET", "/repos/acme/site/tree").json()["commit"] == pushed.second

    @pytest.mark.parametrize("path", ["nope", "README.md", "src/app.py/x"])
    def test_a_missing_path_or_a_file_is_404(self, served_sqlite: Served, pushed: Pushed, path: str) -> None:
        response = served_sqlite.api("GET", "/repos/acme/site/tree", params={"path": path})
        assert response.status_code == 404
        assert response.json()["error"]

    @pytest.mark.parametrize("path", ["../etc", "src/../..", "a//b", "./src"])
    def test_path_tricks_are_400(self, served_sqlite: Served, pushed: Pushed, path: str) -> None:
        response = served_sqlite.api("GET", "/repos/acme/site/tree", params={"path": path})
        assert response.status_code == 400
        assert "invalid path" in response.json()["error"]


class TestBlob:
    def test_raw_bytes_text_and_binary(self, served_sqlite: Served, pushed: Pushed) -> None:
        s = served_sqlite
        response = s.api("GET", "/repos/acme/site/blob", params={"rev": "main", "path": "src/app.py"})
        assert response.status_code == 200
        assert response.headers["content-type"] == "application/octet-stream"
        assert response.content == b"print(2)\n"
        old = s.api("GET", "/repos/acme/site/blob", params={"rev": pushed.first, "path": "/src/app.py"})
        assert old.content == b"print(1)\n"
        binary = s.api("GET", "/repos/acme/site/blob", params={"path": "data.bin"})
        assert binary.content == bytes(range(256)) * 4
        assert binary.headers["content-length"] == "1024"

    @pytest.mark.parametrize("path", ["src", "", "nope.txt", "docs/guide.md/x"])
    def test_not_a_file_is_404(self, served_sqlite: Served, pushed: Pushed, path: str) -> None:
        response = served_sqlite.api("GET", "/repos/acme/site/blob", params={"path": path})
        assert response.status_code == 404
        assert response.json()["error"]

    def test_a_file_absent_at_an_older_commit_is_404(self, served_sqlite: Served, pushed: Pushed) -> None:
        response = served_sqlite.api("GET", "/repos/acme/site/blob", params={"rev": pushed.first, "path": "docs/guide.md"})
        assert response.status_code == 404


class TestFiles:
    def test_every_file_under_the_prefixes(self, served_sqlite: Served, pushed: Pushed) -> None:
        body = served_sqlite.api(
            "GET", "/repos/acme/site/files", params={"rev": "main", "prefix": [".github/", ".shipyard/"]}
        ).json()
        assert body["sha"] == pushed.second
        files = {p: base64.b64decode(c).decode() for p, c in body["files"].items()}
        assert files == {
            ".github/workflows/ci.yml": "on: push\n",
            ".github/CODEOWNERS": "* @acme\n",
            ".shipyard/deploy.yml": "env: prod\n",
        }

    def test_a_prefix_is_a_string_prefix(self, served_sqlite: Served, pushed: Pushed) -> None:
        """'src' matches src/ and src2/; 'src/' only src/."""
        files = served_sqlite.api("GET", "/repos/acme/site/files", params={"prefix": "src"}).json()["files"]
        assert set(files) == {"src/app.py", "src2/other.py"}
        files = served_sqlite.api("GET", "/repos/acme/site/files", params={"prefix": "src/"}).json()["files"]
        assert set(files) == {"src/app.py"}

    def test_no_prefix_is_every_file_and_binary_survives(self, served_sqlite: Served, pushed: Pushed) -> None:
        files = served_sqlite.api("GET", "/repos/acme/site/files", params={"rev": pushed.first}).json()["files"]
        assert len(files) == 7
        assert base64.b64decode(files["data.bin"]) == bytes(range(256)) * 4

    def test_a_prefix_matching_nothing_is_empty(self, served_sqlite: Served, pushed: Pushed) -> None:
        body = served_sqlite.api("GET", "/repos/acme/site/files", params={"prefix": ".gitlab/"}).json()
        assert body == {"sha": pushed.second, "files": {}}

    def test_limits_of_files_and_bytes_are_400(self, served_sqlite: Served) -> None:
        s = served_sqlite
        name = s.new_repo("huge")
        wt = s.checkout(name)
        s.commit(wt, {**{f"many/f{i}.txt": str(i) for i in range(1001)},
                      "big/blob.bin": b"x" * ((8 << 20) + 1), "ok/one.txt": "fine"})
        s.git(wt, "push", "-q", "origin", "main")
        response = s.api("GET", f"/repos/{name}/files", params={"prefix": "many/"})
        assert response.status_code == 400
        assert "1001 files" in response.json()["error"]
        response = s.api("GET", f"/repos/{name}/files", params={"prefix": "big/"})
        assert response.status_code == 400
        assert "bytes" in response.json()["error"]
        assert s.api("GET", f"/repos/{name}/files", params={"prefix": "ok/"}).json()["files"] == {
            "ok/one.txt": base64.b64encode(b"fine").decode()
        }


class TestCompare:
    def test_changed_paths_between_two_commits(self, served_sqlite: Served, pushed: Pushed) -> None:
        body = served_sqlite.api(
            "GET", "/repos/acme/site/compare", params={"base": pushed.first, "head": "main"}
        ).json()
        assert body == {"base": pushed.first, "head": pushed.second, "files": ["docs/guide.md", "src/app.py"]}

    def test_a_deleted_path_is_changed(self, served_sqlite: Served, pushed: Pushed) -> None:
        body = served_sqlite.api(
            "GET", "/repos/acme/site/compare", params={"base": pushed.second, "head": pushed.first}
        ).json()
        assert body["files"] == ["docs/guide.md", "src/app.py"]

    def test_a_zero_base_is_every_path_of_head(self, served_sqlite: Served, pushed: Pushed) -> None:
        body = served_sqlite.api("GET", "/repos/acme/site/compare", params={"base": ZERO, "head": "v1"}).json()
        assert body["base"] == ZERO
        assert body["head"] == pushed.second
        assert body["files"] == sorted([
            ".github/CODEOWNERS", ".github/workflows/ci.yml", ".shipyard/deploy.yml", "README.md",
            "data.bin", "docs/guide.md", "src/app.py", "src2/other.py",
        ])

    def test_same_commit_is_no_change(self, served_sqlite: Served, pushed: Pushed) -> None:
        body = served_sqlite.api("GET", "/repos/acme/site/compare", params={"base": "main", "head": "main"}).json()
        assert body["files"] == []

    def test_unknown_or_missing_revisions(self, served_sqlite: Served, pushed: Pushed) -> None:
        s = served_sqlite
        response = s.api("GET", "/repos/acme/site/compare", params={"base": "f" * 40, "head": "main"})
        assert response.status_code == 404
        response = s.api("GET", "/repos/acme/site/compare", params={"base": pushed.first})
        assert response.status_code == 422


class TestAccess:
    def test_content_needs_read_scope_and_a_known_repo(self, served_sqlite: Served, pushed: Pushed) -> None:
        s = served_sqlite
        reader = s.token("repo:acme/site:read")
        assert s.api("GET", "/repos/acme/site/refs", token=reader).status_code == 200
        assert s.api("GET", "/repos/acme/site/files", token=reader).status_code == 200
        other = s.token("repo:acme/other:read")
        for path in ("refs", "commits/main", "tree", "blob?path=README.md", "files", f"compare?base={ZERO}&head=main"):
            response = s.api("GET", f"/repos/acme/site/{path}", token=other)
            assert response.status_code == 403, path
        for path in ("refs", "commits/main", "tree", "files"):
            assert s.api("GET", f"/repos/acme/nope/{path}").status_code == 404
        assert s.api("GET", "/repos/acme/site/refs", token="").status_code == 401
