"""The webhook projection in DynamoDB: versioned writes, dedupe records, snapshot reads.

Items (see ``billing.store`` for the whole key schema):

- ``USER#<user>`` / ``SNAPSHOT``: one attribute per projected customer,
  subscription and payment method, named ``<kind>#<stripe id>``, each a map
  ``{v: version, e: event id, r: record}``. One item, so ``GET /billing`` reads
  it in the same request as the newest invoices.
- ``USER#<user>`` / ``INVOICE#<created, 10 digits>#<digest of id>``: one item per
  invoice, ``{v, e, r}``. Sorted by date under the user, so a descending query
  from the top of the partition returns SNAPSHOT, LINK, then the newest
  invoices; the digest keeps invoice ids out of paging cursors.
- ``PRICE#<lookup key>`` / ``PRICE`` and ``PRODUCT#<id>`` / ``PRODUCT``: the
  catalog, flat attributes plus ``v`` and ``e``.
- ``PRICEID#<price id>`` / ``PRICE``: what a subscription item copies of its price
  (``lookup_key``, ``nickname``), with ``v`` and ``e``, as the price's own events
  stored it; a late subscription event never copies older values than these.
- ``EVENT#<event id>`` / ``EVENT``: the dedupe record, written in the same
  transaction as the event's effect.
- ``SUBSCRIBERS#<product id>`` / ``SUBSCRIPTION#<subscription id>``: the product's
  subscriber index, ``{user_id, items: [{position, price}]}``, written with the
  subscription; a catalog change walks it to reach every snapshot that copies the
  product's name or a price's fields (``billing.catalog_fanout``).

Every projected write is conditional on ``v`` being older than the event's
(see ``billing.projection`` for the version rule).
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from enum import StrEnum
from functools import cache
from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError

from billing.attributes import from_item, to_attribute
from billing.errors import StorageBusy
from billing.records import Kind
from billing.store import (
    DELETED_IN_STRIPE,
    LINK,
    PRICE,
    BillingStore,
    customer_key,
    link_items,
    price_key,
    retire_items,
    retired_customer_item,
    user_key,
)

if TYPE_CHECKING:
    from mypy_boto3_dynamodb.type_defs import (
        AttributeValueTypeDef,
        TransactWriteItemTypeDef,
    )

SNAPSHOT = "SNAPSHOT"
_BATCH_ATTEMPTS = 5
INVOICE_PREFIX = "INVOICE#"
EVENT = "EVENT"
PRODUCT = "PRODUCT"


def event_key(event_id: str) -> str:
    return f"EVENT#{event_id}"


def product_key(product_id: str) -> str:
    return f"PRODUCT#{product_id}"


PRICE_RECORD_PREFIX = "PRICEID#"
PRICE_RECORD = "PRICE"


def price_record_key(price_id: str) -> str:
    return f"{PRICE_RECORD_PREFIX}{price_id}"


def subscribers_key(product_id: str) -> str:
    return f"SUBSCRIBERS#{product_id}"


def subscriber_sort_key(subscription_id: str) -> str:
    return f"SUBSCRIPTION#{subscription_id}"


def invoice_sort_key(created: int, invoice_id: str) -> str:
    digest = hashlib.sha256(invoice_id.encode()).hexdigest()[:16]
    return f"{INVOICE_PREFIX}{created:010d}#{digest}"


def slot_attribute(kind: Kind, object_id: str) -> str:
    return f"{kind.value}#{object_id}"


@dataclass(frozen=True)
class Slot:
    """Where one projected object lives: a whole item, or one attribute of a snapshot."""

    pk: str
    sk: str
    attribute: str | None = None

    @property
    def key(self) -> dict[str, AttributeValueTypeDef]:
        return {"pk": {"S": self.pk}, "sk": {"S": self.sk}}


@dataclass(frozen=True)
class Write:
    """A versioned write of ``fields`` to ``slot``.

    For an attribute slot, ``fields`` is stored as the map ``{v, e, r}``; for an
    item slot, they are the item's attributes next to ``v`` and ``e``.
    ``allow_equal`` lets a re-fetched object replace state of the same second.
    """

    slot: Slot
    version: int
    event_id: str
    fields: Mapping[str, Any]
    allow_equal: bool = False


@dataclass(frozen=True)
class LinkWrite:
    """Link a customer and a user, unless either is already linked elsewhere."""

    user_id: str
    customer_id: str


@dataclass(frozen=True)
class Guard:
    """The customer's link must still be this user's, and not retired, at commit time:
    a write of a customer deleted meanwhile must not land in the user's partition."""

    user_id: str
    customer_id: str


