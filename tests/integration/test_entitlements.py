"""The user's features in the snapshot: Stripe's entitlement summaries folded in through
the event registry, exactly once and in any order, names copied from the catalog; the
backfill brings entitlements up to date where Stripe sends no event. Webhooks signed as
Stripe signs them, the stand-in as Stripe, moto as DynamoDB."""

from __future__ import annotations

import random
import time
from typing import Any

import pytest

from billing.aws.settings import get_backfill_settings
from functions.backfill.app import run_backfill
from tests.support.portal import snapshot, subscribed_user
from tests.support.stripe_seed import Account
from tests.support.webhooks import StandinChanges, deliver, events_from_changes

SUMMARY = "entitlements.active_entitlement_summary.updated"
EXPORTS = {"lookup_key": "exports", "name": "CSV exports"}
SSO = {"lookup_key": "sso", "name": "Single sign-on"}


@pytest.fixture
def hooks(webhook_deployment: dict[str, Any], account: Account) -> Account:
    """Basic includes exports; Pro includes exports and single sign-on."""
    client = account.client.v1
    ids = {
        feature["lookup_key"]: client.entitlements.features.create(dict(feature)).id  # type: ignore[arg-type]
        for feature in (EXPORTS, SSO)
    }
    client.products.features.create(
        account.products["Basic"], {"entitlement_feature": ids["exports"]}
    )
    for feature_id in ids.values():
        client.products.features.create(
            account.products["Pro"], {"entitlement_feature": feature_id}
        )
    return account


def features(user: str) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = snapshot(user).body["features"]
    return found


def stripe_calls(account: Account) -> list[str]:
    return [f"{r['method']} {r['path']}" for r in account.requests_log()]


def test_features_follow_the_plan_and_are_gone_when_it_ends(hooks: Account) -> None:
    stream = StandinChanges(hooks)
    stream.pending()  # the catalog's own events are not this test's
    assert features("user-features") == []
    subscription = subscribed_user(hooks, "user-features", "basic_monthly")
    hooks.clear_requests_log()

    stream.flush()

    assert f"{SUMMARY}:applied" in stream.outcomes
    assert features("user-features") == [EXPORTS]
    # The feature's name was not in the table yet: read from Stripe once.
    fetched = [c for c in stripe_calls(hooks) if "/v1/entitlements/features/" in c]
    assert len(fetched) == 1

    item = subscription["items"].data[0].id
    hooks.client.v1.subscriptions.update(
        subscription.id, {"items": [{"id": item, "price": hooks.prices["pro_monthly"]}]}
    )
    hooks.clear_requests_log()
    stream.flush()
    assert features("user-features") == [EXPORTS, SSO]
    # Only the feature new to the table is read (once); the known one is copied.
    fetched = [c for c in stripe_calls(hooks) if "/v1/entitlements/features/" in c]
    assert len(fetched) == 1

    hooks.client.v1.subscriptions.cancel(subscription.id)
    stream.flush()
    assert features("user-features") == []


def test_summaries_in_any_order_and_repeated_converge_on_the_last(hooks: Account) -> None:
    subscription = subscribed_user(hooks, "user-shuffled", "basic_monthly")
    item = subscription["items"].data[0].id
    hooks.client.v1.subscriptions.update(
        subscription.id, {"items": [{"id": item, "price": hooks.prices["pro_monthly"]}]}
    )
    summaries = events_from_changes(hooks.changes(), types=(SUMMARY,))
    assert len(summaries) == 2
    others = events_from_changes([c for c in hooks.changes() if c["type"] != SUMMARY])
    for event in others:
        deliver(event)
    # Later summaries carry later versions; each one twice, newest first.
    for offset, event in enumerate(reversed(summaries)):
        event["created"] += len(summaries) - offset
    shuffled = [*reversed(summaries), *summaries]
    random.Random(7).shuffle(shuffled)  # noqa: S311 - a reproducible order, not a secret

    outcomes = [deliver(event).body["outcome"] for event in shuffled]

    assert features("user-shuffled") == [EXPORTS, SSO]
    assert outcomes.count("applied") in (1, 2)
    assert outcomes.count("duplicate") == 2


def test_a_feature_attached_later_reaches_existing_subscribers_through_the_backfill(
    hooks: Account,
) -> None:
    stream = StandinChanges(hooks)
    subscribed_user(hooks, "user-early", "basic_monthly")
    stream.flush()
    assert features("user-early") == [EXPORTS]
    reports = hooks.client.v1.entitlements.features.create(
        {"lookup_key": "reports", "name": "Reports"}
    )
    hooks.client.v1.products.features.create(
        hooks.products["Basic"], {"entitlement_feature": reports.id}
    )
    assert [e for e in stream.flush() if e["type"] == SUMMARY] == []  # Stripe says nothing

    # Run later than the events (they all fall in this test's second).
    report = run_backfill(get_backfill_settings(), replay=False, now=time.time() + 2)["counts"]

    assert report["entitlements"]["applied"] >= 1
    assert features("user-early") == [EXPORTS, {"lookup_key": "reports", "name": "Reports"}]
