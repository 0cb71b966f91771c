"""Which subscription a user manages through the portal.

The rule, also used by the billing snapshot: among the customer's
subscriptions whose status is ``active``, ``trialing`` or ``past_due``, prefer
``active``, then ``trialing``, then ``past_due``; within a status the newest
(``created``) wins, and the id breaks a tie. Anything else (canceled,
incomplete, unpaid, paused) has nothing to manage through a flow.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from billing.core.domain import CURRENT_STATUSES, CurrentSubscription, SubscriptionItem


def pick_current_subscription(
    subscriptions: Iterable[CurrentSubscription],
) -> CurrentSubscription | None:
    """The primary manageable subscription, by the rule in this module's docstring."""
    candidates = [s for s in subscriptions if s.status in CURRENT_STATUSES]
    if not candidates:
        return None
    return min(candidates, key=lambda s: (CURRENT_STATUSES.index(s.status), -s.created, s.id))


def subscription_from_stripe(subscription: Mapping[str, Any]) -> CurrentSubscription:
    """A ``CurrentSubscription`` from a Stripe subscription object (as a plain dict)."""
    items = tuple(
        SubscriptionItem(
            id=item["id"],
            price_id=item["price"]["id"],
            lookup_key=item["price"].get("lookup_key"),
            quantity=item.get("quantity"),
        )
        for item in subscription["items"]["data"]
    )
    return CurrentSubscription(
        id=subscription["id"],
        status=subscription["status"],
        created=subscription["created"],
        items=items,
        cancel_at_period_end=bool(subscription.get("cancel_at_period_end")),
        cancel_at=subscription.get("cancel_at"),
        paused=subscription["status"] == "paused" or bool(subscription.get("pause_collection")),
        flexible_billing=(subscription.get("billing_mode") or {}).get("type") == "flexible",
    )