@dataclass(frozen=True)
class RetireWrite:
    """Retire a customer deleted in Stripe: unlink it from its user when ``linked``, and
    keep its link as retired history either way."""

    user_id: str
    customer_id: str
    linked: bool


@dataclass(frozen=True)
class SubscriberEntry:
    """A subscription's entry in a product's subscriber index: whose snapshot holds it,
    and which of its items bill the product (position in the item list, price id)."""

    product_id: str
    subscription_id: str
    user_id: str
    items: tuple[tuple[int, str], ...]


@dataclass(frozen=True)
class CatalogCheck:
    """A catalog record a subscription copied fields from (a product's name, a price's
    lookup key and nickname) must still be the one read when the transaction commits:
    its version and event, or still absent (``version`` None). A change committed
    meanwhile, even in the same second, makes the writer read it again."""

    pk: str
    sk: str
    version: int | None
    event_id: str | None = None


@dataclass(frozen=True)
class StoredPrice:
    """A price's fields that snapshots copy, as the price's own events last stored them."""

    lookup_key: str | None
    nickname: str | None
    version: int
    event_id: str


class CommitStatus(StrEnum):
    COMMITTED = "committed"
    DUPLICATE = "duplicate"  # the event's dedupe record exists
    OUTDATED = "outdated"  # a write lost its version condition
    LINK_TAKEN = "link_taken"  # the user or customer is linked elsewhere
    RETIRED = "retired"  # the customer was retired meanwhile
    CONFLICT = "conflict"  # a concurrent transaction; try again


@dataclass(frozen=True)
class CommitResult:
    status: CommitStatus
    # For OUTDATED: the stored (version, event id) of each write that lost.
    outdated: dict[Slot, tuple[int, str]] = field(default_factory=dict)


@dataclass(frozen=True)
class Context:
    """What a webhook reads before writing: the customer's user and product names."""

    user_id: str | None
    product_names: dict[str, str]
    retired: bool = False  # the customer was deleted in Stripe: its link is history
    product_versions: dict[str, int] = field(default_factory=dict)
    product_events: dict[str, str] = field(default_factory=dict)  # the event each was from
    prices: dict[str, StoredPrice] = field(default_factory=dict)  # by price id


@dataclass(frozen=True)
class UserItems:
    """The raw items of one snapshot read."""

    snapshot: dict[str, Any] | None
    link: dict[str, Any] | None
    invoices: list[dict[str, Any]]
    last_key: str | None  # sort key to continue after, when the read was cut short


