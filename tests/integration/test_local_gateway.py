"""The local API gateway (``sandbox.gateway``) over HTTP, with the real template and functions.

The gateway runs on a free port in a thread; the functions run in-process
against moto and the Stripe stand-in (the ``deployment`` fixtures), exactly as
``make dev`` runs them.
"""

from __future__ import annotations

import base64
import http.client
import json
import logging
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import jwt
import pytest
import requests
from werkzeug.test import Client, EnvironBuilder
from werkzeug.wrappers import Request

import functions.billing.app as billing_app
import functions.webhook.app as webhook_app
from sandbox.gateway import (
    GatewayServer,
    LocalGateway,
    LocalIdentityProvider,
    PortInUse,
    load_http_api,
    serve,
)
from sandbox.gateway.app import load_handler
from sandbox.gateway.payload import build_event
from sandbox.gateway.routes import HttpApi, JwtAuthorizerConfig, Route
from tests.conftest import WEBHOOK_SECRET_NAME, forget_cached_clients
from tests.support.aws import TEMPLATE, template
from tests.support.portal import link_of
from tests.support.stripe_seed import Account

ISSUER = "https://idp.gateway-test.invalid"
AUDIENCE = "billing-portal-web"
APP_ORIGIN = "https://app.example.com"
PARAMETERS = {
    "JwtIssuer": ISSUER,
    "JwtAudience": f"{AUDIENCE},another-client",
    "AllowedOrigins": f"{APP_ORIGIN},http://localhost:5173",
    "DefaultReturnUrl": f"{APP_ORIGIN}/account",
}
DEV_INFO = {"stripe_url": "http://127.0.0.1:12111", "webhook_secret": "whsec_local"}


@pytest.fixture(scope="module")
def identity() -> LocalIdentityProvider:
    return LocalIdentityProvider(ISSUER, AUDIENCE)


@pytest.fixture
def static_dir(tmp_path: Path) -> Path:
    demo = tmp_path / "demo"
    demo.mkdir()
    (demo / "index.html").write_text("<!doctype html><h1>Demo billing page</h1>")
    (demo / "app.js").write_text("console.log('demo');")
    (tmp_path / "secret.txt").write_text("outside the static directory")
    return demo


@pytest.fixture
def gateway(identity: LocalIdentityProvider, static_dir: Path) -> Iterator[GatewayServer]:
    app = LocalGateway.from_template(
        TEMPLATE, PARAMETERS, identity, static_dir=static_dir, dev_info=lambda: DEV_INFO
    )
    with serve(app, "127.0.0.1", 0) as server:
        yield server


def dev_token(url: str, sub: str = "user-gw-1", email: str | None = "ada@example.com") -> str:
    response = requests.post(f"{url}/_dev/token", json={"sub": sub, "email": email}, timeout=5)
    assert response.status_code == 200, response.text
    token: str = response.json()["token"]
    return token


def call(
    url: str, method: str, path: str, token: str | None = None, **kwargs: Any
) -> requests.Response:
    headers = dict(kwargs.pop("headers", {}))
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    return requests.request(method, f"{url}{path}", headers=headers, timeout=15, **kwargs)


