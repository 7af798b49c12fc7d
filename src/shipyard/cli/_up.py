"""``shipyard up`` (the whole installation) and ``shipyard serve`` (one service)."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Annotated

import typer

from shipyard.cli._remote import reporting_errors

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
    # This process becomes the supervisor (exec: same pid, same terminal), leaving the
    # command line's modules behind; shipyard.supervisor.__main__ takes it from here.
    flags = {"data_dir": data_dir, "port": port, "runners": runners, "host": host,
             "database_url": database_url}
    options = {
        "flags": {k: str(v) if isinstance(v, Path) else v for k, v in flags.items() if v is not None},
        "config": str(config) if config is not None else None,
        "verbose": verbose,
    }
    os.environ["SHIPYARD_UP_OPTIONS"] = json.dumps(options)
    sys.stdout.flush()
    sys.stderr.flush()
    os.execv(sys.executable, [sys.executable, "-m", "shipyard.supervisor"])


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
