"""The Stripe catalog as declared in ``template.yaml`` (pure: no I/O).

``Custom::StripeCatalog`` states the products a deployment sells, their prices and the
entitlement features each product includes, with Stripe's field names in
CloudFormation's PascalCase. :func:`parse_catalog` validates the declaration before any
Stripe call (a broken rule fails the deploy with the field and the rule);
:func:`plan_catalog` compares it with what Stripe holds (:class:`StripeCatalogState`)
and lists the writes that make Stripe match, in the order they must run.

What "match" means, as Stripe allows it:

- **Ownership.** Every product, price and feature this resource creates carries the
  metadata ``managed_by=billing-portal`` and ``catalog=<stack>``. Objects without that
  marker are never changed, with one exception the declaration must ask for: a
  price's ``TransferLookupKey: true`` takes its lookup key over from a price made
  elsewhere (the Dashboard), as Stripe's ``transfer_lookup_key`` does.
- **Products** are matched by their declared ``Key`` (kept in metadata ``catalog_key``,
  so a product can be renamed). Name, description, metadata and ``active`` change in
  place.
- **Prices** are matched by lookup key. Stripe never changes a price's amount,
  currency, interval or trial: a declared change makes a **new price that takes over the
  lookup key**, and the old one is archived. Existing subscribers stay on their old price
  until they change plan (Stripe's rule); new Checkout sessions and portal changes use
  the new one. ``active``, ``nickname``, metadata and a first ``tax_behavior`` change in
  place.
- **Removed** products and prices are archived (``active: false``), never deleted:
  subscribers may still pay them. Removed features are archived and detached from this
  resource's products.
- **Features** are matched by lookup key (Stripe's keys never change); their names
  change in place. A feature made elsewhere with a declared lookup key is refused (it
  cannot be taken over).
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    model_validator,
)
from pydantic.alias_generators import to_pascal

from billing.provisioning.portal_config import MAX_PRODUCTS, describe_errors

MANAGED_BY = "billing-portal"
# Keys this resource writes into the metadata of what it owns; a declaration cannot set them.
MARKER_KEYS = frozenset({"managed_by", "catalog", "catalog_key"})
_NOT_CATALOG = frozenset({"ServiceToken", "ServiceTimeout", "StripeSecretName", "StripeMode"})
_CURRENCY = re.compile(r"^[a-z]{3}$")
_KEY = re.compile(r"^[A-Za-z0-9_.-]+$")
MAX_UNIT_AMOUNT = 99_999_999  # Stripe's largest amount, in minor units
# At most one year between charges, as Stripe allows.
MAX_INTERVAL_COUNT = {"day": 365, "week": 52, "month": 12, "year": 1}


class CatalogInvalid(ValueError):
    """The declared catalog breaks a rule; the message names the field and the rule."""


def _lower(value: object) -> object:
    return value.lower() if isinstance(value, str) else value


def _bool(value: object) -> object:
    # CloudFormation passes every property as a string.
    return {"true": True, "false": False}.get(value, value) if isinstance(value, str) else value


def _list(value: object) -> object:
    if value is None or value == "":
        return []
    if isinstance(value, str):
        return [part.strip() for part in value.split(",") if part.strip()]
    return value


Flag = Annotated[bool, BeforeValidator(_bool)]
Metadata = dict[
    Annotated[str, Field(min_length=1, max_length=40)], Annotated[str, Field(max_length=500)]
]


class _Declared(BaseModel):
    model_config = ConfigDict(alias_generator=to_pascal, extra="forbid", frozen=True)


class FeatureSpec(_Declared):
    lookup_key: str = Field(min_length=1, max_length=80)
    name: str = Field(min_length=1, max_length=80)


class PriceSpec(_Declared):
    lookup_key: str = Field(min_length=1, max_length=200, pattern=_KEY.pattern)
    currency: Annotated[str, BeforeValidator(_lower)] = Field(pattern=_CURRENCY.pattern)
    unit_amount: int = Field(ge=0, le=MAX_UNIT_AMOUNT)
    interval: Literal["day", "week", "month", "year"]
    interval_count: int = Field(default=1, ge=1)
    trial_days: int = Field(default=0, ge=0, le=730)
    tax_behavior: Literal["unspecified", "inclusive", "exclusive"] = "unspecified"
    nickname: str = Field(default="", max_length=250)
    active: Flag = True
    transfer_lookup_key: Flag = False

    @model_validator(mode="after")
    def _at_most_a_year(self) -> PriceSpec:
        limit = MAX_INTERVAL_COUNT[self.interval]
        if self.interval_count > limit:
            raise ValueError(
                f"IntervalCount {self.interval_count} {self.interval}s is more than one year "
                f"(at most {limit})"
            )
        return self

    def same_terms(self, price: StripePrice) -> bool:
        """Whether ``price`` bills what this declares (what Stripe cannot change in place)."""
        return (
            price.currency == self.currency
            and price.unit_amount == self.unit_amount
            and price.interval == self.interval
            and price.interval_count == self.interval_count
            and (price.trial_days or 0) == self.trial_days
        )


class ProductSpec(_Declared):
    key: str = Field(min_length=1, max_length=100, pattern=_KEY.pattern)
    name: str = Field(min_length=1, max_length=250)
    description: str = Field(default="", max_length=5000)
    metadata: Metadata = Field(default_factory=dict)
    active: Flag = True
    features: Annotated[list[str], BeforeValidator(_list)] = Field(default_factory=list)
    prices: list[PriceSpec] = Field(default_factory=list)

    @model_validator(mode="after")
    def _own_metadata(self) -> ProductSpec:
        taken = sorted(MARKER_KEYS & self.metadata.keys())
        if taken:
            raise ValueError(f"Metadata keys {', '.join(taken)} are the resource's own")
        return self


class CatalogSpec(_Declared):
    # Whose objects these are: the stack's name (several stacks may share an account).
    catalog: str = Field(min_length=1, max_length=128)
    products: list[ProductSpec] = Field(min_length=1)
    features: list[FeatureSpec] = Field(default_factory=list)
    # The portal offers the catalog's plans: at most 10 products with active prices.
    offered_in_portal: Flag = True

    @model_validator(mode="after")
    def _consistent(self) -> CatalogSpec:
        problems = [
            *_duplicates("Products", "Key", [p.key for p in self.products]),
            *_duplicates(
                "Prices",
                "LookupKey",
                [price.lookup_key for p in self.products for price in p.prices],
            ),
            *_duplicates("Features", "LookupKey", [f.lookup_key for f in self.features]),
        ]
        declared = {f.lookup_key for f in self.features}
        attached: set[str] = set()
        for index, product in enumerate(self.products):
            for key in product.features:
                if key not in declared:
                    problems.append(f"Products.{index}.Features: {key} is not a declared feature")
                attached.add(key)
        problems += [
            f"Features: {key} is attached to no product" for key in sorted(declared - attached)
        ]
        offered = [p for p in self.products if p.active and any(x.active for x in p.prices)]
        if self.offered_in_portal and len(offered) > MAX_PRODUCTS:
            problems.append(
                f"Products: {len(offered)} products with active prices; the portal offers at "
                f"most {MAX_PRODUCTS} (set OfferedInPortal: false if it does not offer them)"
            )
        if problems:
            raise ValueError("; ".join(problems))
        return self

    def lookup_keys(self) -> list[str]:
        """The lookup keys of the active prices of active products, in declared order:
        what Checkout sells and the portal offers."""
        return [
            price.lookup_key
            for product in self.products
            if product.active
            for price in product.prices
            if price.active
        ]

    def marker(self, **extra: str) -> dict[str, str]:
        return {"managed_by": MANAGED_BY, "catalog": self.catalog, **extra}


def _duplicates(where: str, what: str, values: Sequence[str]) -> list[str]:
    counts = Counter(values)
    return [
        f"{where}: {what} {value} is declared more than once"
        for value, count in counts.items()
        if count > 1
    ]


def parse_catalog(properties: Mapping[str, Any]) -> CatalogSpec:
    """The validated declaration, or :class:`CatalogInvalid` naming each broken field and rule."""
    declared = {k: v for k, v in properties.items() if k not in _NOT_CATALOG}
    try:
        return CatalogSpec.model_validate(declared)
    except ValidationError as error:
        reason = describe_errors(error).removeprefix("Invalid portal configuration: ")
        raise CatalogInvalid(f"Invalid catalog: {reason}") from None


# --- what Stripe holds ---------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class StripeProduct:
    id: str
    name: str
    description: str
    metadata: Mapping[str, str]
    active: bool


@dataclass(frozen=True, slots=True)
class StripePrice:
    id: str
    product: str
    lookup_key: str | None
    currency: str
    unit_amount: int | None
    interval: str | None
    interval_count: int | None
    trial_days: int | None
    tax_behavior: str | None
    nickname: str
    metadata: Mapping[str, str]
    active: bool


@dataclass(frozen=True, slots=True)
class StripeFeature:
    id: str
    lookup_key: str
    name: str
    metadata: Mapping[str, str]
    active: bool


@dataclass(frozen=True, slots=True)
class Attachment:
    id: str  # the product feature's id
    product: str
    feature: str  # the feature's id


@dataclass(frozen=True)
class StripeCatalogState:
    """What the planner needs to know of the Stripe account: this catalog's products,
    prices and features (by the marker), every price holding a declared lookup key (also
    foreign ones), every feature with a declared lookup key, and the features attached to
    this catalog's products."""

    products: Sequence[StripeProduct] = ()
    prices: Sequence[StripePrice] = ()
    features: Sequence[StripeFeature] = ()
    attachments: Sequence[Attachment] = ()


