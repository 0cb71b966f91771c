"""The user <-> customer link: the conditional writes that make it, and retire it.

Every path that links a customer (the first portal session, a webhook whose
customer names its user, the backfill) writes these same two items with the
same conditions, so the link means one thing whoever wrote it.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

from billing.store.keys import LINK, customer_key, user_key

if TYPE_CHECKING:
    from mypy_boto3_dynamodb.type_defs import AttributeValueTypeDef, TransactWriteItemTypeDef


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
