"""Requests per operation: DynamoDB requests and Stripe calls of the real handlers.

Every figure comes from one operation run in-process against moto and the Stripe
stand-in (``bench.stack``), in the *steady state* unless its row says otherwise: the
user is linked to a customer, the catalog (prices by lookup key, product names) is in
the table, and every earlier Stripe change has arrived as a webhook.
"""

from __future__ import annotations

import functools
import importlib
import json
import subprocess
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import requests
import stripe

from bench.stack import TABLE, Stack
from billing.projection.registry import HANDLED_EVENT_TYPES, REGISTRY, Fold
from billing.store.keys import CATALOG, price_sort_key
from sandbox.cloudformation import ResponseReceiver
from tests.support import portal
from tests.support.cloudformation import DeadlineContext
from tests.support.lambda_context import HttpResult
from tests.support.portal import STRIPE_ID
from tests.support.stripe_seed import PLANS
from tests.support.webhooks import events_from_changes

ROOT = Path(__file__).resolve().parents[1]

# The design the product started from, which it replaced: the comparison column.
SEED_SNAPSHOT = "1 DynamoDB read + 3 Stripe calls"
SEED_CONFIRM = "2 Stripe calls"

MONTH = 30 * 86400
# Products renamed in the fan-out rows: one page of the subscriber index, and just over.
FANOUT_SUBSCRIBERS = (10, 101)


class ScenarioFailed(RuntimeError):
    """An operation did not end as the scenario expects, so its counts would mislead."""


@dataclass(frozen=True)
class Count:
    """What one operation sent."""

    key: str  # stable name the budgets refer to
    operation: str  # what a reader sees
    dynamodb: tuple[str, ...]  # operation names, in order
    stripe: tuple[str, ...]  # "METHOD /path", in order
    outcome: str  # HTTP status, or the webhook's outcome
    seed: str = ""  # the seed design's cost of the same operation


@dataclass(frozen=True)
class WebhookCount:
    """One handled event type, delivered once and then again (Stripe's redelivery)."""

    event_type: str
    first: Count
    again: Count
    # The stand-in never emits this type: an object of the same kind, under this type.
    relabelled: bool


@dataclass(frozen=True)
class FanoutCount:
    """A product with ``subscribers`` renamed: the webhook that announces it, then the
    fan-out function's invocations that copy the name into every snapshot."""

    subscribers: int
    announce: Count
    fanout: Count
    invocations: int


@dataclass(frozen=True)
class Counts:
    snapshots: tuple[Count, ...]
    sessions: tuple[Count, ...]
    webhooks: tuple[WebhookCount, ...]
    # First sightings and out-of-order deliveries: outside the steady state.
    webhook_paths: tuple[Count, ...]
    snapshot_imports_stripe: bool
    fanouts: tuple[FanoutCount, ...] = ()
    # Deploy-time provisioning: Custom::StripeCatalog, first and unchanged.
    deploys: tuple[Count, ...] = ()

    def find(self, key: str) -> Count:
        for count in (*self.snapshots, *self.sessions, *self.webhook_paths, *self.deploys):
            if count.key == key:
                return count
        raise KeyError(key)


def measure_counts(stack: Stack) -> Counts:
    """Run every scenario once on ``stack`` (a fresh one: the scenarios build on each other)."""
    stack.deliver_pending()  # the seeded catalog reaches the table
    return Counts(
        snapshots=_snapshots(stack),
        sessions=_sessions(stack),
        webhooks=_webhooks_by_type(stack),
        webhook_paths=_webhook_paths(stack),
        snapshot_imports_stripe=snapshot_imports_stripe(),
        fanouts=tuple(_catalog_fanout(stack, n) for n in FANOUT_SUBSCRIBERS),
        deploys=_catalog_deploys(stack),
    )


