"""The CLI's client parts on their own: config file, feed cursor, pipeline rendering."""

from __future__ import annotations

import stat
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI
from rich.console import Console

from shipyard.cli._pipelines import feed_tail
from shipyard.cli._remote import Remote, Target, read_config, write_config
from shipyard.cli._render import duration, items, pipeline_view
from shipyard.errors import ConfigError
from tests.helpers.servers import serve_app


class TestConfigFile:
    """The config file keeps server and token, privately, and other keys too."""

    def test_write_then_read(self, tmp_path: Path):
        path = tmp_path / "home" / "config.toml"
        write_config("http://h:1", 'sy_a"b', path)
        assert read_config(path) == {"server": "http://h:1", "token": 'sy_a"b'}
        assert stat.S_IMODE(path.stat().st_mode) == 0o600

    def test_other_keys_are_kept(self, tmp_path: Path):
        path = tmp_path / "config.toml"
        path.write_text('editor = "vi"\nserver = "http://old"\n')
        write_config("http://new", "sy_t", path)
        assert read_config(path) == {"editor": "vi", "server": "http://new", "token": "sy_t"}

    def test_missing_file_is_empty(self, tmp_path: Path):
        assert read_config(tmp_path / "none.toml") == {}

    def test_malformed_file_is_a_config_error_naming_it(self, tmp_path: Path):
        path = tmp_path / "config.toml"
        path.write_text("server = \n")
        with pytest.raises(ConfigError, match=r"config\.toml"):
            read_config(path)


def _feed_app(last_id: int) -> FastAPI:
    app = FastAPI()
    calls: list[int] = []
    app.state.calls = calls

    @app.get("/api/v1/feeds/ci")
    def events(after: int, limit: int = 100, wait: float = 0) -> dict[str, Any]:
        calls.append(after)
        ids = list(range(after + 1, min(last_id, after + limit) + 1))
        return {"events": [{"id": i, "kind": "k", "payload": {}, "created_at": 0.0} for i in ids],
                "last_id": ids[-1] if ids else after}

    return app


@pytest.mark.parametrize("last_id", [0, 1, 2, 7, 64, 1000, 123457])
def test_feed_tail_finds_the_newest_event_in_few_requests(last_id: int):
    app = _feed_app(last_id)
    with serve_app(app) as url:
        remote = Remote(Target(url, None))
        try:
            assert feed_tail(remote) == last_id
        finally:
            remote.close()
    assert len(app.state.calls) <= 2 * max(1, last_id).bit_length() + 2


def _render(obj: Any) -> str:
    console = Console(record=True, width=120, no_color=True)
    console.print(obj)
    return console.export_text()


def _job(key: str, needs: list[str], state: str = "success", **extra: Any) -> dict[str, Any]:
    return {"id": hash(key) % 100, "key": key, "job_id": key, "name": key, "needs": needs,
            "status": "completed", "conclusion": state, "started_at": 10.0, "finished_at": 12.5,
            "steps": [], **extra}


class TestPipelineView:
    """`shipyard pipeline` shows jobs by stage, durations and errors."""

    def test_stages_follow_needs(self):
        pipeline = {
            "id": 4, "repo": "demo", "workflow": ".github/workflows/ci.yml", "name": "ci",
            "event": "push", "ref": "refs/heads/main", "sha": "abcdef1234", "attempt": 1,
            "status": "completed", "conclusion": "failure", "created_at": 1.0,
            "started_at": 10.0, "finished_at": 20.0, "errors": [],
            "jobs": [
                _job("deploy", ["test", "lint"], "skipped"),
                _job("test", ["build"], "failure", error="exit code 2"),
                _job("build", []),
                _job("lint", []),
            ],
        }
        text = _render(pipeline_view(pipeline))
        assert "Pipeline 4" in text and "failure" in text
        assert "stages ✓ build, ✓ lint → ✗ test → - deploy" in text
        assert "main@abcdef1" in text
        assert "test: exit code 2" in text
        assert "2.5s" in text

    def test_validation_errors_are_listed(self):
        pipeline = {"id": 1, "repo": "r", "workflow": "w.yml", "status": "completed",
                    "conclusion": "failure", "jobs": [],
                    "errors": [".github/workflows/w.yml:3:5: unknown key 'job'"]}
        assert ".github/workflows/w.yml:3:5: unknown key 'job'" in _render(pipeline_view(pipeline))


@pytest.mark.parametrize(("start", "end", "text"), [
    (None, None, "-"), (0.0, 5.0, "-"), (100.0, 100.25, "0.2s"), (100.0, 165.0, "1m 05s"),
    (100.0, 100.0 + 3 * 3600 + 120, "3h 02m"),
])
def test_durations_read_like_a_person_would(start: float | None, end: float | None, text: str):
    assert duration(start, end) == text


def test_list_answers_in_either_shape_are_read():
    assert items([{"a": 1}], "repos") == [{"a": 1}]
    assert items({"repos": [{"a": 1}]}, "repos") == [{"a": 1}]
    assert items({"other": 1}, "repos") == []
