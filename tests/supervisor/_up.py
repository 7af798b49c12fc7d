"""``shipyard up`` as a real subprocess, for the supervisor's and the CLI's tests."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from tests.helpers.servers import free_port

SHIPYARD = [sys.executable, "-m", "shipyard"]


@dataclass
class Up:
    """A running ``shipyard up`` and what it printed so far."""

    proc: subprocess.Popen[str]
    data_dir: Path
    home: Path
    port: int
    lines: list[str] = field(default_factory=list)
    _changed: threading.Condition = field(default_factory=threading.Condition)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def output(self) -> str:
        with self._changed:
            return "\n".join(self.lines)

    @property
    def token(self) -> str:
        return (self.data_dir / "admin.token").read_text().strip()

    def env(self) -> dict[str, str]:
        """The environment for CLI commands talking to this installation."""
        return {**_clean_env(), "SHIPYARD_HOME": str(self.home), "NO_COLOR": "1", "COLUMNS": "200"}

    def read(self) -> None:
        assert self.proc.stdout is not None
        with self.proc.stdout:
            for line in self.proc.stdout:
                with self._changed:
                    self.lines.append(line.rstrip("\n"))
                    self._changed.notify_all()
        with self._changed:
            self._changed.notify_all()

    def wait_for(self, text: str, timeout: float = 60) -> str:
        """Wait until a printed line contains ``text``; returns that line."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while True:
                for line in self.lines:
                    if text in line:
                        return line
                left = deadline - time.monotonic()
                if left <= 0 or (self.proc.poll() is not None and not self._reader_alive()):
                    raise AssertionError(f"{text!r} not printed; output:\n" + "\n".join(self.lines))
                self._changed.wait(min(left, 0.2))

    def _reader_alive(self) -> bool:
        return any(t.name == f"up-reader-{self.proc.pid}" and t.is_alive() for t in threading.enumerate())

    def pid(self, child: str) -> int:
        return int((self.data_dir / "run" / f"{child}.pid").read_text())

    def api(self, token: str | None = None) -> httpx.Client:
        return httpx.Client(base_url=self.url + "/api/v1", timeout=30,
                            headers={"Authorization": f"Bearer {token or self.token}"})

    def stop(self, timeout: float = 60, *, hurry: bool = False) -> int:
        """SIGTERM, as a service manager would; the exit code.

        ``hurry`` signals twice, as an impatient person would: `up` then stops waiting
        for its children to finish what they were doing.
        """
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            if hurry:
                with contextlib.suppress(subprocess.TimeoutExpired):
                    self.proc.wait(0.5)
                if self.proc.poll() is None:
                    self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout)
        finally:
            for t in threading.enumerate():
                if t.name == f"up-reader-{self.proc.pid}":
                    t.join(5)


def _clean_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("SHIPYARD_")}


def spawn_up(data_dir: Path, *args: str, port: int | None = None, home: Path | None = None,
             env: dict[str, str] | None = None) -> Up:
    """Start ``shipyard up`` on ``data_dir`` (it may not be healthy yet)."""
    port = free_port() if port is None else port
    home = home or data_dir.parent / "home"
    proc = subprocess.Popen(
        [*SHIPYARD, "up", "--data-dir", str(data_dir), "--port", str(port), *args],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, text=True,
        env={**_clean_env(), "SHIPYARD_HOME": str(home), "NO_COLOR": "1", "COLUMNS": "200",
             "PYTHONUNBUFFERED": "1", **(env or {})},
        start_new_session=True,
    )
    up = Up(proc, data_dir, home, port)
    threading.Thread(target=up.read, name=f"up-reader-{proc.pid}", daemon=True).start()
    return up


@contextlib.contextmanager
def running_up(data_dir: Path, *args: str, env: dict[str, str] | None = None,
               home: Path | None = None, hurry: bool = False) -> Iterator[Up]:
    """A healthy ``shipyard up``; stopped (and checked to exit 0) afterwards."""
    up = spawn_up(data_dir, *args, env=env, home=home)
    try:
        up.wait_for("Press Ctrl-C to stop.", timeout=120)
        yield up
    finally:
        code = up.stop(hurry=hurry)
        if code != 0:
            raise AssertionError(f"shipyard up exited {code}; output:\n{up.output}")


def alive(pid: int) -> bool:
    """True while ``pid`` exists and is not a zombie."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


def cli(up: Up, *args: str, timeout: float = 60, input: str | None = None) -> subprocess.CompletedProcess[str]:
    """Run a ``shipyard`` client command against ``up``."""
    return subprocess.run([*SHIPYARD, *args], capture_output=True, text=True, timeout=timeout,
                          env=up.env(), input=input, cwd=up.data_dir.parent)
