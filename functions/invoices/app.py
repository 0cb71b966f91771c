"""GET /billing/invoices: older invoices of the signed-in user, after a snapshot's cursor.

Its own function so that ``GET /billing``, which every billing-page view calls, loads no
pydantic; this route validates its query parameter with Powertools (pydantic), and is
called only when a user pages back. It never imports ``stripe``.
"""

from __future__ import annotations

from typing import Annotated, Any

from aws_lambda_powertools import Logger
from aws_lambda_powertools.event_handler import APIGatewayHttpResolver, Response
from aws_lambda_powertools.event_handler.openapi.params import Query
from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.utilities.typing import LambdaContext

from billing.api.http import cacheable, error_doc, install_error_handlers, unauthorized_doc
from billing.api.identity import user_from_claims
from billing.aws.library_logs import cap_library_loggers
from billing.read.settings import get_snapshot_settings
from billing.read.snapshot import InvoicePage, decode_cursor, invoice_page, to_json
from billing.store.table import store_for_table

logger = Logger()
cap_library_loggers()  # before any AWS client logs a secret
app = APIGatewayHttpResolver(enable_validation=True)
install_error_handlers(app)


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
    items = store_for_table(settings.table_name).invoice_page(
        user.id, before=decode_cursor(cursor), limit=settings.invoice_page_size
    )
    page, _ = invoice_page(items, settings.invoice_page_size)
    return cacheable(to_json(page), app.current_event.headers.get("if-none-match"))


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_HTTP)
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return app.resolve(event, context)
