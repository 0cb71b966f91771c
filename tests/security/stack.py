"""``template.yaml`` as CloudFormation deploys it, and checks of what it grants.

The template is transformed offline by SAM's own translator (the package
``sam build``/``sam deploy`` use), so policy templates such as
``AWSSecretsManagerGetSecretValuePolicy`` or ``DynamoDBCrudPolicy`` are expanded
exactly as in a deployment, the roles get the managed policies SAM adds, and
the HTTP API gets the OpenAPI body (routes, authorizer, CORS) API Gateway
imports. Intrinsic functions are then resolved against one concrete stack, so
every ``Resource`` is a plain ARN string.

Each ``*_problems`` function returns readable findings; an empty list passes.
"""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from fnmatch import fnmatchcase
from typing import Any

from samtranslator.policy_templates_data import (  # type: ignore[import-untyped]
    POLICY_TEMPLATES_FILE,
)

from sandbox.cloudformation import LocalStack, lambda_functions, sam_translate
from sandbox.lambda_runtime import ACCOUNT_ID as ACCOUNT
from sandbox.lambda_runtime import REGION

STACK = "billing-portal-sec"
PARAMETERS = {
    "JwtIssuer": "https://issuer.example.com",
    "JwtAudience": "billing-portal-web",
    "AllowedOrigins": "https://app.example.com",
    "DefaultReturnUrl": "https://app.example.com/account",
}
TABLE_NAME = f"{STACK}-BillingTable-1Q2W3E4R5T6Y"
FANOUT_QUEUE_NAME = "billing-CatalogFanoutQueue-1A2B3C"
FANOUT_QUEUE_URL = f"https://sqs.{REGION}.amazonaws.com/{ACCOUNT}/{FANOUT_QUEUE_NAME}"
FANOUT_QUEUE_ARN = f"arn:aws:sqs:{REGION}:{ACCOUNT}:{FANOUT_QUEUE_NAME}"
TABLE_ARN = f"arn:aws:dynamodb:{REGION}:{ACCOUNT}:table/{TABLE_NAME}"
SIGNING_SECRET_ARN = (
    f"arn:aws:secretsmanager:{REGION}:{ACCOUNT}:secret:WebhookSigningSecret-Zx9Yw8-AbCdEf"
)
API_ID = "a1b2c3d4e5"

# The managed policies SAM attaches to every generated role: CloudWatch Logs
# (AWSLambdaBasicExecutionRole) and, with Tracing: Active, X-Ray. Neither can be
# left out without replacing SAM's role by one of our own.
SAM_MANAGED_POLICIES = frozenset(
    {
        "arn:aws:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole",
        "arn:aws:iam::aws:policy/AWSXrayWriteOnlyAccess",
    }
)
# Secrets Manager appends "-" and six random characters to a secret's name in its
# ARN; a name-based grant must match them (AWS's documented pattern).
SECRET_SUFFIX = "-??????"


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def sam_policy_template_actions(name: str) -> frozenset[str]:
    """The actions of one of SAM's policy templates, from SAM's own definition file."""
    with open(POLICY_TEMPLATES_FILE) as file:
        templates = json.load(file)["Templates"]
    actions: set[str] = set()
    for statement in templates[name]["Definition"]["Statement"]:
        actions.update(_as_list(statement["Action"]))
    return frozenset(actions)


# What "read only" means for DynamoDB: SAM's DynamoDBReadPolicy.
DYNAMODB_READ_ACTIONS = sam_policy_template_actions("DynamoDBReadPolicy")


def sam_transform(template: Mapping[str, Any]) -> dict[str, Any]:
    """``template`` after SAM's transform, offline, as the local stack reads it; a policy
    that names a managed policy instead of its ARN fails here."""

    def no_managed_policy_names() -> dict[str, str]:
        raise AssertionError("a policy names a managed policy; use its ARN")

    return sam_translate(template, managed_policies=no_managed_policy_names)


def resolver(transformed: Mapping[str, Any]) -> LocalStack:
    """Concrete values for the intrinsic functions of one stack of ``transformed``."""
    return LocalStack(
        template=dict(transformed),
        stack_name=STACK,
        parameters=dict(PARAMETERS),
        refs={
            "BillingTable": TABLE_NAME,
            "WebhookSigningSecret": SIGNING_SECRET_ARN,
            "HttpApi": API_ID,
            "CatalogFanoutQueue": FANOUT_QUEUE_URL,
            "CatalogFanoutDeadLetters": f"{FANOUT_QUEUE_URL}-dead-letters",
        },
        attributes={
            "BillingTable": {"Arn": TABLE_ARN},
            "CatalogFanoutQueue": {"Arn": FANOUT_QUEUE_ARN, "QueueName": FANOUT_QUEUE_NAME},
            "CatalogFanoutDeadLetters": {
                "Arn": f"{FANOUT_QUEUE_ARN}-dead-letters",
                "QueueName": f"{FANOUT_QUEUE_NAME}-dead-letters",
            },
        },
    )


