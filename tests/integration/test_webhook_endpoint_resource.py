"""Custom::StripeWebhookEndpoint driven by CloudFormation events: stand-in, moto, a real delivery.

The endpoint is registered on the Stripe stand-in, its signing secret lands in
a Secrets Manager secret in moto (created as the template's
``WebhookSigningSecret`` is: a generated placeholder), and the webhook function,
reading that secret, verifies what the stand-in then delivers.
"""

from __future__ import annotations

from collections.abc import Iterator
from types import ModuleType
from typing import Any

import boto3
import pytest

from billing.projection.registry import HANDLED_EVENT_TYPES, REGISTRY
from billing.stripe_api.client import STRIPE_API_VERSION
from sandbox.cloudformation import ResponseReceiver
from tests.conftest import TABLE, forget_cached_clients
from tests.support.cloudformation import (
    DeadlineContext,
    cfn_event,
    fresh_module,
    sample_event,
)
from tests.support.portal import link_of
from tests.support.stripe_seed import Account
from tests.support.webhooks import table_items, webhook_route


@pytest.fixture
def signing_secret(account: Account, monkeypatch: pytest.MonkeyPatch) -> str:
    """The stack's signing-secret secret (its ARN), wired to the webhook function."""
    arn = boto3.client("secretsmanager").create_secret(
        Name="WebhookSigningSecret-Ab12Cd34", SecretString="GeneratedPlaceholder0123456789ab"
    )["ARN"]
    monkeypatch.setenv("WEBHOOK_SECRET_NAME", arn)
    forget_cached_clients()
    return arn


@pytest.fixture
def function(signing_secret: str) -> Iterator[ModuleType]:
    with fresh_module("functions.webhook_endpoint.app") as module:
        yield module


def request(
    kind: str, receiver: ResponseReceiver, secret_arn: str, **properties: Any
) -> dict[str, Any]:
    event = cfn_event(f"webhook_endpoint/{kind}", receiver)
    for key in ("ResourceProperties", "OldResourceProperties"):
        if key in event:
            event[key] = {**event[key], "SecretId": secret_arn}
    event["ResourceProperties"].update(properties)
    return event


def run(module: ModuleType, event: dict[str, Any]) -> dict[str, Any]:
    receiver_answers = module.lambda_handler(event, DeadlineContext(60))
    assert receiver_answers in ("SUCCESS", "FAILED")
    return event


def stored_entries(secret_arn: str) -> list[str]:
    value = boto3.client("secretsmanager").get_secret_value(SecretId=secret_arn)["SecretString"]
    return value.split(",")


def endpoints(account: Account) -> dict[str, Any]:
    listed = account.client.v1.webhook_endpoints.list({"limit": 100}).data
    return {e.id: e for e in listed}


def create_endpoint(
    function: ModuleType, receiver: ResponseReceiver, secret_arn: str, **properties: Any
) -> dict[str, Any]:
    run(function, request("create", receiver, secret_arn, **properties))
    answer = receiver.only_answer()
    receiver.answers.clear()
    return answer


def test_create_registers_the_handled_events_on_the_pinned_version_and_stores_the_secret(
    function: ModuleType, receiver: ResponseReceiver, signing_secret: str, account: Account
) -> None:
    answer = create_endpoint(function, receiver, signing_secret)

    assert answer["Status"] == "SUCCESS", answer["Reason"]
    endpoint_id = answer["PhysicalResourceId"]
    endpoint = endpoints(account)[endpoint_id]
    assert endpoint.url == sample_event("webhook_endpoint/create")["ResourceProperties"]["Url"]
    assert endpoint.api_version == STRIPE_API_VERSION
    assert endpoint.enabled_events == list(HANDLED_EVENT_TYPES)
    assert answer["Data"]["EndpointId"] == endpoint_id
    assert answer["Data"]["ApiVersion"] == STRIPE_API_VERSION
    # The placeholder is gone; the only entry is this endpoint's secret.
    [entry] = stored_entries(signing_secret)
    assert entry.startswith(f"{endpoint_id}=whsec_")
    # The secret is never in the answer CloudFormation keeps and shows.
    assert "whsec_" not in str(answer)


def test_the_endpoint_subscribes_to_exactly_the_registry() -> None:
    assert sorted(HANDLED_EVENT_TYPES) == sorted(REGISTRY)
    assert len(set(HANDLED_EVENT_TYPES)) == len(HANDLED_EVENT_TYPES)


def test_the_webhook_function_verifies_deliveries_with_the_stored_secret(
    function: ModuleType, receiver: ResponseReceiver, signing_secret: str, account: Account
) -> None:
    with webhook_route() as url:
        answer = create_endpoint(function, receiver, signing_secret, Url=url)
        assert answer["Status"] == "SUCCESS", answer["Reason"]

        customer = account.client.v1.customers.create(
            {"email": "ada@example.com", "metadata": {"user_id": "user-0001"}}
        )
        account.standin.wait_idle(timeout=20)

    attempts = [
        d for d in account.standin.deliveries() if d.endpoint == answer["PhysicalResourceId"]
    ]
    assert attempts, "the stand-in delivered to the registered endpoint"
    assert all(d.status == 200 for d in attempts), [(d.event, d.status) for d in attempts]
    assert link_of("user-0001") == customer.id
    assert any(item["pk"]["S"].startswith("EVENT#") for item in table_items(TABLE))


