"""Custom::PortalConfiguration driven by CloudFormation events against the Stripe stand-in.

Each test invokes the function in-process with an event from
``events/portal_config/`` whose ResponseURL points at a local HTTP server, and
checks the one answer CloudFormation would receive and the configuration the
stand-in holds afterwards.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Iterator
from types import ModuleType
from typing import Any

import boto3
import pytest

from billing.provisioning.portal_config import parse_portal_configuration
from sandbox.cloudformation import ResponseReceiver
from tests.conftest import forget_cached_clients
from tests.support.aws import template
from tests.support.cloudformation import (
    DeadlineContext,
    cfn_event,
    fresh_module,
    sample_event,
)
from tests.support.stripe_seed import Account


@pytest.fixture
def function(account: Account) -> Iterator[ModuleType]:
    """The portal-config function, initialised against the deployment's environment."""
    with fresh_module("functions.portal_config.app") as module:
        yield module


def run(module: ModuleType, event: dict[str, Any], *, seconds: float = 60.0) -> str:
    status: str = module.lambda_handler(event, DeadlineContext(seconds))
    return status


def properties(**features: Any) -> dict[str, Any]:
    """The sample's properties with ``Features`` sections replaced."""
    props: dict[str, Any] = copy.deepcopy(
        sample_event("portal_config/create")["ResourceProperties"]
    )
    props["Features"].update(features)
    return props


def create(function: ModuleType, receiver: ResponseReceiver, **fields: Any) -> dict[str, Any]:
    run(function, cfn_event("portal_config/create", receiver, **fields))
    return receiver.only_answer()


def stripe_config(account: Account, configuration_id: str) -> dict[str, Any]:
    config = account.client.v1.billing_portal.configurations.retrieve(
        configuration_id, {"expand": ["features.subscription_update.products"]}
    )
    return config.to_dict()


def test_create_states_the_whole_configuration_with_prices_resolved_by_lookup_key(
    function: ModuleType, receiver: ResponseReceiver, account: Account
) -> None:
    answer = create(function, receiver)

    assert answer["Status"] == "SUCCESS", answer["Reason"]
    configuration_id = answer["PhysicalResourceId"]
    assert configuration_id.startswith("bpc_")
    assert answer["Data"] == {
        "ConfigurationId": configuration_id,
        "Flows": "customer_update,payment_method_update,subscription_cancel,subscription_update",
        "LoginPageUrl": "",
    }
    assert answer["StackId"].startswith("arn:aws:cloudformation:")
    assert answer["LogicalResourceId"] == "PortalConfiguration"
    assert receiver.answers[0].content_type == ""  # what the pre-signed URL was signed for
    config = stripe_config(account, configuration_id)
    assert config["active"] is True
    assert config["name"] == "billing-portal-dev"
    assert config["business_profile"] == {
        "headline": "Manage your subscription",
        "privacy_policy_url": "https://app.example.com/privacy",
        "terms_of_service_url": "https://app.example.com/terms",
    }
    assert config["default_return_url"] == "https://app.example.com/account"
    assert config["metadata"] == {"managed_by": "billing-portal", "stack": "billing-portal-dev"}
    features = config["features"]
    assert features["customer_update"] == {
        "enabled": True,
        "allowed_updates": ["email", "name", "address", "tax_id"],
    }
    assert features["subscription_cancel"]["cancellation_reason"]["options"] == [
        "too_expensive",
        "missing_features",
        "switched_service",
        "unused",
        "other",
    ]
    # One entry with three keys became one product entry per product.
    products = {p["product"]: p["prices"] for p in features["subscription_update"]["products"]}
    assert products == {
        account.products["Basic"]: [account.prices["basic_monthly"]],
        account.products["Pro"]: [account.prices["pro_monthly"], account.prices["pro_yearly"]],
    }


def test_update_changes_the_configuration_in_place_and_keeps_the_id(
    function: ModuleType, receiver: ResponseReceiver, account: Account
) -> None:
    configuration_id = create(function, receiver)["PhysicalResourceId"]
    receiver.answers.clear()
    before = len(account.client.v1.billing_portal.configurations.list({"limit": 100}).data)

    run(function, cfn_event("portal_config/update", receiver, PhysicalResourceId=configuration_id))

    answer = receiver.only_answer()
    assert answer["Status"] == "SUCCESS", answer["Reason"]
    assert answer["PhysicalResourceId"] == configuration_id
    config = stripe_config(account, configuration_id)
    assert config["business_profile"]["headline"] == "Your plan, your way"
    assert config["features"]["subscription_cancel"]["mode"] == "immediately"
    assert config["features"]["subscription_cancel"]["proration_behavior"] == "create_prorations"
    # A metadata key removed from the template is removed from Stripe.
    assert config["metadata"] == {"managed_by": "billing-portal"}
    after = account.client.v1.billing_portal.configurations.list({"limit": 100}).data
    assert len(after) == before  # updated, not replaced