def count(
    stack: Stack,
    key: str,
    operation: str,
    action: Callable[[], str],
    *,
    expect: str,
    seed: str = "",
) -> Count:
    """Run ``action`` under the counters; it must end with ``expect``."""
    with stack.counting() as sent:
        outcome = action()
    if outcome != expect:
        raise ScenarioFailed(f"{operation}: expected {expect}, got {outcome}")
    # Ids out of the paths, so that figures read (and diff) the same from run to run.
    stripe = tuple(STRIPE_ID.sub("{id}", call) for call in sent.stripe)
    return Count(key, operation, tuple(sent.dynamodb), stripe, outcome, seed)


def status(result: HttpResult) -> str:
    return str(result.status)


# --- users in the steady state ----------------------------------------------------------------


def subscribed_user(stack: Stack, user: str, *, months: int = 0) -> tuple[str, Any]:
    """A user linked through the API with a paid Pro subscription ``months`` renewals old,
    every change delivered; (customer id, subscription)."""
    subscription = portal.subscribed_user(stack.account, user)
    customer = str(subscription.customer)
    if months:
        stack.account.standin.advance_clock(customer, seconds=months * MONTH + 3600)
    stack.deliver_pending()
    return customer, subscription


# --- GET /billing --------------------------------------------------------------------------------


def _snapshots(stack: Stack) -> tuple[Count, ...]:
    user = "bench-snapshot"
    subscribed_user(stack, user, months=11)  # 12 invoices: more than one page
    first = stack.snapshot(user)
    cursor = first.body["invoices"]["next_cursor"]
    if first.status != 200 or not cursor:
        raise ScenarioFailed(f"snapshot of a subscriber with 12 invoices: {first.raw}")
    etag = first.headers["etag"]
    return (
        count(
            stack,
            "snapshot.subscriber",
            "GET /billing, subscriber with 12 invoices",
            lambda: status(stack.snapshot(user)),
            expect="200",
            seed=SEED_SNAPSHOT,
        ),
        count(
            stack,
            "snapshot.not_modified",
            "GET /billing with the current ETag",
            lambda: status(stack.snapshot(user, **{"if-none-match": etag})),
            expect="304",
        ),
        count(
            stack,
            "snapshot.free",
            "GET /billing, user without a customer",
            lambda: status(stack.snapshot("bench-free")),
            expect="200",
        ),
        count(
            stack,
            "snapshot.invoices",
            "GET /billing/invoices, second page",
            lambda: status(stack.invoices(user, cursor)),
            expect="200",
        ),
        count(
            stack,
            "snapshot.plans",
            "GET /plans, the offered plans for a pricing table",
            lambda: plan_count(stack.plans()),
            expect=f"{len(PLANS)} plans",
        ),
    )


def plan_count(result: HttpResult) -> str:
    if result.status != 200:
        return str(result.status)
    return f"{len(result.body['data'])} plans"


# --- POST /portal-sessions, POST /setup-intents ------------------------------------------------


