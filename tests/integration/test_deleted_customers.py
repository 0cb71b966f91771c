"""A customer deleted in Stripe (by support, or a GDPR erasure) never locks its user out.

Either the ``customer.deleted`` event arrives first, or a request finds out from Stripe's
"No such customer"; both retire the link, and the next request that needs a customer
creates a new one. The stand-in plays Stripe over HTTP; DynamoDB is moto.
"""

from __future__ import annotations

import threading
import time
from typing import Any

import boto3
import pytest

from billing.store.table import store_for_table
from functions.portal_session.app import lambda_handler as portal_handler
from tests.conftest import TABLE
from tests.support.events import http_event
from tests.support.lambda_context import HttpResult, invoke
from tests.support.portal import STRIPE_ID, link_of, post, snapshot, subscribed_user
from tests.support.stripe_seed import Account
from tests.support.webhooks import StandinChanges, deliver, stripe_event, table_items


@pytest.fixture
def hooks(webhook_deployment: dict[str, Any], account: Account) -> Account:
    return account


def setup_intent(user: str) -> HttpResult:
    return invoke(portal_handler, http_event("portal_session/post_setup_intent", user=user))


def item(pk: str, sk: str) -> dict[str, Any]:
    found: dict[str, Any] = (
        boto3.client("dynamodb")
        .get_item(TableName=TABLE, Key={"pk": {"S": pk}, "sk": {"S": sk}})
        .get("Item", {})
    )
    return found


def records_of(customer_id: str) -> list[dict[str, Any]]:
    """Every item in a user partition that still holds something of ``customer_id``."""
    return [
        i
        for i in table_items(TABLE)
        if i["pk"]["S"].startswith("USER#") and customer_id in str(i) and i["sk"]["S"] != "LINK"
    ]


def assert_free(body: dict[str, Any]) -> None:
    assert body["status"] == "none"
    assert body["plan"] is None
    assert body["payment_method"] is None
    assert body["email"] is None
    assert body["invoices"] == {"data": [], "next_cursor": None}
    assert body["subscriptions"] == []


def test_customer_deleted_frees_the_user_and_the_next_session_makes_a_new_customer(
    hooks: Account,
) -> None:
    delivered = StandinChanges(hooks)
    subscription = subscribed_user(hooks, "user-gdpr")
    old = str(subscription.customer)
    delivered.flush()
    before = snapshot("user-gdpr").body
    assert before["status"] == "active"
    assert before["invoices"]["data"]

    hooks.client.v1.customers.delete(old)
    delivered.flush()
    assert "customer.deleted:applied" in delivered.outcomes

    assert_free(snapshot("user-gdpr").body)
    assert records_of(old) == [], "the deleted customer's records left the partition"
    history = item(f"CUSTOMER#{old}", "LINK")
    assert history["user_id"]["S"] == "user-gdpr"
    assert history["retired_reason"]["S"] == "deleted_in_stripe"
    assert link_of("user-gdpr") is None

    hooks.clear_requests_log()
    result = post({}, user="user-gdpr")
    assert result.status == 200, result.raw
    assert not STRIPE_ID.search(result.raw)
    new = link_of("user-gdpr")
    assert new is not None
    assert new != old
    [created] = [r for r in hooks.requests_log() if r["path"] == "/v1/customers"]
    assert created["replayed"] is False, "a new key, not Stripe's replay of the first creation"
    assert [c.id for c in hooks.customers_of("user-gdpr")] == [new]

    # A late event of the deleted customer neither links it again nor shows up.
    late = stripe_event(
        "customer.updated",
        {**hooks.changes()[0]["object"], "id": old, "name": "Late"},
        created=int(time.time()) + 5,
        event_id="evt_late_update_of_old",
    )
    assert deliver(late).body["outcome"] == "retired"
    assert link_of("user-gdpr") == new
    assert records_of(old) == []
    delivered.flush()
    assert snapshot("user-gdpr").body["status"] == "none"

    again = deliver(
        stripe_event(
            "customer.deleted",
            {**hooks.changes()[0]["object"], "id": old},
            created=int(time.time()) + 6,
            event_id="evt_second_deletion_notice",
        )
    )
    assert again.body["outcome"] == "retired"
    assert link_of("user-gdpr") == new


