"""The stand-in's Checkout follows Stripe's rules (stripe-python's types, Stripe's API
reference), through stripe-python against its HTTP API."""

from __future__ import annotations

from typing import Any

import pytest
import requests
import stripe

from sandbox.stripe_standin.server import StripeStandIn
from tests.support.stripe_seed import Account, seed_account


@pytest.fixture
def shop(stripe_account: StripeStandIn) -> Account:
    return seed_account(stripe_account)


def create(shop: Account, **params: Any) -> Any:
    customer = shop.client.v1.customers.create({"email": "ada@example.com"})
    base: dict[str, Any] = {
        "mode": "subscription",
        "customer": customer.id,
        "line_items": [{"price": shop.prices["pro_monthly"], "quantity": 1}],
        "success_url": "https://app.example.com/?checkout=success",
    }
    # Raw parameters, as a client could send them: some are wrong on purpose.
    sent = {k: v for k, v in {**base, **params}.items() if v is not None}
    return shop.client.v1.checkout.sessions.create(sent)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("params", "param"),
    [
        ({"success_url": None}, "success_url"),
        ({"ui_mode": "embedded_page"}, "success_url"),  # embedded takes return_url instead
        ({"line_items": []}, "line_items"),
        ({"mode": None}, "mode"),
        ({"expires_at": 60}, "expires_at"),
        ({"locale": "xx"}, "locale"),
        ({"ui_mode": "popup"}, "ui_mode"),
        ({"billing_address_collection": "sometimes"}, "billing_address_collection"),
    ],
)
def test_stripe_s_rules_refuse_a_bad_session(
    shop: Account, params: dict[str, Any], param: str
) -> None:
    with pytest.raises(stripe.InvalidRequestError) as refused:
        create(shop, **params)  # None: the parameter left out
    assert refused.value.param == param


def test_a_one_time_price_cannot_start_a_subscription(shop: Account) -> None:
    one_time = shop.client.v1.prices.create(
        {"currency": "usd", "unit_amount": 500, "product_data": {"name": "Sticker"}}
    )
    with pytest.raises(stripe.InvalidRequestError, match="recurring price"):
        create(shop, line_items=[{"price": one_time.id, "quantity": 1}])


def test_paying_creates_the_subscription_with_stripe_s_events_in_order(shop: Account) -> None:
    session = create(shop, subscription_data={"metadata": {"user_id": "u1"}})
    assert (session.status, session.url is not None, session.client_secret) == ("open", True, None)
    shop.standin.state.changes.clear()

    paid = requests.post(
        session.url, data={"card": "pm_card_visa"}, allow_redirects=False, timeout=5
    )

    assert paid.status_code == 303
    done = shop.client.v1.checkout.sessions.retrieve(session.id)
    assert (done.status, done.payment_status) == ("complete", "paid")
    subscription = shop.client.v1.subscriptions.retrieve(str(done.subscription))
    assert subscription.status == "active"
    assert subscription.metadata.to_dict() == {"user_id": "u1"}
    types = [change["type"] for change in shop.standin.state.changes]
    assert types[0] == "payment_method.attached"
    assert types[1] == "customer.subscription.created"
    assert types[-1] == "checkout.session.completed"
    assert "invoice.paid" in types


def test_a_declined_card_changes_nothing(shop: Account) -> None:
    session = create(shop)
    shop.standin.state.changes.clear()

    declined = requests.post(session.url, data={"card": "pm_card_visa_chargeDeclined"}, timeout=5)

    assert declined.status_code == 402
    assert shop.standin.state.changes == []
    assert shop.client.v1.checkout.sessions.retrieve(session.id).status == "open"


def test_a_trial_without_a_card_completes_without_payment(shop: Account) -> None:
    session = create(
        shop, payment_method_collection="if_required", subscription_data={"trial_period_days": 7}
    )

    requests.post(session.url, data={"card": ""}, allow_redirects=False, timeout=5)

    done = shop.client.v1.checkout.sessions.retrieve(session.id)
    assert (done.status, done.payment_status) == ("complete", "no_payment_required")
    assert shop.client.v1.subscriptions.retrieve(str(done.subscription)).status == "trialing"


def test_only_an_open_session_can_be_expired(shop: Account) -> None:
    session = create(shop, ui_mode="embedded_page", success_url="", return_url="https://a.example/")
    assert session.client_secret is not None
    assert session.url is None

    expired = shop.client.v1.checkout.sessions.expire(session.id)

    assert expired.status == "expired"
    with pytest.raises(stripe.InvalidRequestError, match="status of `open`"):
        shop.client.v1.checkout.sessions.expire(session.id)


