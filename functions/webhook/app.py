"""POST /webhooks/stripe: verify Stripe's signature, then fold the event into the projection."""

from __future__ import annotations

import base64
import binascii
from typing import Any

from aws_lambda_powertools import Logger
from aws_lambda_powertools.event_handler import APIGatewayHttpResolver, Response
from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.utilities.typing import LambdaContext

from billing.api.http import error_doc, install_error_handlers
from billing.aws.library_logs import cap_library_loggers
from billing.aws.settings import WebhookSettings, get_webhook_settings
from billing.core.errors import InvalidSignature, MalformedBody
from billing.projection.catalog_fanout import announcer
from billing.projection.fold import StripeEvent
from billing.projection.intake import WebhookProcessor
from billing.projection.signature import verify_delivery
from billing.store.table import store_for_table
from billing.stripe_api.client import get_stripe_client

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
        verify_delivery(payload, header, settings)
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


def processor(settings: WebhookSettings) -> WebhookProcessor:
    store = store_for_table(settings.table_name)
    return WebhookProcessor(
        settings=settings,
        store=store,
        stripe_client=lambda: get_stripe_client(settings),
        announce=announcer(store, settings.catalog_fanout_queue_url),
    )


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_HTTP)
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return app.resolve(event, context)