def owned(metadata: Mapping[str, str], catalog: str) -> bool:
    return metadata.get("managed_by") == MANAGED_BY and metadata.get("catalog") == catalog


# --- the writes ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Write:
    """One Stripe write. ``target`` names the object (an id, or ``@<key>`` for a product or
    feature created earlier in the same plan, resolved when it runs)."""

    action: Literal[
        "create_feature",
        "update_feature",
        "create_product",
        "update_product",
        "create_price",
        "update_price",
        "attach_feature",
        "detach_feature",
    ]
    target: str
    params: Mapping[str, Any] = field(default_factory=dict)
    # What the write is about, for the deploy log and idempotency (a lookup key or key).
    subject: str = ""


@dataclass(frozen=True)
class CatalogPlan:
    writes: list[Write]
    # Products whose features change: their subscribers' entitlements must be refreshed
    # (Stripe sends no event for that). Ids, or ``@<key>`` for a product created now.
    feature_changes: list[str]


class CatalogConflict(ValueError):
    """Stripe holds something the declaration may not touch; the message says what."""


def plan_catalog(spec: CatalogSpec, state: StripeCatalogState) -> CatalogPlan:
    """The writes that make Stripe hold ``spec``; none when it already does."""
    writes: list[Write] = []
    features = _plan_features(spec, state, writes)
    products = _plan_products(spec, state, writes)
    _plan_prices(spec, state, products, writes)
    changed = _plan_attachments(spec, state, products, features, writes)
    # A retired feature is archived once it is detached from everything of ours.
    retired = [w for w in writes if w.action == "update_feature" and w.params == {"active": False}]
    writes = [w for w in writes if w not in retired] + retired
    return CatalogPlan(writes, changed)


