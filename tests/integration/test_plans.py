"""GET /plans: the plans this deployment sells, for a pricing table, from the catalog the
webhooks keep in DynamoDB: public, cacheable, no Stripe call, no Stripe ids."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest

from billing.aws.settings import get_backfill_settings
from functions.backfill.app import run_backfill
from functions.billing.app import lambda_handler
from tests.conftest import forget_cached_clients
from tests.support.events import http_event
from tests.support.lambda_context import HttpResult, invoke
from tests.support.portal import STRIPE_ID
from tests.support.stripe_seed import Account
from tests.support.webhooks import deliver, events_from_changes

OFFERED = "pro_monthly,basic_monthly,pro_yearly"


@pytest.fixture
def shop(
    webhook_deployment: dict[str, Any], account: Account, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Account]:
    """Selling three plans with a 14-day trial; the catalog's events have reached the table."""
    monkeypatch.setenv("PLAN_LOOKUP_KEYS", OFFERED)
    monkeypatch.setenv("CHECKOUT_TRIAL_DAYS", "14")
    forget_cached_clients()
    deliver_changes(account)
    account.clear_requests_log()
    yield account
    forget_cached_clients()


def deliver_changes(account: Account) -> None:
    for event in events_from_changes(account.changes()):
        assert deliver(event).status == 200


def plans(if_none_match: str | None = None) -> HttpResult:
    event = http_event("billing/get_plans")
    if if_none_match:
        event["headers"]["if-none-match"] = if_none_match
    return invoke(lambda_handler, event)


def test_a_visitor_sees_the_offered_plans_in_the_deployments_order(shop: Account) -> None:
    result = plans()  # no token: the sample event has no authorizer

    assert result.status == 200, result.raw
    assert result.body == {
        "data": [
            {
                "plan": "pro_monthly",
                "name": "Pro",
                "description": None,
                "amount": 2900,
                "currency": "usd",
                "interval": "month",
                "interval_count": 1,
                "trial_days": 14,
                "features": [],
            },
            {
                "plan": "basic_monthly",
                "name": "Basic",
                "description": None,
                "amount": 900,
                "currency": "usd",
                "interval": "month",
                "interval_count": 1,
                "trial_days": 14,
                "features": [],
            },
            {
                "plan": "pro_yearly",
                "name": "Pro",
                "description": None,
                "amount": 29000,
                "currency": "usd",
                "interval": "year",
                "interval_count": 1,
                "trial_days": 14,
                "features": [],
            },
        ]
    }
    assert not STRIPE_ID.search(result.raw)
    assert shop.requests_log() == []  # read from DynamoDB only


def test_a_browser_or_cdn_may_keep_it_and_revalidate(shop: Account) -> None:
    first = plans()
    assert first.headers["cache-control"] == "public, max-age=60"
    assert "vary" not in {name.lower() for name in first.headers}

    again = plans(if_none_match=first.headers["etag"])

    assert again.status == 304
    assert again.raw in ("", None) or not again.body


def test_catalog_changes_in_stripe_show_after_their_events(shop: Account) -> None:
    client = shop.client.v1
    shop.a_second_later()
    client.products.update(
        shop.products["Pro"], {"name": "Pro Plus", "description": "Everything, sooner"}
    )
    # A new yearly price takes over the key: Stripe's way to change an amount.
    client.prices.create(
        {
            "product": shop.products["Pro"],
            "currency": "usd",
            "unit_amount": 24000,
            "recurring": {"interval": "year"},
            "lookup_key": "pro_yearly",
            "transfer_lookup_key": True,
        }
    )
    client.prices.update(shop.prices["basic_monthly"], {"active": False})  # archived
    deliver_changes(shop)

    body = plans().body

    assert [(p["plan"], p["name"], p["amount"]) for p in body["data"]] == [
        ("pro_monthly", "Pro Plus", 2900),
        ("pro_yearly", "Pro Plus", 24000),
    ]
    assert body["data"][0]["description"] == "Everything, sooner"


def test_only_offered_plans_are_listed_and_unknown_ones_are_left_out(
    shop: Account, monkeypatch: pytest.MonkeyPatch
) -> None:
    # enterprise_monthly exists in Stripe but is sold by the sales team, not by Checkout;
    # gold_monthly is offered by the template but exists nowhere yet.
    monkeypatch.setenv("PLAN_LOOKUP_KEYS", "gold_monthly,basic_monthly")
    monkeypatch.setenv("CHECKOUT_TRIAL_DAYS", "0")
    forget_cached_clients()

    body = plans().body

    assert [(p["plan"], p["trial_days"]) for p in body["data"]] == [("basic_monthly", None)]


def test_a_deployment_that_sells_nothing_lists_nothing(
    shop: Account, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("PLAN_LOOKUP_KEYS")
    forget_cached_clients()

    assert plans().body == {"data": []}


def test_each_plan_lists_the_features_its_product_includes(shop: Account) -> None:
    api = shop.client.v1
    exports = api.entitlements.features.create({"lookup_key": "exports", "name": "CSV exports"})
    sso = api.entitlements.features.create({"lookup_key": "sso", "name": "Single sign-on"})
    legacy = api.entitlements.features.create({"lookup_key": "legacy", "name": "Old thing"})
    for feature in (exports, sso, legacy):
        api.products.features.create(shop.products["Pro"], {"entitlement_feature": feature.id})
    api.products.features.create(shop.products["Basic"], {"entitlement_feature": exports.id})
    api.entitlements.features.update(legacy.id, {"active": False})  # archived: not shown
    # Stripe sends no event for features: the backfill (or the catalog resource) stores them.
    run_backfill(get_backfill_settings(), replay=False, now=time.time() + 2)
    shop.clear_requests_log()

    offered = {plan["plan"]: plan["features"] for plan in plans().body["data"]}

    both = [
        {"lookup_key": "exports", "name": "CSV exports"},
        {"lookup_key": "sso", "name": "Single sign-on"},
    ]
    assert offered == {"pro_monthly": both, "basic_monthly": both[:1], "pro_yearly": both}
    assert shop.requests_log() == []
