"""``shipyard``: the command-line entry point.

Errors Shipyard raises on purpose (:class:`~shipyard.errors.ShipyardError`) are printed
as their message, located ones as ``file:line:col: message``, and the command exits 1;
a traceback means a bug.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from shipyard import __version__
from shipyard.cli._infra import infra_app
from shipyard.errors import ShipyardError, ValidationError

app = typer.Typer(
    name="shipyard",
    help="Shipyard: continuous integration, delivery and infrastructure as code, self-hosted.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)

err_console = Console(stderr=True, highlight=False)
app.add_typer(infra_app, name="infra")


def _pairs(values: list[str] | None, what: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for item in values or []:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise typer.BadParameter(f"expected KEY=VALUE, got {item!r}", param_hint=what)
        out[key] = value
    return out


def _fail(err: ShipyardError) -> None:
    if isinstance(err, ValidationError):
        for e in err.errors:
            err_console.print(f"[red]error[/red] {e}", markup=True, soft_wrap=True)
        n = len(err.errors)
        err_console.print(f"[red]{n} error{'s' if n != 1 else ''}[/red]")
    else:
        err_console.print(f"[red]error:[/red] {err}", soft_wrap=True)
    raise typer.Exit(1)


@app.command()
def version() -> None:
    """Print Shipyard's version."""
    print(__version__)


@app.command()
def validate(
    paths: Annotated[
        list[Path] | None,
        typer.Argument(help="Workflow files, action.yml files or folders (default: this repository)."),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the errors as JSON.")] = False,
) -> None:
    """Check workflow files and report every error as file:line:col: message."""
    from shipyard.workflow._validate import validate_paths

    targets = paths or [Path(".")]
    for p in targets:
        if not p.exists():
            err_console.print(f"[red]error:[/red] {p}: no such file or folder")
            raise typer.Exit(1)
    errors = validate_paths(targets)
    if as_json:
        print(json.dumps([
            {"file": e.location.file if e.location else None,
             "line": e.location.line if e.location else None,
             "col": e.location.col if e.location else None,
             "message": e.message}
            for e in errors
        ], indent=2))
    else:
        for e in errors:
            err_console.print(f"[red]error[/red] {e}", soft_wrap=True)
        if errors:
            err_console.print(f"[red]{len(errors)} error{'s' if len(errors) != 1 else ''}[/red]")
        else:
            err_console.print("[green]✓[/green] no errors")
    raise typer.Exit(1 if errors else 0)


@app.command()
def run(
    workflow: Annotated[list[str] | None, typer.Option("--workflow", "-W", help="Run only this workflow file (repeatable).")] = None,
    job: Annotated[list[str] | None, typer.Option("--job", "-j", help="Run only this job and the jobs it needs (repeatable).")] = None,
    matrix: Annotated[list[str] | None, typer.Option("--matrix", "-m", help="Keep only matrix legs with KEY=VALUE (repeatable).")] = None,
    event: Annotated[str, typer.Option("--event", "-e", help="The event to simulate: push, pull_request, workflow_dispatch, schedule, ...")] = "push",
    input_: Annotated[list[str] | None, typer.Option("--input", "-i", help="A workflow_dispatch input KEY=VALUE (repeatable).")] = None,
    secret: Annotated[list[str] | None, typer.Option("--secret", "-s", help="A secret KEY=VALUE; KEY alone reads it from the environment (repeatable).")] = None,
    var: Annotated[list[str] | None, typer.Option("--var", help="A configuration variable KEY=VALUE for the vars context (repeatable).")] = None,
    executor: Annotated[str, typer.Option("--executor", "-x", help="local, sandbox (bubblewrap) or docker.")] = "local",
    no_network: Annotated[bool, typer.Option("--no-network", help="With --executor sandbox: no network inside the sandbox.")] = False,
    jobs: Annotated[int, typer.Option("--jobs", "-J", help="How many jobs may run at once (default: one per core).", min=0)] = 0,
    include_uncommitted: Annotated[bool, typer.Option("--include-uncommitted", "-u", help="Check out the work tree as it is, uncommitted changes included.")] = False,
    keep_workspace: Annotated[bool, typer.Option("--keep-workspace", help="Keep job workspaces after the run.")] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="Show step status only, not step output.")] = False,
    fold: Annotated[bool, typer.Option("--fold", help="Hide the lines inside ::group:: blocks.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the result as JSON on stdout (progress goes to stderr).")] = False,
    directory: Annotated[Path, typer.Option("--directory", "-C", help="Run in this checkout.")] = Path("."),
) -> None:
    """Run this checkout's workflows here, with no server."""
    import os

    from shipyard.cli._reporter import ConsoleReporter, summary_table
    from shipyard.workflow._local import LocalRun, LocalRunOptions

    secrets: dict[str, str] = {}
    for item in secret or []:
        if "=" in item:
            secrets.update(_pairs([item], "--secret"))
        elif item in os.environ:
            secrets[item] = os.environ[item]
        else:
            raise typer.BadParameter(f"{item} is not set in the environment", param_hint="--secret")
    options = LocalRunOptions(
        directory=directory.resolve(), workflows=workflow or (), jobs=job or (),
        matrix=_pairs(matrix, "--matrix"), event=event, inputs=_pairs(input_, "--input"),
        secrets=secrets, vars=_pairs(var, "--var"), executor=executor, network=not no_network,
        parallel=jobs, include_uncommitted=include_uncommitted, keep_workspace=keep_workspace,
    )
    console = Console(stderr=as_json, highlight=False)
    reporter = ConsoleReporter(console, show_logs=not quiet, fold=fold)
    local = LocalRun(options, reporter)
    reporter.log_dir = local.run_dir / "logs"
    reporter.start()
    try:
        result = local.run()
    except KeyboardInterrupt:
        local.cancel()
        err_console.print("[yellow]cancelled[/yellow]")
        raise typer.Exit(130) from None
    except ShipyardError as err:
        _fail(err)
        return
    finally:
        reporter.close()
    console.print()
    console.print(summary_table(result, console.width))
    icon = "✓" if result.conclusion.value == "success" else "✗"
    style = "green" if result.conclusion.value == "success" else "red"
    console.print(
        f"[{style}]{icon} {result.conclusion.value}[/{style}] in {result.duration:.2f}s"
        f" · artifacts and logs: {result.run_dir}", soft_wrap=True,
    )
    if as_json:
        print(json.dumps(result.to_json(), indent=2))
    raise typer.Exit(0 if result.conclusion.value == "success" else 1)


def main() -> None:
    """Entry point of the ``shipyard`` script."""
    try:
        app()
    except ShipyardError as err:  # raised outside a command's own handling
        err_console.print(f"[red]error:[/red] {err}")
        sys.exit(1)