def plan_removal(catalog: str, state: StripeCatalogState) -> list[Write]:
    """Archive everything this catalog made (a stack's Delete): nothing is deleted."""
    writes = [
        Write("update_price", p.id, {"active": False}, p.lookup_key or p.id)
        for p in state.prices
        if p.active and owned(p.metadata, catalog)
    ]
    writes += [
        Write("update_product", p.id, {"active": False}, p.name)
        for p in state.products
        if p.active and owned(p.metadata, catalog)
    ]
    writes += [
        Write("update_feature", f.id, {"active": False}, f.lookup_key)
        for f in state.features
        if f.active and owned(f.metadata, catalog)
    ]
    return writes


def _plan_features(
    spec: CatalogSpec, state: StripeCatalogState, writes: list[Write]
) -> dict[str, str]:
    """Feature lookup key -> id (or ``@key`` for one created now)."""
    by_key = {f.lookup_key: f for f in state.features}
    ids: dict[str, str] = {}
    for declared in spec.features:
        found = by_key.get(declared.lookup_key)
        if found is None:
            writes.append(
                Write(
                    "create_feature",
                    f"@{declared.lookup_key}",
                    {
                        "lookup_key": declared.lookup_key,
                        "name": declared.name,
                        "metadata": spec.marker(),
                    },
                    declared.lookup_key,
                )
            )
            ids[declared.lookup_key] = f"@{declared.lookup_key}"
            continue
        if not owned(found.metadata, spec.catalog):
            raise CatalogConflict(
                f"Features: a feature with lookup key {declared.lookup_key} exists in Stripe and "
                "was not made by this stack; archive or rename it there, or declare another key"
            )
        changes: dict[str, Any] = {}
        if found.name != declared.name:
            changes["name"] = declared.name
        if not found.active:
            changes["active"] = True
        if changes:
            writes.append(Write("update_feature", found.id, changes, declared.lookup_key))
        ids[declared.lookup_key] = found.id
    declared_keys = {f.lookup_key for f in spec.features}
    for found in state.features:
        retired = found.lookup_key not in declared_keys
        if retired and found.active and owned(found.metadata, spec.catalog):
            writes.append(Write("update_feature", found.id, {"active": False}, found.lookup_key))
    return ids


