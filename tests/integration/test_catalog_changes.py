"""A product renamed (or a price's lookup key or nickname changed) in Stripe reaches every
subscriber's snapshot, which stays one DynamoDB request and no Stripe call.

Stripe is the stand-in over HTTP; DynamoDB and SQS are moto; the fan-out function is fed
by the same local SQS event source ``make dev`` runs (``sandbox.queues``).
"""

from __future__ import annotations

import time
from typing import Any

import boto3
import pytest

from billing.projection.catalog_fanout import HANDOVER_MARGIN_SECONDS, CatalogChange, CatalogFanout
from billing.store.table import store_for_table
from functions.catalog_fanout.app import lambda_handler as fanout_handler
from sandbox.queues import SqsEventSource
from tests.conftest import TABLE, forget_cached_clients
from tests.security.stack import TABLE_ARN, function_roles, sam_transform
from tests.support.aws import dynamodb_calls, template
from tests.support.portal import snapshot, subscribed_user
from tests.support.stripe_seed import Account
from tests.support.webhooks import StandinChanges, deliver, stripe_event


@pytest.fixture
def hooks(webhook_deployment: dict[str, Any], account: Account) -> Account:
    return account


@pytest.fixture
def queue(hooks: Account, monkeypatch: pytest.MonkeyPatch) -> SqsEventSource:
    """The deployed shape: the webhook announces to SQS, the fan-out function consumes."""
    url = boto3.client("sqs").create_queue(QueueName="catalog-fanout")["QueueUrl"]
    monkeypatch.setenv("CATALOG_FANOUT_QUEUE_URL", url)
    forget_cached_clients()
    return SqsEventSource(url, fanout_handler, function_name="catalog-fanout", timeout=300)


def subscribers(account: Account, delivered: StandinChanges, count: int) -> list[str]:
    users = [f"user-{n:03d}" for n in range(count)]
    for user in users:
        subscribed_user(account, user)
    delivered.flush()
    return users


def plan_names(users: list[str]) -> set[str]:
    return {snapshot(user).body["plan"]["name"] for user in users}


def waiting(queue: SqsEventSource) -> int:
    attributes = boto3.client("sqs").get_queue_attributes(
        QueueUrl=queue.queue_url, AttributeNames=["ApproximateNumberOfMessages"]
    )
    return int(attributes["Attributes"]["ApproximateNumberOfMessages"])


def test_a_rename_reaches_every_subscriber_through_the_fanout_queue(
    hooks: Account, queue: SqsEventSource
) -> None:
    delivered = StandinChanges(hooks)
    users = subscribers(hooks, delivered, 12)
    assert plan_names(users) == {"Pro"}

    hooks.client.v1.products.update(hooks.products["Pro"], params={"name": "Pro 2027"})
    with dynamodb_calls(store_for_table(TABLE).client) as calls:
        [renamed] = delivered.flush()
    assert renamed["type"] == "product.updated"
    # The webhook answered after its one transaction: the fan-out is queued.
    assert calls == ["TransactWriteItems"]
    assert waiting(queue) == 1
    assert plan_names(users) == {"Pro"}

    with dynamodb_calls(store_for_table(TABLE).client) as fanout_calls:
        assert queue.drain() == 1
    assert plan_names(users) == {"Pro 2027"}
    # Every call the fan-out made is one its role in the template allows.
    role = function_roles(sam_transform(template()))["CatalogFanoutFunction"]
    allowed = role.actions_on(TABLE_ARN, "dynamodb:")
    assert {f"dynamodb:{call}" for call in fanout_calls} <= allowed, allowed
    with dynamodb_calls(store_for_table(TABLE).client) as reads:
        body = snapshot(users[0]).body
    assert reads == ["Query"], "still one request per snapshot"
    assert body["subscriptions"][0]["plan"]["name"] == "Pro 2027"


def test_without_a_queue_the_change_is_copied_in_the_webhook(hooks: Account) -> None:
    delivered = StandinChanges(hooks)
    users = subscribers(hooks, delivered, 3)
    hooks.client.v1.products.update(hooks.products["Pro"], params={"name": "Pro Max"})
    delivered.flush()
    assert plan_names(users) == {"Pro Max"}


def test_a_price_nickname_and_lookup_key_change_reach_the_snapshot(
    hooks: Account, queue: SqsEventSource
) -> None:
    delivered = StandinChanges(hooks)
    [user] = subscribers(hooks, delivered, 1)
    price = hooks.prices["pro_monthly"]
    hooks.client.v1.prices.update(
        price, params={"nickname": "Pro (monthly)", "lookup_key": "pro_monthly_2027"}
    )
    delivered.flush()
    queue.drain()
    plan = snapshot(user).body["plan"]
    assert plan["lookup_key"] == "pro_monthly_2027"
    assert plan["name"] == "Pro"  # the product's name still comes first


