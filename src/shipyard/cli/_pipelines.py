"""Client commands for pipelines, jobs, their logs and artifacts."""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import quote

import typer
from rich.console import Console, ConsoleOptions, RenderResult
from rich.markup import escape

from shipyard.cli._remote import (
    JsonOpt,
    Remote,
    ServerOpt,
    TokenOpt,
    connect,
    fail,
    print_json,
)
from shipyard.cli._render import items, job_state, pipeline_table, pipeline_view, size, state_text
from shipyard.errors import ForbiddenError, UnavailableError

__all__ = ["feed_tail", "register"]

console = Console(highlight=False)

_STATUSES = ("queued", "running", "completed", "success", "failure", "cancelled", "skipped")


def _pairs(values: list[str] | None) -> dict[str, str]:
    out: dict[str, str] = {}
    for item in values or []:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise typer.BadParameter(f"expected KEY=VALUE, got {item!r}", param_hint="--input")
        out[key] = value
    return out


_CONCLUSIONS = ("success", "failure", "cancelled", "skipped")


def _list_pipelines(remote: Remote, repo: str | None, status: str | None, limit: int) -> list[dict[str, Any]]:
    params: dict[str, Any] = {"limit": limit}
    if repo:
        params["repo"] = repo
    if status in _CONCLUSIONS:
        # The server filters by status; a conclusion is a completed pipeline's, picked here.
        params.update(status="completed", limit=500)
    elif status:
        params["status"] = status
    found = items(remote.get("/pipelines", params=params), "pipelines")
    if status in _CONCLUSIONS:
        found = [p for p in found if p.get("conclusion") == status][:limit]
    return found


def feed_tail(remote: Remote, service: str = "ci") -> int:
    """The id of the newest event of a feed, found in O(log n) requests.

    A feed only pages forward from a cursor; "is there an event after x" is monotone in
    x, so the newest id is found by doubling, then bisecting.
    """

    def after(x: int) -> bool:
        page = remote.get(f"/feeds/{service}", params={"after": x, "limit": 1, "wait": 0})
        return bool(page.get("events"))

    if not after(0):
        return 0
    lo, hi = 0, 1
    while after(hi):
        lo, hi = hi, hi * 2
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if after(mid):
            lo = mid
        else:
            hi = mid
    return hi


class _LiveTable:
    """The pipelines table, re-rendered with the current time at each refresh."""

    def __init__(self) -> None:
        self.pipelines: list[dict[str, Any]] = []
        self.note = ""

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        yield pipeline_table(self.pipelines)
        yield f"[dim]{escape(self.note)} · Ctrl-C to stop[/dim]"


def _watch(remote: Remote, repo: str | None, status: str | None, limit: int) -> None:
    from rich.live import Live

    view = _LiveTable()
    view.pipelines = _list_pipelines(remote, repo, status, limit)
    try:
        cursor: int | None = feed_tail(remote)
    except ForbiddenError:
        cursor = None  # no feeds:read scope: poll the list instead
    with Live(view, console=console, refresh_per_second=2, transient=False):
        while True:
            view.note = f"updated {time.strftime('%H:%M:%S')}"
            if cursor is None:
                time.sleep(2)
            else:
                try:
                    page = remote.get("/feeds/ci", params={"after": cursor, "wait": 25, "limit": 500},
                                      timeout=40)
                except UnavailableError:
                    view.note = "server not answering; retrying"
                    time.sleep(2)
                    continue
                cursor = int(page.get("last_id", cursor))
                if not page.get("events"):
                    continue
            view.pipelines = _list_pipelines(remote, repo, status, limit)