def test_update_of_a_configuration_stripe_no_longer_has_creates_a_replacement(
    function: ModuleType, receiver: ResponseReceiver, account: Account
) -> None:
    run(
        function,
        cfn_event("portal_config/update", receiver, PhysicalResourceId="bpc_1GoneWithTheOldKey"),
    )

    answer = receiver.only_answer()
    assert answer["Status"] == "SUCCESS", answer["Reason"]
    assert answer["PhysicalResourceId"].startswith("bpc_")
    assert answer["PhysicalResourceId"] != "bpc_1GoneWithTheOldKey"
    assert stripe_config(account, answer["PhysicalResourceId"])["active"] is True


def test_delete_deactivates_and_a_second_delete_succeeds(
    function: ModuleType, receiver: ResponseReceiver, account: Account
) -> None:
    configuration_id = create(function, receiver)["PhysicalResourceId"]
    for _ in range(2):
        receiver.answers.clear()
        run(
            function,
            cfn_event("portal_config/delete", receiver, PhysicalResourceId=configuration_id),
        )
        answer = receiver.only_answer()
        assert answer["Status"] == "SUCCESS", answer["Reason"]
        assert answer["PhysicalResourceId"] == configuration_id
        assert stripe_config(account, configuration_id)["active"] is False


@pytest.mark.parametrize("physical_id", ["not-created", "bpc_1NeverExisted"])
def test_delete_of_what_was_never_created_succeeds(
    function: ModuleType, receiver: ResponseReceiver, account: Account, physical_id: str
) -> None:
    run(function, cfn_event("portal_config/delete", receiver, PhysicalResourceId=physical_id))

    answer = receiver.only_answer()
    assert answer["Status"] == "SUCCESS", answer["Reason"]
    assert answer["PhysicalResourceId"] == physical_id


INVALID = {
    "more than 10 products": (
        properties(
            SubscriptionUpdate={
                "Enabled": "true",
                "Products": [{"Prices": [f"plan_{n}"]} for n in range(11)],
            }
        ),
        "Features.SubscriptionUpdate.Products: List should have at most 10 items",
    ),
    "prorations when cancelling at period end": (
        properties(
            SubscriptionCancel={
                "Enabled": "true",
                "Mode": "at_period_end",
                "ProrationBehavior": "create_prorations",
            }
        ),
        "Features.SubscriptionCancel: ProrationBehavior create_prorations needs Mode immediately",
    ),
    "plan changes without card updates": (
        properties(PaymentMethodUpdate={"Enabled": "false"}),
        "Features: SubscriptionUpdate.Enabled needs PaymentMethodUpdate.Enabled",
    ),
    "a headline over 60 characters": (
        {**properties(), "BusinessProfile": {"Headline": "x" * 61}},
        "BusinessProfile.Headline: String should have at most 60 characters",
    ),
    "an unknown cancellation reason": (
        properties(
            SubscriptionCancel={
                "Enabled": "true",
                "CancellationReason": {"Enabled": "true", "Options": ["bored"]},
            }
        ),
        "Features.SubscriptionCancel.CancellationReason.Options.0: Input should be",
    ),
    "a misspelt property": (
        {**properties(), "BusinesProfile": {}},
        "BusinesProfile: is not a known property",
    ),
}


@pytest.mark.parametrize("case", INVALID, ids=list(INVALID))
def test_an_invalid_configuration_fails_with_its_reason_before_any_stripe_call(
    function: ModuleType, receiver: ResponseReceiver, account: Account, case: str
) -> None:
    props, reason = INVALID[case]

    run(function, cfn_event("portal_config/create", receiver, ResourceProperties=props))

    answer = receiver.only_answer()
    assert answer["Status"] == "FAILED"
    assert reason in answer["Reason"]
    assert answer["PhysicalResourceId"] == "not-created"
    assert account.requests_log() == []


@pytest.mark.parametrize(
    ("lookup_key", "reason"),
    [
        ("platinum_monthly", "no price has lookup key platinum_monthly"),
        ("retired_monthly", "the price with lookup key retired_monthly is inactive"),
    ],
)
def test_an_unknown_or_inactive_lookup_key_fails_and_changes_nothing(
    function: ModuleType, receiver: ResponseReceiver, account: Account, lookup_key: str, reason: str
) -> None:
    retired = account.client.v1.prices.create(
        {
            "product": account.products["Basic"],
            "currency": "usd",
            "unit_amount": 500,
            "recurring": {"interval": "month"},
            "lookup_key": "retired_monthly",
        }
    )
    account.client.v1.prices.update(retired.id, {"active": False})
    account.clear_requests_log()
    props = properties(
        SubscriptionUpdate={
            "Enabled": "true",
            "Products": [{"Prices": ["pro_monthly", lookup_key]}],
        }
    )

    run(function, cfn_event("portal_config/create", receiver, ResourceProperties=props))

    answer = receiver.only_answer()
    assert answer["Status"] == "FAILED"
    assert f"Features.SubscriptionUpdate.Products: {reason}" in answer["Reason"]
    assert [r["method"] for r in account.requests_log()] == ["GET"]  # the lookup only


