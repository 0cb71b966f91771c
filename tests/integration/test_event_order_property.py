"""Property: any delivery order, with duplicates, converges to Stripe's final state.

Hypothesis draws realistic billing histories for two interleaved customers on
the local Stripe stand-in (subscribe, change plan, cancel at period end,
reactivate, replace the card, a payment that fails, cancel now, subscribe
again), on plans whose products carry entitlement features (so summaries of the
customer's features come along), with the stand-in's clock advancing 0-2 seconds per
step so events of one object often share a second. The recorded events are then delivered in a
drawn order, some twice, through the real webhook handler into DynamoDB (moto).
The snapshot must equal the one built from Stripe's final objects alone (the
backfill path, into a second table).
"""

from __future__ import annotations

import itertools
import json
import time
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from billing.aws.settings import get_backfill_settings
from billing.projection.catalog_fanout import announcer
from billing.projection.intake import WebhookProcessor, active_entitlements
from billing.projection.records import Kind
from billing.read.snapshot import compose, to_json
from billing.store.table import BillingStore
from billing.stripe_api.client import get_stripe_client
from tests.support.aws import create_billing_table
from tests.support.portal import linked_user
from tests.support.stripe_seed import Account
from tests.support.webhooks import deliver, events_from_changes

# Twenty whole Stripe histories take about 20 s: `make test` runs them, the
# everyday `make check` relies on the deterministic ordering tests of test_webhooks.
pytestmark = pytest.mark.robustness

EXPECTED_TABLE = "billing-expected"
OPERATIONS = (
    "subscribe",
    "change_plan",
    "cancel_at_period_end",
    "reactivate",
    "replace_card",
    "failing_payment",
    "cancel_now",
)
_users = itertools.count()


@pytest.fixture
def tables(webhook_deployment: dict[str, Any], account: Account) -> Account:
    """Basic includes exports, Pro exports and single sign-on: every plan change sends an
    entitlements summary too."""
    create_billing_table(EXPECTED_TABLE)
    api = account.client.v1
    exports = api.entitlements.features.create({"lookup_key": "exports", "name": "Exports"})
    sso = api.entitlements.features.create({"lookup_key": "sso", "name": "Single sign-on"})
    api.products.features.create(account.products["Basic"], {"entitlement_feature": exports.id})
    for feature in (exports, sso):
        api.products.features.create(account.products["Pro"], {"entitlement_feature": feature.id})
    return account


class History:
    """Drives one customer's billing on the stand-in."""

    def __init__(self, account: Account, user: str) -> None:
        self.account = account
        self.api = account.client.v1
        self.user = user
        self.customer = linked_user(account, user)
        self.card = self._card("pm_card_visa")

    def _card(self, token: str) -> str:
        card = self.api.payment_methods.attach(token, params={"customer": self.customer})
        self.api.customers.update(
            self.customer, params={"invoice_settings": {"default_payment_method": card.id}}
        )
        return card.id

    def _live(self) -> list[Any]:
        subscriptions = self.api.subscriptions.list(params={"customer": self.customer}).data
        return [s for s in subscriptions if s.status not in ("canceled", "incomplete_expired")]

    def run(self, operation: str) -> None:
        live = self._live()
        match operation:
            case "subscribe" if not live:
                self.api.subscriptions.create(
                    params={
                        "customer": self.customer,
                        "items": [{"price": self.account.prices["basic_monthly"]}],
                    }
                )
            case "change_plan" if live:
                item = live[0]["items"].data[0]
                target = "pro_yearly" if item.price.lookup_key != "pro_yearly" else "pro_monthly"
                self.api.subscriptions.update(
                    live[0].id,
                    params={"items": [{"id": item.id, "price": self.account.prices[target]}]},
                )
            case "cancel_at_period_end" | "reactivate" if live:
                ending = operation == "cancel_at_period_end"
                self.api.subscriptions.update(live[0].id, params={"cancel_at_period_end": ending})
            case "replace_card":
                old = self.card
                self.card = self._card("pm_card_mastercard")
                self.api.payment_methods.detach(old)
            case "failing_payment" if not live:
                self.card = self._card("pm_card_chargeCustomerFail")
                self.api.subscriptions.create(
                    params={
                        "customer": self.customer,
                        "items": [{"price": self.account.prices["pro_monthly"]}],
                    }
                )
            case "cancel_now" if live:
                self.api.subscriptions.cancel(live[0].id)
            case _:
                pass  # not applicable in this state: a no-op step


