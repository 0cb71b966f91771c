"""Faults: DynamoDB throttling and 5xx, Stripe 429, 500 and timeouts, over HTTP.

Everything runs as ``make dev`` runs it: the functions behind the local
gateway, moto's server, the Stripe stand-in. DynamoDB faults are injected into
the functions' own boto3 client below its retry handler (``faults``), Stripe
faults by the stand-in (``POST /_standin/faults``), so the clients' retries
and timeouts are the ones a deployed function has. Each test checks the
documented answer (503/502 with ``Retry-After``, within the function's
Timeout), that nothing was half-written, and that the work completes once the
fault clears.
"""

from __future__ import annotations

import json
import time
from typing import Any

import pytest
import requests

from billing.aws.secrets import secrets_provider
from billing.aws.settings import get_settings
from billing.store.keys import event_key
from sandbox.stripe_standin.core import WebhookDelivery
from sandbox.stripe_standin.webhooks import signature_header
from tests.robustness.conftest import Product
from tests.robustness.faults import (
    INTERNAL_ERROR,
    SECRETS_INTERNAL_ERROR,
    THROTTLED,
    THROTTLING,
    UNAVAILABLE,
    AwsError,
    aws_failing,
)
from tests.robustness.oracle import expected_projection, projected, served
from tests.support.aws import template

# API Gateway answers a bare 500 once a function runs past its Timeout.
FUNCTION_TIMEOUT = float(template()["Globals"]["Function"]["Timeout"])
ATTEMPTS = 3  # the layer's DynamoDB client: one call and two retries
SECRETS_ATTEMPTS = 2  # billing.aws.secrets: one call and one retry


def assert_retry_later(response: requests.Response, status: int, code: str) -> None:
    """The documented answer to a transient failure: status, error code, Retry-After."""
    assert response.status_code == status, response.text
    assert response.json()["error"]["code"] == code
    assert response.json()["error"]["message"]
    assert int(response.headers["Retry-After"]) > 0


def timed(call: Any) -> tuple[requests.Response, float]:
    started = time.monotonic()
    response = call()
    return response, time.monotonic() - started


def subscribe(product: Product, user: str) -> str:
    """A customer of ``user`` with a card and a Pro subscription, made on the stand-in."""
    api = product.stripe.v1
    customer = api.customers.create(
        params={"email": f"{user}@example.com", "metadata": {"user_id": user}}
    ).id
    card = api.payment_methods.attach("pm_card_visa", params={"customer": customer})
    api.customers.update(customer, params={"invoice_settings": {"default_payment_method": card.id}})
    price = api.prices.list(params={"lookup_keys": ["pro_monthly"]}).data[0].id
    api.subscriptions.create(params={"customer": customer, "items": [{"price": price}]})
    return customer


def events_of(product: Product, customer: str) -> list[str]:
    """Ids of the events about ``customer``'s objects, oldest first."""
    found = []
    for event in product.stripe.v1.events.list(params={"limit": 100}).auto_paging_iter():
        obj = event.to_dict()["data"]["object"]
        if customer in (obj.get("id"), obj.get("customer")):
            found.append(event.id)
    return found[::-1]


def customers_of(product: Product, user: str) -> list[str]:
    customers = product.stripe.v1.customers.list(params={"limit": 100}).auto_paging_iter()
    return [c.id for c in customers if (c.to_dict().get("metadata") or {}).get("user_id") == user]


def deliver(product: Product, request: WebhookDelivery) -> requests.Response:
    """One delivery of the stand-in's webhook ``request``, signed now, as Stripe sends it."""
    header = signature_header(request.body, request.secret, int(time.time()))
    return requests.post(
        f"{product.url}/webhooks/stripe",
        data=request.body.encode(),
        headers={"Content-Type": "application/json", "Stripe-Signature": header},
        timeout=40,
    )


def stripe_faults(product: Product, **spec: Any) -> None:
    requests.post(f"{product.standin.url}/_standin/faults", json=spec, timeout=5).raise_for_status()


@pytest.fixture
def no_stripe_faults(product: Product) -> Any:
    yield
    requests.delete(f"{product.standin.url}/_standin/faults", timeout=5).raise_for_status()