def test_stripe_failing_answers_failed_once_with_a_retry_hint(
    function: ModuleType, receiver: ResponseReceiver, account: Account
) -> None:
    account.inject_fault(status=500, count=20)

    run(function, cfn_event("portal_config/create", receiver))

    answer = receiver.only_answer()
    assert answer["Status"] == "FAILED"
    assert "retry the deploy" in answer["Reason"]


def test_a_wrong_stripe_key_is_named_in_the_reason(
    function: ModuleType, receiver: ResponseReceiver, account: Account
) -> None:
    boto3.client("secretsmanager").put_secret_value(
        SecretId="billing-portal/stripe-secret-key", SecretString="sk_test_wrong"
    )
    forget_cached_clients()

    run(function, cfn_event("portal_config/create", receiver))

    answer = receiver.only_answer()
    assert answer["Status"] == "FAILED"
    assert "Stripe rejected the secret key" in answer["Reason"]
    assert "sk_test_wrong" not in answer["Reason"]


@pytest.mark.robustness  # waits out a real timeout: seconds of wall time
def test_a_hanging_stripe_gets_failed_before_the_deadline_and_exactly_once(
    function: ModuleType,
    receiver: ResponseReceiver,
    account: Account,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(function, "margin_seconds", 1.5)
    account.inject_fault(hang_seconds=5, count=3)
    started = time.time()
    deadline = started + 3.0

    run(function, cfn_event("portal_config/create", receiver), seconds=3.0)

    answer = receiver.only_answer()
    assert answer["Status"] == "FAILED"
    assert "Timed out" in answer["Reason"]
    assert receiver.answers[0].at < deadline
    # The main thread finished later (the Stripe client gave up) and did not answer again.
    assert time.time() > deadline
    assert len(receiver.answers) == 1


def test_an_initialisation_failure_answers_failed_naming_the_cause(
    account: Account, receiver: ResponseReceiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("STRIPE_SECRET_NAME")
    forget_cached_clients()
    with fresh_module("functions.portal_config.app") as function:
        assert function.init_error is not None

        status = run(function, cfn_event("portal_config/create", receiver))

    answer = receiver.only_answer()
    assert status == "FAILED"
    assert answer["Status"] == "FAILED"
    assert answer["Reason"].startswith("The function failed to initialise")
    assert "STRIPE_SECRET_NAME" in answer["Reason"]
    assert account.requests_log() == []


@pytest.mark.robustness  # waits out a real timeout: seconds of wall time
def test_the_answer_is_retried_a_bounded_number_of_times(
    function: ModuleType, receiver: ResponseReceiver, account: Account
) -> None:
    receiver.refuse_with = [503, 500]

    run(function, cfn_event("portal_config/delete", receiver, PhysicalResourceId="not-created"))

    assert receiver.attempts == 3
    assert receiver.only_answer()["Status"] == "SUCCESS"

    receiver.answers.clear()
    receiver.attempts = 0
    receiver.refuse_with = [503] * 10
    run(function, cfn_event("portal_config/delete", receiver, PhysicalResourceId="not-created"))

    assert receiver.attempts == 4  # then it gives up: ServiceTimeout covers the rest
    assert receiver.answers == []


def test_the_template_configuration_is_valid_and_names_the_flows_the_snapshot_offers() -> None:
    props = copy.deepcopy(template()["Resources"]["PortalConfiguration"]["Properties"])
    assert int(props["ServiceTimeout"]) <= 300
    # The parameters at their defaults, as CloudFormation would pass them.
    props["BusinessProfile"] = {"Headline": "", "PrivacyPolicyUrl": "", "TermsOfServiceUrl": ""}
    props["DefaultReturnUrl"] = "https://app.example.com/billing"
    props["Name"] = "billing-portal-dev"
    props["LoginPage"] = {"Enabled": "false"}
    props["Metadata"] = {"managed_by": "billing-portal", "stack": "billing-portal-dev"}
    props["Features"]["SubscriptionUpdate"]["Enabled"] = "false"  # PlanLookupKeys empty
    props["Features"]["SubscriptionUpdate"]["Products"] = [{"Prices": [""]}]
    props["Features"]["SubscriptionPause"] = {"Enabled": "false", "Durations": [""]}

    spec = parse_portal_configuration(props)

    assert spec.offered_flows() == (
        "customer_update",
        "payment_method_update",
        "subscription_cancel",
    )


def test_an_enabled_login_page_hands_out_its_url(
    function: ModuleType, receiver: ResponseReceiver, account: Account
) -> None:
    props = {**properties(), "LoginPage": {"Enabled": "true"}}

    answer = create(function, receiver, ResourceProperties=props)

    assert answer["Status"] == "SUCCESS", answer["Reason"]
    login_url = answer["Data"]["LoginPageUrl"]
    assert login_url.startswith("http")
    assert stripe_config(account, answer["PhysicalResourceId"])["login_page"] == {
        "enabled": True,
        "url": login_url,
    }
