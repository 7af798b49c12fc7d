"""One job's log, step states and completion, on their way to ci.

:class:`JobStream` is the job runner's :class:`~shipyard.workflow._runtime.Reporter` for
one job. It turns the job's events into one byte stream, GitHub's raw-log style (the
agent writes the set-up group first)::

    ##[group]Set up job
    Runner ci-1 (executor local); job 17 "test (3.12)", attempt 1
    Commit 1f0c2e... (refs/heads/main) of demo
    ##[endgroup]
    ##[group]Run <step name>      (no second "Run " for "Run ..." and "Post ..." steps)
    <every line the step printed, masked, as printed>
    ##[error]<why the step failed, when it did>
    ##[endgroup]
    ... one group per step, in order (post steps too) ...
    ##[error]<why the job failed, when no step said so>

Each line ends with ``\\n`` and is UTF-8. A step's lines are exactly what it printed,
so a line of a step may itself start with ``##[`` or ``::``; only the groups this
runner writes sit between steps.

The stream is kept as bytes: output that needed no decoding comes in through
``log_bytes`` and is sent as it is; lines given as text are encoded once, as they come.

One uploader thread per job sends the stream with ``POST /jobs/{id}/log?offset=N``, so
chunks never reorder. It flushes 200 ms after its last flush, and at once after a flush
that found 256 KiB or more (so output streaming in is sent on without pauses), in
chunks of at most 8 MiB (large blocks of output are sent as they are, never joined),
and sends nothing when nothing is new. (Waking it as soon as 256 KiB wait was tried: a
step printing 100 MB at memory speed then shares the machine with the upload and takes
longer, and its log is complete no sooner.) A failed upload is retried with backoff
from the acknowledged offset (the server skips bytes it already holds); a 409 moves
the offset to the server's size. Step states go with the same flushes through
``POST /jobs/{id}/steps``, only when changed, and the final states ride in
``POST /jobs/{id}/complete``, retried until acknowledged.

The completion does not wait for the log. When more than 256 KiB are still to be sent
as the job ends, it goes at once, from a thread of its own, with ``log_size`` (the
size the log will have), while the uploader sends the rest: ci ends the job (and
starts what needs it) at once and closes the log when it holds ``log_size`` bytes. A
job whose log is (nearly) all sent sends the rest first and then completes, so the
completion closes its log: a trivial job costs two requests after its claim, the log
and the completion. A ci that refuses a ``log_size`` beyond what it holds (an older
one) gets the whole log first, then the completion again. :meth:`JobStream.wait`
returns once both are done: the agent keeps the job's slot (and a stopping agent
waits) until the whole log is shipped.

When the uploader falls far behind (the server is down), ``JobStream.log`` holds the
job's output until it catches up, so memory stays bounded. Adding a line costs one
encode, one list append and one test: the job runner calls ``log`` once per line.
"""

from __future__ import annotations

import collections
import dataclasses
import functools
import logging
import threading
import time
from collections.abc import Callable
from typing import Any, TypeVar

from shipyard.errors import (
    AuthError,
    ConflictError,
    ForbiddenError,
    NotFoundError,
    RequestError,
    TooLargeError,
    UnavailableError,
)
from shipyard.runner._protocol import Backoff, LogOffsetError, RunnerApi
from shipyard.workflow._runtime import Conclusion, JobResult, StepResult

__all__ = [
    "EARLY_COMPLETE", "FLUSH_BYTES", "FLUSH_INTERVAL", "MAX_CHUNK", "JobStream", "StreamStats",
]

log = logging.getLogger("shipyard.runner")

FLUSH_BYTES = 256 * 1024
FLUSH_INTERVAL = 0.2
MAX_CHUNK = 8 << 20  # ci takes appends up to 16 MiB; on a 413 (an older ci) the chunk halves
# More than this left to send when the job ends: the completion goes before the rest.
EARLY_COMPLETE = 256 * 1024
MAX_BACKLOG = 64 << 20
# What a completion carries at most (its JSON body must stay under the 1 MiB limit).
MAX_SUMMARY = 512 * 1024
MAX_ANNOTATIONS = 200
MAX_ANNOTATION = 4096
_MIN_CHUNK = 16 * 1024

T = TypeVar("T")


class _Gone(Exception):
    """The server no longer accepts anything for this job (404/401/403)."""


class _GiveUp(Exception):
    """Stop retrying: the agent is being forced to stop, or the server refuses for good."""


