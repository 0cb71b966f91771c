"""The stand-in's entitlements follow Stripe's rules (stripe-python's params types,
Stripe's Entitlements guide): features, features attached to products, and customers'
active entitlements that follow their subscriptions, with the summary event. Through
stripe-python against its HTTP API."""

from __future__ import annotations

from typing import Any

import pytest
import stripe

from sandbox.stripe_standin.server import StripeStandIn
from tests.support.stripe_seed import Account, seed_account

SUMMARY = "entitlements.active_entitlement_summary.updated"


@pytest.fixture
def shop(stripe_account: StripeStandIn) -> Account:
    account = seed_account(stripe_account)
    client = account.client.v1
    features = {
        key: client.entitlements.features.create({"lookup_key": key, "name": name}).id
        for key, name in (("exports", "CSV exports"), ("sso", "Single sign-on"))
    }
    client.products.features.create(
        account.products["Basic"], {"entitlement_feature": features["exports"]}
    )
    for feature in features.values():
        client.products.features.create(account.products["Pro"], {"entitlement_feature": feature})
    return account


def summaries(shop: Account) -> list[list[str]]:
    """The lookup keys each summary event carried, oldest first."""
    return [
        [e["lookup_key"] for e in change["object"]["entitlements"]["data"]]
        for change in shop.standin.state.changes
        if change["type"] == SUMMARY
    ]


def active(shop: Account, customer_id: str) -> list[str]:
    listed = shop.client.v1.entitlements.active_entitlements.list({"customer": customer_id})
    return [e.lookup_key for e in listed.data]


@pytest.mark.parametrize(
    ("params", "param"),
    [
        ({"name": "No key"}, "lookup_key"),
        ({"lookup_key": "no_name"}, "name"),
        ({"lookup_key": "k" * 81, "name": "Too long"}, "lookup_key"),
        ({"lookup_key": "exports", "name": "Taken"}, "lookup_key"),
        ({"lookup_key": "x", "name": "X", "colour": "red"}, "colour"),
    ],
)
def test_a_feature_follows_stripe_s_rules(
    shop: Account, params: dict[str, Any], param: str
) -> None:
    with pytest.raises(stripe.InvalidRequestError) as refused:
        shop.client.v1.entitlements.features.create(params)  # type: ignore[arg-type]
    assert refused.value.param == param


def test_an_archived_feature_is_listed_apart_and_cannot_be_attached(shop: Account) -> None:
    client = shop.client.v1
    old = client.entitlements.features.create({"lookup_key": "legacy", "name": "Legacy"})
    client.entitlements.features.update(old.id, {"active": False})

    assert "legacy" not in [f.lookup_key for f in client.entitlements.features.list().data]
    archived = client.entitlements.features.list({"archived": True}).data
    assert [f.lookup_key for f in archived] == ["legacy"]
    with pytest.raises(stripe.InvalidRequestError, match="archived"):
        client.products.features.create(shop.products["Pro"], {"entitlement_feature": old.id})


def test_a_feature_is_attached_to_a_product_once(shop: Account) -> None:
    attached = shop.client.v1.products.features.list(shop.products["Basic"]).data
    assert [a.entitlement_feature.lookup_key for a in attached] == ["exports"]
    with pytest.raises(stripe.InvalidRequestError, match="already attached"):
        shop.client.v1.products.features.create(
            shop.products["Basic"], {"entitlement_feature": attached[0].entitlement_feature.id}
        )


def test_entitlements_follow_the_subscription_with_a_summary_event_each_time(
    shop: Account,
) -> None:
    client = shop.client.v1
    customer = client.customers.create({"email": "ent@example.com"})
    subscription = shop.subscribe(customer.id, "basic_monthly")
    assert active(shop, customer.id) == ["exports"]

    item = subscription["items"].data[0].id
    client.subscriptions.update(
        subscription.id, {"items": [{"id": item, "price": shop.prices["pro_monthly"]}]}
    )
    assert active(shop, customer.id) == ["exports", "sso"]
    client.subscriptions.update(subscription.id, {"metadata": {"note": "no change"}})

    client.subscriptions.cancel(subscription.id)

    assert active(shop, customer.id) == []
    assert summaries(shop) == [["exports"], ["exports", "sso"], []]
    (last,) = [c for c in shop.standin.state.changes if c["type"] == SUMMARY][-1:]
    assert last["object"]["customer"] == customer.id
    assert [e["lookup_key"] for e in last["previous_attributes"]["entitlements"]["data"]] == [
        "exports",
        "sso",
    ]


def test_attaching_a_feature_entitles_existing_subscribers_without_an_event(
    shop: Account,
) -> None:
    client = shop.client.v1
    customer = client.customers.create({"email": "early@example.com"})
    shop.subscribe(customer.id, "basic_monthly")
    events_before = len(summaries(shop))
    reports = client.entitlements.features.create({"lookup_key": "reports", "name": "Reports"})

    client.products.features.create(shop.products["Basic"], {"entitlement_feature": reports.id})

    assert active(shop, customer.id) == ["exports", "reports"]
    assert len(summaries(shop)) == events_before  # Stripe's pitfall: nobody is told
    attached = client.products.features.list(shop.products["Basic"]).data
    detach = next(a for a in attached if a.entitlement_feature.lookup_key == "reports")
    assert client.products.features.delete(shop.products["Basic"], detach.id).deleted
    assert active(shop, customer.id) == ["exports"]
