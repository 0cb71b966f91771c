"""POST /portal-sessions and POST /setup-intents, in-process against moto and the stand-in.

The handler runs as Lambda would run it: an HTTP API payload-2.0 event from
``events/``, DynamoDB and Secrets Manager in moto, Stripe over HTTP on the
local stand-in.
"""

from __future__ import annotations

import re
import threading
from typing import Any

import boto3
import pytest
import requests

from billing.stripe_api.client import STRIPE_API_VERSION
from functions.portal_session.app import lambda_handler
from tests.conftest import SECRET_NAME, TABLE, forget_cached_clients
from tests.support.events import http_event
from tests.support.lambda_context import HttpResult, invoke
from tests.support.portal import EVENT, STRIPE_ID, link_of, linked_user, post, subscribed_user
from tests.support.stripe_seed import Account


def stripe_writes(account: Account) -> list[str]:
    return [f"{r['method']} {r['path']}" for r in account.requests_log() if r["method"] != "GET"]


def assert_error(result: HttpResult, status: int, code: str) -> None:
    assert result.status == status, result.raw
    assert result.body["error"]["code"] == code
    assert result.body["error"]["message"]
    assert not STRIPE_ID.search(result.raw)


# --- the happy paths ----------------------------------------------------------------------


def test_first_session_creates_and_links_one_customer_and_returns_a_working_url(
    account: Account,
) -> None:
    result = post({})
    assert result.status == 200, result.raw
    url = result.body["url"]
    assert url.startswith(f"{account.standin.url}/p/session/")
    assert not STRIPE_ID.search(result.raw), "no Stripe ids in responses"
    assert requests.get(url, timeout=5).status_code == 200

    (customer,) = account.customers_of("user-0001")
    assert customer.email == "ada@example.com"
    assert link_of("user-0001") == customer.id
    session = account.last_session()
    assert session["customer"] == customer.id
    assert session["return_url"] == "https://app.example.com/account"
    assert session["flow"] is None


def test_a_returning_user_reuses_the_customer_with_one_stripe_call(account: Account) -> None:
    customer = linked_user(account, "user-0001")
    account.clear_requests_log()
    result = post({"return_url": "http://localhost:5173/billing", "locale": "fr"})
    assert result.status == 200
    assert stripe_writes(account) == ["POST /v1/billing_portal/sessions"]
    assert len(account.requests_log()) == 1
    session = account.last_session()
    assert session["customer"] == customer
    assert session["locale"] == "fr"
    assert session["return_url"] == "http://localhost:5173/billing"


def test_every_request_carries_the_pinned_api_version_and_the_secret_key(account: Account) -> None:
    # The stand-in answers 401 to any key but its own, so success proves the
    # key came from Secrets Manager.
    assert post({}).status == 200
    log = account.requests_log()
    assert len(log) == 2
    assert {r["stripe_version"] for r in log} == {STRIPE_API_VERSION}


def test_payment_method_update_flow(account: Account) -> None:
    result = post({"flow": "payment_method_update"})
    assert result.status == 200
    flow = account.last_session()["flow"]
    assert flow["type"] == "payment_method_update"
    assert flow["after_completion"]["redirect"] == {"return_url": "https://app.example.com/account"}


def test_base64_encoded_body_is_decoded(account: Account) -> None:
    event = http_event("portal_session/post_portal_session_base64")
    result = invoke(lambda_handler, event)
    assert result.status == 200, result.raw
    assert account.last_session()["flow"]["type"] == "payment_method_update"


@pytest.mark.parametrize("after", ["hosted_confirmation", "portal_homepage", "redirect"])
def test_cancel_flow_targets_the_users_subscription(configured: Account, after: str) -> None:
    subscription = subscribed_user(configured, "user-0002")
    result = post({"flow": "subscription_cancel", "after_completion": after}, user="user-0002")
    assert result.status == 200, result.raw
    session = configured.last_session()
    assert session["flow"]["subscription_cancel"]["subscription"] == subscription.id
    assert session["flow"]["after_completion"]["type"] == after
    assert session["configuration"] == configured.configuration


def test_change_plan_flow(configured: Account) -> None:
    subscription = subscribed_user(configured, "user-0003")
    assert post({"flow": "subscription_update"}, user="user-0003").status == 200
    flow = configured.last_session()["flow"]
    assert flow["subscription_update"] == {"subscription": subscription.id}


