"""A session on a local state: the lease, the journal, and the commits.

See :mod:`shipyard.infra._state` for the files and :class:`Session` for the contract.
Changes are applied to the in-memory state and queued for the journal under one lock,
so the journal's order is the order the state saw them; the lock is released while the
group-commit leader writes (see ``_state_journal``).
"""

from __future__ import annotations

import contextlib
import os
import threading
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from shipyard.errors import StateError
from shipyard.infra._lock import Lease, LockInfo
from shipyard.infra._state_codec import Corrupt, dumps, encode_outputs, encode_resource
from shipyard.infra._state_journal import GroupCommit, JournalFile
from shipyard.infra._state_model import OutputState, ResourceState, Session, State

if TYPE_CHECKING:
    from shipyard.infra._state import LocalBackend

__all__ = ["LocalSession"]


def _now() -> str:
    return datetime.now(UTC).isoformat()


class LocalSession(Session):
    """A session on a :class:`LocalBackend` (see :class:`Session`)."""

    def __init__(self, backend: LocalBackend, lease: Lease, operation: str) -> None:
        self._backend = backend
        self._lease = lease
        self._owner = lease.info.owner
        self._operation = operation
        self._cond = threading.Condition(threading.Lock())
        self._journal = GroupCommit(self._cond, self._open_journal)
        self._state: State | None = None
        self._load_error: StateError | None = None
        self._keep_old_journal = False
        self._changed = False
        self._closed = False
        lease.start_renewing()
        backend.remove_temporaries()
        try:
            state, journal, status = backend.load()
        except StateError as e:
            self._load_error = e
            self._keep_old_journal = backend.journal_path.exists()
            return
        self._state = state
        if status in ("stale", "empty"):
            backend.retire_journal(keep_aside=False)
        elif status == "replayed" and journal is not None:
            self._changed = True
            self._commit(f"{journal.begin.get('operation', 'operation')} (recovered)")

    @property
    def lease(self) -> LockInfo:
        """The lease this session holds."""
        return self._lease.info

    @property
    def took_over(self) -> LockInfo | None:
        """The lease this session replaced: one whose holder is gone, an expired one,
        or any when forced."""
        return self._lease.replaced

    @property
    def notice(self) -> str | None:
        return self._lease.takeover

    @property
    def state(self) -> State:
        if self._state is None:
            raise StateError(str(self._load_error))
        return self._state

    @property
    def changed(self) -> bool:
        return self._changed

    def _writable(self) -> State:
        if self._closed:
            raise StateError("the state session is closed")
        self._lease.check()
        return self.state

    def _open_journal(self) -> JournalFile:
        # Called by the group-commit leader; the state's serial cannot change meanwhile
        # (commit waits for the leader to finish).
        state = self.state
        aside = None
        if self._keep_old_journal:
            aside = self._backend.damaged_journal_path()
            self._keep_old_journal = False
        begin = {
            "base": state.serial,
            "lineage": state.lineage,
            "owner": self._owner,
            "pid": os.getpid(),
            "operation": self._operation,
            "started": _now(),
            "lease": self._lease.info.id,
        }
        try:
            return JournalFile.create(self._backend.journal_path, begin, aside=aside)
        except OSError as e:
            raise StateError(f"cannot create {self._backend.journal_path}: {e}") from e

    def put(self, rs: ResourceState, *, durable: bool = True) -> None:
        try:
            copy, record = encode_resource(rs, self._backend.keyring.cipher)
        except Corrupt as e:
            raise StateError(str(e)) from None
        with self._cond:
            state = self._writable()
            if state.resources.get(copy.address) == copy:
                seq = self._journal.last()
            else:
                seq = self._journal.enqueue(record)
                state.resources[copy.address] = copy
                self._changed = True
            if durable:
                self._journal.wait(seq)

    def remove(self, address: str, *, durable: bool = True) -> None:
        record = dumps({"op": "rm", "a": address})
        with self._cond:
            state = self._writable()
            if address not in state.resources:
                seq = self._journal.last()
            else:
                seq = self._journal.enqueue(record)
                del state.resources[address]
                self._changed = True
            if durable:
                self._journal.wait(seq)

    def set_outputs(self, outputs: dict[str, OutputState], *, durable: bool = True) -> None:
        try:
            copy, record = encode_outputs(outputs, self._backend.keyring.cipher)
        except Corrupt as e:
            raise StateError(str(e)) from None
        with self._cond:
            state = self._writable()
            if state.outputs == copy:
                seq = self._journal.last()
            else:
                seq = self._journal.enqueue(record)
                state.outputs = copy
                self._changed = True
            if durable:
                self._journal.wait(seq)

    def restore(self, serial: int) -> None:
        version = self._backend.read_version(serial)
        with self._cond:
            if self._closed:
                raise StateError("the state session is closed")
            self._lease.check()
            if self._state is None:
                # The current version or the journal is damaged: restoring is the way out.
                serials = self._backend.serials()
                self._state = State(version.lineage, serials[-1] if serials else 0)
                self._load_error = None
            seq = self._journal.enqueue(dumps({"op": "restore", "serial": serial}))
            self._state.resources, self._state.outputs = version.resources, version.outputs
            self._changed = True
            self._journal.wait(seq)

    def commit(self) -> None:
        self._commit(self._operation)

    def _commit(self, operation: str) -> None:
        with self._cond:
            if self._closed:
                raise StateError("the state session is closed")
            state = self.state
            # Records not written yet need not be: the version written now holds them
            # (and everything a journal that failed to write missed).
            with contextlib.suppress(StateError):
                self._journal.settle()
            if not self._changed:
                return
            self._lease.verify()
            self._backend.write_version(state, operation, self._owner)
            self._journal.reset()
            self._backend.retire_journal(keep_aside=self._keep_old_journal)
            self._keep_old_journal = False
            self._changed = False

    def close(self) -> None:
        with self._cond:
            if self._closed:
                return
            self._closed = True
            self._journal.close()
        self._lease.release()
