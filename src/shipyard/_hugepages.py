"""Transparent huge pages for the runner's memory (glibc's malloc tunables).

A step that prints at memory speed hands the runner its output faster than it can be
shipped, so for a moment the runner holds all of it: 100 MiB for a job printing
100 MiB. Fresh memory costs the kernel one page fault per 4 KiB page (25,600 for
100 MiB, about 40 ms on a small VM: as long as writing the same output to a file).
With ``glibc.malloc.hugetlb=1`` glibc's malloc asks for transparent huge pages
(``madvise(MADV_HUGEPAGE)``), 2 MiB each: 512 times fewer faults, and the runner
reads such a step's output in half the time. Memory use is unchanged: the pages are
taken when the output arrives and given back when it has been shipped. glibc does this
for its main arena only, and the runner reads output in the threads of its jobs, so
``glibc.malloc.arena_max=1`` too: every thread allocates from the main arena (under
Python's GIL they seldom contend for it), which also spares the memory of per-thread
arenas.

glibc reads its tunables once, when a process starts, from ``GLIBC_TUNABLES``: ``shipyard
up`` starts its runners' process with it (:func:`environment`), ``shipyard runner``
starts itself again with it once (:func:`reexec`). A job's steps inherit the runner's
environment, and their programs are the user's, run as they would run anywhere else:
the runner takes the tunable out of its environment as it starts (:func:`restore`).
Elsewhere (musl, macOS, a glibc older than 2.35) the variable is ignored, or never set.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping

__all__ = ["TUNABLE", "applies", "environment", "reexec", "restore"]

TUNABLE = "glibc.malloc.hugetlb=1:glibc.malloc.arena_max=1"
_VAR = "GLIBC_TUNABLES"
# What GLIBC_TUNABLES was before the tunable was added: "=" plus the value, or "" for unset.
_WAS = "SHIPYARD_GLIBC_TUNABLES_WAS"
# Set to 0 to leave malloc alone.
OPT_OUT = "SHIPYARD_RUNNER_HUGE_PAGES"


def applies() -> bool:
    """Whether this is Linux with glibc, and the tunable not turned off."""
    if not sys.platform.startswith("linux") or os.environ.get(OPT_OUT, "1") == "0":
        return False
    try:
        return os.confstr("CS_GNU_LIBC_VERSION").startswith("glibc ")  # type: ignore[union-attr]
    except (ValueError, OSError):  # not glibc
        return False


def environment(env: Mapping[str, str]) -> dict[str, str]:
    """``env`` for a runner process: with the tunables, before any already set (the
    user's own win), and what was there before, for :func:`restore`. Unchanged where it
    does not apply."""
    out = dict(env)
    if not applies() or _WAS in out:
        return out
    was = out.get(_VAR)
    out[_WAS] = "" if was is None else f"={was}"
    out[_VAR] = f"{TUNABLE}:{was}" if was else TUNABLE
    return out


def restore() -> None:
    """Give this process's environment back the ``GLIBC_TUNABLES`` it had before
    :func:`environment` (what a job's steps inherit)."""
    was = os.environ.pop(_WAS, None)
    if was is None:
        return
    if was.startswith("="):
        os.environ[_VAR] = was[1:]
    else:
        os.environ.pop(_VAR, None)


def reexec() -> None:
    """Start this process again with the tunable, unless it already has it (or it does
    not apply). Call before anything else is done: the process is replaced."""
    if _WAS in os.environ or not applies():
        return
    argv = [sys.executable, *sys.orig_argv[1:]]
    sys.stdout.flush()
    sys.stderr.flush()
    os.execve(sys.executable, argv, environment(os.environ))