def test_confirm_plan_resolves_the_lookup_key_once_and_uses_the_stored_item(
    configured: Account,
) -> None:
    subscription = subscribed_user(configured, "user-0004", "basic_monthly")
    body = {"flow": "subscription_update_confirm", "plan": "pro_yearly", "quantity": 3}
    result = post(body, user="user-0004")
    assert result.status == 200, result.raw
    confirm = configured.last_session()["flow"]["subscription_update_confirm"]
    assert confirm["subscription"] == subscription.id
    assert confirm["items"] == [
        {
            "id": subscription.items.data[0].id,
            "price": configured.prices["pro_yearly"],
            "quantity": 3,
        }
    ]
    # The price is now cached in DynamoDB: the next confirm asks Stripe only for the
    # subscription (until the projection stores it) and the session.
    configured.clear_requests_log()
    assert post(body, user="user-0004").status == 200
    paths = [r["path"] for r in configured.requests_log()]
    assert "/v1/prices" not in paths
    assert paths[-1] == "/v1/billing_portal/sessions"


def test_confirm_event_from_events_folder(configured: Account) -> None:
    subscribed_user(configured, "user-0001", "pro_monthly")
    result = invoke(lambda_handler, http_event("portal_session/post_portal_session_confirm_plan"))
    assert result.status == 200, result.raw
    flow = configured.last_session()["flow"]
    assert (
        flow["subscription_update_confirm"]["items"][0]["price"] == configured.prices["pro_yearly"]
    )
    assert flow["after_completion"]["redirect"]["return_url"] == "https://app.example.com/billing"


def test_default_configuration_is_used_when_none_is_configured(account: Account) -> None:
    assert post({}).status == 200
    assert account.last_session()["configuration"] == account.standin.state.default_configuration_id


def test_setup_intent_for_the_users_customer(account: Account) -> None:
    result = invoke(lambda_handler, http_event("portal_session/post_setup_intent"))
    assert result.status == 200, result.raw
    secret = result.body["client_secret"]
    assert re.fullmatch(r"seti_\w+_secret_\w+", secret)
    customer = link_of("user-0001")
    intent = account.client.v1.setup_intents.retrieve(secret.split("_secret_")[0])
    assert intent.customer == customer
    assert intent.metadata is not None
    assert intent.metadata.to_dict() == {
        "user_id": "user-0001",
        "purpose": "default_payment_method",
    }


# --- identity -------------------------------------------------------------------------------


def test_no_identity_is_401_and_touches_nothing(account: Account) -> None:
    result = invoke(lambda_handler, http_event("portal_session/post_portal_session_no_identity"))
    assert_error(result, 401, "unauthenticated")
    assert account.requests_log() == []
    assert boto3.client("dynamodb").scan(TableName=TABLE)["Items"] == []


def test_setup_intent_without_identity_is_401(account: Account) -> None:
    result = invoke(lambda_handler, http_event("portal_session/post_setup_intent", user=None))
    assert_error(result, 401, "unauthenticated")
    assert account.requests_log() == []


def test_client_sent_customer_or_subscription_ids_are_never_used(configured: Account) -> None:
    victim = subscribed_user(configured, "victim")
    victim_customer = link_of("victim")
    for body in (
        {"customer": victim_customer},
        {"flow": "subscription_cancel", "subscription": victim.id},
    ):
        assert_error(post(body, user="attacker"), 422, "invalid_request")
    # Query strings and headers are not read either: the attacker gets their own customer.
    event = http_event(EVENT, body={}, user="attacker")
    event["rawQueryString"] = f"customer={victim_customer}"
    event["queryStringParameters"] = {"customer": victim_customer}
    event["headers"]["x-customer-id"] = victim_customer
    assert invoke(lambda_handler, event).status == 200
    assert configured.last_session()["customer"] == link_of("attacker") != victim_customer
    # And a cancel by the attacker cannot reach the victim's subscription.
    assert_error(post({"flow": "subscription_cancel"}, user="attacker"), 409, "no_subscription")


# --- bad input: clear errors, nothing changed ------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "status", "code"),
    [
        ("{not json", 400, "malformed_body"),
        ('{"flow": "refund_everything"}', 422, "invalid_request"),
        ('{"plan": "pro_monthly"}', 422, "invalid_request"),
        ('{"quantity": -1, "flow": "subscription_update_confirm"}', 422, "invalid_request"),
        ('{"locale": "klingon"}', 422, "invalid_request"),
        ('["flow"]', 422, "invalid_request"),
    ],
)
def test_malformed_bodies(account: Account, raw: str, status: int, code: str) -> None:
    result = invoke(lambda_handler, http_event(EVENT, raw_body=raw))
    assert_error(result, status, code)
    assert account.requests_log() == []


def test_validation_messages_name_the_field(account: Account) -> None:
    result = post({"flow": "refund_everything"})
    assert result.body["error"]["message"].startswith("flow:")


@pytest.mark.parametrize(
    "url",
    ["https://evil.test/", "https://app.example.com@evil.test/", "//evil.test", "javascript:x"],
)
def test_return_url_not_allowed(account: Account, url: str) -> None:
    assert_error(post({"return_url": url}), 422, "return_url_not_allowed")
    assert account.requests_log() == []
    assert link_of("user-0001") is None


