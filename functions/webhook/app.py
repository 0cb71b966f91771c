"""POST /webhooks/stripe: verify Stripe's signature, then fold the event into the projection.

Each delivery is counted in CloudWatch (embedded metric format, Powertools Metrics):
``WebhookEvents`` with its ``outcome`` (``applied``, ``duplicate``, ``stale``,
``ignored``, ``other_mode``, ``unlinked``, ``retired``, ``unreadable``,
``rejected_signature``, ``malformed`` (not a Stripe event), ``failed`` (a 5xx: storage or
Stripe unavailable, Stripe retries): a bounded set, never an id), and ``WebhookLag``, the seconds
between the event's creation in Stripe and its processing here.
"""

from __future__ import annotations

import base64
import binascii
import os
import time
from typing import Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.event_handler import APIGatewayHttpResolver, Response
from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.metrics import MetricUnit
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
# The template sets POWERTOOLS_METRICS_NAMESPACE (the MetricsNamespace parameter); runs
# outside Lambda that import this module first (tests, the sandbox) get the default.
metrics = Metrics(namespace=os.environ.get("POWERTOOLS_METRICS_NAMESPACE") or "BillingPortal")
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
        count_delivery("rejected_signature")
        raise
    event = StripeEvent.parse(payload)
    outcome = processor(settings).process(event)
    count_delivery(outcome.value)
    metrics.add_metric(
        name="WebhookLag", unit=MetricUnit.Seconds, value=max(0, int(time.time()) - event.created)
    )
    logger.info(
        "Webhook handled", extra={"event_id": event.id, "type": event.type, "outcome": outcome}
    )
    return Response(
        status_code=200,
        content_type="application/json",
        body=f'{{"received":true,"outcome":"{outcome.value}"}}',
    )


def count_delivery(outcome: str) -> None:
    metrics.add_dimension(name="outcome", value=outcome)
    metrics.add_metric(name="WebhookEvents", unit=MetricUnit.Count, value=1)


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
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    response: dict[str, Any] = app.resolve(event, context)
    if not metrics.metric_set:  # answered by an error handler: not a Stripe event, or failed
        count_delivery("malformed" if response["statusCode"] < 500 else "failed")
    return response
