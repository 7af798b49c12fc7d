"""Low-level process and file helpers shared by the ``process`` and ``loadbalancer`` providers.

Everything here reads ``/proc`` (Linux) rather than trusting pid files alone: a pid is
only "ours" while its start time (``/proc/PID/stat`` field 22, in clock ticks since boot)
matches the one recorded when it was started, so a recycled pid is never signalled.
A zombie counts as gone: on machines whose init does not reap orphans (containers) an
exited daemon stays a zombie for good.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

__all__ = [
    "describe_returncode",
    "group_members",
    "is_running",
    "parse_signal",
    "process_environ",
    "read_json",
    "rotate",
    "signal_group",
    "spawn_detached",
    "start_time",
    "tail_lines",
    "write_json",
]

# The grandchild of the launcher: forked by a throw-away Python (so the daemon is
# re-parented to init at once and the caller never has a zombie to reap), put in a new
# session (so the terminal's Ctrl-C and the caller's death do not reach it), then exec'd.
_DETACH = """\
import os, sys
fd = int(sys.argv[1])
argv = sys.argv[2:]
pid = os.fork()
if pid == 0:
    os.close(fd)
    os.setsid()
    try:
        os.execvp(argv[0], argv)
    except OSError as err:
        sys.stderr.write(f"cannot start {argv[0]}: {err}\\n")
        sys.stderr.flush()
        os._exit(127)
os.write(fd, b"%d\\n" % pid)
"""


def _stat_fields(pid: int) -> list[str] | None:
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name (field 2) is in parentheses and may contain spaces or ')'.
    return text.rpartition(")")[2].split()


def start_time(pid: int) -> int | None:
    """When ``pid`` started (clock ticks since boot), or None if it is gone or a zombie."""
    fields = _stat_fields(pid)
    if fields is None or fields[0] in ("Z", "X"):
        return None
    return int(fields[19])


def is_running(pid: int | None, started: int | None = None) -> bool:
    """Whether ``pid`` runs and, when ``started`` is given, is the process started then."""
    if pid is None or pid <= 0:
        return False
    now = start_time(pid)
    return now is not None and (started is None or now == started)


def group_members(pgid: int) -> list[int]:
    """The live (not zombie) processes of process group ``pgid``."""
    members = []
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        fields = _stat_fields(int(entry.name))
        if fields is not None and fields[0] not in ("Z", "X") and int(fields[2]) == pgid:
            members.append(int(entry.name))
    return members


def signal_group(pgid: int, sig: int) -> bool:
    """Send ``sig`` to process group ``pgid``; False when the group no longer exists."""
    try:
        os.killpg(pgid, sig)
    except ProcessLookupError:
        return False
    except PermissionError:
        return False
    return True


def process_environ(pid: int) -> dict[str, str] | None:
    """The environment ``pid`` was started with, or None when it cannot be read."""
    try:
        raw = Path(f"/proc/{pid}/environ").read_bytes()
    except OSError:
        return None
    env: dict[str, str] = {}
    for item in raw.split(b"\0"):
        key, sep, value = item.partition(b"=")
        if sep:
            env[key.decode(errors="replace")] = value.decode(errors="replace")
    return env


def iter_pids() -> Iterator[int]:
    """Every pid in ``/proc``."""
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            yield int(entry.name)


def parse_signal(name: str) -> signal.Signals:
    """``TERM``, ``SIGTERM`` or ``15`` as a signal; ValueError for anything else."""
    text = name.strip().upper()
    if text.isdigit():
        return signal.Signals(int(text))
    if not text.startswith("SIG"):
        text = "SIG" + text
    try:
        return signal.Signals[text]
    except KeyError:
        raise ValueError(f"unknown signal {name!r}") from None


def describe_returncode(code: int) -> str:
    """``exited with status 3`` or ``killed by signal 9 (SIGKILL)`` for a Popen returncode."""
    if code < 0:
        try:
            name = f" ({signal.Signals(-code).name})"
        except ValueError:
            name = ""
        return f"killed by signal {-code}{name}"
    return f"exited with status {code}"


def spawn_detached(
    argv: Sequence[str], *, cwd: Path, env: Mapping[str, str], log: Path
) -> int:
    """Start ``argv`` as a daemon (new session, parent init, output to ``log``); its pid.

    Raises OSError when the launcher cannot run; a program that cannot be executed
    leaves its reason in ``log`` and exits at once with status 127.
    """
    log.parent.mkdir(parents=True, exist_ok=True)
    read_end, write_end = os.pipe()
    try:
        out = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        try:
            launcher = subprocess.Popen(
                [sys.executable, "-I", "-S", "-c", _DETACH, str(write_end), *argv],
                stdin=subprocess.DEVNULL, stdout=out, stderr=out, cwd=cwd, env=dict(env),
                pass_fds=(write_end,), close_fds=True,
            )
        finally:
            os.close(out)
        os.close(write_end)
        write_end = -1
        data = b""
        with os.fdopen(read_end, "rb", closefd=True) as pipe:
            read_end = -1
            data = pipe.readline()
        launcher.wait()
    finally:
        for fd in (read_end, write_end):
            if fd >= 0:
                os.close(fd)
    if not data.strip().isdigit():
        raise OSError(f"could not start {argv[0]} (see {log})")
    return int(data)


def write_json(path: Path, data: Any) -> None:
    """Replace ``path`` with ``data`` as JSON atomically (readers never see half a file)."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{id(data):x}.tmp")
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as fh:
            json.dump(data, fh, separators=(",", ":"), sort_keys=True)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise


def read_json(path: Path) -> Any | None:
    """The JSON in ``path``, or None when it is missing or unreadable."""
    try:
        return json.loads(path.read_bytes())
    except (OSError, ValueError):
        return None


def tail_lines(path: Path, count: int, *, since: int = 0) -> list[str]:
    """The last ``count`` lines of ``path`` (from byte ``since`` on), without a trailing blank."""
    try:
        with path.open("rb") as fh:
            size = fh.seek(0, os.SEEK_END)
            start = max(since, size - 64 * 1024)
            if start >= size:
                return []
            fh.seek(start)
            data = fh.read()
    except OSError:
        return []
    lines = data.decode(errors="replace").splitlines()
    if start > since and lines:
        lines = lines[1:]  # the first line is probably cut
    return [line for line in lines if line.strip()][-count:]


def rotate(path: Path, backups: int) -> None:
    """Copy ``path`` to ``path.1`` (shifting older copies) and truncate it in place."""
    for i in range(backups - 1, 0, -1):
        older = path.with_name(f"{path.name}.{i}")
        if older.exists():
            os.replace(older, path.with_name(f"{path.name}.{i + 1}"))
    if backups > 0:
        shutil.copyfile(path, path.with_name(f"{path.name}.1"))
    os.truncate(path, 0)