# --- IAM -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Statement:
    effect: str
    actions: tuple[str, ...]
    resources: tuple[str, ...]
    negated: bool  # NotAction or NotResource


@dataclass
class FunctionRole:
    """What one function's execution role allows."""

    function: str
    managed_policies: list[str] = field(default_factory=list)
    statements: list[Statement] = field(default_factory=list)

    def actions_on(self, resource: str, service: str = "") -> set[str]:
        """The actions allowed on ``resource`` (by its ARN, an index of it, or a pattern
        matching it), of ``service`` only when given (``*`` counts for every service)."""
        return {
            action
            for statement in self.statements
            if statement.effect == "Allow"
            for target in statement.resources
            if fnmatchcase(resource, target) or _index_of(target) == resource
            for action in statement.actions
            if action == "*" or action.startswith(service)
        }

    def resources(self) -> set[str]:
        return {r for s in self.statements if s.effect == "Allow" for r in s.resources}


def _index_of(resource: str) -> str | None:
    """The table whose index (or index pattern) ``resource`` names, if any."""
    table, found, _ = resource.partition("/index/")
    return table if found else None


def function_roles(transformed: Mapping[str, Any]) -> dict[str, FunctionRole]:
    """Every Lambda function's role, with intrinsic functions resolved."""
    stack = resolver(transformed)
    resources: Mapping[str, Any] = transformed["Resources"]
    roles: dict[str, FunctionRole] = {}
    for name, function in lambda_functions(transformed).items():
        role_name, _ = function["Role"]["Fn::GetAtt"]
        role_props = resources[role_name]["Properties"]
        role = FunctionRole(name)
        role.managed_policies = [
            str(stack.resolve(arn)) for arn in role_props.get("ManagedPolicyArns", [])
        ]
        for policy in role_props.get("Policies", []):
            for raw in _as_list(policy["PolicyDocument"]["Statement"]):
                resolved = stack.resolve(raw)
                role.statements.append(
                    Statement(
                        effect=resolved["Effect"],
                        actions=tuple(_as_list(resolved.get("Action", []))),
                        resources=tuple(str(r) for r in _as_list(resolved.get("Resource", []))),
                        negated="NotAction" in resolved or "NotResource" in resolved,
                    )
                )
        roles[name] = role
    return roles


def stripe_key_secret_arn(transformed: Mapping[str, Any]) -> str:
    """The name-based ARN pattern of the Stripe secret key's secret."""
    name = transformed["Parameters"]["StripeSecretName"]["Default"]
    return f"arn:aws:secretsmanager:{REGION}:{ACCOUNT}:secret:{name}{SECRET_SUFFIX}"


def _wildcards(resource: str) -> bool:
    """A ``*`` anywhere, or a ``?`` other than the secret-suffix pattern."""
    if "*" in resource:
        return True
    if resource.startswith("arn:aws:secretsmanager:") and resource.endswith(SECRET_SUFFIX):
        return "?" in resource.removesuffix(SECRET_SUFFIX)
    return "?" in resource


def privilege_problems(transformed: Mapping[str, Any]) -> list[str]:
    """Grants wider than the functions need: wildcards, foreign resources, extra policies."""
    known = {TABLE_ARN, SIGNING_SECRET_ARN, FANOUT_QUEUE_ARN, stripe_key_secret_arn(transformed)}
    problems: list[str] = []
    for name, role in function_roles(transformed).items():
        for arn in role.managed_policies:
            if arn not in SAM_MANAGED_POLICIES:
                problems.append(f"{name}: managed policy {arn}")
        for statement in role.statements:
            if statement.effect != "Allow":
                continue
            if statement.negated:
                problems.append(f"{name}: NotAction/NotResource grants everything else")
            for action in statement.actions:
                if "*" in action:
                    problems.append(f"{name}: wildcard action {action}")
            for resource in statement.resources:
                if _wildcards(resource):
                    problems.append(
                        f"{name}: wildcard resource {resource} for {sorted(statement.actions)}"
                    )
                elif resource not in known and _index_of(resource) not in known:
                    problems.append(f"{name}: {resource} is not a resource of this stack")
    return problems


