"""One ``docker exec`` in a job container, seen as a :class:`~._base.Process`.

The exec's output stream is read straight from the engine's socket (the HTTP response
is parsed here, so no byte of early output can sit unseen in a client library's
buffer), demultiplexed, and written in order to a pipe the runner reads like any other
process's output.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import threading
import time
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlparse

from shipyard.errors import ExecutorError
from shipyard.workflow.executors._base import kill_group, merged_pipe

if TYPE_CHECKING:
    from shipyard.workflow.executors._docker import DockerExecutor

_READ_SIZE = 1 << 20


def _connect(base_url: str) -> socket.socket:
    url = urlparse(base_url)
    if url.scheme in ("unix", "http+unix", "http+docker"):
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.connect(url.path or "/var/run/docker.sock")
        return sock
    if url.scheme in ("tcp", "http"):
        return socket.create_connection((url.hostname or "localhost", url.port or 2375))
    raise ExecutorError(f"the docker executor cannot stream from {base_url} (use a unix socket)")


class DockerProcess:
    """A process started with ``docker exec`` (stdout and stderr merged, in order)."""

    def __init__(
        self,
        executor: DockerExecutor,
        container: str,
        argv: list[str],
        cwd: str,
        env: Mapping[str, str],
    ) -> None:
        import docker.errors

        self._api: Any = executor.api
        try:
            created = self._api.exec_create(
                container,
                argv,
                stdout=True,
                stderr=True,
                environment=dict(env) or None,
                workdir=cwd,
            )
        except docker.errors.APIError as err:
            raise ExecutorError(f"docker exec failed: {err.explanation or err}") from None
        self._exec_id: str = created["Id"]
        self._sock = _connect(executor.base_url)
        body = json.dumps({"Detach": False, "Tty": False}).encode()
        request = (
            f"POST /v{self._api.api_version}/exec/{self._exec_id}/start HTTP/1.1\r\n"
            "Host: docker\r\nContent-Type: application/json\r\n"
            "Connection: Upgrade\r\nUpgrade: tcp\r\n"
            f"Content-Length: {len(body)}\r\n\r\n"
        ).encode() + body
        self._sock.sendall(request)
        rest = self._read_head()
        self._r, self._w = merged_pipe()
        self._exit: int | None = None
        self._pump = threading.Thread(
            target=self._run_pump, args=(rest,), daemon=True, name="docker-exec-output"
        )
        self._pump.start()

    def _read_head(self) -> bytes:
        buf = b""
        while b"\r\n\r\n" not in buf:
            chunk = self._sock.recv(65536)
            if not chunk:
                self._sock.close()
                raise ExecutorError("docker exec: the engine closed the connection")
            buf += chunk
        head, _, rest = buf.partition(b"\r\n\r\n")
        status_line = head.split(b"\r\n", 1)[0].decode("latin-1")
        parts = status_line.split(" ", 2)
        code = int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else 0
        if code not in (101, 200):
            self._sock.close()
            detail = rest.decode("utf-8", "replace").strip()
            with contextlib.suppress(ValueError):
                detail = json.loads(detail).get("message", detail)
            raise ExecutorError(f"docker exec failed: {status_line}: {detail}")
        return rest

    def _run_pump(self, pending: bytes) -> None:
        buf = bytearray(pending)
        fd = self._sock.fileno()
        try:
            while True:
                out = bytearray()
                pos = 0
                while len(buf) - pos >= 8:
                    size = int.from_bytes(buf[pos + 4 : pos + 8], "big")
                    if len(buf) - pos - 8 < size:
                        break
                    out += buf[pos + 8 : pos + 8 + size]
                    pos += 8 + size
                del buf[:pos]
                view = memoryview(out)
                while view:
                    view = view[os.write(self._w, view) :]
                chunk = os.read(fd, _READ_SIZE)
                if not chunk:
                    break
                buf += chunk
        except OSError:
            pass  # the reader went away, or the socket was shut down by kill()
        finally:
            with contextlib.suppress(OSError):
                os.close(self._w)

    def _inspect(self) -> dict[str, Any]:
        info: dict[str, Any] = self._api.exec_inspect(self._exec_id)
        return info

    def fileno(self) -> int:
        return self._r

    def poll(self) -> int | None:
        if self._exit is not None:
            return self._exit
        info = self._inspect()
        if info.get("Running"):
            return None
        code = info.get("ExitCode")
        self._exit = int(code) if code is not None else -1
        return self._exit

    def wait(self, timeout: float | None = None) -> int:
        deadline = None if timeout is None else time.monotonic() + timeout
        self._pump.join(timeout)
        delay = 0.001
        while True:
            code = self.poll()
            if code is not None:
                return code
            if deadline is not None and time.monotonic() > deadline:
                raise TimeoutError(f"docker exec {self._exec_id[:12]} still running")
            time.sleep(delay)
            delay = min(delay * 2, 0.1)

    def kill(self, grace: float = 1.0) -> None:
        info = self._inspect()
        pid = int(info.get("Pid") or 0)
        settle = time.monotonic() + 1.0
        while info.get("Running") and pid == 0 and time.monotonic() < settle:
            time.sleep(0.01)  # the engine reports the PID a moment after the start
            info = self._inspect()
            pid = int(info.get("Pid") or 0)
        # The exec'd process leads its own session inside the container; its host PID
        # names that process group.
        if info.get("Running") and pid > 0 and Path(f"/proc/{pid}").exists():
            kill_group(pid, grace)
        with contextlib.suppress(OSError):
            self._sock.shutdown(socket.SHUT_RDWR)

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self._sock.shutdown(socket.SHUT_RDWR)
        if self._r >= 0:
            os.close(self._r)  # a pump blocked on a full pipe gets EPIPE and ends
            self._r = -1
        self._pump.join(5)
        self._sock.close()