@pytest.fixture
def billing_calls(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    """The events the billing function receives (it still runs)."""
    calls: list[dict[str, Any]] = []
    real = billing_app.lambda_handler

    def spy(event: dict[str, Any], context: Any) -> dict[str, Any]:
        calls.append(event)
        return real(event, context)

    monkeypatch.setattr(billing_app, "lambda_handler", spy)
    return calls


# --- the product through the gateway ------------------------------------------------------


@pytest.fixture
def live(
    webhook_deployment: dict[str, Any], configured: Account, gateway: GatewayServer
) -> Account:
    """The seeded account delivering its webhooks to the gateway's webhook route."""
    endpoint = configured.client.v1.webhook_endpoints.create(
        params={"url": f"{gateway.url}/webhooks/stripe", "enabled_events": ["*"]}
    )
    boto3.client("secretsmanager").put_secret_value(
        SecretId=WEBHOOK_SECRET_NAME, SecretString=endpoint.secret or ""
    )
    forget_cached_clients()
    for event in configured.client.v1.events.list(params={"limit": 100}).data:
        configured.standin.redeliver(event.id)
    configured.standin.wait_idle(timeout=20)
    return configured


def test_a_dev_token_opens_the_billing_snapshot_of_a_new_user(
    deployment: dict[str, Any], gateway: GatewayServer, billing_calls: list[dict[str, Any]]
) -> None:
    token = dev_token(gateway.url, sub="user-new")
    response = call(gateway.url, "GET", "/billing", token)
    assert response.status_code == 200, response.text
    assert response.headers["Content-Type"] == "application/json"
    assert response.headers["ETag"]
    body = response.json()
    assert body["status"] == "none"
    assert body["plan"] is None
    (event,) = billing_calls
    claims = event["requestContext"]["authorizer"]["jwt"]["claims"]
    assert claims["sub"] == "user-new"
    assert claims["email"] == "ada@example.com"
    assert claims["iss"] == ISSUER
    assert claims["aud"] == AUDIENCE
    assert all(isinstance(value, str) for value in claims.values()), "API Gateway passes strings"
    assert event["routeKey"] == "GET /billing"
    assert event["headers"]["authorization"] == f"Bearer {token}"


def test_session_then_subscription_then_webhooks_show_in_the_snapshot(
    live: Account, gateway: GatewayServer
) -> None:
    token = dev_token(gateway.url, sub="user-gw-1", email="grace@example.com")
    # moto restores a whole table when a transaction fails, erasing writes made meanwhile
    # by other threads: customer.created must not race the session's own link transaction.
    live.standin.hold_deliveries()
    session = call(gateway.url, "POST", "/portal-sessions", token, json={})
    live.standin.release_deliveries()
    assert session.status_code == 200, session.text
    assert session.json()["url"].startswith(f"{live.standin.url}/p/session/")
    customer = link_of("user-gw-1")
    assert customer is not None
    assert live.client.v1.customers.retrieve(customer).email == "grace@example.com"

    live.subscribe(customer, "pro_monthly")
    live.standin.wait_idle(timeout=20)
    deliveries = live.standin.deliveries()
    assert deliveries
    assert {a.status for a in deliveries} == {200}, "the gateway's webhook route took them all"

    snapshot = call(gateway.url, "GET", "/billing", token)
    assert snapshot.status_code == 200, snapshot.text
    body = snapshot.json()
    assert body["status"] == "active"
    assert body["plan"]["lookup_key"] == "pro_monthly"
    assert body["payment_method"]["last4"] == "4242"
    assert body["email"] == "grace@example.com"

    revalidated = call(
        gateway.url, "GET", "/billing", token, headers={"If-None-Match": snapshot.headers["ETag"]}
    )
    assert revalidated.status_code == 304
    assert revalidated.content == b""


def test_setup_intents_answer_a_client_secret(live: Account, gateway: GatewayServer) -> None:
    token = dev_token(gateway.url, sub="user-gw-2")
    live.standin.hold_deliveries()  # see above: moto and concurrent transactions
    response = call(gateway.url, "POST", "/setup-intents", token)
    live.standin.release_deliveries()
    assert response.status_code == 200, response.text
    assert response.json()["client_secret"].startswith("seti_")


# --- the JWT authorizer ---------------------------------------------------------------------


def test_a_valid_token_reaches_the_function_and_bad_ones_never_do(
    deployment: dict[str, Any],
    gateway: GatewayServer,
    identity: LocalIdentityProvider,
    billing_calls: list[dict[str, Any]],
) -> None:
    stranger = LocalIdentityProvider(ISSUER, AUDIENCE)  # same claims, another key
    stranger.kid = identity.kid
    rejected = {
        "no token": None,
        "not a JWT": "not-a-jwt",
        "another key": stranger.issue_token("user-gw-1"),
        "wrong audience": identity.issue_token("user-gw-1", aud="someone-else"),
        "wrong issuer": identity.issue_token("user-gw-1", iss="https://evil.invalid"),
        "expired": identity.issue_token("user-gw-1", exp=int(time.time()) - 5),
        "not yet valid": identity.issue_token("user-gw-1", nbf=int(time.time()) + 600),
        "no exp": identity.issue_token("user-gw-1", exp=None),
    }
    for case, token in rejected.items():
        response = call(gateway.url, "GET", "/billing", token)
        assert response.status_code == 401, case
        assert response.json() == {"message": "Unauthorized"}, case
        assert response.headers["WWW-Authenticate"].startswith("Bearer"), case
    assert billing_calls == [], "no rejected request reached the function"

    accepted = call(gateway.url, "GET", "/billing", identity.issue_token("user-gw-1"))
    assert accepted.status_code == 200, accepted.text
    assert len(billing_calls) == 1


def test_a_second_audience_and_client_id_tokens_are_accepted(
    deployment: dict[str, Any],
    gateway: GatewayServer,
    identity: LocalIdentityProvider,
    billing_calls: list[dict[str, Any]],
) -> None:
    other_audience = identity.issue_token("user-gw-1", aud="another-client")
    assert call(gateway.url, "GET", "/billing", other_audience).status_code == 200
    cognito_access_token = identity.issue_token("user-gw-1", aud=None, client_id=AUDIENCE)
    assert call(gateway.url, "GET", "/billing", cognito_access_token).status_code == 200
    foreign_client = identity.issue_token("user-gw-1", aud=None, client_id="someone-else")
    assert call(gateway.url, "GET", "/billing", foreign_client).status_code == 401
    assert len(billing_calls) == 2


def test_dev_tokens_verify_against_the_served_jwks(
    gateway: GatewayServer, identity: LocalIdentityProvider
) -> None:
    token = dev_token(gateway.url, sub="user-gw-9", email="lin@example.com")
    jwks = requests.get(f"{gateway.url}/.well-known/jwks.json", timeout=5).json()
    key = jwt.PyJWKSet.from_dict(jwks)[jwt.get_unverified_header(token)["kid"]]
    claims = jwt.decode(token, key.key, algorithms=["RS256"], audience=AUDIENCE, issuer=ISSUER)
    assert claims["sub"] == "user-gw-9"
    assert claims["email"] == "lin@example.com"
    assert 0 < claims["exp"] - claims["iat"] <= 3600


@pytest.mark.parametrize(
    "body",
    [None, [], {"email": "a@example.com"}, {"sub": ""}, {"sub": 7}, {"sub": "u", "email": 3}],
)
def test_dev_token_rejects_bad_input(gateway: GatewayServer, body: Any) -> None:
    response = requests.post(f"{gateway.url}/_dev/token", json=body, timeout=5)
    assert response.status_code == 400
    assert response.json()["message"]
    assert "token" not in response.json()


# --- the webhook route: no authorizer -------------------------------------------------------


def test_the_webhook_route_runs_without_a_token_and_the_function_checks_the_signature(
    webhook_deployment: dict[str, Any], gateway: GatewayServer
) -> None:
    response = call(
        gateway.url,
        "POST",
        "/webhooks/stripe",
        data=b'{"id":"evt_1","type":"invoice.paid"}',
        headers={"Content-Type": "application/json", "Stripe-Signature": "t=1,v1=forged"},
    )
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "invalid_signature"


# --- CORS ----------------------------------------------------------------------------------


def preflight(url: str, origin: str) -> requests.Response:
    return requests.options(
        f"{url}/billing",
        headers={
            "Origin": origin,
            "Access-Control-Request-Method": "GET",
            "Access-Control-Request-Headers": "authorization,if-none-match",
        },
        timeout=5,
    )


def test_a_preflight_from_an_allowed_origin_is_answered_before_the_authorizer(
    gateway: GatewayServer,
) -> None:
    response = preflight(gateway.url, APP_ORIGIN)
    assert response.status_code == 204
    assert response.headers["Access-Control-Allow-Origin"] == APP_ORIGIN
    assert response.headers["Access-Control-Allow-Methods"] == "GET,POST"
    assert response.headers["Access-Control-Allow-Headers"] == (
        "authorization,content-type,if-none-match"
    )
    assert response.headers["Access-Control-Max-Age"] == "600"


def test_a_preflight_from_another_origin_gets_no_cors_headers(gateway: GatewayServer) -> None:
    response = preflight(gateway.url, "https://evil.example.com")
    assert response.status_code == 204
    assert not [h for h in response.headers if h.lower().startswith("access-control-")]


def test_answers_carry_cors_headers_only_for_allowed_origins(
    deployment: dict[str, Any], gateway: GatewayServer, identity: LocalIdentityProvider
) -> None:
    token = identity.issue_token("user-gw-1")
    allowed = call(gateway.url, "GET", "/billing", token, headers={"Origin": APP_ORIGIN})
    assert allowed.status_code == 200
    assert allowed.headers["Access-Control-Allow-Origin"] == APP_ORIGIN
    assert allowed.headers["Access-Control-Expose-Headers"] == "retry-after,etag"
    unauthorized = call(gateway.url, "GET", "/billing", headers={"Origin": APP_ORIGIN})
    assert unauthorized.status_code == 401
    assert unauthorized.headers["Access-Control-Allow-Origin"] == APP_ORIGIN, "readable 401"
    other = call(gateway.url, "GET", "/billing", token, headers={"Origin": "https://evil.example"})
    assert other.status_code == 200
    assert "Access-Control-Allow-Origin" not in other.headers


# --- routing -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/nope"),
        ("GET", "/portal-sessions"),  # a known path with another method
        ("DELETE", "/billing"),
        ("HEAD", "/billing"),
        ("GET", "/billing/"),
        ("GET", "/_dev/nothing"),
        ("POST", "/_dev/info"),
    ],
)
def test_unknown_routes_are_404_not_found(gateway: GatewayServer, method: str, path: str) -> None:
    response = call(gateway.url, method, path)
    assert response.status_code == 404
    if method != "HEAD":
        assert response.json() == {"message": "Not Found"}


