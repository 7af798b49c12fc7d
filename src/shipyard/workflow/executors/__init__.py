"""Where a job's processes run: on the host, in a bubblewrap sandbox, or in containers.

::

    executor = get_executor("sandbox", network=False)
    session = executor.start_job(JobSpec(key="build", paths=paths))
    try:
        proc = session.spawn(["bash", "-c", "make"], cwd=str(paths.workspace), env=env)
        ...
    finally:
        session.close()
"""

from __future__ import annotations

from shipyard.errors import ExecutorError
from shipyard.workflow.executors._base import (
    ContainerSpec,
    Executor,
    JobPaths,
    JobSession,
    JobSpec,
    Process,
)
from shipyard.workflow.executors._local import HostProcess, LocalExecutor

__all__ = [
    "EXECUTOR_NAMES",
    "ContainerSpec",
    "Executor",
    "HostProcess",
    "JobPaths",
    "JobSession",
    "JobSpec",
    "LocalExecutor",
    "Process",
    "get_executor",
]

EXECUTOR_NAMES = ("local", "sandbox", "docker")


def get_executor(name: str, *, network: bool = True) -> Executor:
    """The executor called ``name``; raises ExecutorError when it cannot be used here."""
    if name == "local":
        if not network:
            raise ExecutorError(
                "the local executor cannot turn the network off; use --executor sandbox"
            )
        return LocalExecutor()
    if name == "sandbox":
        from shipyard.workflow.executors._sandbox import SandboxExecutor

        return SandboxExecutor(network=network)
    if name == "docker":
        from shipyard.workflow.executors._docker import DockerExecutor

        return DockerExecutor(network=network)
    raise ExecutorError(f"unknown executor '{name}' (choose one of: {', '.join(EXECUTOR_NAMES)})")
