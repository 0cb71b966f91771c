"""The snapshot's subscription list does not depend on the order items were written in."""

from __future__ import annotations

from itertools import permutations
from typing import Any

from billing.read.snapshot import compose
from billing.store.writes import UserItems

CUSTOMER = "cus_1"


def subscription(status: str, *, created: int = 1_795_000_000) -> dict[str, Any]:
    return {
        "v": created,
        "e": "evt_1",
        "r": {"customer": CUSTOMER, "status": status, "created": created, "items": []},
    }


def order_of(slots: list[tuple[str, dict[str, Any]]]) -> list[tuple[str, bool]]:
    snapshot = {"customer#cus_1": {"v": 1, "e": "evt_0", "r": {"email": "a@example.com"}}}
    snapshot.update(slots)
    view = compose(
        UserItems(snapshot=snapshot, link={"customer_id": CUSTOMER}, invoices=[], last_key=None),
        portal_flows=(),
        page_size=10,
        expiry_warning_days=30,
        now=1_795_000_100,
    )
    return [(s.status, s.primary) for s in view.subscriptions]


def test_subscriptions_of_one_second_come_in_one_order_whatever_the_write_order() -> None:
    slots = [
        ("subscription#sub_a", subscription("canceled")),
        ("subscription#sub_b", subscription("active")),
        ("subscription#sub_c", subscription("canceled")),
    ]

    orders = {tuple(order_of(list(permutation))) for permutation in permutations(slots)}

    assert orders == {(("active", True), ("canceled", False), ("canceled", False))}