def template_routes() -> dict[str, tuple[str, bool]]:
    """Route key -> (function logical id, behind the authorizer), read here independently."""
    routes: dict[str, tuple[str, bool]] = {}
    for name, resource in template()["Resources"].items():
        if resource["Type"] != "AWS::Serverless::Function":
            continue
        for spec in resource["Properties"].get("Events", {}).values():
            if spec["Type"] != "HttpApi":
                continue
            props = spec["Properties"]
            open_route = props.get("Auth", {}).get("Authorizer") == "NONE"
            routes[f"{props['Method'].upper()} {props['Path']}"] = (name, not open_route)
    return routes


def test_the_gateway_serves_every_route_of_the_template(gateway: GatewayServer) -> None:
    expected = template_routes()
    assert len(expected) >= 5
    api = load_http_api(TEMPLATE, PARAMETERS)
    assert {r.key: (r.function, r.authorizer is not None) for r in api.routes} == expected
    for route in api.routes:
        folder = template()["Resources"][route.function]["Properties"]["CodeUri"].strip("/")
        assert route.handler == f"{folder.replace('/', '.')}.app:lambda_handler"
        assert callable(load_handler(route.handler))
        assert route.timeout == 10, "from Globals"
        method, path = route.key.split(" ", 1)
        response = call(gateway.url, method, path)
        if route.authorizer is not None:
            assert response.status_code == 401, route.key
        else:
            assert response.status_code not in (401, 404), route.key