# --- DynamoDB -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "error", [THROTTLED, THROTTLING, INTERNAL_ERROR, UNAVAILABLE], ids=lambda e: e.code
)
def test_get_billing_rides_out_a_brief_dynamodb_fault_and_answers_503_while_it_lasts(
    product: Product, error: AwsError
) -> None:
    client = product.functions_dynamodb()
    token = product.token(product.deployment.demo_user)
    baseline = product.call("GET", "/billing", token)
    assert baseline.status_code == 200, baseline.text

    with aws_failing(client, error, count=ATTEMPTS - 1) as failed:
        brief = product.call("GET", "/billing", token)
    assert failed == ["Query"] * (ATTEMPTS - 1)
    assert brief.status_code == 200, brief.text
    assert brief.json() == baseline.json()

    with aws_failing(client, error) as failed:
        outage, seconds = timed(lambda: product.call("GET", "/billing", token))
    assert_retry_later(outage, 503, "storage_unavailable")
    assert failed == ["Query"] * ATTEMPTS
    assert seconds < FUNCTION_TIMEOUT - 2, f"{seconds:.1f} s: too close to the Lambda timeout"

    assert product.call("GET", "/billing", token).json() == baseline.json()


def test_a_failed_link_write_answers_503_writes_nothing_and_the_retry_links_one_customer(
    product: Product,
) -> None:
    user = "fault-link-user"
    token = product.token(user)
    product.standin.hold_deliveries()  # the customer.created webhook would link it too
    try:
        before = product.items()
        with aws_failing(
            product.functions_dynamodb(), THROTTLED, operations={"TransactWriteItems"}
        ) as failed:
            response, seconds = timed(
                lambda: product.call("POST", "/portal-sessions", token, json={})
            )
        assert_retry_later(response, 503, "storage_unavailable")
        assert failed == ["TransactWriteItems"] * ATTEMPTS
        assert seconds < FUNCTION_TIMEOUT - 2
        assert product.items() == before, "the failed request wrote something"
        (customer,) = customers_of(product, user)  # created on Stripe, idempotently

        retried = product.call("POST", "/portal-sessions", token, json={})
        assert retried.status_code == 200, retried.text
        assert retried.json()["url"].startswith(f"{product.standin.url}/p/session/")
        assert customers_of(product, user) == [customer]
        links = {item["pk"]["S"]: item for item in product.items() if item["sk"]["S"] == "LINK"}
        assert links[f"USER#{user}"]["customer_id"]["S"] == customer
        assert links[f"CUSTOMER#{customer}"]["user_id"]["S"] == user
    finally:
        product.standin.release_deliveries()
        product.standin.wait_idle(timeout=30)


FAILED_COMMITS = 3


def test_webhooks_failing_on_dynamodb_answer_5xx_and_stripe_s_retries_converge(
    product: Product,
) -> None:
    user = "fault-retry-user"
    started_at = len(product.standin.deliveries())
    with aws_failing(
        product.functions_dynamodb(),
        INTERNAL_ERROR,
        operations={"TransactWriteItems"},
        count=FAILED_COMMITS * ATTEMPTS,
    ) as failed:
        customer = subscribe(product, user)
        deadline = time.monotonic() + 30
        while len(failed) < FAILED_COMMITS * ATTEMPTS and time.monotonic() < deadline:
            time.sleep(0.1)
    product.standin.wait_idle(timeout=60)

    events = events_of(product, customer)
    attempts = [a for a in product.standin.deliveries()[started_at:] if a.event in events]
    assert sorted(a.status or 0 for a in attempts if not a.succeeded) == [503] * FAILED_COMMITS
    for event in events:
        statuses = [a.status for a in attempts if a.event == event]
        assert statuses, event
        assert statuses[-1] == 200, (event, statuses)

    # The projection is the one Stripe's final objects give, each event recorded once...
    (expected,) = expected_projection(product.stripe, [customer])
    items = product.items()
    assert projected(items, user) == (expected.slots, expected.invoices)
    recorded = {item["pk"]["S"] for item in items if item["sk"]["S"] == "EVENT"}
    assert {event_key(e) for e in events} <= recorded
    snapshot = product.call("GET", "/billing", product.token(user))
    assert served(snapshot.json()) == expected.snapshot()

    # ... and delivering every event again changes nothing.
    for event in events:
        product.standin.redeliver(event)
    product.standin.wait_idle(timeout=30)
    assert product.items() == items


# --- Secrets Manager ------------------------------------------------------------------------


def test_secrets_manager_down_is_503_with_retry_after_for_sessions_and_webhooks(
    product: Product,
) -> None:
    user = "fault-secrets-user"
    token = product.token(user)
    customer = subscribe(product, user)
    product.standin.wait_idle(timeout=30)
    event = events_of(product, customer)[-1]
    request = product.standin.state.webhook_delivery(event, product.deployment.webhook_endpoint_id)
    assert request is not None

    provider = secrets_provider()
    provider.clear_cache()  # as in a new container: both secrets must be read
    before = product.items()
    with aws_failing(provider.client, SECRETS_INTERNAL_ERROR) as failed:
        session, seconds = timed(lambda: product.call("POST", "/portal-sessions", token, json={}))
        webhook = deliver(product, request)
    assert_retry_later(session, 503, "secrets_unavailable")
    assert_retry_later(webhook, 503, "secrets_unavailable")  # Stripe retries a 5xx
    assert failed == ["GetSecretValue"] * (2 * SECRETS_ATTEMPTS)
    assert seconds < FUNCTION_TIMEOUT - 2, f"{seconds:.1f} s: too close to the Lambda timeout"
    assert product.items() == before, "a request without its secret wrote something"

    recovered = product.call("POST", "/portal-sessions", token, json={})
    assert recovered.status_code == 200, recovered.text
    assert deliver(product, request).status_code == 200


