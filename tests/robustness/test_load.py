"""Load: 2,400 webhook events for 200 customers, 20 % duplicated, shuffled, 8 at a time.

The stand-in records a real billing history per customer (customer, card,
default card, subscription with its first invoice, a plan change, a
cancellation or a quantity change, and the two entitlement summaries of subscribing
and changing plan, the demo catalog's products having features: 12 events each)
while the webhook endpoint is disabled, so nothing is sent yet. Then every event, plus
a copy of 480 of them, goes in a seeded random order through the local gateway's
webhook route,
signed as the stand-in signs it, from 8 concurrent senders. The projection must
equal the one built from Stripe's final objects alone, every event must have
its dedupe record, and each event must have been applied exactly once.

The time and events/s are printed and written to ``test-artifacts/load.md``.
"""

from __future__ import annotations

import random
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests

from billing.store.keys import event_key
from sandbox.stripe_standin.webhooks import signature_header
from tests.robustness.conftest import Product
from tests.robustness.oracle import expected_links, expected_projection, links, projected, served

CUSTOMERS = 200
EVENTS_PER_CUSTOMER = 12
DUPLICATE_SHARE = 0.2
CONCURRENCY = 8
SEED = 6_2026
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
PLANS = ("basic_monthly", "pro_monthly", "basic_yearly", "enterprise_monthly")
# Plan changes within an interval and without prorations: an interval change or a
# proration bills at once or adds invoice items, and each history is to be 12 events.
UPGRADES = {
    "basic_monthly": "pro_monthly",
    "pro_monthly": "enterprise_monthly",
    "basic_yearly": "pro_yearly",
    "enterprise_monthly": "pro_monthly",
}
NO_PRORATIONS = "none"


@dataclass(frozen=True)
class Delivery:
    event_id: str
    body: str


@dataclass(frozen=True)
class Answer:
    event_id: str
    status: int
    outcome: str | None


def record_history(product: Product, index: int, prices: dict[str, str]) -> tuple[str, str]:
    """One customer's billing history on the stand-in (10 events); returns (user, customer)."""
    api = product.stripe.v1
    user = f"load-user-{index:03d}"
    customer = api.customers.create(
        params={"email": f"{user}@example.com", "metadata": {"user_id": user}}
    ).id
    card = api.payment_methods.attach("pm_card_visa", params={"customer": customer})
    api.customers.update(customer, params={"invoice_settings": {"default_payment_method": card.id}})
    plan = PLANS[index % len(PLANS)]
    subscription = api.subscriptions.create(
        params={"customer": customer, "items": [{"price": prices[plan]}]}
    )
    item = subscription["items"].data[0].id
    api.subscriptions.update(
        subscription.id,
        params={
            "items": [{"id": item, "price": prices[UPGRADES[plan]]}],
            "proration_behavior": NO_PRORATIONS,
        },
    )
    if index % 2:
        api.subscriptions.update(subscription.id, params={"cancel_at_period_end": True})
    else:
        api.subscriptions.update(
            subscription.id,
            params={"items": [{"id": item, "quantity": 3}], "proration_behavior": NO_PRORATIONS},
        )
    return user, customer


