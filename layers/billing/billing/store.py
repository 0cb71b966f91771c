"""DynamoDB access, in domain terms. One table, single-table design.

Key schema (``pk`` / ``sk``, both strings; ``expires_at`` is the TTL attribute,
epoch seconds, and is also checked in code because TTL deletion lags):

============================  ===========================  =====================================
pk                            sk                           item
============================  ===========================  =====================================
``USER#<user_id>``            ``LINK``                     ``customer_id``, ``linked_at``: the
                                                           user's Stripe customer. Written once,
                                                           conditionally, by the session function.
``CUSTOMER#<customer_id>``    ``LINK``                     ``user_id``: the reverse link, written
                                                           in the same transaction; webhooks use
                                                           it to find the user of an event.
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
from functools import cache
from typing import TYPE_CHECKING, Any, cast

import botocore.session
from botocore.config import Config
from botocore.exceptions import ClientError

from billing.attributes import to_attribute
from billing.domain import CatalogPrice
from billing.errors import Conflict

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

    def customer_for_user(self, user_id: str) -> str | None:
        """The Stripe customer linked to ``user_id``, or None."""
        response = self.client.get_item(
            TableName=self.table_name,
            Key={"pk": {"S": user_key(user_id)}, "sk": {"S": LINK}},
            ConsistentRead=True,
        )
        item = response.get("Item")
        return item["customer_id"]["S"] if item else None

    def link_customer(self, user_id: str, customer_id: str) -> str:
        """Link ``user_id`` to ``customer_id`` unless the user is linked already.

        Both directions are written in one transaction, each conditional on not
        existing yet, so concurrent first requests end with one link. Returns
        the customer the user is linked to afterwards (the earlier one if a
        concurrent request won).
        """
        for attempt in range(_LINK_ATTEMPTS):
            try:
                self.client.transact_write_items(
                    TransactItems=_link_items(self.table_name, user_id, customer_id)
                )
            except ClientError as error:
                if error.response.get("Error", {}).get("Code") != "TransactionCanceledException":
                    raise
                linked = self.customer_for_user(user_id)
                if linked is not None:
                    return linked
                reasons = [r.get("Code") for r in error.response.get("CancellationReasons", [])]
                if "ConditionalCheckFailed" in reasons:
                    raise Conflict("This billing account belongs to another user.") from None
                # TransactionConflict with a concurrent link that did not commit: try again.
                time.sleep(0.05 * (attempt + 1))
            return customer_id
        raise Conflict("The billing account is being set up by another request; retry.")

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


def _link_items(table_name: str, user_id: str, customer_id: str) -> list[TransactWriteItemTypeDef]:
    now = str(int(time.time()))
    return [
        {
            "Put": {
                "TableName": table_name,
                "Item": {
                    "pk": {"S": user_key(user_id)},
                    "sk": {"S": LINK},
                    "customer_id": {"S": customer_id},
                    "linked_at": {"N": now},
                },
                "ConditionExpression": "attribute_not_exists(pk)",
            }
        },
        {
            "Put": {
                "TableName": table_name,
                "Item": {
                    "pk": {"S": customer_key(customer_id)},
                    "sk": {"S": LINK},
                    "user_id": {"S": user_id},
                    "linked_at": {"N": now},
                },
                "ConditionExpression": "attribute_not_exists(pk) OR user_id = :user",
                "ExpressionAttributeValues": {":user": {"S": user_id}},
            }
        },
    ]


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
