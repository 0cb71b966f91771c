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

**Other API versions.** An event rendered in another API version than the pinned
one (``stripe listen`` forwards the account's default version; an endpoint made in
the Dashboard has its own) may carry fields where this code does not look, e.g. a
subscription's period end on the subscription instead of its items before
2025-03-31.basil. For the kinds whose read fields moved
(``registry.SHAPE_CHANGES_WITH_VERSION``) the object is re-fetched in the
pinned version and stored under the event's version, as for a same-second tie:
one Stripe call, and never a silently empty field. The other kinds are read from
the payload: their fields have the same shape in every version since 2020-03-02.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from billing.core.errors import MalformedBody
from billing.projection.records import (
    CustomerRecord,
    EntitlementsRecord,
    FeatureRecord,
    GrantRecord,
    InvoiceRecord,
    ItemRecord,
    Kind,
    PaymentMethodRecord,
    PriceRecord,
    ProductFeaturesRecord,
    ProductRecord,
    Record,
    SubscriptionRecord,
)
from billing.projection.registry import Fold, HandledType

# A SetupIntent from POST /setup-intents carries this purpose: its card becomes the default.
DEFAULT_PAYMENT_METHOD_PURPOSE = "default_payment_method"


class UnreadableObject(Exception):
    """A handled event's object lacks what its record needs (e.g. no ``id``)."""


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


def is_ours(event: StripeEvent) -> bool:
    """Whether a SetupIntent event belongs to ``POST /setup-intents`` (others are ignored)."""
    metadata = event.object.get("metadata") or {}
    return bool(metadata.get("purpose") == DEFAULT_PAYMENT_METHOD_PURPOSE)


# --- records from Stripe objects ------------------------------------------------------------


def _id(value: Any) -> str | None:
    """An id from a field that may be an id or an expanded object."""
    if isinstance(value, Mapping):
        found = value.get("id")
        return found if isinstance(found, str) and found else None
    return value if isinstance(value, str) and value else None


# Stripe documents many fields as nullable, and a payload may come from another API
# version: every optional value is read with these, so a null, a missing field or an
# unexpected type reads as "not known" instead of raising. Only what a record cannot
# exist without (an id, a status, a creation time) raises ``UnreadableObject``.


