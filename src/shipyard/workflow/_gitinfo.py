"""What a local run knows about the repository it runs in: commit, ref, event payload."""

from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from shipyard.errors import WorkflowError


def _git(repo: Path, *args: str, env: dict[str, str] | None = None) -> str:
    proc = subprocess.run(
        ["git", "-C", str(repo), *args],
        capture_output=True, text=True, env=env, check=False,
    )
    if proc.returncode != 0:
        raise WorkflowError(f"git {' '.join(args)} failed: {proc.stderr.strip()}")
    return proc.stdout.strip()


@dataclass(frozen=True, slots=True)
class RepoInfo:
    root: Path
    sha: str
    ref: str  # refs/heads/<branch>, or the sha itself when detached
    repository: str  # owner/name
    actor: str
    message: str
    author_name: str
    author_email: str
    timestamp: str
    dirty_included: bool = False


def find_repo_root(start: Path) -> Path:
    """The top of the git work tree holding ``start``."""
    try:
        return Path(_git(start, "rev-parse", "--show-toplevel"))
    except (WorkflowError, FileNotFoundError) as err:
        raise WorkflowError(f"{start} is not inside a git repository: {err}") from None


def snapshot_commit(root: Path) -> str:
    """A commit of the work tree as it is now (tracked changes and new, unignored files).

    It is written with a private index, so the user's index, branch and stash are left
    alone; the commit is unreferenced and git's gc removes it in time.
    """
    head = _git(root, "rev-parse", "--verify", "-q", "HEAD")
    git_dir = Path(_git(root, "rev-parse", "--absolute-git-dir"))
    index = git_dir / f"shipyard-index-{os.getpid()}"
    env = dict(os.environ, GIT_INDEX_FILE=str(index))
    try:
        _git(root, "read-tree", head, env=env)
        _git(root, "add", "-A", ".", env=env)
        tree = _git(root, "write-tree", env=env)
        if tree == _git(root, "rev-parse", f"{head}^{{tree}}"):
            return head
        return _git(
            root, "-c", "user.name=shipyard", "-c", "user.email=shipyard@localhost",
            "commit-tree", tree, "-p", head, "-m", "Uncommitted changes", env=env,
        )
    finally:
        index.unlink(missing_ok=True)


SNAPSHOT_REF = "refs/shipyard/snapshot"


def _keep(root: Path, sha: str) -> None:
    # A ref keeps the synthetic commit fetchable by checkout (git serves only what a
    # ref reaches) and safe from gc while the run lasts.
    _git(root, "update-ref", SNAPSHOT_REF, sha)


def repo_info(
    root: Path, *, include_uncommitted: bool = False, subdir: str = ""
) -> RepoInfo:
    """Facts about the repository at ``root``.

    With ``subdir`` (a project in a folder of a larger repository, such as Shipyard's
    own examples), the commit checked out is one whose root is that folder.
    """
    try:
        head = _git(root, "rev-parse", "--verify", "-q", "HEAD")
    except WorkflowError:
        raise WorkflowError(
            f"{root} has no commit yet: commit the project first"
            " (shipyard run checks out a commit)"
        ) from None
    sha = snapshot_commit(root) if include_uncommitted else head
    if subdir:
        tree = _git(root, "rev-parse", f"{sha}:{subdir}")
        sha = _git(
            root, "-c", "user.name=shipyard", "-c", "user.email=shipyard@localhost",
            "commit-tree", tree, "-m", f"{subdir} at {head[:12]}",
        )
    if sha != head:
        _keep(root, sha)
    try:
        ref = _git(root, "symbolic-ref", "-q", "HEAD")
    except WorkflowError:
        ref = head
    repository = _repository_name(root)
    if subdir:
        repository = f"{repository.partition('/')[0]}/{Path(subdir).name}"
    fmt = _git(root, "log", "-1", "--format=%an%x00%ae%x00%cI%x00%B", head).split("\x00", 3)
    author_name, author_email, timestamp, message = [*fmt, "", "", "", ""][:4]
    actor = os.environ.get("GITHUB_ACTOR") or author_name or os.environ.get("USER", "shipyard")
    return RepoInfo(
        root=root, sha=sha, ref=ref, repository=repository, actor=actor,
        message=message.strip(), author_name=author_name, author_email=author_email,
        timestamp=timestamp, dirty_included=sha != head,
    )


