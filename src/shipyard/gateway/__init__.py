"""The gateway: the one door of a Shipyard installation.

People, the CLI and runners talk to the gateway only. It forwards ``/api/v1/...`` and
git's smart HTTP to the git, store and ci services (streaming bodies both ways, see
:mod:`shipyard.gateway._proxy`), answers ``/api/v1/whoami`` and issues tokens on
``/api/v1/tokens``, and reports every service's health on ``/healthz``. It keeps no
database: tokens are signed, so any service checks them on its own.
"""

from __future__ import annotations

from fastapi import FastAPI

from shipyard.gateway._app import create_gateway_app
from shipyard.gateway._routes import PREFIXES, PROXIED_SERVICES
from shipyard.service import Settings

__all__ = ["PREFIXES", "PROXIED_SERVICES", "create_app"]


def create_app(settings: Settings) -> FastAPI:
    """The gateway's app, forwarding to ``settings.git_url``, ``store_url`` and ``ci_url``."""
    return create_gateway_app(settings)