def test_the_template_s_cors_and_authorizer_come_from_the_parameters() -> None:
    api = load_http_api(TEMPLATE, {**PARAMETERS, "AllowedOrigins": "https://a.example"})
    assert api.cors is not None
    assert api.cors.allow_origins == ("https://a.example",)
    assert api.cors.expose_headers == ("retry-after", "etag")
    (authorizer,) = api.authorizers.values()
    assert authorizer.issuer == ISSUER
    assert authorizer.audiences == (AUDIENCE, "another-client")


def test_a_mismatched_identity_provider_is_refused_at_start() -> None:
    with pytest.raises(ValueError, match="issuer"):
        LocalGateway.from_template(
            TEMPLATE, PARAMETERS, LocalIdentityProvider("https://other.invalid", AUDIENCE)
        )
    with pytest.raises(ValueError, match="AllowedOrigins"):
        LocalGateway.from_template(TEMPLATE, {"JwtIssuer": ISSUER, "JwtAudience": AUDIENCE})


# --- development routes ---------------------------------------------------------------------


def test_dev_info_and_the_demo_page_are_served(gateway: GatewayServer) -> None:
    assert requests.get(f"{gateway.url}/_dev/info", timeout=5).json() == DEV_INFO
    page = requests.get(f"{gateway.url}/", timeout=5)
    assert page.status_code == 200
    assert page.headers["Content-Type"].startswith("text/html")
    assert "Demo billing page" in page.text
    script = requests.get(f"{gateway.url}/demo/app.js", timeout=5)
    assert script.status_code == 200
    assert script.text == "console.log('demo');"
    assert requests.get(f"{gateway.url}/demo/missing.js", timeout=5).status_code == 404
    escape = requests.get(f"{gateway.url}/demo/..%2Fsecret.txt", timeout=5)
    assert escape.status_code == 404
    assert "outside" not in escape.text


