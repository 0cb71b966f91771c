"""The Stripe-facing scenarios, end to end through the product's own handlers.

``make test`` runs them against the stand-in; ``make test-stripe`` runs the same code
against a real Stripe test-mode account (``tests/contract/conftest.py``), so a user
can check that their account behaves as the product expects: customer creation, a
session for every portal flow, a SetupIntent, the portal configuration and webhook
endpoint resources through create/update/delete, a subscription's life delivered as
webhooks, and the backfill.
"""

from __future__ import annotations

import json
import time
from typing import Any

import boto3
import pytest
import stripe

from billing.aws.settings import get_backfill_settings
from billing.projection.registry import HANDLED_EVENT_TYPES
from billing.stripe_api.client import STRIPE_API_VERSION
from functions.backfill.app import run_backfill
from functions.billing.app import lambda_handler as billing_handler
from functions.portal_session.app import lambda_handler as session_handler
from sandbox.cloudformation import ResponseReceiver
from tests.conftest import TABLE, forget_cached_clients
from tests.contract.conftest import Contract
from tests.support.cloudformation import DeadlineContext, cfn_event, fresh_module
from tests.support.events import http_event
from tests.support.lambda_context import invoke
from tests.support.portal import STRIPE_ID, link_of, post
from tests.support.webhooks import deliver, table_items


def customer_of(contract: Contract, user: str) -> str:
    """The customer the product linked to ``user``; deleted when the scenario ends."""
    customer = link_of(user)
    assert customer is not None
    contract.on_cleanup(lambda: _delete_customer(contract, customer))
    return customer


def _delete_customer(contract: Contract, customer: str) -> None:
    try:
        contract.client.v1.customers.delete(customer)
    except stripe.InvalidRequestError as error:
        if error.code != "resource_missing":
            raise


def subscribe(contract: Contract, customer: str, plan: str, *, flexible: bool = False) -> Any:
    api = contract.client.v1
    card = api.payment_methods.attach("pm_card_visa", params={"customer": customer})
    api.customers.update(customer, params={"invoice_settings": {"default_payment_method": card.id}})
    params: stripe.params.SubscriptionCreateParams = {
        "customer": customer,
        "items": [{"price": contract.prices[plan]}],
    }
    if flexible:
        params["billing_mode"] = {"type": "flexible"}
    return api.subscriptions.create(params=params)


def portal_configuration(
    contract: Contract, receiver: ResponseReceiver, request_type: str = "Create", **extra: Any
) -> dict[str, Any]:
    """Custom::PortalConfiguration, run as CloudFormation runs it, for this run's catalog."""
    name = f"portal_config/{request_type.lower()}"
    physical = extra.pop("PhysicalResourceId", None)
    event = cfn_event(name, receiver)
    if physical is not None:
        event["PhysicalResourceId"] = physical
    properties = event["ResourceProperties"]
    properties["Name"] = f"contract {contract.run_id}"
    properties["Metadata"] = {"contract_run": contract.run_id}
    features = properties["Features"]
    features["SubscriptionUpdate"]["Products"] = [
        {"Prices": [contract.lookup_key("basic"), contract.lookup_key("pro")]}
    ]
    features["SubscriptionPause"] = {"Enabled": "true", "Durations": "1 month"}
    properties.update(extra)
    if request_type != "Create":
        event["OldResourceProperties"] = properties
    with fresh_module("functions.portal_config.app") as module:
        module.lambda_handler(event, DeadlineContext(60))
    return receiver.answers[-1].body


# --- customers and portal sessions -------------------------------------------------------------


