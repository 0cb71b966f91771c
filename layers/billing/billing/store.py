"""DynamoDB access, in domain terms. One table, single-table design.

Key schema (``pk`` / ``sk``, both strings; ``expires_at`` is the TTL attribute,
epoch seconds, and is also checked in code because TTL deletion lags):

============================  ===========================  =====================================
pk                            sk                           item
============================  ===========================  =====================================
``USER#<user_id>``            ``LINK``                     ``customer_id``, ``linked_at``: the
                                                           user's Stripe customer, absent while
                                                           the user has none; ``generation``:
                                                           how many of the user's customers were
                                                           retired (part of the creation key).
``CUSTOMER#<customer_id>``    ``LINK``                     ``user_id``: the reverse link, written
                                                           in the same transaction; webhooks use
                                                           it to find the user of an event. Kept
                                                           with ``retired_at``/``retired_reason``
                                                           when the customer is deleted in Stripe
                                                           (the history; it is never linked
                                                           again).
``PRICE#<lookup_key>``        ``PRICE``                    a catalog price (id, product, amount,
                                                           currency, interval, active); cached on
                                                           a miss with ``expires_at``, kept current
                                                           by ``price.*`` webhooks (next issue).
============================  ===========================  =====================================

What the webhook projection adds (issue 3), so that ``GET /billing`` is one
``GetItem``:

- ``USER#<user_id>`` / ``SNAPSHOT``: the user's billing document (customer,
  payment methods, subscriptions with items, the newest page of invoices), with
  a per-object version (the Stripe event ``created`` it was built from) so stale
  events lose a conditional write.
- ``USER#<user_id>`` / ``INVOICE#<created>#<invoice_id>``: every invoice, for
  paging past the first page.
- ``EVENT#<event_id>`` / ``EVENT``: the dedupe record of a processed webhook
  event, written in the same transaction as its effect, ``expires_at`` ≥ 4 days.
- ``PRODUCT#<product_id>`` / ``PRODUCT``: product names for the catalog.

User ids are the JWT ``sub``; they are used as-is inside keys (DynamoDB keys
take any UTF-8 string up to 2048 bytes, and ``sub`` is at most 255 characters).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from functools import cache
from typing import TYPE_CHECKING, Any, cast

import botocore.session
from botocore.config import Config
from botocore.exceptions import ClientError

from billing.attributes import to_attribute
from billing.domain import CatalogPrice
from billing.errors import Conflict, CustomerRetired

if TYPE_CHECKING:
    from mypy_boto3_dynamodb.client import DynamoDBClient
    from mypy_boto3_dynamodb.type_defs import AttributeValueTypeDef, TransactWriteItemTypeDef

LINK = "LINK"
PRICE = "PRICE"
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
# Why a customer link was retired (``retired_reason``).
DELETED_IN_STRIPE = "deleted_in_stripe"  # its customer.deleted event arrived
MISSING_IN_STRIPE = "missing_in_stripe"  # Stripe answered "No such customer"


@cache
def aws_session() -> botocore.session.Session:
    """The process's botocore session: credentials and region from the environment, and
    the event hooks every client made from it inherits (tests and ``make bench`` count
    requests through them)."""
    return botocore.session.get_session()


def user_key(user_id: str) -> str:
    return f"USER#{user_id}"


def customer_key(customer_id: str) -> str:
    return f"CUSTOMER#{customer_id}"


def price_key(lookup_key: str) -> str:
    return f"PRICE#{lookup_key}"


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
                if error.response.get("Error", {}).get("Code") != "TransactionCanceledException":
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
            update = cast("Any", step["Update"])
            try:
                self.client.update_item(**update)
            except ClientError as error:
                if error.response.get("Error", {}).get("Code") != "ConditionalCheckFailedException":
                    raise

    def skip_generation(self, user_id: str, generation: int) -> None:
        """Move an unlinked user's generation past ``generation`` (no-op if it moved)."""
        expected = "attribute_not_exists(generation)" if generation == 0 else "generation = :g"
        values: dict[str, AttributeValueTypeDef] = {":next": {"N": str(generation + 1)}}
        if generation:
            values[":g"] = {"N": str(generation)}
        try:
            self.client.update_item(
                TableName=self.table_name,
                Key={"pk": {"S": user_key(user_id)}, "sk": {"S": LINK}},
                UpdateExpression="SET generation = :next",
                ConditionExpression=f"attribute_not_exists(customer_id) AND {expected}",
                ExpressionAttributeValues=values,
            )
        except ClientError as error:
            if error.response.get("Error", {}).get("Code") != "ConditionalCheckFailedException":
                raise

    # --- catalog ----------------------------------------------------------------------------

    def catalog_price(self, lookup_key: str, *, now: int | None = None) -> CatalogPrice | None:
        """The cached price for ``lookup_key``, or None when absent or expired."""
        response = self.client.get_item(
            TableName=self.table_name,
            Key={"pk": {"S": price_key(lookup_key)}, "sk": {"S": PRICE}},
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


# A customer link may be (re)written only while it is absent, or this user's and not retired.
_CUSTOMER_LINK_OPEN = (
    "attribute_not_exists(pk) OR (user_id = :u AND attribute_not_exists(retired_at))"
)


@dataclass(frozen=True, slots=True)
class LinkState:
    """A user's link: the current customer (None if none) and how many were retired."""

    customer_id: str | None
    generation: int


def link_items(
    table_name: str, user_id: str, customer_id: str, *, now: int | None = None
) -> list[TransactWriteItemTypeDef]:
    """The two conditional writes that link a user and a customer (in this order).

    The user side is an update, so the link generation survives a relink; it
    applies unless the user is linked to another customer. The customer side
    applies unless the customer belongs to another user or was retired.
    """
    stamp: AttributeValueTypeDef = {"N": str(int(time.time()) if now is None else now)}
    return [
        {
            "Update": {
                "TableName": table_name,
                "Key": {"pk": {"S": user_key(user_id)}, "sk": {"S": LINK}},
                "UpdateExpression": "SET customer_id = :c, linked_at = :now",
                "ConditionExpression": "attribute_not_exists(customer_id) OR customer_id = :c",
                "ExpressionAttributeValues": {":c": {"S": customer_id}, ":now": stamp},
            }
        },
        {
            "Put": {
                "TableName": table_name,
                "Item": {
                    "pk": {"S": customer_key(customer_id)},
                    "sk": {"S": LINK},
                    "user_id": {"S": user_id},
                    "linked_at": stamp,
                },
                "ConditionExpression": _CUSTOMER_LINK_OPEN,
                "ExpressionAttributeValues": {":u": {"S": user_id}},
                "ReturnValuesOnConditionCheckFailure": "ALL_OLD",
            }
        },
    ]


def retire_items(
    table_name: str, user_id: str, customer_id: str, *, reason: str, now: int
) -> list[TransactWriteItemTypeDef]:
    """The two writes that retire a linked customer (in this order): the customer's link
    is kept, marked retired; the user loses it and its generation moves on."""
    stamp: AttributeValueTypeDef = {"N": str(now)}
    return [
        retired_customer_item(table_name, user_id, customer_id, reason=reason, now=now),
        {
            "Update": {
                "TableName": table_name,
                "Key": {"pk": {"S": user_key(user_id)}, "sk": {"S": LINK}},
                "UpdateExpression": (
                    "REMOVE customer_id SET generation = if_not_exists(generation, :zero) + :one, "
                    "retired_at = :now"
                ),
                "ConditionExpression": "customer_id = :c",
                "ExpressionAttributeValues": {
                    ":c": {"S": customer_id},
                    ":zero": {"N": "0"},
                    ":one": {"N": "1"},
                    ":now": stamp,
                },
            }
        },
    ]


def retired_customer_item(
    table_name: str,
    user_id: str,
    customer_id: str,
    *,
    reason: str,
    now: int,
    unlinked: bool = False,
) -> TransactWriteItemTypeDef:
    """The customer's link, marked retired. ``unlinked``: the customer was linked to no
    user when read, and must still be unlinked at commit (a link written meanwhile makes
    the retirement read again and retire both sides); kept so a late event of it cannot
    link it."""
    return {
        "Update": {
            "TableName": table_name,
            "Key": {"pk": {"S": customer_key(customer_id)}, "sk": {"S": LINK}},
            "UpdateExpression": (
                "SET user_id = :u, retired_at = :now, retired_reason = :reason, "
                "linked_at = if_not_exists(linked_at, :now)"
            ),
            "ConditionExpression": "attribute_not_exists(pk)" if unlinked else _CUSTOMER_LINK_OPEN,
            "ExpressionAttributeValues": {
                ":u": {"S": user_id},
                ":now": {"N": str(now)},
                ":reason": {"S": reason},
            },
        }
    }


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
        "pk": {"S": price_key(price.lookup_key)},
        "sk": {"S": PRICE},
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
