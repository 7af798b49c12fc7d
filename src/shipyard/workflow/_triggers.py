"""Deciding which workflows an event starts, with GitHub's filter rules.

- ``push``: branch filters apply to branch refs, tag filters to tag refs. With only
  branch filters a tag push does not run the workflow, and the other way round; with
  neither, every ref runs. Path filters must also pass, except for tag pushes.
- ``pull_request``/``pull_request_target``: branch filters apply to the base branch;
  activity types default to ``opened``, ``synchronize`` and ``reopened``.
- ``paths``: at least one changed file must be selected. ``paths-ignore``: the run is
  skipped only when every changed file is ignored. When the changed files are unknown,
  path filters exclude nothing.
- In a pattern list the last matching pattern decides, so ``!`` patterns may re-exclude
  what an earlier pattern included, and a later pattern may include it again.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from shipyard.errors import WorkflowError
from shipyard.workflow._globs import match_any, match_patterns
from shipyard.workflow._model import InputSpec, InputType, RefFilter, Workflow
from shipyard.workflow._schema import DEFAULT_PR_TYPES, did_you_mean

__all__ = ["Event", "matches", "resolve_dispatch_inputs", "workflows_for_event"]


@dataclass(frozen=True)
class Event:
    """Something that may start workflows.

    ``ref`` is the pushed ref (``refs/heads/main``, ``refs/tags/v1.2``) or, for pull
    requests, the base branch. ``changed_paths`` of ``None`` means unknown. ``inputs``
    are the ``workflow_dispatch`` inputs as given; ``action`` the activity type
    (``opened``); ``cron`` the schedule that fired; ``workflow`` the file a dispatch
    targets.
    """

    name: str
    ref: str | None = None
    changed_paths: tuple[str, ...] | None = None
    inputs: Mapping[str, Any] = field(default_factory=dict)
    action: str | None = None
    cron: str | None = None
    workflow: str | None = None


def _short(ref: str) -> tuple[str, str]:
    """(``branch``|``tag``|``other``, short name) of a ref."""
    if ref.startswith("refs/heads/"):
        return "branch", ref[len("refs/heads/") :]
    if ref.startswith("refs/tags/"):
        return "tag", ref[len("refs/tags/") :]
    if ref.startswith("refs/"):
        return "other", ref
    return "branch", ref


def _selected(include: tuple[str, ...] | None, ignore: tuple[str, ...] | None, name: str) -> bool:
    if include is not None and not match_patterns(include, name):
        return False
    return not (ignore is not None and match_patterns(ignore, name))


def _paths_pass(f: RefFilter, changed: tuple[str, ...] | None) -> bool:
    if changed is None:
        return True
    if f.paths is not None and not match_any(f.paths, changed):
        return False
    if f.paths_ignore is not None:
        return any(not match_patterns(f.paths_ignore, path) for path in changed)
    return True


def _push_matches(f: RefFilter, event: Event) -> bool:
    if event.ref is None:
        return _paths_pass(f, event.changed_paths)
    kind, name = _short(event.ref)
    has_branches = f.branches is not None or f.branches_ignore is not None
    has_tags = f.tags is not None or f.tags_ignore is not None
    if kind == "tag":
        if has_tags:
            return _selected(f.tags, f.tags_ignore, name)
        # Path filters are not evaluated for tag pushes.
        return not has_branches
    if kind == "branch":
        if has_branches:
            if not _selected(f.branches, f.branches_ignore, name):
                return False
        elif has_tags:
            return False
        return _paths_pass(f, event.changed_paths)
    if has_branches or has_tags:
        return False
    return _paths_pass(f, event.changed_paths)


def _pull_request_matches(f: RefFilter, event: Event) -> bool:
    if event.action is not None and event.action not in (f.types or DEFAULT_PR_TYPES):
        return False
    if event.ref is not None:
        _, name = _short(event.ref)
        if not _selected(f.branches, f.branches_ignore, name):
            return False
    return _paths_pass(f, event.changed_paths)


def _same_file(workflow_path: str, target: str) -> bool:
    a = workflow_path.replace("\\", "/").lstrip("./")
    b = target.replace("\\", "/").lstrip("./")
    return a == b or a.endswith("/" + b) or b.endswith("/" + a)


def matches(workflow: Workflow, event: Event) -> bool:
    """Whether ``event`` starts ``workflow`` (its ``on:`` names the event and filters pass)."""
    on = workflow.on
    name = event.name
    if name not in on.events:
        return False
    if name == "push":
        return _push_matches(on.push or RefFilter(), event)
    if name == "pull_request":
        return _pull_request_matches(on.pull_request or RefFilter(), event)
    if name == "pull_request_target":
        return _pull_request_matches(on.pull_request_target or RefFilter(), event)
    if name == "schedule":
        if event.cron is None:
            return True
        return " ".join(event.cron.split()) in {s.cron for s in on.schedule}
    if name == "workflow_dispatch":
        return event.workflow is None or _same_file(workflow.path, event.workflow)
    types = on.activity_types.get(name)
    return not (types and event.action is not None and event.action not in types)


def workflows_for_event(workflows: Iterable[Workflow], event: Event) -> list[Workflow]:
    """The workflows ``event`` starts, in the order given."""
    return [w for w in workflows if matches(w, event)]


_INT_RE = re.compile(r"[-+]?[0-9]+\Z")


def _convert(spec: InputSpec, raw: Any) -> Any:
    name = spec.name
    if spec.type is InputType.BOOLEAN:
        if isinstance(raw, bool):
            return raw
        text = str(raw).strip().lower()
        if text in ("true", "false"):
            return text == "true"
        raise WorkflowError(f"input '{name}' must be true or false, got '{raw}'")
    if spec.type is InputType.NUMBER:
        if isinstance(raw, int | float) and not isinstance(raw, bool) and math.isfinite(raw):
            return raw
        text = str(raw).strip()
        try:
            number: int | float = int(text) if _INT_RE.match(text) else float(text)
        except ValueError:
            number = math.nan
        if isinstance(number, float) and not math.isfinite(number):
            raise WorkflowError(f"input '{name}' must be a number, got '{raw}'")
        return number
    text = raw if isinstance(raw, str) else str(raw)
    if spec.type is InputType.CHOICE and text not in spec.options:
        shown = ", ".join(spec.options)
        raise WorkflowError(f"input '{name}' must be one of: {shown} (got '{text}')")
    return text


def resolve_dispatch_inputs(workflow: Workflow, given: Mapping[str, Any]) -> dict[str, Any]:
    """The ``inputs`` context of a manual run: given values converted, defaults applied.

    Raises WorkflowError for an unknown input, a missing required one, a choice outside
    its options, or a value that is not a valid boolean or number.
    """
    specs = workflow.on.workflow_dispatch
    if specs is None:
        raise WorkflowError(f"{workflow.path} has no workflow_dispatch trigger")
    for name in given:
        if name not in specs:
            known = ", ".join(sorted(specs)) or "none"
            raise WorkflowError(
                f"unknown input '{name}' for {workflow.path}{did_you_mean(name, sorted(specs))}"
                f" (inputs: {known})"
            )
    resolved: dict[str, Any] = {}
    for name, spec in specs.items():
        raw = given.get(name)
        if raw is not None and not (spec.required and raw == ""):
            resolved[name] = _convert(spec, raw)
        elif spec.default is not None:
            resolved[name] = spec.default
        elif spec.required:
            raise WorkflowError(f"input '{name}' of {workflow.path} is required")
        else:
            resolved[name] = False if spec.type is InputType.BOOLEAN else ""
    return resolved
