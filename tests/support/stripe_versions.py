"""Stripe objects in the shapes of older API versions, built from Stripe's own example.

The starting point is ``fixtures3.json`` (Stripe's OpenAPI fixtures: every object in
the current shape); the older shapes undo the changes Stripe's API changelog lists,
never what the stand-in or the product does:

- 2025-03-31.basil moved a subscription's ``current_period_start/end`` onto its items
  and an invoice's ``subscription`` under ``parent.subscription_details``, and removed
  ``Invoice.paid``, ``charge`` and ``payment_intent``;
- 2020-08-27 stopped including a customer's ``sources``, ``subscriptions`` and
  ``tax_ids`` lists and a subscription's single-plan ``plan``/``quantity`` shortcut;
- ``card.display_brand`` appeared in 2024.
"""

from __future__ import annotations

import copy
import json
import typing
from functools import cache
from pathlib import Path
from types import NoneType, UnionType
from typing import Any

import stripe

FIXTURES = Path(__file__).resolve().parents[3] / "shared" / "stripe" / "fixtures3.json"

V2020 = "2020-03-02"
V2024 = "2024-06-20"
BASIL = "2025-03-31.basil"
CLOVER = "2025-10-29.clover"
PINNED = "2026-10-28.endive"
VERSIONS = (V2020, V2024, BASIL, CLOVER, PINNED)
_BEFORE_BASIL = (V2020, V2024)


@cache
def _resources() -> dict[str, Any]:
    resources: dict[str, Any] = json.loads(FIXTURES.read_text())["resources"]
    return resources


def example(kind: str) -> dict[str, Any]:
    """A fresh copy of Stripe's example ``kind`` object (current shape)."""
    obj: dict[str, Any] = copy.deepcopy(_resources()[kind])
    return obj


def customer(version: str, **fields: Any) -> dict[str, Any]:
    obj = {**example("customer"), **fields}
    if version == V2020:
        empty = {"object": "list", "data": [], "has_more": False, "total_count": 0}
        obj["sources"] = {**empty, "url": f"/v1/customers/{obj['id']}/sources"}
        obj["subscriptions"] = {**empty, "url": f"/v1/customers/{obj['id']}/subscriptions"}
        obj["tax_ids"] = {**empty, "url": f"/v1/customers/{obj['id']}/tax_ids"}
    return obj


def card_payment_method(version: str, **fields: Any) -> dict[str, Any]:
    obj = {**example("payment_method"), **fields}
    if version == V2020:
        obj["card"].pop("display_brand", None)
    return obj


def payment_method_of_type(method_type: str, details: dict[str, Any], **fields: Any) -> Any:
    """A payment method of ``method_type``: Stripe's example with its details swapped."""
    obj = {**example("payment_method"), **fields, "type": method_type}
    obj.pop("card")
    obj[method_type] = details
    return obj


def subscription(
    version: str,
    *,
    items: list[dict[str, Any]],
    period: tuple[int, int],
    **fields: Any,
) -> dict[str, Any]:
    """``items``: ``{"id", "price": <price object>, "quantity"}`` each."""
    obj = {**example("subscription"), **fields}
    template = obj["items"]["data"][0]
    obj["items"]["data"] = [
        {**copy.deepcopy(template), **item, "subscription": obj["id"]} for item in items
    ]
    start, end = period
    for item in obj["items"]["data"]:
        item["current_period_start"], item["current_period_end"] = start, end
    if version in _BEFORE_BASIL:
        for item in obj["items"]["data"]:
            del item["current_period_start"], item["current_period_end"]
        obj["current_period_start"], obj["current_period_end"] = start, end
    if version == V2020:
        first = obj["items"]["data"][0]
        obj["plan"] = first["plan"]
        obj["quantity"] = first["quantity"]
    return obj


def invoice(version: str, *, subscription_id: str | None, **fields: Any) -> dict[str, Any]:
    obj = {**example("invoice"), **fields}
    if version in _BEFORE_BASIL:
        obj.pop("parent", None)
        obj["subscription"] = subscription_id
        obj["paid"] = obj.get("status") == "paid"
        obj["charge"] = None
        obj["payment_intent"] = None
    else:
        obj["parent"] = {
            "type": "subscription_details",
            "quote_details": None,
            "subscription_details": {"metadata": {}, "subscription": subscription_id},
        }
        obj.pop("subscription", None)
    return obj


def price(**fields: Any) -> dict[str, Any]:
    return {**example("price"), **fields}


def event(
    version: str | None, event_type: str, obj: dict[str, Any], *, event_id: str, created: int
) -> dict[str, Any]:
    """A webhook event envelope (Stripe's example) rendered in ``version``."""
    envelope = example("event")
    envelope.update(
        id=event_id,
        api_version=version,
        created=created,
        type=event_type,
        livemode=False,
        data={"object": obj},
    )
    return envelope


# --- nullable fields, from stripe-python's own types ----------------------------------------


def nullable_fields(cls: type[stripe.StripeObject]) -> list[str]:
    """The top-level fields stripe-python types as ``Optional`` on ``cls``."""
    hints: dict[str, Any] = {}
    for klass in reversed(cls.__mro__):
        hints.update(vars(klass).get("__annotations__", {}))
    return sorted(n for n, hint in hints.items() if not n.startswith("_") and _allows_none(hint))


def _allows_none(hint: Any) -> bool:
    if isinstance(hint, str):  # a forward reference: stripe-python spells it Optional[...]
        return hint.startswith("Optional[")
    origin = typing.get_origin(hint)
    if origin is typing.Union or origin is UnionType:
        return NoneType in typing.get_args(hint)
    return False


def with_nulls(obj: dict[str, Any], cls: type[stripe.StripeObject]) -> dict[str, Any]:
    """``obj`` with every field Stripe documents as nullable set to null."""
    return {**obj, **dict.fromkeys((f for f in nullable_fields(cls) if f in obj), None)}
