"""What every Shipyard service shares: settings, database, tokens, the app, feeds, clients.

The services (``git``, ``store``, ``ci``, ``gateway``) are thin HTTP shells over the
libraries; this package is the shell's common part, so each service holds only its own
routes, tables and logic.
"""

from shipyard.service._app import Auth, ServiceState, authenticate, create_app, error_body, state_of
from shipyard.service._auth import Claims, TokenSigner
from shipyard.service._client import ServiceClient, raise_for_response
from shipyard.service._db import Database, run_migrations_env
from shipyard.service._feed import Notifier, append_event, events_table, long_poll, read_events
from shipyard.service._serve import build_app, serve
from shipyard.service._settings import SERVICES, Settings, load_settings

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
