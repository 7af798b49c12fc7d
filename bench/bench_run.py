"""Overhead of ``shipyard run`` against the floor of starting the same processes.

A workflow of 20 jobs x 5 ``run: "true"`` steps (no checkout) is run with the
``shipyard`` command; the floor is a plain bash loop starting 100 ``bash -c true``
processes in series, measured in the same run. Reported: medians of N rounds, the
overhead above the floor per step and per job, and the ratio.

    python bench/bench_run.py [--rounds 5] [--json]

Targets: at most 5 ms per step and 20 ms per job above the floor.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

JOBS, STEPS = 20, 5


def make_repo(root: Path) -> None:
    wf = root / ".github" / "workflows"
    wf.mkdir(parents=True)
    lines = ["name: overhead", "on: push", "jobs:"]
    for j in range(JOBS):
        lines += [f"  job{j}:", "    runs-on: ubuntu-latest", "    steps:"]
        lines += ['      - run: "true"'] * STEPS
    (wf / "bench.yml").write_text("\n".join(lines) + "\n")
    env = dict(os.environ, GIT_AUTHOR_NAME="b", GIT_AUTHOR_EMAIL="b@b", GIT_COMMITTER_NAME="b",
               GIT_COMMITTER_EMAIL="b@b")
    for cmd in (["git", "init", "-q", "-b", "main"], ["git", "add", "-A"],
                ["git", "commit", "-q", "-m", "bench"]):
        subprocess.run(cmd, cwd=root, check=True, env=env)


def timed(cmd: list[str], cwd: Path, env: dict[str, str]) -> float:
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, cwd=cwd, env=env, stdout=subprocess.DEVNULL,
                          stderr=subprocess.PIPE, text=True)
    elapsed = time.perf_counter() - t0
    if proc.returncode != 0:
        sys.exit(f"{' '.join(cmd)} failed:\n{proc.stderr[-2000:]}")
    return elapsed


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    shipyard = shutil.which("shipyard") or str(Path(sys.executable).parent / "shipyard")
    tmp = Path(tempfile.mkdtemp(prefix="shipyard-bench-run-"))
    try:
        repo = tmp / "repo"
        repo.mkdir()
        make_repo(repo)
        env = dict(os.environ, SHIPYARD_HOME=str(tmp / "home"))
        floor_cmd = ["bash", "-c", f"for i in $(seq {JOBS * STEPS}); do bash -c true; done"]
        cases = {
            "floor (100 x bash -c true)": floor_cmd,
            "shipyard run": [shipyard, "run", "-q"],
            "shipyard run --jobs 1": [shipyard, "run", "-q", "--jobs", "1"],
            "shipyard --help (startup)": [shipyard, "--help"],
        }
        samples: dict[str, list[float]] = {k: [] for k in cases}
        timed(cases["shipyard run"], repo, env)  # warm caches
        for _ in range(args.rounds):
            for name, cmd in cases.items():  # interleaved: noise hits every case alike
                samples[name].append(timed(cmd, repo, env))
        med = {k: statistics.median(v) for k, v in samples.items()}
        floor = med["floor (100 x bash -c true)"]
        results = {}
        for name in ("shipyard run", "shipyard run --jobs 1"):
            over = med[name] - floor
            results[name] = {
                "median_s": round(med[name], 4),
                "overhead_s": round(over, 4),
                "overhead_per_step_ms": round(over * 1000 / (JOBS * STEPS), 2),
                "budget_s": (JOBS * STEPS * 5 + JOBS * 20) / 1000,
                "ratio_to_floor": round(med[name] / floor, 2),
            }
        out = {
            "rounds": args.rounds, "cores": os.cpu_count(),
            "floor_s": round(floor, 4),
            "startup_s": round(med["shipyard --help (startup)"], 4),
            "results": results,
        }
        if args.json:
            print(json.dumps(out, indent=2))
            return
        print(f"20 jobs x 5 steps, medians of {args.rounds} rounds, {os.cpu_count()} cores")
        print(f"{'case':<28}{'median':>10}{'over floor':>12}{'per step':>10}{'ratio':>8}")
        print(f"{'floor (100 x bash -c true)':<28}{floor:>9.3f}s")
        for name, r in results.items():
            print(f"{name:<28}{r['median_s']:>9.3f}s{r['overhead_s']:>11.3f}s"
                  f"{r['overhead_per_step_ms']:>8.2f}ms{r['ratio_to_floor']:>7.2f}x")
        print(f"{'shipyard --help (startup)':<28}{med['shipyard --help (startup)']:>9.3f}s")
        print("budget above the floor: 100 x 5 ms + 20 x 20 ms = 0.900 s")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