def pipelines(
    repo: Annotated[str | None, typer.Option("--repo", "-r", help="Only this repository's.")] = None,
    status: Annotated[str | None, typer.Option("--status", "-s", help="Only pipelines in this state: " + ", ".join(_STATUSES) + ".")] = None,
    limit: Annotated[int, typer.Option("--limit", "-n", min=1, max=500, help="How many, newest first.")] = 20,
    watch: Annotated[bool, typer.Option("--watch", "-w", help="Keep the table live until Ctrl-C.")] = False,
    server: ServerOpt = None, token: TokenOpt = None, as_json: JsonOpt = False,
) -> None:
    """List pipelines, newest first."""
    if watch and as_json:
        fail("--watch shows a live table; leave out --json")
    with connect(server, token) as remote:
        if watch:
            _watch(remote, repo, status, limit)
            return
        found = _list_pipelines(remote, repo, status, limit)
    if as_json:
        print_json(found)
    elif not found:
        console.print("No pipelines" + (" matching that" if repo or status else " yet: push a repository with workflows"))
    else:
        console.print(pipeline_table(found))


def pipeline(
    pipeline_id: Annotated[int, typer.Argument(help="The pipeline's id.", min=1)],
    server: ServerOpt = None, token: TokenOpt = None, as_json: JsonOpt = False,
) -> None:
    """Show a pipeline: its jobs by stage, their steps and durations, and any errors."""
    with connect(server, token) as remote:
        found = remote.get(f"/pipelines/{pipeline_id}")
    if as_json:
        print_json(found)
    else:
        console.print(pipeline_view(found))


def logs(
    job_id: Annotated[int, typer.Argument(help="The job's id (see `shipyard pipeline ID`).", min=1)],
    follow: Annotated[bool, typer.Option("--follow", "-f", help="Keep printing until the job ends.")] = False,
    server: ServerOpt = None, token: TokenOpt = None, as_json: JsonOpt = False,
) -> None:
    """Print a job's log, or follow it as the job runs."""
    params = {"offset": 0, "follow": "true" if follow else "false"}
    with connect(server, token) as remote, remote.stream(f"/jobs/{job_id}/log", params=params) as response:
        if as_json:
            text = b"".join(response.iter_bytes()).decode(errors="replace")
            print_json({"job_id": job_id, "log": text})
            return
        out = sys.stdout.buffer
        for chunk in response.iter_raw():
            out.write(chunk)
            out.flush()


def rerun(
    pipeline_id: Annotated[int | None, typer.Argument(help="The pipeline to run again.", min=1)] = None,
    all_jobs: Annotated[bool, typer.Option("--all", help="Run every job again, not only failed and cancelled ones.")] = False,
    job: Annotated[int | None, typer.Option("--job", "-j", help="Run this job (and what needs it) again.", min=1)] = None,
    server: ServerOpt = None, token: TokenOpt = None, as_json: JsonOpt = False,
) -> None:
    """Run a pipeline's failed jobs again (or every job, or one job) as a new attempt."""
    if (pipeline_id is None) == (job is None):
        fail("name a pipeline (shipyard rerun PIPELINE) or a job (shipyard rerun --job JOB)")
    with connect(server, token) as remote:
        if job is not None:
            result = remote.post(f"/jobs/{job}/rerun")
        else:
            result = remote.post(f"/pipelines/{pipeline_id}/rerun", json={"failed_only": not all_jobs})
    if as_json:
        print_json(result)
        return
    if isinstance(result, dict) and "attempt" in result:
        pid = result.get("pipeline_id", result.get("id"))
        console.print(f"Pipeline {pid} attempt {result['attempt']} queued: `shipyard pipeline {pid}`")
    else:
        console.print("Queued again")


def cancel(
    pipeline_id: Annotated[int | None, typer.Argument(help="The pipeline to cancel.", min=1)] = None,
    job: Annotated[int | None, typer.Option("--job", "-j", help="Cancel only this job.", min=1)] = None,
    server: ServerOpt = None, token: TokenOpt = None, as_json: JsonOpt = False,
) -> None:
    """Cancel a pipeline's queued and running jobs, or one job."""
    if (pipeline_id is None) == (job is None):
        fail("name a pipeline (shipyard cancel PIPELINE) or a job (shipyard cancel --job JOB)")
    with connect(server, token) as remote:
        path = f"/jobs/{job}/cancel" if job is not None else f"/pipelines/{pipeline_id}/cancel"
        result = remote.post(path)
    if as_json:
        print_json(result)
    else:
        what = f"job {job}" if job is not None else f"pipeline {pipeline_id}"
        state = job_state(result) if isinstance(result, dict) else ""
        console.print(f"Cancelling {what}" + (f" (now {state})" if state else ""))