# Which function may do what to the stack's data and secrets.
STRIPE_CALLERS = frozenset(
    {
        "PortalSessionFunction",
        "WebhookFunction",
        "BackfillFunction",
        "PortalConfigFunction",
        "WebhookEndpointFunction",
        "CatalogFunction",
    }
)
TABLE_WRITERS = frozenset(
    {
        "PortalSessionFunction",
        "WebhookFunction",
        "BackfillFunction",
        "CatalogFanoutFunction",
        "CatalogFunction",
    }
)
# Who may put catalog changes on the fan-out queue, and who consumes it.
FANOUT_SENDERS = frozenset({"WebhookFunction", "BackfillFunction", "CatalogFanoutFunction"})
FANOUT_CONSUMERS = frozenset({"CatalogFanoutFunction"})
SIGNING_SECRET_READERS = frozenset({"WebhookFunction", "WebhookEndpointFunction"})
SIGNING_SECRET_WRITERS = frozenset({"WebhookEndpointFunction"})
# The read-only functions: GET /billing and GET /billing/invoices.
SNAPSHOT_READERS = frozenset({"BillingFunction", "InvoicesFunction"})


# Secrets Manager actions that change nothing (the Service Authorization Reference's
# Read and List access levels); anything else on a secret counts as a write.
_SECRET_READ_ONLY = frozenset(
    {
        "secretsmanager:GetSecretValue",
        "secretsmanager:BatchGetSecretValue",
        "secretsmanager:DescribeSecret",
        "secretsmanager:GetResourcePolicy",
        "secretsmanager:ListSecretVersionIds",
    }
)


def _reads_secret(actions: Iterable[str]) -> bool:
    return any(a in ("*", "secretsmanager:*", "secretsmanager:GetSecretValue") for a in actions)


def _writes_secret(actions: Iterable[str]) -> bool:
    return any(
        a not in _SECRET_READ_ONLY for a in actions if a.startswith(("*", "secretsmanager:"))
    )


def separation_problems(transformed: Mapping[str, Any]) -> list[str]:
    """Each function may touch only what its job needs (see the sets above)."""
    stripe_key = stripe_key_secret_arn(transformed)
    problems: list[str] = []
    for name, role in function_roles(transformed).items():
        on_table = role.actions_on(TABLE_ARN, "dynamodb:")
        if name in SNAPSHOT_READERS:
            if extra := on_table - DYNAMODB_READ_ACTIONS:
                problems.append(f"{name} (the snapshot reader) may {sorted(extra)} the table")
            if others := role.resources() - {TABLE_ARN}:
                problems.append(f"{name} (the snapshot reader) may access {sorted(others)}")
        elif name not in TABLE_WRITERS and on_table:
            problems.append(f"{name} may {sorted(on_table)} the table")
        key = role.actions_on(stripe_key, "secretsmanager:")
        if name not in STRIPE_CALLERS and _reads_secret(key):
            problems.append(f"{name} may read the Stripe secret key")
        if _writes_secret(key):
            problems.append(f"{name} may change the Stripe secret key")
        queue = role.actions_on(FANOUT_QUEUE_ARN, "sqs:")
        if name not in FANOUT_SENDERS and "sqs:SendMessage" in queue:
            problems.append(f"{name} may send to the catalog fan-out queue")
        if name not in FANOUT_CONSUMERS and queue & {"sqs:ReceiveMessage", "sqs:DeleteMessage"}:
            problems.append(f"{name} may consume the catalog fan-out queue")
        signing = role.actions_on(SIGNING_SECRET_ARN, "secretsmanager:")
        if name not in SIGNING_SECRET_READERS and _reads_secret(signing):
            problems.append(f"{name} may read the webhook signing secret")
        if name not in SIGNING_SECRET_WRITERS and _writes_secret(signing):
            problems.append(f"{name} may change the webhook signing secret")
    return problems


# --- the HTTP API --------------------------------------------------------------------------------

AUTHORIZER = "JwtAuthorizer"
# Stripe cannot send a user token; a pricing table is shown before anyone signs in (and
# GET /plans holds nothing of any user).
OPEN_ROUTES = frozenset({"POST /webhooks/stripe", "GET /plans"})
_INTEGRATION_FUNCTION = re.compile(r"\$\{(\w+)\.Arn\}")


def api_body(transformed: Mapping[str, Any]) -> dict[str, Any]:
    (api,) = [r for r in transformed["Resources"].values() if r["Type"] == "AWS::ApiGatewayV2::Api"]
    body: dict[str, Any] = api["Properties"]["Body"]
    return body


