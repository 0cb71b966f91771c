"""The one DynamoDB store: every read and write of the billing table, in domain terms.

The key schema is ``billing.store.keys``; the link's conditional writes are
``billing.store.links``; the values the projection asks to write are
``billing.store.writes``. Each projected write is conditional on the stored
version (``billing.projection.fold`` states the rule), and an event's effects
commit in one transaction with its dedupe record.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from functools import cache
from typing import TYPE_CHECKING, Any, cast

from botocore.config import Config
from botocore.exceptions import ClientError

from billing.aws.session import aws_session
from billing.core.domain import CatalogPrice
from billing.core.errors import Conflict, CustomerRetired, StorageBusy
from billing.projection.records import FeatureRecord, Kind, ProductFeaturesRecord, ProductRecord
from billing.store.attributes import from_item, to_attribute
from billing.store.keys import (
    CATALOG,
    CHECKOUT,
    DELETED_IN_STRIPE,
    EVENT,
    FEATURE_PREFIX,
    INVOICE_PREFIX,
    LINK,
    PRICE_PREFIX,
    PRICE_RECORD,
    PRICE_RECORD_PREFIX,
    PRODUCT_FEATURES_PREFIX,
    PRODUCT_PREFIX,
    REFRESH,
    SNAPSHOT,
    checkout_key,
    customer_key,
    event_key,
    feature_sort_key,
    price_record_key,
    price_sort_key,
    product_sort_key,
    refresh_key,
    slot_attribute,
    subscriber_sort_key,
    subscribers_key,
    user_key,
)
from billing.store.links import LinkState, link_items, retire_items, retired_customer_item
from billing.store.writes import (
    CatalogCheck,
    CommitResult,
    CommitStatus,
    Context,
    Guard,
    LinkWrite,
    RetireWrite,
    Slot,
    StoredCatalog,
    StoredPrice,
    SubscriberEntry,
    UserItems,
    Write,
)

if TYPE_CHECKING:
    from mypy_boto3_dynamodb.client import DynamoDBClient
    from mypy_boto3_dynamodb.type_defs import AttributeValueTypeDef, TransactWriteItemTypeDef

# Every call, retries included, must end well within the functions' 10 s Timeout,
# so a throttled or failing DynamoDB gets its 503 + Retry-After (or, for a webhook,
# Stripe's retry) instead of a timeout. botocore's default for DynamoDB (legacy
# mode: 10 attempts, 0.05 * 2**n s apart, 60 s read timeout) keeps retrying a
# throttled call for about 25 s. Here: 3 attempts, at most 1 + 2 s of backoff.
DYNAMODB_CLIENT_CONFIG = Config(
    retries={"mode": "standard", "total_max_attempts": 3},
    connect_timeout=1,
    read_timeout=2,
)
_LINK_ATTEMPTS = 3
_BATCH_ATTEMPTS = 5


@dataclass(frozen=True, slots=True, kw_only=True)
class OpenCheckout:
    """A user's open Checkout session, as ``CHECKOUT#<user>`` remembers it."""

    session_id: str
    fingerprint: str
    url: str | None
    client_secret: str | None
    expires_at: int


