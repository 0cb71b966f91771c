"""Stripe's webhook signature, checked against the signing secrets in Secrets Manager.

The secret value may hold several secrets (during a rotation, or one per
endpoint), so a delivery is accepted when any of them signed it.
"""

from __future__ import annotations

import re
import time
from collections.abc import Sequence

import stripe

from billing.aws.secrets import secret_string
from billing.aws.settings import WebhookSettings
from billing.core.errors import InvalidSignature

# A warm container re-reads the secrets after a mismatch at most this often, so
# forged requests cannot flood Secrets Manager.
SECRET_REFRESH_SECONDS = 30.0
_last_refresh = 0.0


def verify_delivery(payload: bytes, header: str | None, settings: WebhookSettings) -> None:
    """Check the signature against the cached secrets, then once against fresh ones.

    Right after a secret rotation the new endpoint signs with a secret this warm
    container has not read yet; re-reading it (at most every
    ``SECRET_REFRESH_SECONDS``) accepts those deliveries at once instead of on
    Stripe's next retry.
    """
    tolerance = settings.webhook_tolerance_seconds
    cached = signing_secrets(settings)
    try:
        verify_signature(payload, header, cached, tolerance=tolerance)
    except InvalidSignature as error:
        if error.message != SIGNATURE_MISMATCH or not _refresh_allowed():
            raise
        fresh = signing_secrets(settings, force_fetch=True)
        if fresh == cached:
            raise
        verify_signature(payload, header, fresh, tolerance=tolerance)


def _refresh_allowed() -> bool:
    global _last_refresh  # noqa: PLW0603 - one refresh budget per warm container
    now = time.monotonic()
    if now - _last_refresh < SECRET_REFRESH_SECONDS:
        return False
    _last_refresh = now
    return True


def signing_secrets(settings: WebhookSettings, *, force_fetch: bool = False) -> tuple[str, ...]:
    value = secret_string(
        settings.webhook_secret_name,
        max_age=settings.secret_cache_seconds,
        force_fetch=force_fetch,
    )
    return parse_secrets(value)


SIGNATURE_MISMATCH = "Signature mismatch."


def verify_signature(
    payload: bytes, header: str | None, secrets: Sequence[str], *, tolerance: int
) -> None:
    """Raise ``InvalidSignature`` unless one of ``secrets`` signed ``payload`` recently."""
    if not header:
        raise InvalidSignature("Missing Stripe-Signature header.")
    try:
        text = payload.decode("utf-8")
    except UnicodeDecodeError:
        raise InvalidSignature("The body is not UTF-8.") from None
    reason = "No configured webhook secret."
    for secret in secrets:
        try:
            stripe.WebhookSignature.verify_header(text, header, secret, tolerance)
        except stripe.SignatureVerificationError as error:
            # Stripe checks the signature before the timestamp, so this is a
            # genuine but old delivery (or a replay).
            stale = str(error).startswith("Timestamp outside")
            reason = "Timestamp outside the tolerance." if stale else SIGNATURE_MISMATCH
            if stale:
                break
            continue
        return
    raise InvalidSignature(reason)


def signing_entries(value: str) -> list[tuple[str | None, str]]:
    """(endpoint id or None, secret) per entry of a signing-secret value.

    Entries are separated by commas or whitespace; one may name its endpoint
    (``we_123=whsec_...``), as the webhook-endpoint custom resource writes them
    so that it can drop a deleted endpoint's secret.
    """
    entries: list[tuple[str | None, str]] = []
    for part in value.replace(",", " ").split():
        named = _NAMED_ENTRY.match(part)
        entries.append((named[1], named[2]) if named else (None, part))
    return entries


def parse_secrets(value: str) -> tuple[str, ...]:
    """The signing secrets in a Secrets Manager value (see :func:`signing_entries`)."""
    return tuple(secret for _, secret in signing_entries(value))


_NAMED_ENTRY = re.compile(r"^(we_[A-Za-z0-9]+)=(.*)$")
