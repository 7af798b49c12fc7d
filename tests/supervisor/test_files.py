"""The data dir's lock, admin token and rotated logs."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from shipyard.errors import ConfigError
from shipyard.service import TokenSigner
from shipyard.supervisor import DataDirLock, RotatingLog, ensure_admin_token, write_private
from shipyard.supervisor._child import describe_exit


class TestLock:
    """One supervisor per data dir."""

    def test_second_lock_is_refused_naming_the_holder(self, tmp_path: Path):
        first = DataDirLock(tmp_path)
        first.acquire()
        try:
            with pytest.raises(ConfigError, match=r"already running \S* ?with data dir") as err:
                DataDirLock(tmp_path).acquire()
            assert "(pid " in str(err.value)
        finally:
            first.release()

    def test_released_lock_can_be_taken_again(self, tmp_path: Path):
        lock = DataDirLock(tmp_path)
        lock.acquire()
        lock.release()
        again = DataDirLock(tmp_path)
        again.acquire()
        again.release()
        assert not (tmp_path / "run" / "up.pid").exists()


class TestAdminToken:
    """The admin token is made once and kept."""

    def test_made_once_private_and_stable(self, tmp_path: Path):
        signer = TokenSigner(b"0123456789abcdef0123")
        path = tmp_path / "admin.token"
        token, new = ensure_admin_token(path, signer)
        assert new and signer.verify(token).is_admin
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        assert ensure_admin_token(path, signer) == (token, False)

    def test_replaced_when_the_secret_changed(self, tmp_path: Path):
        path = tmp_path / "admin.token"
        old, _ = ensure_admin_token(path, TokenSigner(b"first-secret-0123456789"))
        signer = TokenSigner(b"second-secret-0123456789")
        token, new = ensure_admin_token(path, signer)
        assert new and token != old and signer.verify(token).is_admin

    def test_write_private_replaces_atomically(self, tmp_path: Path):
        path = tmp_path / "sub" / "f"
        write_private(path, "one")
        write_private(path, "two")
        assert path.read_text() == "two"
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        assert [p.name for p in path.parent.iterdir()] == ["f"]


class TestRotatingLog:
    """Service logs rotate by size and keep a few old files."""

    def test_rotates_past_the_size_and_keeps_backups(self, tmp_path: Path):
        log = RotatingLog(tmp_path / "git.log", max_bytes=100, backups=2)
        for i in range(10):
            log.write(f"line {i:02d} ".encode() * 4 + b"\n")  # 41 bytes each
        log.close()
        names = sorted(p.name for p in tmp_path.iterdir())
        assert names == ["git.log", "git.log.1", "git.log.2"]
        assert (tmp_path / "git.log").read_text().endswith("line 09 \n")
        assert all(p.stat().st_size <= 100 for p in tmp_path.iterdir())

    def test_tail_gives_the_last_lines(self, tmp_path: Path):
        log = RotatingLog(tmp_path / "ci.log")
        for i in range(30):
            log.write(f"{i}\n".encode())
        assert log.tail(3) == ["27", "28", "29"]
        log.close()

    def test_appends_across_restarts(self, tmp_path: Path):
        for text in (b"first\n", b"second\n"):
            log = RotatingLog(tmp_path / "store.log")
            log.write(text)
            log.close()
        assert (tmp_path / "store.log").read_text() == "first\nsecond\n"


@pytest.mark.parametrize(("code", "text"), [
    (0, "code 0"), (3, "code 3"), (-9, "code -9 (killed by SIGKILL)"), (-15, "code -15 (killed by SIGTERM)"),
])
def test_exit_codes_are_described(code: int, text: str):
    assert describe_exit(code) == text
