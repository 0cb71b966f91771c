"""The one place a Stripe client is built, and Stripe errors are translated.

The client is created on first use, never at import: the secret key comes from
Secrets Manager through Powertools Parameters (``billing.aws.secrets``, cached for
``SECRET_CACHE_SECONDS``), and a rotated key builds a fresh client. The API
version is pinned here and must equal the one stripe-python was generated for,
so payload shapes match the code (a test checks it). ``STRIPE_API_BASE``
points the same code at the local Stripe stand-in.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import stripe
from aws_lambda_powertools import Logger

from billing.aws.secrets import secret_string
from billing.aws.settings import StripeSettings, get_settings
from billing.core.errors import CustomerMissing, FlowRejected, StripeFailed, StripeUnavailable

STRIPE_API_VERSION = "2026-10-28.endive"

logger = Logger(child=True)


@dataclass(frozen=True, slots=True)
class _Built:
    api_key_digest: str
    client: stripe.StripeClient


_built: _Built | None = None


def get_stripe_client(settings: StripeSettings | None = None) -> stripe.StripeClient:
    """The container's Stripe client, rebuilt only when the secret key changes."""
    global _built  # noqa: PLW0603 - one client per warm container is the point
    settings = settings or get_settings()
    api_key = _secret_key(settings)
    digest = hashlib.sha256(api_key.encode()).hexdigest()
    if _built is None or _built.api_key_digest != digest:
        _built = _Built(digest, _new_client(api_key, settings))
    return _built.client


def reset_stripe_client() -> None:
    """Forget the built client (tests, and after a key rotation is detected)."""
    global _built  # noqa: PLW0603
    _built = None


def _secret_key(settings: StripeSettings) -> str:
    value = secret_string(settings.stripe_secret_name, max_age=settings.secret_cache_seconds)
    if not value.strip():
        raise StripeFailed("The Stripe secret key is not configured.")
    return value.strip()


def _new_client(api_key: str, settings: StripeSettings) -> stripe.StripeClient:
    http_client = stripe.RequestsClient(
        timeout=(settings.stripe_connect_timeout_seconds, settings.stripe_read_timeout_seconds)
    )
    return stripe.StripeClient(
        api_key,
        stripe_version=STRIPE_API_VERSION,
        max_network_retries=settings.stripe_max_network_retries,
        http_client=http_client,
        base_addresses={"api": settings.stripe_api_base} if settings.stripe_api_base else {},
    )


def idempotency_key(purpose: str, *parts: str) -> str:
    """A stable Idempotency-Key for one logical operation (no raw ids or emails in it)."""
    digest = hashlib.sha256("\x1f".join(parts).encode()).hexdigest()
    return f"{purpose}-{digest[:48]}"


@contextmanager
def stripe_errors(operation: str) -> Iterator[None]:
    """Translate Stripe exceptions raised inside into domain errors for ``operation``.

    Transient failures (network, rate limit) become 503, Stripe-side or
    configuration failures 502; both tell the caller when to retry. A rejected
    ``flow_data`` becomes 422. Only Stripe's error code and request id are logged.
    """
    try:
        yield
    except (stripe.APIConnectionError, stripe.RateLimitError) as error:
        _log(operation, error, transient=True)
        raise StripeUnavailable("Stripe is unavailable right now; retry shortly.") from None
    except stripe.InvalidRequestError as error:
        if _is_missing_customer(error):
            _log(operation, error, transient=True)  # healed by the caller, not a fault
            raise CustomerMissing("The billing account no longer exists in Stripe.") from None
        _log(operation, error, transient=False)
        if (error.param or "").startswith("flow_data"):
            raise FlowRejected(
                "The billing portal does not offer this change for your subscription."
            ) from None
        raise StripeFailed("Stripe rejected the request; the team has been notified.") from None
    except stripe.StripeError as error:
        _log(operation, error, transient=False)
        raise StripeFailed("Stripe failed to handle the request; retry later.") from None


def _is_missing_customer(error: stripe.InvalidRequestError) -> bool:
    """Stripe's "No such customer": deleted, or never in this account (another key)."""
    message = error.user_message or ""
    return error.code == "resource_missing" and message.startswith("No such customer")


def _log(operation: str, error: stripe.StripeError, *, transient: bool) -> None:
    details = {
        "operation": operation,
        "stripe_error": type(error).__name__,
        "stripe_code": error.code,
        "http_status": error.http_status,
        "stripe_request_id": error.request_id,
    }
    if transient:
        logger.warning("Stripe call failed, transient", extra=details)
    else:
        logger.error("Stripe call failed", extra=details)
