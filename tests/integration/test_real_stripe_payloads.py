"""What real Stripe sends, signed and posted to the webhook route: the snapshot shows it.

Payloads are Stripe's own example objects (``fixtures3.json``) in the shapes of the API
versions an account may still send (``tests.support.stripe_versions``), never the
stand-in's output. The stand-in plays the Stripe account behind them: the objects exist
there with the same ids, as they would in a real account, so the product may re-fetch.
"""

from __future__ import annotations

import json
import time
from typing import Any

import pytest
import stripe

from billing.projection.registry import HANDLED_EVENT_TYPES
from tests.support import stripe_versions as shapes
from tests.support.portal import snapshot, subscribed_user
from tests.support.stripe_seed import Account
from tests.support.webhooks import deliver, table_items


@pytest.fixture
def hooks(webhook_deployment: dict[str, Any], account: Account) -> Account:
    return account


class Deliveries:
    """Signed deliveries of one scenario, each a new event a second after the last."""

    def __init__(self, version: str | None) -> None:
        self.version = version
        self.created = int(time.time()) - 600
        self.count = 0

    def post(self, event_type: str, obj: dict[str, Any]) -> str:
        self.count += 1
        self.created += 1
        event = shapes.event(
            self.version,
            event_type,
            obj,
            event_id=f"evt_{event_type.replace('.', '_')}{self.count:04d}{self.created}",
            created=self.created,
        )
        result = deliver(event)
        assert result.status == 200, result.raw
        outcome: str = result.body["outcome"]
        return outcome


def as_sent(obj: stripe.StripeObject) -> dict[str, Any]:
    """A retrieved object as JSON again (stripe-python decodes ``*_decimal`` strings)."""
    sent: dict[str, Any] = json.loads(json.dumps(obj.to_dict(), default=str))
    return sent


def stripe_state(account: Account, subscription: stripe.Subscription) -> dict[str, Any]:
    """What the Stripe account holds: the subscription, its first item and latest invoice."""
    sub = as_sent(account.client.v1.subscriptions.retrieve(subscription.id))
    invoices = account.client.v1.invoices.list(params={"customer": sub["customer"]}).data
    return {"subscription": sub, "item": sub["items"]["data"][0], "invoice": as_sent(invoices[0])}


@pytest.mark.parametrize("version", shapes.VERSIONS)
def test_a_subscriber_in_each_api_version_shape_gets_the_snapshot_the_payloads_describe(
    hooks: Account, version: str
) -> None:
    user = f"user-{version[:4]}"
    subscription = subscribed_user(hooks, user)
    state = stripe_state(hooks, subscription)
    sub, item, invoice = state["subscription"], state["item"], state["invoice"]
    customer_id = sub["customer"]
    method_id = "pm_1Pgc75B7WZ01zgkWlHVgdEGJ"
    send = Deliveries(version)

    assert (
        send.post(
            "customer.updated",
            shapes.customer(
                version,
                id=customer_id,
                email=f"{user}@example.com",
                metadata={"user_id": user},
                invoice_settings={"default_payment_method": method_id},
            ),
        )
        == "applied"
    )
    assert (
        send.post(
            "payment_method.attached",
            shapes.card_payment_method(version, id=method_id, customer=customer_id),
        )
        == "applied"
    )
    price = shapes.price(
        id=item["price"]["id"],
        product=item["price"]["product"],
        lookup_key="pro_monthly",
        unit_amount=item["price"]["unit_amount"],
    )
    assert (
        send.post(
            "customer.subscription.updated",
            shapes.subscription(
                version,
                id=sub["id"],
                customer=customer_id,
                status="active",
                created=sub["created"],
                cancel_at=None,
                canceled_at=None,
                ended_at=None,
                trial_end=None,
                pause_collection=None,
                items=[{"id": item["id"], "price": price, "quantity": 1}],
                period=(item["current_period_start"], item["current_period_end"]),
            ),
        )
        == "applied"
    )
    assert (
        send.post(
            "invoice.paid",
            shapes.invoice(
                version,
                subscription_id=sub["id"],
                id=invoice["id"],
                customer=customer_id,
                number=invoice["number"],
                status="paid",
                amount_due=invoice["amount_due"],
                amount_paid=invoice["amount_paid"],
                created=invoice["created"],
                hosted_invoice_url=invoice["hosted_invoice_url"],
            ),
        )
        == "applied"
    )

    body = snapshot(user).body
    assert body["email"] == f"{user}@example.com"
    assert body["status"] == "active"
    assert body["plan"]["lookup_key"] == "pro_monthly"
    assert body["plan"]["amount"] == item["price"]["unit_amount"]
    # Before 2025-03-31.basil the period end sits on the subscription, not its items.
    assert body["renews_at"] == iso(item["current_period_end"])
    assert body["payment_method"]["type"] == "card"
    assert body["payment_method"]["last4"] == "4242"
    assert body["payment_method"]["exp_year"] == 2030
    [shown] = body["invoices"]["data"]
    assert shown["number"] == invoice["number"]
    assert shown["amount_paid"] == invoice["amount_paid"]
    assert shown["status"] == "paid"


