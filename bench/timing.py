"""Warm snapshot latency and webhook throughput, each against bare DynamoDB calls.

Both run the real handlers in-process against moto, in the same process and on the same
data as the bare calls they are compared with, and alternate with them, so that moto's
own cost and the machine's noise fall on both sides of each ratio.
"""

from __future__ import annotations

import functools
import gc
import json
import statistics
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import boto3

from bench.counts import ScenarioFailed, subscribed_user
from bench.stack import TABLE, Stack
from billing.projection.fold import change_from_object
from billing.projection.intake import WebhookProcessor, catalog_copies
from billing.projection.records import Kind
from billing.read.settings import get_snapshot_settings
from billing.store.keys import SNAPSHOT, slot_attribute, user_key
from billing.store.table import store_for_table
from billing.store.writes import Guard, Slot, Write
from functions.billing.app import lambda_handler as billing_handler
from functions.webhook.app import lambda_handler as webhook_handler
from tests.support.events import http_event
from tests.support.lambda_context import LambdaContext
from tests.support.webhooks import delivery

SNAPSHOT_SAMPLES = 300
EVENTS_PER_ROUND = 100
ROUNDS = 3


@dataclass(frozen=True)
class Latency:
    p50_ms: float
    p99_ms: float
    samples: int


@dataclass(frozen=True)
class Rate:
    """Operations per second of wall time, and per second of this process's CPU time
    (which other processes on a shared machine do not inflate)."""

    wall: float
    cpu: float


@dataclass(frozen=True)
class Timing:
    snapshot: Latency  # GET /billing through the handler
    query: Latency  # the one Query it makes, bare
    # Medians over ROUNDS rounds of EVENTS_PER_ROUND each:
    webhook: Rate  # signed customer.subscription.updated events through the handler
    put: Rate  # bare PutItem of a dedupe record
    requests: Rate  # the same event's two DynamoDB requests alone, through the store

    @property
    def snapshot_ratio(self) -> float:
        return self.snapshot.p50_ms / self.query.p50_ms

    @property
    def webhook_overhead(self) -> float:
        """How many bare PutItems fit in the CPU time of one webhook event."""
        return self.put.cpu / self.webhook.cpu

    @property
    def handler_overhead(self) -> float:
        """The CPU time of one webhook event over that of its two DynamoDB requests alone."""
        return self.requests.cpu / self.webhook.cpu


def measure_timing(stack: Stack) -> Timing:
    """Run on a stack of its own: moto's costs grow with the table."""
    snapshot, query = _snapshot_latency(stack)
    return Timing(snapshot, query, *_webhook_throughput(stack))


def latency(samples: list[float]) -> Latency:
    ordered = sorted(samples)
    p99 = ordered[min(len(ordered) - 1, round(0.99 * (len(ordered) - 1)))]
    return Latency(statistics.median(ordered) * 1000, p99 * 1000, len(ordered))


def _timed(action: Callable[[], Any]) -> float:
    start = time.perf_counter()
    action()
    return time.perf_counter() - start


@contextmanager
def _no_gc_pauses() -> Iterator[None]:
    """No cyclic garbage collection while timing: with moto's whole account in this heap, a
    full collection takes tens of milliseconds and lands on whichever call crosses the
    threshold, an artefact a Lambda container's small heap does not have."""
    gc.collect()
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


def _clocked(action: Callable[[], Any]) -> tuple[float, float]:
    """Wall and CPU seconds of ``action``."""
    wall, cpu = time.perf_counter(), time.process_time()
    action()
    return time.perf_counter() - wall, time.process_time() - cpu


def _snapshot_latency(stack: Stack) -> tuple[Latency, Latency]:
    user = "bench-latency"
    subscribed_user(stack, user, months=11)  # a full first page of invoices
    event = http_event("billing/get_billing", user=user)
    context = LambdaContext()
    client = boto3.client("dynamodb")
    page = get_snapshot_settings().invoice_page_size  # the handler queries page + 3 items

    def snapshot() -> None:
        if billing_handler(event, context)["statusCode"] != 200:  # type: ignore[arg-type]
            raise ScenarioFailed("GET /billing failed while timing")

    def query() -> None:
        client.query(
            TableName=TABLE,
            KeyConditionExpression="pk = :pk",
            ExpressionAttributeValues={":pk": {"S": user_key(user)}},
            ScanIndexForward=False,
            Limit=page + 3,
        )

    for _ in range(30):  # warm: the resolver's routes, the client, moto's table
        snapshot()
        query()
    times: tuple[list[float], list[float]] = ([], [])
    with _no_gc_pauses():
        for i in range(SNAPSHOT_SAMPLES):
            first = i % 2  # each first as often: what runs just before costs the next one
            times[first].append(_timed((snapshot, query)[first]))
            times[1 - first].append(_timed((snapshot, query)[1 - first]))
    return latency(times[0]), latency(times[1])