class BillingStore:
    """Reads and writes the billing table for one deployment."""

    def __init__(self, table_name: str, client: DynamoDBClient | None = None) -> None:
        self.table_name = table_name
        self._client = client

    @property
    def client(self) -> DynamoDBClient:
        if self._client is None:
            client = aws_session().create_client("dynamodb", config=DYNAMODB_CLIENT_CONFIG)
            self._client = cast("DynamoDBClient", client)
        return self._client

    # --- user <-> customer link ------------------------------------------------------------

    def link_state(self, user_id: str) -> LinkState:
        """The user's customer (None when there is none) and its link generation."""
        response = self.client.get_item(
            TableName=self.table_name,
            Key={"pk": {"S": user_key(user_id)}, "sk": {"S": LINK}},
            ConsistentRead=True,
        )
        item = response.get("Item") or {}
        return LinkState(
            customer_id=item["customer_id"]["S"] if "customer_id" in item else None,
            generation=int(item["generation"]["N"]) if "generation" in item else 0,
        )

    def customer_for_user(self, user_id: str) -> str | None:
        """The Stripe customer linked to ``user_id``, or None."""
        return self.link_state(user_id).customer_id

    def link_customer(self, user_id: str, customer_id: str) -> str:
        """Link ``user_id`` to ``customer_id`` unless the user is linked already.

        Both directions are written in one transaction, each conditional, so
        concurrent first requests end with one link. Returns the customer the user
        is linked to afterwards (the earlier one if a concurrent request won).
        Raises ``CustomerRetired`` if ``customer_id`` was deleted in Stripe.
        """
        for attempt in range(_LINK_ATTEMPTS):
            try:
                self.client.transact_write_items(
                    TransactItems=link_items(self.table_name, user_id, customer_id)
                )
            except ClientError as error:
                if _error_code(error) != "TransactionCanceledException":
                    raise
                linked = self.customer_for_user(user_id)
                if linked is not None:
                    return linked
                reasons = error.response.get("CancellationReasons", [])
                customer_side = reasons[1] if len(reasons) > 1 else {}
                if customer_side.get("Code") == "ConditionalCheckFailed":
                    if "retired_at" in (customer_side.get("Item") or {}):
                        raise CustomerRetired("The customer was deleted in Stripe.") from None
                    raise Conflict("This billing account belongs to another user.") from None
                # TransactionConflict with a concurrent link that did not commit: try again.
                time.sleep(0.05 * (attempt + 1))
                continue
            return customer_id
        raise Conflict("The billing account is being set up by another request; retry.")

    def retire_link(self, user_id: str, customer_id: str, *, reason: str) -> None:
        """Unlink ``user_id`` from ``customer_id`` for good (the customer is gone from
        Stripe); idempotent. The next request that needs a customer creates a new one.

        Two conditional updates, each a no-op once done, so a retirement interrupted
        between them (or half done by the webhook) is finished by the next call: first
        the customer's link is marked retired, which keeps any later write of that
        customer out of the user's partition, then the user loses it.
        """
        customer_side, user_side = retire_items(
            self.table_name, user_id, customer_id, reason=reason, now=int(time.time())
        )
        for step in (customer_side, user_side):
            _conditional(self.client.update_item, **cast("Any", step["Update"]))

    def skip_generation(self, user_id: str, generation: int) -> None:
        """Move an unlinked user's generation past ``generation`` (no-op if it moved)."""
        expected = "attribute_not_exists(generation)" if generation == 0 else "generation = :g"
        values: dict[str, AttributeValueTypeDef] = {":next": {"N": str(generation + 1)}}
        if generation:
            values[":g"] = {"N": str(generation)}
        _conditional(
            self.client.update_item,
            TableName=self.table_name,
            Key={"pk": {"S": user_key(user_id)}, "sk": {"S": LINK}},
            UpdateExpression="SET generation = :next",
            ConditionExpression=f"attribute_not_exists(customer_id) AND {expected}",
            ExpressionAttributeValues=values,
        )

    # --- catalog ----------------------------------------------------------------------------

    def catalog_price(self, lookup_key: str, *, now: int | None = None) -> CatalogPrice | None:
        """The cached price for ``lookup_key``, or None when absent or expired."""
        response = self.client.get_item(
            TableName=self.table_name,
            Key={"pk": {"S": CATALOG}, "sk": {"S": price_sort_key(lookup_key)}},
        )
        item = response.get("Item")
        if not item:
            return None
        expires_at = item.get("expires_at")
        if expires_at and int(expires_at["N"]) <= (now if now is not None else time.time()):
            return None
        return _price_from_item(item)

    def save_catalog_price(self, price: CatalogPrice, *, expires_at: int | None) -> None:
        """Cache ``price`` under its lookup key (until ``expires_at`` when given)."""
        item = _price_to_item(price)
        if expires_at is not None:
            item["expires_at"] = {"N": str(expires_at)}
        self.client.put_item(TableName=self.table_name, Item=item)

    def context(
        self,
        customer_id: str | None,
        product_ids: Sequence[str],
        price_ids: Sequence[str] = (),
        feature_ids: Sequence[str] = (),
    ) -> Context:
        """The customer's linked user, and the stored product names and price fields a
        subscription copies (or the feature names an entitlements summary copies), in one
        request."""
        keys = [{"pk": {"S": CATALOG}, "sk": {"S": product_sort_key(p)}} for p in product_ids]
        keys += [{"pk": {"S": CATALOG}, "sk": {"S": feature_sort_key(f)}} for f in feature_ids]
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
            elif item["sk"]["S"].startswith(FEATURE_PREFIX):
                feature_id = item["sk"]["S"].removeprefix(FEATURE_PREFIX)
                context.feature_names[feature_id] = item["name"]["S"]
            elif not item.get("deleted", {}).get("BOOL"):
                product_id = item["sk"]["S"].removeprefix(PRODUCT_PREFIX)
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
            if _error_code(error) != "TransactionCanceledException":
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
        return _conditional(self.client.put_item, **put)

    def end_checkout(
        self,
        event_id: str,
        event_type: str,
        user_id: str,
        session_id: str,
        *,
        retention_seconds: int,
        now: int | None = None,
    ) -> bool:
        """Record the event of a Checkout session that ended and forget the user's remembered
        session if it is this one; False if the event was seen before.

        One transaction when the remembered session is this one (the usual case: sessions
        this product opened); otherwise the event is recorded alone, a second request.
        """
        now = int(time.time()) if now is None else now
        record = self._event_put(event_id, event_type, now, retention_seconds)
        forget: TransactWriteItemTypeDef = {
            "Delete": {
                "TableName": self.table_name,
                "Key": {"pk": {"S": checkout_key(user_id)}, "sk": {"S": CHECKOUT}},
                "ConditionExpression": "session_id = :session",
                "ExpressionAttributeValues": {":session": {"S": session_id}},
            }
        }
        try:
            self.client.transact_write_items(TransactItems=[record, forget])
        except ClientError as error:
            if _error_code(error) != "TransactionCanceledException":
                raise
            codes = [r.get("Code") for r in error.response.get("CancellationReasons", [])]
            if codes and codes[0] == "ConditionalCheckFailed":
                return False
            if len(codes) < 2 or codes[1] != "ConditionalCheckFailed":
                raise  # a concurrent transaction: the sender retries
            return self.record_event(
                event_id, event_type, retention_seconds=retention_seconds, now=now
            )
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
        _conditional(
            self.client.delete_item,
            TableName=self.table_name,
            Key={"pk": {"S": CATALOG}, "sk": {"S": price_sort_key(lookup_key)}},
            ConditionExpression="price_id = :price AND (attribute_not_exists(v) OR v < :v)",
            ExpressionAttributeValues={":price": {"S": price_id}, ":v": {"N": str(version)}},
        )

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

    # --- checkout ---------------------------------------------------------------------------

    def open_checkout(self, user_id: str, *, now: int) -> OpenCheckout | None:
        """The user's remembered Checkout session, unless it has expired."""
        item = self._item(checkout_key(user_id), CHECKOUT, consistent=True)
        if item is None or int(item["expires_at"]) <= now:
            return None
        return OpenCheckout(
            session_id=str(item["session_id"]),
            fingerprint=str(item["fingerprint"]),
            url=item.get("url"),
            client_secret=item.get("client_secret"),
            expires_at=int(item["expires_at"]),
        )

    def remember_checkout(
        self, user_id: str, opened: OpenCheckout, *, replacing: str | None
    ) -> bool:
        """Remember ``opened`` as the user's open session if the remembered one is still
        ``replacing`` (None: none, or an expired one); False if another request won."""
        item: dict[str, Any] = {
            "pk": {"S": checkout_key(user_id)},
            "sk": {"S": CHECKOUT},
            "session_id": {"S": opened.session_id},
            "fingerprint": {"S": opened.fingerprint},
            "expires_at": {"N": str(opened.expires_at)},
        }
        if opened.url is not None:
            item["url"] = {"S": opened.url}
        if opened.client_secret is not None:
            item["client_secret"] = {"S": opened.client_secret}
        if replacing is None:
            # Nothing open, an expired session, or this very session (an identical
            # request that got Stripe's idempotent replay).
            condition = "attribute_not_exists(pk) OR expires_at <= :now OR session_id = :new"
            values = {":now": {"N": str(int(time.time()))}, ":new": {"S": opened.session_id}}
        else:
            condition = "session_id = :old OR session_id = :new"
            values = {":old": {"S": replacing}, ":new": {"S": opened.session_id}}
        return _conditional(
            self.client.put_item,
            TableName=self.table_name,
            Item=item,
            ConditionExpression=condition,
            ExpressionAttributeValues=values,
        )

    def claim_refresh(self, user_id: str, *, now: int, interval: int) -> int:
        """Claim the user's refresh slot: 0 if claimed, else the seconds until it is free."""
        try:
            self.client.put_item(
                TableName=self.table_name,
                Item={
                    "pk": {"S": refresh_key(user_id)},
                    "sk": {"S": REFRESH},
                    "at": {"N": str(now)},
                    "expires_at": {"N": str(now + interval)},
                },
                ConditionExpression="attribute_not_exists(pk) OR #at <= :free",
                ExpressionAttributeNames={"#at": "at"},
                ExpressionAttributeValues={":free": {"N": str(now - interval)}},
                ReturnValuesOnConditionCheckFailure="ALL_OLD",
            )
        except ClientError as error:
            if _error_code(error) != "ConditionalCheckFailedException":
                raise
            old: dict[str, Any] = dict(error.response.get("Item") or {})  # type: ignore[call-overload]
            last = int(old.get("at", {}).get("N", now))
            return max(1, last + interval - now)
        return 0

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

    def catalog(self) -> StoredCatalog:
        """Every stored price (by lookup key), product and feature, and each product's
        features: one eventually consistent Query.

        The catalog partition holds one small item per product and per price with a lookup
        key, so it fits one Query page (1 MB) in any account we know of; a larger one is
        read page by page rather than shown incomplete.
        """
        catalog = StoredCatalog({}, {})
        params: dict[str, Any] = {
            "TableName": self.table_name,
            "KeyConditionExpression": "pk = :pk",
            "ExpressionAttributeValues": {":pk": {"S": CATALOG}},
        }
        while True:
            response = self.client.query(**params)
            for item in response.get("Items", []):
                sort_key = item["sk"]["S"]
                if sort_key.startswith(PRICE_PREFIX):
                    catalog.prices[sort_key.removeprefix(PRICE_PREFIX)] = _price_from_item(item)
                elif sort_key.startswith(PRODUCT_PREFIX):
                    product = ProductRecord.from_stored(from_item(item))
                    catalog.products[sort_key.removeprefix(PRODUCT_PREFIX)] = product
                elif sort_key.startswith(FEATURE_PREFIX):
                    feature = FeatureRecord.from_stored(from_item(item))
                    catalog.features[sort_key.removeprefix(FEATURE_PREFIX)] = feature
                elif sort_key.startswith(PRODUCT_FEATURES_PREFIX):
                    attached = ProductFeaturesRecord.from_stored(from_item(item))
                    product_id = sort_key.removeprefix(PRODUCT_FEATURES_PREFIX)
                    catalog.product_features[product_id] = attached.features
            last = response.get("LastEvaluatedKey")
            if not last:
                return catalog
            params["ExclusiveStartKey"] = last

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
        return self._item(user_key(user_id), SNAPSHOT, consistent=False)

    # --- catalog fan-out --------------------------------------------------------------------

    def product_record(self, product_id: str) -> dict[str, Any] | None:
        """The stored product (``name``, ``v``, ``e``), read consistently, or None."""
        return self._item(CATALOG, product_sort_key(product_id), consistent=True)

    def price_record(self, price_id: str) -> dict[str, Any] | None:
        """What subscriptions copy of a price (``lookup_key``, ``nickname``, ``v``, ``e``)."""
        return self._item(price_record_key(price_id), PRICE_RECORD, consistent=True)

    def _item(self, pk: str, sk: str, *, consistent: bool) -> dict[str, Any] | None:
        item = self.client.get_item(
            TableName=self.table_name,
            Key={"pk": {"S": pk}, "sk": {"S": sk}},
            ConsistentRead=consistent,
        ).get("Item")
        return from_item(item) if item else None

    def subscriber_page(
        self, product_id: str, *, after: str | None, limit: int
    ) -> tuple[list[dict[str, Any]], str | None]:
        """A page of the product's subscriber index after subscription ``after``, and the
        subscription to continue after (None on the last page)."""
        params: dict[str, Any] = {
            "TableName": self.table_name,
            "KeyConditionExpression": "pk = :pk",
            "ExpressionAttributeValues": {":pk": {"S": subscribers_key(product_id)}},
            "Limit": limit,
            # A subscription committed just before the change must be found.
            "ConsistentRead": True,
        }
        if after is not None:
            params["ExclusiveStartKey"] = {
                "pk": {"S": subscribers_key(product_id)},
                "sk": {"S": subscriber_sort_key(after)},
            }
        response = self.client.query(**params)
        entries = [from_item(item) for item in response.get("Items", [])]
        last = response.get("LastEvaluatedKey")
        return entries, last["sk"]["S"].removeprefix("SUBSCRIPTION#") if last else None

    def copy_catalog_fields(
        self,
        user_id: str,
        subscription_id: str,
        positions: Sequence[int],
        *,
        billed: str,
        same: str,
        version_field: str,
        fields: Mapping[str, Any],
        version: int,
    ) -> bool:
        """Copy ``fields`` into the subscription's items at ``positions`` in the user's
        snapshot; False when the condition says it no longer applies (another product or
        price by now, a newer copy, or the slot is gone)."""
        names = {"#slot": slot_attribute(Kind.SUBSCRIPTION, subscription_id), "#items": "items"}
        values: dict[str, AttributeValueTypeDef] = {
            ":billed": {"S": same},
            ":v": {"N": str(version)},
        }
        sets, conditions = [], []
        for position in positions:
            item = f"#slot.r.#items[{position}]"
            # Equal versions: the copy is of the same second as the change, so of the
            # same state or an older one (a subscription event that second carried the
            # price as it was then): the change wins.
            conditions.append(
                f"{item}.{billed} = :billed AND (attribute_not_exists({item}.{version_field})"
                f" OR {item}.{version_field} <= :v)"
            )
            sets.append(f"{item}.{version_field} = :v")
            for name, value in fields.items():
                values[f":{name}"] = to_attribute(value)
                sets.append(f"{item}.{name} = :{name}")
        return _conditional(
            self.client.update_item,
            TableName=self.table_name,
            Key={"pk": {"S": user_key(user_id)}, "sk": {"S": SNAPSHOT}},
            UpdateExpression="SET " + ", ".join(sets),
            ConditionExpression=" AND ".join(f"({c})" for c in conditions),
            ExpressionAttributeNames=names,
            ExpressionAttributeValues=values,
        )


