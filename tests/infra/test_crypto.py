"""Sensitive values: encrypted in every file, readable only with the right key."""

from __future__ import annotations

import base64
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from shipyard.errors import StateError
from shipyard.infra._crypto import KEY_ENV, Cipher, Keyring, key_id
from shipyard.infra._state import LocalBackend, OutputState, ResourceState

KEY = bytes(range(32))
OTHER_KEY = bytes(range(1, 33))


def secret_resource(address: str, n: int) -> ResourceState:
    return ResourceState(
        address=address,
        type="postgres_role",
        id=address,
        properties={"name": address, "password": f"PW-PLAINTEXT-{n}", "conn": {"dsn": "x"}},
        attributes={"token": f"TOKEN-PLAINTEXT-{n}", "oid": 16384 + n},
        dependencies=[],
        sensitive=["password", "token"],
    )


def all_bytes_under(folder: Path) -> dict[Path, bytes]:
    return {p: p.read_bytes() for p in folder.rglob("*") if p.is_file()}


class TestNoPlaintext:
    def test_no_sensitive_value_is_in_any_file_of_the_state_folder(self, tmp_path: Path) -> None:
        """Journal, current and older versions, damaged-journal copies: never in clear."""
        backend = LocalBackend(tmp_path / "state", key=KEY)
        with backend.session("alice@host", "apply") as s:
            for i in range(5):
                s.put(secret_resource(f"role{i}", i))
            s.set_outputs({"dsn": OutputState("OUTPUT-PLAINTEXT-0", True), "n": OutputState(1)})
        with backend.session("alice@host", "apply") as s:
            s.put(secret_resource("role0", 100))
            s.remove("role1")
            s.set_outputs({"dsn": OutputState("OUTPUT-PLAINTEXT-1", True)})
        s = backend.session("alice@host", "apply")
        s.put(secret_resource("role9", 9))  # left in the journal, uncommitted
        s.set_outputs({"dsn": OutputState("OUTPUT-PLAINTEXT-2", True)})
        s.close()
        assert backend.journal_path.exists()
        assert len(backend.versions()) == 2
        files = all_bytes_under(backend.dir)
        for path, data in files.items():
            for marker in (b"PW-PLAINTEXT", b"TOKEN-PLAINTEXT", b"OUTPUT-PLAINTEXT"):
                assert marker not in data, f"{marker!r} in {path}"
        # ... and all of them are still there for whoever has the key.
        state = LocalBackend(backend.dir, key=KEY).read()
        assert state.resources["role0"].properties["password"] == "PW-PLAINTEXT-100"
        assert state.resources["role9"].attributes["token"] == "TOKEN-PLAINTEXT-9"
        assert state.outputs["dsn"] == OutputState("OUTPUT-PLAINTEXT-2", True)
        old = backend.read_version(1)
        assert old.resources["role1"].properties["password"] == "PW-PLAINTEXT-1"
        assert old.outputs["dsn"].value == "OUTPUT-PLAINTEXT-0"
        # Non-sensitive values stay readable in the files.
        assert any(b'"oid":16384' in data for data in files.values())

    def test_a_state_without_secrets_needs_no_key(self, tmp_path: Path) -> None:
        key_file = tmp_path / "home" / "infra.key"
        backend = LocalBackend(tmp_path / "state", key_file=key_file)
        with backend.session("alice@host", "apply") as s:
            s.put(ResourceState("a", "null", "a", {"v": 1}, {}, [], ["absent"]))
        assert LocalBackend(tmp_path / "state", key_file=key_file).read().resources
        assert not key_file.exists()


