"""Push-to-start: from ``git push`` returning to the first step's process starting.

``shipyard up`` runs with one idle runner. Each round commits, pushes with the real git
client, and notes the time the push returned; the workflow's first step writes the time
its process started (``date +%s.%N``) to a file. Between rounds the pipeline finishes,
so the runner is idle again. Reported: p50 and p95 over the measured rounds (after a
few warm-up pushes), against the targets of 200 ms and 500 ms.

    python bench/bench_push_to_start.py [--rounds 30] [--json]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from _platform import init_project, percentile, platform


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rounds", type=int, default=30)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="shipyard-bench-p2s-"))
    marker = work / "starts"
    marker.touch()
    workflow = (
        "name: start\non: push\njobs:\n  first:\n    runs-on: ubuntu-latest\n    steps:\n"
        f"      - run: date +%s.%N >> {marker}\n"
    )
    project = work / "project"
    project.mkdir()
    init_project(project, workflow)
    latencies: list[float] = []
    with platform(runners=1, concurrency=1) as plat:
        remote = plat.create_repo("p2s")
        plat.git(project, "remote", "add", "origin", remote)
        total = args.warmup + args.rounds
        for n in range(total):
            if n:
                plat.git(project, "commit", "-q", "--allow-empty", "-m", f"round {n}")
            before = len(marker.read_text().split())
            plat.git(project, "push", "-q", "origin", "main")
            pushed = time.time()
            deadline = time.monotonic() + 60
            while len(lines := marker.read_text().split()) <= before:
                if time.monotonic() > deadline:
                    sys.exit(f"round {n}: the step did not start within 60 s")
                time.sleep(0.002)
            started = float(lines[-1])
            plat.wait_pipeline_done("p2s", n + 1)
            if n >= args.warmup:
                latencies.append(started - pushed)
    ms = [x * 1000 for x in latencies]
    result = {
        "rounds": len(ms), "p50_ms": round(percentile(ms, 0.5), 1),
        "p95_ms": round(percentile(ms, 0.95), 1), "min_ms": round(min(ms), 1),
        "max_ms": round(max(ms), 1), "mean_ms": round(statistics.mean(ms), 1),
        "targets": {"p50_ms": 200, "p95_ms": 500},
    }
    if args.json:
        print(json.dumps(result))
    else:
        print(f"push-to-start over {result['rounds']} pushes: p50 {result['p50_ms']} ms "
              f"(target 200), p95 {result['p95_ms']} ms (target 500), "
              f"min {result['min_ms']} ms, max {result['max_ms']} ms")


if __name__ == "__main__":
    main()
