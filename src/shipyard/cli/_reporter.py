"""Console output of ``shipyard run``: live job and step status, logs, a summary table.

Log lines are written with a coloured ``job |`` prefix, as ``docker compose`` does, so the
output of parallel jobs stays readable; groups (``::group::``) show as a heading with
their lines indented (``--fold`` hides their lines); a table of jobs, steps, durations and
conclusions ends the run. Every line also goes to a per-job log file in the run folder.
"""

from __future__ import annotations

import re
import sys
import threading
import time
from pathlib import Path
from typing import IO, Any

from rich.console import Console, Group, RenderableType
from rich.live import Live
from rich.spinner import Spinner
from rich.table import Table
from rich.text import Text

from shipyard.workflow._runtime import Conclusion, JobResult, StepResult

_PALETTE = ["cyan", "magenta", "blue", "green", "yellow", "bright_cyan", "bright_magenta",
            "bright_blue"]
_ICONS = {
    Conclusion.SUCCESS: ("✓", "green"),
    Conclusion.FAILURE: ("✗", "red"),
    Conclusion.CANCELLED: ("⊘", "yellow"),
    Conclusion.SKIPPED: ("-", "bright_black"),
}
_COMMAND = re.compile(r"^::(error|warning|notice)\b")


def _fmt_duration(seconds: float) -> str:
    if seconds < 1:
        return f"{seconds * 1000:.0f}ms"
    if seconds < 60:
        return f"{seconds:.1f}s"
    minutes, secs = divmod(int(seconds), 60)
    return f"{minutes}m{secs:02d}s"