@cache
def store_for_table(table_name: str) -> BillingStore:
    """One store (and one DynamoDB client) per table and warm container."""
    return BillingStore(table_name)


def price_to_fields(price: CatalogPrice) -> dict[str, Any]:
    """A catalog price as plain item attributes (no keys), absent values left out."""
    fields: dict[str, Any] = {
        "price_id": price.price_id,
        "lookup_key": price.lookup_key,
        "product_id": price.product_id,
        "active": price.active,
        "currency": price.currency,
    }
    for name in ("unit_amount", "interval_count", "interval"):
        value = getattr(price, name)
        if value is not None:
            fields[name] = value
    return fields


def _price_to_item(price: CatalogPrice) -> dict[str, AttributeValueTypeDef]:
    item: dict[str, AttributeValueTypeDef] = {
        "pk": {"S": CATALOG},
        "sk": {"S": price_sort_key(price.lookup_key)},
    }
    for name, value in price_to_fields(price).items():
        item[name] = to_attribute(value)
    return item


def _price_from_item(item: dict[str, Any]) -> CatalogPrice:
    def number(name: str) -> int | None:
        return int(item[name]["N"]) if name in item else None

    return CatalogPrice(
        price_id=item["price_id"]["S"],
        lookup_key=item["lookup_key"]["S"],
        product_id=item["product_id"]["S"],
        active=item["active"]["BOOL"],
        currency=item["currency"]["S"],
        unit_amount=number("unit_amount"),
        interval=item["interval"]["S"] if "interval" in item else None,
        interval_count=number("interval_count"),
    )


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


def _conditional(write: Callable[..., object], **request: Any) -> bool:
    """One conditional write: True if it applied, False if its condition refused it (an
    answer, not a fault: a newer state, a slot already taken, a step already done)."""
    try:
        write(**request)
    except ClientError as error:
        if _error_code(error) != "ConditionalCheckFailedException":
            raise
        return False
    return True


def _error_code(error: ClientError) -> str | None:
    """DynamoDB's error code: a refused condition or a cancelled transaction is an answer,
    anything else a fault."""
    code = error.response.get("Error", {}).get("Code")
    return str(code) if code is not None else None