@dataclasses.dataclass(slots=True)
class StreamStats:
    """What one job's stream sent: requests by kind, bytes, and how it ended."""

    log_requests: int = 0
    step_requests: int = 0
    complete_requests: int = 0
    bytes_sent: int = 0
    retries: int = 0
    resyncs: int = 0
    completed: bool = False
    early: bool = False  # the completion went before the end of the log
    completed_at: float | None = None  # time.monotonic() when ci acknowledged it
    shipped_at: float | None = None  # ... when the last byte of the log was acknowledged


class _Bytes:
    """A FIFO of byte chunks with cheap removal from the front."""

    def __init__(self) -> None:
        self._chunks: collections.deque[bytes] = collections.deque()
        self._head = 0  # bytes of the first chunk already removed
        self.size = 0

    def append(self, data: bytes) -> None:
        if data:
            self._chunks.append(data)
            self.size += len(data)

    def peek(self, limit: int) -> list[bytes]:
        """Up to ``limit`` bytes from the front, as the chunks they are in (only a chunk
        cut by the front or the limit is copied), without removing them."""
        out: list[bytes] = []
        left = limit
        head = self._head
        for chunk in self._chunks:
            if left <= 0:
                break
            if head or len(chunk) > left:
                chunk = chunk[head : head + left]
                head = 0
            out.append(chunk)
            left -= len(chunk)
        return out

    def drop(self, n: int) -> None:
        n = min(n, self.size)
        self.size -= n
        while n:
            first = self._chunks[0]
            left = len(first) - self._head
            if n < left:
                self._head += n
                return
            n -= left
            self._chunks.popleft()
            self._head = 0

    def clear(self) -> None:
        self.drop(self.size)


_BIG = 64 * 1024  # parts this big are sent as they are; smaller ones are joined


def _coalesce(parts: list[bytes]) -> list[bytes]:
    """The parts, runs of small ones joined: big blocks of output are never copied, and
    a request is not made of thousands of pieces."""
    out: list[bytes] = []
    small: list[bytes] = []
    for part in parts:
        if len(part) >= _BIG:
            if small:
                out.append(small[0] if len(small) == 1 else b"".join(small))
                small = []
            out.append(part)
        else:
            small.append(part)
    if small:
        out.append(small[0] if len(small) == 1 else b"".join(small))
    return out


def _cut(text: str, limit: int) -> str:
    if len(text) <= limit:
        return text
    return text[: limit - 40] + "\n[cut: over the runner's limit]\n"


def _step_update(result: StepResult) -> dict[str, Any]:
    finished = (result.started_at or time.time()) + result.duration
    return {
        "number": result.index + 1,
        "name": result.name,
        "status": "completed",
        "conclusion": result.conclusion.value,
        "started_at": result.started_at,
        "finished_at": finished,
    }


