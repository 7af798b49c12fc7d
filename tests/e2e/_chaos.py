"""Chaos for the reliability tests: busy projects pushed with git, ``kill -9``, verdicts.

A :class:`Site` is a running ``shipyard up`` seen through its gateway, with reads that
wait out a service being restarted. :class:`Project` is a local repository whose
commits are made up front and pushed one by one, retried as a user would when a push
fails. :class:`Chaos` kills children of ``up`` with SIGKILL and waits until ``up`` has
started them again. :func:`verify` reads back every pipeline, job, log and execution
marker and checks the promises that must hold whatever was killed.

Every job of the projects' workflows writes a marker file per execution into a folder
outside its workspace (``<run_id>.<tag>.<run_attempt>.<uuid>``, holding the shell's pid
and the runner's name), then prints :data:`LINES` numbered lines (``N001 <tag>`` ...)
with a few pauses, so a test counts executions and checks logs line by line.
"""

from __future__ import annotations

import collections
import os
import random
import re
import signal
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from tests.supervisor._up import Up, alive

LINES = 200
PAUSES = (40, 80, 120, 160)  # lines after which a job sleeps a little
PAUSE = 0.4
LOST = "the runner stopped responding"
_RETRIED = re.compile(rf"^##\[shipyard\] {LOST}: the job is queued again.*$", re.M)
_NUMBERED = re.compile(r"^N(\d{3}) (\S+)$", re.M)
SERVICES = ("git", "store", "ci")
GIT_ENV = {
    "GIT_AUTHOR_NAME": "Ada", "GIT_AUTHOR_EMAIL": "ada@example.com",
    "GIT_COMMITTER_NAME": "Ada", "GIT_COMMITTER_EMAIL": "ada@example.com",
    "GIT_TERMINAL_PROMPT": "0", "HOME": "/nonexistent", "PATH": os.environ.get("PATH", ""),
}


# ---- the projects ----------------------------------------------------------------------


def _count_step(tag: str, marks: Path) -> str:
    """A step: the execution's marker, then numbered lines with pauses between a few."""
    pauses = "|".join(str(n) for n in PAUSES)
    return (
        "        run: |\n"
        f'          tag="{tag}"\n'
        f'          echo "$$ ${{RUNNER_NAME:-}}" > "{marks}/${{{{ github.run_id }}}}.$tag.'
        '${{ github.run_attempt }}.$(cat /proc/sys/kernel/random/uuid)"\n'
        f"          for i in $(seq 1 {LINES}); do\n"
        """            printf 'N%03d %s\\n' "$i" "$tag"\n"""
        f"            case $i in {pauses}) sleep {PAUSE};; esac\n"
        "          done\n"
    )


def workflows(marks: Path) -> dict[str, str]:
    """``busy`` (every push: a matrix of three, then a job needing them) and ``light``
    (pushes touching ``src/``: one job)."""
    busy = (
        "name: busy\n"
        "on: push\n"
        "jobs:\n"
        "  build:\n"
        "    runs-on: ubuntu-latest\n"
        "    strategy:\n"
        "      fail-fast: false\n"  # a lost job leaves its siblings be
        "      matrix:\n"
        "        part: [1, 2, 3]\n"
        "    steps:\n"
        "      - name: Count\n"
        + _count_step("build-${{ matrix.part }}", marks)
        + "  report:\n"
        "    needs: build\n"
        "    runs-on: ubuntu-latest\n"
        "    steps:\n"
        "      - name: Count\n"
        + _count_step("report", marks)
    )
    light = (
        "name: light\n"
        "on:\n"
        "  push:\n"
        "    paths: ['src/**']\n"
        "jobs:\n"
        "  lint:\n"
        "    runs-on: ubuntu-latest\n"
        "    steps:\n"
        "      - name: Count\n"
        + _count_step("lint", marks)
    )
    return {".github/workflows/busy.yml": busy, ".github/workflows/light.yml": light}