def iso(epoch: int) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(epoch))


# --- payment methods of every kind -------------------------------------------------------

# The details a billing page needs, in the fields stripe-python 16 declares for each type.
NON_CARD_METHODS = [
    (
        "sepa_debit",
        {
            "bank_code": "37040044",
            "branch_code": None,
            "country": "DE",
            "fingerprint": "abc",
            "generated_from": None,
            "last4": "3000",
        },
        {"last4": "3000", "bank_name": None, "email": None},
    ),
    (
        "us_bank_account",
        {
            "account_holder_type": "individual",
            "account_type": "checking",
            "bank_name": "STRIPE TEST BANK",
            "financial_connections_account": None,
            "fingerprint": "abc",
            "last4": "6789",
            "networks": {"preferred": "ach", "supported": ["ach"]},
            "routing_number": "110000000",
            "status_details": None,
        },
        {"last4": "6789", "bank_name": "STRIPE TEST BANK", "email": None},
    ),
    (
        "link",
        {"email": "jenny@example.com", "persistent_token": None},
        {"last4": None, "bank_name": None, "email": "jenny@example.com"},
    ),
    (
        "paypal",
        {"country": "DE", "payer_email": "jenny@example.com", "payer_id": "PAYER1"},
        {"last4": None, "bank_name": None, "email": "jenny@example.com"},
    ),
    (
        "bacs_debit",
        {"fingerprint": "abc", "last4": "2345", "sort_code": "108800"},
        {"last4": "2345", "bank_name": None, "email": None},
    ),
]


@pytest.mark.parametrize(
    ("method_type", "details", "shown"), NON_CARD_METHODS, ids=[m[0] for m in NON_CARD_METHODS]
)
def test_a_non_card_default_payment_method_shows_what_a_billing_page_needs(
    hooks: Account, method_type: str, details: dict[str, Any], shown: dict[str, Any]
) -> None:
    user = f"user-{method_type}"
    subscription = subscribed_user(hooks, user)
    customer_id = subscription.customer
    method_id = f"pm_{method_type.replace('_', '')}0001"
    send = Deliveries(shapes.PINNED)
    send.post(
        "payment_method.attached",
        shapes.payment_method_of_type(method_type, details, id=method_id, customer=customer_id),
    )
    send.post(
        "customer.updated",
        shapes.customer(
            shapes.PINNED,
            id=customer_id,
            metadata={"user_id": user},
            invoice_settings={"default_payment_method": method_id},
        ),
    )

    method = snapshot(user).body["payment_method"]
    assert method == {
        "type": method_type,
        "brand": None,
        "exp_month": None,
        "exp_year": None,
        "expiring_soon": False,
        **shown,
    }


# --- paused subscriptions ------------------------------------------------------------------


def test_a_subscription_with_collection_paused_says_so_and_does_not_renew(
    hooks: Account,
) -> None:
    user = "user-paused"
    subscription = subscribed_user(hooks, user)
    resumes = int(time.time()) + 30 * 86400
    paused = as_sent(hooks.client.v1.subscriptions.retrieve(subscription.id))
    paused["pause_collection"] = {"behavior": "void", "resumes_at": resumes}
    Deliveries(shapes.PINNED).post("customer.subscription.updated", paused)

    body = snapshot(user).body
    assert body["status"] == "active"
    assert body["paused"] is True
    assert body["resumes_at"] == iso(resumes)
    assert body["renews_at"] is None
    assert body["actions"]["subscription_update"] is False
    assert body["actions"]["subscription_cancel"] is True


