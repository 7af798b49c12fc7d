"""Running one job: steps, shells, runner files, workflow commands, masking.

::

    runner = JobRunner(get_executor("local"), reporter, work_root=Path("/var/lib/shipyard/work"))
    result = runner.run(request, cancel=threading.Event())

The runner creates the job's workspace and temp dir under ``work_root``, runs each step
through the executor, streams masked output to the :class:`~shipyard.workflow._runtime.Reporter`
and returns a :class:`~shipyard.workflow._runtime.JobResult`.
"""

from shipyard.workflow.runner._commands import Command, parse_command
from shipyard.workflow.runner._files import parse_key_values
from shipyard.workflow.runner._job import JobRunner, job_dir_name
from shipyard.workflow.runner._masking import MASK, Masker
from shipyard.workflow.runner._shells import ShellCommand, resolve_shell

__all__ = [
    "MASK",
    "Command",
    "JobRunner",
    "Masker",
    "ShellCommand",
    "job_dir_name",
    "parse_command",
    "parse_key_values",
    "resolve_shell",
]