def test_update_changes_url_in_place_and_keeps_id_and_secret(
    function: ModuleType, receiver: ResponseReceiver, signing_secret: str, account: Account
) -> None:
    endpoint_id = create_endpoint(function, receiver, signing_secret)["PhysicalResourceId"]
    before = stored_entries(signing_secret)
    event = request("update", receiver, signing_secret)
    event["PhysicalResourceId"] = endpoint_id

    run(function, event)

    answer = receiver.only_answer()
    assert answer["Status"] == "SUCCESS", answer["Reason"]
    assert answer["PhysicalResourceId"] == endpoint_id
    assert endpoints(account)[endpoint_id].url == "https://billing.example.com/webhooks/stripe"
    assert stored_entries(signing_secret) == before


def test_rotation_registers_a_new_endpoint_and_both_secrets_verify_until_the_old_one_goes(
    function: ModuleType, receiver: ResponseReceiver, signing_secret: str, account: Account
) -> None:
    old_id = create_endpoint(function, receiver, signing_secret)["PhysicalResourceId"]
    event = request("update", receiver, signing_secret, SecretRotation="2026-11-21")
    event["OldResourceProperties"]["Url"] = event["ResourceProperties"]["Url"]
    event["PhysicalResourceId"] = old_id

    run(function, event)

    answer = receiver.only_answer()
    assert answer["Status"] == "SUCCESS", answer["Reason"]
    new_id = answer["PhysicalResourceId"]
    assert new_id != old_id
    assert [e.split("=")[0] for e in stored_entries(signing_secret)] == [new_id, old_id]

    # CloudFormation's clean-up: Delete of the old physical id, with the old properties.
    receiver.answers.clear()
    delete = request("delete", receiver, signing_secret)
    delete["PhysicalResourceId"] = old_id
    run(function, delete)

    assert receiver.only_answer()["Status"] == "SUCCESS"
    assert set(endpoints(account)) == {new_id}
    assert [e.split("=")[0] for e in stored_entries(signing_secret)] == [new_id]


def test_an_endpoint_on_an_older_api_version_is_replaced(
    function: ModuleType, receiver: ResponseReceiver, signing_secret: str, account: Account
) -> None:
    old = account.client.v1.webhook_endpoints.create(
        {
            "url": "https://old.example.com/hook",
            "enabled_events": ["*"],
            "api_version": "2025-03-31.basil",
        }
    )
    event = request("update", receiver, signing_secret)
    event["PhysicalResourceId"] = old.id

    run(function, event)

    answer = receiver.only_answer()
    assert answer["Status"] == "SUCCESS", answer["Reason"]
    assert answer["PhysicalResourceId"] != old.id
    assert endpoints(account)[answer["PhysicalResourceId"]].api_version == STRIPE_API_VERSION


def test_delete_removes_the_endpoint_and_a_second_delete_succeeds(
    function: ModuleType, receiver: ResponseReceiver, signing_secret: str, account: Account
) -> None:
    endpoint_id = create_endpoint(function, receiver, signing_secret)["PhysicalResourceId"]
    for _ in range(2):
        event = request("delete", receiver, signing_secret)
        event["PhysicalResourceId"] = endpoint_id
        run(function, event)
        answer = receiver.only_answer()
        receiver.answers.clear()
        assert answer["Status"] == "SUCCESS", answer["Reason"]
        assert endpoint_id not in endpoints(account)


def test_delete_after_a_failed_create_succeeds_without_calling_stripe(
    function: ModuleType, receiver: ResponseReceiver, signing_secret: str, account: Account
) -> None:
    event = request("delete", receiver, signing_secret)
    event["PhysicalResourceId"] = "not-created"

    run(function, event)

    assert receiver.only_answer()["Status"] == "SUCCESS"
    assert account.requests_log() == []


def test_a_secret_that_cannot_be_written_fails_and_leaves_no_endpoint(
    function: ModuleType, receiver: ResponseReceiver, signing_secret: str, account: Account
) -> None:
    missing = signing_secret.replace("Ab12Cd34", "Gone0000")

    run(function, request("create", receiver, missing))

    answer = receiver.only_answer()
    assert answer["Status"] == "FAILED"
    assert "Could not store the signing secret" in answer["Reason"]
    assert "ResourceNotFoundException" in answer["Reason"]
    assert endpoints(account) == {}


def test_stripe_unreachable_fails_once_with_a_retry_hint(
    function: ModuleType, receiver: ResponseReceiver, signing_secret: str, account: Account
) -> None:
    account.inject_fault(status=500, count=20)

    run(function, request("create", receiver, signing_secret))

    answer = receiver.only_answer()
    assert answer["Status"] == "FAILED"
    assert "retry the deploy" in answer["Reason"]
    assert stored_entries(signing_secret) == ["GeneratedPlaceholder0123456789ab"]


def test_an_invalid_url_fails_before_any_stripe_call(
    function: ModuleType, receiver: ResponseReceiver, signing_secret: str, account: Account
) -> None:
    run(function, request("create", receiver, signing_secret, Url="ftp://example.com/hook"))

    answer = receiver.only_answer()
    assert answer["Status"] == "FAILED"
    assert "Url: must be an https:// URL" in answer["Reason"]
    assert account.requests_log() == []


def test_an_initialisation_failure_answers_failed(
    signing_secret: str,
    receiver: ResponseReceiver,
    account: Account,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("STRIPE_MAX_NETWORK_RETRIES", "many")
    forget_cached_clients()
    with fresh_module("functions.webhook_endpoint.app") as function:
        run(function, request("create", receiver, signing_secret))

    answer = receiver.only_answer()
    assert answer["Status"] == "FAILED"
    assert "failed to initialise" in answer["Reason"]
    assert "STRIPE_MAX_NETWORK_RETRIES" in answer["Reason"]
    assert account.requests_log() == []
