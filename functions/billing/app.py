"""GET /billing: the signed-in user's billing snapshot, from one DynamoDB query; and
GET /plans: what the deployment sells, for a pricing table, from one more.

The billing page calls this on every view, so its cold start is kept short: it never
imports ``stripe`` (the read path makes no Stripe call) nor pydantic (the route takes
no input to validate; the views are dataclasses). Tests assert both. Older invoices
(``GET /billing/invoices``, which validates a query parameter) are another function.
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools import Logger
from aws_lambda_powertools.event_handler import APIGatewayHttpResolver, Response
from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.utilities.typing import LambdaContext

from billing.api.http import cacheable, error_doc, install_error_handlers, unauthorized_doc
from billing.api.identity import user_from_claims
from billing.aws.library_logs import cap_library_loggers
from billing.read.clock import decision_time
from billing.read.plans import PlanList, offered_plans, plans_json
from billing.read.settings import get_snapshot_settings
from billing.read.snapshot import BillingSnapshot, compose_for, to_json
from billing.store.table import store_for_table

logger = Logger()
cap_library_loggers()  # before any AWS client logs a secret
app = APIGatewayHttpResolver()
install_error_handlers(app)


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
        503: error_doc("Storage unavailable; retry after Retry-After seconds"),
    },
)
def get_billing() -> Response[Any]:
    user = user_from_claims(app.current_event.request_context.authorizer.jwt_claim)
    settings = get_snapshot_settings()
    items = store_for_table(settings.table_name).user_items(
        user.id, invoices=settings.invoice_page_size
    )
    snapshot = compose_for(items, settings, now=decision_time(items))
    return cacheable(to_json(snapshot), app.current_event.headers.get("if-none-match"))


@app.get(
    "/plans",
    summary="The plans this deployment sells (public, cacheable)",
    responses={
        200: {
            "description": "The plans of PlanLookupKeys, in that order",
            "content": {"application/json": {"model": PlanList}},
        },
        304: {"description": "Unchanged since the ETag in If-None-Match"},
        503: error_doc("Storage unavailable; retry after Retry-After seconds"),
    },
)
def get_plans() -> Response[Any]:
    settings = get_snapshot_settings()
    catalog = store_for_table(settings.table_name).catalog()
    offered = offered_plans(
        catalog, settings.plan_lookup_keys, trial_days=settings.checkout_trial_days
    )
    if offered.missing:
        logger.warning(
            "Offered plans missing from the stored catalog (run make backfill?)",
            extra={"lookup_keys": list(offered.missing)},
        )
    body = plans_json(offered.plans)
    return cacheable(body, app.current_event.headers.get("if-none-match"), public=True)


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_HTTP)
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return app.resolve(event, context)