def sleepy_project(root: Path, name: str, marks: Path) -> Project:
    """One commit, one job, one step: ``start-<pid>`` marked, a silent sleep, ``end-<pid>``."""
    path = root / name
    (path / ".github/workflows").mkdir(parents=True)
    (path / ".github/workflows/sleepy.yml").write_text(
        "name: sleepy\n"
        "on: push\n"
        "jobs:\n"
        "  nap:\n"
        "    runs-on: ubuntu-latest\n"
        "    steps:\n"
        "      - run: |\n"
        f'          touch "{marks}/start-$$"\n'
        "          sleep 6\n"
        f'          touch "{marks}/end-$$"\n'
    )
    _git(path, "init", "-q", "-b", "main")
    _git(path, "add", "-A")
    _git(path, "commit", "-q", "-m", "sleepy")
    sha = _git(path, "rev-parse", "HEAD").stdout.strip()
    return Project(name, path, [Commit(sha, ("sleepy",))])


NEEDS = {"report": ["build"]}  # the needs of the jobs of :func:`workflows`


def job_tag(job: dict[str, Any]) -> str:
    """The tag a job's step prints (``build-2``, ``report``, ``lint``)."""
    part = (job.get("matrix") or {}).get("part")
    return f"{job['job_id']}-{part}" if part is not None else str(job["job_id"])


def _git(cwd: Path, *args: str, token: str = "", check: bool = True,
         timeout: float = 60) -> subprocess.CompletedProcess[str]:
    extra = ["-c", f"http.extraHeader=Authorization: Bearer {token}"] if token else []
    proc = subprocess.run(["git", *extra, *args], cwd=cwd, capture_output=True, text=True,
                          env=GIT_ENV, timeout=timeout)
    if check:
        assert proc.returncode == 0, f"git {' '.join(args)}: {proc.stderr}"
    return proc


@dataclass
class Commit:
    """A commit to push and the workflows it must start."""

    sha: str
    triggers: tuple[str, ...]


@dataclass
class Project:
    """A local repository with its commits made up front; pushed one commit per push."""

    name: str
    path: Path
    commits: list[Commit]
    pushed: list[str] = field(default_factory=list)
    failed_pushes: list[str] = field(default_factory=list)

    @classmethod
    def make(cls, root: Path, name: str, count: int, marks: Path) -> Project:
        """``count`` commits: the first adds the workflows; odd ones touch ``src/``."""
        path = root / name
        path.mkdir(parents=True)
        _git(path, "init", "-q", "-b", "main")
        commits = []
        for n in range(1, count + 1):
            if n == 1:
                for rel, text in workflows(marks).items():
                    (path / rel).parent.mkdir(parents=True, exist_ok=True)
                    (path / rel).write_text(text)
            touches_src = n % 2 == 1
            target = path / ("src/app.txt" if touches_src else "docs/notes.txt")
            target.parent.mkdir(parents=True, exist_ok=True)
            with target.open("a") as fh:
                fh.write(f"change {n}\n")
            _git(path, "add", "-A")
            _git(path, "commit", "-q", "-m", f"{name}: change {n}")
            sha = _git(path, "rev-parse", "HEAD").stdout.strip()
            triggers = ("busy", "light") if touches_src else ("busy",)
            commits.append(Commit(sha, triggers))
        return cls(name, path, commits)

    def push(self, url: str, token: str, sha: str, deadline: float) -> int:
        """Push ``sha`` to main until git accepts it, as a user would; the tries it took."""
        tries = 0
        while True:
            tries += 1
            proc = _git(self.path, "push", "-q", url, f"{sha}:refs/heads/main", token=token,
                        check=False)
            if proc.returncode == 0:
                self.pushed.append(sha)
                return tries
            self.failed_pushes.append(proc.stderr.strip().splitlines()[-1:][0]
                                      if proc.stderr.strip() else f"exit {proc.returncode}")
            assert time.monotonic() < deadline, (
                f"pushing {sha[:8]} to {self.name} kept failing: {proc.stderr}"
            )
            time.sleep(0.3)


