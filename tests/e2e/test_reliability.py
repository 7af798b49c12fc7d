"""``kill -9`` of ci, git, store or a runner during busy pipelines, end to end.

``shipyard up`` with three runners of two slots and a short heartbeat timeout; two
projects pushed commit by commit with the real git client (each push starts a
pipeline of four jobs, half of them a second one-job pipeline); meanwhile one child of
``up`` is killed with SIGKILL at random moments (a seeded ``random``: the seed is
printed, and ``CHAOS_SEED=<seed>`` replays the same choices) and ``up`` restarts it.
Afterwards: no push lost or doubled, every pipeline completed, no job executed twice
(or, with lost-job retries on, the jobs that died with their runner ran again and
succeeded), every successful job's log complete and in order, in ci and in the store.
The tests without retries share one installation on SQLite, those with retries one on
PostgreSQL.
"""

from __future__ import annotations

import contextlib
import os
import random
import signal
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.e2e._chaos import (
    LOST,
    Chaos,
    Project,
    Pusher,
    Site,
    Verdict,
    sleepy_project,
    verify,
    wait_all_completed,
)
from tests.helpers.databases import _drop_schemas, postgres_url
from tests.supervisor._up import alive, running_up

pytestmark = pytest.mark.slow

RUNNERS = 3
SLOTS = 2
HEARTBEAT_TIMEOUT = 4
COMMITS = 4  # per project


@dataclass(frozen=True)
class Scenario:
    """Who gets killed, how often, and whether lost jobs are retried."""

    victims: tuple[str, ...]  # "ci", "git", "store", "runner"
    kills: int
    retries: int = 0


@contextlib.contextmanager
def seeded(name: str) -> Iterator[random.Random]:
    """A random generator whose seed is printed, and named in any failure."""
    seed = int(os.environ.get("CHAOS_SEED") or random.SystemRandom().randrange(2**32))
    print(f"{name}: CHAOS_SEED={seed}")
    try:
        yield random.Random(seed)
    except AssertionError as err:
        raise AssertionError(f"[{name}, CHAOS_SEED={seed}] {err}") from None


@contextlib.contextmanager
def _installation(root: Path, retries: int, database: str) -> Iterator[Site]:
    env = {
        "SHIPYARD_HEARTBEAT_TIMEOUT": str(HEARTBEAT_TIMEOUT),
        "SHIPYARD_LOST_JOB_RETRIES": str(retries),
        "SHIPYARD_RUNNER_CONCURRENCY": str(SLOTS),
    }
    if database == "postgres":
        env["SHIPYARD_DATABASE_URL"] = postgres_url()
        env["SHIPYARD_DATABASE_SCHEMA_PREFIX"] = f"chaos{uuid.uuid4().hex[:8]}_"
    try:
        # All has completed when it stops: no need to wait for the runners to drain.
        with running_up(root / "data", "--runners", str(RUNNERS), env=env, hurry=True) as up:
            site = Site(up)
            try:
                yield site
            finally:
                site.close()
    finally:
        if database == "postgres":
            _drop_schemas(env["SHIPYARD_DATABASE_URL"], env["SHIPYARD_DATABASE_SCHEMA_PREFIX"])