def _plan_products(
    spec: CatalogSpec, state: StripeCatalogState, writes: list[Write]
) -> dict[str, str]:
    """Product key -> id (or ``@key``)."""
    mine = {
        p.metadata.get("catalog_key"): p for p in state.products if owned(p.metadata, spec.catalog)
    }
    ids: dict[str, str] = {}
    for declared in spec.products:
        metadata = {**declared.metadata, **spec.marker(catalog_key=declared.key)}
        found = mine.get(declared.key)
        if found is None:
            params: dict[str, Any] = {
                "name": declared.name,
                "active": declared.active,
                "metadata": metadata,
            }
            if declared.description:
                params["description"] = declared.description
            writes.append(Write("create_product", f"@{declared.key}", params, declared.key))
            ids[declared.key] = f"@{declared.key}"
            continue
        ids[declared.key] = found.id
        changes: dict[str, Any] = {}
        if found.name != declared.name:
            changes["name"] = declared.name
        if found.description != declared.description:
            changes["description"] = declared.description
        if found.active != declared.active:
            changes["active"] = declared.active
        if dict(found.metadata) != metadata:
            # Keys no longer declared are removed (an empty value), the marker kept.
            changes["metadata"] = {**dict.fromkeys(found.metadata, ""), **metadata}
        if changes:
            writes.append(Write("update_product", found.id, changes, declared.key))
    declared_keys = {p.key for p in spec.products}
    for key, found in mine.items():
        if key not in declared_keys and found.active:
            writes.append(Write("update_product", found.id, {"active": False}, str(key)))
    return ids


