"""The records the projection stores: what the billing page and the portal flows read.

A Stripe object is reduced to one of these (``billing.projection.fold`` builds them from
events); ``billing.store.table`` writes them with their version. They are plain
frozen dataclasses, not pydantic models, so the snapshot function, which only reads
them, loads no pydantic (its cold start, ``make bench``).

Reading tolerates what the table may hold: a field this code does not know (written by
a newer release) is ignored, a missing one takes its default (a missing required one
raises), and numbers, which DynamoDB returns as ``Decimal``, become ``int`` (every number
stored here is an integer: amounts in minor units, epoch seconds; any other raises).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields
from decimal import Decimal
from enum import StrEnum
from typing import Any, Self

from billing.core.domain import CatalogPrice


class Kind(StrEnum):
    """The kinds of Stripe object the projection keeps."""

    CUSTOMER = "customer"
    SUBSCRIPTION = "subscription"
    PAYMENT_METHOD = "payment_method"
    INVOICE = "invoice"
    PRICE = "price"
    PRODUCT = "product"
    ENTITLEMENTS = "entitlements"  # a customer's active entitlements (one record each)
    FEATURE = "feature"  # an entitlement feature of the catalog: its name
    PRODUCT_FEATURES = "product_features"  # the features attached to a product


@dataclass(frozen=True, slots=True, kw_only=True)
class Record:
    @classmethod
    def from_stored(cls, stored: Mapping[str, Any]) -> Self:
        """The record as read back from an item's attributes."""
        known = (field.name for field in fields(cls))
        return cls(**{name: _plain(stored[name]) for name in known if name in stored})

    def stored(self) -> dict[str, Any]:
        """The record as item attributes."""
        return asdict(self)


@dataclass(frozen=True, slots=True, kw_only=True)
class CustomerRecord(Record):
    email: str | None = None
    name: str | None = None
    default_payment_method: str | None = None
    user_id: str | None = None
    deleted: bool = False


@dataclass(frozen=True, slots=True, kw_only=True)
class ItemRecord(Record):
    id: str
    price: str
    product: str
    lookup_key: str | None = None
    nickname: str | None = None
    product_name: str | None = None
    unit_amount: int | None = None
    currency: str
    interval: str | None = None
    interval_count: int | None = None
    quantity: int | None = None
    current_period_start: int | None = None
    current_period_end: int | None = None
    # The versions of the catalog fields copied into the item: ``product_name`` from the
    # product's record, ``lookup_key``/``nickname`` from the price. A catalog change is
    # copied into every subscriber's item (``billing.projection.catalog_fanout``) only over older
    # versions, so a late copy never overwrites a newer name.
    name_version: int | None = None
    price_version: int | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class SubscriptionRecord(Record):
    customer: str
    status: str
    created: int
    items: tuple[ItemRecord, ...]
    cancel_at: int | None = None
    cancel_at_period_end: bool = False
    canceled_at: int | None = None
    ended_at: int | None = None
    trial_end: int | None = None
    paused: bool = False
    pause_behavior: str | None = None
    resumes_at: int | None = None
    cancellation_reason: str | None = None
    cancellation_feedback: str | None = None
    default_payment_method: str | None = None
    billing_mode: str | None = None  # "classic" or "flexible" (only flexible can pause)

    @classmethod
    def from_stored(cls, stored: Mapping[str, Any]) -> Self:
        items = tuple(ItemRecord.from_stored(item) for item in stored["items"])
        # Not super(): a slots=True dataclass is a new class, which breaks its __class__ cell.
        return super(SubscriptionRecord, cls).from_stored({**stored, "items": items})


@dataclass(frozen=True, slots=True, kw_only=True)
class PaymentMethodRecord(Record):
    customer: str | None
    type: str
    brand: str | None = None
    last4: str | None = None
    exp_month: int | None = None
    exp_year: int | None = None
    bank_name: str | None = None
    email: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class InvoiceRecord(Record):
    customer: str
    number: str | None = None
    created: int
    amount_due: int
    amount_paid: int
    currency: str
    status: str | None = None
    hosted_invoice_url: str | None = None
    invoice_pdf: str | None = None
    subscription: str | None = None
    deleted: bool = False


@dataclass(frozen=True, slots=True, kw_only=True)
class PriceRecord(Record):
    product: str
    lookup_key: str | None = None
    nickname: str | None = None
    active: bool
    unit_amount: int | None = None
    currency: str
    interval: str | None = None
    interval_count: int | None = None
    deleted: bool = False

    def catalog_price(self, price_id: str) -> CatalogPrice:
        """This price as a catalog entry under its lookup key."""
        return CatalogPrice(
            price_id=price_id,
            lookup_key=self.lookup_key or "",
            product_id=self.product,
            active=self.active,
            currency=self.currency,
            unit_amount=self.unit_amount,
            interval=self.interval,
            interval_count=self.interval_count,
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class ProductRecord(Record):
    name: str
    description: str | None = None
    active: bool = True
    deleted: bool = False


@dataclass(frozen=True, slots=True, kw_only=True)
class GrantRecord(Record):
    """One active entitlement: the feature, its lookup key (what an app checks) and its
    name when the projection knows it."""

    feature: str
    lookup_key: str
    name: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class EntitlementsRecord(Record):
    """A customer's active entitlements, as Stripe's summary lists them."""

    customer: str
    grants: tuple[GrantRecord, ...] = ()

    @classmethod
    def from_stored(cls, stored: Mapping[str, Any]) -> Self:
        grants = tuple(GrantRecord.from_stored(grant) for grant in stored.get("grants", ()))
        # Not super(): a slots=True dataclass is a new class, which breaks its __class__ cell.
        return super(EntitlementsRecord, cls).from_stored({**stored, "grants": grants})


@dataclass(frozen=True, slots=True, kw_only=True)
class FeatureRecord(Record):
    """An entitlement feature of the catalog (Stripe sends no event for features: the
    backfill and the catalog resource write them)."""

    lookup_key: str
    name: str
    active: bool = True
    deleted: bool = False


@dataclass(frozen=True, slots=True, kw_only=True)
class ProductFeaturesRecord(Record):
    """The features attached to a product (their ids), for a pricing table. Stripe sends no
    event for an attachment: the catalog resource and the backfill write these."""

    features: tuple[str, ...] = ()

    @classmethod
    def from_stored(cls, stored: Mapping[str, Any]) -> Self:
        features = tuple(str(f) for f in stored.get("features", ()))
        # Not super(): a slots=True dataclass is a new class, which breaks its __class__ cell.
        return super(ProductFeaturesRecord, cls).from_stored({**stored, "features": features})


def _plain(value: Any) -> Any:
    if not isinstance(value, Decimal):
        return value
    if value != value.to_integral_value():
        raise ValueError(f"a stored record holds a non-integral number: {value}")
    return int(value)