def dispatch(
    repo: Annotated[str, typer.Argument(help="The repository.")],
    workflow: Annotated[str, typer.Argument(help="The workflow file, e.g. deploy.yml or .github/workflows/deploy.yml.")],
    ref: Annotated[str | None, typer.Option("--ref", help="Branch, tag or commit (default: the repository's default branch).")] = None,
    input_: Annotated[list[str] | None, typer.Option("--input", "-i", help="An input KEY=VALUE (repeatable).")] = None,
    server: ServerOpt = None, token: TokenOpt = None, as_json: JsonOpt = False,
) -> None:
    """Start a workflow that has a workflow_dispatch trigger."""
    inputs = _pairs(input_)
    with connect(server, token) as remote:
        if not ref:
            ref = str(remote.get("/repos/" + quote(repo, safe="/")).get("default_branch") or "main")
        created = remote.post("/dispatch", json={"repo": repo, "workflow": workflow, "ref": ref, "inputs": inputs})
    if as_json:
        print_json(created)
        return
    pid = created.get("id")
    console.print(f"Pipeline {pid} ", state_text(job_state(created)), f" for {escape(repo)}@{escape(ref)}: `shipyard pipeline {pid}`")
    for error in created.get("errors") or []:
        console.print(f"  [red]{escape(str(error))}[/red]")


def artifacts(
    pipeline_id: Annotated[int, typer.Argument(help="The pipeline's id.", min=1)],
    download: Annotated[str | None, typer.Option("--download", "-d", help="Download the artifact with this name.")] = None,
    output: Annotated[Path, typer.Option("--output", "-o", help="Extract the download into this folder.")] = Path("."),
    server: ServerOpt = None, token: TokenOpt = None, as_json: JsonOpt = False,
) -> None:
    """List a pipeline's artifacts, or download one into a folder."""
    from shipyard.store import RemoteArtifactStore, StoreClient

    with connect(server, token) as remote:
        remote.get("/whoami")  # the usual messages for a server that is down or a bad token
        store = StoreClient(f"{remote.server}/api/v1", remote.target.token or "")
        try:
            if download is not None:
                artifact = RemoteArtifactStore(store).download(str(pipeline_id), download, output)
                if as_json:
                    print_json({"name": artifact.name, "digest": artifact.digest, "size": artifact.size,
                                "files": list(artifact.files), "output": str(output.resolve())})
                else:
                    n = len(artifact.files)
                    console.print(f"Downloaded {escape(artifact.name)} ({size(artifact.size)}, "
                                  f"{n} file{'s' if n != 1 else ''}) into {escape(str(output))}")
                return
            found = [a.model_dump(mode="json") for a in store.list_artifacts(pipeline_id)]
        finally:
            store.close()
    if as_json:
        print_json(found)
        return
    if not found:
        console.print(f"Pipeline {pipeline_id} has no artifacts")
        return
    from rich.table import Table

    table = Table(box=None, pad_edge=False, header_style="bold")
    for column in ("NAME", "SIZE", "FILES", "DIGEST", "EXPIRES"):
        table.add_column(column)
    for a in found:
        expires = time.strftime("%Y-%m-%d", time.localtime(a["expires_at"])) if a.get("expires_at") else "never"
        table.add_row(escape(a["name"]), size(a.get("size")), str(len(a.get("files") or [])),
                      str(a.get("digest", ""))[:12], expires)
    console.print(table)


def register(app: typer.Typer) -> None:
    """Add these commands to ``app``."""
    for command in (pipelines, pipeline, logs, rerun, cancel, dispatch, artifacts):
        app.command(command.__name__)(command)
