"""POST /billing/refresh: the snapshot after reading the user's subscriptions from Stripe
now, for the moment the browser is back before the webhook; rate-limited per user."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest
import requests

from functions.portal_session import app
from functions.portal_session.app import lambda_handler
from tests.support.events import http_event
from tests.support.lambda_context import HttpResult, invoke
from tests.support.portal import STRIPE_ID, linked_user, snapshot
from tests.support.stripe_seed import Account
from tests.support.webhooks import deliver, events_from_changes

EVENT = "portal_session/post_billing_refresh"


@pytest.fixture
def shop(webhook_deployment: dict[str, Any], account: Account) -> Account:
    """The steady state: the catalog's events have reached the table (tests that deliver
    every change later redeliver these: duplicates, harmless)."""
    for event in events_from_changes(account.changes()):
        assert deliver(event).status == 200
    return account


def refresh(user: str | None = "user-0001") -> HttpResult:
    return invoke(lambda_handler, http_event(EVENT, user=user))


def stripe_calls(account: Account) -> list[str]:
    return [f"{r['method']} {r['path']}" for r in account.requests_log()]


def test_a_subscription_whose_webhook_has_not_arrived_shows_at_once(shop: Account) -> None:
    customer = linked_user(shop, "user-0001")
    shop.subscribe(customer, "pro_monthly")  # no webhook delivered
    assert snapshot("user-0001").body["plan"] is None
    shop.clear_requests_log()

    result = refresh()

    assert result.status == 200, result.raw
    assert result.body["plan"]["name"] == "Pro"
    assert result.body["access"]["state"] == "granted"
    assert result.body["payment_method"]["last4"] == "4242"
    assert not STRIPE_ID.search(result.raw)
    assert sorted(stripe_calls(shop)) == sorted(
        [
            f"GET /v1/customers/{customer}",
            f"GET /v1/customers/{customer}/payment_methods",
            "GET /v1/subscriptions",
            "GET /v1/entitlements/active_entitlements",
        ]
    )
    # Stored, not only answered: GET /billing (no Stripe call) shows the same.
    assert snapshot("user-0001").body == result.body
    assert result.headers["etag"] == snapshot("user-0001").headers["etag"]


def test_the_late_webhooks_then_change_nothing_and_newer_ones_still_apply(shop: Account) -> None:
    customer = linked_user(shop, "user-0001")
    subscription = shop.subscribe(customer, "pro_monthly")
    refreshed = refresh().body
    for event in events_from_changes(shop.changes()):
        assert deliver(event).status == 200
    after = snapshot("user-0001").body
    for field in ("status", "plan", "renews_at", "access", "payment_method", "subscriptions"):
        assert after[field] == refreshed[field], field

    shop.client.v1.subscriptions.update(subscription.id, {"cancel_at_period_end": True})
    for event in events_from_changes(shop.changes()[-1:]):
        assert deliver(event).status == 200
    assert snapshot("user-0001").body["cancels_at"] is not None


def test_a_second_refresh_within_ten_seconds_is_429_with_retry_after(shop: Account) -> None:
    linked_user(shop, "user-0001")
    assert refresh().status == 200
    shop.clear_requests_log()

    again = refresh()

    assert again.status == 429, again.raw
    assert again.body["error"]["code"] == "rate_limited"
    assert 1 <= int(again.headers["retry-after"]) <= 10
    assert stripe_calls(shop) == []
    assert refresh(user="user-0002").status == 200  # per user


def test_a_user_without_a_customer_gets_the_free_snapshot_without_calling_stripe(
    shop: Account,
) -> None:
    result = refresh()

    assert result.status == 200
    assert (result.body["status"], result.body["access"]["reason"]) == ("none", "none")
    assert stripe_calls(shop) == []


def test_without_a_token_it_is_401(shop: Account) -> None:
    assert refresh(user=None).status == 401


def test_stripe_down_is_503_with_retry_after_and_stores_nothing(shop: Account) -> None:
    customer = linked_user(shop, "user-0001")
    shop.subscribe(customer, "pro_monthly")
    requests.post(
        f"{shop.standin.url}/_standin/faults", json={"status": 429, "count": 10}, timeout=5
    ).raise_for_status()

    result = refresh()

    requests.delete(f"{shop.standin.url}/_standin/faults", timeout=5)
    assert result.status == 503, result.raw
    assert int(result.headers["retry-after"]) > 0
    assert snapshot("user-0001").body["plan"] is None


def test_a_tie_with_an_event_of_the_second_before_needs_no_second_fetch(
    shop: Account, monkeypatch: pytest.MonkeyPatch
) -> None:
    customer = linked_user(shop, "user-0001")
    shop.subscribe(customer, "pro_monthly")
    for event in events_from_changes(shop.changes()):
        assert deliver(event).status == 200
    stored_second = max(change["created"] for change in shop.changes())
    # The refresh runs in the next second: it stores as of `stored_second`, a tie.
    monkeypatch.setattr(app, "time", SimpleNamespace(time=lambda: stored_second + 1.5))
    shop.clear_requests_log()

    assert refresh().status == 200

    assert len(stripe_calls(shop)) == 4, stripe_calls(shop)  # no re-fetch of each object