class TestKeys:
    def test_the_key_file_is_created_0600_on_first_need_and_reused(self, tmp_path: Path) -> None:
        key_file = tmp_path / "home" / ".shipyard" / "infra.key"
        backend = LocalBackend(tmp_path / "state", key_file=key_file)
        with backend.session("alice@host", "apply") as s:
            s.put(secret_resource("r", 1))
        assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
        assert stat.S_IMODE(key_file.parent.stat().st_mode) == 0o700
        assert len(base64.b64decode(key_file.read_text())) == 32
        again = LocalBackend(tmp_path / "state", key_file=key_file).read()
        assert again.resources["r"].properties["password"] == "PW-PLAINTEXT-1"

    def test_a_wrong_key_is_a_clear_error_for_versions_and_journal(self, tmp_path: Path) -> None:
        backend = LocalBackend(tmp_path, key=KEY)
        with backend.session("alice@host", "apply") as s:
            s.put(secret_resource("r", 1))
        wrong = LocalBackend(tmp_path, key=OTHER_KEY)
        expected = (
            rf"{backend.version_path(1)}: the sensitive values were encrypted with the key "
            rf"whose id is {key_id(KEY)}, but the key from the backend's key has id "
            rf"{key_id(OTHER_KEY)}; set SHIPYARD_INFRA_KEY"
        )
        with pytest.raises(StateError, match=expected):
            wrong.read()
        journal_only = LocalBackend(tmp_path / "j", key=KEY)
        s = journal_only.session("alice@host", "apply")
        s.put(secret_resource("j", 2))
        s.close()  # not committed: only the journal holds the secret
        with pytest.raises(StateError, match=rf"{journal_only.journal_path}: the sensitive values"):
            LocalBackend(journal_only.dir, key=OTHER_KEY).read()

    def test_a_wrong_key_does_not_let_a_session_write(self, tmp_path: Path) -> None:
        backend = LocalBackend(tmp_path, key=KEY)
        with backend.session("alice@host", "apply") as s:
            s.put(secret_resource("r", 1))
        with (
            LocalBackend(tmp_path, key=OTHER_KEY).session("bob@host", "apply") as s,
            pytest.raises(StateError, match="encrypted with the key"),
        ):
            s.put(secret_resource("x", 2))
        assert [v.serial for v in backend.versions()] == [1]

    def test_the_environment_key_wins_over_the_given_one(self, tmp_path: Path) -> None:
        """A process with SHIPYARD_INFRA_KEY writes with it even when given another key."""
        code = (
            "import sys; from pathlib import Path;"
            "from shipyard.infra._state import LocalBackend, ResourceState;"
            "b = LocalBackend(Path(sys.argv[1]), key=bytes(32));"
            "s = b.session('ci@host', 'apply');"
            "s.put(ResourceState('r', 'null', 'r', {'pw': 'x'}, {}, [], ['pw'])); s.close()"
        )
        env = {**os.environ, KEY_ENV: base64.b64encode(KEY).decode()}
        subprocess.run([sys.executable, "-c", code, str(tmp_path)], env=env, check=True)
        assert LocalBackend(tmp_path, key=KEY).read().resources["r"].properties["pw"] == "x"
        with pytest.raises(StateError, match="encrypted with the key"):
            LocalBackend(tmp_path, key=bytes(32)).read()

    @pytest.mark.parametrize("text", ["not base64!", base64.b64encode(b"short").decode(), ""])
    def test_a_malformed_key_is_refused_with_the_way_to_make_one(self, text: str) -> None:
        keyring = Keyring(environ={KEY_ENV: text} if text else {}, key=b"short")
        source = KEY_ENV if text else "the backend's key"
        with pytest.raises(StateError, match=rf"state key from {source}"):
            keyring.cipher()

    def test_a_malformed_key_file_is_named(self, tmp_path: Path) -> None:
        key_file = tmp_path / "infra.key"
        key_file.write_text("garbage")
        with pytest.raises(StateError, match=rf"key file {key_file} must be the base64"):
            Keyring(key_file=key_file, environ={}).cipher()

    def test_urlsafe_base64_keys_are_accepted(self) -> None:
        text = base64.urlsafe_b64encode(bytes([251] * 32)).decode()
        assert "-" in text or "_" in text
        assert Keyring(environ={KEY_ENV: text}).cipher().id == key_id(bytes([251] * 32))


class TestCipher:
    def test_a_sealed_value_opens_only_in_its_place(self) -> None:
        cipher = Cipher(KEY, "test")
        token = cipher.seal(b"secret", b"put\0web")
        assert cipher.open(token, b"put\0web", "f") == b"secret"
        with pytest.raises(StateError, match="cannot be decrypted"):
            cipher.open(token, b"put\0db", "f")

    def test_an_altered_ciphertext_is_refused(self) -> None:
        cipher = Cipher(KEY, "test")
        raw = bytearray(base64.b64decode(cipher.seal(b"secret", b"a")))
        raw[-1] ^= 1
        with pytest.raises(StateError, match="or the file was altered"):
            cipher.open(base64.b64encode(bytes(raw)).decode(), b"a", "f")
        with pytest.raises(StateError, match="truncated"):
            cipher.open(base64.b64encode(b"abc").decode(), b"a", "f")

    def test_the_same_value_seals_differently_each_time(self) -> None:
        cipher = Cipher(KEY, "test")
        assert cipher.seal(b"x", b"a") != cipher.seal(b"x", b"a")
