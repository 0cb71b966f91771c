"""No secret, card number or pre-signed URL in any log line of any function, on any path.

Each function runs in-process, as on Lambda, against moto and the Stripe
stand-in, with a known Stripe secret key, a known webhook signing secret and
a card number pushed through its success and error paths. Logging is as
verbose as a deployment can make it: the functions' Powertools loggers at
DEBUG (``LogLevel=DEBUG``) and Lambda's application log level at DEBUG too
(Advanced Logging Controls, one switch in the console), which lets every
library logger write at DEBUG; ``billing.aws.library_logs`` caps the ones that
would write secrets (the last test shows what they write without the caps).
Every record is captured (``tests.security.logcapture``; the test doubles' own
loggers excepted); an uncaught exception counts as logged too (the Lambda
runtime logs it). Answers to the browser are checked for the same values and
for Stripe object ids.
"""

from __future__ import annotations

import base64
import json
import logging
import re
import time
import traceback
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, urlsplit

import boto3
import pytest

from billing.aws.library_logs import LIBRARY_LOG_LEVELS
from billing.provisioning import answer as custom_resource
from billing.stripe_api.client import get_stripe_client, reset_stripe_client
from functions.backfill.app import lambda_handler as backfill
from functions.billing.app import lambda_handler as billing
from functions.invoices.app import lambda_handler as invoices_page
from functions.portal_session import app as portal_session_app
from functions.webhook.app import lambda_handler as webhook
from sandbox.cloudformation import ResponseReceiver
from tests.conftest import SECRET_NAME, TABLE, forget_cached_clients
from tests.security.conftest import (
    CARD_NUMBER,
    STRIPE_SECRET_KEY,
    WEBHOOK_SIGNING_SECRET,
    WRONG_STRIPE_KEY,
)
from tests.security.logcapture import LogCapture, capture_logs
from tests.support.cloudformation import DeadlineContext, cfn_event, fresh_module
from tests.support.events import http_event
from tests.support.lambda_context import HttpResult, LambdaContext
from tests.support.portal import STRIPE_ID, subscribed_user
from tests.support.stripe_seed import Account
from tests.support.webhooks import delivery, events_from_changes, stripe_event

# A user's access token: a credential, like the secrets.
BEARER_TOKEN = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJzZWNwcm9iZSJ9.SecProbeTokenSignature8Jd2"
PRESIGNED_SIGNATURE = "SecProbePresignedSig5Vn7Qe1Wc4"
CARD_VARIANTS = (CARD_NUMBER, "4242 4242 4242 4242", "4242-4242-4242-4242")
# Secrets whose values the test cannot know in advance (made by the stand-in):
# their shapes must not appear in a log line at all.
SECRET_SHAPES = {
    "Stripe secret or restricted key": re.compile(r"\b[sr]k_(test|live)_[A-Za-z0-9]"),
    "webhook signing secret": re.compile(r"\bwhsec_[A-Za-z0-9]"),
    "SetupIntent or PaymentIntent client secret": re.compile(r"\b(seti|pi)_[A-Za-z0-9]+_secret_"),
    "pre-signed URL": re.compile(r"X-Amz-Signature=", re.IGNORECASE),
}

# Stripe ids beyond STRIPE_ID's (the objects the snapshot is built from) that a
# browser must not see either: accounts, charges, intents, endpoints, tokens...
OTHER_STRIPE_IDS = re.compile(r"\b(acct|ch|cs|pi|py|txn|we|ii|src|tok|re|cbtxn)_[A-Za-z0-9]{8,}")

Handler = Callable[[dict[str, Any], Any], Any]


