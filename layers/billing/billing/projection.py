"""What a Stripe event means for the stored projection: pure functions, no I/O.

A Stripe object is reduced to a small *record* holding only what the billing
page and the portal flows read. Every record in the table carries a version:

**Version rule.** An object's version is the ``created`` time of the event it
was built from (Stripe's objects carry no revision number). A write applies
only when its version is newer than the stored one (a conditional write), so a
late or repeated event cannot overwrite newer state. ``created`` has one-second
resolution: when an event of one object carries the *same* second as the
stored version but is a different event, the order is in doubt, and the
object is re-fetched from Stripe and stored with that version (the re-fetched
state is at least as new as anything from that second). A deleted object stays
as a tombstone record with its version, so an ``updated`` that arrives after a
``deleted`` is stale, and a subscription's ``created`` that arrives after its
``updated`` is stale too.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from billing.errors import MalformedBody
from billing.records import (
    CustomerRecord,
    InvoiceRecord,
    ItemRecord,
    Kind,
    PaymentMethodRecord,
    PriceRecord,
    ProductRecord,
    Record,
    SubscriptionRecord,
)

# Event type prefix -> the kind of its data.object (customer and payment
# method events are listed one by one below). Anything else is acknowledged
# and ignored.
_KIND_OF_TYPE: dict[str, Kind] = {
    "customer.subscription.": Kind.SUBSCRIPTION,
    "invoice.": Kind.INVOICE,
    "price.": Kind.PRICE,
    "product.": Kind.PRODUCT,
}
_CUSTOMER_TYPES = {"customer.created", "customer.updated", "customer.deleted"}
_PAYMENT_METHOD_TYPES = {
    "payment_method.attached",
    "payment_method.detached",
    "payment_method.updated",
    "payment_method.automatically_updated",
}
# A SetupIntent from POST /setup-intents: its card becomes the default.
SETUP_INTENT_SUCCEEDED = "setup_intent.succeeded"
DEFAULT_PAYMENT_METHOD_PURPOSE = "default_payment_method"


class StripeEvent(BaseModel):
    """The envelope of a webhook event, validated after the signature."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    class Data(BaseModel):
        model_config = ConfigDict(frozen=True, extra="ignore")
        object: dict[str, Any]
        previous_attributes: dict[str, Any] | None = None

    id: str = Field(pattern=r"^evt_[A-Za-z0-9_]+$", max_length=255)
    type: str = Field(min_length=1, max_length=100)
    created: int = Field(ge=0)
    livemode: bool
    api_version: str | None = None
    data: Data

    @classmethod
    def parse(cls, payload: bytes) -> StripeEvent:
        try:
            return cls.model_validate_json(payload)
        except ValidationError:
            raise MalformedBody("The body is not a Stripe event.") from None

    @property
    def object(self) -> dict[str, Any]:
        return self.data.object


# What the webhook endpoint subscribes to (Custom::StripeWebhookEndpoint):
# every type the projection folds in, and nothing else, so Stripe sends no
# event that would only be acknowledged and dropped.
HANDLED_EVENT_TYPES: tuple[str, ...] = (
    *sorted(_CUSTOMER_TYPES),
    "customer.subscription.created",
    "customer.subscription.updated",
    "customer.subscription.deleted",
    "customer.subscription.paused",
    "customer.subscription.resumed",
    "customer.subscription.pending_update_applied",
    "customer.subscription.pending_update_expired",
    "customer.subscription.trial_will_end",
    "invoice.created",
    "invoice.deleted",
    "invoice.finalized",
    "invoice.marked_uncollectible",
    "invoice.paid",
    "invoice.payment_failed",
    "invoice.payment_succeeded",
    "invoice.updated",
    "invoice.voided",
    *sorted(_PAYMENT_METHOD_TYPES),
    "price.created",
    "price.deleted",
    "price.updated",
    "product.created",
    "product.deleted",
    "product.updated",
    SETUP_INTENT_SUCCEEDED,
)


