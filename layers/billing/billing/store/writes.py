"""What the store is asked to write, and what it answers: plain values, no I/O.

The projection (``billing.projection``) decides these; ``billing.store.table``
turns them into one DynamoDB transaction.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from mypy_boto3_dynamodb.type_defs import AttributeValueTypeDef

    from billing.core.domain import CatalogPrice
    from billing.projection.records import FeatureRecord, ProductRecord


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
    feature_names: dict[str, str] = field(default_factory=dict)  # by feature id


@dataclass(frozen=True)
class StoredCatalog:
    """The catalog partition as read: prices by lookup key, products by id, entitlement
    features by id and the features attached to each product (by product id)."""

    prices: dict[str, CatalogPrice]
    products: dict[str, ProductRecord]
    features: dict[str, FeatureRecord] = field(default_factory=dict)
    product_features: dict[str, tuple[str, ...]] = field(default_factory=dict)


@dataclass(frozen=True)
class UserItems:
    """The raw items of one snapshot read."""

    snapshot: dict[str, Any] | None
    link: dict[str, Any] | None
    invoices: list[dict[str, Any]]
    last_key: str | None  # sort key to continue after, when the read was cut short
