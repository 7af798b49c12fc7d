"""Which workflows an event starts: GitHub's branch, tag, path and type filter rules."""

from __future__ import annotations

from functools import cache

import pytest

from shipyard.workflow._model import Workflow
from shipyard.workflow._parser import load_workflow
from shipyard.workflow._triggers import Event, matches, workflows_for_event

JOBS = "jobs:\n  a:\n    runs-on: x\n    steps: [{run: x}]\n"


@cache
def wf(on: str, path: str = ".github/workflows/ci.yml") -> Workflow:
    return load_workflow(path, f"on:\n{on}\n{JOBS}")


def push(ref: str | None, paths: tuple[str, ...] | None = None) -> Event:
    return Event("push", ref=ref, changed_paths=paths)


BRANCHES_ONLY = "  push:\n    branches: [main, 'releases/**']"
TAGS_ONLY = "  push:\n    tags: ['v[0-9]+.*']"
BOTH = "  push:\n    branches: [main]\n    tags: ['v*']"
IGNORES = "  push:\n    branches-ignore: ['dependabot/**']\n    tags-ignore: ['nightly']"
NEGATED = "  push:\n    branches: ['releases/**', '!releases/**-alpha', 'releases/keep-alpha']"
PATHS = "  push:\n    paths: ['src/**', '!src/**/*.md']"
PATHS_IGNORE = "  push:\n    paths-ignore: ['docs/**', '**.md']"
BRANCH_AND_PATHS = "  push:\n    branches: [main]\n    paths: ['src/**']"
TAGS_AND_PATHS = "  push:\n    tags: ['v*']\n    paths: ['src/**']"

PUSH_CASES = [
    ("no filter runs on any branch", "  push:", push("refs/heads/anything"), True),
    ("no filter runs on tags", "  push:", push("refs/tags/v1"), True),
    ("on as a string", "  [push]", push("refs/heads/x"), True),
    ("branch filter selects", BRANCHES_ONLY, push("refs/heads/releases/1.x"), True),
    ("branch filter rejects", BRANCHES_ONLY, push("refs/heads/dev"), False),
    ("branch filter only: tags do not run", BRANCHES_ONLY, push("refs/tags/v1.0"), False),
    ("tag filter selects", TAGS_ONLY, push("refs/tags/v1.2"), True),
    ("tag filter rejects", TAGS_ONLY, push("refs/tags/release"), False),
    ("tag filter only: branches do not run", TAGS_ONLY, push("refs/heads/main"), False),
    ("both: branch checked against branches", BOTH, push("refs/heads/main"), True),
    ("both: other branch", BOTH, push("refs/heads/dev"), False),
    ("both: tag checked against tags", BOTH, push("refs/tags/v3"), True),
    ("both: other tag", BOTH, push("refs/tags/x3"), False),
    ("ignore lists: ordinary branch runs", IGNORES, push("refs/heads/main"), True),
    ("ignore lists: ignored branch", IGNORES, push("refs/heads/dependabot/pip/x"), False),
    ("ignore lists: ignored tag", IGNORES, push("refs/tags/nightly"), False),
    ("ignore lists: other tag", IGNORES, push("refs/tags/v1"), True),
    ("negation excludes", NEGATED, push("refs/heads/releases/2-alpha"), False),
    ("negation keeps others", NEGATED, push("refs/heads/releases/2"), True),
    ("later pattern re-includes", NEGATED, push("refs/heads/releases/keep-alpha"), True),
    ("unknown ref: filters do not exclude", BRANCHES_ONLY, push(None), True),
    (
        "paths: one matching file is enough",
        PATHS,
        push("refs/heads/x", ("README.md", "src/a.py")),
        True,
    ),
    ("paths: nothing matches", PATHS, push("refs/heads/x", ("README.md",)), False),
    ("paths: negated file does not count", PATHS, push("refs/heads/x", ("src/docs/a.md",)), False),
    ("paths: unknown changes", PATHS, push("refs/heads/x", None), True),
    (
        "paths-ignore: all ignored",
        PATHS_IGNORE,
        push("refs/heads/x", ("docs/a.txt", "CHANGES.md")),
        False,
    ),
    (
        "paths-ignore: one not ignored",
        PATHS_IGNORE,
        push("refs/heads/x", ("docs/a.txt", "src/a.py")),
        True,
    ),
    ("paths-ignore: no files changed", PATHS_IGNORE, push("refs/heads/x", ()), False),
    ("branch and paths both needed", BRANCH_AND_PATHS, push("refs/heads/main", ("docs/x",)), False),
    ("branch and paths both pass", BRANCH_AND_PATHS, push("refs/heads/main", ("src/x",)), True),
    ("branch fails though paths pass", BRANCH_AND_PATHS, push("refs/heads/dev", ("src/x",)), False),
    ("paths are not evaluated for tags", TAGS_AND_PATHS, push("refs/tags/v1", ("docs/x",)), True),
    ("short branch name is accepted", BRANCHES_ONLY, push("main"), True),
    ("other refs run only without filters", BRANCHES_ONLY, push("refs/pull/1/merge"), False),
]


