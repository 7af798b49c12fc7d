"""``python -m shipyard.runner._host``: the local runner agents of ``shipyard up``, one process.

gitlab-runner serves all the runners registered on a host from one process; ``shipyard
up`` does the same with its local agents. Each agent is registered on its own (its own
name, token, slots and working folder ``<work-dir>/<i>``) and runs in its own thread;
they share one HTTP connection pool. One process instead of one per agent saves about
45 MB per agent (the interpreter, pydantic, httpx and the workflow library are loaded
once), and leaves out the command line's modules (Typer, Rich) altogether. A job's
steps run as processes of their own either way, so agents share no job state.

Signals are those of ``shipyard runner``: the first SIGTERM/SIGINT drains every agent
and lets running jobs finish; a second cancels them. The exit status is 1 when an agent
was refused by the server (``up`` then starts the process again with a fresh token).

Remote runners use ``shipyard runner``, one agent per process, as before.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import threading
from pathlib import Path
from types import FrameType

import httpx

from shipyard import _hugepages
from shipyard.errors import RequestError, ShipyardError
from shipyard.runner._agent import Agent
from shipyard.runner._assignment import Assignment

__all__ = ["main"]

log = logging.getLogger("shipyard.runner")


class _LogListener:
    """One plain line per event (the output goes to ``up``'s log file, not a terminal)."""

    def registered(self, agent: Agent) -> None:
        print(f"Runner {agent.runner_id} {agent.name} connected to {agent.server} "
              f"({agent.concurrency} slots, executor {agent.executor_name}; "
              f"labels {', '.join(agent.labels)})", flush=True)

    def job_started(self, a: Assignment) -> None:
        print(f"job {a.job_id} {a.name} {a.repo}@{a.sha[:7]} started", flush=True)

    def job_finished(self, a: Assignment, conclusion: str, duration: float) -> None:
        print(f"job {a.job_id} {a.name} {conclusion} in {duration:.1f}s", flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m shipyard.runner._host", description=__doc__)
    parser.add_argument("--server", required=True, help="The gateway's URL.")
    parser.add_argument("--ci-url", required=True, help="ci's own URL.")
    parser.add_argument("--store-url", required=True, help="store's own URL.")
    parser.add_argument("--name", required=True, help="Agent i is named NAME-i.")
    parser.add_argument("--agents", type=int, required=True)
    parser.add_argument("--concurrency", type=int, default=1, help="Slots of each agent.")
    parser.add_argument("--executor", default="local")
    parser.add_argument("--work-dir", type=Path, required=True, help="Agent i works in DIR/i.")
    args = parser.parse_args(argv)
    # Jobs' steps inherit this process's environment: neither the malloc tunable ``up``
    # started it with nor the token may be in it.
    _hugepages.restore()
    token = os.environ.pop("SHIPYARD_RUNNER_TOKEN", "")
    if not token or args.agents < 1:
        print("error: SHIPYARD_RUNNER_TOKEN and --agents 1 or more are needed", file=sys.stderr)
        return 2
    logging.basicConfig(level=logging.INFO, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(message)s")
    slots = args.agents * args.concurrency
    http = httpx.Client(limits=httpx.Limits(max_connections=4 * slots + 8,
                                            max_keepalive_connections=2 * slots + 4))
    try:
        agents = [
            Agent(args.server, token, name=f"{args.name}-{i}", concurrency=args.concurrency,
                  executor=args.executor, work_dir=args.work_dir / str(i), http=http,
                  api_url=args.ci_url, store_url=args.store_url, listener=_LogListener())
            for i in range(1, args.agents + 1)
        ]
    except ShipyardError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    failed = threading.Event()

    def run(agent: Agent) -> None:
        try:
            agent.run()
        except RequestError as err:
            print(f"error: {agent.name}: {err}", file=sys.stderr, flush=True)
            failed.set()
            for other in agents:  # exit so that up starts the process again
                other.stop()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        if any(a.stopping for a in agents):
            print("cancelling running jobs", file=sys.stderr, flush=True)
        else:
            print("stopping", file=sys.stderr, flush=True)
        for agent in agents:
            agent.stop()

    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, on_signal)
    threads = [threading.Thread(target=run, args=(a,), name=a.name) for a in agents]
    for thread in threads:
        thread.start()
    for thread in threads:
        while thread.is_alive():  # join in slices: signal handlers run in this thread
            thread.join(0.5)
    http.close()
    done = sum(a.jobs_run for a in agents)
    print(f"Runners stopped after {done} job{'s' if done != 1 else ''}", flush=True)
    return 1 if failed.is_set() else 0


if __name__ == "__main__":
    sys.exit(main())