@dataclass
class Probe:
    """The values that must never be logged, and what the functions answered."""

    logs: LogCapture
    secrets: set[str] = field(
        default_factory=lambda: {
            STRIPE_SECRET_KEY,
            WRONG_STRIPE_KEY,
            WEBHOOK_SIGNING_SECRET,
            CARD_NUMBER,
            BEARER_TOKEN,
            PRESIGNED_SIGNATURE,
        }
    )
    browser_answers: list[HttpResult] = field(default_factory=list)

    def call(self, handler: Handler, event: dict[str, Any], context: Any = None) -> Any:
        """Invoke as Lambda does; an uncaught exception is logged, as the runtime logs it."""
        try:
            return handler(event, context or LambdaContext())
        except Exception as error:  # the runtime's "[ERROR] ..." line and traceback
            self.logs.lines.append("".join(traceback.format_exception(error)))
            return None

    def http(self, handler: Handler, event: dict[str, Any], *, browser: bool = True) -> HttpResult:
        if browser:
            event.setdefault("headers", {})["authorization"] = f"Bearer {BEARER_TOKEN}"
        response = self.call(handler, event)
        assert response is not None, "API functions answer every request"
        raw = response.get("body") or ""
        headers = {k.lower(): v for k, v in (response.get("headers") or {}).items()}
        result = HttpResult(response["statusCode"], json.loads(raw) if raw else None, headers, raw)
        if browser:
            self.browser_answers.append(result)
        return result

    def assert_clean(self) -> None:
        leaks = self.logs.leaks(sorted(self.secrets))
        for what, shape in SECRET_SHAPES.items():
            if hits := [line for line in self.logs.lines if shape.search(line)]:
                leaks[what] = hits
        assert not leaks, f"secrets in logs: {json.dumps(leaks, indent=1)[:4000]}"
        server_side = {STRIPE_SECRET_KEY, WRONG_STRIPE_KEY, WEBHOOK_SIGNING_SECRET}
        for answer in self.browser_answers:
            # The one Stripe value the API hands out on purpose (README, POST /setup-intents).
            body = answer.raw + json.dumps(answer.headers)
            if isinstance(answer.body, dict) and "client_secret" in answer.body:
                body = body.replace(answer.body["client_secret"], "")
            for value in (*server_side, PRESIGNED_SIGNATURE, *CARD_VARIANTS):
                assert value not in body, f"{value} in a response: {body}"
            assert not STRIPE_ID.search(body), f"Stripe id in a response: {body}"
            assert not OTHER_STRIPE_IDS.search(body), f"Stripe id in a response: {body}"


@pytest.fixture
def probe(monkeypatch: pytest.MonkeyPatch) -> Iterator[Probe]:
    """Verbose logging, captured; the test's last word is :meth:`Probe.assert_clean`."""
    monkeypatch.setenv("POWERTOOLS_LOG_LEVEL", "DEBUG")
    with capture_logs() as logs:
        yield Probe(logs)


def use_stripe_key(value: str) -> None:
    boto3.client("secretsmanager").put_secret_value(SecretId=SECRET_NAME, SecretString=value)
    forget_cached_clients()


# --- POST /portal-sessions, POST /setup-intents ----------------------------------------------