def expected_snapshot(account: Account, user: str, customer: str) -> dict[str, Any]:
    """The snapshot built from Stripe's final objects only, in a table of its own."""
    settings_ = get_backfill_settings()
    store = BillingStore(EXPECTED_TABLE)
    processor = WebhookProcessor(
        settings_, store, lambda: get_stripe_client(settings_), announcer(store, None)
    )
    api = account.client.v1
    version = int(time.time()) + 10_000
    objects: list[tuple[Kind, Any]] = [(Kind.CUSTOMER, api.customers.retrieve(customer))]
    objects += [
        (Kind.SUBSCRIPTION, s)
        for s in api.subscriptions.list(params={"customer": customer, "status": "all"}).data
    ]
    objects += [(Kind.INVOICE, i) for i in api.invoices.list(params={"customer": customer}).data]
    objects += [(Kind.PAYMENT_METHOD, m) for m in api.customers.payment_methods.list(customer).data]
    for kind, obj in objects:
        processor.apply_object(kind, obj.to_dict(), version=version, source=f"evt_x{obj.id}")
    entitlements = active_entitlements(account.client, customer)
    processor.apply_object(
        Kind.ENTITLEMENTS, entitlements, version=version, source=f"evt_xent{customer}"
    )
    return _snapshot(store, user)


def _snapshot(store: BillingStore, user: str) -> dict[str, Any]:
    view: dict[str, Any] = json.loads(
        to_json(
            compose(
                store.user_items(user, invoices=50),
                portal_flows=(
                    "payment_method_update",
                    "subscription_cancel",
                    "subscription_update",
                ),
                page_size=50,
                expiry_warning_days=30,
                now=time.time(),
            )
        )
    )
    view.pop("as_of")
    return view


@settings(
    max_examples=20,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(data=st.data())
def test_any_delivery_order_converges_to_the_final_stripe_state(
    tables: Account, data: st.DataObject
) -> None:
    account = tables
    state = account.standin.state
    real_clock, start, offset = state.clock, time.time(), [0]
    state.clock = lambda: start + offset[0]
    try:
        _check_one_history(account, data)
    finally:
        state.clock = real_clock


def _check_one_history(account: Account, data: st.DataObject) -> None:
    offset = [0]
    start = account.standin.state.clock()
    account.standin.state.clock = lambda: start + offset[0]
    first_seq = len(account.changes())
    n = next(_users)
    histories = [History(account, f"prop-{n}-{i}") for i in range(2)]
    for history in histories:
        history.run("subscribe")
    steps = data.draw(
        st.lists(st.tuples(st.integers(0, 1), st.sampled_from(OPERATIONS)), max_size=10),
        label="steps",
    )
    for who, operation in steps:
        offset[0] += data.draw(st.sampled_from([0, 0, 1, 2]), label="tick")
        histories[who].run(operation)
    events = events_from_changes([c for c in account.changes() if c["seq"] > first_seq])
    # Each history starts on a plan with features: summaries are among what is shuffled.
    summaries = [
        e for e in events if e["type"] == "entitlements.active_entitlement_summary.updated"
    ]
    assert len(summaries) >= len(histories)
    order = data.draw(st.permutations(events), label="order")
    repeats = data.draw(st.lists(st.sampled_from(events), max_size=8), label="redelivered")
    for event in [*order, *repeats]:
        result = deliver(event)
        assert result.status == 200, result.raw
    store = BillingStore("billing-test")
    for history in histories:
        assert _snapshot(store, history.user) == expected_snapshot(
            account, history.user, history.customer
        )