@pytest.mark.parametrize(
    ("on", "event", "expected"), [c[1:] for c in PUSH_CASES], ids=[c[0] for c in PUSH_CASES]
)
def test_push_filters(on: str, event: Event, expected: bool) -> None:
    assert matches(wf(on), event) is expected


PR = "  pull_request:\n    branches: [main]\n    paths-ignore: ['docs/**']"
PR_TYPES = "  pull_request:\n    types: [labeled, closed]"
PRT = "  pull_request_target:\n    branches-ignore: ['wip/**']"

PR_CASES = [
    ("base branch selects", PR, Event("pull_request", ref="refs/heads/main"), True),
    ("base branch given short", PR, Event("pull_request", ref="main"), True),
    ("other base branch", PR, Event("pull_request", ref="refs/heads/dev"), False),
    ("default types include opened", PR, Event("pull_request", ref="main", action="opened"), True),
    ("default types include synchronize", PR, Event("pull_request", action="synchronize"), True),
    ("default types exclude closed", PR, Event("pull_request", action="closed"), False),
    ("explicit types", PR_TYPES, Event("pull_request", action="labeled"), True),
    ("explicit types replace defaults", PR_TYPES, Event("pull_request", action="opened"), False),
    (
        "paths-ignore applies",
        PR,
        Event("pull_request", ref="main", changed_paths=("docs/a",)),
        False,
    ),
    ("target: ignored base", PRT, Event("pull_request_target", ref="refs/heads/wip/x"), False),
    ("target: other base", PRT, Event("pull_request_target", ref="refs/heads/main"), True),
    ("pull_request does not start target workflows", PRT, Event("pull_request"), False),
]


@pytest.mark.parametrize(
    ("on", "event", "expected"), [c[1:] for c in PR_CASES], ids=[c[0] for c in PR_CASES]
)
def test_pull_request_filters(on: str, event: Event, expected: bool) -> None:
    assert matches(wf(on), event) is expected


SCHEDULE = "  schedule:\n    - cron: '30  2 * * *'\n    - cron: '0 0 * * SUN'"


def test_schedule_matches_the_cron_that_fired() -> None:
    workflow = wf(SCHEDULE)
    assert matches(workflow, Event("schedule", cron="30 2 * * *"))
    assert matches(workflow, Event("schedule", cron="0 0 * * SUN"))
    assert not matches(workflow, Event("schedule", cron="0 1 * * *"))
    assert matches(workflow, Event("schedule"))


def test_dispatch_targets_one_workflow_file() -> None:
    ci = wf("  workflow_dispatch:", ".github/workflows/ci.yml")
    deploy = wf("  workflow_dispatch:", ".github/workflows/deploy.yml")
    event = Event("workflow_dispatch", workflow="deploy.yml")
    assert workflows_for_event([ci, deploy], event) == [deploy]
    assert workflows_for_event([ci, deploy], Event("workflow_dispatch")) == [ci, deploy]
    assert matches(ci, Event("workflow_dispatch", workflow=".github/workflows/ci.yml"))


def test_activity_types_of_other_events() -> None:
    workflow = wf("  issues:\n    types: [opened]\n  release:")
    assert matches(workflow, Event("issues", action="opened"))
    assert not matches(workflow, Event("issues", action="closed"))
    assert matches(workflow, Event("release", action="published"))
    assert not matches(workflow, Event("watch", action="started"))


def test_events_not_named_never_match() -> None:
    workflow = wf("  push:")
    assert not matches(workflow, Event("pull_request", ref="main"))
    assert not matches(workflow, Event("workflow_dispatch"))
    assert workflows_for_event([workflow], Event("schedule")) == []
