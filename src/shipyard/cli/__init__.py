"""The ``shipyard`` command."""

from shipyard.cli._app import app, main

__all__ = ["app", "main"]
