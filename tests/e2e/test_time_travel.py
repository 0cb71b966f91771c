"""Stripe's future, end to end: a deployment that sells a 14-day trial through Checkout,
takes promotion codes and keeps access 3 days after a failed renewal (template parameters, as
``make dev PARAMETER_OVERRIDES=...`` sets them). Time travel moves the customer's
Stripe clock and, in the sandbox, the time the functions answer that user by
(``billing.read.clock``), so the snapshot changes when Stripe's time says it does.
HTTP all the way; each test has its own user."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
import requests
import stripe

from tests.e2e.conftest import (
    LocalStack,
    eventually,
    start_local_stack,
    stop_local_stack,
    subscriber,
)

TRIAL_DAYS = 14
GRACE_DAYS = 3
DAY = 86_400


@pytest.fixture(scope="module")
def trial_stack() -> Iterator[LocalStack]:
    stack = start_local_stack(
        {
            "PARAMETER_OVERRIDES": (
                f"CheckoutTrialDays={TRIAL_DAYS} AccessPastDueGraceDays={GRACE_DAYS} "
                "CheckoutPromotionCodes=true"
            )
        }
    )
    yield stack
    stop_local_stack(stack)


def stripe_client(stack: LocalStack) -> stripe.StripeClient:
    return stripe.StripeClient("sk_test_standin", base_addresses={"api": stack.stripe_url})


def customer_of(stack: LocalStack, user_id: str) -> Any:
    """The Stripe customer the product made for ``user_id`` (its metadata names the user)."""
    customers = stripe_client(stack).v1.customers.list({"limit": 100}).data
    (customer,) = [
        c for c in customers if c.metadata and c.metadata.to_dict().get("user_id") == user_id
    ]
    return customer


def epoch(iso: str) -> int:
    """A snapshot time (ISO 8601, UTC) as Stripe's seconds."""
    return int(datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp())


def iso(seconds: int) -> str:
    return datetime.fromtimestamp(seconds, tz=UTC).isoformat().replace("+00:00", "Z")


def travel(stack: LocalStack, customer_id: str, **when: int) -> dict[str, Any]:
    moved = requests.post(
        f"{stack.stripe_url}/_standin/customers/{customer_id}/advance_clock", json=when, timeout=10
    )
    assert moved.status_code == 200, moved.text
    answer: dict[str, Any] = moved.json()
    return answer


def test_a_trial_bought_through_checkout_turns_into_a_paid_plan(trial_stack: LocalStack) -> None:
    token = trial_stack.token("trial-buyer")
    offered = requests.get(f"{trial_stack.api_url}/plans", timeout=10).json()["data"]
    assert {plan["trial_days"] for plan in offered} == {TRIAL_DAYS}
    opened = trial_stack.post(
        "/checkout-sessions", token, {"plan": "pro_monthly", "return_url": trial_stack.api_url}
    )
    assert opened.status_code == 200, opened.text
    url = opened.json()["url"]
    assert f"{TRIAL_DAYS} days free" in requests.get(url, timeout=10).text

    started = requests.post(url, data={"card": "pm_card_visa"}, allow_redirects=False, timeout=10)

    assert started.status_code == 303
    trialing = eventually(trial_stack, token, lambda b: b["status"] == "trialing")
    assert trialing["status"] == "trialing"
    customer = customer_of(trial_stack, "trial-buyer")
    now = int(travel(trial_stack, customer.id, seconds=0)["time"])
    trial_end = epoch(trialing["access"]["until"])
    assert trialing["access"]["state"] == "granted"
    assert trialing["access"]["reason"] == "trialing"
    assert abs(trial_end - (now + TRIAL_DAYS * DAY)) < 60
    assert trialing["plan"]["name"] == "Pro"

    moved = travel(trial_stack, customer.id, to=trial_end + 3600)  # the trial ends, card charged

    assert "invoice.paid" in moved["events"]
    paid = eventually(trial_stack, token, lambda b: b["status"] == "active")
    assert paid["status"] == "active"
    assert paid["access"] == {"state": "granted", "until": None, "reason": "active"}


def test_a_failed_renewal_keeps_access_for_the_grace_period_then_denies_it(
    trial_stack: LocalStack,
) -> None:
    customer = subscriber(trial_stack, "grace-user")
    client = stripe_client(trial_stack)
    failing = client.v1.payment_methods.attach("pm_card_chargeCustomerFail", {"customer": customer})
    client.v1.customers.update(
        customer, {"invoice_settings": {"default_payment_method": failing.id}}
    )
    token = trial_stack.token("grace-user")
    (subscription,) = client.v1.subscriptions.list({"customer": customer}).data
    renewal = subscription["items"].data[0].current_period_end

    travel(trial_stack, customer, to=renewal + DAY)  # declined a day ago

    grace = eventually(trial_stack, token, lambda b: b["status"] == "past_due")
    assert grace["access"] == {
        "state": "grace",
        "until": iso(renewal + GRACE_DAYS * DAY),
        "reason": "past_due",
    }

    # Nothing happens in Stripe meanwhile (no event): only time runs out.
    moved = travel(trial_stack, customer, to=renewal + GRACE_DAYS * DAY + 1)

    assert moved["events"] == []
    denied = trial_stack.get("/billing", token).json()
    assert denied["status"] == "past_due"
    assert denied["access"] == {"state": "denied", "until": None, "reason": "past_due"}


def test_a_promotion_code_from_checkout_halves_the_first_charge_after_the_trial(
    trial_stack: LocalStack,
) -> None:
    client = stripe_client(trial_stack)
    coupon = client.v1.coupons.create({"percent_off": 50, "duration": "once"})
    client.v1.promotion_codes.create(
        {"promotion": {"type": "coupon", "coupon": coupon.id}, "code": "WELCOME50"}
    )
    token = trial_stack.token("promo-buyer")
    url = trial_stack.post(
        "/checkout-sessions", token, {"plan": "pro_monthly", "return_url": trial_stack.api_url}
    ).json()["url"]

    started = requests.post(
        url,
        data={"card": "pm_card_visa", "promotion_code": "WELCOME50"},
        allow_redirects=False,
        timeout=10,
    )

    assert started.status_code == 303, started.text
    trialing = eventually(trial_stack, token, lambda b: b["status"] == "trialing")
    price = trialing["plan"]["amount"]
    customer = customer_of(trial_stack, "promo-buyer")
    travel(trial_stack, customer.id, to=epoch(trialing["access"]["until"]) + 3600)

    def charged(billing: dict[str, Any]) -> list[int]:
        return [i["amount_paid"] for i in billing["invoices"]["data"] if i["amount_paid"]]

    paid = eventually(trial_stack, token, charged)
    assert charged(paid) == [price // 2]
    assert paid["status"] == "active"