def _plan_prices(
    spec: CatalogSpec,
    state: StripeCatalogState,
    products: Mapping[str, str],
    writes: list[Write],
) -> None:
    holders = {p.lookup_key: p for p in state.prices if p.lookup_key}
    kept: set[str] = set()
    archive: list[Write] = []
    for product in spec.products:
        product_id = products[product.key]
        for declared in product.prices:
            holder = holders.get(declared.lookup_key)
            if holder is not None and not owned(holder.metadata, spec.catalog):
                if not declared.transfer_lookup_key:
                    raise CatalogConflict(
                        f"Prices: lookup key {declared.lookup_key} belongs to a price not made "
                        f"by this stack ({holder.id}); set TransferLookupKey: true to take it "
                        "over, or declare another key"
                    )
                holder = None  # taken over by a new price of ours; the other is left alone
            if holder is not None and holder.product == product_id and declared.same_terms(holder):
                kept.add(holder.id)
                changes = _price_changes(declared, holder)
                if changes:
                    writes.append(Write("update_price", holder.id, changes, declared.lookup_key))
                continue
            writes.append(
                Write(
                    "create_price",
                    product_id,
                    _new_price(spec, declared, transfer=declared.lookup_key in holders),
                    declared.lookup_key,
                )
            )
            if holder is not None and holder.active:
                kept.add(holder.id)  # archived below, after its successor exists
                archive.append(Write("update_price", holder.id, {"active": False}, holder.id))
    for price in state.prices:
        if owned(price.metadata, spec.catalog) and price.active and price.id not in kept:
            archive.append(
                Write("update_price", price.id, {"active": False}, price.lookup_key or price.id)
            )
    writes.extend(archive)


def _price_changes(declared: PriceSpec, price: StripePrice) -> dict[str, Any]:
    changes: dict[str, Any] = {}
    if price.active != declared.active:
        changes["active"] = declared.active
    if price.nickname != declared.nickname:
        changes["nickname"] = declared.nickname
    if declared.tax_behavior != (price.tax_behavior or "unspecified"):
        if price.tax_behavior not in (None, "unspecified"):
            raise CatalogConflict(
                f"Prices: {declared.lookup_key} has tax behavior {price.tax_behavior} in Stripe, "
                "which cannot change; declare a new lookup key for a price with "
                f"{declared.tax_behavior}"
            )
        changes["tax_behavior"] = declared.tax_behavior
    return changes


def _new_price(spec: CatalogSpec, declared: PriceSpec, *, transfer: bool) -> dict[str, Any]:
    recurring: dict[str, Any] = {
        "interval": declared.interval,
        "interval_count": declared.interval_count,
    }
    if declared.trial_days:
        recurring["trial_period_days"] = declared.trial_days
    params: dict[str, Any] = {
        "currency": declared.currency,
        "unit_amount": declared.unit_amount,
        "recurring": recurring,
        "lookup_key": declared.lookup_key,
        "tax_behavior": declared.tax_behavior,
        "active": declared.active,
        "metadata": spec.marker(),
    }
    if declared.nickname:
        params["nickname"] = declared.nickname
    if transfer:
        params["transfer_lookup_key"] = True
    return params


def _plan_attachments(
    spec: CatalogSpec,
    state: StripeCatalogState,
    products: Mapping[str, str],
    features: Mapping[str, str],
    writes: list[Write],
) -> list[str]:
    mine = {f.id for f in state.features if owned(f.metadata, spec.catalog)}
    declared_ids = set(features.values())
    changed: list[str] = []
    for product in spec.products:
        product_id = products[product.key]
        attached = {a.feature: a for a in state.attachments if a.product == product_id}
        wanted = [features[key] for key in product.features]
        added = [f for f in wanted if f not in attached]
        # Only this catalog's features are detached: an attachment made elsewhere stays.
        removed = [
            a for f, a in attached.items() if f not in wanted and (f in mine or f in declared_ids)
        ]
        for feature_id in added:
            writes.append(
                Write(
                    "attach_feature",
                    product_id,
                    {"entitlement_feature": feature_id},
                    f"{product.key}:{feature_id}",
                )
            )
        for attachment in removed:
            writes.append(
                Write("detach_feature", product_id, {"attachment": attachment.id}, product.key)
            )
        if added or removed:
            changed.append(product_id)
    # A feature no longer declared leaves this catalog's other products too.
    undeclared = {f.id for f in state.features if owned(f.metadata, spec.catalog)} - declared_ids
    declared_products = set(products.values())
    for attachment in state.attachments:
        if attachment.feature in undeclared and attachment.product not in declared_products:
            writes.append(
                Write(
                    "detach_feature",
                    attachment.product,
                    {"attachment": attachment.id},
                    attachment.feature,
                )
            )
            changed.append(attachment.product)
    return changed
