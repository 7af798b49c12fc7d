"""Encryption of the sensitive values a state records (AES-256-GCM).

The key is found lazily, the first time a sensitive value has to be sealed or opened, so
a stack without secrets never needs one: the ``SHIPYARD_INFRA_KEY`` environment variable
(base64 of 32 bytes) wins, else the ``key`` the backend was given, else the key file
(``~/.shipyard/infra.key`` by default), which is created with a fresh random key and
mode 0600 the first time it is needed. ``cryptography`` is imported only then too: the
CLI must start fast for stacks that have no secrets.

Each sealed value is ``base64(nonce || ciphertext || tag)`` with a random 96-bit nonce
and *associated data* naming what it is (``snapshot``, ``put\\0web`` ...), so that a
ciphertext moved to another place in a state fails to open. Files that hold sealed
values also record the *key id* (a fingerprint of the key, not the key), so a wrong key
is reported as such rather than as corruption.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import hashlib
import os
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Protocol

from shipyard.errors import StateError

__all__ = ["KEY_ENV", "Cipher", "Keyring", "default_key_file", "key_id"]

KEY_ENV = "SHIPYARD_INFRA_KEY"
KEY_BYTES = 32
NONCE_BYTES = 12


def default_key_file() -> Path:
    """Where the key lives when neither the environment nor the caller gives one."""
    return Path.home() / ".shipyard" / "infra.key"


def key_id(key: bytes) -> str:
    """A short fingerprint of ``key``, safe to write next to what it encrypted."""
    return hashlib.sha256(b"shipyard-infra-key-id\0" + key).hexdigest()[:16]


class _Aead(Protocol):
    def encrypt(self, nonce: bytes, data: bytes, associated_data: bytes | None) -> bytes: ...

    def decrypt(self, nonce: bytes, data: bytes, associated_data: bytes | None) -> bytes: ...


class Cipher:
    """Seals and opens values with one key; thread-safe."""

    def __init__(self, key: bytes, source: str) -> None:
        from cryptography.hazmat.primitives.ciphers.aead import AESGCM

        if len(key) != KEY_BYTES:
            raise StateError(f"the state key from {source} is {len(key)} bytes, not {KEY_BYTES}")
        self._aead: _Aead = AESGCM(key)
        self.source = source
        self.id = key_id(key)

    def seal(self, plaintext: bytes, aad: bytes) -> str:
        nonce = os.urandom(NONCE_BYTES)
        return base64.b64encode(nonce + self._aead.encrypt(nonce, plaintext, aad)).decode("ascii")

    def open(self, token: str, aad: bytes, where: str) -> bytes:
        """The plaintext of ``token``; ``where`` names the file for the error message."""
        from cryptography.exceptions import InvalidTag

        try:
            raw = base64.b64decode(token.encode("ascii"), validate=True)
        except (binascii.Error, UnicodeEncodeError, AttributeError):
            raise StateError(f"{where}: a sealed sensitive value is not valid base64") from None
        if len(raw) < NONCE_BYTES + 16:
            raise StateError(f"{where}: a sealed sensitive value is truncated")
        try:
            return self._aead.decrypt(raw[:NONCE_BYTES], raw[NONCE_BYTES:], aad)
        except InvalidTag:
            raise StateError(
                f"{where}: the sensitive values cannot be decrypted with the key from "
                f"{self.source} (key id {self.id}): either it is not the key they were "
                "encrypted with, or the file was altered"
            ) from None


def _decode_key(text: str, source: str) -> bytes:
    text = text.strip()
    for decode in (base64.b64decode, base64.urlsafe_b64decode):
        try:
            raw = decode(text.encode("ascii"))
        except (binascii.Error, ValueError, UnicodeEncodeError):
            continue
        if len(raw) == KEY_BYTES:
            return raw
    raise StateError(
        f"the state key from {source} must be the base64 of {KEY_BYTES} random bytes "
        "(e.g. the output of `head -c 32 /dev/urandom | base64`)"
    )


class Keyring:
    """Finds the key once, when it is first needed, and hands out its :class:`Cipher`."""

    def __init__(
        self,
        *,
        key: bytes | None = None,
        key_file: Path | None = None,
        environ: Mapping[str, str] | None = None,
    ) -> None:
        self._key = key
        self._key_file = key_file
        self._environ = os.environ if environ is None else environ
        self._cipher: Cipher | None = None
        self._mu = threading.Lock()

    def cipher(self) -> Cipher:
        """The cipher of the configured key; may create the key file (mode 0600)."""
        with self._mu:
            if self._cipher is None:
                self._cipher = self._load()
            return self._cipher

    def _load(self) -> Cipher:
        env = self._environ.get(KEY_ENV)
        if env:
            return Cipher(_decode_key(env, KEY_ENV), KEY_ENV)
        if self._key is not None:
            return Cipher(self._key, "the backend's key")
        path = self._key_file if self._key_file is not None else default_key_file()
        return Cipher(_read_or_create(path), f"key file {path}")


def _read_or_create(path: Path) -> bytes:
    source = f"key file {path}"
    try:
        return _decode_key(path.read_text(encoding="ascii"), source)
    except FileNotFoundError:
        pass
    except (OSError, UnicodeDecodeError) as e:
        raise StateError(f"cannot read the state key file {path}: {e}") from None
    # Written in full under a temporary name and linked into place, so that a process
    # racing to create the same file either wins or reads the winner's complete key.
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{os.urandom(4).hex()}.tmp")
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            os.write(fd, base64.b64encode(os.urandom(KEY_BYTES)) + b"\n")
            os.fsync(fd)
        finally:
            os.close(fd)
        with contextlib.suppress(FileExistsError):
            os.link(tmp, path)
        _fsync_dir(path.parent)
    except OSError as e:
        raise StateError(f"cannot create the state key file {path}: {e}") from None
    finally:
        tmp.unlink(missing_ok=True)
    return _decode_key(path.read_text(encoding="ascii"), source)


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