class JobStream:
    """The reporter and uploader of one job (see the module docstring).

    ``cancel`` is set when the server refuses the job's token or forgets the job, so
    the job stops; ``abort`` (the agent forced to stop) ends retrying.
    """

    def __init__(
        self,
        api: RunnerApi,
        job_id: int,
        token: str,
        *,
        offset: int = 0,
        cancel: threading.Event | None = None,
        abort: threading.Event | None = None,
        flush_interval: float = FLUSH_INTERVAL,
        flush_bytes: int = FLUSH_BYTES,
        max_chunk: int = MAX_CHUNK,
        max_backlog: int = MAX_BACKLOG,
        early_complete: int = EARLY_COMPLETE,
    ) -> None:
        self.api = api
        self.job_id = job_id
        self.token = token
        self.cancel = cancel if cancel is not None else threading.Event()
        self.abort = abort if abort is not None else threading.Event()
        self.flush_interval = flush_interval
        self.flush_bytes = flush_bytes
        self.max_chunk = max_chunk
        self.max_backlog = max_backlog
        self.early_complete = early_complete
        self.acked = offset  # the server's log size as last acknowledged
        self.stats = StreamStats()
        self.result: JobResult | None = None
        # The job's thread appends encoded lines; the uploader takes them (see _take).
        self._parts: list[bytes] = []
        # Not empty while the uploader is far behind: the job's output then waits.
        self._gate: list[bool] = []
        self._avg_line = 64.0  # bytes per line lately, to estimate what waits in _parts
        self.log = self._line_sink()
        self._queue = _Bytes()
        # Guards the queue with ``acked`` (the log's size is always acked + queued +
        # what waits in _parts): the uploader, the completer and the job's end share them.
        self._qlock = threading.Lock()
        self._gone = False
        self._total: int | None = None  # the log's size once all is sent (known at the end)
        self._completer: threading.Thread | None = None
        self._ship_first = False  # ci refused the early completion: log first, then again
        self._steps_sending = threading.Lock()  # a steps request never overtakes completion
        self._wake = threading.Event()
        self._room = threading.Condition()
        self._done = threading.Event()
        self._steps_lock = threading.Lock()
        self._pending_steps: dict[int, dict[str, Any]] = {}
        self._all_steps: dict[int, dict[str, Any]] = {}
        self._thread = threading.Thread(
            target=self._run, name=f"job-{job_id}-log", daemon=True
        )

    # -- lifecycle -------------------------------------------------------------------

    def start(self) -> JobStream:
        self._thread.start()
        return self

    def wait(self, timeout: float | None = None) -> bool:
        """Wait until the completion is acknowledged and the whole log sent (or either
        given up); True when it ended."""
        return self._done.wait(timeout)

    @property
    def done(self) -> bool:
        return self._done.is_set()

    def write(self, *lines: str) -> None:
        """Add lines of the runner's own (a header, an error) to the log."""
        for line in lines:
            self.log("", 0, line)

    def fail(self, key: str, name: str, error: str) -> None:
        """End a job that could not start: its error in the log, and a failed completion."""
        self.job_finished(
            key, JobResult(key=key, job_id=key, name=name, conclusion=Conclusion.FAILURE, error=error)
        )

    # -- the Reporter protocol (the job's thread) --------------------------------------

    def job_started(self, key: str, name: str) -> None:
        pass

    def step_started(self, key: str, index: int, name: str) -> None:
        title = name if name.startswith(("Run ", "Post ")) else f"Run {name}"
        self.log(key, index, f"##[group]{title}")
        update = {
            "number": index + 1, "name": name, "status": "in_progress",
            "started_at": time.time(),
        }
        with self._steps_lock:
            self._pending_steps[index + 1] = update
            self._all_steps[index + 1] = update

    log: Callable[[str, int, str], None]
    """Add one line (the Reporter's ``log``); a plain function, see :meth:`_line_sink`."""

    def _line_sink(self) -> Callable[[str, int, str], None]:
        # A reporter without blocks calls this once per line, so it is a closure doing
        # one encode, one append and one test (a method counting bytes costs twice).
        append = self._parts.append
        gate = self._gate
        wait = self._wait_for_room

        def log(key: str, index: int, line: str) -> None:
            append((line + "\n").encode("utf-8", "replace"))
            if gate:
                wait()

        return log

    def log_block(self, key: str, index: int, text: str) -> None:
        """Many lines at once, joined by newlines (the workflow library's BlockReporter).

        One append per chunk of output instead of one per line: a step printing
        100 MB of short lines costs a few hundred calls, not millions.
        """
        self._add(text.encode("utf-8", "replace"))
        self._add(b"\n")

    def log_bytes(self, key: str, index: int, data: bytes) -> None:
        """Whole lines as the step wrote them, each ending with a newline (BytesReporter):
        kept as they are, neither decoded nor encoded."""
        self._add(data)

    def _add(self, data: bytes) -> None:
        self._parts.append(data)
        if self._gate:
            self._wait_for_room()

    def step_finished(self, key: str, result: StepResult) -> None:
        if result.error and result.conclusion is not Conclusion.SKIPPED:
            self.log(key, result.index, f"##[error]{result.error}")
        self.log(key, result.index, "##[endgroup]")
        update = _step_update(result)
        with self._steps_lock:
            self._pending_steps[update["number"]] = update
            self._all_steps[update["number"]] = update

    def job_finished(self, key: str, result: JobResult) -> None:
        if result.error and not any(s.error and s.error in result.error for s in result.steps):
            self.log(key, 0, f"##[error]{result.error}")
        with self._qlock:  # nothing is written any more: the log's size is known
            self._total = self.acked + self._queue.size + sum(len(p) for p in self._parts)
            left = self._total - self.acked
        completer = None
        if left > self.early_complete and not self._gone:
            # Much is still to send: ci ends the job now, while the uploader sends on.
            self.stats.early = True
            completer = self._completer = threading.Thread(
                target=self._complete_early, name=f"job-{self.job_id}-complete", daemon=True
            )
        self.result = result  # after the last line and the completer: the uploader reads it
        if completer is not None:
            completer.start()
        self._wake.set()

    def _wait_for_room(self) -> None:
        self._wake.set()
        with self._room:
            while self._gate and not (
                self._done.is_set() or self.cancel.is_set() or self.abort.is_set()
            ):
                self._room.wait(0.1)  # also sees cancel and abort, which do not notify

    def _check_backlog(self) -> None:
        """Hold the job's output while too much waits to be sent; release it at half."""
        pending = self._queue.size + len(self._parts) * self._avg_line
        if pending > self.max_backlog:
            if not self._gate:
                self._gate.append(True)
        elif self._gate and pending <= self.max_backlog // 2:
            self._open_gate()

    def _open_gate(self) -> None:
        with self._room:
            self._gate.clear()
            self._room.notify_all()

    # -- the uploader thread -------------------------------------------------------------

    def _run(self) -> None:
        busy = False
        try:
            while True:
                if not busy:  # output streaming in is sent on without a pause
                    self._wake.wait(self.flush_interval)
                    self._wake.clear()
                final = self.result is not None
                taken = self._take()
                busy = taken >= self.flush_bytes
                if final:
                    self._finish()
                    return
                if not self._gone:
                    self._send_log()
                    self._send_steps()
        except Exception:  # a bug here must not leave the job's slot taken forever
            log.exception("job %s: the log uploader failed", self.job_id)
        finally:
            self._done.set()
            self._open_gate()

    def _take(self) -> int:
        """Move the lines written so far to the send queue; the bytes moved."""
        parts = self._parts
        n = len(parts)
        if not n:
            return 0
        # The job's thread only appends, so the first n items stay put while they are
        # copied and removed (each list operation is atomic).
        with self._qlock:
            batch = parts[:n]
            del parts[:n]
            taken = 0
            for chunk in _coalesce(batch):
                taken += len(chunk)
                if not self._gone:
                    self._queue.append(chunk)
        self._avg_line = taken / n
        self._check_backlog()
        return taken

    def _retry(self, call: Callable[[], T]) -> T:
        backoff = Backoff(first=0.1, limit=5.0)
        while True:
            try:
                return call()
            except UnavailableError as err:
                if self.abort.is_set():
                    raise _GiveUp(str(err)) from None
                self._check_backlog()
                if backoff.failures in (0, 3) or backoff.failures % 20 == 0:
                    log.warning("job %s: %s; retrying", self.job_id, err)
                self.stats.retries += 1
                end = time.monotonic() + backoff.next_delay()
                while (left := end - time.monotonic()) > 0 and not self.abort.wait(min(left, 0.2)):
                    self._check_backlog()  # the job's output piles up meanwhile
            except (NotFoundError, AuthError, ForbiddenError) as err:
                log.warning("job %s: %s; stopping the job", self.job_id, err)
                self.cancel.set()
                self._drop_log()
                raise _Gone(str(err)) from None

    def _send_log(self) -> None:
        queue = self._queue
        while True:
            with self._qlock:
                if not queue.size or self._gone:
                    return
                chunk = queue.peek(self.max_chunk)
                offset = self.acked
            try:
                self.stats.log_requests += 1
                size = self._retry(
                    functools.partial(self.api.append_log, self.token, self.job_id, offset, chunk)
                )
            except LogOffsetError as err:
                # The server holds less than was acknowledged: continue at its end.
                log.warning(
                    "job %s: the server's log has %d bytes, not %d; continuing there",
                    self.job_id, err.size, offset,
                )
                self.stats.resyncs += 1
                with self._qlock:
                    self.acked = err.size
                continue
            except TooLargeError:
                if self.max_chunk <= _MIN_CHUNK:
                    log.error("job %s: the server refuses log chunks of %d bytes", self.job_id,
                              self.max_chunk)
                    self._drop_log()
                    return
                self.max_chunk //= 2
                continue
            except (_Gone, _GiveUp):
                self._drop_log()
                return
            except RequestError as err:
                log.error("job %s: the server refused the log: %s", self.job_id, err)
                self._drop_log()
                return
            self.stats.bytes_sent += sum(len(c) for c in chunk)
            with self._qlock:
                advanced = size - offset
                if advanced > 0:
                    queue.drop(advanced)
                self.acked = size
            if self._gate:
                self._check_backlog()

    def _drop_log(self) -> None:
        with self._qlock:
            self._gone = True
            self._queue.clear()
        self._open_gate()

    def _take_steps(self) -> list[dict[str, Any]]:
        with self._steps_lock:
            steps = list(self._pending_steps.values())
            self._pending_steps.clear()
        return steps

    def _send_steps(self) -> None:
        with self._steps_sending:
            if self.result is not None:  # the completion carries them all
                return
            steps = self._take_steps()
            if not steps or self._gone:
                return
            try:
                self.stats.step_requests += 1
                self._retry(lambda: self.api.update_steps(self.token, self.job_id, steps))
            except (_Gone, _GiveUp):
                pass
            except RequestError as err:  # the completion carries every step again
                log.warning("job %s: the server refused step states: %s", self.job_id, err)

    def _finish(self) -> None:
        """The job ended: the rest of the log, and the completion unless it went early."""
        self._send_log()
        if not self._gone and not self._queue.size:
            self.stats.shipped_at = time.monotonic()
        completer = self._completer
        if completer is None:
            if not self._gone:
                self._complete(self.acked)
            return
        completer.join()
        if self._ship_first and not self._gone:
            self._complete(self.acked)  # an older ci: now that it holds the whole log

    def _complete_early(self) -> None:
        """The completion thread of a job whose log is still being sent."""
        assert self._total is not None
        try:
            self._ship_first = self._complete(self._total, early=True)
        except Exception:  # the uploader waits for this thread: it must end
            log.exception("job %s: the completion failed", self.job_id)

    def _complete(self, log_size: int, *, early: bool = False) -> bool:
        """Send the completion, retried until acknowledged or refused for good.

        True when ``early`` and ci refused a ``log_size`` beyond what it holds (a ci
        that wants the whole log before the completion).
        """
        result = self.result
        assert result is not None
        with self._steps_sending:  # after any steps request already on its way
            self._take_steps()
        with self._steps_lock:
            steps = dict(self._all_steps)
        for step in result.steps:
            steps[step.index + 1] = _step_update(step)
        body: dict[str, Any] = {
            "conclusion": result.conclusion.value,
            "outputs": dict(result.outputs),
            "steps": [steps[n] for n in sorted(steps)],
            "log_size": log_size,
            "error": result.error,
            "summary": _cut(result.summary, MAX_SUMMARY),
            "annotations": [
                {
                    k: _cut(v, MAX_ANNOTATION) if isinstance(v, str) else v
                    for k, v in dataclasses.asdict(a).items()
                    if v is not None
                }
                for a in result.annotations[:MAX_ANNOTATIONS]
            ],
        }
        for _ in range(4):
            try:
                self.stats.complete_requests += 1
                self._retry(lambda: self.api.complete(self.token, self.job_id, body))
            except ConflictError as err:
                size = self._server_log_size()
                if size is not None and early:
                    # A ci that wants the whole log first: when the uploader has sent it
                    # meanwhile, again at once; else after it.
                    if size < body["log_size"]:
                        return True
                    continue
                if size is not None and size < body["log_size"]:
                    body["log_size"] = size  # the server lost the end of the log
                    continue
                log.warning("job %s: the server refused the completion: %s", self.job_id, err)
                return False
            except (_Gone, _GiveUp):
                return False
            except RequestError as err:
                if body.get("summary") or body.get("annotations") or body.get("outputs"):
                    # Something in the result is more than the server takes: still end
                    # the job, with what cannot be refused, and say what was left out.
                    log.warning("job %s: the server refused the completion (%s); "
                                "sending it without summary, annotations and outputs",
                                self.job_id, err)
                    note = f"the server refused the job's summary, annotations or outputs: {err}"
                    error = f"{body['error']}\n{note}" if body["error"] else note
                    body.update(summary="", annotations=[], outputs={}, error=_cut(error, 50_000))
                    continue
                log.error("job %s: the server refused the completion: %s", self.job_id, err)
                return False
            self.stats.completed = True
            self.stats.completed_at = time.monotonic()
            return False
        return False

    def _server_log_size(self) -> int | None:
        """The server's log size, learnt from an empty append at our offset."""
        try:
            return self.api.append_log(self.token, self.job_id, self.acked, b"")
        except LogOffsetError as err:
            return err.size
        except RequestError:
            return None