def test_no_such_customer_from_stripe_retires_the_link_and_heals_at_once(
    hooks: Account,
) -> None:
    delivered = StandinChanges(hooks)
    subscription = subscribed_user(hooks, "user-healed")
    old = str(subscription.customer)
    delivered.flush()
    hooks.client.v1.customers.delete(old)  # its events are not delivered yet

    # A flow that needs a subscription: the user has none any more.
    cancel = post({"flow": "subscription_cancel"}, user="user-healed")
    assert cancel.status == 409, cancel.raw
    assert cancel.body["error"]["code"] == "no_subscription"
    assert link_of("user-healed") is None
    assert item(f"CUSTOMER#{old}", "LINK")["retired_reason"]["S"] == "missing_in_stripe"

    intent = setup_intent("user-healed")
    assert intent.status == 200, intent.raw
    new = link_of("user-healed")
    assert new not in (None, old)

    # The deletion's own events arrive late: nothing of the old customer comes back.
    delivered.flush()
    assert "customer.deleted:retired" in delivered.outcomes
    assert link_of("user-healed") == new
    assert records_of(old) == []
    body = snapshot("user-healed").body
    assert body["status"] == "none"
    assert body["invoices"]["data"] == []


def test_a_portal_session_for_a_customer_stripe_never_had_gets_a_fresh_one(
    hooks: Account,
) -> None:
    """A key of another account, or a table restored from elsewhere."""
    boto3.client("dynamodb").put_item(
        TableName=TABLE,
        Item={
            "pk": {"S": "USER#user-elsewhere"},
            "sk": {"S": "LINK"},
            "customer_id": {"S": "cus_FromAnotherAccount"},
            "linked_at": {"N": "1"},
        },
    )
    result = post({}, user="user-elsewhere")
    assert result.status == 200, result.raw
    assert link_of("user-elsewhere") not in (None, "cus_FromAnotherAccount")


def test_concurrent_requests_after_a_deletion_make_exactly_one_new_customer(
    hooks: Account,
) -> None:
    subscription = subscribed_user(hooks, "user-race")
    old = str(subscription.customer)
    hooks.client.v1.customers.delete(old)

    results: list[HttpResult] = []
    lock = threading.Lock()

    def open_portal() -> None:
        result = post({}, user="user-race")
        with lock:
            results.append(result)

    threads = [threading.Thread(target=open_portal) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert [r.status for r in results] == [200] * 6, [r.raw for r in results]
    [new] = [c.id for c in hooks.customers_of("user-race")]
    assert link_of("user-race") == new != old
    sessions = [
        c["object"] for c in hooks.changes() if c["type"] == "billing_portal.session.created"
    ]
    assert {s["customer"] for s in sessions[-6:]} == {new}


def test_a_saved_card_of_a_deleted_customer_is_acknowledged_not_retried_forever(
    hooks: Account,
) -> None:
    subscription = subscribed_user(hooks, "user-card")
    old = str(subscription.customer)
    hooks.client.v1.customers.delete(old)
    succeeded = stripe_event(
        "setup_intent.succeeded",
        {
            "id": "seti_1",
            "object": "setup_intent",
            "customer": old,
            "payment_method": "pm_1",
            "metadata": {"user_id": "user-card", "purpose": "default_payment_method"},
        },
        created=int(time.time()),
        event_id="evt_setup_of_deleted",
    )
    result = deliver(succeeded)
    assert result.status == 200, result.raw
    assert result.body["outcome"] == "retired"


def test_a_link_written_while_the_deletion_is_processed_is_retired_too(
    hooks: Account, monkeypatch: pytest.MonkeyPatch
) -> None:
    """customer.deleted reads "no link", then a link commits before its write: the
    retirement reads again and unlinks the user as well, so no user is left linked to
    a customer Stripe no longer has."""
    customer = hooks.client.v1.customers.create(
        params={"email": "race@example.com", "metadata": {"user_id": "user-linking"}}
    ).to_dict()
    store = store_for_table(TABLE)
    original = type(store).context
    linked = False

    def link_after_the_first_read(self: Any, *args: Any) -> Any:
        nonlocal linked
        read = original(self, *args)
        if not linked:
            linked = True
            assert store.link_customer("user-linking", customer["id"]) == customer["id"]
        return read

    monkeypatch.setattr(type(store), "context", link_after_the_first_read)
    deleted = stripe_event(
        "customer.deleted", customer, created=int(time.time()), event_id="evt_deleted_race"
    )
    assert deliver(deleted).body["outcome"] == "applied"
    assert linked
    assert link_of("user-linking") is None
    assert item(f"CUSTOMER#{customer['id']}", "LINK")["retired_reason"]["S"] == "deleted_in_stripe"
