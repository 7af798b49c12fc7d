"""How server objects look in a terminal: statuses in colour, durations, tables."""

from __future__ import annotations

import time
from collections.abc import Iterable
from typing import Any

from rich.console import Group, RenderableType
from rich.markup import escape
from rich.table import Table
from rich.text import Text

__all__ = [
    "ago",
    "duration",
    "items",
    "job_state",
    "pipeline_table",
    "pipeline_view",
    "repo_table",
    "runner_table",
    "size",
    "state_text",
]

_STYLE = {
    "success": "green", "failure": "red", "cancelled": "yellow", "skipped": "dim",
    "running": "cyan", "in_progress": "cyan", "cancelling": "yellow", "queued": "blue",
    "waiting": "dim", "online": "green", "offline": "red", "draining": "yellow",
}
_MARK = {
    "success": "✓", "failure": "✗", "cancelled": "⊘", "skipped": "-", "running": "●",
    "in_progress": "●", "cancelling": "⊘", "queued": "○", "waiting": "…",
}


def items(data: Any, key: str) -> list[dict[str, Any]]:
    """A list answer, whether the server sent a bare list or ``{key: [...]}``."""
    if isinstance(data, dict):
        data = data.get(key, [])
    return [d for d in data if isinstance(d, dict)] if isinstance(data, list) else []


def job_state(obj: dict[str, Any]) -> str:
    """The one word a person wants: the conclusion once completed, else the status."""
    status = str(obj.get("status") or "")
    if status == "completed" and obj.get("conclusion"):
        return str(obj["conclusion"])
    return status


def state_text(state: str) -> Text:
    style = _STYLE.get(state, "")
    mark = _MARK.get(state, "")
    return Text(f"{mark} {state}".strip(), style=style)


def duration(start: float | None, end: float | None, now: float | None = None) -> str:
    """``1m 05s`` between two Unix times (to now when still running); ``-`` when not started."""
    if not start:
        return "-"
    seconds = max(0.0, (end or (now or time.time())) - start)
    if seconds < 60:
        return f"{seconds:.1f}s"
    minutes, secs = divmod(int(seconds), 60)
    if minutes < 60:
        return f"{minutes}m {secs:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h {minutes:02d}m"


def ago(when: float | None, now: float | None = None) -> str:
    if not when:
        return "-"
    seconds = max(0, int((now or time.time()) - when))
    for unit, size_ in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size_:
            return f"{seconds // size_}{unit} ago"
    return f"{seconds}s ago"


def size(n: int | float | None) -> str:
    if n is None:
        return "-"
    value = float(n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} TiB"


def _short_ref(ref: str) -> str:
    for prefix in ("refs/heads/", "refs/tags/"):
        if ref.startswith(prefix):
            return ref[len(prefix):]
    return ref


def repo_table(repos: Iterable[dict[str, Any]]) -> Table:
    table = Table(box=None, pad_edge=False, header_style="bold")
    for column in ("NAME", "DEFAULT BRANCH", "CREATED", "CLONE URL", "DESCRIPTION"):
        table.add_column(column)
    for r in repos:
        table.add_row(escape(str(r.get("name", ""))), escape(str(r.get("default_branch") or "-")),
                      ago(r.get("created_at")), escape(str(r.get("clone_url", ""))),
                      escape(str(r.get("description") or "")))
    return table


def pipeline_table(pipelines: Iterable[dict[str, Any]], now: float | None = None) -> Table:
    table = Table(box=None, pad_edge=False, header_style="bold")
    for column in ("ID", "REPO", "WORKFLOW", "EVENT", "REF", "SHA", "STATE", "DURATION", "CREATED"):
        table.add_column(column, no_wrap=column in ("ID", "SHA", "STATE"))
    for p in pipelines:
        attempt = f" #{p['attempt']}" if (p.get("attempt") or 1) > 1 else ""
        table.add_row(
            str(p.get("id", "")), escape(str(p.get("repo", ""))),
            escape(str(p.get("name") or p.get("workflow") or "")) + attempt,
            escape(str(p.get("event", ""))), escape(_short_ref(str(p.get("ref", "")))),
            str(p.get("sha", ""))[:7], state_text(job_state(p)),
            duration(p.get("started_at"), p.get("finished_at"), now), ago(p.get("created_at"), now),
        )
    return table


