"""CORS over HTTP: only the allowed origins get an ``Access-Control-Allow-Origin``.

The local gateway (``sandbox.gateway``) serves the template's HTTP API with
the CORS settings the template gives API Gateway; preflights and real requests
come from allowed origins, from other sites, and from look-alikes of the
allowed origins (another scheme, port, or a host that merely starts or ends
like one).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import requests

from sandbox.gateway import GatewayServer, LocalGateway, LocalIdentityProvider, serve
from sandbox.gateway.routes import Cors, TemplateError, http_api_from_template
from tests.security.stack import widened
from tests.security.test_template_security import cors_as_sam_property_with_a_ref
from tests.support.aws import TEMPLATE, template

ISSUER = "https://idp.cors-test.invalid"
AUDIENCE = "billing-portal-web"
ALLOWED = ("https://app.example.com", "http://localhost:5173")
PARAMETERS = {
    "JwtIssuer": ISSUER,
    "JwtAudience": AUDIENCE,
    "AllowedOrigins": ",".join(ALLOWED),
    "DefaultReturnUrl": "https://app.example.com/account",
}
REFUSED = (
    "https://evil.example",
    "https://app.example.com.evil.test",  # starts like the allowed origin
    "https://evilapp.example.com",  # ends like it
    "https://app.example.co",
    "http://app.example.com",  # another scheme
    "https://app.example.com:8443",  # another port
    "https://localhost:5173",
    "http://localhost:5174",
    "http://localhost",
    "null",  # sandboxed frames and file:// pages
)
BROWSER_ROUTES = (
    ("GET", "/billing"),
    ("GET", "/billing/invoices"),
    ("POST", "/portal-sessions"),
    ("POST", "/setup-intents"),
)


@pytest.fixture(scope="module")
def identity() -> LocalIdentityProvider:
    return LocalIdentityProvider(ISSUER, AUDIENCE)


@pytest.fixture(scope="module")
def gateway(identity: LocalIdentityProvider) -> Iterator[GatewayServer]:
    with serve(LocalGateway.from_template(TEMPLATE, PARAMETERS, identity), "127.0.0.1", 0) as s:
        yield s


def preflight(gateway: GatewayServer, origin: str, method: str, path: str) -> requests.Response:
    return requests.options(
        f"{gateway.url}{path}",
        headers={
            "Origin": origin,
            "Access-Control-Request-Method": method,
            "Access-Control-Request-Headers": "authorization,content-type",
        },
        timeout=5,
    )


def cors_headers(response: requests.Response) -> dict[str, str]:
    return {k.lower(): v for k, v in response.headers.items() if k.lower().startswith("access-")}


@pytest.mark.parametrize("origin", ALLOWED)
def test_a_preflight_from_an_allowed_origin_is_granted_for_every_browser_route(
    gateway: GatewayServer, origin: str
) -> None:
    for method, path in BROWSER_ROUTES:
        response = preflight(gateway, origin, method, path)
        assert response.status_code == 204, (method, path)
        assert cors_headers(response) == {
            "access-control-allow-origin": origin,
            "access-control-allow-methods": "GET,POST",
            "access-control-allow-headers": "authorization,content-type,if-none-match",
            "access-control-max-age": "600",
        }


@pytest.mark.parametrize("origin", REFUSED)
def test_a_preflight_from_any_other_origin_gets_no_cors_header(
    gateway: GatewayServer, origin: str
) -> None:
    for method, path in (*BROWSER_ROUTES, ("POST", "/webhooks/stripe")):
        response = preflight(gateway, origin, method, path)
        assert cors_headers(response) == {}, (origin, method, path)


def test_answers_are_readable_only_by_allowed_origins(
    deployment: dict[str, Any], gateway: GatewayServer, identity: LocalIdentityProvider
) -> None:
    token = identity.issue_token("user-cors-1")

    def get(origin: str, *, signed_in: bool = True) -> requests.Response:
        headers = {"Origin": origin}
        if signed_in:
            headers["Authorization"] = f"Bearer {token}"
        return requests.get(f"{gateway.url}/billing", headers=headers, timeout=10)

    for origin in ALLOWED:
        answer = get(origin)
        assert answer.status_code == 200
        assert cors_headers(answer) == {
            "access-control-allow-origin": origin,
            "access-control-expose-headers": "retry-after,etag",
        }
        # The authorizer's 401 is readable too, so the page can tell "signed out".
        assert cors_headers(get(origin, signed_in=False))["access-control-allow-origin"] == origin
    for origin in REFUSED:
        answer = get(origin)
        assert answer.status_code == 200  # CORS is the browser's to enforce: it may not read it
        assert cors_headers(answer) == {}, origin
        assert cors_headers(get(origin, signed_in=False)) == {}, origin


def test_the_gateway_compares_origins_as_api_gateway_does() -> None:
    # API Gateway: exact origins, "*", and "https://*" / "http://*" for any origin of a scheme.
    exact = Cors(allow_origins=ALLOWED)
    assert [o for o in ALLOWED if not exact.allows(o)] == []
    assert [o for o in REFUSED if exact.allows(o)] == []
    assert not exact.allows(None)
    assert not exact.allows("")
    https_only = Cors(allow_origins=("https://*",))
    assert https_only.allows("https://anything.example")
    assert not https_only.allows("http://anything.example")
    assert not https_only.allows("https://")
    assert Cors(allow_origins=("*",)).allows("null")


def test_the_gateway_refuses_the_cors_shape_sam_would_deploy_without_its_settings() -> None:
    # AllowOrigins as a !Ref under CorsConfiguration: SAM keeps the Ref and drops the rest,
    # so serving the full settings locally would hide a broken deployment.
    copy = widened(template())
    cors_as_sam_property_with_a_ref(copy)
    with pytest.raises(TemplateError, match="x-amazon-apigateway-cors"):
        http_api_from_template(copy, PARAMETERS)
    assert http_api_from_template(template(), PARAMETERS).cors == Cors(
        allow_origins=ALLOWED,
        allow_methods=("GET", "POST"),
        allow_headers=("authorization", "content-type", "if-none-match"),
        expose_headers=("retry-after", "etag"),
        max_age=600,
    )