def _repository_name(root: Path) -> str:
    try:
        url = _git(root, "remote", "get-url", "origin")
    except WorkflowError:
        url = ""
    if url:
        path = url.rstrip("/").removesuffix(".git").replace(":", "/")
        parts = [p for p in path.split("/") if p]
        if len(parts) >= 2:
            return f"{parts[-2]}/{parts[-1]}"
    return f"local/{root.name}"


def event_payload(info: RepoInfo, event: str, inputs: dict[str, Any]) -> dict[str, Any]:
    """The webhook-like payload GitHub gives ``github.event`` for the events run locally."""
    owner, _, name = info.repository.partition("/")
    repository = {
        "name": name, "full_name": info.repository, "owner": {"login": owner, "name": owner},
        "default_branch": "main", "private": True,
    }
    commit = {
        "id": info.sha, "message": info.message, "timestamp": info.timestamp,
        "author": {"name": info.author_name, "email": info.author_email},
        "committer": {"name": info.author_name, "email": info.author_email},
    }
    if event == "workflow_dispatch":
        return {"inputs": inputs, "ref": info.ref, "repository": repository,
                "sender": {"login": info.actor}}
    if event == "pull_request":
        return {
            "action": "synchronize", "number": 1,
            "pull_request": {"number": 1, "head": {"ref": info.ref.removeprefix("refs/heads/"), "sha": info.sha},
                             "base": {"ref": "main"}, "title": info.message.splitlines()[0] if info.message else ""},
            "repository": repository, "sender": {"login": info.actor},
        }
    return {
        "ref": info.ref, "before": "0" * 40, "after": info.sha, "created": False,
        "deleted": False, "forced": False, "head_commit": commit, "commits": [commit],
        "pusher": {"name": info.actor}, "repository": repository,
        "sender": {"login": info.actor},
    }


def github_context(
    info: RepoInfo, event: str, inputs: dict[str, Any], *, workflow_name: str,
    workflow_path: str, run_id: str, run_number: int = 1,
) -> dict[str, Any]:
    ref = info.ref
    if ref.startswith("refs/heads/"):
        ref_name, ref_type = ref.removeprefix("refs/heads/"), "branch"
    elif ref.startswith("refs/tags/"):
        ref_name, ref_type = ref.removeprefix("refs/tags/"), "tag"
    else:
        ref_name, ref_type = ref, "branch"
    payload = event_payload(info, event, inputs)
    head_ref = base_ref = ""
    if event == "pull_request":
        head_ref, base_ref = ref_name, "main"
        ref = "refs/pull/1/merge"
        ref_name = "1/merge"
    owner = info.repository.partition("/")[0]
    return {
        "action": "", "action_path": "", "action_ref": "", "action_repository": "",
        "action_status": "", "actor": info.actor, "actor_id": "1", "triggering_actor": info.actor,
        "api_url": "http://localhost/api", "base_ref": base_ref, "env": "",
        "event": payload, "event_name": event, "event_path": "", "graphql_url": "",
        "head_ref": head_ref, "job": "", "path": "", "ref": ref, "ref_name": ref_name,
        "ref_protected": False, "ref_type": ref_type, "repository": info.repository,
        "repository_id": "1", "repository_owner": owner, "repository_owner_id": "1",
        "repositoryUrl": str(info.root), "retention_days": "90", "run_id": run_id,
        "run_number": str(run_number), "run_attempt": "1", "secret_source": "None",
        "server_url": "http://localhost", "sha": info.sha, "token": "", "workflow": workflow_name,
        "workflow_ref": f"{info.repository}/{workflow_path}@{info.ref}",
        "workflow_sha": info.sha, "workspace": "",
    }
