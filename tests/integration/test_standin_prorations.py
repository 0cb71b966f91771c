"""The stand-in prorates a plan change as Stripe does (Stripe's API reference of
subscription updates and its "Prorations" guide): unused time credited, remaining time
charged, to the second; billed on the next invoice, at once, or not at all, as
``proration_behavior`` says; an interval change restarts the period and bills now.
Through stripe-python against its HTTP API, with the customer's clock for "mid-period"."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import stripe

from sandbox.stripe_standin.server import StripeStandIn
from tests.support.stripe_seed import PLANS, Account, seed_account

DAY = 86_400


@pytest.fixture
def shop(stripe_account: StripeStandIn) -> Iterator[Account]:
    """A seeded account whose clock stands still, so "now" is the same second for the
    test's arithmetic and for the change it makes (customers' clocks still advance)."""
    account = seed_account(stripe_account)
    state = stripe_account.state
    real_clock = state.clock
    frozen = real_clock()
    state.clock = lambda: frozen
    yield account
    state.clock = real_clock


def mid_period(shop: Account, lookup_key: str, days: int = 10) -> stripe.Subscription:
    """A paid subscription to ``lookup_key``, ``days`` into its first period."""
    customer = shop.client.v1.customers.create({"email": "ada@example.com"})
    subscription = shop.subscribe(customer.id, lookup_key)
    moved = shop.standin.state.advance_clock(customer.id, seconds=days * DAY)
    assert moved["period_ends"] == 0
    return subscription


def change(
    shop: Account, subscription: stripe.Subscription, lookup_key: str, **params: Any
) -> stripe.Subscription:
    item = subscription["items"].data[0]
    update: Any = {"items": [{"id": item.id, "price": shop.prices[lookup_key]}], **params}
    return shop.client.v1.subscriptions.update(subscription.id, update)


def remaining_share(subscription: stripe.Subscription, shop: Account) -> float:
    item = subscription["items"].data[0]
    now = shop.standin.state.customer_now(str(subscription.customer))
    start, end = int(item.current_period_start), int(item.current_period_end)
    return (end - now) / (end - start)


def pending_items(shop: Account, subscription_id: str) -> list[dict[str, Any]]:
    return [
        o
        for o in shop.standin.state.objects.values()
        if o.get("object") == "invoiceitem"
        and o["parent"]["subscription_details"]["subscription"] == subscription_id
        and o["invoice"] is None
    ]


def is_proration(line: Any) -> bool:
    details = line.parent.subscription_item_details
    return bool(details and details.proration)


def renew(shop: Account, subscription: stripe.Subscription) -> stripe.Invoice:
    """The next renewal's invoice (the clock moved just past the period's end)."""
    current = shop.client.v1.subscriptions.retrieve(subscription.id)
    end = current["items"].data[0].current_period_end
    moved = shop.standin.state.advance_clock(str(subscription.customer), to=end + 60)
    assert moved["period_ends"] == 1
    renewed = shop.client.v1.subscriptions.retrieve(subscription.id)
    return shop.client.v1.invoices.retrieve(str(renewed.latest_invoice))


def test_an_upgrade_with_create_prorations_is_billed_on_the_next_invoice(shop: Account) -> None:
    subscription = mid_period(shop, "basic_monthly")
    share = remaining_share(subscription, shop)
    first_invoice = subscription.latest_invoice

    upgraded = change(shop, subscription, "pro_monthly")  # create_prorations is the default

    assert upgraded.latest_invoice == first_invoice  # nothing charged now
    credit, charge = (
        round(PLANS["basic_monthly"][1] * share),
        round(PLANS["pro_monthly"][1] * share),
    )
    pending = pending_items(shop, subscription.id)
    assert sorted(i["amount"] for i in pending) == [-credit, charge]
    assert all(i["proration"] for i in pending)
    assert "invoiceitem.created" in [c["type"] for c in shop.standin.state.changes]

    invoice = renew(shop, subscription)

    assert invoice.amount_due == PLANS["pro_monthly"][1] + charge - credit
    prorated = [line for line in invoice.lines.data if is_proration(line)]
    assert sorted(line.amount for line in prorated) == [-credit, charge]
    assert pending_items(shop, subscription.id) == []


def test_always_invoice_charges_the_difference_at_once(shop: Account) -> None:
    subscription = mid_period(shop, "basic_monthly")
    share = remaining_share(subscription, shop)

    upgraded = change(shop, subscription, "pro_monthly", proration_behavior="always_invoice")

    invoice = shop.client.v1.invoices.retrieve(str(upgraded.latest_invoice))
    difference = round(PLANS["pro_monthly"][1] * share) - round(PLANS["basic_monthly"][1] * share)
    assert (invoice.status, invoice.amount_paid, invoice.billing_reason) == (
        "paid",
        difference,
        "subscription_update",
    )
    assert renew(shop, subscription).amount_due == PLANS["pro_monthly"][1]


def test_without_prorations_the_new_price_starts_with_the_next_period(shop: Account) -> None:
    subscription = mid_period(shop, "basic_monthly")

    change(shop, subscription, "pro_monthly", proration_behavior="none")

    assert pending_items(shop, subscription.id) == []
    assert renew(shop, subscription).amount_due == PLANS["pro_monthly"][1]


def test_a_downgrade_credit_is_kept_on_the_balance_for_later_invoices(shop: Account) -> None:
    subscription = mid_period(shop, "pro_monthly", days=25)  # the credit < one Basic month
    share = remaining_share(subscription, shop)

    downgraded = change(shop, subscription, "basic_monthly", proration_behavior="always_invoice")

    credit = round(PLANS["pro_monthly"][1] * share) - round(PLANS["basic_monthly"][1] * share)
    invoice = shop.client.v1.invoices.retrieve(str(downgraded.latest_invoice))
    assert (invoice.total, invoice.amount_due, invoice.ending_balance) == (-credit, 0, -credit)
    customer = shop.client.v1.customers.retrieve(str(subscription.customer))
    assert customer.balance == -credit
    renewal = renew(shop, subscription)
    assert renewal.starting_balance == -credit
    assert renewal.amount_due == PLANS["basic_monthly"][1] - credit
    assert shop.client.v1.customers.retrieve(customer.id).balance == 0


def test_an_interval_change_restarts_the_period_and_bills_now(shop: Account) -> None:
    subscription = mid_period(shop, "pro_monthly")
    share = remaining_share(subscription, shop)
    now = shop.standin.state.customer_now(str(subscription.customer))

    yearly = change(shop, subscription, "pro_yearly")

    invoice = shop.client.v1.invoices.retrieve(str(yearly.latest_invoice))
    assert invoice.amount_paid == PLANS["pro_yearly"][1] - round(PLANS["pro_monthly"][1] * share)
    assert yearly.billing_cycle_anchor == now
    assert yearly["items"].data[0].current_period_start == now


def test_a_trial_is_not_prorated(shop: Account) -> None:
    customer = shop.client.v1.customers.create({"email": "trial@example.com"})
    trialing = shop.client.v1.subscriptions.create(
        {
            "customer": customer.id,
            "items": [{"price": shop.prices["basic_monthly"]}],
            "trial_period_days": 14,
        }
    )
    shop.standin.state.advance_clock(customer.id, seconds=3 * DAY)

    change(shop, trialing, "pro_monthly")

    assert pending_items(shop, trialing.id) == []
