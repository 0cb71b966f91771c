"""Rebuild the projection from Stripe, and replay events Stripe could not deliver.

Safe to run at any time, also while webhooks flow: every object goes through
the webhook's versioned writes with the version ``started - 1`` (the second
before the run began). An event created after that wins over the fetched
state, and a fetched state wins over older events. Repeated runs are harmless.

Order: customers first (their metadata links users), then catalog (products,
prices, entitlement features), subscriptions, invoices, and each customer's payment
methods and active entitlements (Stripe sends no event when a feature is attached
to a product its customers already subscribe to: this is how they catch up); then
``events.list(delivery_success=false)`` of the last 30 days, oldest first,
through the normal event path (already-applied events are duplicates). Only the
types of ``billing.projection.registry`` are replayed: Stripe lists undelivered events
of every type, also those no endpoint of ours subscribes to.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import stripe
from aws_lambda_powertools import Logger

from billing.projection.fold import StripeEvent
from billing.projection.intake import WebhookProcessor, active_entitlements, product_features
from billing.projection.records import Kind
from billing.projection.registry import handled_type
from billing.stripe_api.client import stripe_errors

logger = Logger(child=True)

REPLAY_WINDOW_SECONDS = 30 * 86400  # how far back Stripe lists events
_PAGE = 100


@dataclass
class BackfillReport:
    """Counts of outcomes per kind, e.g. ``{"subscription": {"applied": 3}}``."""

    counts: dict[str, Counter[str]] = field(default_factory=dict)

    def add(self, kind: str, outcome: str) -> None:
        self.counts.setdefault(kind, Counter())[outcome] += 1

    def as_dict(self) -> dict[str, dict[str, int]]:
        return {kind: dict(counter) for kind, counter in sorted(self.counts.items())}


@dataclass
class Backfill:
    processor: WebhookProcessor
    client: stripe.StripeClient

    def run(self, *, replay: bool = True, now: float | None = None) -> BackfillReport:
        started = int(time.time() if now is None else now)
        version = started - 1
        report = BackfillReport()
        api = self.client.v1
        sources: list[tuple[Kind, str, Any, dict[str, Any]]] = [
            (Kind.CUSTOMER, "customers.list", api.customers.list, {}),
            (Kind.PRODUCT, "products.list", api.products.list, {}),
            (Kind.PRICE, "prices.list", api.prices.list, {}),
            (Kind.FEATURE, "entitlements.features.list", api.entitlements.features.list, {}),
            (Kind.SUBSCRIPTION, "subscriptions.list", api.subscriptions.list, {"status": "all"}),
            (Kind.INVOICE, "invoices.list", api.invoices.list, {}),
        ]
        customers: list[str] = []
        products: list[str] = []
        for kind, operation, list_call, params in sources:
            for obj in self._all(operation, list_call, params):
                if kind is Kind.CUSTOMER:
                    customers.append(obj["id"])
                elif kind is Kind.PRODUCT:
                    products.append(obj["id"])
                self._apply(report, kind, obj, version, started)
        for product_id in products:  # Stripe sends no event when a feature is attached
            attached = product_features(self.client, product_id)
            self._apply(report, Kind.PRODUCT_FEATURES, attached, version, started)
        for customer_id in customers:
            list_methods = partial(api.customers.payment_methods.list, customer_id)
            for method in self._all("customers.payment_methods.list", list_methods, {}):
                self._apply(report, Kind.PAYMENT_METHOD, method, version, started)
            entitlements = active_entitlements(self.client, customer_id)
            self._apply(report, Kind.ENTITLEMENTS, entitlements, version, started)
        if replay:
            self._replay(report, since=started - REPLAY_WINDOW_SECONDS)
        logger.info("Backfill done", extra={"report": report.as_dict()})
        return report

    def _apply(
        self, report: BackfillReport, kind: Kind, obj: dict[str, Any], version: int, run: int
    ) -> None:
        # A summary has no id of its own: it is named after its customer (and kind, as the
        # customer object itself is stored under the customer's id).
        name = (
            f"{kind.value}_{obj['id']}"
            if kind is Kind.PRODUCT_FEATURES
            else (obj.get("id") or f"entitlements_{obj['customer']}")
        )
        source = f"evt_backfill_{run}_{name}"
        report.add(
            kind.value, self.processor.apply_object(kind, obj, version=version, source=source)
        )

    def _replay(self, report: BackfillReport, *, since: int) -> None:
        params = {"delivery_success": False, "created": {"gte": since}}
        undelivered = [
            event
            for event in self._all("events.list", self.client.v1.events.list, params)
            if handled_type(event.get("type") or "") is not None
        ]
        for raw in sorted(undelivered, key=lambda e: (e["created"], e["id"])):
            outcome = self.processor.process(StripeEvent.model_validate(raw))
            report.add("replayed_event", outcome.value)

    @staticmethod
    def _all(operation: str, list_call: Any, params: dict[str, Any]) -> Iterator[dict[str, Any]]:
        """Every object of a Stripe list, page by page, as plain dicts."""
        with stripe_errors(operation):
            page = list_call(params={**params, "limit": _PAGE})
            items: Iterable[Any] = page.auto_paging_iter()
            for item in items:
                yield item.to_dict()


# A catalog deploy refreshes subscribers for at most this long, then leaves the rest to
# ``make backfill`` (the custom resource must answer CloudFormation in time).
CATCH_UP_SECONDS = 120.0


def refresh_subscriber_entitlements(
    processor: WebhookProcessor,
    client: stripe.StripeClient,
    product_ids: Iterable[str],
    *,
    now: int,
    seconds: float = CATCH_UP_SECONDS,
) -> tuple[int, bool]:
    """Store the active entitlements of every customer subscribed to ``product_ids``, as
    Stripe lists them now: a feature attached to (or detached from) a product reaches its
    existing subscribers this way, since Stripe sends them no event. Walks the products'
    subscriber indexes (one Stripe call per customer). Returns how many customers were
    refreshed and whether all were (False: time ran out; the backfill finishes the job)."""
    deadline = time.monotonic() + seconds
    store = processor.store
    done: set[str] = set()
    for product_id in product_ids:
        after: str | None = None
        while True:
            entries, after = store.subscriber_page(product_id, after=after, limit=_PAGE)
            for entry in entries:
                customer = store.customer_for_user(str(entry["user_id"]))
                if customer is None or customer in done:
                    continue
                if time.monotonic() > deadline:
                    return len(done), False
                done.add(customer)
                processor.apply_object(
                    Kind.ENTITLEMENTS,
                    active_entitlements(client, customer),
                    version=now - 1,
                    source=f"evt_catalog_{now}_entitlements_{customer}",
                    fetched_after_version=True,
                )
            if after is None:
                break
    return len(done), True