def test_without_a_demo_page_a_placeholder_is_served(
    identity: LocalIdentityProvider, tmp_path: Path
) -> None:
    app = LocalGateway.from_template(TEMPLATE, PARAMETERS, identity, static_dir=tmp_path)
    page = Client(app).get("/")
    assert page.status_code == 200
    assert "/_dev/token" in page.get_data(as_text=True)


def test_a_taken_port_is_a_clear_error_naming_it(gateway: GatewayServer) -> None:
    with pytest.raises(PortInUse, match=rf"port {gateway.port} .*in use") as raised:
        serve(LocalGateway.from_template(TEMPLATE, PARAMETERS), "127.0.0.1", gateway.port)
    assert "another port" in str(raised.value)
    with socket.create_connection(("127.0.0.1", gateway.port), timeout=2):
        pass  # the first server still listens


# --- the event and the response (payload format 2.0) -----------------------------------------


def test_query_cookies_headers_and_a_binary_body_reach_the_event(
    gateway: GatewayServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: list[dict[str, Any]] = []

    def capture(event: dict[str, Any], context: Any) -> dict[str, Any]:
        seen.append({**event, "remaining_ms": context.get_remaining_time_in_millis()})
        return {"statusCode": 202, "body": "ok", "headers": {"content-type": "text/plain"}}

    monkeypatch.setattr(webhook_app, "lambda_handler", capture)
    payload = bytes(range(256))
    response = requests.post(
        f"{gateway.url}/webhooks/stripe?a=1&b=x%20y&a=2",
        data=payload,
        headers={
            "Content-Type": "application/octet-stream",
            "Cookie": "session=abc; theme=dark",
            "X-Custom": "One",
            "User-Agent": "gateway-test",
        },
        timeout=5,
    )
    assert response.status_code == 202
    assert response.text == "ok"
    assert response.headers["Apigw-Requestid"]
    (event,) = seen
    assert event["version"] == "2.0"
    assert event["routeKey"] == "POST /webhooks/stripe"
    assert event["rawPath"] == "/webhooks/stripe"
    assert event["rawQueryString"] == "a=1&b=x%20y&a=2"
    assert event["queryStringParameters"] == {"a": "1,2", "b": "x y"}
    assert event["cookies"] == ["session=abc", "theme=dark"]
    assert "cookie" not in event["headers"]
    assert event["headers"]["x-custom"] == "One"
    assert all(name == name.lower() for name in event["headers"])
    assert event["isBase64Encoded"] is True
    assert base64.b64decode(event["body"]) == payload
    assert "pathParameters" not in event
    context = event["requestContext"]
    assert "authorizer" not in context, "the webhook route has no authorizer"
    assert context["http"] == {
        "method": "POST",
        "path": "/webhooks/stripe",
        "protocol": "HTTP/1.1",
        "sourceIp": "127.0.0.1",
        "userAgent": "gateway-test",
    }
    assert context["stage"] == "$default"
    assert context["routeKey"] == "POST /webhooks/stripe"
    assert context["requestId"] == response.headers["Apigw-Requestid"]
    assert context["accountId"] == "123456789012"
    assert abs(context["timeEpoch"] / 1000 - time.time()) < 60
    assert 0 < event["remaining_ms"] <= 10_000


def test_repeated_headers_are_comma_joined(
    gateway: GatewayServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: list[dict[str, Any]] = []

    def capture(event: dict[str, Any], context: Any) -> str:
        seen.append(event)
        return ""

    monkeypatch.setattr(webhook_app, "lambda_handler", capture)
    connection = http.client.HTTPConnection("127.0.0.1", gateway.port, timeout=5)
    connection.putrequest("POST", "/webhooks/stripe")
    for value in ("one", "two", "three"):
        connection.putheader("X-Repeat", value)
    connection.putheader("Content-Length", "0")
    connection.endheaders()
    assert connection.getresponse().status == 200
    connection.close()
    assert seen[0]["headers"]["x-repeat"] == "one,two,three"
    assert "body" not in seen[0]


def environ_request(path: str, **kwargs: Any) -> Request:
    return Request(EnvironBuilder(path=path, **kwargs).get_environ())


ITEM = Route(
    method="GET",
    path="/items/{item_id}/parts/{part}",
    function="ItemFunction",
    function_name="items",
    handler="tests.integration.test_local_gateway:echo",
    timeout=1,
    memory_mb=128,
    authorizer=None,
)


def test_the_event_builder_matches_a_real_api_gateway_event() -> None:
    request = environ_request(
        "/billing",
        headers=[("Authorization", "Bearer t")],
        environ_base={"REMOTE_ADDR": "203.0.113.10"},
    )
    route = Route("GET", "/billing", "BillingFunction", "billing", "m:f", 10, 512, "JwtAuthorizer")
    claims = {"sub": "user-0001", "exp": 1893456000, "aud": ["a", "b"], "email_verified": True}
    event = build_event(request, route, path_parameters={}, claims=claims)
    sample = json.loads((TEMPLATE.parent / "events/billing/get_billing.json").read_text())
    assert set(event) <= set(sample)
    assert set(event["requestContext"]) == set(sample["requestContext"])
    assert set(event["requestContext"]["http"]) == set(sample["requestContext"]["http"])
    assert event["headers"]["authorization"] == "Bearer t"
    assert event["requestContext"]["http"]["sourceIp"] == "203.0.113.10"
    assert event["requestContext"]["authorizer"]["jwt"] == {
        "claims": {
            "sub": "user-0001",
            "exp": "1893456000",
            "aud": "[a b]",
            "email_verified": "true",
        },
        "scopes": None,
    }
    assert "body" not in event
    assert event["isBase64Encoded"] is False


def test_text_bodies_stay_text() -> None:
    for content_type in ("application/json; charset=utf-8", "text/plain", "application/ld+json"):
        request = environ_request("/x", method="POST", data='{"a": "é"}', content_type=content_type)
        event = build_event(request, ITEM, path_parameters={}, claims=None)
        assert event["body"] == '{"a": "é"}', content_type
        assert event["isBase64Encoded"] is False


def echo(event: dict[str, Any], context: Any) -> Any:
    """A function for the tests below: its answer is chosen by the query string."""
    kind = (event.get("queryStringParameters") or {}).get("answer", "event")
    answers: dict[str, Any] = {
        "event": {"statusCode": 200, "body": json.dumps(event)},
        "plain-dict": {"hello": "world"},
        "plain-str": "hi there",
        "binary": {
            "statusCode": 200,
            "headers": {"content-type": "image/png"},
            "body": base64.b64encode(b"\x89PNG\x00\xff").decode(),
            "isBase64Encoded": True,
        },
        "cookies": {
            "statusCode": 201,
            "cookies": ["a=1; Path=/", "b=2; HttpOnly"],
            "headers": {"x-one": "1"},
            "multiValueHeaders": {"x-many": ["p", "q"]},
            "body": "",
        },
        "malformed": {"statusCode": "two hundred"},
    }
    if kind == "raise":
        raise RuntimeError("boom in the function")
    if kind == "sleep":
        time.sleep(2.5)
    return answers.get(kind, answers["event"])


@pytest.fixture
def items() -> Client:
    api = HttpApi("Api", routes=(ITEM,), authorizers={})
    return Client(LocalGateway(api, LocalIdentityProvider("https://i.invalid", "x")))


def test_path_parameters_come_from_the_route_template(items: Client) -> None:
    response = items.get("/items/it%20em-7/parts/wheel")
    assert response.status_code == 200
    assert "Content-Type" not in response.headers, "only what the function set"
    event = json.loads(response.get_data())
    assert event["pathParameters"] == {"item_id": "it em-7", "part": "wheel"}
    assert event["routeKey"] == "GET /items/{item_id}/parts/{part}"
    assert event["rawPath"] == "/items/it%20em-7/parts/wheel"
    assert items.get("/items/7/parts").status_code == 404


def test_results_become_responses_as_api_gateway_makes_them(items: Client) -> None:
    plain = items.get("/items/1/parts/2?answer=plain-dict")
    assert (plain.status_code, plain.content_type, plain.json) == (
        200,
        "application/json",
        {"hello": "world"},
    )
    text = items.get("/items/1/parts/2?answer=plain-str")
    assert (text.status_code, text.get_data(as_text=True)) == (200, "hi there")
    binary = items.get("/items/1/parts/2?answer=binary")
    assert binary.get_data() == b"\x89PNG\x00\xff"
    assert binary.content_type == "image/png"
    cookies = items.get("/items/1/parts/2?answer=cookies")
    assert cookies.status_code == 201
    assert cookies.headers.getlist("Set-Cookie") == ["a=1; Path=/", "b=2; HttpOnly"]
    assert cookies.headers.getlist("x-many") == ["p", "q"]
    assert cookies.headers["x-one"] == "1"


def test_a_failing_function_is_a_500_with_its_traceback_logged(
    items: Client, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.ERROR, logger="sandbox.gateway"):
        response = items.get("/items/1/parts/2?answer=raise")
        malformed = items.get("/items/1/parts/2?answer=malformed")
    assert response.status_code == 500
    assert response.json == {"message": "Internal Server Error"}
    assert "boom in the function" not in response.get_data(as_text=True)
    assert malformed.status_code == 500
    tracebacks = [r for r in caplog.records if r.exc_info]
    assert tracebacks
    assert "boom in the function" in str(tracebacks[0].exc_info[1])  # type: ignore[index]


def test_a_function_past_its_timeout_is_a_500(items: Client) -> None:
    started = time.monotonic()
    response = items.get("/items/1/parts/2?answer=sleep")
    assert response.status_code == 500
    assert response.json == {"message": "Internal Server Error"}
    assert 0.9 < time.monotonic() - started < 2.0, "answered at the 1 s Timeout, not at 2.5 s"


def test_an_authorizer_with_scopes_needs_one_of_them() -> None:
    idp = LocalIdentityProvider("https://i.invalid", "x")
    route = Route("GET", "/items/{item_id}/parts/{part}", "F", "f", ITEM.handler, 1, 128, "Jwt")
    scoped = Route(**{**route.__dict__, "scopes": ("billing/read",)})
    api = HttpApi(
        "Api",
        routes=(scoped,),
        authorizers={"Jwt": JwtAuthorizerConfig("Jwt", "https://i.invalid", ("x",))},
    )
    client = Client(LocalGateway(api, idp))
    without = client.get("/items/1/parts/2", headers={"Authorization": idp.issue_token("u")})
    assert without.status_code == 403
    assert without.json == {"message": "Forbidden"}
    token = idp.issue_token("u", scope="openid billing/read")
    answer = client.get("/items/1/parts/2", headers={"Authorization": f"Bearer {token}"})
    assert answer.status_code == 200
    event = json.loads(answer.get_data())
    assert event["requestContext"]["authorizer"]["jwt"]["scopes"] == ["openid", "billing/read"]


def test_no_two_functions_run_at_once(
    identity: LocalIdentityProvider, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Powertools keeps the current event on a class shared by every function of one
    process: two functions running at once could read each other's request (and user)."""
    running: list[str] = []
    overlaps: list[tuple[str, ...]] = []
    guard = threading.Lock()

    def slow_handler(spec: str) -> Any:
        def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
            with guard:
                running.append(spec)
                if len(running) > 1:
                    overlaps.append(tuple(running))
            time.sleep(0.2)  # long enough for a second request to arrive meanwhile
            with guard:
                running.remove(spec)
            return {"statusCode": 200, "body": "{}"}

        return handler

    monkeypatch.setattr("sandbox.gateway.app.load_handler", slow_handler)
    app = LocalGateway.from_template(
        TEMPLATE, PARAMETERS, identity, static_dir=tmp_path, dev_info=lambda: DEV_INFO
    )
    with serve(app, "127.0.0.1", 0) as server:
        token = dev_token(server.url)
        auth = {"Authorization": f"Bearer {token}"}
        calls = [
            lambda: requests.get(f"{server.url}/billing", headers=auth, timeout=10),
            lambda: requests.post(f"{server.url}/setup-intents", headers=auth, timeout=10),
            lambda: requests.post(f"{server.url}/webhooks/stripe", data="{}", timeout=10),
        ]
        threads = [threading.Thread(target=call) for call in calls]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()

    assert overlaps == []
