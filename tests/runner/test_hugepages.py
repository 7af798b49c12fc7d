"""The runner's malloc tunables: given to the runner's process, kept from its steps."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from shipyard import _hugepages
from shipyard._hugepages import TUNABLE

pytestmark = pytest.mark.skipif(not _hugepages.applies(), reason="glibc on Linux only")

_SHOW = "import os; print(os.environ.get('GLIBC_TUNABLES', '<unset>'))"


def test_added_to_an_environment_without_tunables_and_taken_out_again(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    env = _hugepages.environment({"PATH": "/bin"})
    assert env["GLIBC_TUNABLES"] == TUNABLE and env["PATH"] == "/bin"
    monkeypatch.setattr(os, "environ", dict(env))
    _hugepages.restore()
    assert os.environ == {"PATH": "/bin"}


def test_the_user_s_tunables_come_last_so_they_win_and_are_given_back(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    mine = "glibc.malloc.tcache_count=0"
    env = _hugepages.environment({"GLIBC_TUNABLES": mine})
    assert env["GLIBC_TUNABLES"] == f"{TUNABLE}:{mine}"
    assert _hugepages.environment(env) == env  # added once only
    monkeypatch.setattr(os, "environ", dict(env))
    _hugepages.restore()
    assert os.environ == {"GLIBC_TUNABLES": mine}


def test_an_empty_value_is_given_back_empty(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(os, "environ", _hugepages.environment({"GLIBC_TUNABLES": ""}))
    _hugepages.restore()
    assert os.environ == {"GLIBC_TUNABLES": ""}


def test_turned_off_leaves_the_environment_alone(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(_hugepages.OPT_OUT, "0")
    assert _hugepages.environment({"PATH": "/bin"}) == {"PATH": "/bin"}


def test_reexec_starts_the_process_again_with_the_tunables_once(tmp_path) -> None:
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