def kind_of(event_type: str) -> Kind | None:
    """The projected kind an event type updates, or None for types left alone."""
    if event_type.startswith("customer.") and not event_type.startswith("customer.subscription."):
        return Kind.CUSTOMER if event_type in _CUSTOMER_TYPES else None
    if event_type.startswith("payment_method."):
        return Kind.PAYMENT_METHOD if event_type in _PAYMENT_METHOD_TYPES else None
    for prefix, kind in _KIND_OF_TYPE.items():
        if event_type.startswith(prefix):
            return kind
    return None


def is_handled(event: StripeEvent) -> bool:
    if event.type == SETUP_INTENT_SUCCEEDED:
        metadata = event.object.get("metadata") or {}
        return bool(metadata.get("purpose") == DEFAULT_PAYMENT_METHOD_PURPOSE)
    return kind_of(event.type) is not None


# --- records from Stripe objects ------------------------------------------------------------


def _id(value: Any) -> str | None:
    """An id from a field that may be an id or an expanded object."""
    if isinstance(value, Mapping):
        found = value.get("id")
        return found if isinstance(found, str) else None
    return value if isinstance(value, str) else None


def customer_record(obj: Mapping[str, Any], user_metadata_key: str) -> CustomerRecord:
    metadata = obj.get("metadata") or {}
    settings = obj.get("invoice_settings") or {}
    return CustomerRecord(
        email=obj.get("email"),
        name=obj.get("name"),
        default_payment_method=_id(settings.get("default_payment_method")),
        user_id=metadata.get(user_metadata_key) or None,
        deleted=bool(obj.get("deleted")),
    )


def subscription_record(
    obj: Mapping[str, Any], product_names: Mapping[str, str] | None = None
) -> SubscriptionRecord:
    names = product_names or {}
    items = []
    for item in obj["items"]["data"]:
        price = item["price"]
        product = _id(price.get("product")) or ""
        recurring = price.get("recurring") or {}
        items.append(
            ItemRecord(
                id=item["id"],
                price=price["id"],
                product=product,
                lookup_key=price.get("lookup_key"),
                nickname=price.get("nickname"),
                product_name=names.get(product),
                unit_amount=price.get("unit_amount"),
                currency=price.get("currency") or obj.get("currency") or "",
                interval=recurring.get("interval"),
                interval_count=recurring.get("interval_count"),
                quantity=item.get("quantity"),
                current_period_end=item.get("current_period_end"),
            )
        )
    pause = obj.get("pause_collection") or {}
    details = obj.get("cancellation_details") or {}
    return SubscriptionRecord(
        customer=_id(obj["customer"]) or "",
        status=obj["status"],
        created=obj["created"],
        items=tuple(items),
        cancel_at=obj.get("cancel_at"),
        cancel_at_period_end=bool(obj.get("cancel_at_period_end")),
        canceled_at=obj.get("canceled_at"),
        ended_at=obj.get("ended_at"),
        trial_end=obj.get("trial_end"),
        paused=obj["status"] == "paused" or bool(pause),
        pause_behavior=pause.get("behavior"),
        resumes_at=pause.get("resumes_at"),
        cancellation_reason=details.get("reason"),
        cancellation_feedback=details.get("feedback"),
        default_payment_method=_id(obj.get("default_payment_method")),
    )


def payment_method_record(obj: Mapping[str, Any]) -> PaymentMethodRecord:
    card = obj.get("card") or {}
    return PaymentMethodRecord(
        customer=_id(obj.get("customer")),
        type=obj.get("type") or "card",
        brand=card.get("display_brand") or card.get("brand"),
        last4=card.get("last4"),
        exp_month=card.get("exp_month"),
        exp_year=card.get("exp_year"),
    )


