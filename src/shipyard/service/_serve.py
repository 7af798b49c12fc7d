"""Run one service as a process: ``shipyard serve SERVICE --port P``."""

from __future__ import annotations

import importlib
import logging
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


def serve(service: str, settings: Settings, *, host: str, port: int) -> None:
    """Serve ``service`` until SIGINT/SIGTERM, then finish in-flight requests and exit."""
    import uvicorn

    logging.basicConfig(
        level=settings.log_level.upper(),
        format=f"%(asctime)s {service} %(levelname)s %(name)s: %(message)s",
    )
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
    uvicorn.Server(config).run()


def _exit_cleanly(_signum: int, _frame: object) -> None:
    raise SystemExit(0)
