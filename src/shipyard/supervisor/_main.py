"""What ``shipyard up`` does once its flags are parsed: run the supervisor, say where."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rich.console import Console
from rich.markup import escape

from shipyard._userconfig import config_path, read_config, write_config
from shipyard.errors import ShipyardError
from shipyard.service import load_settings
from shipyard.supervisor._supervisor import ReadyInfo, Supervisor, UpOptions

__all__ = ["run_up"]


def run_up(flags: dict[str, Any], config: Path | None, *, verbose: bool = False) -> int:
    """Start everything, print the URL and token once ready, supervise until stopped.

    Returns the exit status: 0 after a clean stop, 1 when start-up failed.
    """
    console = Console(highlight=False)

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

    try:
        settings = load_settings(flags, config_file=config)
        return Supervisor(UpOptions(settings, config_file=config, verbose=verbose), console,
                          on_ready=ready).run()
    except ShipyardError as err:
        Console(stderr=True, highlight=False).print(f"[red]error:[/red] {escape(str(err))}",
                                                    soft_wrap=True)
        return 1
    except KeyboardInterrupt:
        return 130