def invoice_record(obj: Mapping[str, Any], *, deleted: bool = False) -> InvoiceRecord:
    parent = obj.get("parent") or {}
    details = parent.get("subscription_details") or {}
    return InvoiceRecord(
        customer=_id(obj["customer"]) or "",
        number=obj.get("number"),
        created=obj["created"],
        amount_due=obj.get("amount_due") or 0,
        amount_paid=obj.get("amount_paid") or 0,
        currency=obj.get("currency") or "",
        status=obj.get("status"),
        hosted_invoice_url=obj.get("hosted_invoice_url"),
        invoice_pdf=obj.get("invoice_pdf"),
        subscription=_id(details.get("subscription")),
        deleted=deleted or bool(obj.get("deleted")),
    )


def price_record(obj: Mapping[str, Any], *, deleted: bool = False) -> PriceRecord:
    recurring = obj.get("recurring") or {}
    return PriceRecord(
        product=_id(obj.get("product")) or "",
        lookup_key=obj.get("lookup_key"),
        nickname=obj.get("nickname"),
        active=bool(obj.get("active")) and not deleted,
        unit_amount=obj.get("unit_amount"),
        currency=obj.get("currency") or "",
        interval=recurring.get("interval"),
        interval_count=recurring.get("interval_count"),
        deleted=deleted,
    )


def product_record(obj: Mapping[str, Any], *, deleted: bool = False) -> ProductRecord:
    return ProductRecord(
        name=obj.get("name") or "",
        active=bool(obj.get("active", True)) and not deleted,
        deleted=deleted,
    )


# --- what an event changes -------------------------------------------------------------------


@dataclass(frozen=True)
class Change:
    """The effect of one event (or one re-fetched object) on one projected object.

    ``customer`` routes it to the user's partition (None for catalog objects).
    ``products`` lists product ids whose names the record wants denormalised.
    """

    kind: Kind
    object_id: str
    customer: str | None
    object: Mapping[str, Any]
    deleted: bool = False

    @property
    def products(self) -> tuple[str, ...]:
        if self.kind is not Kind.SUBSCRIPTION:
            return ()
        found = {_id(i["price"].get("product")) for i in self.object["items"]["data"]}
        return tuple(sorted(p for p in found if p))

    def record(self, user_metadata_key: str, product_names: Mapping[str, str]) -> Record:
        match self.kind:
            case Kind.CUSTOMER:
                return customer_record(self.object, user_metadata_key)
            case Kind.SUBSCRIPTION:
                return subscription_record(self.object, product_names)
            case Kind.PAYMENT_METHOD:
                return payment_method_record(self.object)
            case Kind.INVOICE:
                return invoice_record(self.object, deleted=self.deleted)
            case Kind.PRICE:
                return price_record(self.object, deleted=self.deleted)
            case Kind.PRODUCT:
                return product_record(self.object, deleted=self.deleted)


def change_for(event: StripeEvent) -> Change | None:
    """The projected object an event updates, or None if the projection ignores it."""
    kind = kind_of(event.type)
    if kind is None:
        return None
    return change_from_object(
        kind,
        event.object,
        deleted=event.type.endswith(".deleted"),
        previous=event.data.previous_attributes,
    )


def change_from_object(
    kind: Kind,
    obj: Mapping[str, Any],
    *,
    deleted: bool = False,
    previous: Mapping[str, Any] | None = None,
) -> Change:
    """A change carrying ``obj`` as the new state of its object."""
    object_id = obj["id"]
    match kind:
        case Kind.CUSTOMER:
            customer: str | None = object_id
        case Kind.PAYMENT_METHOD:
            # A detached method has customer null; the old one is in previous_attributes.
            customer = _id(obj.get("customer")) or _id((previous or {}).get("customer"))
        case Kind.PRICE | Kind.PRODUCT:
            customer = None
        case _:
            customer = _id(obj.get("customer"))
    return Change(kind, object_id, customer, obj, deleted=deleted or bool(obj.get("deleted")))
