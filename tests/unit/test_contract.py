"""The deployment contract: pinned Stripe API version, routes, OpenAPI document, template."""

from __future__ import annotations

import json
from typing import Any

import stripe

from billing.stripe_api.client import STRIPE_API_VERSION
from billing.stripe_api.enums import FLOW_TYPES, PORTAL_LOCALES
from sandbox.cloudformation import lambda_functions
from tests.security.stack import sam_transform
from tests.support.aws import template
from tools.openapi import OPENAPI_FILE, openapi_document


def test_the_pinned_api_version_is_the_one_the_sdk_was_generated_for() -> None:
    assert stripe.api_version == STRIPE_API_VERSION


def test_docs_openapi_is_current() -> None:
    assert OPENAPI_FILE.read_text() == openapi_document(), "run `make openapi`"


def test_template_routes_are_exactly_the_documented_operations() -> None:
    documented = {
        (method.upper(), path)
        for path, operations in json.loads(openapi_document())["paths"].items()
        for method in operations
    }
    declared = {
        (event["Properties"]["Method"].upper(), event["Properties"]["Path"])
        for resource in template()["Resources"].values()
        if resource["Type"] == "AWS::Serverless::Function"
        for event in resource["Properties"].get("Events", {}).values()
        if event["Type"] == "HttpApi"
    }
    assert declared == documented


def test_openapi_describes_the_flows_and_the_error_body() -> None:
    schema = json.loads(openapi_document())
    request = schema["components"]["schemas"]["PortalSessionRequest"]["properties"]
    assert set(request) == {
        "flow",
        "plan",
        "quantity",
        "promotion_code",
        "return_url",
        "locale",
        "after_completion",
    }
    flows = schema["components"]["schemas"]["FlowKind"]["enum"]
    # Every flow type stripe-python 16 knows, and nothing it does not.
    assert sorted(flows) == sorted(FLOW_TYPES)
    assert len(flows) == 6
    locales = request["locale"]["anyOf"][0]["enum"]
    assert sorted(locales) == sorted(PORTAL_LOCALES)
    assert "pt-BR" in locales
    responses = schema["paths"]["/portal-sessions"]["post"]["responses"]
    assert set(responses) == {"200", "400", "401", "409", "422", "502", "503"}


def test_table_is_on_demand_encrypted_recoverable_with_ttl() -> None:
    table = template()["Resources"]["BillingTable"]
    props = table["Properties"]
    assert props["BillingMode"] == "PAY_PER_REQUEST"
    assert props["PointInTimeRecoverySpecification"]["PointInTimeRecoveryEnabled"] is True
    assert props["SSESpecification"]["SSEEnabled"] is True
    assert props["TimeToLiveSpecification"] == {"AttributeName": "expires_at", "Enabled": True}
    # Kept on stack delete and replacement; only an aborted first create removes it.
    assert table["DeletionPolicy"] == "RetainExceptOnCreate"
    assert table["UpdateReplacePolicy"] == "Retain"


def deployed_functions() -> dict[str, Any]:
    """Every Lambda function's properties after SAM's transform, by logical id."""
    functions = lambda_functions(sam_transform(template()))
    declared = [n for n, r in template()["Resources"].items() if r["Type"].endswith("::Function")]
    assert sorted(functions) == sorted(declared)
    return functions


def test_functions_are_python313_on_arm64_with_the_layer() -> None:
    resources = template()["Resources"]
    function_globals = template()["Globals"]["Function"]
    assert function_globals["Runtime"] == "python3.13"
    assert function_globals["Architectures"] == ["arm64"]
    layer = resources["BillingLayer"]
    assert layer["Metadata"]["BuildMethod"] == "makefile"
    # As deployed: SAM merges Globals into each function and names the layer version.
    for name, function in deployed_functions().items():
        layers = [ref["Ref"] for ref in function["Layers"]]
        assert [ref for ref in layers if ref.startswith("BillingLayer")], name


def test_the_webhook_endpoint_is_registered_on_the_pinned_api_version() -> None:
    endpoint = template()["Resources"]["StripeWebhookEndpoint"]["Properties"]
    assert endpoint["ApiVersion"] == STRIPE_API_VERSION


def test_custom_resources_bound_a_lost_answer_and_are_never_retried_by_lambda() -> None:
    resources = template()["Resources"]
    for name, function in (
        ("PortalConfiguration", "PortalConfigFunction"),
        ("StripeWebhookEndpoint", "WebhookEndpointFunction"),
    ):
        assert int(resources[name]["Properties"]["ServiceTimeout"]) <= 300
        props = resources[function]["Properties"]
        assert props["EventInvokeConfig"]["MaximumRetryAttempts"] == 0
        # The timer answers 5 s before the deadline, well within ServiceTimeout.
        assert int(props["Timeout"]) < int(resources[name]["Properties"]["ServiceTimeout"])


def test_the_log_level_parameter_reaches_lambda_and_powertools() -> None:
    # With JSON logs Lambda sets AWS_LAMBDA_LOG_LEVEL (INFO unless told), and
    # Powertools obeys it over POWERTOOLS_LOG_LEVEL: both must come from LogLevel.
    lambda_levels = {"TRACE", "DEBUG", "INFO", "WARN", "ERROR", "FATAL"}
    assert set(template()["Parameters"]["LogLevel"]["AllowedValues"]) <= lambda_levels
    assert template()["Globals"]["Function"]["Environment"]["Variables"][
        "POWERTOOLS_LOG_LEVEL"
    ] == {"Ref": "LogLevel"}
    for name, function in deployed_functions().items():
        assert function["LoggingConfig"]["ApplicationLogLevel"] == {"Ref": "LogLevel"}, name
        assert function["LoggingConfig"]["LogFormat"] == "JSON", name
