"""PostgreSQL password verifiers: make them, and check a password against a stored one.

The provider sends roles' passwords as SCRAM-SHA-256 verifiers computed here (so the
plain text never reaches the server or its statement log), and detects a password
changed outside Shipyard by checking the desired password against the verifier in
``pg_authid.rolpassword`` (readable by superusers only). The computation follows
PostgreSQL's ``src/common/scram-common.c`` and ``saslprep.c``: RFC 5802 with the password
normalised by SASLprep (RFC 4013) unless it is pure ASCII or cannot be prepared, in which
case its raw bytes are used, as PostgreSQL does.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
import stringprep
import unicodedata

ITERATIONS = 4096  # PostgreSQL's default scram_iterations
_SCRAM = re.compile(
    r"^SCRAM-SHA-256\$(\d+):([A-Za-z0-9+/=]+)\$([A-Za-z0-9+/=]+):([A-Za-z0-9+/=]+)$"
)
_MD5 = re.compile(r"^md5[0-9a-f]{32}$")

_PROHIBITED = (
    stringprep.in_table_c12,
    stringprep.in_table_c21,
    stringprep.in_table_c22,
    stringprep.in_table_c3,
    stringprep.in_table_c4,
    stringprep.in_table_c5,
    stringprep.in_table_c6,
    stringprep.in_table_c7,
    stringprep.in_table_c8,
    stringprep.in_table_c9,
    stringprep.in_table_a1,  # unassigned code points: PostgreSQL refuses them too
)


def is_verifier(password: str) -> bool:
    """Whether ``password`` is already a verifier (PostgreSQL stores those as given)."""
    return bool(_SCRAM.match(password) or _MD5.match(password))


def saslprep(password: str) -> bytes:
    """The bytes PostgreSQL hashes for ``password``."""
    raw = password.encode("utf-8")
    if password.isascii():
        return raw
    mapped = "".join(
        " " if stringprep.in_table_c12(ch) else ch
        for ch in password
        if not stringprep.in_table_b1(ch)
    )
    text = unicodedata.normalize("NFKC", mapped)
    if not text or any(check(ch) for ch in text for check in _PROHIBITED):
        return raw
    if any(stringprep.in_table_d1(ch) for ch in text) and (
        any(stringprep.in_table_d2(ch) for ch in text)
        or not stringprep.in_table_d1(text[0])
        or not stringprep.in_table_d1(text[-1])
    ):
        return raw
    return text.encode("utf-8")


def _keys(password: str, salt: bytes, iterations: int) -> tuple[bytes, bytes]:
    salted = hashlib.pbkdf2_hmac("sha256", saslprep(password), salt, iterations)
    client_key = hmac.new(salted, b"Client Key", hashlib.sha256).digest()
    stored_key = hashlib.sha256(client_key).digest()
    server_key = hmac.new(salted, b"Server Key", hashlib.sha256).digest()
    return stored_key, server_key


def scram_verifier(password: str, *, salt: bytes | None = None) -> str:
    """A SCRAM-SHA-256 verifier for ``password`` in PostgreSQL's ``rolpassword`` format."""
    salt = salt if salt is not None else secrets.token_bytes(16)
    stored, server = _keys(password, salt, ITERATIONS)

    def b64(data: bytes) -> str:
        return base64.b64encode(data).decode("ascii")

    return f"SCRAM-SHA-256${ITERATIONS}:{b64(salt)}${b64(stored)}:{b64(server)}"


def matches(password: str, stored: str, role: str) -> bool:
    """Whether ``password`` (plain, or a verifier as given) is what ``stored`` holds."""
    if is_verifier(password):
        return hmac.compare_digest(password.encode(), stored.encode())
    scram = _SCRAM.match(stored)
    if scram:
        try:
            salt = base64.b64decode(scram.group(2), validate=True)
            want_stored = base64.b64decode(scram.group(3), validate=True)
            want_server = base64.b64decode(scram.group(4), validate=True)
        except ValueError:
            return False
        got_stored, got_server = _keys(password, salt, int(scram.group(1)))
        return hmac.compare_digest(got_stored, want_stored) and hmac.compare_digest(
            got_server, want_server
        )
    if _MD5.match(stored):
        digest = hashlib.md5((password + role).encode("utf-8"), usedforsecurity=False)
        return hmac.compare_digest("md5" + digest.hexdigest(), stored)
    # Servers before PostgreSQL 10 could keep a password in plain text.
    return hmac.compare_digest(password.encode(), stored.encode())
