"""The snapshot carries the access decision of its stored subscriptions, with the
deployment's policy, and as JSON a browser reads."""

from __future__ import annotations

import json
from typing import Any

from billing.core.access import DAY, AccessPolicy
from billing.read.snapshot import compose, to_json
from billing.store.writes import UserItems

CUSTOMER = "cus_1"
NOW = 1_800_000_000


def subscription(status: str, *, period_start: int, **fields: Any) -> dict[str, Any]:
    item = {
        "id": "si_1",
        "price": "price_1",
        "product": "prod_1",
        "currency": "usd",
        "current_period_start": period_start,
        "current_period_end": period_start + 30 * DAY,
    }
    record = {
        "customer": CUSTOMER,
        "status": status,
        "created": period_start - 60 * DAY,
        "items": [item],
        **fields,
    }
    return {"v": NOW - 10, "e": "evt_1", "r": record}


def snapshot_json(policy: AccessPolicy, *slots: tuple[str, dict[str, Any]]) -> dict[str, Any]:
    snapshot: dict[str, Any] = {"customer#cus_1": {"v": 1, "e": "evt_0", "r": {}}}
    snapshot.update(slots)
    items = UserItems(snapshot=snapshot, link={"customer_id": CUSTOMER}, invoices=[], last_key=None)
    view = compose(
        items,
        portal_flows=(),
        page_size=10,
        expiry_warning_days=30,
        now=NOW,
        access_policy=policy,
    )
    body: dict[str, Any] = json.loads(to_json(view))
    return body


def test_a_failed_renewal_is_grace_until_the_policy_s_days_after_the_period_start() -> None:
    failing = ("subscription#sub_1", subscription("past_due", period_start=NOW - 2 * DAY))

    body = snapshot_json(AccessPolicy(past_due_grace_days=7), failing)

    assert body["status"] == "past_due"
    assert body["access"] == {
        "state": "grace",
        "until": "2027-01-20T08:00:00Z",
        "reason": "past_due",
    }
    assert snapshot_json(AccessPolicy(past_due_grace_days=1), failing)["access"] == {
        "state": "denied",
        "until": None,
        "reason": "past_due",
    }


def test_an_old_canceled_subscription_does_not_hide_a_current_one() -> None:
    old = ("subscription#sub_old", subscription("canceled", period_start=NOW - 90 * DAY))
    current = ("subscription#sub_new", subscription("active", period_start=NOW - DAY))

    assert snapshot_json(AccessPolicy(), old, current)["access"] == {
        "state": "granted",
        "until": None,
        "reason": "active",
    }


def test_a_user_without_a_customer_is_denied_with_reason_none() -> None:
    view = compose(
        UserItems(snapshot=None, link=None, invoices=[], last_key=None),
        portal_flows=(),
        page_size=10,
        expiry_warning_days=30,
        now=NOW,
    )
    assert json.loads(to_json(view))["access"] == {
        "state": "denied",
        "until": None,
        "reason": "none",
    }