@pytest.fixture(scope="module")
def plain(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    """The installation of the tests without lost-job retries, on SQLite (each test
    pushes repositories of its own)."""
    with _installation(tmp_path_factory.mktemp("plain"), 0, "sqlite") as site:
        yield site


@pytest.fixture(scope="module")
def retrying(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    """The installation of the tests with one retry of a lost job, on PostgreSQL."""
    with _installation(tmp_path_factory.mktemp("retrying"), 1, "postgres") as site:
        yield site


def _run(
    scenario: Scenario, site: Site, tmp_path: Path, rng: random.Random
) -> tuple[Verdict, Chaos]:
    """Push the projects while killing; wait for every pipeline; check; the verdict."""
    began = time.monotonic()
    marks = tmp_path / "marks"
    marks.mkdir()
    prefix = uuid.uuid4().hex[:6]  # the installation is shared: repos of this test's own
    projects = [Project.make(tmp_path / "src", f"{prefix}-{name}", COMMITS, marks)
                for name in ("alpha", "beta")]
    for project in projects:
        assert site.api.post("/repos", json={"name": project.name}).status_code == 201
    chaos = Chaos(site, rng)
    pusher = Pusher(site, projects, rng)
    pusher.start()
    victims = _victims(scenario, rng)
    # The pushes come in waves, one before each kill and one after the last.
    cuts = sorted(rng.sample(range(1, len(pusher.order)), len(victims)))
    waves = [b - a for a, b in zip([0, *cuts], [*cuts, len(pusher.order)], strict=True)]
    # A runners kill that found every job already done waits for the next wave's jobs.
    pending: list[str] = []
    for victim, wave in zip(victims, waves, strict=False):
        pusher.release(wave)
        pending = [v for v in [*pending, victim] if not _kill_one(v, chaos, pusher, rng)]
    pusher.release(waves[-1])
    for victim in pending:
        _kill_one(victim, chaos, pusher, rng)
    pusher.finish()
    chaos_done = time.monotonic()
    wait_all_completed(site, projects)
    completed = time.monotonic()
    verdict = verify(site, projects, marks, retries=scenario.retries)
    kills = ", ".join(k.child + (f" (jobs {k.jobs})" if k.jobs else "") for k in chaos.kills)
    failures = sorted({f for p in projects for f in p.failed_pushes})
    print(f"killed: {kills}; pushes retried: {pusher.retried} {failures}")
    print(f"{verdict}")
    print(f"took: pushes and kills {chaos_done - began:.1f} s, to complete "
          f"{completed - chaos_done:.1f} s, checks {time.monotonic() - completed:.1f} s")
    return verdict, chaos


def _quiet(site: Site, pusher: Pusher) -> bool:
    """Whether no job is queued and none will come until more pushes are released."""
    if not pusher.idle.is_set() or site.json("/pipelines", status="queued", limit=1):
        return False
    pushed = {c.sha: c for p in pusher.projects for c in p.commits if c.sha in p.pushed}
    made = [pl for p in pusher.projects for pl in site.pipelines(p.name)]
    return len(made) >= sum(len(c.triggers) for c in pushed.values())


def _wait_for_work(site: Site, pusher: Pusher, timeout: float = 60) -> None:
    """Until a job runs, so a kill lands in busy pipelines (or until all work is done)."""
    deadline = time.monotonic() + timeout
    while not site.running_jobs():
        if _quiet(site, pusher):
            return  # nothing runs and nothing more comes for now
        assert time.monotonic() < deadline, "no job started"
        time.sleep(0.1)


def _victims(scenario: Scenario, rng: random.Random) -> list[str]:
    """Each victim once in a random order, then random ones up to the number of kills."""
    order = rng.sample(scenario.victims, len(scenario.victims))[: scenario.kills]
    return order + [rng.choice(scenario.victims) for _ in range(scenario.kills - len(order))]


def _kill_one(victim: str, chaos: Chaos, pusher: Pusher, rng: random.Random) -> bool:
    """Kill ``victim`` at a moment that matters; False if a runners kill found no work
    (the pushes released so far all ran before a job could be caught running)."""
    if victim == "git":
        # Aim at a push: git dies while a client talks to it.
        while not pusher.in_push.wait(0.05) and not pusher.idle.is_set():
            pass
        if pusher.in_push.is_set():
            time.sleep(rng.uniform(0.0, 0.25))
            chaos.kill("git")
            return True
    _wait_for_work(chaos.site, pusher)
    if victim == "runner":
        time.sleep(rng.uniform(0.2, 1.5))
        return chaos.kill_busy_runner(quiet=lambda: _quiet(chaos.site, pusher))
    time.sleep(rng.uniform(0.3, 2.0))
    chaos.kill(victim)
    return True


@pytest.mark.parametrize("victim", ["ci", "git", "store"])
def test_service_killed_during_busy_pipelines_loses_and_repeats_nothing(
    victim: str, plain: Site, tmp_path: Path
) -> None:
    """Every push gets its pipelines once, every job runs once and succeeds, logs complete.

    ci may die after recording a claim and before the runner heard the answer: the
    runner asks again with the same claim and gets the job (nothing is lost).
    """
    with seeded(f"kill {victim}") as rng:
        verdict, _ = _run(Scenario((victim,), kills=3), plain, tmp_path, rng)
        assert not verdict.lost, f"jobs lost: {verdict.lost} (never started: {verdict.lost_unstarted})"
        assert not verdict.jobs["failure"]


def test_runner_killed_without_retries_fails_its_jobs_once(plain: Site, tmp_path: Path) -> None:
    """A job dying with its runner ends failed ("the runner stopped responding"), never reruns."""
    with seeded("kill runners, no retries") as rng:
        verdict, chaos = _run(Scenario(("runner",), kills=3), plain, tmp_path, rng)
        assert chaos.hit, "no runner was killed mid-job"
        assert chaos.hit <= set(verdict.lost), "a job killed with its runner did not fail as lost"
        assert {lost_runner for _, lost_runner in verdict.lost_on} <= chaos.killed_runners, (
            "a job failed as lost on a runner that was not killed"
        )
        assert not verdict.retried
        assert verdict.jobs["failure"] == len(verdict.lost), LOST


def test_runner_killed_with_retries_reruns_its_jobs_to_success(
    retrying: Site, tmp_path: Path
) -> None:
    """With lost-job retries, a job dying with its runners runs again and succeeds, unless
    every try it had died with them (the verdict's ``exhausted``: one kill takes every agent's
    jobs, one of them just claimed and not yet seen running)."""
    with seeded("kill runners, retries on") as rng:
        verdict, chaos = _run(Scenario(("runner",), kills=3, retries=1), retrying, tmp_path, rng)
        assert chaos.hit, "no runner was killed mid-job"
        left = sorted(set(verdict.lost) - set(verdict.exhausted))
        assert not left, f"jobs lost despite retries: {left}"
        assert chaos.hit <= set(verdict.retried) | set(verdict.exhausted), (
            "a job killed with its runner was not run again")
        assert verdict.jobs["failure"] == len(verdict.exhausted)
        assert not verdict.jobs["skipped"] or verdict.exhausted, "skipped with nothing lost"
        total = sum(verdict.jobs.values())
        assert verdict.jobs["success"] == total - verdict.jobs["failure"] - verdict.jobs["skipped"]


def test_everything_killed_in_turn(retrying: Site, tmp_path: Path) -> None:
    """ci, git, store and runners killed at random, lost jobs retried: all completes."""
    with seeded("kill anything") as rng:
        verdict, chaos = _run(
            Scenario(("ci", "git", "store", "runner"), kills=5, retries=1), retrying, tmp_path, rng
        )
        assert chaos.hit <= set(verdict.retried) | set(verdict.lost)


class OrphanedStep(Exception):
    """A step of a job whose runner was killed went on running."""


def test_a_killed_runners_steps_die_with_it(plain: Site, tmp_path: Path) -> None:
    """A step does not outlive its runner: nothing of a lost job goes on unsupervised."""
    marks = tmp_path / "marks"
    marks.mkdir()
    project = sleepy_project(tmp_path, f"{uuid.uuid4().hex[:6]}-sleepy", marks)
    assert plain.api.post("/repos", json={"name": project.name}).status_code == 201
    project.push(f"{plain.up.url}/{project.name}.git", plain.up.token, project.commits[0].sha,
                 time.monotonic() + 60)
    deadline = time.monotonic() + 60
    while not (started := list(marks.glob("start-*"))):
        assert time.monotonic() < deadline, "the step did not start"
        time.sleep(0.05)
    step = int(started[0].name.split("-", 1)[1])
    [job] = plain.running_jobs()
    chaos = Chaos(plain, random.Random(0))
    try:
        chaos.kill(plain.runner_children()[job["runner_id"]])
        wait_all_completed(plain, [project])
        [pipeline] = plain.pipelines(project.name)
        assert plain.pipeline(pipeline["id"])["jobs"][0]["error"] == LOST
        if alive(step) or list(marks.glob("end-*")):
            raise OrphanedStep(f"step {step} of job {job['id']} outlived its runner")
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(step, signal.SIGKILL)