class ProjectionStore(BillingStore):
    """The projection's reads and writes, on top of the link and catalog store."""

    # --- webhook path ---------------------------------------------------------------------

    def context(
        self,
        customer_id: str | None,
        product_ids: Sequence[str],
        price_ids: Sequence[str] = (),
    ) -> Context:
        """The customer's linked user, and the stored product names and price fields a
        subscription copies, in one request."""
        keys = [{"pk": {"S": product_key(p)}, "sk": {"S": PRODUCT}} for p in product_ids]
        keys += [{"pk": {"S": price_record_key(p)}, "sk": {"S": PRICE_RECORD}} for p in price_ids]
        if customer_id is not None:
            keys.append({"pk": {"S": customer_key(customer_id)}, "sk": {"S": LINK}})
        if not keys:
            return Context(None, {})
        found: list[dict[str, Any]] = []
        request: dict[str, Any] = {self.table_name: {"Keys": keys, "ConsistentRead": True}}
        while request:
            response = self.client.batch_get_item(RequestItems=request)
            found.extend(response.get("Responses", {}).get(self.table_name, []))
            request = dict(response.get("UnprocessedKeys") or {})
        context = Context(None, {})
        for item in found:
            pk = item["pk"]["S"]
            if pk.startswith("CUSTOMER#"):
                context = replace(
                    context, user_id=item["user_id"]["S"], retired="retired_at" in item
                )
            elif pk.startswith(PRICE_RECORD_PREFIX):
                stored = from_item(item)
                context.prices[pk.removeprefix(PRICE_RECORD_PREFIX)] = StoredPrice(
                    stored.get("lookup_key"),
                    stored.get("nickname"),
                    int(stored["v"]),
                    str(stored["e"]),
                )
            elif not item.get("deleted", {}).get("BOOL"):
                product_id = pk.removeprefix("PRODUCT#")
                context.product_names[product_id] = item["name"]["S"]
                context.product_versions[product_id] = int(item["v"]["N"])
                context.product_events[product_id] = item["e"]["S"]
        return context

    def commit(
        self,
        event_id: str,
        event_type: str,
        writes: Sequence[Write],
        *,
        link: LinkWrite | None = None,
        guard: Guard | None = None,
        retire: RetireWrite | None = None,
        checks: Sequence[CatalogCheck] = (),
        subscribers: Sequence[SubscriberEntry] = (),
        retention_seconds: int,
        now: int | None = None,
    ) -> CommitResult:
        """Record the event and apply ``writes`` (and the link change) in one transaction.

        At most one of ``link``, ``guard`` and ``retire`` applies: each conditions or
        changes the customer's link in the same transaction as the writes. ``checks``
        and ``subscribers`` come with a subscription: the product names it copied are
        still current, and its entries in the products' subscriber indexes.
        """
        now = int(time.time()) if now is None else now
        items: list[TransactWriteItemTypeDef] = [
            self._event_put(event_id, event_type, now, retention_seconds)
        ]
        if link is not None:
            items.extend(link_items(self.table_name, link.user_id, link.customer_id, now=now))
        elif guard is not None:
            items.append(self._guard_check(guard))
        elif retire is not None:
            items.extend(self._retire_writes(retire, now))
        link_count = len(items) - 1
        items.extend(self._write_item(w) for w in writes)
        items.extend(self._catalog_check(check) for check in checks)
        items.extend(self._subscriber_put(entry) for entry in subscribers)
        try:
            self.client.transact_write_items(TransactItems=items)
        except ClientError as error:
            if error.response.get("Error", {}).get("Code") != "TransactionCanceledException":
                raise
            reasons = error.response.get("CancellationReasons", [])
            taken = CommitStatus.RETIRED if guard is not None else CommitStatus.LINK_TAKEN
            return _cancelled(reasons, writes, link_count=link_count, link_failed=taken)
        return CommitResult(CommitStatus.COMMITTED)

    def record_event(
        self, event_id: str, event_type: str, *, retention_seconds: int, now: int | None = None
    ) -> bool:
        """Record an event that changes nothing (stale, or for no user); False if seen before."""
        now = int(time.time()) if now is None else now
        put = self._event_put(event_id, event_type, now, retention_seconds)["Put"]
        try:
            self.client.put_item(**put)
        except ClientError as error:
            if error.response.get("Error", {}).get("Code") != "ConditionalCheckFailedException":
                raise
            return False
        return True

    def event_seen(self, event_id: str, *, now: int | None = None) -> bool:
        """Whether an unexpired dedupe record of ``event_id`` exists."""
        now = int(time.time()) if now is None else now
        item = self.client.get_item(
            TableName=self.table_name,
            Key={"pk": {"S": event_key(event_id)}, "sk": {"S": EVENT}},
            ConsistentRead=True,
        ).get("Item")
        return item is not None and int(item["expires_at"]["N"]) >= now

    def release_lookup_key(self, lookup_key: str, price_id: str, version: int) -> None:
        """Drop the catalog entry of ``lookup_key`` if it still names ``price_id`` at an older
        version (the key moved to another price or was removed)."""
        try:
            self.client.delete_item(
                TableName=self.table_name,
                Key={"pk": {"S": price_key(lookup_key)}, "sk": {"S": PRICE}},
                ConditionExpression="price_id = :price AND (attribute_not_exists(v) OR v < :v)",
                ExpressionAttributeValues={":price": {"S": price_id}, ":v": {"N": str(version)}},
            )
        except ClientError as error:
            if error.response.get("Error", {}).get("Code") != "ConditionalCheckFailedException":
                raise

    def _event_put(
        self, event_id: str, event_type: str, now: int, retention_seconds: int
    ) -> TransactWriteItemTypeDef:
        # An expired record no longer blocks (TTL deletion can lag by days);
        # the version rule still makes the replay harmless.
        return {
            "Put": {
                "TableName": self.table_name,
                "Item": {
                    "pk": {"S": event_key(event_id)},
                    "sk": {"S": EVENT},
                    "type": {"S": event_type},
                    "processed_at": {"N": str(now)},
                    "expires_at": {"N": str(now + retention_seconds)},
                },
                "ConditionExpression": "attribute_not_exists(pk) OR expires_at < :now",
                "ExpressionAttributeValues": {":now": {"N": str(now)}},
            }
        }

    def _catalog_check(self, check: CatalogCheck) -> TransactWriteItemTypeDef:
        key: dict[str, AttributeValueTypeDef] = {"pk": {"S": check.pk}, "sk": {"S": check.sk}}
        if check.version is None:
            return {
                "ConditionCheck": {
                    "TableName": self.table_name,
                    "Key": key,
                    "ConditionExpression": "attribute_not_exists(pk)",
                }
            }
        return {
            "ConditionCheck": {
                "TableName": self.table_name,
                "Key": key,
                "ConditionExpression": "v = :v AND e = :e",
                "ExpressionAttributeValues": {
                    ":v": {"N": str(check.version)},
                    ":e": {"S": check.event_id or ""},
                },
            }
        }

    def _subscriber_put(self, entry: SubscriberEntry) -> TransactWriteItemTypeDef:
        return {
            "Put": {
                "TableName": self.table_name,
                "Item": {
                    "pk": {"S": subscribers_key(entry.product_id)},
                    "sk": {"S": subscriber_sort_key(entry.subscription_id)},
                    "user_id": {"S": entry.user_id},
                    "items": to_attribute(
                        [{"position": pos, "price": price} for pos, price in entry.items]
                    ),
                },
            }
        }

    def _guard_check(self, guard: Guard) -> TransactWriteItemTypeDef:
        return {
            "ConditionCheck": {
                "TableName": self.table_name,
                "Key": {"pk": {"S": customer_key(guard.customer_id)}, "sk": {"S": LINK}},
                "ConditionExpression": "user_id = :u AND attribute_not_exists(retired_at)",
                "ExpressionAttributeValues": {":u": {"S": guard.user_id}},
            }
        }

    def _retire_writes(self, retire: RetireWrite, now: int) -> list[TransactWriteItemTypeDef]:
        args = (self.table_name, retire.user_id, retire.customer_id)
        if retire.linked:
            return retire_items(*args, reason=DELETED_IN_STRIPE, now=now)
        return [retired_customer_item(*args, reason=DELETED_IN_STRIPE, now=now, unlinked=True)]

    def _write_item(self, write: Write) -> TransactWriteItemTypeDef:
        op = "<=" if write.allow_equal else "<"
        version: AttributeValueTypeDef = {"N": str(write.version)}
        slot = write.slot
        if slot.attribute is None:
            item: dict[str, AttributeValueTypeDef] = {
                **slot.key,
                **{name: to_attribute(value) for name, value in write.fields.items()},
                "v": version,
                "e": {"S": write.event_id},
            }
            return {
                "Put": {
                    "TableName": self.table_name,
                    "Item": item,
                    "ConditionExpression": f"attribute_not_exists(v) OR v {op} :v",
                    "ExpressionAttributeValues": {":v": version},
                    "ReturnValuesOnConditionCheckFailure": "ALL_OLD",
                }
            }
        value = to_attribute({"v": write.version, "e": write.event_id, "r": dict(write.fields)})
        return {
            "Update": {
                "TableName": self.table_name,
                "Key": slot.key,
                "UpdateExpression": "SET #slot = :value",
                "ConditionExpression": f"attribute_not_exists(#slot) OR #slot.v {op} :v",
                "ExpressionAttributeNames": {"#slot": slot.attribute},
                "ExpressionAttributeValues": {":value": value, ":v": version},
                "ReturnValuesOnConditionCheckFailure": "ALL_OLD",
            }
        }

    def purge_customer(self, user_id: str, customer_id: str) -> None:
        """Remove a retired customer's records from the user's partition (idempotent).

        Its snapshot attributes go in one update and its invoice items in batches
        of 25. Run after the retirement committed: the link guard keeps any later
        write of that customer out, so nothing of it comes back.
        """
        snapshot = self.client.get_item(
            TableName=self.table_name,
            Key={"pk": {"S": user_key(user_id)}, "sk": {"S": SNAPSHOT}},
            ConsistentRead=True,
        ).get("Item")
        stale = [
            name
            for name, slot in from_item(snapshot or {}).items()
            if isinstance(slot, Mapping) and _of_customer(name, slot, customer_id)
        ]
        if stale:
            self.client.update_item(
                TableName=self.table_name,
                Key={"pk": {"S": user_key(user_id)}, "sk": {"S": SNAPSHOT}},
                UpdateExpression="REMOVE " + ", ".join(f"#a{i}" for i in range(len(stale))),
                ExpressionAttributeNames={f"#a{i}": name for i, name in enumerate(stale)},
            )
        pages = self.client.get_paginator("query").paginate(
            TableName=self.table_name,
            KeyConditionExpression="pk = :pk AND begins_with(sk, :invoice)",
            ExpressionAttributeValues={
                ":pk": {"S": user_key(user_id)},
                ":invoice": {"S": INVOICE_PREFIX},
            },
            ProjectionExpression="pk, sk, r.customer",
            ConsistentRead=True,
        )
        keys = [
            {"pk": item["pk"], "sk": item["sk"]}
            for page in pages
            for item in page.get("Items", [])
            if from_item(item).get("r", {}).get("customer") == customer_id
        ]
        for start in range(0, len(keys), 25):
            requests: Any = {
                self.table_name: [
                    {"DeleteRequest": {"Key": key}} for key in keys[start : start + 25]
                ]
            }
            for attempt in range(_BATCH_ATTEMPTS):
                response = self.client.batch_write_item(RequestItems=requests)
                requests = response.get("UnprocessedItems") or None
                if not requests:
                    break
                time.sleep(0.05 * 2**attempt)
            else:
                raise StorageBusy("The projection is busy; retry.")

    # --- read path --------------------------------------------------------------------------

    def user_items(self, user_id: str, *, invoices: int) -> UserItems:
        """SNAPSHOT, LINK and the newest ``invoices`` + 1 invoice items: one Query.

        The extra invoice tells whether there is a next page.
        """
        response = self.client.query(
            TableName=self.table_name,
            KeyConditionExpression="pk = :pk",
            ExpressionAttributeValues={":pk": {"S": user_key(user_id)}},
            ScanIndexForward=False,
            Limit=invoices + 3,
        )
        snapshot = link = None
        found: list[dict[str, Any]] = []
        for raw in response.get("Items", []):
            sk = raw["sk"]["S"]
            if sk == SNAPSHOT:
                snapshot = from_item(raw)
            elif sk == LINK:
                link = from_item(raw)
            elif sk.startswith(INVOICE_PREFIX):
                found.append(from_item(raw))
        last = response.get("LastEvaluatedKey")
        return UserItems(snapshot, link, found, last["sk"]["S"] if last else None)

    def invoice_page(self, user_id: str, *, before: str, limit: int) -> UserItems:
        """Up to ``limit`` + 1 invoice items older than sort key ``before``: one Query."""
        response = self.client.query(
            TableName=self.table_name,
            KeyConditionExpression="pk = :pk AND sk BETWEEN :lo AND :hi",
            ExpressionAttributeValues={
                ":pk": {"S": user_key(user_id)},
                ":lo": {"S": INVOICE_PREFIX},
                ":hi": {"S": before},
            },
            ScanIndexForward=False,
            Limit=limit + 2,  # BETWEEN includes ``before`` itself
        )
        items = [from_item(i) for i in response.get("Items", []) if i["sk"]["S"] != before]
        last = response.get("LastEvaluatedKey")
        return UserItems(None, None, items, last["sk"]["S"] if last else None)

    def snapshot_records(self, user_id: str) -> dict[str, Any] | None:
        """The SNAPSHOT item alone (the session function reads subscriptions from it)."""
        response = self.client.get_item(
            TableName=self.table_name,
            Key={"pk": {"S": user_key(user_id)}, "sk": {"S": SNAPSHOT}},
        )
        item = response.get("Item")
        return from_item(item) if item else None