def test_unknown_plan_is_422_and_creates_nothing(configured: Account) -> None:
    subscribed_user(configured, "user-0005")
    before = len(configured.changes())
    result = post({"flow": "subscription_update_confirm", "plan": "platinum"}, user="user-0005")
    assert_error(result, 422, "unknown_plan")
    assert len(configured.changes()) == before


def test_plan_the_portal_does_not_offer_is_422(configured: Account) -> None:
    subscribed_user(configured, "user-0006")
    body = {"flow": "subscription_update_confirm", "plan": "enterprise_monthly"}
    assert_error(post(body, user="user-0006"), 422, "flow_not_available")


@pytest.mark.parametrize(
    "body",
    [
        {"flow": "subscription_cancel"},
        {"flow": "subscription_update"},
        {"flow": "subscription_update_confirm", "plan": "pro_yearly"},
    ],
)
def test_subscription_flows_for_a_new_user_are_409_and_create_no_customer(
    configured: Account, body: dict[str, Any]
) -> None:
    assert_error(post(body, user="newcomer"), 409, "no_subscription")
    assert configured.customers_of("newcomer") == []
    assert link_of("newcomer") is None


def test_cancel_for_a_customer_without_subscription_is_409(configured: Account) -> None:
    linked_user(configured, "user-0007")
    assert_error(post({"flow": "subscription_cancel"}, user="user-0007"), 409, "no_subscription")


def test_cancel_when_already_cancelling_is_409(configured: Account) -> None:
    subscription = subscribed_user(configured, "user-0008")
    configured.client.v1.subscriptions.update(
        subscription.id, params={"cancel_at_period_end": True}
    )
    result = post({"flow": "subscription_cancel"}, user="user-0008")
    assert_error(result, 409, "already_cancelling")


def test_confirm_to_the_plan_already_held_is_409(configured: Account) -> None:
    subscribed_user(configured, "user-0009", "pro_monthly")
    body = {"flow": "subscription_update_confirm", "plan": "pro_monthly"}
    assert_error(post(body, user="user-0009"), 409, "already_on_plan")


# --- Stripe failures -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fault", "status", "code"),
    [
        ({"status": 500, "count": 10}, 502, "stripe_error"),
        ({"status": 429, "count": 1}, 503, "stripe_unavailable"),
        ({"hang_seconds": 2.5, "count": 10}, 503, "stripe_unavailable"),
    ],
)
def test_stripe_failures_answer_with_a_retry_hint_and_link_nothing(
    account: Account, monkeypatch: pytest.MonkeyPatch, fault: dict[str, Any], status: int, code: str
) -> None:
    monkeypatch.setenv("STRIPE_MAX_NETWORK_RETRIES", "1")
    monkeypatch.setenv("STRIPE_READ_TIMEOUT_SECONDS", "0.5")
    forget_cached_clients()
    account.inject_fault(**fault)
    result = post({})
    assert_error(result, status, code)
    assert int(result.headers["retry-after"]) > 0
    account.clear_faults()
    assert link_of("user-0001") is None
    assert account.customers_of("user-0001") == []


def test_a_transient_stripe_error_is_retried_by_the_client(account: Account) -> None:
    account.inject_fault(status=500, count=1)
    assert post({}).status == 200
    attempts = [r for r in account.requests_log() if r["path"] == "/v1/customers"]
    assert [r["status"] for r in attempts] == [500, 200]
    assert len({r["idempotency_key"] for r in attempts}) == 1
    assert len(account.customers_of("user-0001")) == 1


def test_a_wrong_secret_key_is_502_without_leaking_it(
    account: Account, monkeypatch: pytest.MonkeyPatch
) -> None:
    boto3.client("secretsmanager").put_secret_value(
        SecretId=SECRET_NAME, SecretString="sk_test_wrong"
    )
    forget_cached_clients()
    result = post({})
    assert_error(result, 502, "stripe_error")
    assert "sk_test" not in result.raw


# --- concurrency -----------------------------------------------------------------------------


def test_concurrent_first_requests_end_with_exactly_one_customer(account: Account) -> None:
    results: list[HttpResult] = []
    barrier = threading.Barrier(6)

    def first_visit() -> None:
        barrier.wait()
        results.append(post({}, user="racer"))

    threads = [threading.Thread(target=first_visit) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert [r.status for r in results] == [200] * 6
    customers = account.customers_of("racer")
    assert len(customers) == 1
    assert link_of("racer") == customers[0].id
    sessions = [
        c["object"] for c in account.changes() if c["type"] == "billing_portal.session.created"
    ]
    assert {s["customer"] for s in sessions} == {customers[0].id}


def test_a_storage_failure_is_503_with_a_retry_hint(account: Account) -> None:
    boto3.client("dynamodb").delete_table(TableName=TABLE)
    result = post({})
    assert_error(result, 503, "storage_unavailable")
    assert result.headers["retry-after"] == "5"
    assert stripe_writes(account) == []
