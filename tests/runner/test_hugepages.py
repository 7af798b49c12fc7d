"""The runner's malloc tunables: given to the runner's process, kept from its steps.

Each case runs in a process of its own, started as ``up`` starts the runners (with
:func:`environment`), which then does what a runner does on start (:func:`restore`).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from shipyard._hugepages import OPT_OUT, TUNABLE, environment

# A runner's start: what glibc was given, then the environment its steps inherit.
_RUNNER = (
    "import json, os; from shipyard import _hugepages; "
    "started = open('/proc/self/environ', 'rb').read(); "
    "_hugepages.restore(); "
    "print(json.dumps({'huge': b'glibc.malloc.hugetlb=1' in started, "
    "'steps': {k: v for k, v in os.environ.items() if 'TUNABLES' in k}}))"
)


def _runner(env: dict[str, str]) -> dict[str, object]:
    base = {k: v for k, v in os.environ.items() if "TUNABLES" not in k and k != OPT_OUT}
    proc = subprocess.run([sys.executable, "-c", _RUNNER], env={**base, **env},
                          capture_output=True, text=True, timeout=60, check=True)
    result: dict[str, object] = json.loads(proc.stdout)
    return result


def test_added_to_an_environment_without_tunables_and_taken_out_again() -> None:
    env = environment({"PATH": "/bin"})
    assert env["GLIBC_TUNABLES"] == TUNABLE and env["PATH"] == "/bin"
    assert _runner(env) == {"huge": True, "steps": {}}


def test_the_user_s_tunables_come_last_so_they_win_and_are_given_back() -> None:
    mine = "glibc.malloc.tcache_count=0"
    env = environment({"GLIBC_TUNABLES": mine})
    assert env["GLIBC_TUNABLES"] == f"{TUNABLE}:{mine}"
    assert environment(env) == env  # added once only
    assert _runner(env) == {"huge": True, "steps": {"GLIBC_TUNABLES": mine}}


def test_an_empty_value_is_given_back_empty() -> None:
    assert _runner(environment({"GLIBC_TUNABLES": ""})) == {
        "huge": True, "steps": {"GLIBC_TUNABLES": ""}}


def test_turned_off_leaves_the_environment_alone() -> None:
    code = ("import json; from shipyard._hugepages import environment; "
            "print(json.dumps(environment({'PATH': '/bin'})))")
    proc = subprocess.run([sys.executable, "-c", code], env={**os.environ, OPT_OUT: "0"},
                          capture_output=True, text=True, timeout=60, check=True)
    assert json.loads(proc.stdout) == {"PATH": "/bin"}


def test_reexec_starts_the_process_again_with_the_tunables_once(tmp_path: Path) -> None:
    """The program runs twice (once before the exec), and from then on sees the user's
    environment, while glibc got the tunables."""
    marks = tmp_path / "runs"
    code = (
        "import os, sys; from shipyard import _hugepages; "
        f"open({str(marks)!r}, 'a').write('run\\n'); "
        "_hugepages.reexec(); "
        "started = open('/proc/self/environ', 'rb').read(); "
        "_hugepages.restore(); "
        "print(os.environ.get('GLIBC_TUNABLES', '<unset>')); "
        "print(b'glibc.malloc.hugetlb=1' in started)"
    )
    env = {k: v for k, v in os.environ.items() if k != "GLIBC_TUNABLES"}
    proc = subprocess.run([sys.executable, "-c", code, "an", "argument"], env=env,
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["<unset>", "True"]
    assert marks.read_text() == "run\nrun\n"
