"""actions/checkout against real git repositories made in tmp_path."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import pytest

from shipyard.errors import ActionError
from shipyard.workflow._runtime import CheckoutSource
from shipyard.workflow.actions import _checkout
from tests.helpers.githttp import serve_git
from tests.helpers.gitrepo import git
from tests.workflow.actions._host import Host


@pytest.fixture
def origin(tmp_path: Path) -> Path:
    """A repository with three commits on main, a tag on the second, a feature branch."""
    repo = tmp_path / "origin"
    repo.mkdir()
    git(repo, "init", "-q", "-b", "main")
    for i in (1, 2, 3):
        (repo / "file.txt").write_text(f"v{i}\n")
        (repo / f"only{i}.txt").write_text("x")
        git(repo, "add", "-A")
        git(repo, "commit", "-q", "-m", f"commit {i}")
        if i == 2:
            git(repo, "tag", "-a", "v2", "-m", "release 2")
    git(repo, "checkout", "-q", "-b", "feature", "HEAD~2")
    (repo / "feature.txt").write_text("f")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "feature")
    git(repo, "checkout", "-q", "main")
    return repo


def source(repo: Path, ref: str = "refs/heads/main", rev: str = "main") -> CheckoutSource:
    return CheckoutSource(url=str(repo), sha=git(repo, "rev-parse", f"{rev}^{{commit}}"), ref=ref)


class TestCheckout:
    def test_branch_is_checked_out_by_name_at_the_run_commit(self, make_host: Callable[..., Host], origin: Path) -> None:
        """A push to main gives branch main at github.sha, tracking origin/main, shallow."""
        host = make_host(source=source(origin))
        host.uses("actions/checkout")
        ws = host.workspace
        assert (ws / "file.txt").read_text() == "v3\n"
        assert git(ws, "rev-parse", "--abbrev-ref", "HEAD") == "main"
        assert git(ws, "rev-parse", "--abbrev-ref", "main@{upstream}") == "origin/main"
        assert git(ws, "rev-list", "--count", "HEAD") == "1"
        assert host.outputs == {"ref": "refs/heads/main", "commit": git(origin, "rev-parse", "main")}

    def test_the_run_commit_wins_over_a_moved_branch(self, make_host: Callable[..., Host], origin: Path) -> None:
        """The commit that triggered the run is checked out even if the branch moved on."""
        older = CheckoutSource(str(origin), git(origin, "rev-parse", "main~1"), "refs/heads/main")
        host = make_host(source=older)
        host.uses("actions/checkout", fetch_depth="0")
        assert (host.workspace / "file.txt").read_text() == "v2\n"
        assert git(host.workspace, "rev-parse", "HEAD") == older.sha
        assert git(host.workspace, "rev-parse", "--abbrev-ref", "HEAD") == "main"

    def test_tag_is_checked_out_detached(self, make_host: Callable[..., Host], origin: Path) -> None:
        """A tag push checks out the tagged commit with a detached HEAD."""
        host = make_host(source=source(origin, "refs/tags/v2", "v2"))
        host.uses("actions/checkout")
        assert (host.workspace / "file.txt").read_text() == "v2\n"
        assert git(host.workspace, "rev-parse", "--abbrev-ref", "HEAD") == "HEAD"
        assert host.outputs["ref"] == "refs/tags/v2"

    def test_ref_input_with_a_sha_checks_out_that_commit(self, make_host: Callable[..., Host], origin: Path) -> None:
        """ref: <sha> checks out that commit, detached."""
        first = git(origin, "rev-parse", "main~2")
        host = make_host(source=source(origin))
        host.uses("actions/checkout", ref=first)
        assert (host.workspace / "file.txt").read_text() == "v1\n"
        assert host.outputs["commit"] == first

    def test_ref_input_with_a_branch_or_tag_name(self, make_host: Callable[..., Host], origin: Path) -> None:
        """ref: feature checks out that branch; ref: v2 that tag (annotated, peeled)."""
        host = make_host(source=source(origin))
        host.uses("actions/checkout", ref="feature")
        assert (host.workspace / "feature.txt").exists()
        assert git(host.workspace, "rev-parse", "--abbrev-ref", "HEAD") == "feature"
        host.uses("actions/checkout", ref="v2")
        assert (host.workspace / "file.txt").read_text() == "v2\n"
        assert not (host.workspace / "feature.txt").exists()
        with pytest.raises(ActionError, match="could not be found"):
            host.uses("actions/checkout", ref="no-such-branch")

    def test_fetch_depth_zero_brings_all_history_and_tags(self, make_host: Callable[..., Host], origin: Path) -> None:
        """fetch-depth: 0 gives every commit, the other branches and the tags."""
        host = make_host(source=source(origin))
        host.uses("actions/checkout", fetch_depth="0")
        ws = host.workspace
        assert git(ws, "rev-list", "--count", "HEAD") == "3"
        assert git(ws, "tag") == "v2"
        assert "origin/feature" in git(ws, "branch", "-r")
        assert git(ws, "describe", "--tags").startswith("v2-1-")

    def test_fetch_depth_zero_over_file_url(self, make_host: Callable[..., Host], origin: Path) -> None:
        """A file:// URL (no shared clone) still yields the full history."""
        src = source(origin)
        host = make_host(source=CheckoutSource("file://" + str(origin), src.sha, src.ref))
        host.uses("actions/checkout", fetch_depth="0")
        assert git(host.workspace, "rev-list", "--count", "HEAD") == "3"
        assert git(host.workspace, "tag") == "v2"

    def test_fetch_depth_two_and_fetch_tags(self, make_host: Callable[..., Host], origin: Path) -> None:
        """fetch-depth: 2 gives two commits and no tags; fetch-tags adds the tags."""
        host = make_host(source=source(origin))
        host.uses("actions/checkout", fetch_depth="2")
        assert git(host.workspace, "rev-list", "--count", "HEAD") == "2"
        assert git(host.workspace, "tag") == ""
        host = make_host(source=source(origin))
        host.uses("actions/checkout", fetch_tags="true")
        assert git(host.workspace, "rev-list", "--count", "HEAD") == "1"
        assert git(host.workspace, "tag") == "v2"

    def test_path_puts_the_repository_in_a_subdirectory(self, make_host: Callable[..., Host], origin: Path) -> None:
        """path: places the checkout under the workspace; escaping it is refused."""
        host = make_host(source=source(origin))
        host.uses("actions/checkout", path="src/app")
        assert (host.workspace / "src/app/file.txt").exists()
        with pytest.raises(ActionError, match="is not under"):
            host.uses("actions/checkout", path="../elsewhere")

    def test_clean_removes_untracked_files_and_local_changes(self, make_host: Callable[..., Host], origin: Path) -> None:
        """clean: true (default) removes leftovers; clean: false keeps untracked files."""
        host = make_host(source=source(origin))
        host.uses("actions/checkout")
        (host.workspace / "untracked.txt").write_text("left over")
        (host.workspace / "file.txt").write_text("edited")
        host.uses("actions/checkout", clean="false")
        assert (host.workspace / "untracked.txt").exists()
        assert (host.workspace / "file.txt").read_text() == "v3\n"
        host.uses("actions/checkout")
        assert not (host.workspace / "untracked.txt").exists()

    def test_a_folder_holding_something_else_is_emptied(self, make_host: Callable[..., Host], origin: Path) -> None:
        """Files in the target that are not this repository are deleted first."""
        host = make_host(source=source(origin))
        (host.workspace / "stale.txt").write_text("old")
        host.uses("actions/checkout")
        assert not (host.workspace / "stale.txt").exists()

    def test_sparse_checkout(self, make_host: Callable[..., Host], origin: Path) -> None:
        """sparse-checkout limits the working tree to the given patterns."""
        host = make_host(source=source(origin))
        host.uses("actions/checkout", sparse_checkout="only1.txt", sparse_checkout_cone_mode="false")
        assert sorted(p.name for p in host.workspace.iterdir() if p.name != ".git") == ["only1.txt"]

    def test_submodules_are_checked_out(self, tmp_path: Path, make_host: Callable[..., Host], origin: Path) -> None:
        """submodules: true initialises submodules from local URLs."""
        lib = tmp_path / "lib"
        lib.mkdir()
        git(lib, "init", "-q", "-b", "main")
        (lib / "lib.txt").write_text("lib")
        git(lib, "add", "-A")
        git(lib, "commit", "-q", "-m", "lib")
        git(origin, "-c", "protocol.file.allow=always", "submodule", "add", "-q", str(lib), "vendor/lib")
        git(origin, "commit", "-q", "-m", "add submodule")
        host = make_host(source=source(origin))
        host.uses("actions/checkout", submodules="true")
        assert (host.workspace / "vendor/lib/lib.txt").read_text() == "lib"
        host2 = make_host(source=source(origin))
        host2.uses("actions/checkout")
        assert not (host2.workspace / "vendor/lib/lib.txt").exists()

    def test_another_repository_by_local_path(self, tmp_path: Path, make_host: Callable[..., Host], origin: Path) -> None:
        """repository: <local path> checks out that repository's default branch."""
        other = tmp_path / "other"
        other.mkdir()
        git(other, "init", "-q", "-b", "trunk")
        (other / "other.txt").write_text("o")
        git(other, "add", "-A")
        git(other, "commit", "-q", "-m", "o")
        host = make_host(source=source(origin))
        host.uses("actions/checkout", repository=str(other), path="other")
        assert (host.workspace / "other/other.txt").exists()
        assert git(host.workspace / "other", "rev-parse", "--abbrev-ref", "HEAD") == "trunk"

    def test_another_repository_not_reachable_is_a_clear_error(self, make_host: Callable[..., Host], origin: Path) -> None:
        """repository: owner/name that the source cannot serve fails with a clear message."""
        host = make_host(source=source(origin))
        with pytest.raises(ActionError, match="not available"):
            host.uses("actions/checkout", repository="someone/else")

    def test_source_path_with_quotes_and_spaces(self, tmp_path: Path, make_host: Callable[..., Host], origin: Path) -> None:
        """A source whose path needs quoting in git's config still checks out and refetches."""
        odd = tmp_path / 'my "odd" repo\\x'
        origin.rename(odd)
        host = make_host(source=source(odd))
        host.uses("actions/checkout")
        assert git(host.workspace, "config", "remote.origin.url") == str(odd)
        host.uses("actions/checkout", clean="false")
        assert (host.workspace / "file.txt").read_text() == "v3\n"

    def test_no_source_is_an_error(self, make_host: Callable[..., Host]) -> None:
        """A run without a repository cannot check out."""
        with pytest.raises(ActionError, match="no source to check out"):
            make_host().uses("actions/checkout")

    def test_lfs_without_git_lfs_fails_clearly(
        self, make_host: Callable[..., Host], origin: Path, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch,
    ) -> None:
        """lfs: true on a runner without git-lfs is an error, not a silent skip."""
        import shutil

        bare = tmp_path / "bin-without-lfs"  # a PATH holding git and nothing else
        bare.mkdir()
        git_exe = shutil.which("git")
        assert git_exe is not None
        (bare / "git").symlink_to(git_exe)
        monkeypatch.setenv("PATH", str(bare))
        with pytest.raises(ActionError, match="git-lfs"):
            make_host(source=source(origin)).uses("actions/checkout", lfs="true")

    def test_ssh_key_is_reported_as_unused(self, make_host: Callable[..., Host], origin: Path) -> None:
        """An ssh-key that cannot apply to a local source produces a warning."""
        host = make_host(source=source(origin))
        host.uses("actions/checkout", ssh_key="KEY")
        assert any("ssh-key is not used" in w for w in host.warnings())

    def test_a_server_briefly_unavailable_is_tried_again(
        self, make_host: Callable[..., Host], origin: Path, tmp_path: Path
    ) -> None:
        """HTTP 502s (a git service restarting) are waited out, each wait in the log; a
        refusal fails at once; a server that stays down fails after the last wait."""
        root = tmp_path / "served"
        root.mkdir()
        git(tmp_path, "clone", "-q", "--bare", str(origin), str(root / "origin.git"))
        with serve_git(root) as server:
            src = source(origin)
            url = f"{server.url}/origin.git"
            server.failing[:] = [502, 503]  # the ref listing, then the fetch's first try
            host = make_host(source=CheckoutSource(url, src.sha, src.ref))
            host.uses("actions/checkout", ref="main")
            assert (host.workspace / "file.txt").read_text() == "v3\n"
            waits = [line for line in host.lines if line.startswith("Waiting ")]
            assert len(waits) == 2 and "returned error: 502" in "\n".join(host.lines)
            # What the server refuses for good fails at once, without waits.
            server.failing[:] = [404]
            host = make_host(source=CheckoutSource(url, src.sha, src.ref))
            with pytest.raises(ActionError, match="not found"):
                host.uses("actions/checkout", ref="main")
            assert not [line for line in host.lines if line.startswith("Waiting ")]
            # A server that stays down fails after the last try (about 15 s of waits).
            server.failing[:] = [502] * 10
            host = make_host(source=CheckoutSource(url, src.sha, src.ref))
            started = time.monotonic()
            with pytest.raises(ActionError, match="returned error: 502"):
                host.uses("actions/checkout", ref="main")
            waits = [line for line in host.lines if line.startswith("Waiting ")]
            assert len(waits) == len(_checkout.RETRY_DELAYS) == 4
            assert time.monotonic() - started >= 0.8 * sum(_checkout.RETRY_DELAYS)

    def test_token_is_masked_and_removed_in_the_post_step(
        self, make_host: Callable[..., Host], origin: Path, tmp_path: Path
    ) -> None:
        """An HTTP token is masked, persisted in .git/config and removed at job end."""
        src = source(origin)
        host = make_host(source=CheckoutSource(src.url, src.sha, src.ref, token="s3cret"))
        host.uses("actions/checkout")
        assert "s3cret" in host.masks
        assert not host.posts  # not an HTTP URL: nothing persisted
        with serve_git(tmp_path) as server:  # no such repository there: refused at once
            host2 = make_host(source=CheckoutSource(f"{server.url}/x.git", src.sha, src.ref,
                                                    token="t0k"))
            with pytest.raises(ActionError):
                host2.uses("actions/checkout")
        assert "t0k" in host2.masks
        assert not any("t0k" in line for line in host2.lines)

    def test_checkout_of_a_small_repository_is_fast(self, make_host: Callable[..., Host], origin: Path) -> None:
        """A small repository checks out in well under 100 ms."""
        host = make_host(source=source(origin))
        host.uses("actions/checkout")  # warm up the page cache
        best = float("inf")
        for _ in range(5):
            host = make_host(source=source(origin))
            start = time.perf_counter()
            host.uses("actions/checkout")
            best = min(best, time.perf_counter() - start)
        assert best < 0.1, f"checkout took {best * 1000:.0f} ms"
