"""What every Shipyard service shares: settings, database, tokens, the app, feeds, clients.

The services (``git``, ``store``, ``ci``, ``gateway``) are thin HTTP shells over the
libraries; this package is the shell's common part, so each service holds only its own
routes, tables and logic.

Names are imported on first use: a runner or the CLI needs the client and the tokens,
not FastAPI and SQLAlchemy, and should not pay for importing them (about half a second
and 40 MB per process).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from shipyard.service._app import (
        Auth,
        ServiceState,
        authenticate,
        create_app,
        error_body,
        state_of,
    )
    from shipyard.service._auth import Claims, TokenSigner
    from shipyard.service._client import ServiceClient, raise_for_response
    from shipyard.service._db import Database, run_migrations_env
    from shipyard.service._feed import (
        Notifier,
        append_event,
        events_table,
        long_poll,
        read_events,
    )
    from shipyard.service._serve import build_app, serve
    from shipyard.service._settings import SERVICES, Settings, load_settings

_WHERE = {
    "Auth": "_app", "ServiceState": "_app", "authenticate": "_app", "create_app": "_app",
    "error_body": "_app", "state_of": "_app",
    "Claims": "_auth", "TokenSigner": "_auth",
    "ServiceClient": "_client", "raise_for_response": "_client",
    "Database": "_db", "run_migrations_env": "_db",
    "Notifier": "_feed", "append_event": "_feed", "events_table": "_feed",
    "long_poll": "_feed", "read_events": "_feed",
    "build_app": "_serve", "serve": "_serve",
    "SERVICES": "_settings", "Settings": "_settings", "load_settings": "_settings",
}

__all__ = [
    "SERVICES",
    "Auth",
    "Claims",
    "Database",
    "Notifier",
    "ServiceClient",
    "ServiceState",
    "Settings",
    "TokenSigner",
    "append_event",
    "authenticate",
    "build_app",
    "create_app",
    "error_body",
    "events_table",
    "load_settings",
    "long_poll",
    "raise_for_response",
    "read_events",
    "run_migrations_env",
    "serve",
    "state_of",
]


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module 'shipyard.service' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"shipyard.service.{module}"), name)
    globals()[name] = value
    return value
