"""The runner agent: takes jobs from ci, runs them with the workflow library, reports back.

::

    from shipyard.runner import Agent

    agent = Agent("http://127.0.0.1:8080", registration_token, concurrency=4)
    agent.run()  # until agent.stop()

An agent registers, long-polls for jobs whose ``runs-on`` labels it serves (by default
:data:`DEFAULT_LABELS`: ``self-hosted``, ``linux``, ``x64``, ``ubuntu-latest``,
``ubuntu-24.04`` and ``ubuntu-22.04``, so GitHub workflows run unchanged), rebuilds each
job's ``JobRequest`` from its :class:`Assignment`, runs it with ``JobRunner`` on the
chosen executor, and streams its log (format in :mod:`shipyard.runner._log`), step
states and result back through the runner protocol of docs/api.md. ``shipyard runner``
(:func:`runner_command`) is the command line around it.
"""

from typing import TYPE_CHECKING, Any

from shipyard.runner._agent import (
    DEFAULT_LABELS,
    Agent,
    AgentListener,
    ServicesFactory,
    runner_id_of,
)
from shipyard.runner._assignment import Assignment, WorkflowCache, WorkflowFile, build_job_request
from shipyard.runner._log import JobStream, StreamStats
from shipyard.runner._protocol import (
    Backoff,
    BadResponseError,
    LogOffsetError,
    Registration,
    RunnerApi,
)

if TYPE_CHECKING:
    from shipyard.runner._cli import runner_command


def __getattr__(name: str) -> Any:
    # The command line (Typer, Rich) loads only when asked for: the agents of
    # ``shipyard up`` run without it.
    if name == "runner_command":
        from shipyard.runner._cli import runner_command

        return runner_command
    raise AttributeError(name)


__all__ = [
    "DEFAULT_LABELS",
    "Agent",
    "AgentListener",
    "Assignment",
    "Backoff",
    "BadResponseError",
    "JobStream",
    "LogOffsetError",
    "Registration",
    "RunnerApi",
    "ServicesFactory",
    "StreamStats",
    "WorkflowCache",
    "WorkflowFile",
    "build_job_request",
    "runner_command",
    "runner_id_of",
]
