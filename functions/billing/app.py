"""GET /billing: the signed-in user's billing snapshot, from one DynamoDB query.

This module must never import ``stripe`` (directly or through the layer): the
read path makes no Stripe call, and skipping the import keeps cold starts short.
A test asserts it.
"""

from __future__ import annotations

import hashlib
import time
from typing import Annotated, Any

from aws_lambda_powertools import Logger
from aws_lambda_powertools.event_handler import APIGatewayHttpResolver, Response
from aws_lambda_powertools.event_handler.openapi.params import Query
from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.utilities.typing import LambdaContext

from billing.http import error_doc, install_error_handlers, unauthorized_doc
from billing.identity import user_from_claims
from billing.library_logs import cap_library_loggers
from billing.projection_store import projection_store_for_table
from billing.settings import get_snapshot_settings
from billing.snapshot import BillingSnapshot, InvoicePage, compose, decode_cursor, invoice_page

logger = Logger()
cap_library_loggers()  # before any AWS or Stripe client logs a secret
app = APIGatewayHttpResolver(enable_validation=True)
install_error_handlers(app)

# Browsers revalidate with If-None-Match every time; shared caches never store it.
CACHE_CONTROL = "private, no-cache"


@app.get(
    "/billing",
    summary="The signed-in user's billing snapshot",
    responses={
        200: {
            "description": "The snapshot (free users get status none)",
            "content": {"application/json": {"model": BillingSnapshot}},
        },
        304: {"description": "Unchanged since the ETag in If-None-Match"},
        401: unauthorized_doc(),
        422: error_doc("Invalid request"),
        503: error_doc("Storage unavailable; retry after Retry-After seconds"),
    },
)
def get_billing() -> Response[Any]:
    user = user_from_claims(app.current_event.request_context.authorizer.jwt_claim)
    settings = get_snapshot_settings()
    items = projection_store_for_table(settings.table_name).user_items(
        user.id, invoices=settings.invoice_page_size
    )
    snapshot = compose(
        items,
        portal_flows=settings.portal_flows,
        page_size=settings.invoice_page_size,
        expiry_warning_days=settings.card_expiry_warning_days,
        now=time.time(),
    )
    return cacheable(snapshot.model_dump_json())


@app.get(
    "/billing/invoices",
    summary="Older invoices of the signed-in user, after a snapshot's next_cursor",
    responses={
        200: {
            "description": "One page of invoices",
            "content": {"application/json": {"model": InvoicePage}},
        },
        304: {"description": "Unchanged since the ETag in If-None-Match"},
        400: error_doc("The cursor is not one this API issued"),
        401: unauthorized_doc(),
        422: error_doc("The cursor is missing or too long"),
        503: error_doc("Storage unavailable; retry after Retry-After seconds"),
    },
)
def get_invoices(
    cursor: Annotated[str, Query(min_length=1, max_length=64)],
) -> Response[Any]:
    user = user_from_claims(app.current_event.request_context.authorizer.jwt_claim)
    settings = get_snapshot_settings()
    items = projection_store_for_table(settings.table_name).invoice_page(
        user.id, before=decode_cursor(cursor), limit=settings.invoice_page_size
    )
    page, _ = invoice_page(items, settings.invoice_page_size)
    return cacheable(page.model_dump_json())


def cacheable(body: str) -> Response[Any]:
    """200 with an ETag, or 304 when the client already has this body."""
    etag = '"' + hashlib.sha256(body.encode()).hexdigest()[:32] + '"'
    headers = {"ETag": etag, "Cache-Control": CACHE_CONTROL, "Vary": "Authorization"}
    if etag_matches(app.current_event.headers.get("if-none-match"), etag):
        return Response(status_code=304, headers=headers)
    return Response(status_code=200, content_type="application/json", body=body, headers=headers)


def etag_matches(if_none_match: str | None, etag: str) -> bool:
    """RFC 9110 weak comparison against an If-None-Match list (or ``*``)."""
    if not if_none_match:
        return False
    candidates = [tag.strip().removeprefix("W/") for tag in if_none_match.split(",")]
    return "*" in candidates or etag in candidates


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_HTTP)
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return app.resolve(event, context)
