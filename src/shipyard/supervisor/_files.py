"""What ``shipyard up`` keeps in the data dir: its lock, pid files and the admin token.

::

    <data-dir>/
        shipyard.toml        settings (optional, written by the user)
        secret.key           the token-signing secret (created once)
        admin.token          the admin token (created once, mode 0600)
        run/up.lock          held (flock) by the running supervisor
        run/up.pid           its pid
        run/<child>.pid      the pid of each service and of the runners process
        logs/<child>.log     their output, rotated by size
        runners/<i>/         each local runner agent's working folder
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import signal
import time
from collections.abc import Callable
from pathlib import Path

from shipyard.errors import AuthError, ConfigError
from shipyard.service import TokenSigner

__all__ = [
    "DataDirLock",
    "ensure_admin_token",
    "reap_leftovers",
    "remove_pid_file",
    "write_pid_file",
    "write_private",
]


def write_private(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` atomically, readable by its owner only (0600)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        with os.fdopen(fd, "w") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise


class DataDirLock:
    """One ``shipyard up`` per data dir: an ``flock`` the kernel releases if we die."""

    def __init__(self, data_dir: Path) -> None:
        self.run_dir = data_dir / "run"
        self.path = self.run_dir / "up.lock"
        self.pid_path = self.run_dir / "up.pid"
        self._fd: int | None = None

    def acquire(self) -> None:
        """Take the lock, or raise :class:`ConfigError` naming the running supervisor."""
        self.run_dir.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            holder = ""
            with contextlib.suppress(OSError, ValueError):
                holder = f" (pid {int(self.pid_path.read_text().strip())})"
            raise ConfigError(
                f"another `shipyard up`{holder} is already running with data dir "
                f"{self.run_dir.parent}; stop it first, or use another --data-dir"
            ) from None
        self._fd = fd
        self.pid_path.write_text(f"{os.getpid()}\n")

    def release(self) -> None:
        if self._fd is None:
            return
        with contextlib.suppress(OSError):
            self.pid_path.unlink()
        os.close(self._fd)  # closing drops the flock
        self._fd = None


def ensure_admin_token(path: Path, signer: TokenSigner) -> tuple[str, bool]:
    """The admin token kept at ``path``, issued on first start; (token, newly issued).

    A kept token that no longer verifies (the secret changed) is replaced.
    """
    with contextlib.suppress(FileNotFoundError):
        token = path.read_text().strip()
        try:
            if signer.verify(token).is_admin:
                return token, False
        except AuthError:
            pass
    token = signer.issue("admin", ["admin"])
    write_private(path, token + "\n")
    return token, True


def write_pid_file(run_dir: Path, name: str, pid: int) -> None:
    (run_dir / f"{name}.pid").write_text(f"{pid}\n")


def remove_pid_file(run_dir: Path, name: str) -> None:
    with contextlib.suppress(OSError):
        (run_dir / f"{name}.pid").unlink()


def _is_ours(pid: int, data_dir: Path) -> bool:
    """True when ``pid`` is a ``shipyard serve`` or ``shipyard runner`` of ``data_dir``.

    A pid file may outlive its process and the pid be reused, even by a child of
    another installation; only a process that names this data dir is ours.
    """
    try:
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        environ = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    except OSError:
        return False
    if b"shipyard.service" in argv:
        return f"SHIPYARD_DATA_DIR={data_dir}".encode() in environ
    if b"shipyard.runner._host" in argv and b"--work-dir" in argv:
        i = argv.index(b"--work-dir")
        return i + 1 < len(argv) and argv[i + 1] == str(data_dir / "runners").encode()
    if b"shipyard" not in argv:
        return False
    if b"serve" in argv:
        return f"SHIPYARD_DATA_DIR={data_dir}".encode() in environ
    if b"runner" in argv and b"--work-dir" in argv:
        i = argv.index(b"--work-dir")
        return i + 1 < len(argv) and argv[i + 1].startswith(f"{data_dir / 'runners'}/".encode())
    return False


MARK = "SHIPYARD_CHILD_OF"


def child_mark(data_dir: Path, name: str = "") -> str:
    """The environment entry (``NAME=value``) every process ``up`` starts carries, and
    what they start inherits: ``SHIPYARD_CHILD_OF=<data dir>/<child>``.

    It finds what a child left behind when it died: the steps of the runners' jobs and
    the ``git http-backend`` programs of git run in sessions of their own, so killing the
    child's process group misses them. ``name=""`` gives the prefix every child's mark
    starts with.
    """
    return f"{MARK}={data_dir}/{name}"


def kill_marked(mark: str, *, prefix: bool = False) -> list[int]:
    """SIGKILL every process whose environment holds ``mark`` (or an entry starting with
    it, with ``prefix``); the pids it killed."""
    needle = b"\0" + mark.encode() + (b"" if prefix else b"\0")
    me = os.getpid()
    killed = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == me:
            continue
        try:
            environ = Path(f"/proc/{entry}/environ").read_bytes()
        except OSError:
            continue
        if needle in b"\0" + environ + b"\0":
            with contextlib.suppress(ProcessLookupError):
                os.kill(int(entry), signal.SIGKILL)
                killed.append(int(entry))
    return killed


def reap_leftovers(data_dir: Path, report: Callable[[str], None]) -> None:
    """Stop children a previous supervisor left behind (it was killed with SIGKILL).

    Children normally die with their supervisor (they ask the kernel for SIGTERM when
    it goes); this catches any that did not, so they do not hold the databases.
    """
    for pid_file in sorted((data_dir / "run").glob("*.pid")):
        if pid_file.name == "up.pid":
            continue
        try:
            pid = int(pid_file.read_text().strip())
        except (OSError, ValueError):
            pid_file.unlink(missing_ok=True)
            continue
        if _is_ours(pid, data_dir):
            report(f"stopping {pid_file.stem} (pid {pid}) left running by an earlier `shipyard up`")
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)
            deadline = time.monotonic() + 10
            while _is_ours(pid, data_dir) and time.monotonic() < deadline:
                time.sleep(0.05)
            if _is_ours(pid, data_dir):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
        pid_file.unlink(missing_ok=True)
    orphans = kill_marked(child_mark(data_dir), prefix=True)
    if orphans:
        report(f"stopped {len(orphans)} process(es) the children of an earlier `shipyard up` left running")
