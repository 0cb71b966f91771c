"""Fuzzing the API over HTTP, through the local gateway, as a client or an attacker would.

1. schemathesis generates requests from the OpenAPI document that the
   Powertools resolvers produce now (``tools.openapi``, the same text as the
   committed ``docs/openapi.json``): valid ones and ones that break the schema,
   for every operation, sent with a valid token of the demo user (who has a
   subscription, so the flows get past "no subscription"). No answer may be a
   5xx, every answer must be documented for its operation and match its
   schema, and negative data must be refused with a 4xx. schemathesis also
   re-sends accepted requests without and with a forged token: those must be
   refused (``ignored_auth``).
2. The webhook route gets arbitrary bodies and headers: bytes, text, JSON,
   genuine Stripe events with forged, foreign, stale or misplaced signatures.
   Every answer must be a 400 with a clear error code, and the table must not
   change.

Hypothesis runs derandomized (a fixed seed per test) with no example
database, so a CI run tries the same inputs every time.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from typing import Any

import pytest
import requests
import schemathesis
import stripe
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis import BaseSchema, Case, GenerationMode
from schemathesis.checks import CheckFunction, not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    ignored_auth,
    negative_data_rejection,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from billing.read.snapshot import encode_cursor
from billing.store.keys import invoice_sort_key
from sandbox.stripe_standin.webhooks import signature_header
from tests.robustness.conftest import Product
from tools.openapi import OPENAPI_FILE, openapi_document

OPERATIONS = [
    ("GET", "/billing"),
    ("GET", "/billing/invoices"),
    ("GET", "/plans"),
    ("POST", "/billing/refresh"),
    ("POST", "/portal-sessions"),
    ("POST", "/checkout-sessions"),
    ("POST", "/setup-intents"),
    ("POST", "/webhooks/stripe"),
]
CHECKS: list[CheckFunction] = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
    response_headers_conformance,
    negative_data_rejection,
    ignored_auth,
]
EXAMPLES_PER_OPERATION = 100
WEBHOOK_EXAMPLES = 200
FUZZ_SETTINGS = settings(
    derandomize=True,
    database=None,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)


@pytest.fixture(scope="module")
def api(product: Product) -> BaseSchema:
    """The OpenAPI document generated from the resolvers now, pointed at the local gateway."""
    document = openapi_document()
    assert document == OPENAPI_FILE.read_text(), "docs/openapi.json is stale: run `make openapi`"
    schema = schemathesis.openapi.from_dict(json.loads(document))
    schema.config.update(base_url=product.url)
    schema.config.generation.update(
        modes=[GenerationMode.POSITIVE, GenerationMode.NEGATIVE], database="none"
    )
    return schema


def test_every_documented_operation_is_fuzzed() -> None:
    documented = {
        (method.upper(), path)
        for path, item in json.loads(openapi_document())["paths"].items()
        for method in item
    }
    assert documented == set(OPERATIONS)


@pytest.mark.parametrize(("method", "path"), OPERATIONS, ids=[f"{m} {p}" for m, p in OPERATIONS])
def test_generated_requests_get_documented_answers_and_never_a_5xx(
    api: BaseSchema, product: Product, method: str, path: str
) -> None:
    operation = api[path][method]
    strategies = [
        operation.as_strategy(GenerationMode.POSITIVE),
        operation.as_strategy(GenerationMode.NEGATIVE),
    ]
    if path == "/billing/invoices":
        # Cursors are opaque: a generated one is never ours. This one is (the page
        # before tomorrow), so valid requests reach the query too.
        cursor = encode_cursor(invoice_sort_key(int(time.time()) + 86400, "in_fuzz"))
        strategies.append(operation.as_strategy(GenerationMode.POSITIVE, query={"cursor": cursor}))
    user = product.deployment.demo_user  # a subscriber
    if path == "/checkout-sessions":
        # A free user, and plans the deployment sells (a generated key never is one).
        user = "fuzz-buyer"
        for plan in ("pro_monthly", "basic_monthly"):
            strategies.append(operation.as_strategy(GenerationMode.POSITIVE, body={"plan": plan}))
    strategy = st.one_of(strategies)
    authorization = {"Authorization": f"Bearer {product.token(user)}"}
    session = requests.Session()
    statuses: Counter[int] = Counter()

    @settings(FUZZ_SETTINGS, max_examples=EXAMPLES_PER_OPERATION)
    @given(case=strategy)
    def check(case: Case[Any]) -> None:
        response = case.call(session=session, headers=authorization, timeout=40)
        statuses[response.status_code] += 1
        case.validate_response(response, checks=CHECKS, headers=authorization)

    check()
    # The run reached the operation's logic, not only its input validation.
    assert statuses, "no request was sent"
    if path != "/webhooks/stripe":
        assert any(200 <= status < 300 for status in statuses), statuses
    if path != "/plans":  # it takes no input: nothing to refuse
        assert any(400 <= status < 500 for status in statuses), statuses


# --- the webhook route ------------------------------------------------------------------------

HEADER_NAMES = st.sampled_from(
    ["content-type", "content-encoding", "x-forwarded-for", "user-agent", "stripe-signature"]
)
# What an HTTP header can carry.
HEADER_VALUES = st.text(st.characters(min_codepoint=0x21, max_codepoint=0x7E), max_size=80)
JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)


def test_arbitrary_webhook_requests_are_400_and_store_nothing(product: Product) -> None:
    secret = product.deployment.webhook_secret
    # Bodies the stand-in sent to this endpoint (the demo customer's events), byte for byte.
    endpoint = product.deployment.webhook_endpoint_id
    genuine = []
    for event in product.stripe.v1.events.list(params={"limit": 20}).data:
        request = product.standin.state.webhook_delivery(event.id, endpoint)
        assert request is not None
        genuine.append(request.body)
    events = [json.loads(body) for body in genuine]

    # Not events at all: whatever signs them, they are refused (signed: malformed).
    opaque = st.one_of(
        st.binary(max_size=600),
        st.text(max_size=300).map(str.encode),
        JSON.map(lambda value: json.dumps(value).encode()),
    )
    # Events, genuine or edited by a forger, that nobody with the secret signed.
    forged = st.one_of(
        st.sampled_from(genuine).map(str.encode),
        st.sampled_from(events).flatmap(tampered_event),
    )

    def bad_signatures(body: bytes) -> st.SearchStrategy[str | None]:
        now = int(time.time())
        text = body.decode("utf-8", "replace")
        return st.one_of(
            st.none(),
            HEADER_VALUES,
            st.builds(
                lambda t, digest: f"t={t},v1={digest}",
                st.integers(0, 2**40),
                st.text("0123456789abcdef", min_size=64, max_size=64),
            ),
            # The right secret, but for other bytes, or too long ago (a replay).
            st.just(signature_header(text + " ", secret, now)),
            st.integers(301, 10**6).map(lambda age: signature_header(text, secret, now - age)),
            # Another endpoint's secret, or no Stripe secret at all.
            st.just(signature_header(text, "whsec_" + "0" * 32, now)),
            st.just(stripe.WebhookSignature.generate_signature_header(text, "not-the-secret")),
        )

    @st.composite
    def requests_(draw: st.DrawFn) -> tuple[bytes, dict[str, str]]:
        headers = draw(st.dictionaries(HEADER_NAMES, HEADER_VALUES, max_size=3))
        headers.pop("stripe-signature", None)
        if draw(st.booleans()):
            body = draw(forged)
            signature = draw(bad_signatures(body))
        else:
            body = draw(opaque)
            signature = draw(
                bad_signatures(body) | st.builds(fresh, st.just(body), st.just(secret))
            )
        if signature is not None:
            headers["Stripe-Signature"] = signature
        return body, headers

    before = product.items()
    session = requests.Session()
    codes: Counter[str] = Counter()

    @settings(FUZZ_SETTINGS, max_examples=WEBHOOK_EXAMPLES)
    @given(request=requests_())
    def check(request: tuple[bytes, dict[str, str]]) -> None:
        body, headers = request
        response = session.post(
            f"{product.url}/webhooks/stripe", data=body, headers=headers, timeout=40
        )
        assert response.status_code == 400, (response.status_code, response.text)
        error = response.json()["error"]
        assert error["code"] in ("invalid_signature", "malformed_body"), error
        assert error["message"]
        codes[error["code"]] += 1

    check()
    assert codes["invalid_signature"] > 0
    assert codes["malformed_body"] > 0
    assert product.items() == before, "a rejected webhook changed the table"


def fresh(body: bytes, secret: str) -> str:
    """A valid signature of ``body`` now (only for bodies that are not events)."""
    return signature_header(body.decode("utf-8", "replace"), secret, int(time.time()))


@st.composite
def tampered_event(draw: st.DrawFn, event: dict[str, Any]) -> bytes:
    """A genuine event with one field changed (a forger's edit), as bytes."""
    forged = json.loads(json.dumps(event))
    field = draw(st.sampled_from(["id", "type", "created", "livemode"]))
    forged[field] = draw(JSON)
    return json.dumps(forged).encode()