def _webhook_throughput(stack: Stack) -> tuple[Rate, Rate, Rate]:
    """Rates of the three steps of ``_Throughput``, medians of ROUNDS rounds."""
    customer, subscription = subscribed_user(stack, _Throughput.user)
    state = stack.latest_object(subscription.id)
    bench = _Throughput(stack, customer, state)
    rounds = [bench.round(number) for number in range(ROUNDS)]
    event, put, requests = (
        Rate(
            statistics.median(rate.wall for rate in rates),
            statistics.median(rate.cpu for rate in rates),
        )
        for rates in zip(*rounds, strict=True)
    )
    return event, put, requests


class _Throughput:
    """``customer.subscription.updated`` (the common event) through the handler, a bare
    ``PutItem``, and the same two requests the event makes issued directly through the
    store; interleaved one by one in rotating order, since moto's transactions copy the
    whole table and its growth must fall on all three alike."""

    user = "bench-throughput"

    def __init__(self, stack: Stack, customer: str, state: dict[str, Any]) -> None:
        self.stack, self.customer, self.state = stack, customer, state
        self.change = change_from_object(Kind.SUBSCRIPTION, state)
        self.store = store_for_table(TABLE)
        context = self.store.context(customer, self.change.products, self.change.prices)
        self.names = catalog_copies(context)
        self.record = self.change.record("user_id", self.names).stored()
        self.client = boto3.client("dynamodb")
        self.context = LambdaContext()

    def round(self, number: int) -> tuple[Rate, Rate, Rate]:
        # Signed beforehand: signing is Stripe's work, not the handler's.
        deliveries = [
            delivery(self.stack.fresh_event("customer.subscription.updated", self.state))
            for _ in range(EVENTS_PER_ROUND)
        ]
        slot = Slot(user_key(self.user), SNAPSHOT, slot_attribute(Kind.SUBSCRIPTION, f"b{number}"))
        outcomes: set[str] = set()

        def event(i: int) -> None:
            answer = webhook_handler(deliveries[i], self.context)
            outcomes.add(json.loads(answer["body"])["outcome"])

        def put(i: int) -> None:
            now = int(time.time())
            self.client.put_item(
                TableName=TABLE,
                Item={
                    "pk": {"S": f"EVENT#evt_put{number}x{i}"},
                    "sk": {"S": "EVENT"},
                    "type": {"S": "customer.subscription.updated"},
                    "processed_at": {"N": str(now)},
                    "expires_at": {"N": str(now + 7 * 86400)},
                },
            )

        def requests(i: int) -> None:
            # The same two requests, with the same transaction items the handler sends:
            # the link guard, the catalog checks and the subscriber-index entries.
            change = self.change
            context = self.store.context(self.customer, change.products, change.prices)
            event_id = f"evt_pair{number}x{i}"
            checks, subscribers = WebhookProcessor._catalog_ties(
                change, context.user_id, context, self.names
            )
            self.store.commit(
                event_id,
                "customer.subscription.updated",
                [Write(slot, i + 1, event_id, self.record)],
                guard=Guard(context.user_id or "", self.customer),
                checks=checks,
                subscribers=subscribers,
                retention_seconds=7 * 86400,
            )

        steps = (event, put, requests)
        wall, cpu = [0.0] * len(steps), [0.0] * len(steps)
        with _no_gc_pauses():
            for i in range(EVENTS_PER_ROUND):
                for shift in range(len(steps)):  # each step as often in each position
                    which = (i + shift) % len(steps)
                    spent = _clocked(functools.partial(steps[which], i))
                    wall[which] += spent[0]
                    cpu[which] += spent[1]
        if outcomes != {"applied"}:
            raise ScenarioFailed(f"throughput events were not all applied: {outcomes}")
        event_rate, put_rate, requests_rate = (
            Rate(EVENTS_PER_ROUND / w, EVENTS_PER_ROUND / c) for w, c in zip(wall, cpu, strict=True)
        )
        return event_rate, put_rate, requests_rate
