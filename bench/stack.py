"""The product offline in this process, with hooks that count what each operation sends.

DynamoDB and Secrets Manager are moto (in-process); Stripe is the local stand-in over
real HTTP, seeded with the test catalog and portal configuration; the handlers run
in-process as the Lambda runtime calls them. Two independent counters:

- DynamoDB: a ``before-call.dynamodb`` hook on the product's botocore session
  (``billing.store.table.aws_session``), registered before the product builds its
  clients, so every DynamoDB client the product creates carries it (one count per
  API call; moto never retries).
- Stripe: a wrapper around stripe-python's ``HTTPClient.request_with_retries``, the
  one door of every Stripe call; cross-checked after each operation against the
  stand-in's own log (``GET /_standin/requests``), which would also see a call that
  bypassed the client.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from typing import Any
from unittest import mock
from urllib.parse import urlsplit

import boto3
import stripe
from moto import mock_aws

from billing.aws.session import aws_session
from functions.billing.app import lambda_handler as billing_handler
from functions.catalog_fanout.app import lambda_handler as fanout_handler
from functions.invoices.app import lambda_handler as invoices_handler
from functions.portal_session.app import lambda_handler as session_handler
from sandbox.fast_moto import fast_dynamodb
from sandbox.queues import SqsEventSource
from sandbox.stripe_standin.server import StripeStandIn
from tests.conftest import SECRET_NAME, TABLE, WEBHOOK_SECRET, WEBHOOK_SECRET_NAME
from tests.conftest import forget_cached_clients as forget_warm_state
from tests.support.aws import create_billing_table
from tests.support.events import http_event
from tests.support.lambda_context import HttpResult, invoke
from tests.support.portal import post
from tests.support.stripe_seed import PLANS, Account, seed_account
from tests.support.webhooks import deliver, events_from_changes, stripe_event

__all__ = ["TABLE", "Requests", "Stack", "offline_stack"]

_AWS = {
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing",
}


@dataclass
class Requests:
    """What one operation sent, in order: DynamoDB operation names, Stripe ``METHOD /path``."""

    dynamodb: list[str] = field(default_factory=list)
    stripe: list[str] = field(default_factory=list)


class _Counter:
    def __init__(self) -> None:
        self.current: Requests | None = None

    def on_dynamodb(self, **event: Any) -> None:  # botocore passes keywords only
        if self.current is not None:
            self.current.dynamodb.append(event["model"].name)

    def on_stripe(self, method: str, url: str) -> None:
        if self.current is not None:
            self.current.stripe.append(f"{method.upper()} {urlsplit(url).path}")


@dataclass
class Stack:
    """A seeded account behind the deployment's handlers, and the counters."""

    account: Account
    _counter: _Counter
    environment: dict[str, str]  # what the functions see: table, secrets' names, endpoints
    _delivered: int = 0  # stand-in changes already delivered as webhooks
    _newest: int = 0  # the newest ``created`` among them, or of an event made here

    @contextmanager
    def counting(self) -> Iterator[Requests]:
        """Count what the block sends; fails if the two Stripe counters disagree."""
        self.account.clear_requests_log()
        sent = Requests()
        self._counter.current = sent
        try:
            yield sent
        finally:
            self._counter.current = None
        logged = [f"{r['method']} {r['path']}" for r in self.account.requests_log()]
        if logged != sent.stripe:
            raise RuntimeError(
                f"Stripe counters disagree: the client hook saw {sent.stripe}, "
                f"the stand-in logged {logged}"
            )

    # --- the deployment's routes, in-process ------------------------------------------------

    def snapshot(self, user: str, **headers: str) -> HttpResult:
        event = http_event("billing/get_billing", user=user)
        event["headers"].update(headers)
        return invoke(billing_handler, event)

    def plans(self) -> HttpResult:
        return invoke(billing_handler, http_event("billing/get_plans"))

    def invoices(self, user: str, cursor: str) -> HttpResult:
        event = http_event("invoices/get_invoices", user=user)
        event["queryStringParameters"] = {"cursor": cursor}
        event["rawQueryString"] = f"cursor={cursor}"
        return invoke(invoices_handler, event)

    def portal_session(self, user: str, body: dict[str, Any]) -> HttpResult:
        return post(body, user=user)

    def checkout_session(self, user: str, body: dict[str, Any]) -> HttpResult:
        event = http_event("portal_session/post_checkout_session", body=body, user=user)
        return invoke(session_handler, event)

    def refresh(self, user: str) -> HttpResult:
        event = http_event("portal_session/post_billing_refresh", user=user)
        return invoke(session_handler, event)

    def setup_intent(self, user: str) -> HttpResult:
        return invoke(session_handler, http_event("portal_session/post_setup_intent", user=user))

    def deliver(self, event: dict[str, Any]) -> str:
        """Deliver a signed event to the webhook function; its outcome (or the HTTP status)."""
        result = deliver(event)
        if result.status != 200:
            return f"HTTP {result.status}"
        return str(result.body["outcome"])

    def latest_object(self, object_id: str) -> dict[str, Any]:
        """An object as the stand-in's last change of it shows it (what a webhook carries)."""
        for change in reversed(self.account.changes()):
            obj: dict[str, Any] = change["object"]
            if obj.get("id") == object_id:
                return obj
        raise LookupError(f"no change of {object_id}")

    def fresh_event(
        self, event_type: str, obj: dict[str, Any], *, previous: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        """An event of ``obj`` newer (by a whole second) than every change taken so far, so
        that it applies in the steady state; its id is new as well."""
        self._newest += 1
        return stripe_event(
            event_type,
            obj,
            created=self._newest,
            event_id=f"evt_bench{self._newest}",
            previous=previous,
        )

    def a_second_later(self) -> None:
        """Move the stand-in's clock one second ahead, as if a second had passed: Stripe's
        next change is then a later second than every change so far, never a tie."""
        state = self.account.standin.state
        clock = state.clock
        state.clock = lambda: clock() + 1

    def drain_fanout(self) -> int:
        """Run the catalog fan-out function on every message of its queue, as its SQS
        event source would; the number of invocations."""
        source = SqsEventSource(
            self.environment["CATALOG_FANOUT_QUEUE_URL"],
            fanout_handler,
            function_name="catalog-fanout",
            timeout=300,
        )
        return source.drain()

    def deliver_pending(self) -> int:
        """Deliver every Stripe change not delivered yet, in order, until none is left.

        Events that make the webhook call Stripe (a succeeded SetupIntent) cause new
        changes; those are delivered too, so the projection ends in the steady state.
        """
        count = 0
        while changes := self.skip_pending():
            for event in events_from_changes(changes):
                outcome = self.deliver(event)
                if outcome.startswith("HTTP"):
                    raise RuntimeError(f"{event['type']} {event['id']}: {outcome}")
                count += 1
        return count

    def skip_pending(self) -> list[dict[str, Any]]:
        """The changes not delivered yet, marked delivered without delivering them."""
        changes = self.account.changes()[self._delivered :]
        self._delivered += len(changes)
        self._newest = max([self._newest, *(change["created"] for change in changes)])
        return changes


@contextmanager
def offline_stack() -> Iterator[Stack]:
    """moto + the stand-in + a seeded account + the functions' environment, for one run."""
    counter = _Counter()
    original_send = stripe.HTTPClient.request_with_retries

    def counted_send(client: Any, method: str, url: str, *args: Any, **kwargs: Any) -> Any:
        counter.on_stripe(method, url)
        return original_send(client, method, url, *args, **kwargs)

    with ExitStack() as resources:
        resources.enter_context(mock.patch.dict(os.environ, _AWS))
        resources.enter_context(mock_aws())
        resources.enter_context(fast_dynamodb())
        standin = resources.enter_context(StripeStandIn())
        resources.enter_context(_quiet_function_logs())
        create_billing_table(TABLE)
        secrets = boto3.client("secretsmanager")
        secrets.create_secret(Name=SECRET_NAME, SecretString=standin.api_key)
        secrets.create_secret(Name=WEBHOOK_SECRET_NAME, SecretString=WEBHOOK_SECRET)
        account = seed_account(standin)
        queue = boto3.client("sqs").create_queue(QueueName="catalog-fanout")["QueueUrl"]
        environment = {
            **_AWS,
            "TABLE_NAME": TABLE,
            "STRIPE_SECRET_NAME": SECRET_NAME,
            "WEBHOOK_SECRET_NAME": WEBHOOK_SECRET_NAME,
            "STRIPE_API_BASE": standin.url,
            "ALLOWED_ORIGINS": "https://app.example.com",
            "DEFAULT_RETURN_URL": "https://app.example.com/account",
            "PORTAL_CONFIGURATION_ID": account.configuration,
            "CATALOG_FANOUT_QUEUE_URL": queue,
            "PLAN_LOOKUP_KEYS": ",".join(PLANS),
        }
        resources.enter_context(mock.patch.dict(os.environ, environment))
        resources.enter_context(
            mock.patch.object(stripe.HTTPClient, "request_with_retries", counted_send)
        )
        forget_warm_state()
        resources.callback(forget_warm_state)
        # Registered before any product client exists, so all of them inherit it.
        aws_session().register("before-call.dynamodb", counter.on_dynamodb)
        yield Stack(account, counter, environment)


@contextmanager
def _quiet_function_logs() -> Iterator[None]:
    """The functions' JSON logs still get formatted and written, but not to the terminal."""
    handlers = [
        handler
        for logger in logging.Logger.manager.loggerDict.values()
        if isinstance(logger, logging.Logger)
        for handler in logger.handlers
        if isinstance(handler, logging.StreamHandler)
        and type(handler.formatter).__module__.startswith("aws_lambda_powertools")
    ]
    with open(os.devnull, "w") as sink:
        streams = [handler.setStream(sink) for handler in handlers]
        try:
            yield
        finally:
            for handler, stream in zip(handlers, streams, strict=True):
                if stream is not None:
                    handler.setStream(stream)