class ConsoleReporter:
    """A :class:`~shipyard.workflow._runtime.Reporter` that prints to a terminal."""

    def __init__(
        self, console: Console | None = None, *, show_logs: bool = True, fold: bool = False,
        log_dir: Path | None = None,
    ) -> None:
        self.console = console or Console(stderr=False, highlight=False)
        self.show_logs = show_logs
        self.fold = fold
        self.log_dir = log_dir
        self._lock = threading.Lock()
        self._colors: dict[str, str] = {}
        self._width = 12
        self._in_group: dict[str, bool] = {}
        self._files: dict[str, IO[str]] = {}
        self._out = self.console.file if self.console.file is not None else sys.stdout
        # key -> (current step, when the job started, when the step started)
        self._running: dict[str, tuple[str, float, float]] = {}
        self._live: Live | None = None

    def start(self) -> None:
        """On a terminal, keep a live footer of the running jobs and their current step."""
        if self.console.is_terminal and not self.console.is_dumb_terminal:
            self._live = Live(
                get_renderable=self._footer, console=self.console, refresh_per_second=8,
                transient=True, redirect_stdout=False, redirect_stderr=False,
            )
            self._live.start()

    def _footer(self) -> RenderableType:
        now = time.monotonic()
        rows: list[RenderableType] = []
        for key, (step, job_t0, step_t0) in list(self._running.items()):
            line = Text()
            line.append(f"{key}", style=f"bold {self._colors.get(key, 'white')}")
            line.append(f"  {_fmt_duration(now - job_t0)}", style="bright_black")
            if step:
                line.append(f"  \u203a {step}", style="white")
                line.append(f"  {_fmt_duration(now - step_t0)}", style="bright_black")
            rows.append(Group(Spinner("dots", text=line, style="cyan")))
        if not rows:
            return Text("")
        return Group(Text(f"{len(rows)} job(s) running", style="bold"), *rows)

    # -- Reporter ------------------------------------------------------------------

    def job_started(self, key: str, name: str) -> None:
        with self._lock:
            self._color(key)
            self._width = max(self._width, min(len(key), 28))
            now = time.monotonic()
            self._running[key] = ("", now, now)
            self._emit(key, Text("▶ job started", style="bold"))

    def step_started(self, key: str, index: int, name: str) -> None:
        with self._lock:
            self._in_group[key] = False
            if key in self._running:
                self._running[key] = (name, self._running[key][1], time.monotonic())
            self._emit(key, Text(f"● {name}", style="bold"))
            self._write_file(key, f"##[step] {name}\n")

    def log(self, key: str, index: int, line: str) -> None:
        with self._lock:
            self._write_file(key, line + "\n")
            if not self.show_logs:
                return
            if line.startswith("::group::"):
                self._in_group[key] = True
                self._emit(key, Text(f"▸ {line[9:]}", style="bold"))
                return
            if line.startswith("::endgroup::"):
                self._in_group[key] = False
                return
            if self.fold and self._in_group.get(key):
                return
            indent = "  " if self._in_group.get(key) else ""
            m = _COMMAND.match(line)
            if m:
                style = {"error": "red", "warning": "yellow", "notice": "blue"}[m.group(1)]
                self._emit(key, Text(indent + line, style=style))
            else:
                self._emit_raw(key, indent + line)

    def step_finished(self, key: str, result: StepResult) -> None:
        with self._lock:
            icon, style = _ICONS[result.conclusion]
            text = Text(f"{icon} {result.name}", style=style)
            text.append(f" ({_fmt_duration(result.duration)})", style="bright_black")
            if result.outcome is Conclusion.FAILURE and result.conclusion is Conclusion.SUCCESS:
                text.append(" failed, continuing (continue-on-error)", style="yellow")
            if result.error:
                text.append(f"\n    {result.error}", style="red")
            self._emit(key, text)

    def job_finished(self, key: str, result: JobResult) -> None:
        with self._lock:
            self._color(key)
            self._running.pop(key, None)
            icon, style = _ICONS[result.conclusion]
            text = Text(f"{icon} job {result.conclusion.value}", style=f"bold {style}")
            if result.duration:
                text.append(f" in {_fmt_duration(result.duration)}", style="bright_black")
            if result.error:
                text.append(f"\n    {result.error}", style="red")
            self._emit(key, text)
            f = self._files.pop(key, None)
            if f is not None:
                f.close()

    # -- output --------------------------------------------------------------------

    def _color(self, key: str) -> str:
        if key not in self._colors:
            self._colors[key] = _PALETTE[len(self._colors) % len(_PALETTE)]
        return self._colors[key]

    def _prefix(self, key: str) -> Text:
        label = key if len(key) <= self._width else key[: self._width - 1] + "…"
        return Text(f"{label:<{self._width}} │ ", style=self._color(key))

    def _emit(self, key: str, text: Text) -> None:
        line = self._prefix(key)
        line.append_text(text)
        self.console.print(line, soft_wrap=True, markup=False, emoji=False)

    def _emit_raw(self, key: str, line: str) -> None:
        # Job output is printed as it is, never interpreted as Rich markup.
        text = self._prefix(key)
        text.append(line)
        self.console.print(text, soft_wrap=True, markup=False, emoji=False, highlight=False)

    def _write_file(self, key: str, data: str) -> None:
        if self.log_dir is None:
            return
        f = self._files.get(key)
        if f is None:
            self.log_dir.mkdir(parents=True, exist_ok=True)
            safe = re.sub(r"[^A-Za-z0-9_.-]+", "_", key).strip("_") or "job"
            f = open(self.log_dir / f"{safe}.log", "a", encoding="utf-8")  # noqa: SIM115
            self._files[key] = f
        f.write(data)

    def close(self) -> None:
        if self._live is not None:
            self._live.stop()
            self._live = None
        with self._lock:
            for f in self._files.values():
                f.close()
            self._files.clear()


def summary_table(result: Any, width: int = 100) -> Table:
    """A table of every job (and its steps) of a local run, with durations."""
    table = Table(title=None, show_lines=False, pad_edge=False, box=None, expand=False)
    table.add_column("", no_wrap=True, min_width=1)
    table.add_column(
        "workflow / job / step", no_wrap=True, overflow="ellipsis", max_width=max(20, width - 26)
    )
    table.add_column("duration", justify="right", no_wrap=True, min_width=8)
    table.add_column("result", no_wrap=True, min_width=9)
    for run in result.runs:
        icon, style = _ICONS[run.conclusion]
        table.add_row(Text(icon, style=style), Text(run.workflow.display_name, style="bold"),
                      _fmt_duration(run.duration), Text(run.conclusion.value, style=style))
        for err in run.errors:
            table.add_row("", Text(f"  {err}", style="red"), "", "")
        for job in run.jobs:
            icon, style = _ICONS[job.conclusion]
            table.add_row(Text(icon, style=style), Text(f"  {job.key}"),
                          _fmt_duration(job.duration) if job.duration else "",
                          Text(job.conclusion.value, style=style))
            if job.error:
                table.add_row("", Text(f"    {job.error}", style="red"), "", "")
            for step in job.steps:
                icon, style = _ICONS[step.conclusion]
                table.add_row(Text(icon, style=style), Text(f"    {step.name}", style="bright_black"),
                              _fmt_duration(step.duration) if step.started_at else "",
                              Text(step.conclusion.value, style=style))
    return table
