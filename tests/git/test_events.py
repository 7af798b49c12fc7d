"""The ref-update feed: one event per ref change, in push order, never twice."""

from __future__ import annotations

import threading
import time

import httpx
import pytest

from tests.git.conftest import ZERO, Served


class TestRefEvents:
    """Each kind of ref change a push makes is one ref.updated event."""

    def test_create_move_force_and_delete_a_branch(self, served: Served) -> None:
        s = served
        name = s.new_repo("ev")
        wt = s.checkout(name)
        cursor = s.last_event_id()
        one = s.commit(wt, {"a": "1"})
        s.git(wt, "push", "-q", "origin", "main")
        two = s.commit(wt, {"a": "2"})
        s.git(wt, "push", "-q", "origin", "main")
        s.git(wt, "reset", "-q", "--hard", one)
        three = s.commit(wt, {"a": "3"})
        s.git(wt, "push", "-q", "--force", "origin", "main")
        s.git(wt, "push", "-q", "origin", "main:feature/x")
        s.git(wt, "push", "-q", "origin", ":feature/x")
        assert s.ref_events(cursor, name) == [
            ("refs/heads/main", ZERO, one),
            ("refs/heads/main", one, two),
            ("refs/heads/main", two, three),
            ("refs/heads/feature/x", ZERO, three),
            ("refs/heads/feature/x", three, ZERO),
        ]

    def test_tags_light_and_annotated(self, served: Served) -> None:
        s = served
        name = s.new_repo("tags")
        wt = s.checkout(name)
        sha = s.commit(wt, {"a": "1"})
        s.git(wt, "tag", "light")
        s.git(wt, "tag", "-a", "-m", "release", "v1.0")
        tag_object = s.git(wt, "rev-parse", "v1.0").stdout.strip()
        cursor = s.last_event_id()
        s.git(wt, "push", "-q", "origin", "main", "--tags")
        assert s.ref_events(cursor, name) == [
            ("refs/heads/main", ZERO, sha),
            ("refs/tags/light", ZERO, sha),
            ("refs/tags/v1.0", ZERO, tag_object),
        ]
        event = s.events_after(cursor, name)[0]
        assert event["payload"] == {"repo": name, "ref": "refs/heads/main", "before": ZERO, "after": sha}
        assert isinstance(event["created_at"], float)

    def test_several_refs_in_one_push_and_an_unchanged_one(self, served: Served) -> None:
        s = served
        name = s.new_repo("multi")
        wt = s.checkout(name)
        base = s.commit(wt, {"a": "1"})
        s.git(wt, "push", "-q", "origin", "main", "main:keep", "main:gone")
        cursor = s.last_event_id()
        new = s.commit(wt, {"a": "2"})
        s.git(wt, "push", "-q", "origin", "main", "main:b1", "main:b2", ":gone", "main:keep")
        assert s.ref_events(cursor, name) == [
            ("refs/heads/b1", ZERO, new),
            ("refs/heads/b2", ZERO, new),
            ("refs/heads/gone", base, ZERO),
            ("refs/heads/keep", base, new),
            ("refs/heads/main", base, new),
        ]
        cursor = s.last_event_id()
        s.git(wt, "push", "-q", "origin", "main")  # everything up to date
        assert s.ref_events(cursor, name) == []

    def test_concurrent_pushes_each_record_exactly_their_changes(self, served: Served) -> None:
        """Pushes to one repository at once serialise: every change recorded, none twice."""
        s = served
        name = s.new_repo("conc")
        wt = s.checkout(name)
        s.commit(wt, {"a": "0"})
        s.git(wt, "push", "-q", "origin", "main")
        cursor = s.last_event_id()
        shas = {}
        for i in range(6):
            shas[f"refs/heads/b{i}"] = s.commit(wt, {"a": str(i + 1)})
        errors: list[str] = []

        def push(i: int) -> None:
            out = s.git(wt, "push", "-q", "origin", f"{shas[f'refs/heads/b{i}']}:refs/heads/b{i}", check=False)
            if out.returncode != 0:
                errors.append(out.stderr)

        threads = [threading.Thread(target=push, args=(i,)) for i in range(6)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert errors == []
        got = s.ref_events(cursor, name)
        assert sorted(got) == sorted((ref, ZERO, sha) for ref, sha in shas.items())


class TestFeed:
    """GET /events: cursor, paging, long-poll, scopes."""

    def test_paging_with_after_and_limit(self, served: Served) -> None:
        s = served
        cursor = s.last_event_id()
        names = [s.new_repo("page") for _ in range(3)]
        first = s.api("GET", "/events", params={"after": cursor, "limit": 2}).json()
        assert [e["payload"]["repo"] for e in first["events"]] == names[:2]
        assert first["last_id"] == first["events"][-1]["id"]
        second = s.api("GET", "/events", params={"after": first["last_id"], "limit": 2}).json()
        assert [e["payload"]["repo"] for e in second["events"]] == names[2:]
        empty = s.api("GET", "/events", params={"after": second["last_id"]}).json()
        assert empty == {"events": [], "last_id": second["last_id"]}

    def test_a_long_poll_wakes_on_a_push(self, served: Served) -> None:
        s = served
        name = s.new_repo("poll")
        wt = s.checkout(name)
        sha = s.commit(wt, {"a": "1"})
        cursor = s.last_event_id()
        result: dict[str, object] = {}

        def poll() -> None:
            start = time.monotonic()
            with s.client() as c:
                result["body"] = c.get("/events", params={"after": cursor, "wait": 30}).json()
            result["took"] = time.monotonic() - start

        thread = threading.Thread(target=poll)
        thread.start()
        time.sleep(0.3)
        s.git(wt, "push", "-q", "origin", "main")
        thread.join(30)
        body = result["body"]
        assert isinstance(body, dict)
        assert [(e["kind"], e["payload"]["after"]) for e in body["events"]] == [("ref.updated", sha)]
        assert isinstance(result["took"], float) and result["took"] < 10

    def test_a_long_poll_with_nothing_new_answers_empty_after_wait(self, served: Served) -> None:
        cursor = served.last_event_id()
        start = time.monotonic()
        body = served.api("GET", "/events", params={"after": cursor, "wait": 0.5}).json()
        assert body == {"events": [], "last_id": cursor}
        assert 0.4 < time.monotonic() - start < 5

    def test_scopes(self, served: Served) -> None:
        assert served.api("GET", "/events", token=served.token("feeds:read")).status_code == 200
        for scopes in (["repos:write"], ["repos:read"]):
            response = served.api("GET", "/events", token=served.token(*scopes))
            assert response.status_code == 403
            assert "feeds:read" in response.json()["error"]
        with httpx.Client(base_url=served.url) as c:
            assert c.get("/events").status_code == 401

    @pytest.mark.parametrize("params", [{"after": "-1"}, {"after": "x"}, {"limit": "0"}, {"limit": "501"}, {"wait": "-1"}])
    def test_bad_parameters_are_422(self, served: Served, params: dict[str, str]) -> None:
        response = served.api("GET", "/events", params=params)
        assert response.status_code == 422
        assert response.json()["error"]
