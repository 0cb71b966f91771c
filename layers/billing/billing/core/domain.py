"""The domain's value types: plain frozen dataclasses, no pydantic.

They describe the state the product reads (a user's current subscription, a
catalog price, a requested plan change). The billing-snapshot function uses
them and must load no pydantic, to keep its cold start short (``make bench``);
the API bodies, which pydantic validates, are in ``billing.portal.models``.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class FlowKind(StrEnum):
    """Portal deep links this API offers: Stripe's ``flow_data.type`` values (a unit test
    holds them to stripe-python's types; the read path cannot import stripe)."""

    CUSTOMER_UPDATE = "customer_update"
    PAYMENT_METHOD_UPDATE = "payment_method_update"
    SUBSCRIPTION_CANCEL = "subscription_cancel"
    SUBSCRIPTION_PAUSE = "subscription_pause"
    SUBSCRIPTION_UPDATE = "subscription_update"
    SUBSCRIPTION_UPDATE_CONFIRM = "subscription_update_confirm"

    @property
    def needs_subscription(self) -> bool:
        return self not in (FlowKind.PAYMENT_METHOD_UPDATE, FlowKind.CUSTOMER_UPDATE)


class AfterCompletion(StrEnum):
    """Where the portal takes the customer once the flow is done."""

    REDIRECT = "redirect"  # back to the session's return_url
    HOSTED_CONFIRMATION = "hosted_confirmation"  # Stripe's confirmation page
    PORTAL_HOMEPAGE = "portal_homepage"  # the portal's home screen


# The statuses in which a customer still has a subscription to manage.
CURRENT_STATUSES = ("active", "trialing", "past_due")


@dataclass(frozen=True, slots=True, kw_only=True)
class SubscriptionItem:
    """One item of a subscription: the price it bills and how many."""

    id: str
    price_id: str
    lookup_key: str | None = None
    quantity: int | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class CurrentSubscription:
    """The subscription a user manages through the portal (see ``subscriptions``)."""

    id: str
    status: str
    created: int
    items: tuple[SubscriptionItem, ...]
    cancel_at_period_end: bool = False
    cancel_at: int | None = None
    paused: bool = False
    flexible_billing: bool = False  # Stripe pauses only subscriptions in flexible mode

    @property
    def is_cancelling(self) -> bool:
        """Already set to end: at period end, or at a scheduled date."""
        return self.cancel_at_period_end or self.cancel_at is not None


@dataclass(frozen=True, slots=True, kw_only=True)
class CatalogPrice:
    """A recurring price, addressed by its lookup key."""

    price_id: str
    lookup_key: str
    product_id: str
    active: bool
    currency: str
    unit_amount: int | None = None
    interval: str | None = None
    interval_count: int | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class PlanChange:
    """What a ``subscription_update_confirm`` flow should switch the single item to."""

    price: CatalogPrice | None = None  # None: keep the current price
    quantity: int | None = None  # None: keep the current quantity
    promotion_code_id: str | None = None  # Stripe's id of a promotion code to apply
