"""What the projection must converge to, computed from Stripe's final objects alone.

For each customer, the stand-in's current customer, subscriptions, invoices and
payment methods are turned into records by the projection's pure functions
(``change_from_object`` and ``Change.record``), laid out in the table's slots,
and composed as ``GET /billing`` composes them. No event and no DynamoDB write
is involved, so the oracle cannot share a bug with the event path it checks.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import stripe

from billing.projection.fold import CatalogCopies, change_from_object
from billing.projection.intake import active_entitlements
from billing.projection.records import Kind
from billing.read.settings import get_snapshot_settings
from billing.read.snapshot import BillingSnapshot, compose, to_json
from billing.store.attributes import from_item, to_attribute
from billing.store.keys import (
    INVOICE_PREFIX,
    LINK,
    SNAPSHOT,
    customer_key,
    invoice_sort_key,
    slot_attribute,
    user_key,
)
from billing.store.writes import UserItems

USER_METADATA_KEY = "user_id"


@dataclass(frozen=True)
class Expected:
    """One user's projection as Stripe's final objects say it should be."""

    user_id: str
    customer_id: str
    slots: dict[str, Any]  # SNAPSHOT attribute -> record
    invoices: dict[str, Any]  # INVOICE sort key -> record

    def snapshot(self) -> dict[str, Any]:
        """``GET /billing``'s body for this user, without ``as_of``."""
        settings = get_snapshot_settings()
        snapshot: dict[str, Any] = {
            name: {"v": 0, "e": "", "r": record} for name, record in self.slots.items()
        }
        invoices = [
            {"sk": sk, "v": 0, "e": "", "r": record}
            for sk, record in sorted(self.invoices.items(), reverse=True)
        ]
        items = UserItems(
            snapshot={"pk": user_key(self.user_id), "sk": SNAPSHOT, **snapshot},
            link={"customer_id": self.customer_id},
            invoices=invoices[: settings.invoice_page_size + 1],
            last_key=None,
        )
        return served(
            json.loads(to_json(compose_snapshot(items, page_size=settings.invoice_page_size)))
        )


def expected_projection(client: stripe.StripeClient, customer_ids: list[str]) -> list[Expected]:
    """The expected projection of each customer, from its objects on Stripe now."""
    api = client.v1
    names = CatalogCopies(
        {p.id: p.name for p in api.products.list(params={"limit": 100}).auto_paging_iter()}, {}
    )
    expected = []
    for customer_id in customer_ids:
        customer = api.customers.retrieve(customer_id).to_dict()
        user_id = str(customer["metadata"][USER_METADATA_KEY])
        objects: list[tuple[Kind, Mapping[str, Any]]] = [(Kind.CUSTOMER, customer)]
        for subscription in api.subscriptions.list(
            params={"customer": customer_id, "status": "all", "limit": 100}
        ).auto_paging_iter():
            objects.append((Kind.SUBSCRIPTION, subscription.to_dict()))
        for method in api.customers.payment_methods.list(
            customer_id, params={"limit": 100}
        ).auto_paging_iter():
            objects.append((Kind.PAYMENT_METHOD, method.to_dict()))
        # A customer whose subscriptions were ever entitled has had Stripe's summary.
        entitlements = active_entitlements(client, customer_id)
        ever_entitled = any(
            obj.get("status") not in ("incomplete", "incomplete_expired")
            for kind, obj in objects
            if kind is Kind.SUBSCRIPTION
        )
        if entitlements["entitlements"]["data"] or ever_entitled:
            objects.append((Kind.ENTITLEMENTS, entitlements))
        slots: dict[str, Any] = {}
        for kind, obj in objects:
            change = change_from_object(kind, obj)
            record = change.record(USER_METADATA_KEY, names)
            slots[slot_attribute(kind, change.object_id)] = comparable(stored(record.stored()))
        invoices: dict[str, Any] = {}
        for invoice in api.invoices.list(
            params={"customer": customer_id, "limit": 100}
        ).auto_paging_iter():
            obj = invoice.to_dict()
            record = change_from_object(Kind.INVOICE, obj).record(USER_METADATA_KEY)
            invoices[invoice_sort_key(int(obj["created"]), obj["id"])] = stored(record.stored())
        expected.append(Expected(user_id, customer_id, slots, invoices))
    return expected


def projected(items: list[dict[str, Any]], user_id: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """The stored records of ``user_id``: (SNAPSHOT attribute -> record, INVOICE key -> record)."""
    slots: dict[str, Any] = {}
    invoices: dict[str, Any] = {}
    for raw in items:
        if raw["pk"]["S"] != user_key(user_id):
            continue
        item = from_item(raw)
        if item["sk"] == SNAPSHOT:
            slots = {k: comparable(v["r"]) for k, v in item.items() if k not in ("pk", "sk")}
        elif item["sk"].startswith(INVOICE_PREFIX):
            invoices[item["sk"]] = item["r"]
    return slots, invoices


def links(items: list[dict[str, Any]]) -> dict[str, str]:
    """Both directions of every user <-> customer link, as ``{pk: linked id}``."""
    found = {}
    for raw in items:
        if raw["sk"]["S"] == LINK:
            item = from_item(raw)
            found[item["pk"]] = str(item.get("customer_id") or item.get("user_id"))
    return found


def expected_links(expected: list[Expected]) -> dict[str, str]:
    pairs = {}
    for each in expected:
        pairs[user_key(each.user_id)] = each.customer_id
        pairs[customer_key(each.customer_id)] = each.user_id
    return pairs


# When a catalog field was copied into an item, not what it says: left out of comparisons.
_COPY_VERSIONS = ("name_version", "price_version")


def comparable(record: Mapping[str, Any]) -> dict[str, Any]:
    """A stored record without the versions of the catalog fields its items copy."""
    if "items" not in record:
        return dict(record)
    items = [{k: v for k, v in i.items() if k not in _COPY_VERSIONS} for i in record["items"]]
    return {**record, "items": items}


def stored(value: Any) -> Any:
    """``value`` as it reads back from DynamoDB (numbers become Decimal, and so on)."""
    return from_item({"value": to_attribute(value)})["value"]


def compose_snapshot(items: UserItems, *, page_size: int) -> BillingSnapshot:
    settings = get_snapshot_settings()
    return compose(
        items,
        portal_flows=settings.portal_flows,
        page_size=page_size,
        expiry_warning_days=settings.card_expiry_warning_days,
        now=time.time(),
    )


def served(body: Mapping[str, Any]) -> dict[str, Any]:
    """A ``GET /billing`` body without ``as_of`` (the time of the newest event applied)."""
    view = dict(body)
    view.pop("as_of", None)
    return view
