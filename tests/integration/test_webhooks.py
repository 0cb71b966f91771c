"""POST /webhooks/stripe in-process: signatures, exactly-once, order, faults.

DynamoDB and Secrets Manager are moto; Stripe objects come from the local
stand-in (created over HTTP with stripe-python), and their recorded state
changes are wrapped in Stripe's event envelope and signed like Stripe does.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError

from billing.projection import signature
from billing.store.table import store_for_table
from functions.webhook.app import lambda_handler
from tests.conftest import TABLE, WEBHOOK_SECRET, WEBHOOK_SECRET_NAME, forget_cached_clients
from tests.support.aws import dynamodb_calls
from tests.support.events import http_event
from tests.support.lambda_context import invoke
from tests.support.portal import subscribed_user
from tests.support.stripe_seed import Account
from tests.support.webhooks import (
    SAMPLE,
    deliver,
    delivery,
    events_from_changes,
    stripe_event,
    table_items,
)


@pytest.fixture
def hooks(webhook_deployment: dict[str, Any], account: Account) -> Account:
    return account


def product_event(
    account: Account, *, event_id: str = "evt_product1", created: int = 0
) -> dict[str, Any]:
    product = account.client.v1.products.create(params={"name": "Team"}).to_dict()
    return stripe_event(
        "product.created", product, created=created or int(time.time()), event_id=event_id
    )


def first_of(account: Account, event_type: str) -> dict[str, Any]:
    return next(e for e in events_from_changes(account.changes()) if e["type"] == event_type)


def logged(caplog: pytest.LogCaptureFixture) -> str:
    """Every log record with all its fields (extras included), as text."""
    return "\n".join(json.dumps(vars(r), default=str) for r in caplog.records)


def snapshot_item(user_id: str) -> dict[str, Any]:
    item = boto3.client("dynamodb").get_item(
        TableName=TABLE, Key={"pk": {"S": f"USER#{user_id}"}, "sk": {"S": "SNAPSHOT"}}
    )
    return item.get("Item", {})


def subscription_slot(user_id: str, subscription_id: str) -> dict[str, Any]:
    slot: dict[str, Any] = snapshot_item(user_id)[f"subscription#{subscription_id}"]["M"]
    return slot


# --- signature ---------------------------------------------------------------------------


def test_a_signed_event_is_applied(hooks: Account) -> None:
    event = product_event(hooks)
    result = deliver(event)
    assert result.status == 200, result.raw
    assert result.body == {"received": True, "outcome": "applied"}
    kinds = sorted(item["sk"]["S"] for item in table_items(TABLE))
    assert kinds == ["EVENT", "PRODUCT#" + event["data"]["object"]["id"]]


@pytest.mark.parametrize(
    ("kwargs", "reason"),
    [
        ({"secret": "whsec_someoneElse"}, "Signature mismatch."),
        ({"timestamp": int(time.time()) - 301}, "Timestamp outside the tolerance."),
        ({"signature": None}, "Missing Stripe-Signature header."),
        ({"signature": "t=abc,v1=zzz"}, "Signature mismatch."),
        ({"signature": "garbage"}, "Signature mismatch."),
    ],
)
def test_bad_signatures_are_400_and_store_nothing(
    hooks: Account, kwargs: dict[str, Any], reason: str, caplog: pytest.LogCaptureFixture
) -> None:
    event = product_event(hooks)
    result = deliver(event, **kwargs)
    assert result.status == 400, result.raw
    assert result.body["error"]["code"] == "invalid_signature"
    assert table_items(TABLE) == []
    logs = logged(caplog)
    assert reason in logs
    # Only the reason: no body, no header, no secret.
    assert event["id"] not in logs
    assert WEBHOOK_SECRET not in logs
    assert "v1=" not in logs


def test_a_body_changed_after_signing_is_rejected(hooks: Account) -> None:
    request = http_event(SAMPLE)
    event = product_event(hooks)
    signed = delivery(event)  # signs the original body
    request["headers"]["stripe-signature"] = signed["headers"]["stripe-signature"]
    request["body"] = signed["body"].replace('"Team"', '"Free"')
    result = invoke(lambda_handler, request)
    assert result.status == 400
    assert table_items(TABLE) == []


def test_a_fresh_timestamp_just_inside_the_tolerance_passes(hooks: Account) -> None:
    assert deliver(product_event(hooks), timestamp=int(time.time()) - 290).status == 200


def test_base64_bodies_are_decoded_before_verifying(hooks: Account) -> None:
    result = deliver(product_event(hooks), base64_body=True)
    assert result.status == 200, result.raw
    assert result.body["outcome"] == "applied"


def test_sample_event_from_events_folder_is_checked_against_its_signature(hooks: Account) -> None:
    # The committed sample carries a placeholder signature: it must be refused.
    for name in (SAMPLE, f"{SAMPLE}_base64"):
        result = invoke(lambda_handler, http_event(name))
        assert result.status == 400
    assert table_items(TABLE) == []


def test_rotated_secrets_are_all_accepted(hooks: Account) -> None:
    boto3.client("secretsmanager").put_secret_value(
        SecretId=WEBHOOK_SECRET_NAME, SecretString=f"whsec_newRolledSecret987, {WEBHOOK_SECRET}"
    )
    forget_cached_clients()
    assert deliver(product_event(hooks, event_id="evt_old"), secret=WEBHOOK_SECRET).status == 200
    assert (
        deliver(product_event(hooks, event_id="evt_new"), secret="whsec_newRolledSecret987").status
        == 200
    )
    assert deliver(product_event(hooks, event_id="evt_x"), secret="whsec_retired").status == 400


def test_a_secret_rolled_while_cached_is_read_again_on_the_first_mismatch(
    hooks: Account, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(signature, "_last_refresh", 0.0)
    assert deliver(product_event(hooks, event_id="evt_before")).status == 200  # now cached
    secrets = boto3.client("secretsmanager")
    secrets.put_secret_value(
        SecretId=WEBHOOK_SECRET_NAME, SecretString=f"whsec_rolledWhileCached1, {WEBHOOK_SECRET}"
    )

    rolled = deliver(product_event(hooks, event_id="evt_after"), secret="whsec_rolledWhileCached1")

    assert rolled.status == 200, rolled.raw
    # One re-read per 30 s: forged signatures cannot turn into a Secrets Manager flood.
    secrets.put_secret_value(SecretId=WEBHOOK_SECRET_NAME, SecretString="whsec_rolledAgain22")
    again = deliver(product_event(hooks, event_id="evt_again"), secret="whsec_rolledAgain22")
    assert again.status == 400


def test_a_signed_body_that_is_not_an_event_is_400(hooks: Account) -> None:
    for body in ("not json", json.dumps({"id": "evt_1", "type": "x"}), "[]"):
        result = deliver(body)
        assert result.status == 400, result.raw
        assert result.body["error"]["code"] == "malformed_body"
    assert table_items(TABLE) == []


def test_unhandled_types_and_other_mode_are_200_and_store_nothing(hooks: Account) -> None:
    charge = stripe_event("charge.succeeded", {"id": "ch_1"}, created=1, event_id="evt_charge")
    assert deliver(charge).body == {"received": True, "outcome": "ignored"}
    live = product_event(hooks)
    live["livemode"] = True
    assert deliver(live).body["outcome"] == "other_mode"
    setup = stripe_event(
        "setup_intent.succeeded",
        {"id": "seti_1", "customer": "cus_1", "payment_method": "pm_1", "metadata": {}},
        created=1,
        event_id="evt_seti",
    )
    assert deliver(setup).body["outcome"] == "ignored"  # not one of ours
    assert table_items(TABLE) == []


# --- exactly once ------------------------------------------------------------------------


def test_a_redelivered_event_changes_nothing(hooks: Account) -> None:
    event = product_event(hooks)
    assert deliver(event).body["outcome"] == "applied"
    before = table_items(TABLE)
    assert deliver(event).body["outcome"] == "duplicate"
    assert table_items(TABLE) == before
    (record,) = [i for i in before if i["sk"]["S"] == "EVENT"]
    kept_for = int(record["expires_at"]["N"]) - int(record["processed_at"]["N"])
    assert kept_for >= 4 * 86400


def test_an_expired_dedupe_record_does_not_block_but_the_version_rule_holds(
    hooks: Account,
) -> None:
    user = "user-expired"
    subscription = subscribed_user(hooks, user)
    events = events_from_changes(hooks.changes())
    for event in events:
        assert deliver(event).status == 200
    slot = subscription_slot(user, subscription.id)
    # Age every dedupe record past its expiry, as if TTL had not run yet.
    client = boto3.client("dynamodb")
    for item in table_items(TABLE):
        if item["sk"]["S"] == "EVENT":
            item["expires_at"] = {"N": "1"}
            client.put_item(TableName=TABLE, Item=item)
    outcomes = {deliver(event).body["outcome"] for event in events}
    # Same-second events re-fetch (applied); older ones are stale; none is a duplicate.
    assert "duplicate" not in outcomes
    assert subscription_slot(user, subscription.id)["r"] == slot["r"]


@pytest.fixture
def serialized_moto(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make moto's DynamoDB serialize requests, as DynamoDB does for conflicting writes.

    moto undoes a failed transaction by restoring a copy of the whole table,
    which would also undo another thread's committed write: a moto artefact,
    not DynamoDB behaviour. One lock around its operations removes it; the
    threads still race to commit, which is what the test is about.
    """
    from moto.dynamodb.models import DynamoDBBackend  # noqa: PLC0415

    lock = threading.RLock()
    for name in (
        "transact_write_items",
        "put_item",
        "update_item",
        "delete_item",
        "get_item",
        "batch_get_item",
        "query",
    ):
        original = getattr(DynamoDBBackend, name)

        def locked(*args: Any, _original: Any = original, **kwargs: Any) -> Any:
            with lock:
                return _original(*args, **kwargs)

        monkeypatch.setattr(DynamoDBBackend, name, locked)


