"""``POST /billing/refresh``: one customer's billing state read from Stripe now.

For the moment a browser comes back from Checkout or the portal before the webhook
does. The customer, its payment methods, its subscriptions and its active
entitlements (the plan's features) are fetched (four Stripe calls) and stored through
the webhook's versioned, exactly-once writes with the version ``now - 1``, exactly as
the backfill does for every customer: an event created after the fetch still wins, a
fetched state wins over older events, and a repeated refresh changes nothing.
Rate-limited per user by the caller (``BillingStore.claim_refresh``), since each one
costs Stripe calls.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import stripe

from billing.core.errors import CustomerMissing
from billing.projection.intake import WebhookProcessor, active_entitlements
from billing.projection.records import Kind
from billing.stripe_api.client import stripe_errors

# One refresh per user per this many seconds; more answer 429 with Retry-After.
REFRESH_INTERVAL_SECONDS = 10


@dataclass(frozen=True)
class CustomerRefresh:
    processor: WebhookProcessor
    client: stripe.StripeClient

    def run(self, customer_id: str, *, now: int) -> int:
        """Store the customer's objects as Stripe has them now; how many were applied.

        A customer Stripe no longer has is left to its ``customer.deleted`` event.
        """
        api = self.client.v1
        try:
            with stripe_errors("customers.retrieve"):
                customer = api.customers.retrieve(customer_id).to_dict()
        except CustomerMissing:
            return 0
        if customer.get("deleted"):
            return 0
        with stripe_errors("customers.payment_methods.list"):
            methods = api.customers.payment_methods.list(customer_id, params={"limit": 100})
        with stripe_errors("subscriptions.list"):
            subscriptions = api.subscriptions.list(
                params={"customer": customer_id, "status": "all", "limit": 100}
            )
        objects: list[tuple[Kind, dict[str, Any]]] = [
            (Kind.CUSTOMER, customer),
            *((Kind.PAYMENT_METHOD, m.to_dict()) for m in methods.data),
            *((Kind.SUBSCRIPTION, s.to_dict()) for s in subscriptions.data),
            (Kind.ENTITLEMENTS, active_entitlements(self.client, customer_id)),
        ]
        applied = 0
        for kind, obj in objects:
            outcome = self.processor.apply_object(
                kind,
                obj,
                version=now - 1,
                source=f"evt_refresh_{now}_{obj.get('id') or 'entitlements'}",
                # Fetched during the second `now`: an event of the second before is
                # older than what was fetched, so a tie needs no re-fetch.
                fetched_after_version=True,
            )
            applied += outcome.value == "applied"
        return applied
