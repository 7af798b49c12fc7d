"""``shipyard runner``: run an agent in the foreground until SIGINT or SIGTERM.

The first signal drains the runner (ci ends its long-polling claim at once and hands it
no more jobs) and lets running jobs finish; the command then exits 0, at once when it
was idle. A second signal cancels running jobs and stops at once. One line is printed when the agent has registered and
one when each job starts and ends; warnings (a server down, retries) go to stderr.
"""

from __future__ import annotations

import enum
import logging
import os
import signal
import sys
from pathlib import Path
from types import FrameType
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape

from shipyard import _hugepages
from shipyard.errors import RequestError, ShipyardError
from shipyard.runner._agent import DEFAULT_LABELS, Agent
from shipyard.runner._assignment import Assignment

__all__ = ["ExecutorChoice", "runner_command"]

_STYLE = {"success": "green", "failure": "red", "cancelled": "yellow", "skipped": "dim"}
_MARK = {"success": "✓", "failure": "✗", "cancelled": "⊘", "skipped": "-"}


class ExecutorChoice(enum.StrEnum):
    """Where jobs' processes run."""

    local = "local"
    sandbox = "sandbox"
    docker = "docker"


class _ConsoleListener:
    """The agent's progress as one short line per event."""

    def __init__(self, console: Console) -> None:
        self.console = console

    def registered(self, agent: Agent) -> None:
        slots = f"{agent.concurrency} slot{'s' if agent.concurrency != 1 else ''}"
        self.console.print(
            f"Runner {agent.runner_id} [bold]{escape(agent.name)}[/bold] connected to "
            f"{escape(agent.server)} ({slots}, executor {agent.executor_name}; "
            f"labels {escape(', '.join(agent.labels))})"
        )

    def job_started(self, a: Assignment) -> None:
        self.console.print(
            f"▶ job {a.job_id} [bold]{escape(a.name)}[/bold] {escape(a.repo)}@{a.sha[:7]}"
        )

    def job_finished(self, a: Assignment, conclusion: str, duration: float) -> None:
        style = _STYLE.get(conclusion, "")
        mark = _MARK.get(conclusion, "?")
        self.console.print(
            f"[{style}]{mark}[/{style}] job {a.job_id} [bold]{escape(a.name)}[/bold] "
            f"[{style}]{conclusion}[/{style}] in {duration:.1f}s"
        )


def _split_labels(values: list[str] | None) -> list[str] | None:
    if not values:
        return None
    labels = [part.strip() for v in values for part in v.split(",") if part.strip()]
    return labels or None


def runner_command(
    server: Annotated[
        str,
        typer.Option("--server", envvar="SHIPYARD_SERVER", help="The Shipyard server's URL."),
    ] = "http://127.0.0.1:8080",
    token: Annotated[
        str,
        typer.Option(
            "--token", envvar="SHIPYARD_RUNNER_TOKEN",
            help="A registration token (shipyard registers the runner) or a runner token.",
        ),
    ] = "",
    name: Annotated[
        str | None, typer.Option("--name", help="The runner's name (default: host-pid).")
    ] = None,
    labels: Annotated[
        list[str] | None,
        typer.Option(
            "--labels",
            help="Labels served, comma-separated or repeated (default: "
            + ",".join(DEFAULT_LABELS) + ").",
        ),
    ] = None,
    concurrency: Annotated[
        int, typer.Option("--concurrency", min=1, max=64, help="Jobs run at once.")
    ] = 1,
    executor: Annotated[
        ExecutorChoice, typer.Option("--executor", help="Where job processes run.")
    ] = ExecutorChoice.local,
    work_dir: Annotated[
        Path | None,
        typer.Option("--work-dir", help="Working folder (default: ~/.shipyard/runner/<name>)."),
    ] = None,
    ci_url: Annotated[
        str | None,
        typer.Option("--ci-url", envvar="SHIPYARD_RUNNER_CI_URL", hidden=True,
                     help="ci's own URL, bypassing the gateway (runners of shipyard up)."),
    ] = None,
    store_url: Annotated[
        str | None,
        typer.Option("--store-url", envvar="SHIPYARD_RUNNER_STORE_URL", hidden=True,
                     help="store's own URL, bypassing the gateway (runners of shipyard up)."),
    ] = None,
) -> None:
    """Run a runner agent: take jobs from the server and run them until stopped."""
    console = Console(highlight=False)
    err = Console(stderr=True, highlight=False)
    # Once more with huge pages for step output (see _hugepages); then take the tunable
    # and the token out of the environment, which jobs' steps inherit.
    _hugepages.reexec()
    _hugepages.restore()
    os.environ.pop("SHIPYARD_RUNNER_TOKEN", None)
    if not token:
        err.print("[red]error:[/red] a token is needed: --token or SHIPYARD_RUNNER_TOKEN")
        raise typer.Exit(2)
    logger = logging.getLogger("shipyard.runner")
    if not logger.handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)
    try:
        agent = Agent(
            server, token, name=name, labels=_split_labels(labels), concurrency=concurrency,
            executor=executor.value, work_dir=work_dir, listener=_ConsoleListener(console),
            api_url=ci_url, store_url=store_url,
        )
    except ShipyardError as error:
        err.print(f"[red]error:[/red] {escape(str(error))}")
        raise typer.Exit(1) from None

    def on_signal(signum: int, frame: FrameType | None) -> None:
        if agent.stopping:
            err.print("cancelling running jobs")
        else:
            n = len(agent.running_jobs())
            if n:
                err.print(f"stopping: waiting for {n} running job{'s' if n != 1 else ''} "
                          "(signal again to stop at once, cancelling them)")
            else:
                err.print("stopping")
        agent.stop()

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        agent.run()
    except RequestError as error:
        err.print(f"[red]error:[/red] {escape(str(error))}")
        raise typer.Exit(1) from None
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)
    console.print(f"Runner stopped after {agent.jobs_run} job{'s' if agent.jobs_run != 1 else ''}")
