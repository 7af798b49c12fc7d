"""``shipyard up`` (the whole installation) and ``shipyard serve`` (one service)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape

from shipyard.cli._remote import config_path, read_config, reporting_errors, write_config
from shipyard.errors import ShipyardError

__all__ = ["register"]

_PRECEDENCE = (
    "Settings are taken, highest first, from: these flags; SHIPYARD_* environment variables "
    "(SHIPYARD_PORT, SHIPYARD_DATABASE_URL, SHIPYARD_RUNNER_EXECUTOR, ...); the settings file "
    "(--config, SHIPYARD_CONFIG, else <data-dir>/shipyard.toml); built-in defaults."
)


def up(
    data_dir: Annotated[Path | None, typer.Option("--data-dir", help="Where databases, repositories, blobs and logs live (default ~/.shipyard/server).", show_default=False)] = None,
    port: Annotated[int | None, typer.Option("--port", "-p", help="The gateway's port (default 8080; 0: any free port).", min=0, max=65535, show_default=False)] = None,
    runners: Annotated[int | None, typer.Option("--runners", help="Local runner agents to start (default 2).", min=0, max=64, show_default=False)] = None,
    host: Annotated[str | None, typer.Option("--host", help="Address the gateway listens on (default 127.0.0.1; 0.0.0.0 for every interface).", show_default=False)] = None,
    config: Annotated[Path | None, typer.Option("--config", help="The settings file (default <data-dir>/shipyard.toml).", show_default=False)] = None,
    database_url: Annotated[str | None, typer.Option("--database-url", help="postgresql://... for a schema per service in PostgreSQL (default: a SQLite file per service).", show_default=False)] = None,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Also print the services' and runners' logs here.")] = False,
) -> None:
    """Run Shipyard on this machine: git, store, ci, the gateway and local runners.

    Each service is its own process, restarted if it dies; Ctrl-C stops them all.
    Their logs are in <data-dir>/logs/. Starting again on the same data dir resumes
    where it stopped (same secret, same admin token, same data).
    """
    from shipyard.service import load_settings
    from shipyard.supervisor import ReadyInfo, Supervisor, UpOptions

    console = Console(highlight=False)
    flags = {"data_dir": data_dir, "port": port, "runners": runners, "host": host,
             "database_url": database_url}

    def ready(info: ReadyInfo) -> None:
        runners_note = f", {info.runners} runner{'s' if info.runners != 1 else ''}" if info.runners else ""
        console.print()
        console.print(f"[bold green]Shipyard is up[/bold green] at [bold]{escape(info.url)}[/bold] "
                      f"(ready in {info.started_in:.1f} s{runners_note})")
        console.print(f"  admin token: {info.admin_token}", soft_wrap=True)
        console.print(f"  [dim]kept in {escape(str(info.token_file))}; logs in "
                      f"{escape(str(info.data_dir / 'logs'))}[/dim]", soft_wrap=True)
        cli_config = config_path()
        try:
            has_token = bool(read_config(cli_config).get("token"))
            if not has_token:
                write_config(info.url, info.admin_token, cli_config)
        except (ShipyardError, OSError) as err:  # the server runs all the same
            console.print(f"  [yellow]could not write the CLI's config: {escape(str(err))}[/yellow]",
                          soft_wrap=True)
            has_token = True
        if not has_token:
            console.print(f"  [dim]the shipyard CLI now uses this server ({escape(str(cli_config))})[/dim]",
                          soft_wrap=True)
        else:
            console.print(f"  [dim]to use it from the CLI: shipyard login --server {escape(info.url)} "
                          f"--token $(cat {escape(str(info.token_file))})[/dim]", soft_wrap=True)
        console.print("Press Ctrl-C to stop.")

    with reporting_errors():
        settings = load_settings(flags, config_file=config)
        code = Supervisor(UpOptions(settings, config_file=config, verbose=verbose), console,
                          on_ready=ready).run()
    raise typer.Exit(code)


up.__doc__ = f"{up.__doc__}\n\n    {_PRECEDENCE}"


def serve(
    service: Annotated[str, typer.Argument(help="git, store, ci or gateway.")],
    port: Annotated[int | None, typer.Option("--port", "-p", min=0, max=65535, help="Port (default: the port setting).")] = None,
    host: Annotated[str | None, typer.Option("--host", help="Address (default: the host setting).")] = None,
    config: Annotated[Path | None, typer.Option("--config", help="The settings file.")] = None,
) -> None:
    """Serve one service in the foreground (what `shipyard up` starts for each)."""
    from shipyard.service import load_settings
    from shipyard.service import serve as run_service

    with reporting_errors():
        settings = load_settings(config_file=config)
        run_service(service, settings, host=host or settings.host, port=settings.port if port is None else port)


def register(app: typer.Typer) -> None:
    """Add ``up`` and the hidden ``serve`` to ``app``."""
    app.command("up")(up)
    app.command("serve", hidden=True)(serve)
