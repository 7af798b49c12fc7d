"""actions/cache, cache/restore and cache/save across jobs sharing one cache store."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest

from shipyard.errors import ActionError
from shipyard.workflow._runtime import Conclusion
from shipyard.workflow.actions import RunServices
from tests.workflow.actions._host import Host


def fill(host: Host, rel: str = "deps", content: str = "built") -> None:
    d = host.workspace / rel
    (d / "sub").mkdir(parents=True, exist_ok=True)
    (d / "sub" / "lib.txt").write_text(content)
    (d / "tool").write_text("#!/bin/sh\n")
    (d / "tool").chmod(0o755)


class TestCache:
    def test_miss_saves_in_post_then_exact_hit_restores_and_skips_saving(
        self, make_host: Callable[..., Host], services: RunServices
    ) -> None:
        """First job misses and saves at its end; the next hits exactly and saves nothing."""
        first = make_host()
        first.uses("actions/cache", path="deps", key="deps-v1")
        assert first.outputs.get("cache-hit", "") == ""
        fill(first)
        first.run_posts()
        assert [e.key for e in services.caches.entries()] == ["deps-v1"]

        second = make_host()
        second.uses("actions/cache", path="deps", key="deps-v1")
        assert second.outputs["cache-hit"] == "true"
        assert (second.workspace / "deps/sub/lib.txt").read_text() == "built"
        assert os.access(second.workspace / "deps/tool", os.X_OK)
        second.run_posts()
        assert any("not saving cache" in line for line in second.lines)
        assert len(services.caches.entries()) == 1

    def test_restore_keys_match_by_prefix_and_the_newest_wins(
        self, make_host: Callable[..., Host], services: RunServices
    ) -> None:
        """A restore-key prefix restores the most recent match; cache-hit is false; post saves the new key."""
        for content, key in (("old", "deps-aaa"), ("new", "deps-bbb")):
            host = make_host()
            fill(host, content=content)
            host.uses("actions/cache/save", path="deps", key=key)
        host = make_host()
        host.uses("actions/cache", path="deps", key="deps-ccc", restore_keys="nomatch-\ndeps-")
        assert host.outputs["cache-hit"] == "false"
        assert (host.workspace / "deps/sub/lib.txt").read_text() == "new"
        host.run_posts()
        assert sorted(e.key for e in services.caches.entries()) == ["deps-aaa", "deps-bbb", "deps-ccc"]

    def test_restore_action_sets_primary_and_matched_keys(self, make_host: Callable[..., Host]) -> None:
        """cache/restore reports the key asked for and the key restored."""
        saver = make_host()
        fill(saver)
        saver.uses("actions/cache/save", path="deps", key="k-1")
        host = make_host()
        host.uses("actions/cache/restore", path="deps", key="k-2", restore_keys="k-")
        assert host.outputs == {"cache-primary-key": "k-2", "cache-hit": "false", "cache-matched-key": "k-1"}
        assert not host.posts

    def test_different_paths_do_not_share_caches(self, make_host: Callable[..., Host]) -> None:
        """The same key with other path lines is another cache version: a miss."""
        saver = make_host()
        fill(saver)
        saver.uses("actions/cache/save", path="deps", key="same")
        host = make_host()
        host.uses("actions/cache/restore", path="deps/sub", key="same")
        assert "cache-hit" not in host.outputs

    def test_no_save_when_the_job_failed_unless_save_always(
        self, make_host: Callable[..., Host], services: RunServices
    ) -> None:
        """The post step saves only for a successful job (or with save-always)."""
        host = make_host()
        host.uses("actions/cache", path="deps", key="fail")
        fill(host)
        host.status = Conclusion.FAILURE
        host.run_posts()
        assert services.caches.entries() == []
        host.uses("actions/cache", path="deps", key="fail", save_always="true")
        host.run_posts()
        assert [e.key for e in services.caches.entries()] == ["fail"]

    def test_fail_on_cache_miss(self, make_host: Callable[..., Host]) -> None:
        """fail-on-cache-miss fails the step when nothing matches."""
        with pytest.raises(ActionError, match="fail-on-cache-miss"):
            make_host().uses("actions/cache/restore", path="deps", key="absent", fail_on_cache_miss="true")

    def test_lookup_only_reports_a_hit_without_restoring(self, make_host: Callable[..., Host]) -> None:
        """lookup-only sets cache-hit but writes no files."""
        saver = make_host()
        fill(saver)
        saver.uses("actions/cache/save", path="deps", key="lk")
        host = make_host()
        host.uses("actions/cache/restore", path="deps", key="lk", lookup_only="true")
        assert host.outputs["cache-hit"] == "true"
        assert not (host.workspace / "deps").exists()

    def test_paths_in_the_home_directory_and_globs(self, make_host: Callable[..., Host]) -> None:
        """~/ paths and wildcard paths are saved and restored into the next job's home."""
        saver = make_host()
        pip = Path(saver.env["HOME"]) / ".cache/pip"
        pip.mkdir(parents=True)
        (pip / "wheel.whl").write_text("w")
        for name in ("a.egg-info", "b.egg-info"):
            (saver.workspace / name).mkdir()
            (saver.workspace / name / "PKG-INFO").write_text(name)
        saver.uses("actions/cache/save", path="~/.cache/pip\n*.egg-info", key="home")
        host = make_host()
        host.uses("actions/cache/restore", path="~/.cache/pip\n*.egg-info", key="home")
        assert host.outputs["cache-hit"] == "true"
        assert (Path(host.env["HOME"]) / ".cache/pip/wheel.whl").read_text() == "w"
        assert (host.workspace / "b.egg-info/PKG-INFO").read_text() == "b.egg-info"

    def test_saving_an_existing_key_warns(self, make_host: Callable[..., Host]) -> None:
        """cache/save of a key that exists is a warning, not a failure."""
        host = make_host()
        fill(host)
        host.uses("actions/cache/save", path="deps", key="dup")
        host.uses("actions/cache/save", path="deps", key="dup")
        assert any("Unable to reserve cache with key dup" in w for w in host.warnings())

    def test_nothing_to_save_warns(self, make_host: Callable[..., Host]) -> None:
        """Paths that match nothing give the path validation warning."""
        host = make_host()
        host.uses("actions/cache/save", path="missing", key="none")
        assert any("Path Validation Error" in w for w in host.warnings())

    @pytest.mark.parametrize("key", ["a,b", "x" * 513])
    def test_invalid_keys_fail_the_step(self, make_host: Callable[..., Host], key: str) -> None:
        """Keys with commas or over 512 characters fail, as on GitHub."""
        with pytest.raises(ActionError, match="Key Validation Error"):
            make_host().uses("actions/cache", path="deps", key=key)

    def test_gzip_is_used_when_zstd_is_missing(
        self, make_host: Callable[..., Host], monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """Without zstd on the runner, caches are gzip tars and still round-trip."""
        monkeypatch.setenv("PATH", "/nonexistent")
        saver = make_host()
        fill(saver)
        saver.uses("actions/cache/save", path="deps", key="gz")
        host = make_host()
        host.uses("actions/cache/restore", path="deps", key="gz")
        assert host.outputs["cache-hit"] == "true"
        assert (host.workspace / "deps/sub/lib.txt").read_text() == "built"