def test_a_session_expires_at_its_time_and_its_page_says_so(shop: Account) -> None:
    state = shop.standin.state
    session = create(shop, expires_at=int(state.now()) + 1800)
    real_clock = state.clock
    state.clock = lambda: real_clock() + 1801
    try:
        page = requests.get(session.url, timeout=5)
    finally:
        state.clock = real_clock

    assert page.status_code == 410
    assert "expired" in page.text
    assert shop.client.v1.checkout.sessions.retrieve(session.id).status == "expired"
    assert state.changes[-1]["type"] == "checkout.session.expired"


THREE_D_SECURE = "pm_card_threeDSecure2Required"


def authenticate(session: Any, outcome: str) -> requests.Response:
    """The customer's answer on Stripe's test 3-D Secure page."""
    return requests.post(
        f"{session.url}/authenticate", data={"outcome": outcome}, allow_redirects=False, timeout=5
    )


def test_a_card_needing_3d_secure_leaves_an_incomplete_subscription_until_authenticated(
    shop: Account,
) -> None:
    session = create(shop)
    state = shop.standin.state
    state.changes.clear()

    challenged = requests.post(session.url, data={"card": THREE_D_SECURE}, timeout=5)

    assert challenged.status_code == 200
    assert "data-testid='challenge'" in challenged.text
    assert "data-testid='challenge'" in requests.get(session.url, timeout=5).text  # on reload
    assert shop.client.v1.checkout.sessions.retrieve(session.id).status == "open"
    (waiting,) = shop.client.v1.subscriptions.list({"status": "incomplete"}).data
    assert [c["type"] for c in state.changes] == [
        "payment_method.attached",
        "customer.subscription.created",
        "invoice.created",
        "invoice.finalized",
        "invoice.payment_action_required",
    ]
    state.changes.clear()

    passed = authenticate(session, "complete")

    assert passed.status_code == 303
    assert passed.headers["location"] == "https://app.example.com/?checkout=success"
    done = shop.client.v1.checkout.sessions.retrieve(session.id)
    assert (done.status, done.payment_status, done.subscription) == ("complete", "paid", waiting.id)
    assert shop.client.v1.subscriptions.retrieve(waiting.id).status == "active"
    assert [c["type"] for c in state.changes] == [
        "invoice.paid",
        "invoice.payment_succeeded",
        "customer.subscription.updated",
        "checkout.session.completed",
    ]


def test_a_failed_challenge_keeps_the_session_open_for_another_card(shop: Account) -> None:
    session = create(shop)
    requests.post(session.url, data={"card": THREE_D_SECURE}, timeout=5)

    failed = authenticate(session, "fail")

    assert failed.status_code == 402
    assert "unable to authenticate your payment method" in failed.text
    assert shop.client.v1.checkout.sessions.retrieve(session.id).status == "open"
    (waiting,) = shop.client.v1.subscriptions.list({"status": "incomplete"}).data
    invoice = shop.client.v1.invoices.retrieve(str(waiting.latest_invoice))
    assert (invoice.status, invoice.attempt_count) == ("open", 1)
    assert shop.standin.state.changes[-1]["type"] == "invoice.payment_failed"
    assert authenticate(session, "complete").status_code == 400  # the challenge is over

    paid = requests.post(
        session.url, data={"card": "pm_card_visa"}, allow_redirects=False, timeout=5
    )

    assert paid.status_code == 303
    done = shop.client.v1.checkout.sessions.retrieve(session.id)
    assert (done.status, done.subscription) == ("complete", waiting.id)  # the same subscription
    active = shop.client.v1.subscriptions.retrieve(waiting.id)
    assert active.status == "active"
    method = shop.client.v1.payment_methods.retrieve(str(active.default_payment_method))
    assert method.card is not None
    assert method.card.last4 == "4242"


