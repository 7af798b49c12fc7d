"""Locks that serialise work on one repository, within a process and across processes.

A push's ref changes must be recorded in the order they happened, and exactly once, so
everything that changes refs or records them (a push from receive-pack to its events,
the reconciliation at start, a delete) runs under the repository's lock: an
:class:`asyncio.Lock` so this process's requests queue without holding threads, then an
``flock`` on a file inside the repository, so another process serving the same data
dir queues too. ``flock`` locks belong to the open file, and the kernel drops them when
a process dies, so a killed service never leaves a repository locked.
"""

from __future__ import annotations

import asyncio
import fcntl
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import anyio

__all__ = ["LOCK_FILE", "HeldLock", "RepoLocks", "file_lock"]

#: The lock file inside each bare repository (git ignores unknown files there).
LOCK_FILE = "shipyard.lock"


def _open_locked(path: Path) -> int:
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
    except BaseException:
        os.close(fd)
        raise
    return fd


@contextmanager
def file_lock(path: Path, local: threading.Lock | None = None) -> Iterator[None]:
    """Hold an exclusive ``flock`` on ``path`` (created when missing), blocking until free."""
    if local is not None:
        local.acquire()
    try:
        fd = _open_locked(path)
        try:
            yield
        finally:
            os.close(fd)  # closing the file drops the lock
    finally:
        if local is not None:
            local.release()


class HeldLock:
    """A repository lock that is held; :meth:`release` it exactly once, from any task."""

    def __init__(self, lock: asyncio.Lock, fd: int) -> None:
        self._lock = lock
        self._fd: int | None = fd

    def release(self) -> None:
        if self._fd is None:
            return
        os.close(self._fd)
        self._fd = None
        self._lock.release()


class RepoLocks:
    """The per-repository locks of one process."""

    def __init__(self) -> None:
        self._locks: dict[str, asyncio.Lock] = {}

    async def acquire(self, name: str, git_dir: Path) -> HeldLock:
        """Wait for repository ``name``'s lock; FileNotFoundError when its directory is gone."""
        lock = self._locks.setdefault(name, asyncio.Lock())
        await lock.acquire()
        try:
            fd = os.open(git_dir / LOCK_FILE, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        except BaseException:
            lock.release()
            raise
        try:
            # The flock may wait for another process's push: in a thread, never the loop.
            # The fd is ours before the wait, so a cancelled wait cannot leak a held lock.
            await anyio.to_thread.run_sync(fcntl.flock, fd, fcntl.LOCK_EX)
        except BaseException:
            os.close(fd)
            lock.release()
            raise
        return HeldLock(lock, fd)

    def forget(self, name: str) -> None:
        """Drop the lock of a deleted repository (a later one of that name gets a new lock)."""
        lock = self._locks.get(name)
        if lock is not None and not lock.locked():
            del self._locks[name]
