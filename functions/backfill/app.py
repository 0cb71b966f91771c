"""Invoked by hand after a deploy (``make backfill STACK=...``): rebuild the projection.

Event (all optional): ``{"replay": true}``; ``replay: false`` skips replaying
undelivered events. Returns the outcome counts per kind.
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.typing import LambdaContext

from billing.aws.library_logs import cap_library_loggers
from billing.aws.settings import ProjectionSettings, get_backfill_settings
from billing.projection.backfill import Backfill
from billing.projection.catalog_fanout import announcer
from billing.projection.intake import WebhookProcessor
from billing.store.table import store_for_table
from billing.stripe_api.client import get_stripe_client

logger = Logger()
cap_library_loggers()  # before any AWS or Stripe client logs a secret


def run_backfill(
    settings: ProjectionSettings, *, replay: bool = True, now: float | None = None
) -> dict[str, Any]:
    """Rebuild the projection from Stripe (``now``: the run's start, default the clock)."""
    client = get_stripe_client(settings)
    store = store_for_table(settings.table_name)
    processor = WebhookProcessor(
        settings=settings,
        store=store,
        stripe_client=lambda: client,
        announce=announcer(store, settings.catalog_fanout_queue_url),
    )
    report = Backfill(processor, client).run(replay=replay, now=now)
    return {"counts": report.as_dict()}


@logger.inject_lambda_context
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return run_backfill(get_backfill_settings(), replay=bool((event or {}).get("replay", True)))