class Pusher(threading.Thread):
    """Pushes the projects' commits, round robin, with random gaps; waits out failures.

    It pushes only as many commits as :meth:`release` allowed so far, so a test spreads
    the pushes over its kills. ``in_push`` is set while a ``git push`` runs, so a killer
    can aim at it; ``idle`` while it waits for an allowance.
    """

    def __init__(self, site: Site, projects: list[Project], rng: random.Random,
                 gap: tuple[float, float] = (0.2, 0.8)) -> None:
        super().__init__(name="pusher", daemon=True)
        self.site = site
        self.projects = projects
        self.order = [(p, p.commits[i]) for i in range(max(len(p.commits) for p in projects))
                      for p in projects if i < len(p.commits)]
        self.gaps = [rng.uniform(*gap) for _ in self.order]
        self.allowed = threading.Semaphore(0)
        self.in_push = threading.Event()
        self.idle = threading.Event()
        self.error: BaseException | None = None
        self.retried = 0

    def release(self, pushes: int) -> None:
        """Allow ``pushes`` more pushes."""
        if pushes:
            self.idle.clear()
            self.allowed.release(pushes)

    def run(self) -> None:
        try:
            for (project, commit), gap in zip(self.order, self.gaps, strict=True):
                if not self.allowed.acquire(blocking=False):
                    self.idle.set()
                    assert self.allowed.acquire(timeout=300), "no allowance to push came"
                time.sleep(gap)
                self.in_push.set()
                try:
                    tries = project.push(f"{self.site.up.url}/{project.name}.git",
                                         self.site.up.token, commit.sha, time.monotonic() + 90)
                finally:
                    self.in_push.clear()
                self.retried += tries - 1
        except BaseException as err:  # reported by the test thread
            self.error = err
        finally:
            self.idle.set()

    def finish(self, timeout: float = 150) -> None:
        self.join(timeout)
        assert not self.is_alive(), "the pushes did not finish"
        if self.error is not None:
            raise self.error


# ---- the installation ------------------------------------------------------------------


class Site:
    """A running ``shipyard up`` through its gateway; reads retry while a service restarts."""

    def __init__(self, up: Up) -> None:
        self.up = up
        self.api = up.api()

    def close(self) -> None:
        self.api.close()

    def get(self, path: str, *, deadline: float | None = None, **params: Any) -> httpx.Response:
        """GET until it answers 200; 5xx, 404 and refused connections are waited out
        (a service restarting; a log the store does not hold yet)."""
        deadline = deadline if deadline is not None else time.monotonic() + 60
        while True:
            try:
                response = self.api.get(path, params=params)
            except httpx.TransportError as err:
                problem = str(err)
            else:
                if response.status_code == 200:
                    return response
                problem = f"HTTP {response.status_code}: {response.text[:300]}"
                if response.status_code < 500 and response.status_code != 404:
                    raise AssertionError(f"GET {path}: {problem}")
            assert time.monotonic() < deadline, f"GET {path} kept failing: {problem}"
            time.sleep(0.2)

    def json(self, path: str, **params: Any) -> Any:
        return self.get(path, **params).json()

    def pipelines(self, repo: str) -> list[dict[str, Any]]:
        return list(self.json("/pipelines", repo=repo, limit=500))

    def pipeline(self, pipeline_id: int) -> dict[str, Any]:
        return dict(self.json(f"/pipelines/{pipeline_id}"))

    def runner_children(self) -> dict[int, str]:
        """Runner ids and the name of the process ``up`` runs them in (``runners``, all)."""
        return {r["id"]: "runners" for r in self.json("/runners")}

    def running_jobs(self) -> list[dict[str, Any]]:
        """Jobs running now (with their runner's id)."""
        found = []
        for p in self.json("/pipelines", status="running", limit=500):
            found += [j for j in self.pipeline(p["id"])["jobs"] if j["status"] == "running"]
        return found


