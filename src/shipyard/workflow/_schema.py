"""What GitHub's workflow syntax allows: keys, events, activity types, contexts.

Plain data, kept apart from the parser so the rules can be read (and checked against
GitHub's documentation) in one place.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable

IDENTIFIER_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_-]*\Z")

WORKFLOW_KEYS = (
    "name", "run-name", "on", "permissions", "env", "defaults", "concurrency", "jobs",
)  # fmt: skip

JOB_KEYS = (
    "name", "needs", "runs-on", "permissions", "environment", "concurrency", "outputs",
    "env", "defaults", "if", "steps", "timeout-minutes", "strategy", "continue-on-error",
    "container", "services", "uses", "with", "secrets",
)  # fmt: skip

# Keys a job calling a reusable workflow may have (GitHub's list for `jobs.<id>.uses`).
CALLER_JOB_KEYS = frozenset(
    ("name", "uses", "with", "secrets", "needs", "if", "permissions", "strategy", "concurrency")
)

STEP_KEYS = (
    "id", "if", "name", "uses", "run", "working-directory", "shell", "with", "env",
    "continue-on-error", "timeout-minutes",
)  # fmt: skip

CONTAINER_KEYS = ("image", "credentials", "env", "ports", "volumes", "options")

KNOWN_SHELLS = frozenset(("bash", "sh", "python", "pwsh", "powershell", "cmd"))

PERMISSION_SCOPES = {
    "actions": ("read", "write", "none"),
    "attestations": ("read", "write", "none"),
    "checks": ("read", "write", "none"),
    "contents": ("read", "write", "none"),
    "deployments": ("read", "write", "none"),
    "discussions": ("read", "write", "none"),
    "id-token": ("write", "none"),
    "issues": ("read", "write", "none"),
    "models": ("read", "none"),
    "packages": ("read", "write", "none"),
    "pages": ("read", "write", "none"),
    "pull-requests": ("read", "write", "none"),
    "repository-projects": ("read", "write", "none"),
    "security-events": ("read", "write", "none"),
    "statuses": ("read", "write", "none"),
}

_PR_TYPES = (
    "assigned", "unassigned", "labeled", "unlabeled", "opened", "edited", "closed",
    "reopened", "synchronize", "converted_to_draft", "ready_for_review", "locked",
    "unlocked", "review_requested", "review_request_removed", "auto_merge_enabled",
    "auto_merge_disabled", "milestoned", "demilestoned", "enqueued", "dequeued",
)  # fmt: skip

# Every event GitHub can trigger a workflow on, with its activity types. ``None`` means
# the event takes no ``types``; an empty tuple means any type name is accepted.
EVENT_TYPES: dict[str, tuple[str, ...] | None] = {
    "branch_protection_rule": ("created", "edited", "deleted"),
    "check_run": ("created", "rerequested", "completed", "requested_action"),
    "check_suite": ("completed",),
    "create": None,
    "delete": None,
    "deployment": None,
    "deployment_status": None,
    "discussion": (
        "created", "edited", "deleted", "transferred", "pinned", "unpinned", "labeled",
        "unlabeled", "locked", "unlocked", "category_changed", "answered", "unanswered",
    ),
    "discussion_comment": ("created", "edited", "deleted"),
    "fork": None,
    "gollum": None,
    "issue_comment": ("created", "edited", "deleted"),
    "issues": (
        "opened", "edited", "deleted", "transferred", "pinned", "unpinned", "closed",
        "reopened", "assigned", "unassigned", "labeled", "unlabeled", "locked", "unlocked",
        "milestoned", "demilestoned", "typed", "untyped",
    ),
    "label": ("created", "edited", "deleted"),
    "merge_group": ("checks_requested",),
    "milestone": ("created", "closed", "opened", "edited", "deleted"),
    "page_build": None,
    "project": ("created", "closed", "reopened", "edited", "deleted"),
    "project_card": ("created", "moved", "converted", "edited", "deleted"),
    "project_column": ("created", "updated", "moved", "deleted"),
    "public": None,
    "pull_request": _PR_TYPES,
    "pull_request_review": ("submitted", "edited", "dismissed"),
    "pull_request_review_comment": ("created", "edited", "deleted"),
    "pull_request_target": _PR_TYPES,
    "push": None,
    "registry_package": ("published", "updated"),
    "release": (
        "published", "unpublished", "created", "edited", "deleted", "prereleased", "released",
    ),
    "repository_dispatch": (),
    "schedule": None,
    "status": None,
    "watch": ("started",),
    "workflow_call": None,
    "workflow_dispatch": None,
    "workflow_run": ("completed", "requested", "in_progress"),
}  # fmt: skip

DEFAULT_PR_TYPES = ("opened", "synchronize", "reopened")

PUSH_FILTERS = ("branches", "branches-ignore", "tags", "tags-ignore", "paths", "paths-ignore")
PR_FILTERS = ("branches", "branches-ignore", "paths", "paths-ignore", "types")

DISPATCH_INPUT_KEYS = (
    "description",
    "deprecationMessage",
    "required",
    "default",
    "type",
    "options",
)
CALL_INPUT_KEYS = ("description", "deprecationMessage", "required", "default", "type")

KNOWN_CONTEXTS = frozenset(
    ("github", "env", "vars", "job", "jobs", "steps", "runner", "secrets", "strategy",
     "matrix", "needs", "inputs")
)  # fmt: skip

_STATUS = frozenset(("always", "cancelled", "success", "failure"))
_HASH = frozenset(("hashfiles",))
SPECIAL_FUNCTIONS = _STATUS | _HASH


def _ctx(
    names: str, functions: frozenset[str] = frozenset()
) -> tuple[frozenset[str], frozenset[str]]:
    return frozenset(names.split()), functions


_STEP = "github needs strategy matrix job runner env vars secrets steps inputs"

# GitHub's "Context availability" table: per workflow key, the contexts and the special
# functions (status functions, hashFiles) an expression there may use.
AVAILABILITY: dict[str, tuple[frozenset[str], frozenset[str]]] = {
    "run-name": _ctx("github inputs vars"),
    "concurrency": _ctx("github inputs vars"),
    "env": _ctx("github secrets inputs vars"),
    # Not in GitHub's table; workflow-level defaults see what run-name sees.
    "defaults.run": _ctx("github inputs vars"),
    "jobs.<id>.concurrency": _ctx("github needs strategy matrix inputs vars"),
    "jobs.<id>.container": _ctx("github needs strategy matrix vars inputs"),
    "jobs.<id>.container.credentials": _ctx("github needs strategy matrix env vars secrets inputs"),
    "jobs.<id>.container.env.<env_id>": _ctx(
        "github needs strategy matrix job runner env vars secrets inputs"
    ),
    "jobs.<id>.container.image": _ctx("github needs strategy matrix vars inputs"),
    "jobs.<id>.continue-on-error": _ctx("github needs strategy vars matrix inputs"),
    "jobs.<id>.defaults.run": _ctx("github needs strategy matrix env vars inputs"),
    "jobs.<id>.env": _ctx("github needs strategy matrix vars secrets inputs"),
    "jobs.<id>.environment": _ctx("github needs strategy matrix vars inputs"),
    "jobs.<id>.environment.url": _ctx(
        "github needs strategy matrix job runner env vars steps inputs"
    ),
    "jobs.<id>.if": _ctx("github needs vars inputs", _STATUS),
    "jobs.<id>.name": _ctx("github needs strategy matrix vars inputs"),
    "jobs.<id>.outputs.<output_id>": _ctx(_STEP),
    "jobs.<id>.runs-on": _ctx("github needs strategy matrix vars inputs"),
    "jobs.<id>.secrets.<secrets_id>": _ctx("github needs strategy matrix secrets inputs vars"),
    "jobs.<id>.services": _ctx("github needs strategy matrix vars inputs"),
    "jobs.<id>.services.<service_id>.credentials": _ctx(
        "github needs strategy matrix env vars secrets inputs"
    ),
    "jobs.<id>.services.<service_id>.env.<env_id>": _ctx(
        "github needs strategy matrix job runner env vars secrets inputs"
    ),
    "jobs.<id>.steps.continue-on-error": _ctx(_STEP, _HASH),
    "jobs.<id>.steps.env": _ctx(_STEP, _HASH),
    "jobs.<id>.steps.if": _ctx(
        "github needs strategy matrix job runner env vars steps inputs", _STATUS | _HASH
    ),
    "jobs.<id>.steps.name": _ctx(_STEP, _HASH),
    "jobs.<id>.steps.run": _ctx(_STEP, _HASH),
    "jobs.<id>.steps.timeout-minutes": _ctx(_STEP, _HASH),
    "jobs.<id>.steps.with": _ctx(_STEP, _HASH),
    "jobs.<id>.steps.working-directory": _ctx(_STEP, _HASH),
    "jobs.<id>.strategy": _ctx("github needs vars inputs"),
    "jobs.<id>.timeout-minutes": _ctx("github needs strategy matrix vars inputs"),
    "jobs.<id>.with.<with_id>": _ctx("github needs strategy matrix inputs vars"),
    "on.workflow_call.inputs.<inputs_id>.default": _ctx("github inputs vars"),
    "on.workflow_call.outputs.<output_id>.value": _ctx("github jobs vars inputs"),
    # Composite actions (action.yml): no secrets, no needs; steps see the job's contexts.
    "runs.steps": _ctx("github strategy matrix job runner env vars steps inputs", _HASH),
    "runs.steps.if": _ctx(
        "github strategy matrix job runner env vars steps inputs", _STATUS | _HASH
    ),
    "outputs.<output_id>.value": _ctx("github strategy matrix job runner env vars steps inputs"),
    "inputs.<input_id>.default": _ctx("github strategy matrix job runner env vars inputs"),
}


def did_you_mean(name: str, candidates: Iterable[str]) -> str:
    """`` (did you mean 'x'?)`` for the closest candidate, or an empty string."""
    pool = list(candidates)
    match = difflib.get_close_matches(name, pool, n=1, cutoff=0.6)
    if not match:
        lowered = {c.lower(): c for c in pool}
        found = lowered.get(name.lower().replace("_", "-")) or lowered.get(name.lower())
        match = [found] if found else []
    return f" (did you mean '{match[0]}'?)" if match else ""


def kind_of(value: object) -> str:
    """How a YAML value is named in messages: ``a string``, ``a list``, ..."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "a list"
    return "a mapping"
