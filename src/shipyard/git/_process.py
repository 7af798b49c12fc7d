"""A child process whose pipes are plain non-blocking file descriptors owned here.

Why not ``asyncio.create_subprocess_exec``: under uvloop it refuses to spawn while
another event loop of the same process is spawning ("Racing with another loop to spawn
a process"), which happens whenever two services share a process, each on its own loop
(tests, an embedded setup). Why not ``loop.connect_read_pipe`` on the Popen pipes:
uvloop's pipe transports close the descriptor, then close the file object holding the
same number again, which can close a descriptor another thread opened in between.

So the child is started with :class:`subprocess.Popen` on pipes made here, each
parent end is a non-blocking descriptor with exactly one owner and one ``close``, reads
and writes wait with :func:`anyio.wait_readable` / :func:`anyio.wait_writable`, and the
exit is awaited on a pidfd (readable when the child exits), or in a thread where pidfds
are not available.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
from collections.abc import Mapping, Sequence

import anyio

__all__ = ["AsyncProcess", "PipeReader", "PipeWriter"]

_CHUNK = 1 << 16
_MAX_LINE = 1 << 16


class PipeReader:
    """The reading end of a pipe, with buffered ``read`` and ``readline``."""

    def __init__(self, fd: int) -> None:
        os.set_blocking(fd, False)
        self._fd = fd
        self._buffer = bytearray()
        self._eof = False
        self.closed = False

    async def _fill(self) -> bool:
        """Read what the pipe has into the buffer; False at end of file."""
        while True:
            try:
                data = os.read(self._fd, _CHUNK)
            except BlockingIOError:
                await anyio.wait_readable(self._fd)
                continue
            if not data:
                self._eof = True
                return False
            self._buffer += data
            return True

    async def read(self, size: int = _CHUNK) -> bytes:
        """Up to ``size`` bytes; ``b""`` at end of file."""
        if not self._buffer and not self._eof:
            await self._fill()
        data = bytes(self._buffer[:size])
        del self._buffer[:size]
        return data

    async def readline(self) -> bytes:
        """One line with its ``\\n`` (without at end of file); ValueError past 64 KiB."""
        while True:
            end = self._buffer.find(b"\n")
            if end >= 0:
                line = bytes(self._buffer[: end + 1])
                del self._buffer[: end + 1]
                return line
            if len(self._buffer) > _MAX_LINE:
                raise ValueError("a line longer than 64 KiB")
            if self._eof or not await self._fill():
                line = bytes(self._buffer)
                self._buffer.clear()
                return line

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            os.close(self._fd)


class PipeWriter:
    """The writing end of a pipe."""

    def __init__(self, fd: int) -> None:
        os.set_blocking(fd, False)
        self._fd = fd
        self.closed = False

    async def write(self, data: bytes) -> None:
        """Write all of ``data``; BrokenPipeError when the reader is gone."""
        view = memoryview(data)
        while view:
            try:
                written = os.write(self._fd, view)
            except BlockingIOError:
                await anyio.wait_writable(self._fd)
                continue
            view = view[written:]

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            os.close(self._fd)


class AsyncProcess:
    """A running child in its own process group, with ``stdin``, ``stdout`` and ``stderr`` pipes."""

    def __init__(self, popen: subprocess.Popen[bytes], stdin: int, stdout: int, stderr: int) -> None:
        self._popen = popen
        self.pid = popen.pid
        self.stdin = PipeWriter(stdin)
        self.stdout = PipeReader(stdout)
        self.stderr = PipeReader(stderr)
        self.returncode: int | None = None

    @classmethod
    def start(cls, argv: Sequence[str], env: Mapping[str, str]) -> AsyncProcess:
        """Start ``argv`` (quick: a vfork and exec, fine on the event loop)."""
        pipes = [os.pipe2(os.O_CLOEXEC) for _ in range(3)]
        (in_r, in_w), (out_r, out_w), (err_r, err_w) = pipes
        try:
            popen = subprocess.Popen(
                list(argv),
                stdin=in_r,
                stdout=out_w,
                stderr=err_w,
                env=dict(env),
                start_new_session=True,  # a group of its own: signal it and its children at once
            )
        except BaseException:
            for fd in (in_r, in_w, out_r, out_w, err_r, err_w):
                os.close(fd)
            raise
        for fd in (in_r, out_w, err_w):  # the child's ends
            os.close(fd)
        return cls(popen, in_w, out_r, err_r)

    def signal_group(self, signum: int = signal.SIGTERM) -> None:
        """Signal the child's process group, unless the child has been reaped."""
        if self.returncode is None:  # not reaped, so its pid (the group id) is still its own
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.pid, signum)

    async def wait(self) -> int:
        """Wait for the child to exit and reap it; its exit status."""
        if self.returncode is not None:
            return self.returncode
        try:
            pidfd = os.pidfd_open(self.pid)
        except (AttributeError, OSError):  # no pidfds here: a thread waits instead
            self.returncode = await anyio.to_thread.run_sync(self._popen.wait)
            return self.returncode
        try:
            await anyio.wait_readable(pidfd)
        finally:
            os.close(pidfd)
        self.returncode = self._popen.wait()  # exited: reaps at once
        return self.returncode

    def close_stdout(self) -> None:
        """Close stdout: once its reader has seen EOF, or gave up (unread output is lost)."""
        self.stdout.close()

    def close_input_and_errors(self) -> None:
        """Close stdin and stderr (after :meth:`wait` and after stderr's EOF)."""
        self.stdin.close()
        self.stderr.close()
