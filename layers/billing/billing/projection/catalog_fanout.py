"""Catalog changes copied into every subscriber's snapshot: a product renamed, a price's
nickname or lookup key changed.

The snapshot stays one DynamoDB request by holding copies of those fields in each
subscription item, so a change must reach every snapshot that holds a copy. A product
can have 100,000 subscribers, far more than one webhook invocation may update before
Stripe's 20-second answer deadline, so the webhook only announces the change
(:class:`CatalogChange`, one SQS message) and answers at once; the catalog fan-out
function walks the product's subscriber index (``SUBSCRIBERS#<product>``) a page at a
time and updates each snapshot's item with one conditional ``UpdateItem``. When its
invocation runs short of time it sends the rest as a new message that starts after the
last subscription done, so no run needs more than one Lambda timeout, and a failed run
is retried by SQS from where its message starts (then dead-lettered).

Why this is safe to repeat and to race:

- each copy is conditional on the item still billing that product or price, and on
  the copy being no newer than the change (``name_version``/``price_version``), so a
  retry rewrites the same values and a late, older change never overwrites a newer one;
- a subscription written while a change commits cannot keep the old values: it copies
  from the stored product and price records (``PRICEID#``), never older than the
  event it carries, and its transaction checks those records are unchanged
  (``CatalogCheck``), so it retries with the new values when the change committed
  first; when it committed first itself, the fan-out, which starts after the change,
  finds it in the index (read consistently).

Cost: for N subscribers, N ``UpdateItem`` + ⌊N / 100⌋ + 1 ``Query`` requests, one
``GetItem`` (the stored values to copy) and one SQS message per invocation it takes
(``make bench`` measures it).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from functools import cache
from typing import TYPE_CHECKING, Any, cast

from aws_lambda_powertools import Logger
from botocore.config import Config

from billing.aws.session import aws_session
from billing.store.table import BillingStore

if TYPE_CHECKING:
    pass

logger = Logger(child=True)

PAGE_SIZE = 100
# Hand the rest to a new message when less than this is left of the invocation.
HANDOVER_MARGIN_SECONDS = 30.0
SQS_CLIENT_CONFIG = Config(
    retries={"mode": "standard", "total_max_attempts": 3}, connect_timeout=1, read_timeout=2
)


@dataclass(frozen=True)
class CatalogChange:
    """A change of catalog fields that snapshots copy, announced by the event of
    ``version`` (its ``created`` time). ``price_id`` None: the product's name; otherwise
    that price's lookup key and nickname. The values copied are read from the stored
    catalog when the fan-out runs, not carried here, so a late or repeated message
    copies what is current. ``after``: resume after this subscription."""

    product_id: str
    version: int
    price_id: str | None = None
    after: str | None = None

    def to_json(self) -> str:
        return json.dumps(asdict(self), separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str) -> CatalogChange:
        known = {"product_id", "version", "price_id", "after"}
        return cls(**{k: v for k, v in json.loads(text).items() if k in known})


@dataclass(frozen=True)
class Copy:
    """What to write into each subscriber's item, and the version it is as of."""

    fields: dict[str, Any]
    version: int


@dataclass(frozen=True)
class FanoutReport:
    updated: int
    skipped: int  # the subscription no longer bills it, or already holds a newer copy
    rest: CatalogChange | None  # what is left for the next invocation


@dataclass
class CatalogFanout:
    """Copies one :class:`CatalogChange` into the snapshots of the product's subscribers."""

    store: BillingStore
    page_size: int = PAGE_SIZE

    def run(self, change: CatalogChange, *, time_left: Callable[[], float]) -> FanoutReport:
        updated = skipped = 0
        copy = self._stored_values(change)
        if copy is None:  # nothing stored to copy (yet): the record's own event will come
            return FanoutReport(0, 0, None)
        after = change.after
        while True:
            entries, next_page = self._page(change.product_id, after)
            for entry in entries:
                if updated + skipped and time_left() < HANDOVER_MARGIN_SECONDS:
                    # Hand over from the last subscription done, even mid-page (every
                    # invocation does at least one, so a chain always ends).
                    return FanoutReport(updated, skipped, replace(change, after=after))
                if self._copy(change, copy, entry):
                    updated += 1
                else:
                    skipped += 1
                after = str(entry["sk"]).removeprefix("SUBSCRIPTION#")
            if next_page is None:
                return FanoutReport(updated, skipped, None)
            after = next_page

    def _stored_values(self, change: CatalogChange) -> Copy | None:
        """The product's name, or the price's lookup key and nickname, as stored now with
        their version: of two changes in one second, whichever message runs last still
        copies the values that won."""
        if change.price_id is None:
            stored = self.store.product_record(change.product_id)
        else:
            stored = self.store.price_record(change.price_id)
        if stored is None:
            return None
        if change.price_id is None:
            fields = {"product_name": stored.get("name")}
        else:
            fields = {"lookup_key": stored.get("lookup_key"), "nickname": stored.get("nickname")}
        return Copy(fields, int(stored["v"]))

    def _page(self, product_id: str, after: str | None) -> tuple[list[dict[str, Any]], str | None]:
        return self.store.subscriber_page(product_id, after=after, limit=self.page_size)

    def _copy(self, change: CatalogChange, copy: Copy, entry: dict[str, Any]) -> bool:
        """Update one subscription's copies; False when its condition says it no longer
        applies (another product or price by now, a newer copy, or the slot is gone)."""
        subscription_id = str(entry["sk"]).removeprefix("SUBSCRIPTION#")
        if change.price_id is None:
            positions = [int(item["position"]) for item in entry["items"]]
            billed, same = ("product", change.product_id)
            version_field = "name_version"
        else:
            positions = [
                int(item["position"]) for item in entry["items"] if item["price"] == change.price_id
            ]
            billed, same = ("price", change.price_id)
            version_field = "price_version"
        if not positions:
            return False
        return self.store.copy_catalog_fields(
            str(entry["user_id"]),
            subscription_id,
            positions,
            billed=billed,
            same=same,
            version_field=version_field,
            fields=copy.fields,
            version=copy.version,
        )


class FanoutQueue:
    """Announces catalog changes to the fan-out function (SQS)."""

    def __init__(self, queue_url: str) -> None:
        self.queue_url = queue_url
        self._client: Any = None

    def announce(self, change: CatalogChange) -> None:
        if self._client is None:
            self._client = aws_session().create_client("sqs", config=SQS_CLIENT_CONFIG)
        self._client.send_message(QueueUrl=self.queue_url, MessageBody=change.to_json())


@cache
def fanout_queue(queue_url: str) -> FanoutQueue:
    """One queue (and SQS client) per URL and warm container."""
    return FanoutQueue(queue_url)


def announcer(store: BillingStore, queue_url: str | None) -> Callable[[CatalogChange], None]:
    """How the webhook hands a catalog change on: to the fan-out queue when one is
    configured (every deployment), otherwise run to the end in the caller (local runs
    and tests without a queue)."""
    if queue_url:
        return cast("Callable[[CatalogChange], None]", fanout_queue(queue_url).announce)
    fanout = CatalogFanout(store)

    def inline(change: CatalogChange) -> None:
        report = fanout.run(change, time_left=lambda: float("inf"))
        logger.info("Catalog change copied", extra={"updated": report.updated})

    return inline