def test_portal_session_function(configured: Account, probe: Probe) -> None:
    def post(
        path: str,
        body: Any = None,
        *,
        raw: str | None = None,
        user: str = "user-sec-1",
        browser: bool = True,
    ) -> HttpResult:
        name = "post_setup_intent" if path == "/setup-intents" else "post_portal_session"
        event = http_event(f"portal_session/{name}", user=user)
        if raw is not None:
            event["body"] = raw
        elif body is not None:
            event["body"] = json.dumps(body)
        return probe.http(portal_session_app.lambda_handler, event, browser=browser)

    # Success paths: a customer is created, a session and a SetupIntent.
    assert post("/portal-sessions", {}).status == 200
    setup = post("/setup-intents")
    assert setup.status == 200
    probe.secrets.add(setup.body["client_secret"])
    subscribed_user(configured, "user-sec-2")
    cancel = post("/portal-sessions", {"flow": "subscription_cancel"}, user="user-sec-2")
    assert cancel.status == 200
    # A card number wherever a client could put one.
    ok_url = f"https://app.example.com/account?card={CARD_NUMBER}"
    assert post("/portal-sessions", {"return_url": ok_url}).status == 200
    for body in (
        {"card_number": CARD_NUMBER},
        {"card_number": "4242 4242 4242 4242", "cvc": "123"},
        {"quantity": CARD_NUMBER, "flow": "subscription_update_confirm", "plan": "pro_yearly"},
        {"return_url": f"https://evil.example/{CARD_NUMBER}"},
        {"locale": CARD_NUMBER},
    ):
        assert post("/portal-sessions", body, user="user-sec-2").status in (400, 409, 422)
    assert post("/portal-sessions", raw=f'{{"card": {CARD_NUMBER}').status == 400
    # A lookup key is looked up in DynamoDB and Stripe: neither request may be logged.
    # (The 422 names the unknown key: the caller's own input, so not a browser check.)
    unknown = {"flow": "subscription_update_confirm", "plan": CARD_NUMBER}
    assert post("/portal-sessions", unknown, user="user-sec-2", browser=False).status == 422
    # Stripe failing, then rejecting the key.
    configured.inject_fault(status=500, count=10)
    assert post("/portal-sessions", {}, user="user-sec-3").status == 502
    configured.clear_faults()
    configured.inject_fault(status=429, count=10)
    assert post("/portal-sessions", {}, user="user-sec-3").status == 503
    configured.clear_faults()
    use_stripe_key(WRONG_STRIPE_KEY)
    assert post("/portal-sessions", {}, user="user-sec-3").status == 502
    use_stripe_key(STRIPE_SECRET_KEY)
    # Storage failing.
    boto3.client("dynamodb").delete_table(TableName=TABLE)
    assert post("/portal-sessions", {}).status == 503

    assert probe.logs.containing("Stripe call failed")
    assert probe.logs.containing("DynamoDB request failed")
    probe.assert_clean()


# --- POST /webhooks/stripe, then GET /billing -------------------------------------------------


