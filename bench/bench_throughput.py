"""Throughput: a pipeline of 1,000 one-step jobs on 8 runner agents x 8 slots.

``shipyard up`` runs with 8 runners of 8 slots each, on SQLite (the default) and on
PostgreSQL (``--postgres URL``, e.g. the one ``scripts/postgres`` prints). One push
starts a workflow of 1,000 independent jobs, each one ``run: "true"`` step. Reported:
jobs per second from the push returning to the pipeline completing (target: at least
50), and the HTTP requests the platform served per job (from the services' /metrics).

    python bench/bench_throughput.py [--jobs 1000] [--postgres URL] [--json]
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import tempfile
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).parent))
from _platform import Platform, init_project, platform

_REQ = re.compile(r'^shipyard_http_requests_total\{(.*)\} ([0-9.e+]+)$', re.M)


def requests_served(plat: Platform) -> dict[str, float]:
    """Requests each service has answered so far, by its /metrics (through the gateway)."""
    out: dict[str, float] = {}
    with plat.api as api:
        for svc in ("git", "ci", "store"):
            r = api.get(f"/metrics/{svc}")
            if r.status_code != 200:
                continue
            out[svc] = sum(float(v) for labels, v in _REQ.findall(r.text) if "/metrics" not in labels)
    gw = httpx.get(f"{plat.url}/metrics", timeout=10).text
    out["gateway"] = sum(float(v) for labels, v in _REQ.findall(gw) if "/metrics" not in labels)
    return out


def run(jobs: int, database_url: str) -> dict[str, object]:
    work = Path(tempfile.mkdtemp(prefix="shipyard-bench-tp-"))
    lines = ["name: wide", "on: push", "jobs:"]
    for j in range(jobs):
        lines += [f"  j{j:04d}:", "    runs-on: ubuntu-latest", "    steps:", '      - run: "true"']
    project = work / "project"
    project.mkdir()
    init_project(project, "\n".join(lines) + "\n")
    with platform(runners=8, concurrency=8, database_url=database_url) as plat:
        remote = plat.create_repo("wide")
        plat.git(project, "remote", "add", "origin", remote)
        before = requests_served(plat)
        t0 = time.monotonic()
        plat.git(project, "push", "-q", "origin", "main")
        (pipeline,) = plat.wait_pipeline_done("wide", 1, timeout=1800)
        elapsed = time.monotonic() - t0
        after = requests_served(plat)
    served = {k: after.get(k, 0) - before.get(k, 0) for k in after}
    return {
        "backend": "postgresql" if database_url else "sqlite",
        "jobs": jobs, "seconds": round(elapsed, 2),
        "jobs_per_s": round(jobs / elapsed, 1),
        "conclusion": pipeline.get("conclusion"),
        "requests_per_job": {k: round(v / jobs, 2) for k, v in served.items()},
        "target_jobs_per_s": 50,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--jobs", type=int, default=1000)
    ap.add_argument("--postgres", default="", help="also run on this PostgreSQL")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    results = [run(args.jobs, "")]
    if args.postgres:
        results.append(run(args.jobs, args.postgres))
    for r in results:
        if args.json:
            print(json.dumps(r))
        else:
            print(f"{r['backend']}: {r['jobs']} jobs in {r['seconds']} s = {r['jobs_per_s']} jobs/s "
                  f"(target 50), {r['conclusion']}; requests per job {r['requests_per_job']}")


if __name__ == "__main__":
    main()
