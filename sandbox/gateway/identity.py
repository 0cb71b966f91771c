"""A local identity provider, and token checks as API Gateway's JWT authorizer makes them.

``LocalIdentityProvider`` stands for Cognito (or any OIDC provider) in
development: an RSA key made at start, its JWKS, and RS256 access tokens.
``JwtVerifier`` checks a token the way an HTTP API JWT authorizer does:
signature against the JWKS (by ``kid``), ``iss`` equal to the configured
issuer, ``aud`` (or ``client_id`` when there is no ``aud``) among the
configured audiences, ``exp`` required and in the future, ``nbf``/``iat`` not
in the future.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Mapping, Sequence
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric import rsa

# API Gateway's JWT authorizers accept RSA signatures only.
ALGORITHMS = ("RS256", "RS384", "RS512")
DEFAULT_TTL_SECONDS = 3600


class TokenRejected(Exception):
    """The token is missing or fails a check; ``description`` says which, as API Gateway does."""

    def __init__(self, description: str) -> None:
        super().__init__(description)
        self.description = description


class LocalIdentityProvider:
    """Issues RS256 tokens for ``issuer``/``audience`` with a key that lives as long as it does."""

    def __init__(self, issuer: str, audience: str) -> None:
        self.issuer = issuer
        self.audience = audience
        self.kid = secrets.token_hex(8)
        self._key = rsa.generate_private_key(public_exponent=65537, key_size=2048)

    @property
    def jwks(self) -> dict[str, Any]:
        """The public key set, as served at ``/.well-known/jwks.json``."""
        jwk: dict[str, Any] = jwt.algorithms.RSAAlgorithm.to_jwk(
            self._key.public_key(), as_dict=True
        )
        return {"keys": [{**jwk, "kid": self.kid, "use": "sig", "alg": "RS256"}]}

    def issue_token(
        self,
        sub: str,
        email: str | None = None,
        ttl: int = DEFAULT_TTL_SECONDS,
        **claims: Any,
    ) -> str:
        """An access token for ``sub`` (with ``email`` when given) valid for ``ttl`` seconds.

        ``claims`` add or override claims (e.g. ``scope``, or a past ``exp`` in tests);
        None removes one (``aud=None, client_id=...`` makes a Cognito-style access token).
        """
        now = int(time.time())
        payload: dict[str, Any] = {
            "iss": self.issuer,
            "aud": self.audience,
            "sub": sub,
            "iat": now,
            "exp": now + ttl,
            "token_use": "access",
        }
        if email is not None:
            payload["email"] = email
        payload.update(claims)
        payload = {name: value for name, value in payload.items() if value is not None}
        return jwt.encode(payload, self._key, algorithm="RS256", headers={"kid": self.kid})

    def verifier(self, issuer: str | None = None, audiences: Sequence[str] = ()) -> JwtVerifier:
        """A verifier trusting this provider's keys (for its issuer and audience by default)."""
        return JwtVerifier(issuer or self.issuer, tuple(audiences) or (self.audience,), self.jwks)


class JwtVerifier:
    """The checks of an HTTP API JWT authorizer for one issuer, its audiences and its JWKS."""

    def __init__(self, issuer: str, audiences: Sequence[str], jwks: Mapping[str, Any]) -> None:
        self.issuer = issuer
        self.audiences = tuple(audiences)
        self._keys = {
            key.key_id: key for key in jwt.PyJWKSet.from_dict(dict(jwks)).keys if key.key_id
        }

    def verify(self, token: str) -> dict[str, Any]:
        """The token's claims, or ``TokenRejected`` saying what is wrong with it."""
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError:
            raise TokenRejected("the token is not a valid JWT") from None
        algorithm = header.get("alg")
        if algorithm not in ALGORITHMS:
            raise TokenRejected(f"the token's algorithm {algorithm!r} is not supported")
        key = self._keys.get(str(header.get("kid")))
        if key is None:
            raise TokenRejected("the token's signing key (kid) is not in the issuer's JWKS")
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                key.key,
                algorithms=[algorithm],
                issuer=self.issuer,
                options={"require": ["exp", "iss"], "verify_aud": False},
            )
        except jwt.ExpiredSignatureError:
            raise TokenRejected("the token has expired") from None
        except jwt.ImmatureSignatureError:
            raise TokenRejected("the token is not valid yet") from None
        except jwt.InvalidIssuerError:
            raise TokenRejected("the token's issuer is not the configured issuer") from None
        except jwt.InvalidSignatureError:
            raise TokenRejected("the token's signature does not verify") from None
        except jwt.PyJWTError as error:
            raise TokenRejected(f"the token is invalid: {error}") from None
        self._check_audience(claims)
        return claims

    def _check_audience(self, claims: Mapping[str, Any]) -> None:
        # API Gateway reads client_id only when the token has no aud (Cognito access tokens).
        audience = claims["aud"] if "aud" in claims else claims.get("client_id")
        offered = [audience] if isinstance(audience, str) else list(audience or [])
        if not any(str(value) in self.audiences for value in offered):
            raise TokenRejected("the token's audience is not an accepted audience")
