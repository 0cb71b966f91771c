"""POST /checkout-sessions, in-process against moto and the stand-in's Checkout.

The handler runs as Lambda would run it; Stripe is the stand-in over HTTP, which
checks Checkout's parameters as Stripe does (``sandbox/stripe_standin/checkout_sessions.py``).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
import requests

from functions.portal_session.app import lambda_handler
from tests.conftest import TABLE, forget_cached_clients
from tests.support.events import http_event
from tests.support.lambda_context import HttpResult, invoke
from tests.support.portal import STRIPE_ID, link_of, linked_user
from tests.support.stripe_seed import Account
from tests.support.webhooks import deliver, events_from_changes

EVENT = "portal_session/post_checkout_session"
OFFERED = "basic_monthly,pro_monthly,pro_yearly"


@pytest.fixture
def shop(
    webhook_deployment: dict[str, Any], account: Account, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Account]:
    """The deployment selling three plans."""
    monkeypatch.setenv("PLAN_LOOKUP_KEYS", OFFERED)
    forget_cached_clients()
    yield account
    forget_cached_clients()


def checkout(body: Any, *, user: str | None = "user-0001") -> HttpResult:
    return invoke(lambda_handler, http_event(EVENT, body=body, user=user))


def sessions_of(account: Account, customer: str) -> list[Any]:
    return list(account.client.v1.checkout.sessions.list({"customer": customer, "limit": 100}))


def stripe_calls(account: Account) -> list[str]:
    return [f"{r['method']} {r['path']}" for r in account.requests_log()]


def assert_error(result: HttpResult, status: int, code: str) -> None:
    assert result.status == status, result.raw
    assert result.body["error"]["code"] == code
    assert result.body["error"]["message"]
    assert not STRIPE_ID.search(result.raw)


# --- what a first subscription gets ---------------------------------------------------


def test_a_free_user_gets_a_checkout_page_for_an_offered_plan(shop: Account) -> None:
    result = checkout(
        {
            "plan": "pro_monthly",
            "quantity": 2,
            "return_url": "https://app.example.com/billing?tab=1",
        }
    )

    assert result.status == 200, result.raw
    assert set(result.body) == {"url", "client_secret"}
    assert result.body["client_secret"] is None
    url = result.body["url"]
    assert url.startswith(f"{shop.standin.url}/c/pay/cs_test_")
    assert not STRIPE_ID.search(result.raw)
    customer = link_of("user-0001")
    assert customer is not None  # created and linked on first use, as for portal sessions
    (session,) = sessions_of(shop, customer)
    assert (session.mode, session.status, session.url) == ("subscription", "open", url)
    assert session.metadata.to_dict() == {"user_id": "user-0001"}
    assert session.client_reference_id == "user-0001"
    assert session.success_url == "https://app.example.com/billing?tab=1&checkout=success"
    assert session.cancel_url == "https://app.example.com/billing?tab=1&checkout=cancel"
    plan = shop.standin.state.checkout_plans[session.id]
    assert plan["subscription_data"]["metadata"] == {"user_id": "user-0001"}
    ((item, quantity),) = [(i["price"]["id"], i["quantity"]) for i in plan["line_items"]]
    assert (item, quantity) == (shop.prices["pro_monthly"], 2)


def test_embedded_checkout_answers_a_client_secret_and_returns_to_the_page(
    shop: Account,
) -> None:
    result = checkout({"plan": "basic_monthly", "ui_mode": "embedded", "locale": "fr"})

    assert result.status == 200, result.raw
    assert result.body["url"] is None
    assert result.body["client_secret"].startswith("cs_test_")
    (session,) = sessions_of(shop, str(link_of("user-0001")))
    assert (session.ui_mode, session.locale) == ("embedded_page", "fr")
    assert session.return_url == "https://app.example.com/account?checkout=success"


def test_the_deployment_s_trial_and_options_reach_checkout(
    shop: Account, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name, value in {
        "CHECKOUT_TRIAL_DAYS": "14",
        "CHECKOUT_TRIAL_REQUIRES_CARD": "false",
        "CHECKOUT_PROMOTION_CODES": "true",
        "CHECKOUT_BILLING_ADDRESS": "required",
    }.items():
        monkeypatch.setenv(name, value)
    forget_cached_clients()

    assert checkout({"plan": "pro_yearly"}).status == 200

    (session,) = sessions_of(shop, str(link_of("user-0001")))
    assert session.allow_promotion_codes is True
    assert session.billing_address_collection == "required"
    assert session.payment_method_collection == "if_required"
    data = shop.standin.state.checkout_plans[session.id]["subscription_data"]
    assert data["trial_period_days"] == "14"  # form-encoded, as Stripe receives it
    assert data["trial_settings"] == {"end_behavior": {"missing_payment_method": "pause"}}


def test_the_steady_state_costs_one_stripe_call(shop: Account) -> None:
    linked_user(shop, "user-0002")
    assert checkout({"plan": "pro_monthly"}, user="user-0002").status == 200  # caches the price
    linked_user(shop, "user-0001")
    shop.clear_requests_log()

    assert checkout({"plan": "pro_monthly"}).status == 200

    assert stripe_calls(shop) == ["POST /v1/checkout/sessions"]


# --- one payable session per user -------------------------------------------------------


def test_the_same_request_again_gets_the_same_session_without_calling_stripe(
    shop: Account,
) -> None:
    first = checkout({"plan": "pro_monthly"})
    shop.clear_requests_log()

    again = checkout({"plan": "pro_monthly"})

    assert again.body == first.body
    assert stripe_calls(shop) == []


def test_another_plan_expires_the_open_session_before_opening_its_own(shop: Account) -> None:
    checkout({"plan": "pro_monthly"})
    shop.clear_requests_log()

    second = checkout({"plan": "basic_monthly"})

    assert second.status == 200
    session_calls = [c.split("/")[-1] for c in stripe_calls(shop) if "/checkout/" in c]
    assert session_calls == ["expire", "sessions"]
    statuses = sorted(s.status for s in sessions_of(shop, str(link_of("user-0001"))))
    assert statuses == ["expired", "open"]
    assert [e["type"] for e in shop.changes()][-1] == "checkout.session.expired"


@pytest.mark.parametrize(
    "plans", [["pro_monthly"] * 4, ["pro_monthly", "basic_monthly", "pro_yearly", "pro_monthly"]]
)
def test_a_burst_of_clicks_leaves_one_payable_session(shop: Account, plans: list[str]) -> None:
    linked_user(shop, "user-0001")
    results: list[HttpResult] = []
    start = threading.Barrier(len(plans))

    def click(plan: str) -> None:
        start.wait()
        results.append(checkout({"plan": plan}))

    threads = [threading.Thread(target=click, args=(plan,)) for plan in plans]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert {r.status for r in results} <= {200, 409}, [r.raw for r in results]
    assert any(r.status == 200 for r in results)
    for refused in (r for r in results if r.status == 409):
        assert refused.body["error"]["code"] == "checkout_in_progress"
    sessions = sessions_of(shop, str(link_of("user-0001")))
    assert [s.status for s in sessions].count("open") == 1


# --- refusals change nothing ------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        ({"plan": "enterprise_monthly"}, 422, "plan_not_offered"),  # exists, not sold here
        (
            {"plan": "pro_monthly", "return_url": "https://evil.example/"},
            422,
            "return_url_not_allowed",
        ),
        ({}, 422, "invalid_request"),
        ({"plan": "pro_monthly", "quantity": 0}, 422, "invalid_request"),
        ({"plan": "pro_monthly", "ui_mode": "popup"}, 422, "invalid_request"),
        ({"plan": "pro_monthly", "coupon": "FREE"}, 422, "invalid_request"),
    ],
)
def test_bad_requests_are_refused_before_stripe(
    shop: Account, body: dict[str, Any], status: int, code: str
) -> None:
    result = checkout(body)

    assert_error(result, status, code)
    assert stripe_calls(shop) == []
    assert link_of("user-0001") is None


def test_a_plan_stripe_does_not_have_is_unknown_and_creates_no_customer(
    shop: Account, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PLAN_LOOKUP_KEYS", f"{OFFERED},gold_monthly")
    forget_cached_clients()

    assert_error(checkout({"plan": "gold_monthly"}), 422, "unknown_plan")
    assert link_of("user-0001") is None


def test_without_a_token_it_is_401(shop: Account) -> None:
    assert checkout({"plan": "pro_monthly"}, user=None).status == 401


def test_a_subscriber_is_sent_to_the_portal_and_nothing_is_created(shop: Account) -> None:
    customer = linked_user(shop, "user-0001")
    shop.subscribe(customer, "pro_monthly")
    for event in events_from_changes(shop.changes()):
        assert deliver(event).status == 200
    shop.clear_requests_log()

    assert_error(checkout({"plan": "basic_monthly"}), 409, "already_subscribed")
    assert stripe_calls(shop) == []
    assert sessions_of(shop, customer) == []


@pytest.mark.parametrize(
    ("fault", "status", "code"),
    [
        ({"status": 500, "count": 10}, 502, "stripe_error"),
        ({"status": 429, "count": 10}, 503, "stripe_unavailable"),
        ({"hang_seconds": 2.5, "count": 10}, 503, "stripe_unavailable"),
    ],
)
def test_a_failing_stripe_gets_a_retry_hint_and_leaves_no_session(
    shop: Account, fault: dict[str, Any], status: int, code: str
) -> None:
    customer = linked_user(shop, "user-0001")
    checkout({"plan": "pro_monthly"}, user="user-0002")  # the price is cached
    requests.post(f"{shop.standin.url}/_standin/faults", json=fault, timeout=5).raise_for_status()

    result = checkout({"plan": "pro_monthly"})

    requests.delete(f"{shop.standin.url}/_standin/faults", timeout=5)
    assert_error(result, status, code)
    assert int(result.headers["retry-after"]) > 0
    assert sessions_of(shop, customer) == []


def test_a_day_later_the_same_request_gets_a_new_session_not_the_expired_one(
    shop: Account, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = checkout({"plan": "pro_monthly"})
    (session,) = sessions_of(shop, str(link_of("user-0001")))
    shop.client.v1.checkout.sessions.expire(session.id)  # what a day does to it
    boto3.client("dynamodb").delete_item(  # and DynamoDB's TTL to what we remembered
        TableName=TABLE, Key={"pk": {"S": "CHECKOUT#user-0001"}, "sk": {"S": "CHECKOUT"}}
    )
    later = time.time() + 86_400
    monkeypatch.setattr("billing.portal.checkout.time.time", lambda: later)

    again = checkout({"plan": "pro_monthly"})

    assert again.status == 200, again.raw
    assert again.body["url"] != first.body["url"]
    statuses = sorted(s.status for s in sessions_of(shop, str(link_of("user-0001"))))
    assert statuses == ["expired", "open"]


# --- the session's own events ------------------------------------------------------------


def pay(shop: Account, url: str, card: str = "pm_card_visa") -> None:
    """What the customer does on the hosted page: pick a card and press Subscribe."""
    paid = requests.post(url, data={"card": card}, allow_redirects=False, timeout=10)
    assert paid.status_code == 303, paid.text


def remembered(user: str) -> dict[str, Any] | None:
    item: dict[str, Any] | None = (
        boto3.client("dynamodb")
        .get_item(TableName=TABLE, Key={"pk": {"S": f"CHECKOUT#{user}"}, "sk": {"S": "CHECKOUT"}})
        .get("Item")
    )
    return item


def deliver_new(shop: Account, since: int) -> list[str]:
    """Deliver the changes from index ``since`` on; the outcome of each checkout.session.*."""
    outcomes = []
    for event in events_from_changes(shop.changes()[since:]):
        result = deliver(event)
        assert result.status == 200, result.raw
        if event["type"].startswith("checkout.session."):
            outcomes.append(f"{event['type']}: {result.body['outcome']}")
    return outcomes


def test_a_paid_session_is_forgotten_and_a_later_checkout_gets_a_new_one(shop: Account) -> None:
    for event in events_from_changes(shop.changes()):
        assert deliver(event).status == 200
    start = len(shop.changes())
    first = checkout({"plan": "pro_monthly"})
    pay(shop, first.body["url"])
    assert remembered("user-0001") is not None  # until the webhook says it is done

    outcomes = deliver_new(shop, start)

    assert outcomes == ["checkout.session.completed: applied"]
    assert remembered("user-0001") is None
    # The subscription ends at once (a refund, say); the user subscribes again within the
    # hour with the very same request: a new session, not the page of the paid one.
    (subscription,) = shop.client.v1.subscriptions.list({"customer": str(link_of("user-0001"))})
    shop.client.v1.subscriptions.cancel(subscription.id)
    deliver_new(shop, start)
    again = checkout({"plan": "pro_monthly"})
    assert again.status == 200, again.raw
    assert again.body["url"] != first.body["url"]
    assert requests.get(again.body["url"], timeout=10).status_code == 200  # payable


def test_an_expired_session_is_forgotten_only_if_it_is_the_remembered_one(shop: Account) -> None:
    start = len(shop.changes())
    checkout({"plan": "pro_monthly"})
    checkout({"plan": "basic_monthly"})  # expires the first, remembers the second
    newest = remembered("user-0001")
    assert newest is not None

    outcomes = deliver_new(shop, start)

    assert outcomes == ["checkout.session.expired: applied"]
    assert remembered("user-0001") == newest  # the first one's end forgets nothing else
    shop.client.v1.checkout.sessions.expire(newest["session_id"]["S"])
    outcomes = deliver_new(shop, start)
    assert outcomes[-1] == "checkout.session.expired: applied"
    assert outcomes[0] == "checkout.session.expired: duplicate"
    assert remembered("user-0001") is None


def test_a_session_opened_elsewhere_changes_nothing(shop: Account) -> None:
    customer = linked_user(shop, "user-0001")
    checkout({"plan": "pro_monthly"})
    mine = remembered("user-0001")
    start = len(shop.changes())
    elsewhere = shop.client.v1.checkout.sessions.create(  # a Payment Link's, the Dashboard's
        {
            "mode": "subscription",
            "customer": customer,
            "line_items": [{"price": shop.prices["basic_monthly"], "quantity": 1}],
            "success_url": "https://app.example.com/done",
        }
    )
    shop.client.v1.checkout.sessions.expire(elsewhere.id)

    assert deliver_new(shop, start) == ["checkout.session.expired: unlinked"]
    assert remembered("user-0001") == mine
