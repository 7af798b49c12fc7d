"""The ``shipyard`` command."""

from shipyard.cli import _pipelines, _server, _up
from shipyard.cli._app import app, main
from shipyard.runner._cli import runner_command

__all__ = ["app", "main"]

_up.register(app)
_server.register(app)
_pipelines.register(app)
app.command("runner")(runner_command)