def test_an_expiring_session_takes_its_incomplete_subscription_with_it(shop: Account) -> None:
    session = create(shop)
    requests.post(session.url, data={"card": THREE_D_SECURE}, timeout=5)
    authenticate(session, "fail")
    (waiting,) = shop.client.v1.subscriptions.list({"status": "incomplete"}).data
    shop.standin.state.changes.clear()

    shop.client.v1.checkout.sessions.expire(session.id)

    ended = shop.client.v1.subscriptions.retrieve(waiting.id)
    assert (ended.status, ended.ended_at is not None) == ("incomplete_expired", True)
    voided = shop.client.v1.invoices.retrieve(str(ended.latest_invoice))
    assert voided.status == "void"
    assert [c["type"] for c in shop.standin.state.changes] == [
        "invoice.voided",
        "customer.subscription.updated",
        "checkout.session.expired",
    ]


def test_a_trial_with_a_3d_secure_card_is_set_up_after_the_challenge(shop: Account) -> None:
    session = create(shop, subscription_data={"trial_period_days": 14})
    shop.standin.state.changes.clear()

    requests.post(session.url, data={"card": THREE_D_SECURE}, timeout=5)

    assert shop.standin.state.changes == []  # nothing to charge, nothing made yet
    assert authenticate(session, "complete").status_code == 303
    done = shop.client.v1.checkout.sessions.retrieve(session.id)
    assert (done.status, done.payment_status) == ("complete", "no_payment_required")
    assert shop.client.v1.subscriptions.retrieve(str(done.subscription)).status == "trialing"


def test_the_api_cannot_pay_an_invoice_that_needs_3d_secure(shop: Account) -> None:
    session = create(shop)
    requests.post(session.url, data={"card": THREE_D_SECURE}, timeout=5)
    (waiting,) = shop.client.v1.subscriptions.list({"status": "incomplete"}).data

    with pytest.raises(stripe.CardError) as refused:
        shop.client.v1.invoices.pay(str(waiting.latest_invoice))

    assert refused.value.code == "invoice_payment_intent_requires_action"


def half_off(shop: Account, code: str) -> Any:
    coupon = shop.client.v1.coupons.create({"percent_off": 50, "duration": "once"})
    return shop.client.v1.promotion_codes.create(
        {"promotion": {"type": "coupon", "coupon": coupon.id}, "code": code}
    )


def test_a_promotion_code_typed_on_the_page_discounts_the_first_invoice(shop: Account) -> None:
    promo = half_off(shop, "LAUNCH50")
    session = create(shop, allow_promotion_codes=True)
    page = requests.get(session.url, timeout=5).text
    assert "data-testid='checkout-promotion-code'" in page

    paid = requests.post(
        session.url,
        data={"card": "pm_card_visa", "promotion_code": "launch50"},  # customers type any case
        allow_redirects=False,
        timeout=5,
    )

    assert paid.status_code == 303
    done = shop.client.v1.checkout.sessions.retrieve(session.id)
    full = done.amount_subtotal
    assert full is not None
    assert done.amount_total == full // 2
    assert [d.promotion_code for d in done.discounts or []] == [promo.id]
    subscription = shop.client.v1.subscriptions.retrieve(str(done.subscription))
    (discount_id,) = subscription.discounts
    invoice = shop.client.v1.invoices.retrieve(str(subscription.latest_invoice))
    assert (invoice.subtotal, invoice.total, invoice.amount_paid) == (full, full // 2, full // 2)
    assert [(d.amount, d.discount) for d in invoice.total_discount_amounts or []] == [
        (full // 2, discount_id)
    ]
    assert shop.client.v1.promotion_codes.retrieve(promo.id).times_redeemed == 1
    # A `once` coupon: the renewal is charged in full.
    renewal = shop.standin.state.advance_clock(str(subscription.customer), seconds=32 * 86_400)
    assert "invoice.paid" in renewal["events"]
    renewed = shop.client.v1.invoices.retrieve(
        str(shop.client.v1.subscriptions.retrieve(subscription.id).latest_invoice)
    )
    assert renewed.total == full


@pytest.mark.parametrize("allowed", [True, False])
def test_an_unknown_code_or_a_session_without_codes_changes_nothing(
    shop: Account, allowed: bool
) -> None:
    half_off(shop, "REAL50")
    session = create(shop, allow_promotion_codes=allowed)
    shop.standin.state.changes.clear()

    refused = requests.post(
        session.url,
        data={"card": "pm_card_visa", "promotion_code": "NOPE" if allowed else "REAL50"},
        timeout=5,
    )

    assert refused.status_code == 400
    assert ("This code is invalid." in refused.text) is allowed
    assert shop.standin.state.changes == []
    assert shop.client.v1.checkout.sessions.retrieve(session.id).status == "open"
