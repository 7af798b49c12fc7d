"""``actions/checkout``: put the run's commit into the workspace with real git.

The code comes from ``host.request.source`` (a git URL or local path, a commit and the
ref that triggered the run). As on GitHub, a branch is checked out by name (tracking
``origin/<branch>``), anything else detached; ``fetch-depth`` gives a shallow history
(``0`` fetches everything, tags included). A local source with full history is cloned
with ``--shared`` so that even a large repository checks out in milliseconds.

Inputs that have nothing to act on here are accepted: ``show-progress``,
``github-server-url``, ``set-safe-directory`` (Shipyard creates the workspace as the
job's own user, noted in the log when set to false) and ``ssh-*`` (a warning says the
key is unused: the source is fetched with git's own settings). ``filter`` is passed to
``git fetch``. ``submodules`` runs ``git submodule update`` (local URLs allowed);
``lfs: true`` needs git-lfs on the runner and fails clearly without it.

Git's network commands (``ls-remote``, ``fetch``, submodule and LFS fetches) that fail
the way a briefly unreachable server makes them fail (a refused or reset connection, an
HTTP 5xx, a hang-up) are tried again after 1, 2, 4 and 8 seconds, each wait said in the
log, as GitHub's checkout does: a git service restarting under a busy pipeline costs its
jobs a few seconds, not a failure. A refusal (401, 403, 404, a missing ref) fails at once.
"""

from __future__ import annotations

import base64
import os
import random
import re
import shutil
import subprocess
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from shipyard.errors import ActionError
from shipyard.workflow._runtime import Annotation, StepHost
from shipyard.workflow.actions._base import (
    ActionInputDef,
    bool_input,
    github_context,
    int_input,
    lines_input,
)

__all__ = ["Checkout"]

_SHA = re.compile(r"[0-9a-fA-F]{40}|[0-9a-fA-F]{64}")
# Seconds to wait before each new try of a network command that failed as a briefly
# unreachable server makes it fail.
RETRY_DELAYS = (1.0, 2.0, 4.0, 8.0)
_TRANSIENT = re.compile(
    r"returned error: 5\d\d|could not resolve host|failed to connect|connection refused"
    r"|connection reset|connection timed out|operation timed out|timed out after"
    r"|rpc failed|remote end hung up|early eof|unexpected disconnect|empty reply from server"
    r"|recv failure|send failure|transfer closed|couldn't connect",
    re.I,
)
_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")


def _d(description: str, default: str | None = None) -> ActionInputDef:
    return ActionInputDef(default=default, description=description)


_INPUTS: dict[str, ActionInputDef] = {
    "repository": _d("owner/name of the repository; the run's own repository when empty", ""),
    "ref": _d(
        "branch, tag or commit to check out; the commit that triggered the run when empty", ""
    ),
    "token": _d("token for fetching over HTTP; the run's token when empty", ""),
    "ssh-key": _d("SSH key for SSH sources", ""),
    "ssh-known-hosts": _d("known hosts to add for SSH", ""),
    "ssh-strict": _d("strict host key checking for SSH", "true"),
    "ssh-user": _d("user for SSH", "git"),
    "persist-credentials": _d("keep the token in the local git config until the job ends", "true"),
    "path": _d("relative path under the workspace to place the repository", ""),
    "clean": _d(
        "clean the folder (git clean -ffdx && git reset --hard HEAD) before fetching", "true"
    ),
    "filter": _d("partial clone filter, passed to git fetch --filter", ""),
    "sparse-checkout": _d("sparse checkout patterns, one per line", ""),
    "sparse-checkout-cone-mode": _d("use cone mode for sparse checkout", "true"),
    "fetch-depth": _d("number of commits to fetch; 0 fetches all history, branches and tags", "1"),
    "fetch-tags": _d("fetch tags even when fetch-depth > 0", "false"),
    "show-progress": _d("show git progress output", "true"),
    "lfs": _d("download Git LFS files (needs git-lfs on the runner)", "false"),
    "submodules": _d("true to check out submodules, recursive for nested ones", "false"),
    "set-safe-directory": _d("add the repository path to git's safe.directory", "true"),
    "github-server-url": _d("base URL of the server to clone from", ""),
}


@dataclass(frozen=True)
class _Target:
    url: str
    sha: str
    ref: str  # full ref name ("refs/heads/main"), or "" for a bare commit


