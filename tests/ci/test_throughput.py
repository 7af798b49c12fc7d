"""Throughput: a pipeline of 1,000 one-step jobs flows at 50 jobs/s or more, end to end,
with 8 runner processes of 8 slots each speaking the protocol over HTTP (claim, log,
complete: three requests a job)."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from shipyard.service import Settings
from tests.ci.conftest import running_ci, unique

JOBS = 1000
RUNNERS = 8
SLOTS = 8
ROOT = Path(__file__).resolve().parents[2]


def wide(label: str, n: int) -> str:
    jobs = "\n".join(
        f"  j{i}: {{runs-on: {label}, steps: [{{run: echo {i}}}]}}" for i in range(n)
    )
    return f"on: push\njobs:\n{jobs}\n"


@pytest.mark.slow
def test_a_thousand_jobs_flow_at_fifty_per_second(settings: Settings, tmp_path: Path) -> None:
    label = unique("wide")
    stop = tmp_path / "stop"
    with running_ci(settings) as ci:
        runners = [ci.runner(label) for _ in range(RUNNERS)]
        procs = [
            subprocess.Popen(
                [sys.executable, "-m", "tests.ci.load_runner", ci.url, r.token, str(SLOTS),
                 str(stop)],
                cwd=ROOT, stdout=subprocess.PIPE, text=True,
            )
            for r in runners
        ]
        try:
            time.sleep(1.0)  # every slot is waiting in a claim
            started = time.monotonic()
            pid = ci.create(wide(label, JOBS))
            done = ci.wait_done(pid, timeout=120)
            elapsed = time.monotonic() - started
        finally:
            stop.touch()
            outputs = [p.communicate(timeout=60)[0] for p in procs]
        ran = [job for out in outputs for job in json.loads(out.strip().splitlines()[-1])]
        assert done["conclusion"] == "success"
        assert len(done["jobs"]) == JOBS
        assert len(ran) == JOBS and len(set(ran)) == JOBS  # each job handed out once
        rate = JOBS / elapsed
        print(f"\n{settings.database_url or 'sqlite'}: {rate:.0f} jobs/s ({elapsed:.1f}s)")
        assert rate >= 50, f"{rate:.1f} jobs/s"