@pytest.fixture
def signing_secret(deployment: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> str:
    """The webhook function's secret, as the webhook-endpoint resource writes it."""
    arn = boto3.client("secretsmanager").create_secret(
        Name="WebhookSigningSecret-SecProbe", SecretString=f"we_probe1={WEBHOOK_SIGNING_SECRET}"
    )["ARN"]
    monkeypatch.setenv("WEBHOOK_SECRET_NAME", arn)
    forget_cached_clients()
    return arn


def test_webhook_and_billing_functions(
    configured: Account, signing_secret: str, probe: Probe
) -> None:
    def deliver(event: dict[str, Any] | str, **kwargs: Any) -> HttpResult:
        kwargs.setdefault("secret", WEBHOOK_SIGNING_SECRET)
        return probe.http(webhook, delivery(event, **kwargs), browser=False)

    subscription = subscribed_user(configured, "user-sec-4")
    events = events_from_changes(configured.changes())
    # A card number inside a signed body: the body is never logged.
    customer = next(e for e in events if e["type"] == "customer.created")
    customer["data"]["object"]["description"] = f"card {CARD_NUMBER}"
    for event in events:
        assert deliver(event).status == 200
    # Rejected deliveries: wrong secret, a header carrying a card number, none, stale,
    # a signed body that is not an event, a body that is not base64.
    event = events[0]
    assert deliver(event, secret="whsec_SomeoneElsesSecret1234").status == 400
    assert deliver(event, signature=f"t={int(time.time())},v1={CARD_NUMBER}").status == 400
    assert deliver(event, signature=None).status == 400
    assert deliver(event, timestamp=int(time.time()) - 3600).status == 400
    assert deliver(f'{{"card": "{CARD_NUMBER}"').status == 400
    broken = delivery(event, secret=WEBHOOK_SIGNING_SECRET, base64_body=True)
    broken["body"] = f"%{CARD_NUMBER}%"
    assert probe.http(webhook, broken, browser=False).status == 400
    # A SetupIntent of ours makes its card the default: a Stripe call, failing.
    card = next(e for e in events if e["type"] == "payment_method.attached")["data"]["object"]
    setup_intent = {
        "id": "seti_SecProbe1",
        "object": "setup_intent",
        "customer": card["customer"],
        "payment_method": card["id"],
        "status": "succeeded",
        "metadata": {"purpose": "default_payment_method", "user_id": "user-sec-4"},
    }
    succeeded = stripe_event(
        "setup_intent.succeeded", setup_intent, created=int(time.time()), event_id="evt_SecProbe1"
    )
    configured.inject_fault(status=500, count=10)
    assert deliver(succeeded).status in (502, 503)
    configured.clear_faults()
    use_stripe_key(WRONG_STRIPE_KEY)
    assert deliver(succeeded).status in (502, 503)
    use_stripe_key(STRIPE_SECRET_KEY)
    assert deliver(succeeded).status == 200

    # What the browser reads back: the snapshot and the invoice pages.
    snapshot = probe.http(billing, http_event("billing/get_billing", user="user-sec-4"))
    assert snapshot.status == 200
    assert snapshot.body["status"] == subscription.status
    assert snapshot.body["payment_method"]["last4"] == "4242"
    invoices = http_event("invoices/get_invoices", user="user-sec-4")
    for cursor in (CARD_NUMBER, base64.urlsafe_b64encode(CARD_NUMBER.encode()).decode()):
        invoices["queryStringParameters"] = {"cursor": cursor}
        invoices["rawQueryString"] = f"cursor={cursor}"
        assert probe.http(invoices_page, invoices).status == 400
    boto3.client("dynamodb").delete_table(TableName=TABLE)
    assert probe.http(billing, http_event("billing/get_billing", user="user-sec-4")).status == 503
    assert deliver(events[0]).status == 503

    assert probe.logs.containing("Webhook handled")
    assert probe.logs.containing("Webhook rejected")
    assert probe.logs.containing("DynamoDB request failed")
    probe.assert_clean()


# --- the custom resources -----------------------------------------------------------------------


def presigned(receiver: ResponseReceiver, request_id: str) -> str:
    """A response URL shaped like CloudFormation's, with a recognisable signature."""
    url = receiver.url(request_id).replace("X-Amz-Signature=local", "")
    return f"{url}X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Signature={PRESIGNED_SIGNATURE}"


def custom_resource_event(
    name: str, receiver: ResponseReceiver, probe: Probe, **fields: Any
) -> dict[str, Any]:
    event = cfn_event(name, receiver, **fields)
    event["ResponseURL"] = presigned(receiver, event["RequestId"])
    probe.secrets.add(event["ResponseURL"])
    return event


def answers(
    probe: Probe, module: Any, receiver: ResponseReceiver, event: dict[str, Any]
) -> dict[str, Any]:
    """Run one request; the one answer CloudFormation received."""
    receiver.answers.clear()
    probe.call(module.lambda_handler, event, DeadlineContext(60))
    answer = receiver.only_answer()
    query = parse_qs(urlsplit(event["ResponseURL"]).query)
    assert query["X-Amz-Signature"] == [PRESIGNED_SIGNATURE]
    return answer


@contextmanager
def no_backoff(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Answering retries without sleeping (the retries themselves still happen)."""

    class _Time:
        sleep = staticmethod(lambda _seconds: None)

    with monkeypatch.context() as patch:
        patch.setattr(custom_resource, "time", _Time)
        yield


def test_portal_config_function(
    configured: Account,
    receiver: ResponseReceiver,
    probe: Probe,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    with fresh_module("functions.portal_config.app") as module:
        created = answers(
            probe, module, receiver, custom_resource_event("portal_config/create", receiver, probe)
        )
        assert created["Status"] == "SUCCESS", created["Reason"]
        config_id = created["PhysicalResourceId"]

        def update(**fields: Any) -> dict[str, Any]:
            event = custom_resource_event(
                "portal_config/update", receiver, probe, PhysicalResourceId=config_id, **fields
            )
            return answers(probe, module, receiver, event)

        assert update()["Status"] == "SUCCESS"
        # Stripe failing, the key rejected, the properties invalid, the key missing.
        configured.inject_fault(status=500, count=10)
        assert update()["Status"] == "FAILED"
        configured.clear_faults()
        use_stripe_key(WRONG_STRIPE_KEY)
        assert "secret key" in update()["Reason"]
        use_stripe_key(STRIPE_SECRET_KEY)
        props = custom_resource_event("portal_config/update", receiver, probe)["ResourceProperties"]
        props["Features"]["SubscriptionCancel"]["Mode"] = "whenever"
        assert update(ResourceProperties=props)["Status"] == "FAILED"
        boto3.client("secretsmanager").delete_secret(
            SecretId=SECRET_NAME, ForceDeleteWithoutRecovery=True
        )
        forget_cached_clients()
        assert update()["Status"] == "FAILED"
        # CloudFormation refusing the answer, then unreachable.
        receiver.refuse_with = [503, 403]
        event = custom_resource_event(
            "portal_config/delete", receiver, probe, PhysicalResourceId="not-created"
        )
        probe.call(module.lambda_handler, event, DeadlineContext(60))
        with no_backoff(monkeypatch):
            event["ResponseURL"] = (
                f"http://127.0.0.1:9/{event['RequestId']}?X-Amz-Signature={PRESIGNED_SIGNATURE}"
            )
            probe.call(module.lambda_handler, event, DeadlineContext(60))

    # Initialisation failing (a setting missing): answered, and logged.
    with monkeypatch.context() as patch:
        patch.delenv("STRIPE_SECRET_NAME")
        forget_cached_clients()
        with fresh_module("functions.portal_config.app") as broken:
            event = custom_resource_event("portal_config/create", receiver, probe)
            assert answers(probe, broken, receiver, event)["Status"] == "FAILED"
    with fresh_module("functions.portal_config.app"):  # whoever imports it next gets a working one
        pass

    assert probe.logs.containing("Answered CloudFormation")
    assert probe.logs.containing("Custom resource request failed")
    assert probe.logs.containing("CloudFormation refused the answer")
    assert probe.logs.containing("Could not reach CloudFormation")
    assert probe.logs.containing("Initialisation failed")
    probe.assert_clean()


def test_webhook_endpoint_function(
    configured: Account, receiver: ResponseReceiver, probe: Probe
) -> None:
    secret_arn = boto3.client("secretsmanager").create_secret(
        Name="WebhookSigningSecret-SecProbe", SecretString="GeneratedPlaceholder0123456789ab"
    )["ARN"]

    def request(kind: str, **properties: Any) -> dict[str, Any]:
        event = custom_resource_event(f"webhook_endpoint/{kind}", receiver, probe)
        for key in ("ResourceProperties", "OldResourceProperties"):
            if key in event:
                event[key] = {**event[key], "SecretId": secret_arn}
        event["ResourceProperties"].update(properties)
        return event

    def stored() -> str:
        value: str = boto3.client("secretsmanager").get_secret_value(SecretId=secret_arn)[
            "SecretString"
        ]
        return value

    with fresh_module("functions.webhook_endpoint.app") as module:
        first = answers(probe, module, receiver, request("create"))
        assert first["Status"] == "SUCCESS", first["Reason"]
        endpoint = first["PhysicalResourceId"]
        assert f"{endpoint}=whsec_" in stored()
        # Rolling the secret registers a second endpoint; both secrets are stored.
        rolled = request("update", SecretRotation="rolled")
        rolled["PhysicalResourceId"] = endpoint
        second = answers(probe, module, receiver, rolled)
        assert second["Status"] == "SUCCESS", second["Reason"]
        assert stored().count("whsec_") == 2
        in_place = request("update", SecretRotation="rolled")
        in_place["OldResourceProperties"]["SecretRotation"] = "rolled"
        in_place["PhysicalResourceId"] = second["PhysicalResourceId"]
        assert answers(probe, module, receiver, in_place)["Status"] == "SUCCESS"
        delete = request("delete")
        delete["PhysicalResourceId"] = endpoint
        assert answers(probe, module, receiver, delete)["Status"] == "SUCCESS"
        # The secret cannot be stored: the new endpoint (and its secret) is dropped again.
        lost = request("create", SecretId=secret_arn.replace("SecProbe", "Missing"))
        assert answers(probe, module, receiver, lost)["Status"] == "FAILED"
        configured.inject_fault(status=500, count=10)
        assert answers(probe, module, receiver, request("create"))["Status"] == "FAILED"
        configured.clear_faults()
        use_stripe_key(WRONG_STRIPE_KEY)
        assert answers(probe, module, receiver, request("create"))["Status"] == "FAILED"

    assert probe.logs.containing("Webhook endpoint registered")
    assert probe.logs.containing("Webhook endpoint deleted")
    assert probe.logs.containing("Custom resource request failed")
    probe.assert_clean()


# --- the backfill -------------------------------------------------------------------------------


def test_backfill_function(configured: Account, probe: Probe) -> None:
    # Events that never reached the webhook, so the replay has work to do.
    configured.standin.configure_deliveries(retry_schedule=[])
    configured.client.v1.webhook_endpoints.create(
        params={"url": "http://127.0.0.1:9/", "enabled_events": ["*"]}
    )
    subscribed_user(configured, "user-sec-5")
    configured.standin.wait_idle()
    report = probe.call(backfill, {"replay": True})
    assert report is not None
    assert report["counts"]["subscription"]["applied"] == 1
    configured.inject_fault(status=500, count=10)
    assert probe.call(backfill, {"replay": True}) is None  # raised; the runtime logs it
    configured.clear_faults()
    use_stripe_key(WRONG_STRIPE_KEY)
    assert probe.call(backfill, {"replay": False}) is None

    assert probe.logs.containing("Backfill done")
    assert probe.logs.containing("Traceback")
    probe.assert_clean()


# --- the check itself ---------------------------------------------------------------------------


def test_the_capture_sees_every_logger_and_would_catch_a_leak(
    deployment: dict[str, Any], probe: Probe
) -> None:
    """Without the library caps, botocore's DEBUG lines hold the key: the capture sees them."""
    library_loggers = [logging.getLogger(name) for name in LIBRARY_LOG_LEVELS]
    saved = [(logger, logger.level) for logger in library_loggers]
    try:
        for logger in library_loggers:
            logger.setLevel(logging.NOTSET)
        reset_stripe_client()
        get_stripe_client()
    finally:
        for logger, level in saved:
            logger.setLevel(level)
    assert STRIPE_SECRET_KEY in probe.logs.leaks([STRIPE_SECRET_KEY])
    # And a function's own logger is captured with its JSON fields.
    portal_session_app.logger.info("probe", extra={"note": WEBHOOK_SIGNING_SECRET})
    (line,) = probe.logs.containing(WEBHOOK_SIGNING_SECRET)
    assert json.loads(line.split("} {")[0] + "}")["note"] == WEBHOOK_SIGNING_SECRET
    with pytest.raises(AssertionError, match="secrets in logs"):
        probe.assert_clean()
    # The answers' check fails on a Stripe id, whatever else is clean.
    answered = Probe(LogCapture())
    answered.browser_answers.append(HttpResult(200, None, {}, '{"customer":"cus_Nq2x8Rk4Lm"}'))
    with pytest.raises(AssertionError, match="Stripe id in a response"):
        answered.assert_clean()
