"""The ``shipyard`` command.

``shipyard infra ...`` loads only what infra needs (see
:func:`shipyard.cli._infra_fast.main`): the client, server and runner commands (which import
httpx, FastAPI and friends) are attached only when another command, or ``app`` itself,
is asked for.
"""

from __future__ import annotations

import gc
import sys
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from shipyard.cli._app import app

__all__ = ["app", "main"]

_registered = False


def _register_all() -> None:
    """Attach the commands that need the client, server and runner packages (once)."""
    global _registered
    if _registered:
        return
    from shipyard.cli import _pipelines, _server, _up
    from shipyard.cli._app import app
    from shipyard.runner._cli import runner_command

    _up.register(app)
    _server.register(app)
    _pipelines.register(app)
    app.command("runner")(runner_command)
    _registered = True


def __getattr__(name: str) -> Any:
    if name == "app":
        _register_all()
        from shipyard.cli._app import app

        return app
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def main() -> None:
    """Entry point of the ``shipyard`` script."""
    if sys.argv[1:2] == ["infra"]:
        # Planning a large stack creates hundreds of thousands of small objects that
        # live until the command ends; the default thresholds would scan them again and
        # again (a third of a 10,000-resource plan). A short-lived command can collect
        # far less often.
        gc.freeze()
        gc.set_threshold(200_000, 50, 100)
        # Straight to the infra commands: neither the other commands nor Rich load.
        from shipyard.cli._infra_fast import main as run_infra

        run_infra(sys.argv[2:])
        return
    _register_all()
    from shipyard.cli._app import main as run

    run()
