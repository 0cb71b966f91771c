"""Backfill: the projection rebuilt from Stripe equals the one webhooks build, and reruns are
harmless; undelivered events are replayed."""

from __future__ import annotations

from typing import Any

import boto3
import pytest

from billing.aws.settings import get_backfill_settings
from functions.backfill.app import lambda_handler, run_backfill
from functions.billing.app import lambda_handler as billing_handler
from tests.conftest import TABLE
from tests.support.events import http_event
from tests.support.lambda_context import LambdaContext, invoke
from tests.support.portal import subscribed_user
from tests.support.stripe_seed import Account
from tests.support.webhooks import deliver, events_from_changes, table_items


@pytest.fixture
def hooks(webhook_deployment: dict[str, Any], account: Account) -> Account:
    return account


def snapshot(user: str) -> dict[str, Any]:
    body: dict[str, Any] = invoke(
        billing_handler, http_event("billing/get_billing", user=user)
    ).body
    body.pop("as_of")
    return body


def _history(account: Account) -> None:
    first = subscribed_user(account, "user-a", "pro_monthly")
    account.client.v1.subscriptions.update(first.id, params={"cancel_at_period_end": True})
    second = subscribed_user(account, "user-b", "basic_monthly")
    account.client.v1.subscriptions.cancel(second.id)


def test_backfill_matches_the_webhook_projection_and_reruns_change_nothing(
    hooks: Account,
) -> None:
    _history(hooks)
    for event in events_from_changes(hooks.changes()):
        assert deliver(event).status == 200
    expected = {user: snapshot(user) for user in ("user-a", "user-b")}
    assert expected["user-a"]["cancels_at"] is not None

    # Wipe the projection (keep the links the session function wrote) and rebuild.
    client = boto3.client("dynamodb")
    for item in table_items(TABLE):
        if item["sk"]["S"] != "LINK":
            client.delete_item(TableName=TABLE, Key={"pk": item["pk"], "sk": item["sk"]})
    assert snapshot("user-a")["status"] == "none"

    report = run_backfill(get_backfill_settings(), replay=False)["counts"]
    assert report["subscription"] == {"applied": 2}
    assert {user: snapshot(user) for user in expected} == expected

    before = table_items(TABLE)
    rerun = lambda_handler({"replay": False}, LambdaContext())["counts"]  # type: ignore[arg-type]
    assert set(rerun["subscription"]) <= {"applied", "stale", "duplicate"}
    assert {user: snapshot(user) for user in expected} == expected
    assert len(table_items(TABLE)) >= len(before)


def test_undelivered_events_are_replayed_once(hooks: Account) -> None:
    # An endpoint that always fails: every event stays undelivered.
    hooks.standin.configure_deliveries(retry_schedule=[])
    hooks.client.v1.webhook_endpoints.create(
        params={"url": "http://127.0.0.1:9/", "enabled_events": ["*"]}
    )
    subscribed_user(hooks, "user-a", "pro_monthly")
    hooks.standin.wait_idle()
    undelivered = hooks.client.v1.events.list(params={"delivery_success": False}).data
    assert undelivered

    report = run_backfill(get_backfill_settings(), replay=True)["counts"]
    assert report["replayed_event"].get("applied", 0) + report["replayed_event"].get("stale", 0) > 0
    assert snapshot("user-a")["plan"]["lookup_key"] == "pro_monthly"
    again = run_backfill(get_backfill_settings(), replay=True)["counts"]
    assert set(again["replayed_event"]) <= {"duplicate", "ignored"}