def runner_table(runners: Iterable[dict[str, Any]]) -> Table:
    table = Table(box=None, pad_edge=False, header_style="bold")
    for column in ("ID", "NAME", "STATUS", "BUSY", "EXECUTOR", "LABELS", "LAST SEEN", "VERSION"):
        table.add_column(column)
    for r in runners:
        busy = f"{r.get('busy', 0)}/{r.get('concurrency', '?')}"
        table.add_row(
            str(r.get("id", "")), escape(str(r.get("name", ""))), state_text(str(r.get("status", ""))),
            busy, escape(str(r.get("executor", ""))), escape(", ".join(r.get("labels") or [])),
            ago(r.get("last_seen")), escape(str(r.get("version", ""))),
        )
    return table


def _stages(jobs: list[dict[str, Any]]) -> list[list[dict[str, Any]]]:
    """Jobs in columns: a job sits one column right of the furthest job it needs."""
    by_id: dict[str, list[dict[str, Any]]] = {}
    for job in jobs:
        by_id.setdefault(str(job.get("job_id", "")), []).append(job)
    depth: dict[str, int] = {}

    def level(job_id: str, seen: frozenset[str] = frozenset()) -> int:
        if job_id in depth:
            return depth[job_id]
        if job_id in seen:  # a cycle would have failed validation; never loop on one
            return 0
        needs = by_id.get(job_id, [{}])[0].get("needs") or []
        d = 1 + max((level(str(n), seen | {job_id}) for n in needs if str(n) in by_id), default=-1)
        depth[job_id] = d
        return d

    columns: dict[int, list[dict[str, Any]]] = {}
    for job in jobs:
        columns.setdefault(level(str(job.get("job_id", ""))), []).append(job)
    return [columns[k] for k in sorted(columns)]


def pipeline_view(p: dict[str, Any], now: float | None = None) -> RenderableType:
    """One pipeline: a header, the jobs by stage, their steps, and any errors."""
    state = job_state(p)
    header = Text.assemble(
        (f"Pipeline {p.get('id')}", "bold"), "  ", state_text(state), "  ",
        (f"{p.get('repo')} · {p.get('name') or p.get('workflow')} · {p.get('event')} · "
         f"{_short_ref(str(p.get('ref', '')))}@{str(p.get('sha', ''))[:7]}", ""),
    )
    facts = Text(
        f"attempt {p.get('attempt', 1)} · created {ago(p.get('created_at'), now)} · "
        f"duration {duration(p.get('started_at'), p.get('finished_at'), now)} · "
        f"workflow {p.get('workflow')}", style="dim",
    )
    parts: list[RenderableType] = [header, facts]
    jobs: list[dict[str, Any]] = list(p.get("jobs") or [])
    if jobs:
        stages = _stages(jobs)
        flow = Text()
        for i, stage in enumerate(stages):
            if i:
                flow.append(" → ", style="dim")
            for j, job in enumerate(stage):
                if j:
                    flow.append(", ")
                flow.append(_MARK.get(job_state(job), "?") + " " + str(job.get("name", "")),
                            style=_STYLE.get(job_state(job), ""))
        parts += [Text(""), Text.assemble(("stages ", "bold"), flow)]
        table = Table(box=None, pad_edge=False, header_style="bold")
        table.add_column("JOB", no_wrap=True, overflow="ellipsis", max_width=60)
        for column in ("ID", "STATE", "DURATION", "RUNNER", "NEEDS"):
            table.add_column(column, no_wrap=column != "NEEDS")
        for stage in stages:
            for job in stage:
                table.add_row(
                    Text(str(job.get("name", "")), style="bold"), str(job.get("id", "")),
                    state_text(job_state(job)),
                    duration(job.get("started_at"), job.get("finished_at"), now),
                    str(job.get("runner_id") or "-"), escape(", ".join(job.get("needs") or [])),
                )
                for step in job.get("steps") or []:
                    table.add_row(
                        Text(f"  {step.get('number')}. {step.get('name')}", style="dim"), "",
                        state_text(job_state(step) if step.get("status") != "completed"
                                   else str(step.get("conclusion") or "completed")),
                        duration(step.get("started_at"), step.get("finished_at"), now), "", "",
                    )
        parts += [Text(""), table]
    errors = [str(e) for e in p.get("errors") or []]
    errors += [f"{job.get('name')}: {job['error']}" for job in jobs if job.get("error")]
    if errors:
        parts.append(Text(""))
        parts.append(Text("errors", style="bold red"))
        parts += [Text(f"  {e}", style="red") for e in errors]
    return Group(*parts)