def routes(transformed: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """Route key (``GET /billing``) -> its OpenAPI operation."""
    return {
        f"{method.upper()} {path}": operation
        for path, operations in api_body(transformed).get("paths", {}).items()
        for method, operation in operations.items()
    }


def route_problems(transformed: Mapping[str, Any]) -> list[str]:
    """Routes that skip the JWT authorizer (but the webhook), catch-alls, loose permissions."""
    problems: list[str] = []
    body = api_body(transformed)
    scheme = body.get("components", {}).get("securitySchemes", {}).get(AUTHORIZER, {})
    authorizer = scheme.get("x-amazon-apigateway-authorizer", {})
    if authorizer != {
        "type": "jwt",
        "identitySource": "$request.header.Authorization",
        "jwtConfiguration": {"issuer": {"Ref": "JwtIssuer"}, "audience": {"Ref": "JwtAudience"}},
    }:
        problems.append(f"{AUTHORIZER} is not the JWT authorizer of JwtIssuer/JwtAudience")
    declared = routes(transformed)
    for key, operation in declared.items():
        method, path = key.split(" ", 1)
        if "{proxy+}" in path or path.startswith("$") or "ANY-METHOD" in method:
            problems.append(f"{key}: a catch-all route")
        guarded = operation.get("security") == [{AUTHORIZER: []}]
        if key in OPEN_ROUTES and guarded:
            problems.append(f"{key}: its callers have no user token; it must be open")
        if key not in OPEN_ROUTES and not guarded:
            problems.append(f"{key}: not behind {AUTHORIZER} ({operation.get('security')})")
    if missing := OPEN_ROUTES - set(declared):
        problems.append(f"missing routes {sorted(missing)}")
    problems.extend(_permission_problems(transformed, declared))
    return problems


def _permission_problems(
    transformed: Mapping[str, Any], declared: Mapping[str, Mapping[str, Any]]
) -> list[str]:
    """API Gateway may invoke each function only for that function's own routes."""
    stack = resolver(transformed)
    routes_of: dict[str, set[str]] = {}
    for key, operation in declared.items():
        uri = json.dumps(operation.get("x-amazon-apigateway-integration", {}).get("uri"))
        if match := _INTEGRATION_FUNCTION.search(uri):
            method, path = key.split(" ", 1)
            routes_of.setdefault(match[1], set()).add(f"{method}{path}")
    problems: list[str] = []
    prefix = f"arn:aws:execute-api:{REGION}:{ACCOUNT}:{API_ID}/*/"
    for name, resource in transformed["Resources"].items():
        props = resource["Properties"] if resource["Type"] == "AWS::Lambda::Permission" else {}
        if props.get("Principal") != "apigateway.amazonaws.com":
            continue
        function = props["FunctionName"]["Ref"]
        source = str(stack.resolve(props.get("SourceArn", "*")))
        if not source.startswith(prefix) or source[len(prefix) :] not in routes_of.get(
            function, set()
        ):
            problems.append(f"{name}: API Gateway may invoke {function} as {source}")
    return problems


# --- CORS ----------------------------------------------------------------------------------------

CORS_EXTENSION = "x-amazon-apigateway-cors"


def cors_problems(transformed: Mapping[str, Any]) -> list[str]:
    """The deployed CORS settings: a settings object, origins from AllowedOrigins, no ``*``."""
    cors = api_body(transformed).get(CORS_EXTENSION)
    if not isinstance(cors, dict) or any(k == "Ref" or k.startswith("Fn::") for k in cors):
        return [f"{CORS_EXTENSION} is {cors!r}, not a CORS settings object"]
    problems: list[str] = []
    origins = cors.get("allowOrigins")
    if origins != {"Ref": "AllowedOrigins"}:
        problems.append(f"allowOrigins is {origins!r}, not the AllowedOrigins parameter")
    wildcards = [o for o in _as_list(origins) if isinstance(o, str) and "*" in o]
    if wildcards:
        problems.append(f"allowOrigins has a wildcard: {wildcards}")
    if cors.get("allowCredentials") is True and wildcards:
        problems.append("allowCredentials with a wildcard origin")
    methods = {m.upper() for m in cors.get("allowMethods", [])}
    route_methods = {key.split(" ", 1)[0] for key in routes(transformed)}
    if not methods or "*" in methods or not methods <= route_methods:
        problems.append(
            f"allowMethods {sorted(methods)} are not the routes' {sorted(route_methods)}"
        )
    headers = {h.lower() for h in cors.get("allowHeaders", [])}
    if "*" in headers or "authorization" not in headers:
        problems.append(f"allowHeaders {sorted(headers)} must name authorization, no *")
    if "*" in {h.lower() for h in cors.get("exposeHeaders", [])}:
        problems.append("exposeHeaders has *")
    return problems


def widened(template: Mapping[str, Any]) -> dict[str, Any]:
    """A deep copy to change (the original stays as loaded)."""
    return copy.deepcopy(dict(template))
