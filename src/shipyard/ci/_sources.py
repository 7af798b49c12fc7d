"""Workflows at a commit, read from the git service, and the pipelines an event starts.

ci reads repositories only through git's HTTP API: ``/files`` for the workflow folders
at the pushed commit, ``/compare`` for the changed paths (only when a path filter needs
them), ``/commits`` for the ``github`` context.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx

from shipyard.ci._engine import NewPipeline
from shipyard.ci._plans import called_workflows
from shipyard.errors import InvalidRequestError, LocatedError, NotFoundError, WorkflowError
from shipyard.service import ServiceClient
from shipyard.workflow._gitinfo import RepoInfo, github_context
from shipyard.workflow._model import Workflow
from shipyard.workflow._parser import check_workflow
from shipyard.workflow._triggers import Event, matches, resolve_dispatch_inputs

__all__ = ["GitApi", "PushPlan", "Sources", "WorkflowFile"]

ZERO = "0" * 40
WORKFLOW_DIRS = (".github/workflows/", ".shipyard/workflows/")


@dataclass(frozen=True, slots=True)
class WorkflowFile:
    path: str
    text: str
    workflow: Workflow | None
    errors: list[LocatedError]


@dataclass(slots=True)
class PushPlan:
    """What one ref update leads to: pipelines, and the schedules of the default branch."""

    pipelines: list[NewPipeline]
    schedules: list[tuple[str, str]] | None  # (workflow path, cron); None: leave alone
    default_ref: str = ""


class GitApi:
    """The calls ci makes to the git service."""

    def __init__(
        self, base_url: str, token: str, *, transport: httpx.BaseTransport | None = None
    ) -> None:
        self.client = ServiceClient(base_url, token, timeout=60.0, transport=transport)

    def close(self) -> None:
        self.client.close()

    @staticmethod
    def _name(repo: str) -> str:
        return quote(repo, safe="/")

    def repo(self, repo: str) -> dict[str, Any]:
        data: dict[str, Any] = self.client.get(f"/repos/{self._name(repo)}")
        return data

    def refs(self, repo: str) -> dict[str, str]:
        data = self.client.get(f"/repos/{self._name(repo)}/refs")
        return dict(data.get("refs", {}))

    def commit(self, repo: str, rev: str) -> dict[str, Any]:
        data: dict[str, Any] = self.client.get(
            f"/repos/{self._name(repo)}/commits/{quote(rev, safe='')}"
        )
        return data

    def files(self, repo: str, rev: str) -> dict[str, str]:
        params = [("rev", rev), *(("prefix", p) for p in WORKFLOW_DIRS)]
        data = self.client.get(f"/repos/{self._name(repo)}/files", params=params)
        out: dict[str, str] = {}
        for path, encoded in data.get("files", {}).items():
            try:
                out[path] = base64.b64decode(encoded).decode("utf-8", errors="replace")
            except (binascii.Error, ValueError):
                continue
        return out

    def compare(self, repo: str, base: str, head: str) -> tuple[str, ...]:
        data = self.client.get(
            f"/repos/{self._name(repo)}/compare", params={"base": base, "head": head}
        )
        return tuple(data.get("files", []))


def parse_workflows(files: dict[str, str]) -> list[WorkflowFile]:
    """The workflow files among ``files`` (directly in a workflow folder), each checked."""
    out: list[WorkflowFile] = []
    for path in sorted(files):
        folder, _, name = path.rpartition("/")
        if folder + "/" not in WORKFLOW_DIRS or not name.endswith((".yml", ".yaml")):
            continue
        workflow, errors = check_workflow(path, files[path], display_path=path)
        out.append(WorkflowFile(path, files[path], workflow, errors))
    return out


def _has_path_filters(workflows: Sequence[WorkflowFile]) -> bool:
    for wf in workflows:
        push = wf.workflow.on.push if wf.workflow is not None else None
        if push is not None and (push.paths is not None or push.paths_ignore is not None):
            return True
    return False


class Sources:
    """Builds the pipelines of pushes, schedules and dispatches."""

    def __init__(self, git: GitApi, public_base: str) -> None:
        self.git = git
        self.public_base = public_base.rstrip("/")

    def github(
        self, repo: str, sha: str, ref: str, event: str, inputs: dict[str, Any],
        workflow: WorkflowFile, commit: dict[str, Any] | None,
    ) -> dict[str, Any]:
        """The ``github`` context, but for the run ids (known once the pipeline is stored)."""
        author = (commit or {}).get("author") or {}
        info = RepoInfo(
            root=Path("/"), sha=sha, ref=ref, repository=repo,
            actor=str(author.get("name") or "shipyard"),
            message=str((commit or {}).get("message") or ""),
            author_name=str(author.get("name") or ""), author_email=str(author.get("email") or ""),
            timestamp=str(author.get("date") or ""),
        )
        name = workflow.workflow.display_name if workflow.workflow else workflow.path
        ctx = github_context(
            info, event, inputs, workflow_name=name, workflow_path=workflow.path, run_id="0",
        )
        ctx["repositoryUrl"] = f"{self.public_base}/{repo}.git"
        ctx["server_url"] = self.public_base
        ctx["api_url"] = f"{self.public_base}/api/v1"
        return ctx

    def _spec(
        self, repo: str, sha: str, ref: str, event: str, wf: WorkflowFile,
        files: dict[str, str], commit: dict[str, Any] | None, *, inputs: dict[str, Any] | None = None,
        dedupe_key: str | None = None, source_event_id: int | None = None,
        payload: dict[str, Any] | None = None,
    ) -> NewPipeline:
        inputs = inputs or {}
        github = self.github(repo, sha, ref, event, inputs, wf, commit)
        if payload is not None:
            github["event"] = {**payload, "repository": github["event"].get("repository", {})}
        called = called_workflows(wf.workflow, files) if wf.workflow and not wf.errors else {}
        return NewPipeline(
            repo=repo, workflow=wf.path,
            name=wf.workflow.display_name if wf.workflow else wf.path,
            event=event, ref=ref, sha=sha, text=wf.text, called=called, inputs=inputs,
            github=github, errors=[str(e) for e in wf.errors], dedupe_key=dedupe_key,
            source_event_id=source_event_id, parsed=wf.workflow if not wf.errors else None,
        )

    def for_push(self, event_id: int, repo: str, ref: str, before: str, after: str) -> PushPlan:
        """Pipelines of a ref update (none for a deletion or a ref that is no branch or tag)."""
        if after == ZERO or not ref.startswith(("refs/heads/", "refs/tags/")):
            return PushPlan([], None)
        info = self.git.repo(repo)
        default_ref = f"refs/heads/{info.get('default_branch') or 'main'}"
        files = self.git.files(repo, after)
        workflows = parse_workflows(files)
        changed: tuple[str, ...] | None = None
        if ref.startswith("refs/heads/") and _has_path_filters(workflows):
            changed = self.git.compare(repo, before, after)
        event = Event(name="push", ref=ref, changed_paths=changed)
        selected = []
        for wf in workflows:
            if wf.errors:
                usable = wf.workflow is not None and bool(wf.workflow.on.events)
                if usable and wf.workflow is not None and not matches(wf.workflow, event):
                    continue
                selected.append(wf)
            elif wf.workflow is not None and matches(wf.workflow, event):
                selected.append(wf)
        commit = self.git.commit(repo, after) if selected else None
        sha = str(commit["sha"]) if commit else after  # a tag's object peeled to its commit
        payload = {
            "ref": ref, "before": before, "after": after, "created": before == ZERO,
            "deleted": False, "forced": False, "pusher": {"name": "shipyard"},
            "head_commit": {"id": sha, "message": (commit or {}).get("message", "")},
        }
        pipelines = [
            self._spec(repo, sha, ref, "push", wf, files, commit, payload=payload,
                       dedupe_key=f"event:{event_id}:{wf.path}", source_event_id=event_id)
            for wf in selected
        ]
        schedules = None
        if ref == default_ref:
            schedules = [
                (wf.path, s.cron)
                for wf in workflows if wf.workflow is not None and not wf.errors
                for s in wf.workflow.on.schedule
            ]
        return PushPlan(pipelines, schedules, default_ref)

    def for_schedule(
        self, repo: str, path: str, cron: str, ref: str, minute: int
    ) -> NewPipeline | None:
        """The pipeline of a cron that fired (None when the workflow is gone or changed)."""
        refs = self.git.refs(repo)
        sha = refs.get(ref)
        if sha is None:
            return None
        files = self.git.files(repo, sha)
        wf = next((w for w in parse_workflows(files) if w.path == path), None)
        if wf is None or wf.workflow is None or wf.errors:
            return None
        if not matches(wf.workflow, Event(name="schedule", cron=cron)):
            return None
        commit = self.git.commit(repo, sha)
        sha = str(commit["sha"])
        return self._spec(
            repo, sha, ref, "schedule", wf, files, commit, payload={"schedule": cron},
            dedupe_key=f"schedule:{repo}:{path}:{minute}",
        )

    def resolve_ref(self, repo: str, ref: str) -> tuple[str, str]:
        """(full ref, sha) of a branch, tag or full ref name; 400 when there is none."""
        refs = self.git.refs(repo)
        for candidate in (ref, f"refs/heads/{ref}", f"refs/tags/{ref}"):
            if candidate in refs:
                return candidate, refs[candidate]
        raise InvalidRequestError(f"repository {repo} has no branch or tag '{ref}'")

    def for_dispatch(
        self, repo: str, workflow: str, ref: str, inputs: dict[str, Any]
    ) -> NewPipeline:
        """The pipeline of a manual run; 400 when the workflow cannot run that way."""
        full_ref, sha = self.resolve_ref(repo, ref)
        files = self.git.files(repo, sha)
        workflows = parse_workflows(files)
        wanted = workflow.removeprefix("./")
        wf = next(
            (w for w in workflows if w.path == wanted or w.path.rpartition("/")[2] == wanted),
            None,
        )
        if wf is None:
            raise NotFoundError(f"no workflow '{workflow}' in {repo} at {full_ref}")
        if wf.errors or wf.workflow is None:
            raise InvalidRequestError(
                f"{wf.path} has errors:\n" + "\n".join(str(e) for e in wf.errors)
            )
        try:
            resolved = resolve_dispatch_inputs(wf.workflow, inputs)
        except WorkflowError as err:
            raise InvalidRequestError(str(err)) from None
        commit = self.git.commit(repo, sha)
        sha = str(commit["sha"])
        return self._spec(
            repo, sha, full_ref, "workflow_dispatch", wf, files, commit, inputs=resolved,
            payload={"inputs": resolved, "ref": full_ref},
        )
