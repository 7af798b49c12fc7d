"""Idle cost: ``shipyard up`` with 2 runners, memory and CPU when nothing runs.

After start-up settles, every process of the tree (supervisor, services, runners) is
read from /proc: the sum of resident memory, and CPU time used over a window, as a share
of one core. Targets: at most 400 MB RSS in all and under 2% CPU.

    python bench/bench_idle.py [--settle 10] [--window 30] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from _platform import platform

_TICK = os.sysconf("SC_CLK_TCK")
_PAGE = os.sysconf("SC_PAGE_SIZE")


def _rss_bytes(pid: int) -> int:
    try:
        fields = Path(f"/proc/{pid}/statm").read_text().split()
    except OSError:
        return 0
    return int(fields[1]) * _PAGE


def _cpu_seconds(pid: int) -> float:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return 0.0
    fields = stat.rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / _TICK


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--settle", type=float, default=10)
    ap.add_argument("--window", type=float, default=30)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    with platform(runners=2) as plat:
        time.sleep(args.settle)
        pids = plat.pids()
        cpu0 = sum(_cpu_seconds(p) for p in pids)
        t0 = time.monotonic()
        time.sleep(args.window)
        cpu1 = sum(_cpu_seconds(p) for p in pids)
        elapsed = time.monotonic() - t0
        rss = sum(_rss_bytes(p) for p in plat.pids())
        count = len(plat.pids())
    result = {
        "processes": count, "rss_mb": round(rss / 1e6, 1),
        "cpu_percent": round(100 * (cpu1 - cpu0) / elapsed, 2),
        "targets": {"rss_mb": 400, "cpu_percent": 2},
    }
    if args.json:
        print(json.dumps(result))
    else:
        print(f"idle with 2 runners: {result['processes']} processes, {result['rss_mb']} MB RSS "
              f"(target 400), {result['cpu_percent']}% CPU (target 2)")


if __name__ == "__main__":
    main()
