"""Running one process of a step: streaming its output, enforcing timeouts and cancellation."""

from __future__ import annotations

import enum
import os
import select
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from shipyard.workflow.executors import JobSession
from shipyard.workflow.runner._output import OutputProcessor

_READ = 1 << 20
# How often a quiet step is checked for cancellation and for having exited while a
# background child still holds its output open.
_TICK = 0.1
# How long output is still read after a process has ended but left the pipe open.
_DRAIN = 0.2
KILL_GRACE = 1.0


class Stop(enum.Enum):
    """Why a process was ended by the runner."""

    STEP_TIMEOUT = "step-timeout"
    JOB_TIMEOUT = "job-timeout"
    CANCELLED = "cancelled"


@dataclass(slots=True)
class Limits:
    """When to stop a process: deadlines (``time.monotonic``) and the cancel event."""

    step_deadline: float | None = None
    job_deadline: float | None = None
    cancel: threading.Event | None = None  # None: cancellation does not stop this process


@dataclass(slots=True)
class Outcome:
    exit_code: int
    stopped: Stop | None = None


def run_process(
    session: JobSession,
    argv: list[str],
    cwd: str,
    env: Mapping[str, str],
    output: OutputProcessor,
    limits: Limits,
) -> Outcome:
    """Run ``argv`` to its end (or until a limit hits), feeding all output to ``output``.

    Raises ExecutorError when the process cannot be started.
    """
    proc = session.spawn(argv, cwd, env)
    fd = proc.fileno()
    stopped: Stop | None = None
    cancel = limits.cancel
    deadline, reason = _first_deadline(limits)
    feed = output.feed
    read = os.read
    next_poll = time.monotonic() + _TICK
    try:
        while True:
            if cancel is not None and cancel.is_set():
                stopped = Stop.CANCELLED
                break
            now = time.monotonic()
            wait = _TICK
            if deadline is not None:
                left = deadline - now
                if left <= 0:
                    stopped = reason
                    break
                wait = min(wait, left)
            ready, _, _ = select.select([fd], [], [], wait)
            if ready:
                data = read(fd, _READ)
                if not data:
                    break
                feed(data)
                now = time.monotonic()
                if now < next_poll:
                    continue
            next_poll = now + _TICK
            # The process may have ended while something it started in the background
            # keeps the pipe open (``server &``): the step is over all the same.
            if proc.poll() is not None:
                _drain(fd, feed, _DRAIN)
                break
        while stopped is None:
            # Output closed; the process may still run (``exec >/dev/null; sleep 60``).
            try:
                return Outcome(proc.wait(_TICK), None)
            except TimeoutError:
                pass
            if cancel is not None and cancel.is_set():
                stopped = Stop.CANCELLED
            elif deadline is not None and time.monotonic() >= deadline:
                stopped = reason
        proc.kill(KILL_GRACE)
        _drain(fd, feed, _DRAIN)
        code = proc.wait()
    except BaseException:
        # A failing reporter or an interrupt must not leave the step running unseen.
        proc.kill(KILL_GRACE)
        raise
    finally:
        proc.close()
        output.finish()
    return Outcome(code, stopped)


def _first_deadline(limits: Limits) -> tuple[float | None, Stop | None]:
    step, job = limits.step_deadline, limits.job_deadline
    if step is not None and (job is None or step <= job):
        return step, Stop.STEP_TIMEOUT
    if job is not None:
        return job, Stop.JOB_TIMEOUT
    return None, None


def _drain(fd: int, feed: Callable[[bytes], None], limit: float) -> None:
    """Read what is left in the pipe, without waiting longer than ``limit`` in all."""
    end = time.monotonic() + limit
    while True:
        left = end - time.monotonic()
        if left <= 0:
            return
        ready, _, _ = select.select([fd], [], [], left)
        if not ready:
            return
        data = os.read(fd, _READ)
        if not data:
            return
        feed(data)
