"""Signed tokens: what they allow, and refusing forged, malformed or expired ones."""

from __future__ import annotations

import pytest

from shipyard.errors import AuthError, ForbiddenError
from shipyard.service import TokenSigner

SECRET = b"0123456789abcdef0123456789abcdef"


class TestTokens:
    """Issue and verify."""

    def test_round_trip(self) -> None:
        signer = TokenSigner(SECRET)
        claims = signer.verify(signer.issue("runner:3", ["runner:3"], ttl=60))
        assert claims.subject == "runner:3"
        assert claims.scopes == {"runner:3"}
        assert claims.expires_at is not None

    def test_another_secret_is_refused(self) -> None:
        """A token signed with another key is forged."""
        token = TokenSigner(b"another-secret-of-32-bytes-000000").issue("admin", ["admin"])
        with pytest.raises(AuthError, match="signature"):
            TokenSigner(SECRET).verify(token)

    def test_tampered_payload_is_refused(self) -> None:
        signer = TokenSigner(SECRET)
        token = signer.issue("u", ["repos:read"])
        forged = signer.issue("u", ["admin"]).split(".")[0] + "." + token.split(".")[1]
        with pytest.raises(AuthError):
            signer.verify(forged)

    @pytest.mark.parametrize("token", ["", "abc", "sy_", "sy_a.b.c", "sy_!!!.xyz"])
    def test_malformed(self, token: str) -> None:
        with pytest.raises(AuthError):
            TokenSigner(SECRET).verify(token)

    def test_expired(self) -> None:
        now = [1000.0]
        signer = TokenSigner(SECRET, now=lambda: now[0])
        token = signer.issue("job:1", ["job:1"], ttl=10)
        signer.verify(token)
        now[0] = 1011.0
        with pytest.raises(AuthError, match="expired"):
            signer.verify(token)

    def test_short_secret_rejected(self) -> None:
        with pytest.raises(ValueError):
            TokenSigner(b"short")


class TestScopes:
    """What a token allows."""

    def test_admin_allows_everything(self) -> None:
        signer = TokenSigner(SECRET)
        claims = signer.verify(signer.issue("admin", ["admin"]))
        assert claims.allows("anything") and claims.can_write_repo("x")

    def test_repo_scopes(self) -> None:
        signer = TokenSigner(SECRET)
        claims = signer.verify(signer.issue("job:1", ["repo:demo:read"]))
        assert claims.can_read_repo("demo")
        assert not claims.can_read_repo("other")
        assert not claims.can_write_repo("demo")

    def test_require_names_the_scope(self) -> None:
        signer = TokenSigner(SECRET)
        claims = signer.verify(signer.issue("u", ["repos:read"]))
        with pytest.raises(ForbiddenError, match="pipelines:write"):
            claims.require("pipelines:write")
