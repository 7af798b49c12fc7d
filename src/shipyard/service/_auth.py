"""Signed tokens, checked by every service without a database round trip.

A token is ``sy_<payload>.<signature>``: the payload is base64url JSON
(``sub``, ``scopes``, ``iat``, ``exp``), the signature an HMAC-SHA256 of it under the
installation's secret. Services share the secret, so any of them can check a token the
gateway, ci or ``shipyard up`` issued.

Scopes, from widest to narrowest:

``admin``
    everything.
``register``
    register a runner (the registration token).
``runner:<id>``
    the runner protocol, as runner ``id``.
``job:<id>``
    what a running job needs: read its repository (``repo:<name>:read``), upload
    artifacts of its pipeline (``pipeline:<id>``), caches of its repository.
``repo:<name>:read`` / ``repo:<name>:write``
    clone / push one repository.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from shipyard.errors import AuthError, ForbiddenError

__all__ = ["Claims", "TokenSigner"]

_PREFIX = "sy_"


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


@dataclass(frozen=True, slots=True)
class Claims:
    """What a verified token says about its holder."""

    subject: str
    scopes: frozenset[str]
    issued_at: float
    expires_at: float | None

    @property
    def is_admin(self) -> bool:
        return "admin" in self.scopes

    def allows(self, *scopes: str) -> bool:
        """True when the token is admin or holds any of ``scopes``."""
        return self.is_admin or any(s in self.scopes for s in scopes)

    def require(self, *scopes: str) -> None:
        """Raise :class:`ForbiddenError` unless :meth:`allows`."""
        if not self.allows(*scopes):
            raise ForbiddenError(f"this token does not allow it (needs {' or '.join(scopes)})")

    def can_read_repo(self, name: str) -> bool:
        return self.allows("repos:read", "repos:write", f"repo:{name}:read", f"repo:{name}:write")

    def can_write_repo(self, name: str) -> bool:
        return self.allows("repos:write", f"repo:{name}:write")


class TokenSigner:
    """Issues and verifies tokens under one secret."""

    def __init__(self, secret: bytes, *, now: Callable[[], float] = time.time) -> None:
        if len(secret) < 16:
            raise ValueError("the signing secret must be at least 16 bytes")
        self._secret = secret
        self._now = now

    def _sign(self, payload: str) -> str:
        return _b64(hmac.new(self._secret, payload.encode(), hashlib.sha256).digest())

    def issue(self, subject: str, scopes: Iterable[str], *, ttl: float | None = None) -> str:
        """A token for ``subject`` holding ``scopes``; it never expires when ``ttl`` is None."""
        now = self._now()
        body = {
            "sub": subject,
            "scopes": sorted(set(scopes)),
            "iat": int(now),
            "exp": None if ttl is None else int(now + ttl),
        }
        payload = _b64(json.dumps(body, separators=(",", ":")).encode())
        return f"{_PREFIX}{payload}.{self._sign(payload)}"

    def verify(self, token: str) -> Claims:
        """The token's claims; :class:`AuthError` when it is malformed, forged or expired."""
        if not token.startswith(_PREFIX) or token.count(".") != 1:
            raise AuthError("malformed token")
        payload, signature = token[len(_PREFIX) :].split(".")
        if not hmac.compare_digest(self._sign(payload), signature):
            raise AuthError("invalid token signature")
        try:
            body = json.loads(_unb64(payload))
            claims = Claims(
                subject=str(body["sub"]),
                scopes=frozenset(str(s) for s in body["scopes"]),
                issued_at=float(body["iat"]),
                expires_at=None if body["exp"] is None else float(body["exp"]),
            )
        except (ValueError, KeyError, TypeError):
            raise AuthError("malformed token") from None
        if claims.expires_at is not None and claims.expires_at < self._now():
            raise AuthError("token expired")
        return claims