@pytest.mark.usefixtures("serialized_moto")
def test_concurrent_deliveries_of_one_event_have_one_effect(hooks: Account) -> None:
    user = "user-concurrent"
    subscription = subscribed_user(hooks, user)
    (created,) = [
        e
        for e in events_from_changes(hooks.changes())
        if e["type"] == "customer.subscription.created"
    ]
    outcomes: list[str] = []
    barrier = threading.Barrier(6)

    def one() -> None:
        barrier.wait()
        outcomes.append(deliver(created).body["outcome"])

    threads = [threading.Thread(target=one) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(outcomes) == ["applied"] + ["duplicate"] * 5
    assert subscription_slot(user, subscription.id)["e"]["S"] == created["id"]


# --- order -------------------------------------------------------------------------------


def _subscription_history(account: Account, user: str) -> tuple[Any, list[dict[str, Any]]]:
    """created -> updated (plan change) -> deleted for one user's subscription."""
    subscription = subscribed_user(account, user)
    account.client.v1.subscriptions.update(
        subscription.id,
        params={
            "items": [
                {"id": subscription["items"].data[0].id, "price": account.prices["pro_yearly"]}
            ]
        },
    )
    account.client.v1.subscriptions.cancel(subscription.id)
    events = events_from_changes(account.changes(), types=("customer.subscription.",))
    assert [e["type"] for e in events] == [
        "customer.subscription.created",
        "customer.subscription.updated",
        "customer.subscription.deleted",
    ]
    for step, event in enumerate(events):
        event["created"] = 1_800_000_000 + step  # one second apart
    return subscription, events


def test_updated_before_created_and_deleted_before_updated_converge(hooks: Account) -> None:
    user = "user-order"
    subscription, (created, updated, deleted) = _subscription_history(hooks, user)
    assert deliver(deleted).body["outcome"] == "applied"
    assert deliver(updated).body["outcome"] == "stale"
    assert deliver(created).body["outcome"] == "stale"
    slot = subscription_slot(user, subscription.id)
    assert slot["r"]["M"]["status"]["S"] == "canceled"
    assert slot["v"]["N"] == str(deleted["created"])


def test_a_stale_event_loses_to_a_newer_one(hooks: Account) -> None:
    user = "user-stale"
    subscription, (created, updated, _) = _subscription_history(hooks, user)
    assert deliver(updated).body["outcome"] == "applied"
    assert deliver(created).body["outcome"] == "stale"
    items = subscription_slot(user, subscription.id)["r"]["M"]["items"]["L"]
    assert items[0]["M"]["lookup_key"]["S"] == "pro_yearly"


def test_two_events_in_one_second_are_resolved_by_refetching(hooks: Account) -> None:
    user = "user-tie"
    subscription, (created, updated, deleted) = _subscription_history(hooks, user)
    updated["created"] = created["created"]
    for event in events_from_changes(hooks.changes(), types=("product.", "price.")):
        assert deliver(event).body["outcome"] == "applied"
    hooks.clear_requests_log()
    assert deliver(updated).body["outcome"] == "applied"
    assert hooks.requests_log() == []  # the common path calls no Stripe API
    # Same second, different event: the order is in doubt, Stripe has the answer.
    assert deliver(created).body["outcome"] == "applied"
    paths = [r["path"] for r in hooks.requests_log()]
    # exactly one re-fetch; product names came from the catalog events
    assert paths == [f"/v1/subscriptions/{subscription.id}"]
    slot = subscription_slot(user, subscription.id)
    assert slot["r"]["M"]["status"]["S"] == "canceled"  # Stripe's current state
    assert deliver(deleted).body["outcome"] == "applied"  # a later second still applies


# --- faults ------------------------------------------------------------------------------


@contextmanager
def failing(operation: str, *, times: int = 1) -> Iterator[list[int]]:
    """Make the projection store's DynamoDB ``operation`` fail ``times`` times."""
    client = store_for_table(TABLE).client
    calls = [0]

    def fail(**_: Any) -> None:
        if calls[0] < times:
            calls[0] += 1
            raise ClientError(
                {"Error": {"Code": "InternalServerError", "Message": "injected"}}, operation
            )

    client.meta.events.register(f"before-call.dynamodb.{operation}", fail)
    try:
        yield calls
    finally:
        client.meta.events.unregister(f"before-call.dynamodb.{operation}", fail)


@pytest.mark.parametrize("operation", ["BatchGetItem", "TransactWriteItems"])
def test_a_storage_failure_mid_event_is_503_writes_nothing_and_the_retry_converges(
    hooks: Account, operation: str
) -> None:
    user = "user-fault"
    subscription = subscribed_user(hooks, user)
    created = first_of(hooks, "customer.subscription.created")
    before = table_items(TABLE)
    with failing(operation) as calls:
        result = deliver(created)
    assert calls == [1]
    assert result.status == 503
    assert result.headers["retry-after"]
    assert table_items(TABLE) == before
    assert deliver(created).body["outcome"] == "applied"
    assert subscription_slot(user, subscription.id)["e"]["S"] == created["id"]


def test_an_unknown_product_name_is_fetched_once(hooks: Account) -> None:
    user = "user-product"
    subscription, (created, updated, _) = _subscription_history(hooks, user)
    hooks.clear_requests_log()
    assert deliver(created).body["outcome"] == "applied"
    assert [r["path"] for r in hooks.requests_log()] == [f"/v1/products/{hooks.products['Pro']}"]
    hooks.clear_requests_log()
    assert deliver(updated).body["outcome"] == "applied"
    assert hooks.requests_log() == []
    items = subscription_slot(user, subscription.id)["r"]["M"]["items"]["L"]
    assert items[0]["M"]["product_name"]["S"] == "Pro"


def test_the_common_path_is_two_dynamodb_requests_and_no_stripe_call(hooks: Account) -> None:
    user = "user-count"
    subscription, (created, updated, _) = _subscription_history(hooks, user)
    for event in events_from_changes(hooks.changes(), types=("product.", "price.")):
        deliver(event)
    assert deliver(created).body["outcome"] == "applied"
    client = store_for_table(TABLE).client
    hooks.clear_requests_log()
    with dynamodb_calls(client) as first:
        assert deliver(updated).body["outcome"] == "applied"
    with dynamodb_calls(client) as again:
        assert deliver(updated).body["outcome"] == "duplicate"
    assert first == ["BatchGetItem", "TransactWriteItems"]
    assert again == ["BatchGetItem", "TransactWriteItems"]
    assert hooks.requests_log() == []
    assert subscription_slot(user, subscription.id)["e"]["S"] == updated["id"]