@pytest.mark.long
@pytest.mark.timeout(600)  # minutes of work by design; the default is 120 s
def test_2400_shuffled_duplicated_events_for_200_customers_converge(product: Product) -> None:
    api = product.stripe.v1
    endpoint = product.deployment.webhook_endpoint_id
    prices = {
        p.lookup_key: p.id for p in api.prices.list(params={"limit": 100}).data if p.lookup_key
    }
    before = {e.id for e in api.events.list(params={"limit": 100}).auto_paging_iter()}

    # Recorded, not sent: a disabled endpoint gets no deliveries.
    api.webhook_endpoints.update(endpoint, params={"disabled": True})
    try:
        customers = [record_history(product, i, prices) for i in range(CUSTOMERS)]
    finally:
        api.webhook_endpoints.update(endpoint, params={"disabled": False})
    event_ids = [
        e.id
        for e in api.events.list(params={"limit": 100}).auto_paging_iter()
        if e.id not in before
    ]
    assert len(event_ids) == CUSTOMERS * EVENTS_PER_CUSTOMER
    deliveries = planned_deliveries(product, endpoint, event_ids)
    assert len(deliveries) == len(event_ids) * (1 + DUPLICATE_SHARE)

    started = time.monotonic()
    answers = send_all(
        f"{product.url}/webhooks/stripe", product.deployment.webhook_secret, deliveries
    )
    seconds = time.monotonic() - started
    report(len(event_ids), len(deliveries) - len(event_ids), seconds, answers)

    # Every delivery acknowledged; each event taken exactly once, its copies seen as such.
    assert Counter(a.status for a in answers) == {200: len(deliveries)}
    outcomes: dict[str, list[str | None]] = {}
    for answer in answers:
        outcomes.setdefault(answer.event_id, []).append(answer.outcome)
    for event_id, seen in outcomes.items():
        taken = [o for o in seen if o != "duplicate"]
        assert len(taken) == 1, f"{event_id} was taken {len(taken)} times: {seen}"
        assert taken[0] in ("applied", "stale"), seen

    # Nothing lost: every event has its dedupe record, every user both links and the
    # records Stripe's final objects give, and GET /billing shows exactly that.
    items = product.items()
    stored = {item["pk"]["S"] for item in items if item["sk"]["S"] == "EVENT"}
    assert not [e for e in event_ids if event_key(e) not in stored]
    expected = expected_projection(product.stripe, [customer for _, customer in customers])
    found = links(items)
    unlinked = {k: v for k, v in expected_links(expected).items() if found.get(k) != v}
    assert not unlinked, f"{len(unlinked)} links missing or wrong"
    differing = [
        e.user_id for e in expected if projected(items, e.user_id) != (e.slots, e.invoices)
    ]
    assert not differing, f"{len(differing)} users' records differ from Stripe: {differing[:5]}"
    for index, each in enumerate(expected):
        response = product.call("GET", "/billing", product.token(each.user_id))
        assert response.status_code == 200, response.text
        assert served(response.json()) == each.snapshot(), each.user_id
        # The oracle is not vacuous: it shows each history's last steps.
        plan = response.json()["plan"]
        assert plan["lookup_key"] == UPGRADES[PLANS[index % len(PLANS)]]
        if index % 2:
            assert response.json()["cancels_at"] is not None
        else:
            assert plan["quantity"] == 3


def planned_deliveries(product: Product, endpoint: str, event_ids: list[str]) -> list[Delivery]:
    """Every event once, 20 % of them twice, in a seeded random order: the bodies the
    stand-in sends to ``endpoint``."""
    rng = random.Random(SEED)  # noqa: S311 - a repeatable order, not a secret
    bodies = {}
    for event_id in event_ids:
        request = product.standin.state.webhook_delivery(event_id, endpoint)
        assert request is not None
        bodies[event_id] = request.body
    copies = rng.sample(event_ids, int(len(event_ids) * DUPLICATE_SHARE))
    order = [*event_ids, *copies]
    rng.shuffle(order)
    return [Delivery(event_id, bodies[event_id]) for event_id in order]


def send_all(url: str, secret: str, deliveries: list[Delivery]) -> list[Answer]:
    """POST each delivery, signed at send time as Stripe signs, ``CONCURRENCY`` at a time."""
    local = threading.local()

    def send(delivery: Delivery) -> Answer:
        session = getattr(local, "session", None)
        if session is None:
            session = local.session = requests.Session()
        header = signature_header(delivery.body, secret, int(time.time()))
        response = session.post(
            url,
            data=delivery.body.encode(),
            headers={"Content-Type": "application/json", "Stripe-Signature": header},
            timeout=40,
        )
        outcome = response.json().get("outcome") if response.status_code == 200 else None
        return Answer(delivery.event_id, response.status_code, outcome)

    with ThreadPoolExecutor(max_workers=CONCURRENCY) as pool:
        return list(pool.map(send, deliveries))


def report(events: int, duplicates: int, seconds: float, answers: list[Answer]) -> None:
    deliveries = events + duplicates
    outcomes = Counter(a.outcome for a in answers)
    lines = [
        "# Webhook load (tests/robustness/test_load.py)",
        "",
        "| what | value |",
        "|---|---|",
        f"| customers | {CUSTOMERS} |",
        f"| events | {events} |",
        f"| duplicated deliveries | {duplicates} ({DUPLICATE_SHARE:.0%}) |",
        f"| deliveries | {deliveries} (seeded shuffle) |",
        f"| concurrency | {CONCURRENCY} senders, through the local gateway |",
        f"| time | {seconds:.1f} s |",
        f"| deliveries/s | {deliveries / seconds:.1f} |",
        f"| events/s (unique) | {events / seconds:.1f} |",
        f"| outcomes | {', '.join(f'{k}: {v}' for k, v in sorted(outcomes.items()))} |",
        "",
    ]
    text = "\n".join(lines)
    print(text)
    ARTIFACTS.mkdir(exist_ok=True)
    (ARTIFACTS / "load.md").write_text(text)
