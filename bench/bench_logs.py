"""Logs: a job printing 100 MB, against the same command writing to a file.

Two commands print 100 MiB of 100-byte text lines: ``lines``, a Python loop calling
``print()`` per line (as test runners and build tools log), and ``blocks``, a Python
loop writing 1 MiB blocks (as fast as a program can produce output; the file anchor
is then about 0.1 s). The anchor is the same command with its output redirected to a
file, timed in the same run. Through the platform (``shipyard up``, one runner) the time is
the job's own duration as ci records it, from claim to completion. A runner completes a
job before the end of a long log is shipped (the completion says how long the log will
be), so the bench also reports when ci held the whole log: the job is polled every
20 ms from its start until its ``log_complete`` turns true, and that moment (less the
job's ``started_at``; ci and the bench share the clock) is the log time. The stored
log's step section must be byte-identical to the anchor's file, and the next round
starts once ci has archived it to the store (so rounds do not overlap). Target: the
job's duration at most 1.5x the anchor.

    python bench/bench_logs.py [--mib 100] [--rounds 5] [--json]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))
from _platform import init_project, platform

PRINTERS = {
    "blocks": (
        "import sys\n"
        "line = b'0123456789' * 9 + b'abcdefghi\\n'\n"
        "block = line * 10486\n"
        "out = sys.stdout.buffer\n"
        "for _ in range({mib}):\n"
        "    out.write(block)\n"
    ),
    "lines": (
        "line = '0123456789' * 9 + 'abcdefghi'\n"
        "for _ in range({mib} * 10486):\n"
        "    print(line)\n"
    ),
}


WARMUP = 1


def measure(printer: str, mib: int, rounds: int) -> dict[str, object]:
    work = Path(tempfile.mkdtemp(prefix="shipyard-bench-logs-"))
    script = work / "printer.py"
    script.write_text(PRINTERS[printer].format(mib=mib))
    anchor_file = work / "anchor.out"

    def run_anchor() -> float:
        t0 = time.perf_counter()
        with anchor_file.open("wb") as out:
            subprocess.run([sys.executable, str(script)], stdout=out, check=True)
        return time.perf_counter() - t0

    run_anchor()
    want = hashlib.sha256(anchor_file.read_bytes()).hexdigest()
    size = anchor_file.stat().st_size
    workflow = (
        "name: loud\non: push\njobs:\n  loud:\n    runs-on: ubuntu-latest\n    steps:\n"
        f"      - run: {sys.executable} {script}\n"
    )
    project = work / "project"
    project.mkdir()
    init_project(project, workflow)
    anchors: list[float] = []
    durations: list[float] = []
    log_times: list[float] = []
    identical = []
    with platform(runners=1, concurrency=1) as plat:
        remote = plat.create_repo("loud")
        plat.git(project, "remote", "add", "origin", remote)
        last = 0
        # One warm-up round (the platform's first job pays one-off imports), then the
        # measured rounds, each anchor timed just before its job: same machine, same moment.
        for n in range(WARMUP + rounds):
            anchor_s = run_anchor()
            if n:
                plat.git(project, "commit", "-q", "--allow-empty", "-m", f"round {n}")
            plat.git(project, "push", "-q", "origin", "main")
            with plat.api as api:
                job, complete_at = _wait_log_complete(api, "loud", last)
                last = job["pipeline_id"]
                log = api.get(f"/jobs/{job['id']}/log").content
                _wait_archived(api, job["id"])  # the next round does not share the machine
            if n < WARMUP:
                continue
            anchors.append(anchor_s)
            durations.append(job["finished_at"] - job["started_at"])
            log_times.append(complete_at - job["started_at"])
            identical.append(_step_output(log, size) == want)
    anchor = statistics.median(anchors)
    platform_s = statistics.median(durations)
    log_s = statistics.median(log_times)
    return {
        "printer": printer, "mib": mib, "anchor_s": round(anchor, 3),
        "job_s": round(platform_s, 3), "ratio": round(platform_s / anchor, 2),
        "log_complete_s": round(log_s, 3), "log_ratio": round(log_s / anchor, 2),
        "target_ratio": 1.5, "byte_identical": all(identical),
        "rounds": {"anchor_s": [round(a, 3) for a in anchors],
                   "job_s": [round(d, 3) for d in durations],
                   "log_complete_s": [round(t, 3) for t in log_times]},
    }


def _wait_archived(api: Any, job_id: int, timeout: float = 120) -> None:
    """Wait until the store holds the job's log (ci's archiver is done with it)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if api.get(f"/logs/{job_id}", headers={"Range": "bytes=0-0"}).status_code in (200, 206):
            return
        time.sleep(0.1)
    sys.exit(f"the log of job {job_id} was not archived within {timeout} s")


def _wait_log_complete(
    api: Any, repo: str, after: int, timeout: float = 600
) -> tuple[dict[str, Any], float]:
    """The job of the first pipeline of ``repo`` newer than ``after`` once ci holds its whole
    log, and the time (``time.time()``) that was first seen, polling every 20 ms."""
    deadline = time.monotonic() + timeout
    job_id = None
    while time.monotonic() < deadline:
        if job_id is None:
            listed = api.get("/pipelines", params={"repo": repo, "limit": 5}).json()
            newer = [p["id"] for p in listed if p["id"] > after]
            if newer:
                jobs = api.get(f"/pipelines/{min(newer)}").json()["jobs"]
                job_id = jobs[0]["id"] if jobs else None
        else:
            job = api.get(f"/jobs/{job_id}").json()
            # A ci without log_complete completes a job once it holds the whole log.
            if job.get("log_complete", job["status"] == "completed"):
                return job, time.time()
        time.sleep(0.02)
    sys.exit(f"the job's log was not complete within {timeout} s")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--mib", type=int, default=100)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--printer", choices=[*PRINTERS, "both"], default="both")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    printers = list(PRINTERS) if args.printer == "both" else [args.printer]
    for printer in printers:
        r = measure(printer, args.mib, args.rounds)
        if args.json:
            print(json.dumps(r))
        else:
            print(f"{r['mib']} MiB log ({printer}): job {r['job_s']} s vs anchor {r['anchor_s']} s "
                  f"= {r['ratio']}x (target 1.5x); log complete in ci {r['log_complete_s']} s "
                  f"after the job's start = {r['log_ratio']}x; stored log byte-identical: "
                  f"{r['byte_identical']}; rounds {r['rounds']}")


def _step_output(log: bytes, size: int) -> str:
    """Digest of the step's output inside the stored log: the run of ``size`` bytes
    that follows the step's header line."""
    marker = log.find(b"0123456789")
    start = log.rfind(b"\n", 0, marker) + 1 if marker > 0 else 0
    return hashlib.sha256(log[start : start + size]).hexdigest()


if __name__ == "__main__":
    main()