class _Git:
    """Runs git on the host for one repository directory, logging each command."""

    def __init__(self, host: StepHost, cwd: Path, extra_config: list[str] | None = None) -> None:
        self.host = host
        self.cwd = cwd
        self.config = extra_config or []
        self.env = {
            **os.environ,
            "GIT_TERMINAL_PROMPT": "0",
            "LC_ALL": "C",
            "GIT_LFS_SKIP_SMUDGE": "1",
        }

    def run(
        self, *args: str, check: bool = True, quiet: bool = False, network: bool = False
    ) -> subprocess.CompletedProcess[str]:
        """Run git; ``network``: try again, after a wait, when the server seemed briefly
        unreachable (see the module's docstring)."""
        argv = ["git", *(a for c in self.config for a in ("-c", c)), *args]
        if not quiet:
            self.host.log("[command]git " + " ".join(args))
        delays = list(RETRY_DELAYS) if network else []
        while True:
            proc = subprocess.run(
                argv, cwd=self.cwd, env=self.env, capture_output=True, text=True, check=False
            )
            if proc.returncode == 0 or not delays or not _TRANSIENT.search(proc.stderr):
                break
            wait = delays.pop(0) * random.uniform(0.8, 1.2)
            last = proc.stderr.strip().splitlines()
            self.host.log(f"git {args[0]} failed: {last[-1] if last else proc.returncode}")
            self.host.log(f"Waiting {wait:.1f} seconds before trying again")
            time.sleep(wait)
        if not quiet:
            for line in (proc.stdout + proc.stderr).splitlines():
                self.host.log(line)
        if check and proc.returncode != 0:
            detail = proc.stderr.strip().splitlines()
            raise ActionError(
                f"git {args[0]} failed (exit {proc.returncode})"
                + (f": {detail[-1]}" if detail else "")
            )
        return proc


def _is_local(url: str) -> bool:
    return not _SCHEME.match(url) and not re.match(r"^[\w.-]+@[\w.-]+:", url)


def _local_path(url: str) -> str | None:
    if url.startswith("file://"):
        return url[len("file://") :]
    return url if _is_local(url) else None


