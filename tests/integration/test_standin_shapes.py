"""The stand-in answers in Stripe's current object shapes (field names of fixtures3.json)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import requests
import stripe

from billing.stripe_api.client import STRIPE_API_VERSION
from sandbox.stripe_standin.server import StripeStandIn
from sandbox.stripe_standin.shapes import SHAPES_FILE
from tests.support.stripe_seed import seed_account

# Stripe's fixtures, as shipped beside the repository (../shared), or the vendored subset.
SHARED_FIXTURES = Path(__file__).resolve().parents[3] / "shared" / "stripe" / "fixtures3.json"


def reference() -> dict[str, Any]:
    source = SHARED_FIXTURES if SHARED_FIXTURES.exists() else SHAPES_FILE
    resources: dict[str, Any] = json.loads(source.read_text())["resources"]
    return resources


@pytest.mark.skipif(not SHARED_FIXTURES.exists(), reason="../shared is only beside the repo in CI")
def test_vendored_shapes_equal_stripes_fixtures() -> None:
    vendored = json.loads(SHAPES_FILE.read_text())["resources"]
    shared = json.loads(SHARED_FIXTURES.read_text())["resources"]
    assert vendored == {kind: shared[kind] for kind in vendored}


def test_every_object_the_standin_returns_has_stripes_field_names(
    stripe_account: StripeStandIn,
) -> None:
    account = seed_account(stripe_account)
    client = account.client
    customer = client.v1.customers.create(params={"email": "shape@example.com"})
    card = client.v1.payment_methods.attach("pm_card_visa", params={"customer": customer.id})
    client.v1.customers.update(
        customer.id, params={"invoice_settings": {"default_payment_method": card.id}}
    )
    subscription = client.v1.subscriptions.create(
        params={"customer": customer.id, "items": [{"price": account.prices["pro_monthly"]}]}
    )
    intent = client.v1.setup_intents.create(params={"customer": customer.id})
    session = client.v1.billing_portal.sessions.create(
        params={
            "customer": customer.id,
            "configuration": account.configuration,
            "flow_data": {
                "type": "subscription_cancel",
                "subscription_cancel": {"subscription": subscription.id},
            },
        }
    )
    invoice = client.v1.invoices.list(params={"customer": customer.id}).data[0]
    deleted = client.v1.customers.delete(
        client.v1.customers.create(params={"email": "gone@example.com"}).id
    )
    returned: dict[str, stripe.StripeObject] = {
        "customer": client.v1.customers.retrieve(customer.id),
        "deleted_customer": deleted,
        "payment_method": client.v1.payment_methods.retrieve(card.id),
        "product": client.v1.products.retrieve(account.products["Pro"]),
        "price": client.v1.prices.retrieve(account.prices["pro_monthly"]),
        "subscription": client.v1.subscriptions.retrieve(subscription.id),
        "subscription_item": subscription.items.data[0],
        "invoice": client.v1.invoices.retrieve(invoice.id),
        "setup_intent": intent,
        "billing_portal.configuration": client.v1.billing_portal.configurations.retrieve(
            account.configuration
        ),
        "billing_portal.session": session,
    }
    shapes = reference()
    for kind, obj in returned.items():
        data = obj.to_dict()
        assert set(data) == set(shapes[kind]), kind
    sub = returned["subscription"].to_dict()
    assert set(sub["items"]["data"][0]) == set(shapes["subscription_item"])
    assert set(sub["items"]["data"][0]["plan"]) == set(shapes["subscription_item"]["plan"])
    line = returned["invoice"].to_dict()["lines"]["data"][0]
    assert set(line) == set(shapes["invoice"]["lines"]["data"][0])
    config = returned["billing_portal.configuration"].to_dict()
    for feature, settings in shapes["billing_portal.configuration"]["features"].items():
        assert set(config["features"][feature]) == set(settings), feature
    flow = returned["billing_portal.session"].to_dict()["flow"]
    assert set(flow) == set(shapes["billing_portal.session"]["flow"])
    assert set(flow["after_completion"]) == set(
        shapes["billing_portal.session"]["flow"]["after_completion"]
    )


def test_errors_have_stripes_shape_and_status(stripe_account: StripeStandIn) -> None:
    missing = requests.get(
        f"{stripe_account.url}/v1/customers/cus_missing",
        headers={"Authorization": f"Bearer {stripe_account.api_key}"},
        timeout=5,
    )
    assert missing.status_code == 404
    assert missing.json() == {
        "error": {
            "type": "invalid_request_error",
            "code": "resource_missing",
            "param": "id",
            "message": "No such customer: 'cus_missing'",
        }
    }
    unauthenticated = requests.get(f"{stripe_account.url}/v1/customers", timeout=5)
    assert unauthenticated.status_code == 401


def test_idempotency_key_replays_and_refuses_other_parameters(
    stripe_account: StripeStandIn,
) -> None:
    client = stripe.StripeClient(
        stripe_account.api_key,
        stripe_version=STRIPE_API_VERSION,
        base_addresses={"api": stripe_account.url},
    )
    first = client.v1.customers.create(
        params={"email": "a@example.com"}, options={"idempotency_key": "k"}
    )
    again = client.v1.customers.create(
        params={"email": "a@example.com"}, options={"idempotency_key": "k"}
    )
    assert again.id == first.id
    assert len(client.v1.customers.list().data) == 1
    with pytest.raises(stripe.IdempotencyError):
        client.v1.customers.create(
            params={"email": "b@example.com"}, options={"idempotency_key": "k"}
        )


@pytest.mark.parametrize(
    ("features", "param"),
    [
        ({"subscription_cancel": {"enabled": True, "mode": "at_period_end",
                                  "proration_behavior": "create_prorations"}},
         "features[subscription_cancel][proration_behavior]"),
        ({"payment_method_update": {"enabled": False},
          "subscription_update": {"enabled": True, "default_allowed_updates": ["price"],
                                  "products": [{"product": "PRO", "prices": ["PRO_MONTHLY"]}]}},
         "features[subscription_update][enabled]"),
        ({"subscription_cancel": {"enabled": True,
                                  "cancellation_reason": {"enabled": True, "options": ["bored"]}}},
         "features[subscription_cancel][cancellation_reason][options]"),
    ],
)  # fmt: skip
def test_portal_configuration_validation_follows_stripes_rules(
    stripe_account: StripeStandIn, features: dict[str, Any], param: str
) -> None:
    account = seed_account(stripe_account)
    text = json.dumps(features)
    text = text.replace("PRO_MONTHLY", account.prices["pro_monthly"])
    text = text.replace('"PRO"', json.dumps(account.products["Pro"]))
    with pytest.raises(stripe.InvalidRequestError) as raised:
        account.client.v1.billing_portal.configurations.create(
            params={"features": json.loads(text)}
        )
    assert raised.value.param == param


def test_portal_configuration_refuses_more_than_ten_products_and_long_headlines(
    stripe_account: StripeStandIn,
) -> None:
    account = seed_account(stripe_account)
    client = account.client
    products: list[Any] = [
        {"product": client.v1.products.create(params={"name": f"P{i}"}).id, "prices": []}
        for i in range(11)
    ]
    with pytest.raises(stripe.InvalidRequestError) as raised:
        client.v1.billing_portal.configurations.create(
            params={
                "features": {
                    "payment_method_update": {"enabled": True},
                    "subscription_update": {
                        "enabled": True,
                        "default_allowed_updates": ["price"],
                        "products": products,
                    },
                }
            }
        )
    assert raised.value.param == "features[subscription_update][products]"
    with pytest.raises(stripe.InvalidRequestError) as raised:
        client.v1.billing_portal.configurations.create(
            params={"business_profile": {"headline": "h" * 61}, "features": {}}
        )
    assert raised.value.param == "business_profile[headline]"


def test_changes_are_logged_in_order_with_previous_attributes(
    stripe_account: StripeStandIn,
) -> None:
    account = seed_account(stripe_account)
    customer = account.client.v1.customers.create(params={"email": "log@example.com"})
    account.subscribe(customer.id, "basic_monthly")
    subscription = account.client.v1.subscriptions.list(params={"customer": customer.id}).data[0]
    account.client.v1.subscriptions.update(subscription.id, params={"cancel_at_period_end": True})
    changes = account.changes()
    assert [c["seq"] for c in changes] == list(range(1, len(changes) + 1))
    types = [
        c["type"]
        for c in changes
        if c["object"].get("customer") == customer.id or c["object"]["id"] == customer.id
    ]
    assert types[0] == "customer.created"
    assert "customer.subscription.created" in types
    assert "invoice.paid" in types
    update = changes[-1]
    assert update["type"] == "customer.subscription.updated"
    assert update["previous_attributes"]["cancel_at_period_end"] is False
    assert update["object"]["cancel_at"] == subscription.items.data[0].current_period_end


def test_fault_injection_fails_requests_before_any_state_change(
    stripe_account: StripeStandIn,
) -> None:
    account = seed_account(stripe_account)
    before = len(account.changes())
    account.inject_fault(status=500, count=1)
    with pytest.raises(stripe.APIError):
        account.client.v1.customers.create(params={"email": "f@example.com"})
    assert len(account.changes()) == before
    account.inject_fault(status=429, count=1)
    with pytest.raises(stripe.RateLimitError):
        account.client.v1.customers.list()