@dataclass
class Kill:
    """One SIGKILL: of which child, and for the runners the jobs they held."""

    child: str
    runner_ids: set[int] = field(default_factory=set)
    fresh: list[int] = field(default_factory=list)  # jobs surely mid-run when it died
    jobs: list[int] = field(default_factory=list)  # every job it held


class Chaos:
    """Kills children of ``up`` (``git``, ``store``, ``ci``, ``runners``) and waits for them."""

    def __init__(self, site: Site, rng: random.Random) -> None:
        self.site = site
        self.up = site.up
        self.rng = rng
        self.kills: list[Kill] = []

    @property
    def hit(self) -> set[int]:
        """Jobs surely killed mid-run with their runner."""
        return {j for k in self.kills for j in k.fresh}

    @property
    def touched(self) -> set[int]:
        """Jobs their runner held when it was killed (some may have just ended)."""
        return {j for k in self.kills for j in k.jobs}

    @property
    def killed_runners(self) -> set[int]:
        return {rid for k in self.kills for rid in k.runner_ids}

    def kill(self, child: str, record: Kill | None = None) -> None:
        """SIGKILL ``child``, then wait until ``up`` restarted it (and it is healthy)."""
        pid = self._pid(child)
        mark = len(self.up.lines)
        os.kill(pid, signal.SIGKILL)
        self.kills.append(record or Kill(child))
        restarted = re.compile(rf"^restarted {re.escape(child)} \(pid (\d+), restart \d+\)$")
        self._wait_line(mark, lambda line: bool((m := restarted.match(line)) and int(m[1]) != pid),
                        f"{child} restarted")
        if child in SERVICES:
            self._wait_line(mark, lambda line: line.startswith(f"{child} is healthy again"),
                            f"{child} healthy again")

    def kill_busy_runner(self, *, fresh: float = 0.8, patience: float = 8.0,
                         quiet: Callable[[], bool] = lambda: False) -> bool:
        """Kill the runners' process while a job that started lately runs (so it dies mid-job).

        ``up`` runs its local agents in one process, so every running job dies with it.
        Moments when a job a former kill hit is running again are passed over: no job
        dies twice. After ``patience`` seconds without a fresh job, any such moment.
        False, with nothing killed, once no job runs and ``quiet()`` says none will come.
        """
        deadline = time.monotonic() + patience
        while True:
            runners = self.site.runner_children()
            jobs = [j for j in self.site.running_jobs() if j["runner_id"] in runners]
            if not jobs and quiet():
                return False
            now = time.time()
            usable = jobs and not any(j["id"] in self.touched for j in jobs)
            fits = usable and any(0.15 <= now - (j["started_at"] or 0) <= fresh for j in jobs)
            late = time.monotonic() > deadline
            # Long after the patience, any moment with running jobs: a job may then die a
            # second time (the verdict counts it as having used up its retries).
            later = time.monotonic() > deadline + 15
            if fits or (late and usable) or (later and jobs):
                young = [j["id"] for j in jobs
                         if 0.15 <= time.time() - (j["started_at"] or 0) <= fresh + 0.2]
                self.kill("runners", Kill("runners", set(runners), young, [j["id"] for j in jobs]))
                return True
            assert time.monotonic() < deadline + 30, "no moment could be picked to kill the runners"
            time.sleep(0.05)

    def _pid(self, child: str) -> int:
        deadline = time.monotonic() + 60
        while True:
            try:
                pid = self.up.pid(child)
            except (OSError, ValueError):
                pid = 0
            if pid and alive(pid):
                return pid
            assert time.monotonic() < deadline, f"{child} has no live pid"
            time.sleep(0.05)

    def _wait_line(self, start: int, test: Callable[[str], bool], what: str) -> None:
        deadline = time.monotonic() + 90
        while not any(test(line.strip()) for line in self.up.lines[start:]):
            assert time.monotonic() < deadline, f"waited in vain for {what}:\n{self.up.output}"
            assert self.up.proc.poll() is None, f"shipyard up ended:\n{self.up.output}"
            time.sleep(0.05)


