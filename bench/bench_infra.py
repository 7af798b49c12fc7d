"""Infrastructure as code: `shipyard infra` against Terraform, in the same run.

Terraform (``terraform`` on the PATH, 1.11 here) manages ``terraform_data`` resources;
Shipyard manages their counterpart, ``null``. Each tool runs as its command line, as a
user would type it, timed from start to exit (so start-up and imports count):

- 1,000 independent resources: plan (nothing applied yet), apply, no-change plan.
  Targets: apply at least 10x faster than Terraform, no-change plan at least 3x.
- 1,000 chained resources (each one's input is the previous one's output): plan, apply,
  and the state's size. Target: apply at least 50x faster; state size linear in the
  number of resources (also measured at 100 and 10,000 for Shipyard).
- 10,000 independent resources (Shipyard alone): no-change plan under 3 s, and the
  plan's peak memory (max RSS).

Each figure is the median of ``--rounds`` runs (fresh folders each round).

    python bench/bench_infra.py [--rounds 3] [--terraform-rounds N] [--json]
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
from collections.abc import Callable
from pathlib import Path

SHIPYARD = [sys.executable, "-m", "shipyard"]
TF_ENV = {"TF_IN_AUTOMATION": "1", "TF_INPUT": "0", "CHECKPOINT_DISABLE": "1"}


# -- stacks ------------------------------------------------------------------------------


def shipyard_independent(n: int) -> str:
    return (
        "resources:\n"
        "  r:\n"
        "    type: null\n"
        f"    count: {n}\n"
        "    properties:\n"
        "      input: value-${{ count.index }}\n"
    )


def shipyard_chained(n: int) -> str:
    lines = ["resources:"]
    for i in range(n):
        value = "start" if i == 0 else f"${{{{ resources.r{i - 1:05d}.output }}}}"
        lines += [f"  r{i:05d}:", "    type: null", "    properties:", f"      input: {value}"]
    return "\n".join(lines) + "\n"


def terraform_independent(n: int) -> str:
    return (
        'resource "terraform_data" "r" {\n'
        f"  count = {n}\n"
        '  input = "value-${count.index}"\n'
        "}\n"
    )


def terraform_chained(n: int) -> str:
    blocks = []
    for i in range(n):
        value = '"start"' if i == 0 else f"terraform_data.r{i - 1:05d}.output"
        blocks.append(f'resource "terraform_data" "r{i:05d}" {{\n  input = {value}\n}}\n')
    return "\n".join(blocks)


# -- running -----------------------------------------------------------------------------


def timed(argv: list[str], cwd: Path, env: dict[str, str] | None = None,
          ok: tuple[int, ...] = (0,)) -> tuple[float, int]:
    """Seconds the command took, and its peak RSS in KiB (from wait4, its own)."""
    t0 = time.perf_counter()
    proc = subprocess.Popen(argv, cwd=cwd, env={**os.environ, **(env or {})},
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    assert proc.stderr is not None
    err = proc.stderr.read()
    _, status, usage = os.wait4(proc.pid, 0)
    elapsed = time.perf_counter() - t0
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode not in ok:
        raise SystemExit(f"{' '.join(argv)} exited {proc.returncode}:\n{err.decode()[-2000:]}")
    return elapsed, usage.ru_maxrss


def shipyard_round(stack: str, *, chained: bool) -> dict[str, float]:
    work = Path(tempfile.mkdtemp(prefix="shipyard-bench-infra-"))
    try:
        (work / "stack.yaml").write_text(stack)
        env = {"HOME": str(work)}  # the key file, were one needed, stays in the work dir
        plan, _ = timed([*SHIPYARD, "infra", "plan"], work, env, ok=(2,))
        apply, _ = timed([*SHIPYARD, "infra", "apply", "--yes"], work, env)
        noop, rss = timed([*SHIPYARD, "infra", "plan"], work, env, ok=(0,))
        return {"plan": plan, "apply": apply, "noop_plan": noop,
                "state_bytes": _shipyard_state_size(work), "noop_plan_rss_kib": rss}
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _shipyard_state_size(work: Path) -> int:
    versions = sorted((work / ".shipyard" / "state" / "versions").glob("*.json"))
    return versions[-1].stat().st_size if versions else 0


def terraform_round(config: str) -> dict[str, float]:
    work = Path(tempfile.mkdtemp(prefix="shipyard-bench-tf-"))
    try:
        (work / "main.tf").write_text(config)
        timed(["terraform", "init", "-input=false", "-no-color"], work, TF_ENV)
        plan, _ = timed(["terraform", "plan", "-input=false", "-no-color", "-detailed-exitcode"],
                        work, TF_ENV, ok=(2,))
        apply, _ = timed(["terraform", "apply", "-auto-approve", "-input=false", "-no-color"],
                         work, TF_ENV)
        noop, _ = timed(["terraform", "plan", "-input=false", "-no-color", "-detailed-exitcode"],
                        work, TF_ENV, ok=(0,))
        return {"plan": plan, "apply": apply, "noop_plan": noop,
                "state_bytes": (work / "terraform.tfstate").stat().st_size}
    finally:
        shutil.rmtree(work, ignore_errors=True)


def medians(runs: list[dict[str, float]]) -> dict[str, float]:
    return {k: round(statistics.median(r[k] for r in runs), 3) for k in runs[0]}


def repeat(fn: Callable[[], dict[str, float]], rounds: int, label: str) -> dict[str, float]:
    runs = []
    for i in range(rounds):
        print(f"  {label}: round {i + 1}/{rounds}", file=sys.stderr, flush=True)
        runs.append(fn())
    return medians(runs)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--terraform-rounds", type=int, default=None,
                    help="rounds for Terraform's chained run (3 minutes each here); default --rounds")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    if shutil.which("terraform") is None:
        raise SystemExit("terraform is not on the PATH: it is the anchor of this benchmark")
    tf_rounds = args.terraform_rounds or args.rounds
    n = 1000
    results: dict[str, object] = {}

    sy = repeat(lambda: shipyard_round(shipyard_independent(n), chained=False), args.rounds,
                "shipyard 1,000 independent")
    tf = repeat(lambda: terraform_round(terraform_independent(n)), args.rounds,
                "terraform 1,000 independent")
    results["independent_1000"] = {
        "shipyard": sy, "terraform": tf,
        "apply_speedup": round(tf["apply"] / sy["apply"], 1),
        "noop_plan_speedup": round(tf["noop_plan"] / sy["noop_plan"], 1),
        "targets": {"apply_speedup": 10, "noop_plan_speedup": 3},
    }
    sy = repeat(lambda: shipyard_round(shipyard_chained(n), chained=True), args.rounds,
                "shipyard 1,000 chained")
    tf = repeat(lambda: terraform_round(terraform_chained(n)), tf_rounds,
                "terraform 1,000 chained")
    sizes = {}
    for count in (100, 1000, 10000):
        r = sy if count == n else shipyard_round(shipyard_chained(count), chained=True)
        sizes[count] = int(r["state_bytes"])
    results["chained_1000"] = {
        "shipyard": sy, "terraform": tf,
        "apply_speedup": round(tf["apply"] / sy["apply"], 1),
        "targets": {"apply_speedup": 50},
        "shipyard_state_bytes_per_resource": {c: round(b / c, 1) for c, b in sizes.items()},
    }
    big = repeat(lambda: shipyard_round(shipyard_independent(10 * n), chained=False),
                 args.rounds, "shipyard 10,000 independent")
    results["independent_10000"] = {
        "shipyard": big, "targets": {"noop_plan_s": 3.0},
        "noop_plan_peak_rss_mb": round(big["noop_plan_rss_kib"] / 1024, 1),
    }
    if args.json:
        print(json.dumps(results, indent=2))
        return
    ind = results["independent_1000"]
    ch = results["chained_1000"]
    assert isinstance(ind, dict) and isinstance(ch, dict)
    print("1,000 independent (median s)    shipyard   terraform   speed-up")
    for key in ("plan", "apply", "noop_plan"):
        s, t = ind["shipyard"][key], ind["terraform"][key]
        print(f"  {key:28} {s:9.3f} {t:11.3f} {t / s:9.1f}x")
    print("  targets: apply >= 10x, no-change plan >= 3x")
    print("1,000 chained (median s)        shipyard   terraform   speed-up")
    for key in ("plan", "apply", "noop_plan"):
        s, t = ch["shipyard"][key], ch["terraform"][key]
        print(f"  {key:28} {s:9.3f} {t:11.3f} {t / s:9.1f}x")
    print(f"  state size: shipyard {int(ch['shipyard']['state_bytes']):,} B, "
          f"terraform {int(ch['terraform']['state_bytes']):,} B; target: apply >= 50x")
    print("  shipyard state bytes per resource at 100 / 1,000 / 10,000 chained: "
          + " / ".join(str(v) for v in ch["shipyard_state_bytes_per_resource"].values()))
    big_r = results["independent_10000"]
    assert isinstance(big_r, dict)
    print(f"10,000 independent: no-change plan {big_r['shipyard']['noop_plan']:.3f} s "
          f"(target < 3 s), peak RSS {big_r['noop_plan_peak_rss_mb']} MB")


if __name__ == "__main__":
    main()
