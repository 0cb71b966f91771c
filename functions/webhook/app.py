"""POST /webhooks/stripe: verify Stripe's signature, then fold the event into the projection."""

from __future__ import annotations

import base64
import binascii
import time
from typing import Any

from aws_lambda_powertools import Logger
from aws_lambda_powertools.event_handler import APIGatewayHttpResolver, Response
from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.utilities.typing import LambdaContext

from billing.catalog_fanout import announcer
from billing.errors import InvalidSignature, MalformedBody
from billing.http import error_doc, install_error_handlers
from billing.library_logs import cap_library_loggers
from billing.projection import StripeEvent
from billing.projection_store import projection_store_for_table
from billing.secrets import secret_string
from billing.settings import WebhookSettings, get_webhook_settings
from billing.stripe_client import get_stripe_client
from billing.webhooks import (
    SIGNATURE_MISMATCH,
    WebhookProcessor,
    parse_secrets,
    verify_signature,
)

logger = Logger()
cap_library_loggers()  # before any AWS or Stripe client logs a secret
app = APIGatewayHttpResolver()
install_error_handlers(app)


@app.post(
    "/webhooks/stripe",
    summary="Stripe webhook endpoint (signed by Stripe; no JWT)",
    responses={
        200: {"description": "Event received (applied, duplicate, stale or ignored)"},
        400: error_doc("Missing, wrong or stale signature, or not a Stripe event"),
        502: error_doc("Stripe failed while the event was handled; Stripe retries"),
        503: error_doc("Storage, Stripe or secrets unavailable; Stripe retries"),
    },
)
def receive_event() -> Response[Any]:
    settings = get_webhook_settings()
    payload = raw_body(app.current_event.raw_event)
    header = app.current_event.headers.get("stripe-signature")
    try:
        verify(payload, header, settings)
    except InvalidSignature as error:
        # The reason only: never the header, the body or a secret.
        logger.warning("Webhook rejected", extra={"reason": error.message})
        raise
    event = StripeEvent.parse(payload)
    outcome = processor(settings).process(event)
    logger.info(
        "Webhook handled", extra={"event_id": event.id, "type": event.type, "outcome": outcome}
    )
    return Response(
        status_code=200,
        content_type="application/json",
        body=f'{{"received":true,"outcome":"{outcome.value}"}}',
    )


def raw_body(event: dict[str, Any]) -> bytes:
    """The bytes Stripe signed: API Gateway may have base64-encoded them."""
    body = event.get("body") or ""
    if event.get("isBase64Encoded"):
        try:
            return base64.b64decode(body, validate=True)
        except (binascii.Error, ValueError):
            raise MalformedBody("The body is not valid base64.") from None
    return body.encode("utf-8")


def verify(payload: bytes, header: str | None, settings: WebhookSettings) -> None:
    """Check the signature against the cached secrets, then once against fresh ones.

    Right after a secret rotation the new endpoint signs with a secret this warm
    container has not read yet; re-reading it (at most every
    ``SECRET_REFRESH_SECONDS``, so forged requests cannot flood Secrets Manager)
    accepts those deliveries at once instead of on Stripe's next retry.
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


SECRET_REFRESH_SECONDS = 30.0
_last_refresh = 0.0


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


def processor(settings: WebhookSettings) -> WebhookProcessor:
    store = projection_store_for_table(settings.table_name)
    return WebhookProcessor(
        settings=settings,
        store=store,
        stripe_client=lambda: get_stripe_client(settings),
        announce=announcer(store, settings.catalog_fanout_queue_url),
    )


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_HTTP)
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return app.resolve(event, context)
