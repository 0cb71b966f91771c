"""The signed-in user's Stripe-side requests: POST /portal-sessions, /checkout-sessions,
/setup-intents and /billing/refresh."""

from __future__ import annotations

import time
from typing import Annotated, Any

from aws_lambda_powertools import Logger
from aws_lambda_powertools.event_handler import APIGatewayHttpResolver, Response
from aws_lambda_powertools.event_handler.openapi.params import Body
from aws_lambda_powertools.event_handler.openapi.types import OpenAPIResponse
from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.utilities.typing import LambdaContext

from billing.api.http import cacheable, error_doc, install_error_handlers, unauthorized_doc
from billing.api.identity import user_from_claims
from billing.aws.library_logs import cap_library_loggers
from billing.aws.settings import get_backfill_settings, get_settings
from billing.core.errors import RateLimited
from billing.portal.checkout import CheckoutService
from billing.portal.models import (
    CheckoutSessionRequest,
    CheckoutSessionResponse,
    PortalSessionRequest,
    PortalSessionResponse,
    SetupIntentResponse,
)
from billing.portal.sessions import (
    PortalService,
    projected_subscription_lookup,
    stripe_subscription_lookup,
)
from billing.projection.intake import WebhookProcessor
from billing.projection.refresh import REFRESH_INTERVAL_SECONDS, CustomerRefresh
from billing.read.clock import decision_time
from billing.read.settings import get_snapshot_settings
from billing.read.snapshot import BillingSnapshot, compose_for, to_json
from billing.store.table import store_for_table
from billing.stripe_api.client import get_stripe_client

logger = Logger()
cap_library_loggers()  # before any AWS or Stripe client logs a secret
app = APIGatewayHttpResolver(enable_validation=True)
install_error_handlers(app)


_COMMON_ERRORS: dict[int, OpenAPIResponse] = {
    401: unauthorized_doc(),
    422: error_doc("Invalid request"),
    502: error_doc("Stripe failed; retry after Retry-After seconds"),
    503: error_doc("Stripe, storage or secrets unavailable; retry after Retry-After seconds"),
}


def service() -> PortalService:
    """The service with this container's settings, store and Stripe client."""
    settings = get_settings()
    client = get_stripe_client(settings)
    store = store_for_table(settings.table_name)
    return PortalService(
        settings=settings,
        store=store,
        stripe=client,
        current_subscription=projected_subscription_lookup(
            store, fallback=stripe_subscription_lookup(client)
        ),
    )


@app.post(
    "/portal-sessions",
    summary="Open the Stripe billing portal for the signed-in user",
    responses={
        200: {"description": "Portal session created"},
        400: error_doc("Body is not JSON"),
        409: error_doc("The flow does not fit the user's subscription"),
        **_COMMON_ERRORS,
    },
)
def post_portal_session(
    request: Annotated[PortalSessionRequest | None, Body()] = None,
) -> PortalSessionResponse:
    user = user_from_claims(app.current_event.request_context.authorizer.jwt_claim)
    url = service().create_portal_session(user, request or PortalSessionRequest())
    return PortalSessionResponse(url=url)


@app.post(
    "/checkout-sessions",
    summary="Start the signed-in user's first subscription with Stripe Checkout",
    responses={
        200: {"description": "Checkout session opened (or the same open one again)"},
        400: error_doc("Body is not JSON"),
        409: error_doc(
            "already_subscribed: the user has a subscription (change it in the portal); "
            "checkout_in_progress: another checkout started at the same moment"
        ),
        **_COMMON_ERRORS,
    },
)
def post_checkout_session(
    request: Annotated[CheckoutSessionRequest, Body()],
) -> CheckoutSessionResponse:
    user = user_from_claims(app.current_event.request_context.authorizer.jwt_claim)
    answer = CheckoutService(service()).create_checkout_session(user, request)
    return CheckoutSessionResponse(url=answer.url, client_secret=answer.client_secret)


@app.post(
    "/billing/refresh",
    summary="The billing snapshot, after reading the user's subscriptions from Stripe now",
    responses={
        200: {
            "description": "The fresh snapshot, as GET /billing answers it",
            "content": {"application/json": {"model": BillingSnapshot}},
        },
        429: error_doc("At most one refresh per user every 10 seconds; retry after Retry-After"),
        **_COMMON_ERRORS,
    },
)
def post_billing_refresh() -> Response[Any]:
    user = user_from_claims(app.current_event.request_context.authorizer.jwt_claim)
    settings = get_snapshot_settings()
    store = store_for_table(settings.table_name)
    now = int(time.time())
    wait = store.claim_refresh(user.id, now=now, interval=REFRESH_INTERVAL_SECONDS)
    if wait:
        raise RateLimited("Refreshed moments ago; retry shortly.", retry_after_seconds=wait)
    customer = store.customer_for_user(user.id)
    if customer is not None:
        projection = get_backfill_settings()
        client = get_stripe_client(projection)
        processor = WebhookProcessor(
            settings=projection,
            store=store,
            stripe_client=lambda: client,
            # Customers, cards and subscriptions announce no catalog change.
            announce=lambda change: None,
        )
        CustomerRefresh(processor, client).run(customer, now=now)
    items = store.user_items(user.id, invoices=settings.invoice_page_size)
    snapshot = compose_for(items, settings, now=decision_time(items))
    return cacheable(to_json(snapshot), None)


@app.post(
    "/setup-intents",
    summary="Start saving a new card with Stripe Elements",
    responses={200: {"description": "SetupIntent created"}, **_COMMON_ERRORS},
)
def post_setup_intent() -> SetupIntentResponse:
    user = user_from_claims(app.current_event.request_context.authorizer.jwt_claim)
    return SetupIntentResponse(client_secret=service().create_setup_intent(user))


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_HTTP)
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return app.resolve(event, context)