class Checkout:
    """``actions/checkout``."""

    name: str = "actions/checkout"
    inputs: Mapping[str, ActionInputDef] = _INPUTS
    outputs: tuple[str, ...] = ("ref", "commit")

    def run(self, host: StepHost, inputs: dict[str, str]) -> None:
        """Fetch and check out; see the module docstring."""
        source = host.request.source
        if source is None:
            raise ActionError("no source to check out: this run has no repository attached")
        depth = int_input(inputs, "fetch-depth", 1)
        if depth < 0:
            raise ActionError(f"fetch-depth must be 0 or more, got {depth}")
        submodules = inputs.get("submodules", "false").strip().lower()
        if submodules not in ("true", "false", "recursive"):
            raise ActionError(f"submodules must be true, false or recursive, got {submodules!r}")
        repo_dir = self._repo_dir(host, inputs.get("path", ""))
        token = inputs.get("token", "").strip() or (source.token or "")
        if token:
            host.add_mask(token)
        auth = self._auth_config(token, source.url)
        resolver = _Git(host, host.workspace, auth)
        target = self._target(host, resolver, inputs)
        self._explain_unused(host, inputs, target.url)
        lfs = bool_input(inputs, "lfs")
        if lfs and shutil.which("git-lfs") is None:
            raise ActionError("lfs: true needs git-lfs, which is not installed on this runner")

        fresh = self._prepare(host, repo_dir, target.url, bool_input(inputs, "clean"))
        git = _Git(host, repo_dir, auth)
        if fresh and depth == 0 and (local := _local_path(target.url)) and Path(local).is_dir():
            git.cwd = repo_dir.parent
            git.run("clone", "--quiet", "--shared", "--no-checkout", local, str(repo_dir))
            git.cwd = repo_dir
            git.run("config", "--local", "gc.auto", "0", quiet=True)
        elif fresh:
            git.run("init", "--quiet", ".")
            self._configure(repo_dir, target.url)
        self._fetch(
            git, target, depth, bool_input(inputs, "fetch-tags"), inputs.get("filter", "").strip()
        )
        if token and auth and bool_input(inputs, "persist-credentials"):
            git.run("config", "--local", "http.extraheader", auth[0].split("=", 1)[1], quiet=True)
            host.add_post_step("Post Checkout", lambda h: self._forget_credentials(h, repo_dir))
        sparse = lines_input(inputs, "sparse-checkout")
        if sparse:
            cone = [] if bool_input(inputs, "sparse-checkout-cone-mode") else ["--no-cone"]
            git.run("sparse-checkout", "set", *cone, "--", *sparse)
        self._checkout(git, target)
        if submodules != "false":
            self._submodules(git, submodules == "recursive", depth)
        if lfs:
            git.run("lfs", "install", "--local")
            git.run("lfs", "fetch", "origin", target.sha, network=True)
            git.run("lfs", "checkout")
        host.set_output("ref", inputs.get("ref", "").strip() or target.ref)
        host.set_output("commit", target.sha)

    # -- where and what -------------------------------------------------------------

    @staticmethod
    def _repo_dir(host: StepHost, path: str) -> Path:
        workspace = host.workspace.resolve()
        repo_dir = (workspace / path.strip()).resolve()
        if repo_dir != workspace and workspace not in repo_dir.parents:
            raise ActionError(f"repository path '{repo_dir}' is not under '{workspace}'")
        return repo_dir

    @staticmethod
    def _auth_config(token: str, url: str) -> list[str]:
        if not token or not url.startswith(("http://", "https://")):
            return []
        basic = base64.b64encode(f"x-access-token:{token}".encode()).decode()
        return [f"http.extraheader=AUTHORIZATION: basic {basic}"]

    def _target(self, host: StepHost, git: _Git, inputs: dict[str, str]) -> _Target:
        source = host.request.source
        assert source is not None
        ref = inputs.get("ref", "").strip()
        repository = inputs.get("repository", "").strip()
        current = str(github_context(host).get("repository", ""))
        if repository and repository.lower() != current.lower():
            url = self._other_url(host, repository, current, source.url)
            return self._resolve(git, url, ref or "HEAD", repository)
        if not ref or ref in (source.ref, source.sha) or self._short(source.ref) == ref:
            return _Target(source.url, source.sha, source.ref if ref != source.sha else "")
        if _SHA.fullmatch(ref):
            return _Target(source.url, ref.lower(), "")
        return self._resolve(git, source.url, ref, current or source.url)

    @staticmethod
    def _short(ref: str) -> str:
        for prefix in ("refs/heads/", "refs/tags/"):
            if ref.startswith(prefix):
                return ref[len(prefix) :]
        return ref

    @staticmethod
    def _other_url(host: StepHost, repository: str, current: str, source_url: str) -> str:
        if _SCHEME.match(repository) or repository.startswith(("/", "./", "../")):
            if _is_local(repository):
                return str((host.workspace / repository).resolve())
            return repository
        # The platform's git service serves sibling repositories next to the run's own.
        if current:
            for suffix in (current + ".git", current):
                if source_url.endswith(suffix):
                    return source_url[: -len(suffix)] + repository + suffix[len(current) :]
        raise ActionError(
            f"repository {repository!r} is not available: Shipyard checks out only the run's "
            "own repository, a local path or a reachable git URL"
        )

    def _resolve(self, git: _Git, url: str, ref: str, shown: str) -> _Target:
        if _SHA.fullmatch(ref):
            return _Target(url, ref.lower(), "")
        if ref.startswith("refs/"):
            candidates = [ref]
        elif ref == "HEAD":
            candidates = ["HEAD"]
        else:
            candidates = [f"refs/heads/{ref}", f"refs/tags/{ref}"]
        proc = git.run(
            "ls-remote", "--symref", url, *candidates, check=False, quiet=True, network=True
        )
        if proc.returncode != 0:
            raise ActionError(
                f"repository {shown!r} is not reachable at {url}: {proc.stderr.strip()}"
            )
        refs: dict[str, str] = {}
        head_branch = ""
        for line in proc.stdout.splitlines():
            left, _, name = line.partition("\t")
            if left.startswith("ref: "):
                head_branch = left[len("ref: ") :]
                continue
            if name.endswith("^{}"):
                refs[name[:-3]] = left  # a peeled annotated tag: the commit it points at
            else:
                refs.setdefault(name, left)
        for candidate in candidates:
            if candidate in refs:
                full = head_branch if candidate == "HEAD" and head_branch else candidate
                return _Target(url, refs[candidate], "" if full == "HEAD" else full)
        raise ActionError(f"a branch or tag with the name {ref!r} could not be found in {shown}")

    def _explain_unused(self, host: StepHost, inputs: dict[str, str], url: str) -> None:
        if inputs.get("ssh-key", "").strip():
            host.annotate(
                Annotation(
                    "warning",
                    f"ssh-key is not used: Shipyard fetches this repository from {url} with git's own settings",
                )
            )
        if not bool_input(inputs, "set-safe-directory"):
            host.log(
                "set-safe-directory: false has no effect: the workspace belongs to the job's user"
            )

    # -- the directory ----------------------------------------------------------------

    def _prepare(self, host: StepHost, repo_dir: Path, url: str, clean: bool) -> bool:
        """Make ``repo_dir`` ready; return true when it holds no repository to reuse."""
        if not repo_dir.exists():
            repo_dir.mkdir(parents=True)
            return True
        if not any(repo_dir.iterdir()):
            return True
        git = _Git(host, repo_dir)
        if (repo_dir / ".git").is_dir():
            origin = git.run(
                "config", "--get", "remote.origin.url", check=False, quiet=True
            ).stdout.strip()
            if origin == url:
                (repo_dir / ".git" / "index.lock").unlink(missing_ok=True)
                if not clean:
                    return False
                ok = git.run("clean", "-ffdx", check=False).returncode == 0
                has_head = (
                    git.run(
                        "rev-parse", "--verify", "-q", "HEAD", check=False, quiet=True
                    ).returncode
                    == 0
                )
                if ok and (
                    not has_head or git.run("reset", "--hard", "HEAD", check=False).returncode == 0
                ):
                    return False
        host.log(f"Deleting the contents of '{repo_dir}'")
        for child in repo_dir.iterdir():
            if child.is_dir() and not child.is_symlink():
                shutil.rmtree(child)
            else:
                child.unlink()
        return True

    # -- git -------------------------------------------------------------------------

    @staticmethod
    def _configure(repo_dir: Path, url: str) -> None:
        """What ``git remote add origin`` and ``git config gc.auto 0`` would write.

        Written directly: each git process costs milliseconds, and checkout is on the
        path of every job.
        """
        quoted = url.replace("\\", "\\\\").replace('"', '\\"')
        with open(repo_dir / ".git" / "config", "a") as f:
            f.write(
                f'[remote "origin"]\n\turl = "{quoted}"\n'
                "\tfetch = +refs/heads/*:refs/remotes/origin/*\n[gc]\n\tauto = 0\n"
            )

    @staticmethod
    def _local_ref(ref: str) -> str:
        if ref.startswith("refs/heads/"):
            return "refs/remotes/origin/" + ref[len("refs/heads/") :]
        if ref.startswith("refs/tags/"):
            return ref
        if ref.startswith("refs/pull/"):
            return "refs/remotes/pull/" + ref[len("refs/pull/") :]
        return ""

    def _fetch(self, git: _Git, target: _Target, depth: int, fetch_tags: bool, filt: str) -> None:
        options = ["--prune", "--no-recurse-submodules"]
        if filt:
            options.append(f"--filter={filt}")
        local_ref = self._local_ref(target.ref)
        wanted = f"+{target.sha}:{local_ref}" if local_ref else target.sha
        if depth == 0:
            # A shared clone already has every branch and tag.
            if not git.run("for-each-ref", "--count=1", "refs/remotes/origin/", quiet=True).stdout:
                git.run(
                    "fetch", *options, "--tags", "origin",
                    "+refs/heads/*:refs/remotes/origin/*", "+refs/tags/*:refs/tags/*",
                    network=True,
                )  # fmt: skip
            have = git.run("cat-file", "-e", f"{target.sha}^{{commit}}", check=False, quiet=True)
            if have.returncode != 0:
                git.run("fetch", *options, "origin", wanted, network=True)
            elif local_ref:
                git.run("update-ref", local_ref, target.sha, quiet=True)
            return
        specs = [wanted]
        if fetch_tags:
            specs.append("+refs/tags/*:refs/tags/*")
        tags = [] if fetch_tags else ["--no-tags"]
        git.run("fetch", *options, *tags, f"--depth={depth}", "origin", *specs, network=True)

    @staticmethod
    def _checkout(git: _Git, target: _Target) -> None:
        if target.ref.startswith("refs/heads/"):
            branch = target.ref[len("refs/heads/") :]
            git.run("checkout", "--quiet", "--force", "-B", branch, f"refs/remotes/origin/{branch}")
        else:
            git.run("checkout", "--quiet", "--force", "--detach", target.sha)

    @staticmethod
    def _submodules(git: _Git, recursive: bool, depth: int) -> None:
        # Local submodule URLs are refused by default since git 2.38; the sources here
        # are the platform's own repositories.
        sub = _Git(git.host, git.cwd, [*git.config, "protocol.file.allow=always"])
        rec = ["--recursive"] if recursive else []
        sub.run("submodule", "sync", *rec)
        deep = [f"--depth={depth}"] if depth > 0 else []
        sub.run("submodule", "update", "--init", "--force", *deep, *rec, network=True)

    @staticmethod
    def _forget_credentials(host: StepHost, repo_dir: Path) -> None:
        if (repo_dir / ".git").is_dir():
            _Git(host, repo_dir).run(
                "config", "--local", "--unset-all", "http.extraheader", check=False, quiet=True
            )
