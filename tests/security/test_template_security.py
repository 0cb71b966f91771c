"""Least privilege, authorizer coverage and CORS of ``template.yaml``, as deployed.

The checks run on the template after SAM's transform (``tests.security.stack``),
so they see the roles, policy-template expansions, routes and CORS settings
CloudFormation receives. Each check is also run on a deliberately widened copy
of the template, to show it catches what it is there to catch.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import pytest

from tests.security.stack import (
    DYNAMODB_READ_ACTIONS,
    SAM_MANAGED_POLICIES,
    SIGNING_SECRET_ARN,
    TABLE_ARN,
    cors_problems,
    function_roles,
    privilege_problems,
    route_problems,
    routes,
    sam_transform,
    separation_problems,
    stripe_key_secret_arn,
    widened,
)
from tests.support.aws import template

Template = dict[str, Any]


def deployed() -> Template:
    return sam_transform(template())


def all_problems(transformed: Template) -> list[str]:
    return [
        *privilege_problems(transformed),
        *separation_problems(transformed),
        *route_problems(transformed),
        *cors_problems(transformed),
    ]


# --- the template as it is --------------------------------------------------------------------


@pytest.mark.parametrize("function", ["BillingFunction", "InvoicesFunction"])
def test_the_snapshot_functions_can_only_read_the_table(function: str) -> None:
    role = function_roles(deployed())[function]
    assert role.resources() == {TABLE_ARN}
    assert role.actions_on(TABLE_ARN) == {"dynamodb:Query"}
    assert role.actions_on(TABLE_ARN) <= DYNAMODB_READ_ACTIONS
    assert "dynamodb:GetItem" in DYNAMODB_READ_ACTIONS  # the read set is SAM's, not empty
    assert separation_problems(deployed()) == []


def test_every_grant_names_a_resource_of_the_stack_without_wildcards() -> None:
    transformed = deployed()
    assert privilege_problems(transformed) == []
    roles = function_roles(transformed)
    assert set(roles) == {
        "PortalSessionFunction",
        "BillingFunction",
        "InvoicesFunction",
        "WebhookFunction",
        "BackfillFunction",
        "PortalConfigFunction",
        "WebhookEndpointFunction",
        "CatalogFanoutFunction",
        "CatalogFunction",
    }
    for role in roles.values():
        # Only what SAM adds to every role (logs; X-Ray, whose actions take no resource).
        assert set(role.managed_policies) <= SAM_MANAGED_POLICIES
        assert role.statements, f"{role.function} has no inline grant at all"
    # The name-based secret grant matches exactly the key's secret.
    key = stripe_key_secret_arn(transformed)
    assert key.endswith(":secret:billing-portal/stripe-secret-key-??????")
    assert roles["PortalSessionFunction"].actions_on(key) == {"secretsmanager:GetSecretValue"}
    assert roles["WebhookEndpointFunction"].actions_on(SIGNING_SECRET_ARN) == {
        "secretsmanager:GetSecretValue",
        "secretsmanager:PutSecretValue",
    }


def test_the_webhook_and_the_plan_list_are_the_only_routes_without_the_jwt_authorizer() -> None:
    transformed = deployed()
    assert route_problems(transformed) == []
    declared = routes(transformed)
    open_routes = {key for key, op in declared.items() if op["security"] != [{"JwtAuthorizer": []}]}
    assert open_routes == {"POST /webhooks/stripe", "GET /plans"}
    assert len(declared) >= 5


def test_cors_reaches_the_deployed_api_with_every_setting() -> None:
    transformed = deployed()
    assert cors_problems(transformed) == []
    cors = transformed["Resources"]["HttpApi"]["Properties"]["Body"]["x-amazon-apigateway-cors"]
    assert cors == {
        "allowOrigins": {"Ref": "AllowedOrigins"},
        "allowHeaders": ["authorization", "content-type", "if-none-match"],
        "allowMethods": ["GET", "POST"],
        "exposeHeaders": ["retry-after", "etag"],
        "maxAge": 600,
    }
    assert "allowCredentials" not in cors  # bearer tokens, no cookies


ORIGINS_ACCEPTED = ["https://app.example.com", "http://localhost:5173", "http://127.0.0.1:3000"]
ORIGINS_REFUSED = [
    "*",
    "https://*",
    "http://*",
    "https://*.example.com",
    "null",
    "app.example.com",
    "https://app.example.com/",
    "https://app.example.com/billing",
    "https://app.example.com:443/x",
    " https://app.example.com",
    "https://user@app.example.com",
    "file://",
]


def test_allowed_origins_are_a_parameter_of_exact_origins() -> None:
    parameter = template()["Parameters"]["AllowedOrigins"]
    assert parameter["Type"] == "CommaDelimitedList"
    assert "Default" not in parameter, "every deployment names its own origins"
    # CloudFormation applies the pattern to each entry of a CommaDelimitedList.
    pattern = re.compile(parameter["AllowedPattern"])
    assert [o for o in ORIGINS_ACCEPTED if not pattern.fullmatch(o)] == []
    assert [o for o in ORIGINS_REFUSED if pattern.fullmatch(o)] == []


def event_logging(template_: Template) -> list[str]:
    """Functions that would log whole events: Authorization headers, signed webhook bodies,
    CloudFormation's pre-signed ResponseURL (Powertools' POWERTOOLS_LOGGER_LOG_EVENT)."""
    resources = template_["Resources"]
    shared = template_.get("Globals", {}).get("Function", {}).get("Environment", {})
    return [
        name
        for name, resource in resources.items()
        if resource["Type"] == "AWS::Serverless::Function"
        and str(
            {
                **shared.get("Variables", {}),
                **resource["Properties"].get("Environment", {}).get("Variables", {}),
            }.get("POWERTOOLS_LOGGER_LOG_EVENT", "false")
        ).lower()
        not in ("false", "0")
    ]


def test_no_function_logs_whole_events() -> None:
    assert event_logging(template()) == []
    copy = widened(template())
    _function(copy, "WebhookEndpointFunction")["Environment"]["Variables"][
        "POWERTOOLS_LOGGER_LOG_EVENT"
    ] = "true"
    assert event_logging(copy) == ["WebhookEndpointFunction"]


# --- the checks catch a widened template --------------------------------------------------------


def _function(copy: Template, name: str) -> dict[str, Any]:
    props: dict[str, Any] = copy["Resources"][name]["Properties"]
    return props


def snapshot_may_write(copy: Template) -> None:
    statement = _function(copy, "BillingFunction")["Policies"][0]["Statement"][0]
    statement["Action"] = ["dynamodb:Query", "dynamodb:PutItem"]


def invoices_may_write(copy: Template) -> None:
    statement = _function(copy, "InvoicesFunction")["Policies"][0]["Statement"][0]
    statement["Action"] = ["dynamodb:Query", "dynamodb:UpdateItem"]


def snapshot_with_crud_policy(copy: Template) -> None:
    _function(copy, "BillingFunction")["Policies"] = [
        {"DynamoDBCrudPolicy": {"TableName": {"Ref": "BillingTable"}}}
    ]


def snapshot_with_read_policy(copy: Template) -> None:
    # Read only, but SAM's template also grants every index: table/<name>/index/*.
    _function(copy, "BillingFunction")["Policies"] = [
        {"DynamoDBReadPolicy": {"TableName": {"Ref": "BillingTable"}}}
    ]


def snapshot_reads_the_stripe_key(copy: Template) -> None:
    session = _function(copy, "PortalSessionFunction")["Policies"][1]
    _function(copy, "BillingFunction")["Policies"].append(session)


def snapshot_may_write_anything(copy: Template) -> None:
    statement = _function(copy, "BillingFunction")["Policies"][0]["Statement"][0]
    statement["Action"] = ["dynamodb:Query", "dynamodb:DeleteItem"]
    statement["Resource"] = "*"


def any_resource(copy: Template) -> None:
    _function(copy, "PortalSessionFunction")["Policies"][0]["Statement"][0]["Resource"] = "*"


def any_dynamodb_action(copy: Template) -> None:
    _function(copy, "WebhookFunction")["Policies"][0]["Statement"][0]["Action"] = "dynamodb:*"


def another_table(copy: Template) -> None:
    statement = _function(copy, "BackfillFunction")["Policies"][0]["Statement"][0]
    statement["Resource"] = {
        "Fn::Sub": "arn:${AWS::Partition}:dynamodb:${AWS::Region}:${AWS::AccountId}:table/other"
    }


def a_managed_policy(copy: Template) -> None:
    _function(copy, "BackfillFunction")["Policies"].append(
        "arn:aws:iam::aws:policy/AmazonDynamoDBFullAccess"
    )


def webhook_may_change_its_secret(copy: Template) -> None:
    endpoint = _function(copy, "WebhookEndpointFunction")["Policies"][1]
    _function(copy, "WebhookFunction")["Policies"].append(endpoint)


def custom_resource_may_write_the_table(copy: Template) -> None:
    webhook = _function(copy, "WebhookFunction")["Policies"][0]
    _function(copy, "PortalConfigFunction")["Policies"].append(webhook)


def portal_may_announce_catalog_changes(copy: Template) -> None:
    send = _function(copy, "WebhookFunction")["Policies"][-1]
    _function(copy, "PortalSessionFunction")["Policies"].append(send)


def webhook_may_consume_the_fanout_queue(copy: Template) -> None:
    consume = _function(copy, "CatalogFanoutFunction")["Policies"][-1]
    _function(copy, "WebhookFunction")["Policies"].append(consume)


def billing_route_without_authorizer(copy: Template) -> None:
    event = _function(copy, "BillingFunction")["Events"]["GetBilling"]["Properties"]
    event["Auth"] = {"Authorizer": "NONE"}


def no_default_authorizer(copy: Template) -> None:
    del copy["Resources"]["HttpApi"]["Properties"]["Auth"]["DefaultAuthorizer"]
    # (SAM accepts Authorizer: NONE only under a default authorizer.)
    del _function(copy, "WebhookFunction")["Events"]["StripeWebhook"]["Properties"]["Auth"]
    del _function(copy, "BillingFunction")["Events"]["GetPlans"]["Properties"]["Auth"]


def webhook_behind_the_authorizer(copy: Template) -> None:
    del _function(copy, "WebhookFunction")["Events"]["StripeWebhook"]["Properties"]["Auth"]


def a_catch_all_route(copy: Template) -> None:
    _function(copy, "BillingFunction")["Events"]["Everything"] = {
        "Type": "HttpApi",
        "Properties": {"ApiId": {"Ref": "HttpApi"}, "Method": "ANY", "Path": "/{proxy+}"},
    }


def cors_for_any_origin_with_credentials(copy: Template) -> None:
    cors = copy["Resources"]["HttpApi"]["Properties"]["DefinitionBody"]["x-amazon-apigateway-cors"]
    cors["allowOrigins"] = ["*"]
    cors["allowCredentials"] = True


def cors_as_sam_property_with_a_ref(copy: Template) -> None:
    # What the template said before: SAM keeps only the Ref and drops the rest.
    props = copy["Resources"]["HttpApi"]["Properties"]
    body = props["DefinitionBody"]
    body.pop("x-amazon-apigateway-cors")
    props["CorsConfiguration"] = {
        "AllowOrigins": {"Ref": "AllowedOrigins"},
        "AllowHeaders": ["authorization", "content-type", "if-none-match"],
        "AllowMethods": ["GET", "POST"],
        "ExposeHeaders": ["retry-after", "etag"],
        "MaxAge": 600,
    }


def cors_for_every_header_and_method(copy: Template) -> None:
    cors = copy["Resources"]["HttpApi"]["Properties"]["DefinitionBody"]["x-amazon-apigateway-cors"]
    cors["allowHeaders"] = ["*"]
    cors["allowMethods"] = ["*"]


WIDENINGS: list[tuple[Callable[[Template], None], str]] = [
    (snapshot_may_write, r"BillingFunction \(the snapshot reader\) may \['dynamodb:PutItem'\]"),
    (invoices_may_write, r"InvoicesFunction \(the snapshot reader\) may \['dynamodb:UpdateItem'\]"),
    (snapshot_with_crud_policy, r"snapshot reader\) may \[.*'dynamodb:DeleteItem'"),
    (snapshot_with_read_policy, r"BillingFunction: wildcard resource .*/index/\*"),
    (snapshot_may_write_anything, r"snapshot reader\) may \['dynamodb:DeleteItem'\]"),
    (snapshot_reads_the_stripe_key, r"BillingFunction may read the Stripe secret key"),
    (any_resource, r"PortalSessionFunction: wildcard resource \*"),
    (any_dynamodb_action, r"WebhookFunction: wildcard action dynamodb:\*"),
    (another_table, r"BackfillFunction: .*table/other is not a resource of this stack"),
    (a_managed_policy, r"BackfillFunction: managed policy .*AmazonDynamoDBFullAccess"),
    (webhook_may_change_its_secret, r"WebhookFunction may change the webhook signing secret"),
    (custom_resource_may_write_the_table, r"PortalConfigFunction may \[.*\] the table"),
    (portal_may_announce_catalog_changes, r"PortalSessionFunction may send to the catalog"),
    (webhook_may_consume_the_fanout_queue, r"WebhookFunction may consume the catalog fan-out"),
    (billing_route_without_authorizer, r"GET /billing: not behind JwtAuthorizer"),
    (no_default_authorizer, r"POST /portal-sessions: not behind JwtAuthorizer"),
    (webhook_behind_the_authorizer, r"POST /webhooks/stripe: its callers have no user token"),
    (a_catch_all_route, r"/\{proxy\+\}: a catch-all route"),
    (cors_for_any_origin_with_credentials, r"allowCredentials with a wildcard origin"),
    (cors_as_sam_property_with_a_ref, r"not a CORS settings object"),
    (cors_for_every_header_and_method, r"allowHeaders \['\*'\]"),
]


@pytest.mark.parametrize(
    ("widen", "finding"), WIDENINGS, ids=[widen.__name__ for widen, _ in WIDENINGS]
)
def test_the_checks_catch_a_widened_copy_of_the_template(
    widen: Callable[[Template], None], finding: str
) -> None:
    copy = widened(template())
    widen(copy)
    problems = all_problems(sam_transform(copy))
    assert [p for p in problems if re.search(finding, p)], problems
    assert all_problems(deployed()) == []
