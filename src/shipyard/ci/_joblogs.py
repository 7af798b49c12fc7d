"""A job's log from the runner's appends to its archive: open, closed, lost.

A runner appends its log by byte offset (:class:`~shipyard.ci._logs.LogStore`). Its
completion may come before the whole log: it says how big the log will be
(``log_size``), the job ends at once (what needs it may start), and the log stays
*open*: appends are taken up to that size, refused past it, and the log *closes* when
it holds all of it. Only a closed log is archived to the store, and followers of
``GET /jobs/{id}/log`` read until it closes. A completion that brings no more than ci
holds closes the log at once.

A completion can race the last appends (a runner sends them side by side): the
completion notes the end it expects under the same per-job lock an append writes
under, so whichever comes second sees the other and closes the log; the watchdog's
sweep closes any log found complete (another replica took the append) within a tick.

A runner that dies before sending the rest cannot close it. While the log is open the
runner's appends and heartbeats keep the job's ``heartbeat_at`` fresh; when neither
came for ``heartbeat_timeout``, the watchdog closes the log with a last line saying
how much of it came, and what ci holds is archived.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager

from sqlalchemy import and_, or_, select, update

from shipyard.ci import _repo as repo
from shipyard.ci._logs import LogGap, LogStore
from shipyard.ci._queue import LogState
from shipyard.ci._tables import jobs
from shipyard.errors import ConflictError
from shipyard.service import Database, Notifier

__all__ = ["LOST_LOG", "JobLogs"]

#: The last line of a log whose runner was lost before sending all of it.
LOST_LOG = (
    "##[error]the runner was lost before the job's log was complete ({held} of {size} bytes)\n"
)

_STRIPES = 64

_OPEN = select(jobs.c.id, jobs.c.log_size, jobs.c.heartbeat_at).where(
    and_(jobs.c.log_open.is_(True), jobs.c.log_job_id.is_(None))
)


class JobLogs:
    """Appends to job logs, and their closing (see the module docstring).

    ``on_closed`` is called with the ids of jobs whose open log closed (the log
    archiver listens); ``clock`` is ci's, the one heartbeats are measured with.
    """

    def __init__(
        self, db: Database, logs: LogStore, notifier: Notifier, heartbeat_timeout: float, *,
        clock: Callable[[], float] = time.time,
        on_closed: Callable[[list[int]], None] = lambda ids: None,
    ) -> None:
        self.db = db
        self.logs = logs
        self.notifier = notifier
        self.heartbeat_timeout = heartbeat_timeout
        self.clock = clock
        self.on_closed = on_closed
        self._alive_at: dict[int, float] = {}
        self._ends: dict[int, int] = {}  # open logs' ends, noted by completions here
        self._lock = threading.Lock()
        self._stripes = [threading.Lock() for _ in range(_STRIPES)]

    @contextmanager
    def guard(self, job_id: int) -> Iterator[None]:
        """Held while an append writes and while a completion measures the log."""
        with self._stripes[job_id % _STRIPES]:
            yield

    def expect(self, job_id: int, end: int) -> None:
        """A completion (under :meth:`guard`) leaves the log open until it has ``end`` bytes."""
        with self._lock:
            if len(self._ends) > 10_000:
                self._ends.clear()  # the sweep closes what is forgotten
            self._ends[job_id] = end

    def append(
        self, job_id: int, state: LogState, offset: int, data: bytes | Sequence[bytes]
    ) -> int:
        """Store a runner's bytes (or their pieces, as they came) at its ``offset``; the
        log's size, in its offsets.

        Raises :class:`LogGap` (with the size in the runner's offsets) for an offset
        past the end, and :class:`ConflictError` for new bytes to a closed log or bytes
        past the end an open log will have.
        """
        base = state.base
        length = len(data) if isinstance(data, bytes) else sum(len(p) for p in data)
        if state.finished:
            if state.open and state.end is not None:
                if base + offset + length > state.end:
                    raise ConflictError(
                        f"job {job_id} has finished and its log ends at {state.end - base} "
                        f"bytes (the completion's log_size): {offset + length} is past it"
                    )
            elif offset + length > self.logs.size(job_id) - base:
                raise ConflictError(f"job {job_id} has finished: its log is closed")
        with self.guard(job_id):
            try:
                size = self.logs.append(job_id, base + offset, data)
            except LogGap as gap:
                raise LogGap(gap.size - base) from None
            end = state.end if state.open else self._ends.get(job_id)
        if end is not None:
            if size >= end:
                self.close(job_id)
            elif state.open:
                self._alive(job_id)
        return size - base

    def _alive(self, job_id: int) -> None:
        """An append to an open log: its runner lives (written at most a few times per
        ``heartbeat_timeout``)."""
        now = self.clock()
        every = min(1.0, self.heartbeat_timeout / 4)
        with self._lock:
            if now - self._alive_at.get(job_id, float("-inf")) < every:
                return
            if len(self._alive_at) > 10_000:
                self._alive_at.clear()
            self._alive_at[job_id] = now
        with self.db.write() as conn:
            conn.execute(
                update(jobs).where(and_(jobs.c.id == job_id, jobs.c.log_open.is_(True)))
                .values(heartbeat_at=now)
            )

    def close(self, job_id: int, *, lost_after: float | None = None) -> bool:
        """Close an open log that holds all it was to have; True when it was closed now.

        With ``lost_after``, a log short of that whose runner was not heard of since
        then is closed too, with :data:`LOST_LOG` as its last line.
        """
        with self.db.write() as conn:
            row = conn.execute(
                select(jobs.c.log_open, jobs.c.log_size, jobs.c.log_base, jobs.c.log_job_id,
                       jobs.c.heartbeat_at)
                .where(jobs.c.id == job_id).with_for_update()
            ).first()
            if row is None or not row.log_open or row.log_job_id is not None:
                return False
            size = self.logs.size(job_id)
            end = int(row.log_size or 0)
            if size < end:
                heard = row.heartbeat_at
                if lost_after is None or (heard is not None and heard >= lost_after):
                    return False
                self.logs.mark(job_id, LOST_LOG.format(
                    held=size - row.log_base, size=end - row.log_base
                ))
            # A rerun's kept copy of the job shows this log: it closes with it.
            conn.execute(
                update(jobs)
                .where(and_(jobs.c.log_open.is_(True),
                            or_(jobs.c.id == job_id, jobs.c.log_job_id == job_id)))
                .values(log_open=False)
            )
        with self._lock:
            self._alive_at.pop(job_id, None)
            self._ends.pop(job_id, None)
        self.logs.sync(job_id)  # the job's log is final: it must survive a crash
        self.notifier.notify("events", f"log:{job_id}", f"job:{job_id}")
        self.on_closed([job_id])
        return True

    def sweep(self, *, lost_after: float | None) -> None:
        """Close open logs that are complete (an append raced the completion), and, when
        ``lost_after`` is given, those whose runner was not heard of since then."""
        with repo.peek(self.db) as conn:
            rows = conn.execute(_OPEN).all()
        for row in rows:
            if self.logs.size(row.id) >= (row.log_size or 0):
                self.close(row.id)
            elif lost_after is not None and (
                row.heartbeat_at is None or row.heartbeat_at < lost_after
            ):
                self.close(row.id, lost_after=lost_after)
