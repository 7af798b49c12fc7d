"""Repositories on disk and in the database, and the recording of their ref changes.

Layout under ``<data_dir>/repos/``: ``<name>.git`` (``owner/name`` nests one folder),
``.names.lock`` (serialises creating and deleting names, across processes) and
``.trash/`` (repositories being created or deleted; emptied at start). Names start
with a letter or digit, so neither can clash with a repository.

A repository becomes visible by one ``rename`` of a finished ``git init`` into place,
and leaves by one ``rename`` into ``.trash`` after its row is gone, so a crash never
leaves a half-made or half-deleted repository where a request can reach it. A directory
without a row (a crash between the two steps) is ignored, and set aside when the name
is created again.

Recording: the ``refs`` table holds each ref as last recorded. :meth:`RepoStore.record_refs`
reads the refs on disk (one ``git for-each-ref``), and in one transaction appends a
``ref.updated`` event per difference and updates the table. Run after every push and
for every repository at start, under the repository's lock, it records each change
exactly once even when a crash came between git moving a ref and the transaction.
"""

from __future__ import annotations

import logging
import os
import shutil
import threading
import time
import uuid
from collections.abc import Callable
from contextlib import AbstractContextManager, suppress
from dataclasses import dataclass
from pathlib import Path

from prometheus_client import CollectorRegistry, Counter, Gauge
from sqlalchemy import Connection, delete, func, insert, select, update
from sqlalchemy.exc import IntegrityError

from shipyard.errors import ConflictError, NotFoundError
from shipyard.git._gitexec import GitCommandError, init_bare, run_git
from shipyard.git._locks import LOCK_FILE, file_lock
from shipyard.git._names import ZERO_SHA, check_repo_name
from shipyard.git._tables import events, refs, repos
from shipyard.service import Database, append_event

__all__ = ["DEFAULT_BRANCH", "GitMetrics", "RefChange", "RepoRecord", "RepoStore"]

log = logging.getLogger("shipyard.git")

DEFAULT_BRANCH = "main"


@dataclass(frozen=True, slots=True)
class RepoRecord:
    """A repository's row."""

    name: str
    description: str
    created_at: float
    default_branch: str


@dataclass(frozen=True, slots=True)
class RefChange:
    """One recorded ref change; a zero sha stands for "absent"."""

    ref: str
    before: str
    after: str


