"""Cron schedules (``on.schedule``) of each repository's default branch.

Each push to the default branch records its workflows' crons (a cron kept across
pushes keeps its next run time). A due cron starts one pipeline per (workflow,
scheduled minute): the pipeline's dedupe key says which, so a replica or a second tick
firing the same minute creates nothing more. A ci that was down does not catch up on
every minute it missed: the latest due minute fires once, then the next is computed
from now (as GitHub does).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from datetime import UTC, datetime

from croniter import croniter  # type: ignore[import-untyped, unused-ignore]
from sqlalchemy import Connection, and_, delete, insert, select, update

from shipyard.ci._engine import Engine
from shipyard.ci._sources import Sources
from shipyard.ci._tables import schedules
from shipyard.errors import NotFoundError

__all__ = ["Scheduler", "next_run", "replace_schedules"]

log = logging.getLogger("shipyard.ci")


def next_run(cron: str, after: float) -> float:
    """The first time strictly after ``after`` that ``cron`` (UTC) fires."""
    start = datetime.fromtimestamp(after, tz=UTC)
    return float(croniter(cron, start).get_next(float))


def replace_schedules(
    conn: Connection, repo: str, ref: str, sha: str, entries: Sequence[tuple[str, str]],
    now: float,
) -> None:
    """Make ``repo``'s schedules exactly ``entries`` (workflow path, cron) at ``sha``."""
    wanted = {(path, " ".join(cron.split())) for path, cron in entries}
    rows = conn.execute(select(schedules).where(schedules.c.repo == repo)).all()
    have = {(r.workflow, r.cron): r for r in rows}
    gone = [r.id for key, r in have.items() if key not in wanted]
    if gone:
        conn.execute(delete(schedules).where(schedules.c.id.in_(gone)))
    kept = [r.id for key, r in have.items() if key in wanted]
    if kept:
        conn.execute(update(schedules).where(schedules.c.id.in_(kept)).values(ref=ref, sha=sha))
    new = [
        {"repo": repo, "workflow": path, "cron": cron, "ref": ref, "sha": sha,
         "next_run": next_run(cron, now), "created_at": now}
        for path, cron in sorted(wanted) if (path, cron) not in have
    ]
    if new:
        conn.execute(insert(schedules), new)


class Scheduler:
    """Fires due crons; :meth:`tick` is what the background loop calls."""

    def __init__(
        self, engine: Engine, sources: Callable[[], Sources | None], clock: Callable[[], float]
    ) -> None:
        self.engine = engine
        self.sources = sources
        self.clock = clock

    def tick(self) -> list[int]:
        """Start the pipelines of every cron due now; their ids."""
        now = self.clock()
        with self.engine.db.read() as conn:
            due = conn.execute(
                select(schedules).where(schedules.c.next_run <= now).order_by(schedules.c.next_run)
            ).all()
        sources = self.sources()
        started: list[int] = []
        for row in due:
            minute = int(row.next_run // 60 * 60)
            spec = None
            if sources is not None:
                try:
                    spec = sources.for_schedule(row.repo, row.workflow, row.cron, row.ref, minute)
                except NotFoundError:
                    spec = None  # the repository or branch is gone: the cron just moves on

            def advance(conn: Connection, row_id: int = row.id, cron: str = row.cron,
                        due_at: float = row.next_run) -> None:
                conn.execute(
                    update(schedules)
                    .where(and_(schedules.c.id == row_id, schedules.c.next_run == due_at))
                    .values(next_run=next_run(cron, now))
                )

            started.extend(self.engine.create_pipelines(
                [spec] if spec is not None else [], schedules=advance
            ))
        return started
