"""``make bench-check`` fails loudly when a budget is broken, and names the figure."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from bench.artifacts import Artifact
from bench.budgets import (
    CUSTOMER_DELETED,
    SETUP_INTENT_CALLS,
    SETUP_INTENT_SUCCEEDED,
    Verdict,
    counted_verdicts,
    measured_verdicts,
)
from bench.check import main, report
from bench.cold_start import ColdStart, ColdStarts
from bench.counts import Count, Counts, FanoutCount, WebhookCount
from billing.projection.registry import HANDLED_EVENT_TYPES
from billing.store.table import BillingStore
from billing.store.writes import UserItems

STEADY_WRITE = ("BatchGetItem", "TransactWriteItems")
SESSION_CALL = ("POST /v1/billing_portal/sessions",)
CHECKOUT_CALL = ("POST /v1/checkout/sessions",)
REFRESH_CALLS = (
    "GET /v1/customers/{id}",
    "GET /v1/customers/{id}/payment_methods",
    "GET /v1/subscriptions",
    "GET /v1/entitlements/active_entitlements",
)


def count(key: str, dynamodb: tuple[str, ...] = (), stripe: tuple[str, ...] = ()) -> Count:
    return Count(key, key, dynamodb, stripe, "ok")


PURGE = ("GetItem", "UpdateItem", "Query", "BatchWriteItem")


def webhook(event_type: str) -> WebhookCount:
    first_calls = SETUP_INTENT_CALLS if event_type == SETUP_INTENT_SUCCEEDED else ()
    writes = (*STEADY_WRITE, *PURGE) if event_type == CUSTOMER_DELETED else STEADY_WRITE
    return WebhookCount(
        event_type,
        count(event_type, writes, first_calls),
        count(f"{event_type} (redelivered)", STEADY_WRITE),
        relabelled=False,
    )


def within_budget() -> Counts:
    """What the product measures today: every counted budget kept."""
    return Counts(
        snapshots=tuple(
            count(key, ("Query",))
            for key in (
                "snapshot.subscriber",
                "snapshot.not_modified",
                "snapshot.free",
                "snapshot.invoices",
                "snapshot.plans",
            )
        ),
        sessions=(
            count("session.subscription_update_confirm", ("GetItem",) * 3, SESSION_CALL),
            count("session.checkout", ("GetItem",) * 4 + ("PutItem",), CHECKOUT_CALL),
            count("session.checkout_again", ("GetItem",) * 4),
            count("session.refresh", ("PutItem", "GetItem"), REFRESH_CALLS),
        ),
        webhooks=tuple(webhook(t) for t in HANDLED_EVENT_TYPES),
        webhook_paths=(
            count("webhook.same_second", STEADY_WRITE * 2, ("GET /v1/subscriptions/{id}",)),
        ),
        snapshot_imports_stripe=False,
        fanouts=(fanout(10, queries=1), fanout(101, queries=2)),
        deploys=(
            count("catalog.first", (), ("GET /v1/products", "POST /v1/products")),
            count("catalog.unchanged", (), ("GET /v1/products", "GET /v1/prices")),
        ),
    )


def fanout(subscribers: int, *, queries: int, updates: int | None = None) -> FanoutCount:
    calls = (
        "GetItem",
        *("Query",) * queries,
        *("UpdateItem",) * (subscribers if updates is None else updates),
    )
    return FanoutCount(
        subscribers,
        count(f"fanout.{subscribers}.announce", ("TransactWriteItems",)),
        count(f"fanout.{subscribers}", calls),
        invocations=1,
    )


def replaced(counts: Counts, key: str, **changes: Any) -> Counts:
    """``counts`` with the measurement ``key`` changed."""

    def swap(group: tuple[Count, ...]) -> tuple[Count, ...]:
        return tuple(dataclasses.replace(c, **changes) if c.key == key else c for c in group)

    return dataclasses.replace(
        counts,
        snapshots=swap(counts.snapshots),
        sessions=swap(counts.sessions),
        webhook_paths=swap(counts.webhook_paths),
        deploys=swap(counts.deploys),
    )


def with_webhook(counts: Counts, event_type: str, **first: Any) -> Counts:
    webhooks = tuple(
        dataclasses.replace(w, first=dataclasses.replace(w.first, **first))
        if w.event_type == event_type
        else w
        for w in counts.webhooks
    )
    return dataclasses.replace(counts, webhooks=webhooks)


def failed(verdicts: list[Verdict]) -> list[Verdict]:
    return [v for v in verdicts if not v.passed]


def test_the_measured_design_keeps_every_counted_budget() -> None:
    verdicts = counted_verdicts(within_budget())
    assert failed(verdicts) == []
    assert len(verdicts) == 23


@pytest.mark.parametrize(
    ("broken", "budget", "figure"),
    [
        (
            lambda c: replaced(c, "snapshot.subscriber", dynamodb=("Query", "GetItem")),
            "snapshot.subscriber: exactly 1 DynamoDB request",
            "2 (Query, GetItem)",
        ),
        (
            lambda c: replaced(c, "snapshot.free", stripe=("GET /v1/customers",)),
            "snapshot.free: 0 Stripe calls",
            "1 (GET /v1/customers)",
        ),
        (
            lambda c: dataclasses.replace(c, snapshot_imports_stripe=True),
            "stripe never imported",
            "imported",
        ),
        (
            lambda c: with_webhook(c, "invoice.paid", dynamodb=(*STEADY_WRITE, "PutItem")),
            "at most 2 DynamoDB requests",
            "invoice.paid: 3 (BatchGetItem, TransactWriteItems, PutItem)",
        ),
        (
            lambda c: with_webhook(
                c, CUSTOMER_DELETED, dynamodb=(*STEADY_WRITE, *PURGE, "Query", "BatchWriteItem")
            ),
            "customer.deleted (retires the link",
            "8 (BatchGetItem, TransactWriteItems, GetItem, UpdateItem, Query, BatchWriteItem, "
            "Query, BatchWriteItem)",
        ),
        (
            lambda c: with_webhook(c, "customer.updated", stripe=("GET /v1/customers/{id}",)),
            "0 Stripe calls",
            "customer.updated: 1 (GET /v1/customers/{id})",
        ),
        (
            lambda c: with_webhook(
                c,
                SETUP_INTENT_SUCCEEDED,
                stripe=(*SETUP_INTENT_CALLS, "POST /v1/subscriptions/{id}"),
            ),
            "setup_intent.succeeded",
            "3 (POST /v1/customers/{id}, GET /v1/subscriptions, POST /v1/subscriptions/{id})",
        ),
        (
            lambda c: dataclasses.replace(
                c, fanouts=(fanout(10, queries=1, updates=11), fanout(101, queries=2))
            ),
            "product renamed, 10 subscribers",
            "fan-out 11 UpdateItem + 1 Query + 1 GetItem",
        ),
        (
            lambda c: dataclasses.replace(
                c, fanouts=(fanout(10, queries=1), fanout(101, queries=101))
            ),
            "product renamed, 101 subscribers",
            "fan-out 101 UpdateItem + 101 Query + 1 GetItem",
        ),
        (
            lambda c: replaced(
                c,
                "webhook.same_second",
                stripe=("GET /v1/subscriptions/{id}",) * 2,
            ),
            "same-second re-fetch",
            "2 (GET /v1/subscriptions/{id}, GET /v1/subscriptions/{id})",
        ),
        (
            lambda c: replaced(
                c,
                "session.subscription_update_confirm",
                stripe=("GET /v1/prices", *SESSION_CALL),
            ),
            "confirm-plan session",
            "2 (GET /v1/prices, POST /v1/billing_portal/sessions)",
        ),
        (
            lambda c: replaced(
                c, "session.checkout", stripe=("GET /v1/subscriptions", *CHECKOUT_CALL)
            ),
            "checkout session, customer exists",
            "2 (GET /v1/subscriptions, POST /v1/checkout/sessions)",
        ),
        (
            lambda c: replaced(c, "session.checkout_again", stripe=CHECKOUT_CALL),
            "the same checkout again",
            "1 (POST /v1/checkout/sessions)",
        ),
        (
            lambda c: replaced(
                c,
                "catalog.unchanged",
                stripe=("GET /v1/products", "POST /v1/products/{id}"),
            ),
            "Custom::StripeCatalog deployed again unchanged",
            "1 (POST /v1/products/{id})",
        ),
        (
            lambda c: replaced(c, "session.refresh", stripe=(*REFRESH_CALLS, "GET /v1/invoices")),
            "POST /billing/refresh",
            "5 (GET /v1/customers/{id}, GET /v1/customers/{id}/payment_methods, "
            "GET /v1/subscriptions, GET /v1/entitlements/active_entitlements, "
            "GET /v1/invoices)",
        ),
    ],
)
def test_each_counted_budget_fails_with_its_figure(
    broken: Any, budget: str, figure: str, capsys: pytest.CaptureFixture[str]
) -> None:
    verdicts = counted_verdicts(broken(within_budget()))
    (failure,) = failed(verdicts)
    assert budget in failure.budget
    assert figure in failure.measured

    assert report(verdicts) == 1
    out = capsys.readouterr().out
    assert f"FAIL  {failure.budget}" in out
    assert f"BROKEN  {failure.budget}: {failure.measured}" in out


def cold(snapshot_ms: float, session_ms: float) -> ColdStarts:
    return ColdStarts(
        functions=(
            ColdStart("BillingFunction", {"pyc": snapshot_ms}, {"pyc": 2 * snapshot_ms}, False),
            ColdStart("PortalSessionFunction", {"pyc": session_ms}, {"pyc": 2 * session_ms}, True),
        ),
        runs=15,
        interpreter="python3.13",
        replaced_extensions=(),
    )


LAYER = Artifact("BillingLayer", 13_600_000, 42_000_000, files=4609, pyc_files=2241)


def test_measured_budgets_hold_and_break_at_their_limits() -> None:
    assert failed(measured_verdicts(cold(180, 300), LAYER)) == []  # 60 %: the limit itself

    (share,) = failed(measured_verdicts(cold(181, 300), LAYER))
    assert "cold start at most 60%" in share.budget
    assert share.measured == "60% (181 ms / 300 ms)"

    too_big = dataclasses.replace(LAYER, zipped_bytes=15_000_001)
    (size,) = failed(measured_verdicts(cold(100, 300), too_big))
    assert size.measured == "15.00 MB (2241 .pyc)"

    no_bytecode = dataclasses.replace(LAYER, zipped_bytes=9_000_000, pyc_files=0)
    (pyc,) = failed(measured_verdicts(cold(100, 300), no_bytecode))
    assert "with .pyc included" in pyc.budget


@pytest.mark.e2e  # runs every counted scenario end to end: about 20 s
def test_a_real_regression_in_the_snapshot_fails_bench_check(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """The counters see what the product does: one extra read breaks `--counted`."""
    original = BillingStore.user_items

    def user_items_and_a_second_read(
        self: BillingStore, user_id: str, *, invoices: int
    ) -> UserItems:
        items = original(self, user_id, invoices=invoices)
        self.customer_for_user(user_id)
        return items

    monkeypatch.setattr(BillingStore, "user_items", user_items_and_a_second_read)

    assert main(["--counted"]) == 1

    out = capsys.readouterr().out
    assert (
        "FAIL  GET /billing, subscriber with 12 invoices: exactly 1 DynamoDB request  "
        "[measured: 2 (Query, GetItem)]"
    ) in out
    assert "PASS  confirm-plan session, customer exists: exactly 1 Stripe call" in out
    assert "budgets BROKEN" in out
