"""Who is calling: the signed-in user, taken from the JWT authorizer's claims only."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from billing.core.errors import Unauthenticated

MAX_USER_ID_LENGTH = 255


@dataclass(frozen=True, slots=True)
class User:
    """The caller. ``id`` is the token's ``sub``; ``email`` is used only to create a customer."""

    id: str
    email: str | None = None


def user_from_claims(claims: Mapping[str, object] | None) -> User:
    """The user the API Gateway JWT authorizer verified, or ``Unauthenticated``.

    Client-sent ids (customer, subscription, user) are never read: the ``sub``
    claim is the only identity this product trusts.
    """
    subject = (claims or {}).get("sub")
    if not isinstance(subject, str) or not subject.strip():
        raise Unauthenticated("A signed-in user is required.")
    if len(subject) > MAX_USER_ID_LENGTH or not subject.isprintable():
        raise Unauthenticated("The token's subject is not usable.")
    email = (claims or {}).get("email")
    return User(id=subject, email=email if isinstance(email, str) and "@" in email else None)