# --- Stripe ---------------------------------------------------------------------------------


@pytest.mark.usefixtures("no_stripe_faults")
@pytest.mark.parametrize("path", ["/portal-sessions", "/setup-intents"])
@pytest.mark.parametrize(
    ("fault", "status", "code"),
    [
        ({"status": 500, "count": 2}, 200, None),  # the Stripe client's retries absorb it
        ({"status": 500, "count": 3}, 502, "stripe_error"),
        ({"status": 429, "count": 1}, 503, "stripe_unavailable"),
    ],
    ids=["500-twice", "500-thrice", "429"],
)
def test_stripe_errors_get_the_documented_answer_and_change_nothing(
    product: Product, path: str, fault: dict[str, Any], status: int, code: str | None
) -> None:
    token = product.token(product.deployment.demo_user)
    changes = len(product.standin.state.changes)
    before = product.items()
    stripe_faults(product, **fault)
    response, seconds = timed(lambda: product.call("POST", path, token, json={}))
    assert seconds < FUNCTION_TIMEOUT - 2
    if code is None:
        assert response.status_code == status, response.text
        return
    assert_retry_later(response, status, code)
    assert len(product.standin.state.changes) == changes, "Stripe changed"
    assert product.items() == before
    # Once Stripe answers again, so does the API.
    assert product.call("POST", path, token, json={}).status_code == 200


@pytest.mark.usefixtures("no_stripe_faults")
def test_a_stripe_that_hangs_is_503_with_retry_after_before_the_lambda_times_out(
    product: Product,
) -> None:
    token = product.token(product.deployment.demo_user)
    # Longer than the client's read timeout, on every attempt.
    hang = get_settings().stripe_read_timeout_seconds + 1
    stripe_faults(product, hang_seconds=hang, count=ATTEMPTS)
    response, seconds = timed(lambda: product.call("POST", "/portal-sessions", token, json={}))
    assert_retry_later(response, 503, "stripe_unavailable")
    assert seconds < FUNCTION_TIMEOUT - 1, f"{seconds:.1f} s"


@pytest.mark.usefixtures("no_stripe_faults")
def test_get_billing_does_not_depend_on_stripe(product: Product) -> None:
    token = product.token(product.deployment.demo_user)
    baseline = product.call("GET", "/billing", token).json()
    stripe_faults(product, status=500, count=1000)
    response = product.call("GET", "/billing", token)
    assert response.status_code == 200
    assert response.json() == baseline


@pytest.mark.usefixtures("no_stripe_faults")
@pytest.mark.parametrize(
    ("fault", "status", "code"),
    [
        ({"status": 500, "count": 3}, 502, "stripe_error"),
        ({"status": 429, "count": 1}, 503, "stripe_unavailable"),
    ],
    ids=["500", "429"],
)
def test_a_webhook_that_needs_stripe_answers_5xx_stores_nothing_and_its_retry_applies_it(
    product: Product, fault: dict[str, Any], status: int, code: str
) -> None:
    user = f"fault-webhook-user-{status}"
    endpoint = product.deployment.webhook_endpoint_id
    product.standin.hold_deliveries()
    try:
        customer = subscribe(product, user)
        # Its customer is not linked yet: the function must ask Stripe whose it is.
        event = next(
            e
            for e in events_of(product, customer)
            if product.stripe.v1.events.retrieve(e).type == "customer.subscription.created"
        )
        request = product.standin.state.webhook_delivery(event, endpoint)
        assert request is not None
        before = product.items()

        stripe_faults(product, **fault)
        failed = deliver(product, request)
        assert_retry_later(failed, status, code)
        assert product.items() == before, "a failed delivery wrote something"

        applied = deliver(product, request)
        assert applied.status_code == 200, applied.text
        assert json.loads(applied.text)["outcome"] == "applied"
        assert any(i["pk"]["S"] == event_key(event) for i in product.items())
    finally:
        product.standin.release_deliveries()
        product.standin.wait_idle(timeout=30)
    (expected,) = expected_projection(product.stripe, [customer])
    assert projected(product.items(), user) == (expected.slots, expected.invoices)