def test_a_session_for_every_portal_flow(
    contract: Contract, receiver: ResponseReceiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    created = portal_configuration(contract, receiver)
    assert created["Status"] == "SUCCESS", created.get("Reason")
    configuration = created["PhysicalResourceId"]
    contract.on_cleanup(
        lambda: contract.client.v1.billing_portal.configurations.update(
            configuration, params={"active": False}
        )
    )
    monkeypatch.setenv("PORTAL_CONFIGURATION_ID", configuration)
    forget_cached_clients()

    user = contract.user("flows")
    home = post({}, user=user)
    assert home.status == 200, home.raw
    assert not STRIPE_ID.search(home.raw)
    customer = customer_of(contract, user)
    subscribe(contract, customer, "basic", flexible=True)

    bodies: list[dict[str, Any]] = [
        {"flow": "payment_method_update"},
        {"flow": "customer_update"},
        {"flow": "subscription_update"},
        {"flow": "subscription_update_confirm", "plan": contract.lookup_key("pro")},
        {"flow": "subscription_pause"},
        {"flow": "subscription_cancel", "after_completion": "hosted_confirmation"},
    ]
    for body in bodies:
        result = post(body, user=user)
        assert result.status == 200, (body, result.raw)
        assert result.body["url"].startswith("http")

    # The resource's update and delete, as a later deploy and a stack delete run them.
    updated = portal_configuration(
        contract,
        receiver,
        "Update",
        PhysicalResourceId=configuration,
        BusinessProfile={"Headline": "Contract run"},
    )
    assert updated["Status"] == "SUCCESS", updated.get("Reason")
    config = contract.client.v1.billing_portal.configurations.retrieve(configuration)
    assert config.business_profile.headline == "Contract run"
    deleted = portal_configuration(contract, receiver, "Delete", PhysicalResourceId=configuration)
    assert deleted["Status"] == "SUCCESS", deleted.get("Reason")
    assert contract.client.v1.billing_portal.configurations.retrieve(configuration).active is False


def test_a_setup_intent_for_a_new_customer(contract: Contract) -> None:
    user = contract.user("card")
    result = invoke(session_handler, http_event("portal_session/post_setup_intent", user=user))
    assert result.status == 200, result.raw
    customer = customer_of(contract, user)
    intent_id = result.body["client_secret"].split("_secret_")[0]
    intent = contract.client.v1.setup_intents.retrieve(intent_id)
    assert intent.customer == customer
    assert intent.to_dict()["metadata"].get("purpose") == "default_payment_method"


# --- the webhook endpoint resource -------------------------------------------------------------


def test_the_webhook_endpoint_resource_creates_updates_and_deletes(
    contract: Contract, receiver: ResponseReceiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    secret = boto3.client("secretsmanager").create_secret(
        Name=f"WebhookSigningSecret-{contract.run_id}", SecretString="GeneratedPlaceholder"
    )["ARN"]
    url = f"https://example.com/{contract.run_id}/webhooks/stripe"
    properties = {"Url": url, "SecretId": secret, "Description": f"contract {contract.run_id}"}

    def run(kind: str, **fields: Any) -> dict[str, Any]:
        event = cfn_event(f"webhook_endpoint/{kind}", receiver, **fields)
        for key in ("ResourceProperties", "OldResourceProperties"):
            if key in event:
                event[key] = {**event[key], **properties}
        with fresh_module("functions.webhook_endpoint.app") as module:
            module.lambda_handler(event, DeadlineContext(60))
        return receiver.answers[-1].body

    created = run("create")
    assert created["Status"] == "SUCCESS", created.get("Reason")
    endpoint_id = created["PhysicalResourceId"]
    contract.on_cleanup(lambda: _delete_endpoint(contract, endpoint_id))
    endpoint = contract.client.v1.webhook_endpoints.retrieve(endpoint_id)
    assert endpoint.url == url
    assert endpoint.api_version == STRIPE_API_VERSION
    assert sorted(endpoint.enabled_events) == sorted(HANDLED_EVENT_TYPES)
    stored = boto3.client("secretsmanager").get_secret_value(SecretId=secret)["SecretString"]
    assert stored.startswith(f"{endpoint_id}=whsec_")

    properties["Description"] = f"contract {contract.run_id}, updated"
    updated = run("update", PhysicalResourceId=endpoint_id)
    assert updated["Status"] == "SUCCESS", updated.get("Reason")
    description = contract.client.v1.webhook_endpoints.retrieve(endpoint_id).description
    assert (description or "").endswith("updated")
    deleted = run("delete", PhysicalResourceId=endpoint_id)
    assert deleted["Status"] == "SUCCESS", deleted.get("Reason")
    with pytest.raises(stripe.InvalidRequestError):
        contract.client.v1.webhook_endpoints.retrieve(endpoint_id)


def _delete_endpoint(contract: Contract, endpoint_id: str) -> None:
    try:
        contract.client.v1.webhook_endpoints.delete(endpoint_id)
    except stripe.InvalidRequestError as error:
        if error.code != "resource_missing":
            raise


# --- a subscription's life, delivered as webhooks; then the backfill ---------------------------


def events_of(contract: Contract, customer: str, since: int) -> list[dict[str, Any]]:
    """The account's events about ``customer`` since ``since``, oldest first, as Stripe
    would have delivered them (rendered in the account's own API version)."""
    page = contract.client.v1.events.list(params={"created": {"gte": since}, "limit": 100})
    found = []
    for event in page.auto_paging_iter():
        raw = json.loads(json.dumps(event.to_dict(), default=str))
        obj = raw["data"]["object"]
        if customer in (obj.get("customer"), obj.get("id")):
            found.append(raw)
    return sorted(found, key=lambda e: (e["created"], e["id"]))


def deliver_all(events: list[dict[str, Any]]) -> list[str]:
    outcomes = []
    for event in events:
        result = deliver(event)
        assert result.status == 200, (event["type"], result.raw)
        outcomes.append(result.body["outcome"])
    return outcomes


def snapshot(user: str) -> dict[str, Any]:
    result = invoke(billing_handler, http_event("billing/get_billing", user=user))
    assert result.status == 200, result.raw
    body: dict[str, Any] = result.body
    return body


def test_a_subscription_life_as_webhooks_then_the_backfill(contract: Contract) -> None:
    since = int(time.time()) - 5
    user = contract.user("life")
    assert post({}, user=user).status == 200
    customer = customer_of(contract, user)
    subscription = subscribe(contract, customer, "basic")
    outcomes = deliver_all(_settled(contract, customer, since, "invoice.paid"))
    assert "applied" in outcomes
    live = snapshot(user)
    assert live["status"] == "active"
    assert live["plan"]["lookup_key"] == contract.lookup_key("basic")
    assert live["renews_at"] is not None
    assert live["invoices"]["data"], "the first invoice"

    contract.client.v1.subscriptions.update(subscription.id, params={"cancel_at_period_end": True})
    deliver_all(events_of(contract, customer, since))  # redeliveries are duplicates
    cancelling = snapshot(user)
    assert cancelling["cancels_at"] is not None
    assert cancelling["renews_at"] is None

    # Lose the projection of this user, then rebuild it from Stripe.
    dynamodb = boto3.client("dynamodb")
    for item in table_items(TABLE):
        if item["pk"]["S"] == f"USER#{user}" and item["sk"]["S"] != "LINK":
            dynamodb.delete_item(TableName=TABLE, Key={"pk": item["pk"], "sk": item["sk"]})
    assert snapshot(user)["status"] == "none"
    report = run_backfill(get_backfill_settings(), replay=False)
    assert report["counts"]["subscription"].get("applied", 0) >= 1
    rebuilt = snapshot(user)
    assert rebuilt["status"] == "active"
    assert rebuilt["cancels_at"] == cancelling["cancels_at"]


def _settled(contract: Contract, customer: str, since: int, last: str) -> list[dict[str, Any]]:
    """The customer's events once ``last`` is among them (Stripe writes events async)."""
    deadline = time.monotonic() + 30
    while True:
        events = events_of(contract, customer, since)
        if any(e["type"] == last for e in events) or time.monotonic() > deadline:
            return events
        time.sleep(1)