def test_a_long_fanout_hands_over_and_resumes_where_it_stopped(
    hooks: Account, queue: SqsEventSource
) -> None:
    delivered = StandinChanges(hooks)
    users = subscribers(hooks, delivered, 7)
    hooks.client.v1.products.update(hooks.products["Pro"], params={"name": "Pro XL"})
    [renamed] = delivered.flush()
    change = CatalogChange(hooks.products["Pro"], version=renamed["created"])
    fanout = CatalogFanout(store_for_table(TABLE), page_size=3)

    first = fanout.run(change, time_left=lambda: HANDOVER_MARGIN_SECONDS - 1)
    # Short of time: one subscription, then the rest is handed over from there.
    assert (first.updated, first.skipped) == (1, 0)
    assert first.rest is not None
    assert first.rest.after is not None
    assert plan_names(users) == {"Pro", "Pro XL"}

    # A run that failed after this point is retried from the same message: harmless.
    again = fanout.run(first.rest, time_left=lambda: 1000.0)
    assert (again.updated, again.rest) == (6, None)
    assert plan_names(users) == {"Pro XL"}
    fanout.run(first.rest, time_left=lambda: 1000.0)
    assert plan_names(users) == {"Pro XL"}


def test_a_late_subscription_event_never_brings_back_an_older_lookup_key(
    hooks: Account, queue: SqsEventSource
) -> None:
    """A retried subscription event from before the price change copies the stored
    price record, not the older price it carries."""
    delivered = StandinChanges(hooks)
    subscribed_user(hooks, "user-late")
    hour_ago = int(time.time()) - 3600
    for event in delivered.pending():  # the history happened an hour ago
        assert deliver({**event, "created": hour_ago}).status == 200
    old_state = [c for c in hooks.changes() if c["type"] == "customer.subscription.created"][-1]
    hooks.client.v1.prices.update(
        hooks.prices["pro_monthly"], params={"lookup_key": "pro_monthly_v2"}
    )
    delivered.flush()  # the price change, now
    queue.drain()
    assert snapshot("user-late").body["plan"]["lookup_key"] == "pro_monthly_v2"

    late = stripe_event(
        "customer.subscription.updated",
        old_state["object"],  # the price as it was half an hour ago, lookup key and all
        created=hour_ago + 1800,  # newer than the stored subscription: it applies
        event_id="evt_late_retry",
    )
    assert deliver(late).body["outcome"] == "applied"
    assert snapshot("user-late").body["plan"]["lookup_key"] == "pro_monthly_v2"


def test_a_rename_delivered_after_a_later_event_of_the_product_still_reaches_subscribers(
    hooks: Account, queue: SqsEventSource
) -> None:
    delivered = StandinChanges(hooks)
    users = subscribers(hooks, delivered, 2)
    hooks.client.v1.products.update(hooks.products["Pro"], params={"name": "Pro Team"})
    hooks.client.v1.products.update(hooks.products["Pro"], params={"description": "For teams"})
    rename, later = delivered.pending()
    later["created"] = rename["created"] + 1  # the description change came a second later
    assert deliver(later).body["outcome"] == "applied"  # no name change of its own
    assert deliver(rename).body["outcome"] == "stale"
    queue.drain()
    assert plan_names(users) == {"Pro Team"}


def test_a_subscription_written_while_its_product_is_renamed_keeps_the_new_name(
    hooks: Account, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The subscription's transaction checks the product version it copied the name from:
    a rename that commits between its read and its write makes it read again."""
    delivered = StandinChanges(hooks)
    subscription = subscribed_user(hooks, "user-race")
    delivered.flush()
    hooks.client.v1.products.update(hooks.products["Pro"], params={"name": "Renamed meanwhile"})
    [rename] = delivered.pending()
    hooks.client.v1.subscriptions.update(subscription.id, params={"metadata": {"seat": "1"}})
    [update] = delivered.pending()
    assert (rename["type"], update["type"]) == ("product.updated", "customer.subscription.updated")
    update["created"] += 5  # clearly newer than the stored subscription: no same-second retry

    store_type = type(store_for_table(TABLE))
    original = store_type.context
    reads = 0

    def rename_after_the_first_read(self: Any, *args: Any) -> Any:
        nonlocal reads
        read = original(self, *args)
        reads += 1
        if reads == 1:
            assert deliver(rename).body["outcome"] == "applied"
        return read

    monkeypatch.setattr(store_type, "context", rename_after_the_first_read)
    assert deliver(update).body["outcome"] == "applied"
    assert reads >= 3, "the subscription's write was retried after the rename"
    assert snapshot("user-race").body["plan"]["name"] == "Renamed meanwhile"