def _sessions(stack: Stack) -> tuple[Count, ...]:
    user = "bench-portal"
    subscribed_user(stack, user)

    def session(body: dict[str, Any], who: str = user) -> Callable[[], str]:
        return lambda: status(stack.portal_session(who, body))

    flows = [
        ("portal", "portal home (no flow)", {}),
        ("payment_method_update", "flow payment_method_update", {"flow": "payment_method_update"}),
        ("subscription_cancel", "flow subscription_cancel", {"flow": "subscription_cancel"}),
        ("subscription_update", "flow subscription_update", {"flow": "subscription_update"}),
        (
            "subscription_update_confirm",
            "flow subscription_update_confirm (plan pro_yearly)",
            {"flow": "subscription_update_confirm", "plan": "pro_yearly"},
        ),
    ]
    counts = [
        count(
            stack,
            f"session.{key}",
            f"POST /portal-sessions, {label}",
            session(body),
            expect="200",
            seed=SEED_CONFIRM if key == "subscription_update_confirm" else "",
        )
        for key, label, body in flows
    ]
    counts.append(
        count(
            stack,
            "session.setup_intent",
            "POST /setup-intents",
            lambda: status(stack.setup_intent(user)),
            expect="200",
        )
    )
    counts.append(
        count(
            stack,
            "session.first",
            "POST /portal-sessions, a new user's first (creates the customer)",
            session({}, "bench-new-user"),
            expect="200",
        )
    )
    # A free user with a customer (linked by a portal visit) starts a subscription.
    buyer = "bench-checkout"
    if stack.portal_session(buyer, {}).status != 200:
        raise ScenarioFailed("the checkout user's first portal session failed")
    for key, label in (
        ("session.checkout", "POST /checkout-sessions, customer exists, price in the table"),
        ("session.checkout_again", "POST /checkout-sessions, the same request again"),
    ):
        counts.append(
            count(
                stack,
                key,
                label,
                lambda: status(stack.checkout_session(buyer, {"plan": "pro_monthly"})),
                expect="200",
            )
        )
    counts.append(
        count(
            stack,
            "session.refresh",
            "POST /billing/refresh, a subscriber",
            lambda: status(stack.refresh(user)),
            expect="200",
        )
    )
    # A price whose webhook never arrived (before the backfill): one lookup, then cached.
    boto3.client("dynamodb").delete_item(
        TableName=TABLE, Key={"pk": {"S": CATALOG}, "sk": {"S": price_sort_key("basic_monthly")}}
    )
    counts.append(
        count(
            stack,
            "session.confirm_price_not_in_table",
            "POST /portal-sessions, confirm to a price not in the table yet",
            session({"flow": "subscription_update_confirm", "plan": "basic_monthly"}),
            expect="200",
        )
    )
    return tuple(counts)


# --- POST /webhooks/stripe ------------------------------------------------------------------------


def _webhooks_by_type(stack: Stack) -> tuple[WebhookCount, ...]:
    start = len(stack.account.changes())
    _webhook_history(stack, "bench-webhooks")
    changes = stack.account.changes()[start:]
    by_type = {change["type"]: change for change in changes}
    # An object to relabel: the newest of its kind that still exists.
    by_kind = {
        entry.updates: change
        for change in changes
        if not change["type"].endswith((".deleted", ".detached"))
        and (entry := REGISTRY.get(change["type"])) is not None
    }
    results = []

    # Deletions last, so that no later event in this loop lands on a tombstone, and the
    # customer's own deletion after them all: it retires the customer, whose later
    # events are then acknowledged without a change.
    def last_if_deleting(event_type: str) -> tuple[bool, bool]:
        retires = REGISTRY[event_type].fold is Fold.RETIRE_CUSTOMER
        return event_type.endswith(".deleted"), retires

    for event_type in sorted(HANDLED_EVENT_TYPES, key=last_if_deleting):
        sample = by_type.get(event_type)
        relabelled = sample is None
        if sample is None:
            kind = REGISTRY[event_type].updates
            if kind not in by_kind:
                raise ScenarioFailed(f"no sample object for {event_type}")
            sample = by_kind[kind]
        event = stack.fresh_event(
            event_type,
            sample["object"],
            previous=None if relabelled else sample["previous_attributes"],
        )
        first = count(
            stack,
            f"webhook.{event_type}",
            event_type,
            functools.partial(stack.deliver, event),
            expect="applied",
        )
        again = count(
            stack,
            f"webhook.{event_type}.again",
            f"{event_type} (redelivered)",
            functools.partial(stack.deliver, event),
            expect="duplicate",
        )
        results.append(WebhookCount(event_type, first, again, relabelled))
    return tuple(results)