# ---- the verdict -----------------------------------------------------------------------


@dataclass
class Verdict:
    """What the run came to, for the test's own expectations and the printed summary."""

    pipelines: int = 0
    jobs: collections.Counter[str] = field(default_factory=collections.Counter)
    lost: list[int] = field(default_factory=list)  # jobs that ended failed, lost
    lost_unstarted: list[int] = field(default_factory=list)  # ...without ever executing
    lost_on: list[tuple[int, int | None]] = field(default_factory=list)  # (job, runner id)
    retried: list[int] = field(default_factory=list)  # jobs queued again after a loss
    exhausted: list[int] = field(default_factory=list)  # lost after every allowed try was killed
    executions: int = 0
    logs_checked: int = 0


def executions(marks: Path) -> collections.Counter[tuple[int, str, str]]:
    """Marker files by (pipeline id, tag, run attempt)."""
    found: collections.Counter[tuple[int, str, str]] = collections.Counter()
    for path in marks.iterdir():
        run_id, tag, attempt, _uuid = path.name.split(".")
        found[(int(run_id), tag, attempt)] += 1
    return found


def check_log(text: str, tag: str, where: str) -> int:
    """The numbered lines after the last retry marker are 1..LINES, once each, in order.

    Returns how many retry markers the log holds.
    """
    retries = len(_RETRIED.findall(text))
    last = list(_RETRIED.finditer(text))
    tail = text[last[-1].end():] if last else text
    numbers = [(int(m[1]), m[2]) for m in _NUMBERED.finditer(tail)]
    expected = [(n, tag) for n in range(1, LINES + 1)]
    if numbers != expected:
        missing = sorted(set(expected) - set(numbers))[:5]
        dupes = [k for k, v in collections.Counter(numbers).items() if v > 1][:5]
        raise AssertionError(
            f"{where}: log incomplete: {len(numbers)} numbered lines, missing {missing}, "
            f"twice {dupes}, in order: {numbers == sorted(numbers)}\n--- log tail:\n{tail[-2000:]}"
        )
    return retries


def wait_all_completed(site: Site, projects: list[Project], timeout: float = 150) -> None:
    """Wait until every expected pipeline exists and every pipeline has completed."""
    deadline = time.monotonic() + timeout
    want = {p.name: sum(len(c.triggers) for c in p.commits) for p in projects}
    while True:
        state = {}
        for project in projects:
            pipelines = site.pipelines(project.name)
            done = sum(p["status"] == "completed" for p in pipelines)
            state[project.name] = (len(pipelines), done)
        if all(n >= want[name] and done == n for name, (n, done) in state.items()):
            return
        assert time.monotonic() < deadline, (
            f"pipelines not all there and completed: (seen, completed) {state}, want {want}"
        )
        time.sleep(0.3)


