"""Custom::StripeCatalog: the products, prices and entitlement features of the
deployment, made to match ``template.yaml`` in Stripe on every deploy.

The properties state the whole catalog (``billing.provisioning.catalog``); this function
applies it (``billing.provisioning.catalog_resource``) and answers CloudFormation exactly
once (``billing.provisioning.answer``), even when initialisation below fails.
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.typing import LambdaContext

from billing.aws.library_logs import cap_library_loggers
from billing.provisioning.answer import ResourceHandler, Status, answer_request

logger = Logger()
cap_library_loggers()  # before any AWS or Stripe client logs a secret

resource: ResourceHandler | None = None
init_error: Exception | None = None
margin_seconds = 5.0
try:
    import time
    from collections.abc import Sequence

    import stripe

    from billing.aws.settings import get_backfill_settings, get_provisioning_settings
    from billing.projection.backfill import refresh_subscriber_entitlements
    from billing.projection.catalog_fanout import announcer
    from billing.projection.intake import WebhookProcessor, product_features
    from billing.projection.records import Kind
    from billing.provisioning.catalog_resource import StripeCatalogResource, catalog_objects
    from billing.store.table import store_for_table
    from billing.stripe_api.client import get_stripe_client

    settings = get_provisioning_settings()
    projection = get_backfill_settings()
    margin_seconds = settings.answer_margin_seconds

    def publish(
        client: stripe.StripeClient, catalog: str, changed_products: Sequence[str]
    ) -> dict[str, str]:
        """The catalog into the table as the backfill stores objects: so ``GET /plans``
        and the features' names are right after the first deploy, whose catalog Stripe
        announced before the webhook endpoint existed. Then the subscribers of products
        whose features changed get their entitlements as Stripe lists them now."""
        store = store_for_table(projection.table_name)
        processor = WebhookProcessor(
            settings=projection,
            store=store,
            stripe_client=lambda: client,
            announce=announcer(store, projection.catalog_fanout_queue_url),
        )
        now = int(time.time())
        products, prices, features = catalog_objects(client, catalog)
        attached = [product_features(client, product["id"]) for product in products]
        for kind, objects in (
            (Kind.PRODUCT, products),
            (Kind.PRICE, prices),
            (Kind.FEATURE, features),
            (Kind.PRODUCT_FEATURES, attached),
        ):
            for obj in objects:
                source = f"evt_catalog_{now}_{kind.value}_{obj['id']}"
                processor.apply_object(kind, obj, version=now - 1, source=source)
        refreshed, complete = refresh_subscriber_entitlements(
            processor, client, changed_products, now=now
        )
        if not complete:
            logger.warning(
                "Not every subscriber's entitlements were refreshed; run the backfill",
                extra={"refreshed": refreshed},
            )
        return {
            "EntitlementsRefreshed": str(refreshed),
            "EntitlementsComplete": "true" if complete else "false",
        }

    resource = StripeCatalogResource(lambda: get_stripe_client(settings), publish)
except Exception as error:  # answered FAILED on the first request, not left hanging
    logger.exception("Initialisation failed")
    init_error = error


@logger.inject_lambda_context
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> Status:
    return answer_request(
        event, context, resource, init_error=init_error, margin_seconds=margin_seconds
    )