def _webhook_history(stack: Stack, user: str) -> None:
    """Every kind of change for one user and an add-on product, all delivered."""
    account = stack.account
    client = account.client.v1
    # A feature of the plan: subscribing sends entitlements.active_entitlement_summary.updated.
    feature = client.entitlements.features.create(
        params={"lookup_key": f"{user}-exports", "name": "Exports"}
    )
    client.products.features.create(account.products["Pro"], {"entitlement_feature": feature.id})
    customer, subscription = subscribed_user(stack, user)
    # A card saved through POST /setup-intents: setup_intent.succeeded.
    secret = stack.setup_intent(user).body["client_secret"]
    client.setup_intents.confirm(
        secret.split("_secret_")[0], params={"payment_method": "pm_card_mastercard"}
    )
    # A card attached and removed again: payment_method.attached / .detached.
    spare = client.payment_methods.attach("pm_card_amex", params={"customer": customer})
    client.payment_methods.detach(spare.id)
    client.customers.update(customer, params={"name": "Ada Lovelace"})
    client.subscriptions.update(
        subscription.id,
        params={
            "items": [
                {"id": subscription["items"].data[0].id, "price": account.prices["pro_yearly"]}
            ]
        },
    )
    # The price.* and product.* events act on a product of their own, not the catalog.
    addon = client.products.create(params={"name": "Bench Add-on"})
    price = _recurring_price(stack, addon.id, 500, lookup_key="bench_addon_monthly")
    client.prices.update(price.id, params={"nickname": "Add-on"})
    client.products.update(addon.id, params={"description": "Bench add-on"})
    # Checkout: one session paid on the hosted page (checkout.session.completed), one
    # expired by a second request for another plan (checkout.session.expired).
    paid = stack.checkout_session(f"{user}-buyer", {"plan": "basic_monthly"})
    pay = requests.post(
        paid.body["url"], data={"card": "pm_card_visa"}, allow_redirects=False, timeout=10
    )
    if pay.status_code != 303:
        raise ScenarioFailed(f"paying a Checkout session: {pay.status_code} {pay.text}")
    stack.checkout_session(f"{user}-browser", {"plan": "basic_monthly"})
    stack.checkout_session(f"{user}-browser", {"plan": "pro_monthly"})
    stack.deliver_pending()


def _catalog_fanout(stack: Stack, subscribers: int) -> FanoutCount:
    """``subscribers`` users on a product of their own, which is then renamed."""
    account = stack.account
    client = account.client.v1
    product = client.products.create(params={"name": f"Bench {subscribers}"})
    lookup_key = f"bench_fanout_{subscribers}"
    account.prices[lookup_key] = _recurring_price(stack, product.id, 900, lookup_key=lookup_key).id
    users = [f"bench-fanout-{subscribers}-{n:03d}" for n in range(subscribers)]
    for user in users:
        portal.subscribed_user(account, user, lookup_key)
    # Only what the snapshots' copies need (the catalog and the subscriptions), which
    # keeps the set-up of a hundred subscribers short; and an empty fan-out queue.
    for event in events_from_changes(stack.skip_pending(), types=_CATALOG_AND_SUBSCRIPTIONS):
        if (outcome := stack.deliver(event)) != "applied":
            raise ScenarioFailed(f"fan-out set-up, {event['type']}: {outcome}")
    stack.drain_fanout()
    # The steady state: a rename in the second of the product's creation would be a
    # same-second tie, which re-fetches (the webhook.same_second row counts that path).
    stack.a_second_later()
    client.products.update(product.id, params={"name": f"Bench {subscribers} renamed"})
    [renamed] = _pending_events(stack)
    announce = count(
        stack,
        f"fanout.{subscribers}.announce",
        f"webhook product.updated (renamed, {subscribers} subscribers): announced",
        functools.partial(stack.deliver, renamed),
        expect="applied",
    )
    invocations: list[int] = []

    def drain() -> str:
        invocations.append(stack.drain_fanout())
        return "drained"

    fanout = count(
        stack,
        f"fanout.{subscribers}",
        f"catalog fan-out, {subscribers} subscribers",
        drain,
        expect="drained",
    )
    names = {stack.snapshot(user).body["plan"]["name"] for user in users}
    if names != {f"Bench {subscribers} renamed"}:
        raise ScenarioFailed(f"fan-out to {subscribers} subscribers left {names}")
    return FanoutCount(subscribers, announce, fanout, invocations[0])


_CATALOG_AND_SUBSCRIPTIONS = ("product.", "price.", "customer.subscription.")


