"""``shipyard up``: one installation on one machine, every service its own process.

:class:`Supervisor` starts git, store, ci and the gateway (each ``shipyard serve``),
waits until they are healthy, starts the local runner agents, restarts any child that
dies (with backoff), and stops them all in order on SIGINT/SIGTERM. The data dir holds
everything that must survive a restart (see :mod:`shipyard.supervisor._files`).
"""

from shipyard.supervisor._child import RotatingLog
from shipyard.supervisor._files import DataDirLock, ensure_admin_token, write_private
from shipyard.supervisor._supervisor import ReadyInfo, Supervisor, UpOptions, runner_available

__all__ = [
    "DataDirLock",
    "ReadyInfo",
    "RotatingLog",
    "Supervisor",
    "UpOptions",
    "ensure_admin_token",
    "runner_available",
    "write_private",
]