class GitMetrics:
    """The git service's own Prometheus metrics."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.pushes = Counter(
            "shipyard_git_pushes", "Pushes (receive-pack requests) finished, by outcome",
            ["outcome"], registry=registry,
        )
        self.fetches = Counter(
            "shipyard_git_fetches", "Fetches (upload-pack requests) finished, by outcome",
            ["outcome"], registry=registry,
        )
        self.pushes_running = Gauge(
            "shipyard_git_pushes_in_progress", "Pushes being received now", registry=registry,
        )
        self.events = Counter(
            "shipyard_git_events", "Events appended to the feed, by kind", ["kind"], registry=registry,
        )
        self.repos = Gauge("shipyard_git_repositories", "Repositories hosted", registry=registry)


class RepoStore:
    """Creates, finds and deletes repositories, and records their ref changes.

    Blocking: call from a thread. ``on_events`` runs after each commit that appended
    events (the service wakes its long-polls there).
    """

    def __init__(
        self,
        data_dir: Path,
        db: Database,
        metrics: GitMetrics,
        on_events: Callable[[], None] = lambda: None,
    ) -> None:
        self.root = data_dir / "repos"
        self.db = db
        self.metrics = metrics
        self._on_events = on_events
        self._names_lock = threading.Lock()

    # -- paths and locks ----------------------------------------------------------

    def path(self, name: str) -> Path:
        """The bare repository of ``name`` (which must be a checked name)."""
        return self.root / f"{name}.git"

    def _names(self) -> AbstractContextManager[None]:
        self.root.mkdir(parents=True, exist_ok=True)
        return file_lock(self.root / ".names.lock", self._names_lock)

    def _trash(self) -> Path:
        trash = self.root / ".trash"
        trash.mkdir(parents=True, exist_ok=True)
        return trash

    # -- rows ---------------------------------------------------------------------

    def get(self, name: str) -> RepoRecord:
        """The repository ``name``; :class:`NotFoundError` when there is none."""
        with self.db.read() as conn:
            row = conn.execute(select(repos).where(repos.c.name == name)).first()
        if row is None:
            raise NotFoundError(f"no repository named {name!r}")
        return RepoRecord(row.name, row.description, row.created_at, row.default_branch)

    def page(self, after: str, limit: int) -> list[RepoRecord]:
        """Repositories by name, those after ``after`` first, at most ``limit``."""
        query = select(repos).order_by(repos.c.name).limit(limit)
        if after:
            query = query.where(repos.c.name > after)
        with self.db.read() as conn:
            rows = conn.execute(query).all()
        return [RepoRecord(r.name, r.description, r.created_at, r.default_branch) for r in rows]

    def names(self) -> list[str]:
        with self.db.read() as conn:
            return list(conn.execute(select(repos.c.name).order_by(repos.c.name)).scalars())

    def count(self) -> int:
        with self.db.read() as conn:
            return int(conn.execute(select(func.count()).select_from(repos)).scalar_one())

    # -- create and delete ----------------------------------------------------------

    def create(self, name: str, description: str) -> RepoRecord:
        """A new empty repository; :class:`ConflictError` when the name is taken."""
        check_repo_name(name)
        target = self.path(name)
        with self._names():
            with self.db.read() as conn:
                if conn.execute(select(repos.c.name).where(repos.c.name == name)).first():
                    raise ConflictError(f"a repository named {name!r} already exists")
            if target.exists():
                log.warning("setting aside %s: a directory without a repository row", target)
                self._set_aside(target)
            scratch = self._trash() / f"new-{uuid.uuid4().hex}.git"
            try:
                init_bare(scratch, DEFAULT_BRANCH)
                target.parent.mkdir(parents=True, exist_ok=True)
                os.rename(scratch, target)
            except BaseException:
                shutil.rmtree(scratch, ignore_errors=True)
                raise
            record = RepoRecord(name, description, time.time(), DEFAULT_BRANCH)
            try:
                with self.db.write() as conn:
                    conn.execute(insert(repos).values(
                        name=name, description=description,
                        created_at=record.created_at, default_branch=DEFAULT_BRANCH,
                    ))
                    append_event(conn, events, "repo.created", {"repo": name})
            except BaseException as err:
                self._discard(target)
                if isinstance(err, IntegrityError):
                    raise ConflictError(f"a repository named {name!r} already exists") from None
                raise
        self.metrics.events.labels("repo.created").inc()
        self.metrics.repos.inc()
        self._on_events()
        return record

    def delete(self, name: str) -> None:
        """Delete ``name``: its row and refs go and ``repo.deleted`` is recorded, then its directory.

        The caller holds the repository's lock, so no push is half recorded.
        """
        target = self.path(name)
        with self._names():
            with self.db.write() as conn:
                gone = conn.execute(delete(repos).where(repos.c.name == name)).rowcount
                if not gone:
                    raise NotFoundError(f"no repository named {name!r}")
                conn.execute(delete(refs).where(refs.c.repo == name))
                append_event(conn, events, "repo.deleted", {"repo": name})
            aside = self._set_aside(target) if target.exists() else None
        self.metrics.events.labels("repo.deleted").inc()
        self.metrics.repos.dec()
        self._on_events()
        if aside is not None:
            shutil.rmtree(aside, ignore_errors=True)

    def _set_aside(self, target: Path) -> Path:
        aside = self._trash() / f"old-{uuid.uuid4().hex}.git"
        os.rename(target, aside)
        return aside

    def _discard(self, target: Path) -> None:
        with suppress(FileNotFoundError):
            shutil.rmtree(self._set_aside(target), ignore_errors=True)

    def sweep(self) -> None:
        """Remove what a crash left in ``.trash``."""
        with self._names():  # a create in progress holds it while its scratch dir exists
            leftovers = list(self._trash().iterdir())
        for entry in leftovers:
            shutil.rmtree(entry, ignore_errors=True)

    # -- refs -----------------------------------------------------------------------

    def disk_refs(self, name: str) -> dict[str, str]:
        """Every ref of ``name`` as git has it now (branches, tags, any other namespace)."""
        out = run_git(self.path(name), "for-each-ref", "--format=%(objectname) %(refname)")
        found: dict[str, str] = {}
        for line in out.decode("utf-8", errors="replace").splitlines():
            sha, _, ref = line.partition(" ")
            if ref:
                found[ref] = sha
        return found

    def record_refs(self, name: str) -> list[RefChange]:
        """Record the ref changes of ``name`` not recorded yet; the caller holds its lock."""
        current = self.disk_refs(name)
        with self.db.read() as conn:
            if _diff(_recorded(conn, name), current) == []:
                return []  # the usual case at start: no write transaction at all
        with self.db.write() as conn:
            if conn.execute(select(repos.c.name).where(repos.c.name == name)).first() is None:
                return []  # deleted meanwhile by another process
            changes = _diff(_recorded(conn, name), current)
            for change in changes:
                append_event(conn, events, "ref.updated", {
                    "repo": name, "ref": change.ref, "before": change.before, "after": change.after,
                })
                where = (refs.c.repo == name) & (refs.c.ref == change.ref)
                if change.after == ZERO_SHA:
                    conn.execute(delete(refs).where(where))
                elif change.before == ZERO_SHA:
                    conn.execute(insert(refs).values(repo=name, ref=change.ref, sha=change.after))
                else:
                    conn.execute(update(refs).where(where).values(sha=change.after))
        if changes:
            self.metrics.events.labels("ref.updated").inc(len(changes))
            self._on_events()
        return changes

    def reconcile(self) -> int:
        """Record, for every repository, the ref changes made while nobody recorded them.

        Run at start. Returns how many changes were recorded.
        """
        total = 0
        for name in self.names():
            git_dir = self.path(name)
            if not git_dir.is_dir():
                log.error("repository %s has a row but no directory %s", name, git_dir)
                continue
            try:
                with file_lock(git_dir / LOCK_FILE):
                    _clear_stale_ref_locks(name, git_dir)
                    changes = self.record_refs(name)
            except (OSError, GitCommandError) as err:  # deleted meanwhile, or broken: not fatal
                log.error("could not reconcile the refs of %s: %s", name, err)
                continue
            if changes:
                log.warning("recorded %d ref change(s) of %s made while not recording", len(changes), name)
            total += len(changes)
        self.metrics.repos.set(self.count())
        return total


#: A ref lock older than this at start is left by a receive-pack that was killed (the
#: OOM killer, a power cut); one still running from a killed service is done long before.
STALE_LOCK_SECONDS = 60.0


def _clear_stale_ref_locks(name: str, git_dir: Path) -> None:
    """Remove ``*.lock`` files a killed ``git receive-pack`` left under ``refs/``.

    git refuses every later update of a ref whose lock file exists ("remove the file
    manually to continue"), so one crash would block that branch for good. The caller
    holds the repository's lock, so no push of ours is updating refs now.
    """
    now = time.time()
    candidates = [*(git_dir / "refs").rglob("*.lock"), git_dir / "packed-refs.lock", git_dir / "HEAD.lock"]
    for lock in candidates:
        try:
            if now - lock.stat().st_mtime > STALE_LOCK_SECONDS:
                lock.unlink()
                log.warning("removed the stale lock %s of %s", lock.relative_to(git_dir), name)
        except FileNotFoundError:
            continue


def _recorded(conn: Connection, name: str) -> dict[str, str]:
    rows = conn.execute(select(refs.c.ref, refs.c.sha).where(refs.c.repo == name))
    return {r.ref: r.sha for r in rows}


def _diff(recorded: dict[str, str], current: dict[str, str]) -> list[RefChange]:
    """The changes from ``recorded`` to ``current``, by ref name."""
    return [
        RefChange(ref, recorded.get(ref, ZERO_SHA), current.get(ref, ZERO_SHA))
        for ref in sorted(recorded.keys() | current.keys())
        if recorded.get(ref) != current.get(ref)
    ]