def _pending_events(stack: Stack) -> list[dict[str, Any]]:
    return events_from_changes(stack.skip_pending())


def _webhook_paths(stack: Stack) -> tuple[Count, ...]:
    """The paths that may call Stripe or write a third time: ties, stale, first sightings."""
    account = stack.account
    client = account.client.v1
    _, subscription = subscribed_user(stack, "bench-paths")
    state = stack.latest_object(subscription.id)
    updated = stack.fresh_event("customer.subscription.updated", state)
    if (outcome := stack.deliver(updated)) != "applied":
        raise ScenarioFailed(f"customer.subscription.updated before the tie: {outcome}")
    # Another event of the same second, and one a minute older than the stored state.
    tie = {**stack.fresh_event(updated["type"], state), "created": updated["created"]}
    stale = {**stack.fresh_event(updated["type"], state), "created": updated["created"] - 60}
    counts = [
        count(
            stack,
            "webhook.same_second",
            "a second event of one object in the same second (re-fetch)",
            lambda: stack.deliver(tie),
            expect="applied",
        ),
        count(
            stack,
            "webhook.stale",
            "an event older than the stored state (out of order)",
            lambda: stack.deliver(stale),
            expect="stale",
        ),
    ]

    # A product whose product.created never arrived: its name is fetched once.
    product = client.products.create(params={"name": "Bench Unknown"})
    price = _recurring_price(stack, product.id, 700)
    stack.skip_pending()
    client.subscriptions.update(
        subscription.id,
        params={"items": [{"id": state["items"]["data"][0]["id"], "price": price.id}]},
    )
    change = _pending_of_type(stack, "customer.subscription.updated")
    moved = stack.fresh_event(change["type"], change["object"])
    counts.append(
        count(
            stack,
            "webhook.unknown_product",
            "a subscription naming a product not in the table yet",
            lambda: stack.deliver(moved),
            expect="applied",
        )
    )

    # A customer created outside the API (e.g. in the Dashboard) with the user id in
    # its metadata: its first subscription event links it.
    outsider = client.customers.create(
        params={"email": "outside@example.com", "metadata": {"user_id": "bench-outsider"}}
    ).id
    stack.skip_pending()
    account.subscribe(outsider, "pro_monthly")
    change = _pending_of_type(stack, "customer.subscription.created")
    first_seen = stack.fresh_event(change["type"], change["object"])
    counts.append(
        count(
            stack,
            "webhook.unlinked_customer",
            "the first event of a customer created outside the API",
            lambda: stack.deliver(first_seen),
            expect="applied",
        )
    )

    # A lookup key moved to a new price: the old price's catalog entry is released.
    _recurring_price(stack, account.products["Pro"], 31000, lookup_key="pro_yearly")
    change = _pending_of_type(stack, "price.updated")
    released = stack.fresh_event(
        change["type"], change["object"], previous=change["previous_attributes"]
    )
    counts.append(
        count(
            stack,
            "webhook.lookup_key_moved",
            "price.updated of a price that gave up its lookup key",
            lambda: stack.deliver(released),
            expect="applied",
        )
    )
    return tuple(counts)


def _recurring_price(
    stack: Stack, product: str, amount: int, *, lookup_key: str | None = None
) -> stripe.Price:
    """A monthly USD price; a ``lookup_key`` is taken over from any price that had it."""
    params: stripe.params.PriceCreateParams = {
        "product": product,
        "currency": "usd",
        "unit_amount": amount,
        "recurring": {"interval": "month"},
    }
    if lookup_key:
        params |= {"lookup_key": lookup_key, "transfer_lookup_key": True}
    return stack.account.client.v1.prices.create(params=params)


def _pending_of_type(stack: Stack, event_type: str) -> dict[str, Any]:
    pending = stack.skip_pending()
    found = [change for change in pending if change["type"] == event_type]
    if not found:
        raise ScenarioFailed(
            f"the stand-in emitted no {event_type}: {[c['type'] for c in pending]}"
        )
    return found[-1]


