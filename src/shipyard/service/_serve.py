"""Run one service as a process: ``shipyard serve SERVICE --port P``."""

from __future__ import annotations

import importlib
import logging
import os
import signal
from typing import Protocol

from fastapi import FastAPI

from shipyard.errors import ConfigError
from shipyard.service._settings import SERVICES, Settings

__all__ = ["build_app", "serve"]


class _ServiceModule(Protocol):
    def create_app(self, settings: Settings) -> FastAPI: ...


def build_app(service: str, settings: Settings) -> FastAPI:
    """The app of ``service`` (one of :data:`SERVICES`), migrated and ready to serve."""
    if service not in SERVICES:
        raise ConfigError(f"unknown service {service!r}; the services are {', '.join(SERVICES)}")
    module: _ServiceModule = importlib.import_module(f"shipyard.{service}")
    return module.create_app(settings)


def serve(service: str, settings: Settings, *, host: str, port: int, fd: int | None = None) -> None:
    """Serve ``service`` until SIGINT/SIGTERM, then finish in-flight requests and exit.

    ``fd``: an inherited listening socket to serve on (``shipyard up`` holds each
    service's socket across its restarts) instead of binding ``host:port``.
    """
    import socket

    import uvicorn

    logging.basicConfig(
        level=settings.log_level.upper(),
        format=f"%(asctime)s {service} %(levelname)s %(name)s: %(message)s",
    )
    _migrate_in_child(service, settings)
    app = build_app(service, settings)
    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        log_level="warning" if settings.log_level == "info" else settings.log_level,
        access_log=False,
        timeout_graceful_shutdown=5,
        limit_concurrency=2048,
        backlog=2048,
    )
    # uvicorn handles SIGTERM/SIGINT itself (finish in-flight requests, run the
    # lifespan's shutdown), then re-raises the signal with the handlers it found
    # installed. These make that re-raise a clean exit 0 instead of death by signal.
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, _exit_cleanly)
    sockets = None if fd is None else [socket.socket(fileno=fd)]
    uvicorn.Server(config).run(sockets=sockets)


def _migrate_in_child(service: str, settings: Settings) -> None:
    """Build the app once in a forked child, which runs the database migrations.

    Alembic and its migration scripts then never load into the long-lived process
    (about 12 MB each service keeps for good otherwise); the parent's own build finds
    the schema at its newest revision and skips Alembic.
    """
    if service not in SERVICES:
        return  # build_app says so
    pid = os.fork()
    if pid == 0:  # no threads run yet in the parent: forking here is safe
        code = 1
        try:
            build_app(service, settings)
            code = 0
        except BaseException:  # the parent builds again and reports the failure itself
            pass
        finally:
            os._exit(code)
    os.waitpid(pid, 0)


def _exit_cleanly(_signum: int, _frame: object) -> None:
    raise SystemExit(0)
