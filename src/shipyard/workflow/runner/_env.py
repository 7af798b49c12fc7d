"""The default environment variables and contexts a job's steps see."""

from __future__ import annotations

import platform
from collections.abc import Mapping
from typing import Any

from shipyard.workflow.expressions import to_string

# github context key -> environment variable, as GitHub sets them.
_GITHUB_VARS = (
    ("sha", "GITHUB_SHA"),
    ("ref", "GITHUB_REF"),
    ("ref_name", "GITHUB_REF_NAME"),
    ("ref_type", "GITHUB_REF_TYPE"),
    ("ref_protected", "GITHUB_REF_PROTECTED"),
    ("head_ref", "GITHUB_HEAD_REF"),
    ("base_ref", "GITHUB_BASE_REF"),
    ("event_name", "GITHUB_EVENT_NAME"),
    ("repository", "GITHUB_REPOSITORY"),
    ("repository_owner", "GITHUB_REPOSITORY_OWNER"),
    ("repository_id", "GITHUB_REPOSITORY_ID"),
    ("repository_owner_id", "GITHUB_REPOSITORY_OWNER_ID"),
    ("run_id", "GITHUB_RUN_ID"),
    ("run_number", "GITHUB_RUN_NUMBER"),
    ("run_attempt", "GITHUB_RUN_ATTEMPT"),
    ("actor", "GITHUB_ACTOR"),
    ("actor_id", "GITHUB_ACTOR_ID"),
    ("triggering_actor", "GITHUB_TRIGGERING_ACTOR"),
    ("workflow", "GITHUB_WORKFLOW"),
    ("workflow_ref", "GITHUB_WORKFLOW_REF"),
    ("workflow_sha", "GITHUB_WORKFLOW_SHA"),
    ("server_url", "GITHUB_SERVER_URL"),
    ("api_url", "GITHUB_API_URL"),
    ("graphql_url", "GITHUB_GRAPHQL_URL"),
    ("retention_days", "GITHUB_RETENTION_DAYS"),
    ("job", "GITHUB_JOB"),
    ("workspace", "GITHUB_WORKSPACE"),
    ("event_path", "GITHUB_EVENT_PATH"),
)
# Always present, empty when the event has none (as on GitHub).
_ALWAYS = ("GITHUB_HEAD_REF", "GITHUB_BASE_REF")

_ARCH = {
    "x86_64": "X64",
    "amd64": "X64",
    "aarch64": "ARM64",
    "arm64": "ARM64",
    "armv7l": "ARM",
    "armv6l": "ARM",
    "i386": "X86",
    "i686": "X86",
}


def runner_arch() -> str:
    """RUNNER_ARCH for this machine (X64, ARM64, ARM, X86)."""
    machine = platform.machine().lower()
    return _ARCH.get(machine, machine.upper() or "X64")


def _env_text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return to_string(value)


def default_env(
    github: Mapping[str, Any],
    runner: Mapping[str, Any],
    *,
    workspace_parent: str,
) -> dict[str, str]:
    """The variables GitHub sets for every step of a job (per-step ones are added later)."""
    env = {"CI": "true", "GITHUB_ACTIONS": "true"}
    for key, var in _GITHUB_VARS:
        value = github.get(key)
        if value is not None:
            env[var] = _env_text(value)
    for var in _ALWAYS:
        env.setdefault(var, "")
    env["RUNNER_OS"] = str(runner["os"])
    env["RUNNER_ARCH"] = str(runner["arch"])
    env["RUNNER_NAME"] = str(runner["name"])
    env["RUNNER_TEMP"] = str(runner["temp"])
    env["RUNNER_TOOL_CACHE"] = str(runner["tool_cache"])
    env["RUNNER_WORKSPACE"] = workspace_parent
    env["RUNNER_ENVIRONMENT"] = str(runner.get("environment", "self-hosted"))
    if runner.get("debug"):
        env["RUNNER_DEBUG"] = "1"
    return env


def is_debug(contexts: Mapping[str, Any]) -> bool:
    """Step debug logging, switched on like GitHub's: ACTIONS_STEP_DEBUG / ACTIONS_RUNNER_DEBUG."""
    for source in ("secrets", "vars"):
        values = contexts.get(source)
        if not isinstance(values, Mapping):
            continue
        for name in ("ACTIONS_STEP_DEBUG", "ACTIONS_RUNNER_DEBUG"):
            if str(values.get(name, "")).strip().lower() == "true":
                return True
    return False


def action_name(uses: str | None, step_id: str | None, counts: dict[str, int]) -> str:
    """GITHUB_ACTION: the step id, else ``__run`` / ``__owner_repo``, numbered on repeats."""
    if step_id:
        return step_id
    if uses is None:
        base = "__run"
    elif uses.startswith("./"):
        base = "__self"
    else:
        ref = uses.split("@", 1)[0]
        base = "__" + "_".join(ref.split("/")[:2])
    n = counts.get(base, 0) + 1
    counts[base] = n
    return base if n == 1 else f"{base}_{n}"
