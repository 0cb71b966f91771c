"""Signed webhook deliveries for the webhook function, as API Gateway would pass them."""

from __future__ import annotations

import base64
import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import boto3
import stripe

from functions.webhook.app import lambda_handler
from tests.conftest import WEBHOOK_SECRET
from tests.support.events import http_event
from tests.support.lambda_context import HttpResult, LambdaContext, invoke
from tests.support.stripe_seed import Account

SAMPLE = "webhook/post_stripe_event"


def delivery(
    event: dict[str, Any] | str,
    *,
    secret: str = WEBHOOK_SECRET,
    timestamp: int | None = None,
    base64_body: bool = False,
    signature: str | None = "sign",
) -> dict[str, Any]:
    """An HTTP API event carrying ``event`` (a Stripe event dict, or raw text), signed."""
    body = event if isinstance(event, str) else json.dumps(event, separators=(",", ":"))
    request = http_event(SAMPLE, raw_body=body)
    if signature == "sign":
        stamp = int(time.time()) if timestamp is None else timestamp
        header = stripe.WebhookSignature.generate_signature_header(body, secret, stamp)
        request["headers"]["stripe-signature"] = header
    elif signature is None:
        request["headers"].pop("stripe-signature", None)
    else:
        request["headers"]["stripe-signature"] = signature
    if base64_body:
        request["body"] = base64.b64encode(body.encode()).decode()
        request["isBase64Encoded"] = True
    return request


def deliver(event: dict[str, Any] | str, **kwargs: Any) -> HttpResult:
    """Deliver ``event`` to the webhook function in-process."""
    return invoke(lambda_handler, delivery(event, **kwargs))


def stripe_event(
    event_type: str,
    obj: dict[str, Any],
    *,
    created: int,
    event_id: str,
    previous: dict[str, Any] | None = None,
    livemode: bool = False,
) -> dict[str, Any]:
    """An event envelope in Stripe's shape (as in ``events/webhook/post_stripe_event.json``)."""
    data: dict[str, Any] = {"object": obj}
    if previous is not None:
        data["previous_attributes"] = previous
    return {
        "id": event_id,
        "object": "event",
        "api_version": "2026-10-28.endive",
        "created": created,
        "data": data,
        "livemode": livemode,
        "pending_webhooks": 1,
        "request": {"id": None, "idempotency_key": None},
        "type": event_type,
    }


def events_from_changes(
    changes: list[dict[str, Any]], *, types: tuple[str, ...] = ()
) -> list[dict[str, Any]]:
    """Stripe event envelopes for the stand-in's recorded state changes, in order."""
    return [
        stripe_event(
            change["type"],
            change["object"],
            created=change["created"],
            event_id=f"evt_change{change['seq']:06d}",
            previous=change["previous_attributes"],
        )
        for change in changes
        if not types or change["type"].startswith(types)
    ]


class StandinChanges:
    """The stand-in's recorded changes, taken in order as signed webhook deliveries."""

    def __init__(self, account: Account) -> None:
        self.account = account
        self.seen = 0
        self.outcomes: list[str] = []  # ``type:outcome`` of the last flush

    def pending(self) -> list[dict[str, Any]]:
        """The events not taken yet, now taken (not delivered)."""
        changes = self.account.changes()
        fresh, self.seen = changes[self.seen :], len(changes)
        return events_from_changes(fresh)

    def flush(self) -> list[dict[str, Any]]:
        """Deliver the events not taken yet to the webhook function; they are returned."""
        events = self.pending()
        self.outcomes = []
        for event in events:
            result = deliver(event)
            assert result.status == 200, result.raw
            self.outcomes.append(f"{event['type']}:{result.body['outcome']}")
        return events


def table_items(table: str) -> list[dict[str, Any]]:
    """Every item of the table (moto), for asserting what was, or was not, written."""
    items: list[dict[str, Any]] = []
    for page in boto3.client("dynamodb").get_paginator("scan").paginate(TableName=table):
        items.extend(page["Items"])
    return items


class _Receiver(BaseHTTPRequestHandler):
    """Turns the stand-in's delivery into an API Gateway event for the webhook function."""

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"])).decode()
        event = http_event(SAMPLE, raw_body=body)
        event["headers"]["stripe-signature"] = self.headers["Stripe-Signature"]
        response = lambda_handler(event, LambdaContext())
        self.send_response(response["statusCode"])
        self.end_headers()
        self.wfile.write((response.get("body") or "").encode())

    def log_message(self, *_: Any) -> None:
        pass


@contextmanager
def webhook_route() -> Iterator[str]:
    """A loopback URL standing for ``POST /webhooks/stripe``: the webhook function, in-process."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Receiver)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_port}/webhooks/stripe"
    finally:
        server.shutdown()