def _map(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _str(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _required_str(obj: Mapping[str, Any], field: str) -> str:
    value = _str(obj.get(field))
    if value is None:
        raise UnreadableObject(f"{obj.get('object') or 'object'} without {field}")
    return value


def _required_int(obj: Mapping[str, Any], field: str) -> int:
    value = _int(obj.get(field))
    if value is None:
        raise UnreadableObject(f"{obj.get('object') or 'object'} without {field}")
    return value


def _list_data(value: Any) -> list[Mapping[str, Any]]:
    """The objects of a Stripe list (``{"data": [...]}``), or of a plain list."""
    data = value.get("data") if isinstance(value, Mapping) else value
    return [entry for entry in data if isinstance(entry, Mapping)] if isinstance(data, list) else []


def customer_record(obj: Mapping[str, Any], user_metadata_key: str) -> CustomerRecord:
    metadata = _map(obj.get("metadata"))
    settings = _map(obj.get("invoice_settings"))
    return CustomerRecord(
        email=_str(obj.get("email")),
        name=_str(obj.get("name")),
        default_payment_method=_id(settings.get("default_payment_method")),
        user_id=_str(metadata.get(user_metadata_key)),
        deleted=obj.get("deleted") is True,
    )


@dataclass(frozen=True)
class CatalogCopies:
    """What a subscription copies from the stored catalog: the products' names with the
    version each was stored at, and the prices' lookup keys and nicknames (``prices``:
    price id -> (lookup key, nickname, version))."""

    names: Mapping[str, str]
    versions: Mapping[str, int]
    prices: Mapping[str, tuple[str | None, str | None, int]] = field(default_factory=dict)
    # An entitlements summary copies the stored features' names (feature id -> name).
    features: Mapping[str, str] = field(default_factory=dict)


NO_COPIES = CatalogCopies({}, {})


def subscription_record(
    obj: Mapping[str, Any], products: CatalogCopies = NO_COPIES, *, version: int | None = None
) -> SubscriptionRecord:
    """The subscription as stored; ``version`` is that of the event it comes from (the
    version of the price fields its items copy)."""
    items = []
    for item in _list_data(obj.get("items")):
        price = _map(item.get("price"))
        product = _id(price.get("product")) or ""
        price_id = _required_str(price, "id")
        recurring = _map(price.get("recurring"))
        lookup_key, nickname = _str(price.get("lookup_key")), _str(price.get("nickname"))
        price_version = version
        stored = products.prices.get(price_id)
        if stored is not None and (version is None or stored[2] >= version):
            # The price changed since (or in the same second as) this event: the
            # stored values are the newer ones.
            lookup_key, nickname, price_version = stored
        items.append(
            ItemRecord(
                id=_required_str(item, "id"),
                price=price_id,
                product=product,
                lookup_key=lookup_key,
                nickname=nickname,
                product_name=products.names.get(product),
                name_version=products.versions.get(product),
                price_version=price_version,
                unit_amount=_int(price.get("unit_amount")),
                currency=_str(price.get("currency")) or _str(obj.get("currency")) or "",
                interval=_str(recurring.get("interval")),
                interval_count=_int(recurring.get("interval_count")),
                quantity=_int(item.get("quantity")),
                current_period_start=_int(item.get("current_period_start")),
                current_period_end=_int(item.get("current_period_end")),
            )
        )
    status = _required_str(obj, "status")
    pause = _map(obj.get("pause_collection"))
    details = _map(obj.get("cancellation_details"))
    return SubscriptionRecord(
        customer=_id(obj.get("customer")) or "",
        status=status,
        created=_required_int(obj, "created"),
        items=tuple(items),
        cancel_at=_int(obj.get("cancel_at")),
        cancel_at_period_end=obj.get("cancel_at_period_end") is True,
        canceled_at=_int(obj.get("canceled_at")),
        ended_at=_int(obj.get("ended_at")),
        trial_end=_int(obj.get("trial_end")),
        paused=status == "paused" or bool(pause),
        pause_behavior=_str(pause.get("behavior")),
        resumes_at=_int(pause.get("resumes_at")),
        cancellation_reason=_str(details.get("reason")),
        cancellation_feedback=_str(details.get("feedback")),
        default_payment_method=_id(obj.get("default_payment_method")),
        billing_mode=_str(_map(obj.get("billing_mode")).get("type")),
    )


def payment_method_record(obj: Mapping[str, Any]) -> PaymentMethodRecord:
    """A payment method as a billing page shows it, whatever its type.

    Each type keeps its details under a key named after it (``card``,
    ``sepa_debit``, ``us_bank_account``, ``link``, ``paypal``, ...); the fields a
    page needs have the same names across them: ``last4`` and ``bank_name`` for
    bank debits, ``email`` (Link) or ``payer_email`` (PayPal) for wallets.
    """
    method_type = _str(obj.get("type")) or "card"
    details = _map(obj.get(method_type))
    card = details if method_type == "card" else {}
    return PaymentMethodRecord(
        customer=_id(obj.get("customer")),
        type=method_type,
        brand=_str(card.get("display_brand")) or _str(card.get("brand")),
        last4=_str(details.get("last4")),
        exp_month=_int(card.get("exp_month")),
        exp_year=_int(card.get("exp_year")),
        bank_name=_str(details.get("bank_name")),
        email=_str(details.get("email")) or _str(details.get("payer_email")),
    )


def invoice_record(obj: Mapping[str, Any], *, deleted: bool = False) -> InvoiceRecord:
    parent = _map(obj.get("parent"))
    details = _map(parent.get("subscription_details"))
    return InvoiceRecord(
        customer=_id(obj.get("customer")) or "",
        number=_str(obj.get("number")),
        created=_required_int(obj, "created"),
        amount_due=_int(obj.get("amount_due")) or 0,
        amount_paid=_int(obj.get("amount_paid")) or 0,
        currency=_str(obj.get("currency")) or "",
        status=_str(obj.get("status")),
        hosted_invoice_url=_str(obj.get("hosted_invoice_url")),
        invoice_pdf=_str(obj.get("invoice_pdf")),
        subscription=_id(details.get("subscription")),
        deleted=deleted or obj.get("deleted") is True,
    )


def price_record(obj: Mapping[str, Any], *, deleted: bool = False) -> PriceRecord:
    recurring = _map(obj.get("recurring"))
    return PriceRecord(
        product=_id(obj.get("product")) or "",
        lookup_key=_str(obj.get("lookup_key")),
        nickname=_str(obj.get("nickname")),
        active=obj.get("active") is True and not deleted,
        unit_amount=_int(obj.get("unit_amount")),
        currency=_str(obj.get("currency")) or "",
        interval=_str(recurring.get("interval")),
        interval_count=_int(recurring.get("interval_count")),
        deleted=deleted,
    )


def product_record(obj: Mapping[str, Any], *, deleted: bool = False) -> ProductRecord:
    return ProductRecord(
        name=_str(obj.get("name")) or "",
        description=_str(obj.get("description")),
        active=obj.get("active") is not False and not deleted,
        deleted=deleted,
    )


def entitlements_record(
    obj: Mapping[str, Any], feature_names: Mapping[str, str] | None = None
) -> EntitlementsRecord:
    """A customer's active entitlements from Stripe's summary (or a list of them fetched
    with ``expand=data.feature``): each feature's lookup key, and its name from the
    expanded feature or the stored catalog (``feature_names``) when either has it."""
    names = feature_names or {}
    grants = {}
    for entitlement in _list_data(obj.get("entitlements")):
        feature = entitlement.get("feature")
        feature_id = _id(feature)
        lookup_key = _str(entitlement.get("lookup_key")) or _str(_map(feature).get("lookup_key"))
        if feature_id is None or lookup_key is None:
            continue
        name = _str(_map(feature).get("name")) or names.get(feature_id)
        grants[lookup_key] = GrantRecord(feature=feature_id, lookup_key=lookup_key, name=name)
    return EntitlementsRecord(
        customer=_required_id(obj, "customer"),
        grants=tuple(grants[key] for key in sorted(grants)),
    )


def feature_record(obj: Mapping[str, Any], *, deleted: bool = False) -> FeatureRecord:
    return FeatureRecord(
        lookup_key=_required_str(obj, "lookup_key"),
        name=_str(obj.get("name")) or "",
        active=obj.get("active") is not False and not deleted,
        deleted=deleted,
    )


def product_features_record(obj: Mapping[str, Any]) -> ProductFeaturesRecord:
    """``{"id": <product>, "features": [<feature id>, ...]}``: what the catalog resource and
    the backfill read of a product's attached features."""
    features = obj.get("features")
    ids = {_id(entry) for entry in features} if isinstance(features, list) else set()
    return ProductFeaturesRecord(features=tuple(sorted(f for f in ids if f)))


def _required_id(obj: Mapping[str, Any], field: str) -> str:
    value = _id(obj.get(field))
    if value is None:
        raise UnreadableObject(f"{obj.get('object') or 'object'} without {field}")
    return value


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
        items = _list_data(self.object.get("items"))
        found = {_id(_map(item.get("price")).get("product")) for item in items}
        return tuple(sorted(p for p in found if p))

    @property
    def prices(self) -> tuple[str, ...]:
        """The price ids a subscription's items bill (their fields are copied)."""
        return tuple(sorted({price for _, price in self.item_prices if price}))

    @property
    def item_prices(self) -> tuple[tuple[str, str], ...]:
        """(product id, price id) of each subscription item, in the items' order."""
        if self.kind is not Kind.SUBSCRIPTION:
            return ()
        pairs = []
        for item in _list_data(self.object.get("items")):
            price = _map(item.get("price"))
            pairs.append((_id(price.get("product")) or "", _id(price) or ""))
        return tuple(pairs)

    @property
    def features(self) -> tuple[str, ...]:
        """The feature ids an entitlements summary grants (their names are copied)."""
        if self.kind is not Kind.ENTITLEMENTS:
            return ()
        return tuple(sorted({g.feature for g in entitlements_record(self.object).grants}))

    @property
    def incomplete(self) -> bool:
        """An entitlements summary that lists only its first page of entitlements."""
        listed = _map(self.object.get("entitlements"))
        return self.kind is Kind.ENTITLEMENTS and listed.get("has_more") is True

    @property
    def belongs_to_customer(self) -> bool:
        """Whether the object is kept in a user's partition (routed by its customer)."""
        return self.kind not in (Kind.PRICE, Kind.PRODUCT, Kind.FEATURE, Kind.PRODUCT_FEATURES)

    def record(
        self,
        user_metadata_key: str,
        products: CatalogCopies = NO_COPIES,
        version: int | None = None,
    ) -> Record:
        obj, deleted = self.object, self.deleted
        build: dict[Kind, Callable[[], Record]] = {
            Kind.CUSTOMER: lambda: customer_record(obj, user_metadata_key),
            Kind.SUBSCRIPTION: lambda: subscription_record(obj, products, version=version),
            Kind.PAYMENT_METHOD: lambda: payment_method_record(obj),
            Kind.INVOICE: lambda: invoice_record(obj, deleted=deleted),
            Kind.PRICE: lambda: price_record(obj, deleted=deleted),
            Kind.PRODUCT: lambda: product_record(obj, deleted=deleted),
            Kind.ENTITLEMENTS: lambda: entitlements_record(obj, products.features),
            Kind.FEATURE: lambda: feature_record(obj, deleted=deleted),
            Kind.PRODUCT_FEATURES: lambda: product_features_record(obj),
        }
        return build[self.kind]()


def change_for(event: StripeEvent, entry: HandledType) -> Change:
    """The projected object a handled event updates (``UnreadableObject`` if it cannot)."""
    return change_from_object(
        entry.updates,
        event.object,
        deleted=entry.fold is not Fold.UPSERT,
        previous=event.data.previous_attributes,
    )


def change_from_object(
    kind: Kind,
    obj: Mapping[str, Any],
    *,
    deleted: bool = False,
    previous: Mapping[str, Any] | None = None,
) -> Change:
    """A change carrying ``obj`` as the new state of its object.

    Raises ``UnreadableObject`` when ``obj`` lacks what its record needs, before
    anything is read or written.
    """
    # A customer's entitlements summary has no id of its own: it is the customer's.
    object_id = (
        _required_id(obj, "customer") if kind is Kind.ENTITLEMENTS else _required_str(obj, "id")
    )
    match kind:
        case Kind.CUSTOMER | Kind.ENTITLEMENTS:
            customer: str | None = object_id
        case Kind.PAYMENT_METHOD:
            # A detached method has customer null; the old one is in previous_attributes.
            customer = _id(obj.get("customer")) or _id(_map(previous).get("customer"))
        case Kind.PRICE | Kind.PRODUCT | Kind.FEATURE | Kind.PRODUCT_FEATURES:
            customer = None
        case _:
            customer = _id(obj.get("customer"))
    change = Change(kind, object_id, customer, obj, deleted=deleted or obj.get("deleted") is True)
    change.record("")  # every required field is there
    return change