# --- the read functions' imports ------------------------------------------------------------------

_IMPORTS_AFTER_ONE_REQUEST = """
import importlib, json, sys
module, event_name, query, *watched = sys.argv[1:]
from moto import mock_aws
with mock_aws():
    from tests.support.aws import create_billing_table
    create_billing_table("bench-imports")
    handler = importlib.import_module(module).lambda_handler
    from tests.support.events import http_event
    from tests.support.lambda_context import invoke
    event = http_event(event_name)
    event["queryStringParameters"] = json.loads(query)
    served = invoke(handler, event).status
print(json.dumps({"status": served, "loaded": [m for m in watched if m in sys.modules]}))
"""
# What GET /billing must never load: stripe (it makes no Stripe call) and pydantic (the
# biggest part of a cold start it does not need; see functions/billing/app.py).
WATCHED_IMPORTS = ("stripe", "pydantic")


def snapshot_imports_stripe() -> bool:
    """The budget: ``GET /billing`` never loads stripe."""
    return "stripe" in snapshot_imports()


def snapshot_imports() -> frozenset[str]:
    """Which of ``WATCHED_IMPORTS`` a fresh interpreter has loaded after importing the
    snapshot function and serving one ``GET /billing``."""
    return imports_after_one_request("functions.billing.app", "billing/get_billing")


def imports_after_one_request(
    module: str, event_name: str, query: Mapping[str, str] | None = None
) -> frozenset[str]:
    """Which of ``WATCHED_IMPORTS`` are in ``sys.modules`` of a fresh interpreter that
    imported the handler ``module`` and served it one sample event (on an empty table)."""
    env = {
        "PATH": "/usr/bin:/bin",
        "PYTHONPATH": f"{ROOT / 'layers' / 'billing'}:{ROOT}",
        "TABLE_NAME": "bench-imports",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "POWERTOOLS_LOG_LEVEL": "WARNING",
    }
    arguments = [module, event_name, json.dumps(query), *WATCHED_IMPORTS]
    done = subprocess.run(  # noqa: S603 - our own interpreter and script
        [sys.executable, "-c", _IMPORTS_AFTER_ONE_REQUEST, *arguments],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        raise ScenarioFailed(f"import check of {module} failed:\n{done.stderr}")
    answer = json.loads(done.stdout.strip().splitlines()[-1])
    if answer["status"] != 200:
        raise ScenarioFailed(f"{event_name} in a fresh interpreter answered {answer['status']}")
    return frozenset(answer["loaded"])


# --- deploy-time provisioning -------------------------------------------------------------


def _catalog_deploys(stack: Stack) -> tuple[Count, ...]:
    """``Custom::StripeCatalog`` with the sample declaration: its first deploy, then the
    same declaration deployed again (what every ``sam deploy`` that leaves it alone does)."""
    # Imported anew, as a cold start reads this stack's environment (not an earlier one's).
    catalog_function = importlib.reload(importlib.import_module("functions.catalog.app"))
    event = json.loads((ROOT / "events" / "catalog" / "create.json").read_text())

    def deploy(request_type: str) -> str:
        receiver = ResponseReceiver().start()
        try:
            request = {**event, "RequestType": request_type, "ResponseURL": receiver.url("r")}
            if request_type == "Update":
                request["PhysicalResourceId"] = "stripe-catalog:billing-portal-dev"
            context: Any = DeadlineContext(seconds=60)
            catalog_function.lambda_handler(request, context)
            (answer,) = receiver.answers
            return str(answer.body["Status"])
        finally:
            receiver.stop()

    first = count(
        stack,
        "catalog.first",
        "Custom::StripeCatalog, first deploy (2 products, 3 prices, 2 features)",
        lambda: deploy("Create"),
        expect="SUCCESS",
    )
    again = count(
        stack,
        "catalog.unchanged",
        "Custom::StripeCatalog, deployed again unchanged",
        lambda: deploy("Update"),
        expect="SUCCESS",
    )
    return first, again