def verify(site: Site, projects: list[Project], marks: Path, *, retries: int) -> Verdict:
    """Check what must hold whatever was killed; the verdict for the test's own checks.

    - each pushed commit has exactly one pipeline per workflow it triggers, and no more,
      and each branch points at its last commit: no push lost, none doubled;
    - every pipeline has completed;
    - no job ran more than ``1 + retries`` times, all as attempt 1 (nobody re-ran);
    - a job that succeeded ran, and its log (from ci and the store's archived copy,
      which agree) holds every numbered line once, in order, after any retry marker;
    - a job that failed failed because its runner was lost; a job is skipped, and never
      ran, exactly when a job it needs did not succeed.
    """
    verdict = Verdict()
    runs = executions(marks)
    verdict.executions = sum(runs.values())
    assert {attempt for (_, _, attempt) in runs} <= {"1"}, f"unexpected run attempts: {runs}"
    seen_runs: set[tuple[int, str]] = set()
    for project in projects:
        assert project.pushed == [c.sha for c in project.commits], f"{project.name}: not all pushed"
        refs = site.json(f"/repos/{project.name}/refs")["refs"]
        assert refs == {"refs/heads/main": project.commits[-1].sha}, f"{project.name}: {refs}"
        pipelines = site.pipelines(project.name)
        by_commit = collections.Counter((p["sha"], p["name"]) for p in pipelines)
        expected = collections.Counter((c.sha, w) for c in project.commits for w in c.triggers)
        assert by_commit == expected, (
            f"{project.name}: pipelines per (commit, workflow) {dict(by_commit)}, "
            f"expected {dict(expected)}"
        )
        for summary in pipelines:
            verdict.pipelines += 1
            pipeline = site.pipeline(summary["id"])
            where = f"{project.name} pipeline {pipeline['id']} ({pipeline['name']})"
            assert pipeline["status"] == "completed", f"{where}: {pipeline['status']}"
            assert (pipeline["attempt"], pipeline["event"]) == (1, "push"), where
            ended: dict[str, set[str]] = collections.defaultdict(set)
            for job in pipeline["jobs"]:
                _check_job(site, pipeline, job, runs, retries, verdict,
                           f"{where} job {job['id']} {job['name']}")
                seen_runs.add((pipeline["id"], job_tag(job)))
                ended[job["job_id"]].add(job["conclusion"])
            for job in pipeline["jobs"]:
                # From the workflow: ci lists no needs for a job it skipped.
                needs = NEEDS.get(job["job_id"], [])
                needed_ok = all(ended[need] == {"success"} for need in needs)
                assert (job["conclusion"] == "skipped") == (not needed_ok), (
                    f"{where} job {job['name']}: {job['conclusion']} after needs "
                    f"{ {n: ended[n] for n in needs} }"
                )
    strays = {k for k in runs if (k[0], k[1]) not in seen_runs}
    assert not strays, f"executions of jobs no pipeline has: {strays}"
    return verdict


def _check_job(site: Site, pipeline: dict[str, Any], job: dict[str, Any],
               runs: collections.Counter[tuple[int, str, str]], retries: int,
               verdict: Verdict, where: str) -> None:
    tag = job_tag(job)
    ran = runs[(pipeline["id"], tag, "1")]
    conclusion = job["conclusion"]
    verdict.jobs[conclusion] += 1
    assert job["status"] == "completed", f"{where}: {job['status']}"
    assert ran <= 1 + retries, f"{where}: executed {ran} times with {retries} retries"
    if conclusion == "success":
        assert ran >= 1, f"{where}: succeeded without executing"
        text = site.get(f"/jobs/{job['id']}/log").text
        tries = check_log(text, tag, where)
        assert tries <= retries, f"{where}: queued again {tries} times with {retries} retries"
        assert ran <= tries + 1, f"{where}: executed {ran} times in {tries + 1} tries"
        if tries:
            verdict.retried.append(job["id"])
        # The archived copy: the store has it once ci's archiver got to it.
        stored = site.get(f"/logs/{job['id']}", deadline=time.monotonic() + 90).text
        assert stored == text, f"{where}: the store's copy of the log differs from ci's"
        verdict.logs_checked += 1
    elif conclusion == "failure":
        assert job["error"] == LOST, f"{where}: failed: {job['error']}"
        verdict.lost.append(job["id"])
        verdict.lost_on.append((job["id"], job["runner_id"]))
        queued_again = len(_RETRIED.findall(site.get(f"/jobs/{job['id']}/log").text))
        assert queued_again <= retries, f"{where}: queued again {queued_again} times"
        if retries and queued_again == retries:
            # Every try died: the runners' one process takes all its jobs with it, so a
            # job just claimed (not yet seen running) can die at one kill and again later.
            verdict.exhausted.append(job["id"])
        if ran == 0:
            verdict.lost_unstarted.append(job["id"])
    elif conclusion == "skipped":
        assert ran == 0, f"{where}: skipped, yet executed {ran} times"
    else:
        raise AssertionError(f"{where}: concluded {conclusion}")
