"""GET /billing end to end: Stripe changes on the stand-in -> signed webhooks -> snapshot.

Deliveries are real: the stand-in posts signed events over HTTP to a local
receiver that hands them to the webhook function in-process (moto behind it).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import boto3
import pytest

from bench.counts import imports_after_one_request, snapshot_imports
from billing.read.snapshot import encode_cursor
from billing.store.keys import invoice_sort_key
from billing.store.table import store_for_table
from functions.billing.app import lambda_handler as billing_handler
from functions.invoices.app import lambda_handler as invoices_handler
from functions.portal_session.app import lambda_handler as session_handler
from tests.conftest import TABLE, WEBHOOK_SECRET_NAME, forget_cached_clients
from tests.support.aws import dynamodb_calls
from tests.support.events import http_event
from tests.support.lambda_context import HttpResult, invoke
from tests.support.portal import STRIPE_ID, linked_user, post, subscribed_user
from tests.support.stripe_seed import Account
from tests.support.webhooks import webhook_route

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def live(webhook_deployment: dict[str, Any], account: Account) -> Iterator[Account]:
    """The seeded account with a webhook endpoint delivering to the webhook function."""
    with webhook_route() as url:
        yield from _live(account, url)


def _live(account: Account, url: str) -> Iterator[Account]:
    endpoint = account.client.v1.webhook_endpoints.create(
        params={"url": url, "enabled_events": ["*"]}
    )
    boto3.client("secretsmanager").put_secret_value(
        SecretId=WEBHOOK_SECRET_NAME, SecretString=endpoint.secret or ""
    )
    forget_cached_clients()
    # The catalog (created before the endpoint) arrives the way backfill or
    # Stripe's resend would bring it.
    for event in account.client.v1.events.list(params={"limit": 100}).data:
        account.standin.redeliver(event.id)
    account.standin.wait_idle()
    yield account


def billing(user: str = "user-0001", **headers: str) -> HttpResult:
    event = http_event("billing/get_billing", user=user)
    event["headers"].update(headers)
    return invoke(billing_handler, event)


def settle(account: Account) -> None:
    account.standin.wait_idle(timeout=20)


def test_a_user_without_a_customer_gets_the_free_snapshot(live: Account) -> None:
    result = billing("user-new")
    assert result.status == 200, result.raw
    body = result.body
    assert body["status"] == "none"
    assert body["plan"] is None
    assert body["payment_method"] is None
    assert body["invoices"] == {"data": [], "next_cursor": None}
    assert body["subscriptions"] == []
    assert body["as_of"] is None
    assert body["actions"]["portal"] is True
    assert body["actions"]["subscription_cancel"] is False
    assert body["actions"]["subscription_update"] is False


def test_a_subscriber_sees_plan_card_and_invoices_from_webhooks(live: Account) -> None:
    subscription = subscribed_user(live, "user-0001", "pro_monthly")
    settle(live)
    live.clear_requests_log()
    result = billing()
    assert result.status == 200, result.raw
    assert live.requests_log() == [], "the read path never calls Stripe"
    body = result.body
    assert body["status"] == "active"
    assert body["plan"] == {
        "name": "Pro",
        "lookup_key": "pro_monthly",
        "amount": 2900,
        "currency": "usd",
        "interval": "month",
        "interval_count": 1,
        "quantity": 1,
    }
    period_end = subscription["items"].data[0].current_period_end
    assert body["renews_at"] is not None
    assert datetime.fromisoformat(body["renews_at"]).timestamp() == period_end
    assert body["cancels_at"] is None
    assert body["payment_method"]["brand"] == "visa"
    assert body["payment_method"]["last4"] == "4242"
    assert len(body["invoices"]["data"]) == 1
    invoice = body["invoices"]["data"][0]
    assert invoice["status"] == "paid"
    assert invoice["amount_paid"] == 2900
    assert invoice["hosted_invoice_url"]
    assert body["actions"]["subscription_cancel"] is True
    assert body["actions"]["subscription_update"] is True
    assert body["as_of"] is not None
    assert not STRIPE_ID.search(result.raw), "no Stripe ids in the snapshot"


def test_etag_and_cache_headers_and_304(live: Account) -> None:
    subscribed_user(live, "user-0001")
    settle(live)
    first = billing()
    etag = first.headers["etag"]
    assert first.headers["cache-control"] == "private, no-cache"
    again = billing(**{"if-none-match": etag})
    assert again.status == 304
    assert again.raw == ""
    assert billing(**{"if-none-match": '"something-else"'}).status == 200
    # A change makes the old ETag miss.
    customer = live.customers_of("user-0001")[0]
    live.client.v1.customers.update(customer.id, params={"email": "new@example.com"})
    settle(live)
    changed = billing(**{"if-none-match": etag})
    assert changed.status == 200
    assert changed.body["email"] == "new@example.com"


def test_cancel_at_period_end_shows_cancels_at_and_hides_cancel(live: Account) -> None:
    subscription = subscribed_user(live, "user-0001")
    live.client.v1.subscriptions.update(subscription.id, params={"cancel_at_period_end": True})
    settle(live)
    body = billing().body
    assert body["status"] == "active"
    assert body["cancels_at"] is not None
    assert body["renews_at"] is None
    assert body["actions"]["subscription_cancel"] is False


def test_several_subscriptions_are_listed_with_one_primary(live: Account) -> None:
    first = subscribed_user(live, "user-0001", "basic_monthly")
    customer = live.customers_of("user-0001")[0].id
    live.client.v1.subscriptions.create(
        params={"customer": customer, "items": [{"price": live.prices["enterprise_monthly"]}]}
    )
    live.client.v1.subscriptions.cancel(first.id)
    settle(live)
    body = billing().body
    assert body["plan"]["name"] == "Enterprise"
    statuses = [(s["status"], s["primary"], s["plan"]["name"]) for s in body["subscriptions"]]
    assert sorted(statuses) == [("active", True, "Enterprise"), ("canceled", False, "Basic")]


def test_invoices_page_newest_first_with_a_cursor(
    live: Account, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("INVOICE_PAGE_SIZE", "2")
    forget_cached_clients()
    customer = linked_user(live, "user-0001")
    card = live.client.v1.payment_methods.attach("pm_card_visa", params={"customer": customer})
    live.client.v1.customers.update(
        customer, params={"invoice_settings": {"default_payment_method": card.id}}
    )
    clock = live.standin.state.clock
    for step in range(5):  # five subscriptions, one invoice each, a second apart
        monkeypatch.setattr(live.standin.state, "clock", lambda s=step: clock() + 10 * s)
        live.client.v1.subscriptions.create(
            params={"customer": customer, "items": [{"price": live.prices["basic_monthly"]}]}
        )
    settle(live)
    seen: list[str] = []
    page = billing().body["invoices"]
    pages = 1
    while True:
        seen.extend(i["date"] for i in page["data"])
        assert len(page["data"]) <= 2
        if not page["next_cursor"]:
            break
        event = http_event("invoices/get_invoices", user="user-0001")
        event["queryStringParameters"] = {"cursor": page["next_cursor"]}
        result = invoke(invoices_handler, event)
        assert result.status == 200, result.raw
        page = result.body
        pages += 1
    assert len(seen) == 5
    assert seen == sorted(seen, reverse=True)
    assert pages == 3


@pytest.mark.parametrize("cursor", ["nope", "MTIz", "x" * 64])
def test_a_forged_cursor_is_400(live: Account, cursor: str) -> None:
    event = http_event("invoices/get_invoices", user="user-0001")
    event["queryStringParameters"] = {"cursor": cursor}
    result = invoke(invoices_handler, event)
    assert result.status == 400
    assert result.body["error"]["code"] == "invalid_cursor"


def test_no_identity_is_401(live: Account) -> None:
    result = invoke(billing_handler, http_event("billing/get_billing_no_identity"))
    assert result.status == 401


def test_one_dynamodb_request_per_snapshot(live: Account) -> None:
    subscribed_user(live, "user-0001")
    settle(live)
    with dynamodb_calls(store_for_table(TABLE).client) as calls:
        assert billing().status == 200
        assert billing("user-free").status == 200
    assert calls == ["Query", "Query"]


def test_the_billing_function_never_imports_stripe_nor_pydantic() -> None:
    # A fresh interpreter serves one GET /billing (make bench reports the stripe half).
    assert snapshot_imports() == frozenset()


def test_the_invoices_function_never_imports_stripe() -> None:
    cursor = encode_cursor(invoice_sort_key(1_700_000_000, "in_1"))
    loaded = imports_after_one_request(
        "functions.invoices.app", "invoices/get_invoices", {"cursor": cursor}
    )
    assert "stripe" not in loaded


def test_portal_sessions_read_the_subscription_from_the_projection(
    live: Account, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PORTAL_CONFIGURATION_ID", live.configuration)
    forget_cached_clients()
    subscribed_user(live, "user-0001", "pro_monthly")
    settle(live)
    post({"flow": "subscription_update_confirm", "plan": "pro_yearly"})  # warms the price cache
    settle(live)
    live.clear_requests_log()
    result = post({"flow": "subscription_update_confirm", "plan": "pro_yearly"})
    assert result.status == 200, result.raw
    assert [r["path"] for r in live.requests_log()] == ["/v1/billing_portal/sessions"]


def default_card(account: Account) -> str | None:
    settings = account.customers_of("user-0001")[0].invoice_settings
    return str(settings.default_payment_method) if settings else None


def test_a_setup_intent_card_becomes_the_default(live: Account) -> None:
    subscription = subscribed_user(live, "user-0001")
    first_card = default_card(live)
    # The subscription has its own default too: it must follow.
    live.client.v1.subscriptions.update(
        subscription.id, params={"default_payment_method": str(first_card)}
    )
    result = invoke(session_handler, http_event("portal_session/post_setup_intent"))
    assert result.status == 200, result.raw
    intent_id = result.body["client_secret"].split("_secret_")[0]
    live.client.v1.setup_intents.confirm(intent_id, params={"payment_method": "pm_card_mastercard"})
    settle(live)
    default = default_card(live)
    assert default is not None
    method = live.client.v1.payment_methods.retrieve(str(default))
    assert method.card is not None
    assert method.card.brand == "mastercard"
    assert live.client.v1.subscriptions.retrieve(subscription.id).default_payment_method == default
    body = billing().body
    assert body["payment_method"]["brand"] == "mastercard"
    assert "4242" not in json.dumps(body)
