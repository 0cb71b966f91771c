"""SQS: copy a catalog change (a product renamed, a price's lookup key or nickname) into
every subscriber's snapshot, handing what is left to a new message before the timeout."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.data_classes import SQSEvent, event_source
from aws_lambda_powertools.utilities.typing import LambdaContext

from billing.aws.library_logs import cap_library_loggers
from billing.aws.settings import get_fanout_settings
from billing.projection.catalog_fanout import CatalogChange, CatalogFanout, fanout_queue
from billing.store.table import store_for_table

logger = Logger()
cap_library_loggers()


@event_source(data_class=SQSEvent)
@logger.inject_lambda_context
def lambda_handler(event: SQSEvent, context: LambdaContext) -> dict[str, Any]:
    """One message at a time (the event source's batch size is 1): a failure raises, and
    SQS delivers the same message again, which resumes where that run started."""
    settings = get_fanout_settings()
    fanout = CatalogFanout(store_for_table(settings.table_name))
    updated = 0
    for record in event.records:
        change = CatalogChange.from_json(record.body)
        report = fanout.run(change, time_left=lambda: context.get_remaining_time_in_millis() / 1000)
        updated += report.updated
        logger.info(
            "Catalog change copied",
            extra={"updated": report.updated, "skipped": report.skipped, "more": bool(report.rest)},
        )
        if report.rest is not None:
            fanout_queue(settings.catalog_fanout_queue_url).announce(report.rest)
    return {"updated": updated}