@cache
def projection_store_for_table(table_name: str) -> ProjectionStore:
    """One store (and one DynamoDB client) per table and warm container."""
    return ProjectionStore(table_name)


def _cancelled(
    reasons: list[Any], writes: Sequence[Write], *, link_count: int, link_failed: CommitStatus
) -> CommitResult:
    codes = [r.get("Code") for r in reasons]
    if codes and codes[0] == "ConditionalCheckFailed":
        return CommitResult(CommitStatus.DUPLICATE)
    if "ConditionalCheckFailed" in codes[1 : 1 + link_count]:
        return CommitResult(link_failed)
    outdated: dict[Slot, tuple[int, str]] = {}
    for write, reason in zip(writes, reasons[1 + link_count :], strict=False):
        if reason.get("Code") == "ConditionalCheckFailed":
            outdated[write.slot] = _stored_version(write.slot, reason.get("Item") or {})
    if outdated:
        return CommitResult(CommitStatus.OUTDATED, outdated)
    return CommitResult(CommitStatus.CONFLICT)


def _of_customer(name: str, slot: Mapping[str, Any], customer_id: str) -> bool:
    kind, _, object_id = name.partition("#")
    if kind == Kind.CUSTOMER:
        return object_id == customer_id
    record = slot.get("r")
    return isinstance(record, Mapping) and record.get("customer") == customer_id


def _stored_version(slot: Slot, item: Mapping[str, Any]) -> tuple[int, str]:
    stored = from_item(item)
    if slot.attribute is not None:
        stored = stored.get(slot.attribute) or {}
    return int(stored.get("v", 0)), str(stored.get("e", ""))