def test_a_subscription_in_status_paused_shows_paused_without_a_renewal(hooks: Account) -> None:
    user = "user-status-paused"
    subscription = subscribed_user(hooks, user)
    paused = as_sent(hooks.client.v1.subscriptions.retrieve(subscription.id))
    paused.update(
        status="paused",
        status_details={
            "paused": {
                "type": "subscription",
                "transitioned_at": int(time.time()),
                "subscription": {"type": "pause_requested"},
            }
        },
    )
    Deliveries(shapes.PINNED).post("customer.subscription.paused", paused)

    body = snapshot(user).body
    assert body["status"] == "paused"
    assert body["paused"] is True
    assert body["renews_at"] is None
    assert body["resumes_at"] is None  # Stripe's pause has no end date of its own
    assert body["actions"]["subscription_cancel"] is False


# --- whatever Stripe sends, never a 5xx and nothing wrong stored ---------------------------


def user_partition_items() -> list[dict[str, Any]]:
    return [i for i in table_items("billing-test") if i["pk"]["S"].startswith("USER#")]


def written_state() -> list[dict[str, Any]]:
    """Everything but the dedupe records (which every acknowledged event leaves)."""
    return sorted(
        (i for i in table_items("billing-test") if not i["pk"]["S"].startswith("EVENT#")),
        key=lambda i: (i["pk"]["S"], i["sk"]["S"]),
    )


UPCOMING = {k: v for k, v in shapes.example("invoice").items() if k != "id"}

UNHANDLED = [
    ("invoice.upcoming", UPCOMING),  # a preview invoice: no id
    ("invoice.sent", shapes.example("invoice")),
    ("invoice.overdue", shapes.example("invoice")),
    ("payment_intent.succeeded", {"object": "payment_intent", "id": "pi_test_1"}),
    ("charge.succeeded", {"object": "charge"}),
    ("customer.discount.created", {"object": "discount", "id": "di_1"}),
    ("customer.source.created", {"object": "card"}),
    ("billing_portal.session.created", shapes.example("billing_portal.session")),
    ("made.up.type", {}),
]


@pytest.mark.parametrize(("event_type", "obj"), UNHANDLED, ids=[u[0] for u in UNHANDLED])
def test_a_type_outside_the_registry_is_ignored_whatever_its_object(
    hooks: Account, event_type: str, obj: dict[str, Any]
) -> None:
    assert event_type not in HANDLED_EVENT_TYPES
    subscribed_user(hooks, "user-ignored")
    before = written_state()
    assert Deliveries(shapes.PINNED).post(event_type, obj) == "ignored"
    assert written_state() == before


def test_stripes_own_entitlement_summary_gives_a_linked_user_its_features(
    hooks: Account,
) -> None:
    summary = shapes.example("entitlements.active_entitlement_summary")
    send = Deliveries(shapes.PINNED)
    # As Stripe shows it, for a customer of nobody here: acknowledged, nothing stored.
    before = written_state()
    assert send.post("entitlements.active_entitlement_summary.updated", summary) == "unlinked"
    assert written_state() == before

    subscription = subscribed_user(hooks, "user-entitled")
    hooks.clear_requests_log()
    complete = {**summary["entitlements"], "has_more": False}
    mine = {**summary, "customer": subscription.customer, "entitlements": complete}

    assert send.post("entitlements.active_entitlement_summary.updated", mine) == "applied"

    # The example expands each feature: its name needs no Stripe call.
    assert snapshot("user-entitled").body["features"] == [
        {"lookup_key": "lookup_key", "name": "name"}
    ]
    assert hooks.requests_log() == []

    # A summary that lists one page of several: the whole list is read from Stripe
    # (which, for this customer, holds none).
    paged = {**summary, "customer": subscription.customer}
    assert send.post("entitlements.active_entitlement_summary.updated", paged) == "applied"
    assert snapshot("user-entitled").body["features"] == []
    assert [r["path"] for r in hooks.requests_log()] == ["/v1/entitlements/active_entitlements"]


@pytest.mark.parametrize(
    "event_type", sorted(t for t in HANDLED_EVENT_TYPES if t.startswith("checkout.session."))
)
def test_stripes_own_checkout_session_changes_nothing_of_any_user(
    hooks: Account, event_type: str
) -> None:
    # Stripe's example session (fixtures3) names no user of ours: a session opened
    # elsewhere. It is acknowledged, recorded once, and stores nothing else.
    session = shapes.example("checkout.session")
    subscribed_user(hooks, "user-checkout")
    before = written_state()
    deliveries = Deliveries(shapes.PINNED)
    assert deliveries.post(event_type, session) == "unlinked"
    assert written_state() == before


