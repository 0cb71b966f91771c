"""The performance budgets, evaluated over measurements: each PASS or FAIL, with its figure.

Counted budgets (exact, no timing; ``make test`` runs them):

- snapshot (``GET /billing``, its invoice pages, ``GET /plans``): 1 DynamoDB request,
  0 Stripe calls, ``stripe`` never imported;
- webhook, steady state: at most 2 DynamoDB requests per event, first delivery and
  redelivery, for every handled type; no Stripe call, except the documented
  same-second re-fetch (exactly one retrieve);
- ``customer.deleted``: at most 5 DynamoDB requests besides one ``BatchWriteItem`` per
  25 invoices (the retirement, then the purge of the customer's records), no Stripe call;
- confirm-plan session once the customer exists: exactly 1 Stripe call;
- ``Custom::StripeCatalog`` deployed again with an unchanged declaration: no Stripe
  write (only the reads that compare it with Stripe);
- a product renamed with N subscribers: the webhook keeps its 2 requests (it only
  announces the change), and the fan-out makes at most N ``UpdateItem`` plus one
  ``Query`` per 100 subscribers (``N + ⌊N/100⌋ + 1``), no Stripe call.

``setup_intent.succeeded`` is the one handled type whose purpose is a Stripe write (the
saved card becomes the default: ``billing/webhooks.py``), so the no-Stripe-call
budget cannot hold for it; it gets a budget of its own, exactly those calls and none
on a redelivery, instead of a silent exemption.

Measured budgets (``make bench-check``): the snapshot function's cold start at most
60 % of the portal-session function's, and the layer zip at most 15 MB (10^6 bytes)
with its ``.pyc`` included.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from bench.artifacts import Artifact
from bench.cold_start import ColdStarts
from bench.counts import Count, Counts, FanoutCount
from billing.projection.catalog_fanout import PAGE_SIZE as FANOUT_PAGE
from billing.projection.registry import REGISTRY, Fold

SNAPSHOTS = (
    "snapshot.subscriber",
    "snapshot.not_modified",
    "snapshot.free",
    "snapshot.invoices",
    "snapshot.plans",
)
WEBHOOK_MAX_DYNAMODB = 2
SETUP_INTENT_SUCCEEDED = next(
    t for t, entry in REGISTRY.items() if entry.fold is Fold.DEFAULT_PAYMENT_METHOD
)
CUSTOMER_DELETED = next(t for t, entry in REGISTRY.items() if entry.fold is Fold.RETIRE_CUSTOMER)
# The retirement (context read + one transaction), then the purge of the customer's records:
# the snapshot item read and updated, one Query page of invoice keys, and one
# BatchWriteItem per 25 of its invoices (not counted in this bound).
RETIRE_MAX_DYNAMODB = 5
SETUP_INTENT_CALLS = ("POST /v1/customers/{id}", "GET /v1/subscriptions")
COLD_START_SHARE = 0.60
LAYER_ZIP_MAX_BYTES = 15_000_000


@dataclass(frozen=True)
class Verdict:
    budget: str
    measured: str
    passed: bool

    def line(self) -> str:
        return f"{'PASS' if self.passed else 'FAIL'}  {self.budget}  [measured: {self.measured}]"


def described(calls: Sequence[str]) -> str:
    """``2 (BatchGetItem, TransactWriteItems)``, or ``0``."""
    return f"{len(calls)} ({', '.join(calls)})" if calls else "0"


# The user-facing Stripe-calling routes: (measurement, budget, allowed numbers of calls).
SESSION_STRIPE_CALLS = (
    (
        "session.subscription_update_confirm",
        "confirm-plan session, customer exists: exactly 1 Stripe call",
        range(1, 2),
    ),
    (
        "session.checkout",
        "checkout session, customer exists, price cached: exactly 1 Stripe call",
        range(1, 2),
    ),
    (
        "session.checkout_again",
        "the same checkout again (a double click): 0 Stripe calls",
        range(0, 1),
    ),
    (
        "session.refresh",
        "POST /billing/refresh, a subscriber: at most 4 Stripe calls (customer, its "
        "payment methods, its subscriptions, its active entitlements)",
        range(0, 5),
    ),
)


def counted_verdicts(counts: Counts) -> list[Verdict]:
    verdicts = []
    for key in SNAPSHOTS:
        snapshot = counts.find(key)
        verdicts += [
            Verdict(
                f"{snapshot.operation}: exactly 1 DynamoDB request",
                described(snapshot.dynamodb),
                len(snapshot.dynamodb) == 1,
            ),
            Verdict(
                f"{snapshot.operation}: 0 Stripe calls",
                described(snapshot.stripe),
                not snapshot.stripe,
            ),
        ]
    verdicts.append(
        Verdict(
            "snapshot function: stripe never imported (fresh interpreter, one GET /billing)",
            "imported" if counts.snapshot_imports_stripe else "not imported",
            not counts.snapshot_imports_stripe,
        )
    )
    deliveries = [
        delivery
        for webhook in counts.webhooks
        if webhook.event_type != CUSTOMER_DELETED
        for delivery in (webhook.first, webhook.again)
    ]
    verdicts.append(
        _worst(
            f"webhook, each of {len(counts.webhooks)} handled types, first delivery and "
            f"redelivery: at most {WEBHOOK_MAX_DYNAMODB} DynamoDB requests",
            deliveries,
            lambda count: len(count.dynamodb) <= WEBHOOK_MAX_DYNAMODB,
            lambda count: count.dynamodb,
        )
    )
    verdicts.append(
        _worst(
            "webhook, each type folded into the projection: 0 Stripe calls",
            [d for d in deliveries if not d.operation.startswith(SETUP_INTENT_SUCCEEDED)],
            lambda count: not count.stripe,
            lambda count: count.stripe,
        )
    )
    retire = next(w for w in counts.webhooks if w.event_type == CUSTOMER_DELETED)
    verdicts.append(
        _worst(
            f"webhook {CUSTOMER_DELETED} (retires the link, purges the customer's records): "
            f"at most {RETIRE_MAX_DYNAMODB} DynamoDB requests besides one BatchWriteItem "
            "per 25 invoices, 0 Stripe calls, first delivery and redelivery",
            [retire.first, retire.again],
            lambda count: (
                sum(call != "BatchWriteItem" for call in count.dynamodb) <= RETIRE_MAX_DYNAMODB
                and not count.stripe
            ),
            lambda count: (*count.dynamodb, *count.stripe),
        )
    )
    setup = next(w for w in counts.webhooks if w.event_type == SETUP_INTENT_SUCCEEDED)
    verdicts.append(
        Verdict(
            f"webhook {SETUP_INTENT_SUCCEEDED} (makes the card the default in Stripe): "
            "customers.update + subscriptions.list, nothing on redelivery",
            f"{described(setup.first.stripe)}; redelivered {described(setup.again.stripe)}",
            setup.first.stripe == SETUP_INTENT_CALLS and not setup.again.stripe,
        )
    )
    unchanged = counts.find("catalog.unchanged")
    stripe_writes = [c for c in unchanged.stripe if not c.startswith("GET ")]
    verdicts.append(
        Verdict(
            "Custom::StripeCatalog deployed again unchanged: 0 Stripe writes",
            described(tuple(stripe_writes)),
            not stripe_writes,
        )
    )
    refetch = counts.find("webhook.same_second")
    verdicts.append(
        Verdict(
            "webhook, same-second re-fetch: exactly 1 Stripe call, a retrieve",
            described(refetch.stripe),
            len(refetch.stripe) == 1 and refetch.stripe[0].startswith("GET "),
        )
    )
    for row in counts.fanouts:
        verdicts.append(fanout_verdict(row))
    for key, budget, allowed in SESSION_STRIPE_CALLS:
        calls = counts.find(key).stripe
        verdicts.append(Verdict(budget, described(calls), len(calls) in allowed))
    return verdicts


def fanout_requests(subscribers: int) -> int:
    """The fan-out's bound: one UpdateItem per subscriber, one Query per index page (the
    page after a full one may be empty)."""
    return subscribers + subscribers // FANOUT_PAGE + 1


def fanout_verdict(row: FanoutCount) -> Verdict:
    n = row.subscribers
    updates = sum(call == "UpdateItem" for call in row.fanout.dynamodb)
    queries = sum(call == "Query" for call in row.fanout.dynamodb)
    reads = sum(call == "GetItem" for call in row.fanout.dynamodb)
    others = len(row.fanout.dynamodb) - updates - queries - reads
    return Verdict(
        f"product renamed, {n} subscribers: the webhook at most {WEBHOOK_MAX_DYNAMODB} DynamoDB "
        f"requests; the fan-out at most {fanout_requests(n)} (one UpdateItem per subscriber, "
        f"one Query per {FANOUT_PAGE}) and one GetItem per invocation, 0 Stripe calls",
        f"webhook {described(row.announce.dynamodb)}; fan-out {updates} UpdateItem + "
        f"{queries} Query + {reads} GetItem in {row.invocations} invocation(s)",
        len(row.announce.dynamodb) <= WEBHOOK_MAX_DYNAMODB
        and updates <= n
        and updates + queries <= fanout_requests(n)
        and reads <= row.invocations
        and others == 0
        and not row.fanout.stripe
        and not row.announce.stripe,
    )


def measured_verdicts(cold: ColdStarts, layer: Artifact) -> list[Verdict]:
    snapshot = cold.of("BillingFunction")
    session = cold.of("PortalSessionFunction")
    share = snapshot.cpu_ms["pyc"] / session.cpu_ms["pyc"]
    return [
        Verdict(
            f"snapshot function cold start at most {COLD_START_SHARE:.0%} of the "
            f"portal-session function's (.pyc, CPU time, median of {cold.runs})",
            f"{share:.0%} ({snapshot.cpu_ms['pyc']:.0f} ms / {session.cpu_ms['pyc']:.0f} ms)",
            share <= COLD_START_SHARE,
        ),
        Verdict(
            "snapshot function: stripe not imported at cold start (built artifact)",
            "imported" if snapshot.imports_stripe else "not imported",
            not snapshot.imports_stripe,
        ),
        Verdict(
            f"layer zip at most {LAYER_ZIP_MAX_BYTES / 1e6:.0f} MB with .pyc included",
            f"{layer.zipped_bytes / 1e6:.2f} MB ({layer.pyc_files} .pyc)",
            layer.zipped_bytes <= LAYER_ZIP_MAX_BYTES and layer.pyc_files > 0,
        ),
    ]


def _worst(
    budget: str,
    counts: Sequence[Count],
    within: Callable[[Count], bool],
    calls: Callable[[Count], Sequence[str]],
) -> Verdict:
    over = [count for count in counts if not within(count)]
    if over:
        measured = "; ".join(f"{c.operation}: {described(calls(c))}" for c in over)
    else:
        most = max(counts, key=lambda count: len(calls(count)))
        measured = f"at most {described(calls(most))}, over {len(counts)} deliveries"
    return Verdict(budget, measured, not over)