def broken(kind: str) -> list[tuple[str, dict[str, Any]]]:
    obj = shapes.example(kind)
    return [
        (f"{kind} without id", {k: v for k, v in obj.items() if k != "id"}),
        (f"{kind} with id null", {**obj, "id": None}),
        (f"{kind} of unexpected types", {**obj, "created": "yesterday", "status": 7}),
    ]


UNREADABLE = [("customer.subscription.updated", *case) for case in broken("subscription")] + [
    ("invoice.paid", *case) for case in broken("invoice")
]


@pytest.mark.parametrize(
    ("event_type", "label", "obj"), UNREADABLE, ids=[f"{u[0]}: {u[1]}" for u in UNREADABLE]
)
def test_a_handled_type_whose_object_cannot_be_read_is_acknowledged_and_changes_nothing(
    hooks: Account, event_type: str, label: str, obj: dict[str, Any]
) -> None:
    subscribed_user(hooks, "user-unreadable")
    before = written_state()
    assert Deliveries(shapes.PINNED).post(event_type, obj) == "unreadable", label
    assert written_state() == before


def test_objects_with_every_nullable_field_null_and_unknown_fields_are_folded_in(
    hooks: Account,
) -> None:
    user = "user-nulls"
    subscription = subscribed_user(hooks, user)
    state = stripe_state(hooks, subscription)
    customer_id = state["subscription"]["customer"]
    unknown = {"a_field_from_a_future_version": {"nested": [1, 2, 3]}}
    send = Deliveries(shapes.PINNED)

    customer = shapes.with_nulls(
        shapes.customer(shapes.PINNED, id=customer_id, metadata={"user_id": user}),
        stripe.Customer,
    )
    sub = shapes.with_nulls({**state["subscription"], **unknown}, stripe.Subscription)
    invoice = shapes.with_nulls({**state["invoice"], **unknown}, stripe.Invoice)
    invoice["customer"] = customer_id  # without one it would belong to nobody (below)
    invoice["status"] = "paid"  # with none it is listed like a draft: not at all
    method = shapes.with_nulls(
        shapes.card_payment_method(shapes.PINNED, id="pm_nulls0001", customer=customer_id),
        stripe.PaymentMethod,
    )
    method["customer"] = customer_id
    method["card"] = dict.fromkeys(method_card_fields()) | {"last4": "4242"}
    for event_type, obj in [
        ("customer.updated", customer),
        ("customer.subscription.updated", sub),
        ("invoice.updated", invoice),
        ("payment_method.attached", method),
    ]:
        assert send.post(event_type, obj) == "applied", event_type

    body = snapshot(user).body
    assert body["status"] == "active"
    assert body["email"] is None
    assert body["cancels_at"] is None
    assert body["trial_ends_at"] is None
    assert body["payment_method"] is None  # the default was nulled along with the rest
    [shown] = body["invoices"]["data"]
    assert shown["number"] is None
    assert shown["hosted_invoice_url"] is None


def method_card_fields() -> list[str]:
    return list(shapes.example("payment_method")["card"])


def test_an_invoice_or_payment_method_without_a_customer_is_stored_under_no_key(
    hooks: Account,
) -> None:
    subscribed_user(hooks, "user-nokey")
    before = written_state()
    send = Deliveries(shapes.PINNED)
    invoice = {**shapes.example("invoice"), "customer": None, "customer_account": "acct_1"}
    method = {**shapes.example("payment_method"), "customer": None}
    assert send.post("invoice.finalized", invoice) == "unlinked"
    assert send.post("payment_method.updated", method) == "unlinked"
    assert written_state() == before
    assert not [i for i in table_items("billing-test") if i["pk"]["S"] in ("USER#", "USER#None")]


def test_a_200_line_invoice_is_folded_in_like_any_other(hooks: Account) -> None:
    user = "user-long-invoice"
    subscription = subscribed_user(hooks, user)
    invoice = stripe_state(hooks, subscription)["invoice"]
    line = shapes.example("invoice")["lines"]["data"][0]
    invoice["lines"] = {
        "object": "list",
        "data": [{**line, "id": f"il_{n:05d}"} for n in range(200)],
        "has_more": True,
        "url": "/v1/invoices/x/lines",
    }
    assert Deliveries(shapes.PINNED).post("invoice.updated", invoice) == "applied"
    [shown] = snapshot(user).body["invoices"]["data"]
    assert shown["number"] == invoice["number"]
