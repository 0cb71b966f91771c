"""The billing-portal configuration as declared in ``template.yaml`` (pure: no I/O).

``Custom::PortalConfiguration`` states the whole configuration in its
properties, with Stripe's field names in CloudFormation's PascalCase
(``Features.SubscriptionCancel.Mode``). Prices are named by **lookup key** and
resolved to ids at deploy time, so one template serves test and live mode.

:func:`parse_portal_configuration` validates the properties before any Stripe
call; a broken rule fails the deploy with a reason naming the field and the
rule. :func:`stripe_params` turns a validated spec and the resolved prices into
the ``billing_portal.configurations`` create/update parameters. Every field is
sent on update too (unset ones as empty values), so a field removed from the
template is removed from Stripe: the template is the whole truth.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    model_validator,
)
from pydantic.alias_generators import to_pascal

from billing.stripe_api.enums import (
    BILLING_CYCLE_ANCHORS,
    CANCEL_MODES,
    CANCEL_PRORATIONS,
    CANCELLATION_REASONS,
    CUSTOMER_UPDATE_FIELDS,
    PAUSE_INTERVALS,
    SCHEDULE_CONDITIONS,
    SUBSCRIPTION_UPDATE_FIELDS,
    TRIAL_UPDATE_BEHAVIORS,
    UPDATE_PRORATIONS,
)

# Keys in the properties that are not part of the configuration: CloudFormation's
# own, and the Stripe account and mode, there so that changing them re-runs the
# resource (a different account needs a new configuration).
_NOT_CONFIGURATION = frozenset({"ServiceToken", "ServiceTimeout", "StripeSecretName", "StripeMode"})
MAX_PRODUCTS = 10
HEADLINE_MAX = 60


class ConfigurationInvalid(ValueError):
    """The declared configuration breaks a rule; the message names the field and the rule."""


def _blank_is_none(value: object) -> object:
    # CloudFormation parameters cannot be null: an empty string means "not set".
    return None if value == "" else value


def _as_list(value: object) -> object:
    # A comma-separated string (a String parameter) or a list, minus empty
    # entries (a CommaDelimitedList parameter left empty is [""]).
    if value is None or value == "":
        return []
    if isinstance(value, str):
        value = value.split(",")
    if isinstance(value, list | tuple):
        return [item.strip() if isinstance(item, str) else item for item in value if item != ""]
    return value


def _unique(values: list[Any]) -> list[Any]:
    return list(dict.fromkeys(values))


def _url(value: str | None) -> str | None:
    if value is not None and not value.startswith(("https://", "http://")):
        raise ValueError("must be an http:// or https:// URL")
    return value


Headline = Annotated[
    Annotated[str, Field(max_length=HEADLINE_MAX)] | None, BeforeValidator(_blank_is_none)
]
ConfigurationName = Annotated[
    Annotated[str, Field(max_length=256)] | None, BeforeValidator(_blank_is_none)
]
OptionalUrl = Annotated[str | None, BeforeValidator(_blank_is_none), AfterValidator(_url)]
LookupKey = Annotated[str, Field(min_length=1, max_length=200)]


# Stripe's own values, from stripe-python's types (billing.stripe_api.enums): a pin that
# moves stripe-python moves them. Type checkers see plain strings.
if TYPE_CHECKING:
    CustomerField = str
    CancellationReasonOption = str
    SubscriptionUpdateField = str
    PauseInterval = str
    ScheduleCondition = str
    CancelMode = str
    CancelProration = str
    UpdateProration = str
    BillingCycleAnchor = str
    TrialUpdateBehavior = str
else:
    CustomerField = Literal[CUSTOMER_UPDATE_FIELDS]
    CancellationReasonOption = Literal[CANCELLATION_REASONS]
    SubscriptionUpdateField = Literal[SUBSCRIPTION_UPDATE_FIELDS]
    PauseInterval = Literal[PAUSE_INTERVALS]
    ScheduleCondition = Literal[SCHEDULE_CONDITIONS]
    CancelMode = Literal[CANCEL_MODES]
    CancelProration = Literal[CANCEL_PRORATIONS]
    UpdateProration = Literal[UPDATE_PRORATIONS]
    BillingCycleAnchor = Literal[BILLING_CYCLE_ANCHORS]
    TrialUpdateBehavior = Literal[TRIAL_UPDATE_BEHAVIORS]

_ListInput = BeforeValidator(_as_list)
_NoDuplicates = AfterValidator(_unique)
CustomerFields = Annotated[list[CustomerField], _ListInput, _NoDuplicates]
CancellationReasonOptions = Annotated[list[CancellationReasonOption], _ListInput, _NoDuplicates]
SubscriptionUpdateFields = Annotated[list[SubscriptionUpdateField], _ListInput, _NoDuplicates]
ScheduleConditions = Annotated[list[ScheduleCondition], _ListInput, _NoDuplicates]
LookupKeys = Annotated[list[LookupKey], _ListInput, _NoDuplicates]


class _Spec(BaseModel):
    model_config = ConfigDict(alias_generator=to_pascal, extra="forbid", frozen=True)


class BusinessProfile(_Spec):
    headline: Headline = None
    privacy_policy_url: OptionalUrl = None
    terms_of_service_url: OptionalUrl = None


class Toggle(_Spec):
    enabled: bool = False


class CustomerUpdate(_Spec):
    enabled: bool = False
    allowed_updates: CustomerFields = []

    @model_validator(mode="after")
    def _fields_when_enabled(self) -> CustomerUpdate:
        if self.enabled and not self.allowed_updates:
            raise ValueError("AllowedUpdates must name at least one field when Enabled is true")
        return self


class CancellationReason(_Spec):
    enabled: bool = False
    options: CancellationReasonOptions = []

    @model_validator(mode="after")
    def _options_when_enabled(self) -> CancellationReason:
        if self.enabled and not self.options:
            raise ValueError("Options must list at least one reason when Enabled is true")
        return self


class SubscriptionCancel(_Spec):
    enabled: bool = False
    mode: CancelMode = "at_period_end"
    proration_behavior: CancelProration = "none"
    cancellation_reason: CancellationReason = CancellationReason()

    @model_validator(mode="after")
    def _prorations_only_when_immediate(self) -> SubscriptionCancel:
        if self.proration_behavior != "none" and self.mode != "immediately":
            raise ValueError(
                f"ProrationBehavior {self.proration_behavior} needs Mode immediately "
                "(Stripe prorates only immediate cancellations)"
            )
        return self


class AdjustableQuantity(_Spec):
    enabled: bool = False
    minimum: int = Field(default=1, ge=0, le=99)
    maximum: int | None = Field(default=None, ge=1, le=99)

    @model_validator(mode="after")
    def _minimum_below_maximum(self) -> AdjustableQuantity:
        if self.maximum is not None and self.minimum > self.maximum:
            raise ValueError("Minimum must not exceed Maximum")
        return self


class ProductOffer(_Spec):
    """One product's prices, by lookup key; keys of several products are split by product."""

    prices: LookupKeys = []
    adjustable_quantity: AdjustableQuantity = AdjustableQuantity()


class SubscriptionUpdate(_Spec):
    enabled: bool = False
    default_allowed_updates: SubscriptionUpdateFields = ["price"]
    proration_behavior: UpdateProration = "create_prorations"
    products: list[ProductOffer] = Field(default=[], max_length=MAX_PRODUCTS)
    billing_cycle_anchor: BillingCycleAnchor = "unchanged"
    schedule_at_period_end: ScheduleConditions = []
    trial_update_behavior: TrialUpdateBehavior = "end_trial"

    @model_validator(mode="after")
    def _offers_when_enabled(self) -> SubscriptionUpdate:
        if self.enabled and not self.lookup_keys():
            raise ValueError("Products must name at least one price lookup key when Enabled")
        if self.enabled and not self.default_allowed_updates:
            raise ValueError("DefaultAllowedUpdates must not be empty when Enabled is true")
        return self

    def lookup_keys(self) -> list[str]:
        return _unique([key for offer in self.products for key in offer.prices])


class PauseOption(_Spec):
    interval: PauseInterval
    interval_count: int = Field(default=1, ge=1, le=36)


def _pause_durations(value: object) -> object:
    """``"1 month,3 month"`` (a template parameter) as options; ``"indefinite"`` as
    ``Indefinite``: ``{"Interval": ..., "IntervalCount": ...}`` entries pass through."""
    listed = _as_list(value)
    if not isinstance(listed, list):
        return listed
    options: list[object] = []
    for entry in listed:
        if isinstance(entry, str):
            count, _, interval = entry.strip().partition(" ")
            if entry.strip() == "indefinite":
                options.append(INDEFINITE)
                continue
            if not interval:
                count, interval = "1", count
            options.append({"Interval": interval.strip().removesuffix("s"), "IntervalCount": count})
        else:
            options.append(entry)
    return options


INDEFINITE = "indefinite"


class SubscriptionPause(_Spec):
    """Customers pause their subscription from the portal (Stripe's redesigned portal).

    Stripe pauses only subscriptions in flexible billing mode (``billing_mode: flexible``,
    API 2026-09-30.endive and later); the portal offers the flow to no other. Durations:
    preset options (``"1 month"``, ``"3 month"``, ...), or ``"indefinite"``.
    """

    enabled: bool = False
    durations: Annotated[
        list[PauseOption | Literal["indefinite"]], BeforeValidator(_pause_durations)
    ] = Field(default=[], max_length=10)

    @model_validator(mode="after")
    def _one_kind_of_duration(self) -> SubscriptionPause:
        if INDEFINITE in self.durations and len(self.durations) > 1:
            raise ValueError("Durations: indefinite excludes preset durations")
        if self.enabled and not self.durations:
            raise ValueError("Durations must name at least one duration when Enabled is true")
        return self

    @property
    def indefinite(self) -> bool:
        return INDEFINITE in self.durations

    def options(self) -> list[PauseOption]:
        return [option for option in self.durations if isinstance(option, PauseOption)]


class Features(_Spec):
    customer_update: CustomerUpdate = CustomerUpdate()
    invoice_history: Toggle = Toggle()
    payment_method_update: Toggle = Toggle()
    subscription_cancel: SubscriptionCancel = SubscriptionCancel()
    subscription_update: SubscriptionUpdate = SubscriptionUpdate()
    subscription_pause: SubscriptionPause = SubscriptionPause()

    @model_validator(mode="after")
    def _plan_changes_need_card_updates(self) -> Features:
        if self.subscription_update.enabled and not self.payment_method_update.enabled:
            raise ValueError(
                "SubscriptionUpdate.Enabled needs PaymentMethodUpdate.Enabled "
                "(Stripe refuses plan changes when customers cannot update their card)"
            )
        return self


class PortalConfigurationSpec(_Spec):
    """The properties of ``Custom::PortalConfiguration``."""

    name: ConfigurationName = None
    business_profile: BusinessProfile = BusinessProfile()
    default_return_url: OptionalUrl = None
    login_page: Toggle = Toggle()
    metadata: dict[Annotated[str, Field(max_length=40)], Annotated[str, Field(max_length=500)]] = (
        Field(default={}, max_length=50)
    )
    features: Features = Features()

    def offered_flows(self) -> tuple[str, ...]:
        """The ``POST /portal-sessions`` flows this configuration lets customers finish."""
        features = self.features
        offered = {
            "customer_update": features.customer_update.enabled,
            "payment_method_update": features.payment_method_update.enabled,
            "subscription_cancel": features.subscription_cancel.enabled,
            "subscription_pause": features.subscription_pause.enabled,
            "subscription_update": features.subscription_update.enabled,
        }
        return tuple(flow for flow, enabled in offered.items() if enabled)


def parse_portal_configuration(properties: Mapping[str, Any]) -> PortalConfigurationSpec:
    """The validated spec, or :class:`ConfigurationInvalid` naming each broken field and rule."""
    declared = {k: v for k, v in properties.items() if k not in _NOT_CONFIGURATION}
    try:
        return PortalConfigurationSpec.model_validate(declared)
    except ValidationError as error:
        raise ConfigurationInvalid(describe_errors(error)) from None


def describe_errors(error: ValidationError) -> str:
    """``Field.Path: rule`` for each error, joined; what a deploy failure shows."""
    problems = []
    for detail in error.errors(include_url=False, include_input=False):
        path = ".".join(str(part) for part in detail["loc"])
        message = str(detail["msg"]).removeprefix("Value error, ")
        if detail["type"] == "extra_forbidden":
            message = "is not a known property"
        problems.append(f"{path}: {message}" if path else message)
    return "Invalid portal configuration: " + "; ".join(problems)


# --- resolved prices ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PriceFound:
    """What a ``prices.list(lookup_keys=...)`` result says about one lookup key."""

    lookup_key: str
    price_id: str
    product_id: str
    active: bool
    recurring: bool


def resolve_lookup_keys(
    spec: PortalConfigurationSpec, found: Iterable[PriceFound]
) -> dict[str, PriceFound]:
    """The price behind each lookup key the spec names; unknown or unusable keys fail."""
    wanted = spec.features.subscription_update.lookup_keys()
    by_key = {price.lookup_key: price for price in found if price.lookup_key in wanted}
    field = "Features.SubscriptionUpdate.Products"
    problems = []
    if missing := [key for key in wanted if key not in by_key]:
        problems.append(f"no price has lookup key {', '.join(missing)}")
    if inactive := [key for key in wanted if key in by_key and not by_key[key].active]:
        problems.append(f"the price with lookup key {', '.join(inactive)} is inactive")
    if one_off := [key for key in wanted if key in by_key and not by_key[key].recurring]:
        problems.append(f"the price with lookup key {', '.join(one_off)} is not recurring")
    if problems:
        raise ConfigurationInvalid(f"Invalid portal configuration: {field}: {'; '.join(problems)}")
    return by_key


# --- Stripe parameters -------------------------------------------------------------------------


def stripe_params(
    spec: PortalConfigurationSpec,
    prices: Mapping[str, PriceFound],
    *,
    previous_metadata_keys: Iterable[str] = (),
) -> dict[str, Any]:
    """The create/update parameters stating ``spec`` in full.

    ``previous_metadata_keys``: keys the previous properties set; those no longer
    declared are unset (Stripe merges metadata otherwise).
    """
    profile = spec.business_profile
    features = spec.features
    metadata: dict[str, str] = dict.fromkeys(previous_metadata_keys, "")
    metadata.update(spec.metadata)
    business_profile: dict[str, str] = {"headline": profile.headline or ""}
    for name in ("privacy_policy_url", "terms_of_service_url"):
        if (url := getattr(profile, name)) is not None:
            business_profile[name] = url
    params: dict[str, Any] = {
        "name": spec.name or "",
        "business_profile": business_profile,
        "default_return_url": spec.default_return_url or "",
        "login_page": {"enabled": spec.login_page.enabled},
        "features": {
            "customer_update": {
                "enabled": features.customer_update.enabled,
                "allowed_updates": list(features.customer_update.allowed_updates) or "",
            },
            "invoice_history": {"enabled": features.invoice_history.enabled},
            "payment_method_update": {"enabled": features.payment_method_update.enabled},
            "subscription_cancel": _cancel_params(features.subscription_cancel),
            "subscription_update": _update_params(features.subscription_update, prices),
            "subscription_pause": _pause_params(features.subscription_pause),
        },
    }
    if metadata:
        params["metadata"] = metadata
    return params


def _pause_params(pause: SubscriptionPause) -> dict[str, Any]:
    params: dict[str, Any] = {"enabled": pause.enabled}
    if pause.indefinite:
        params["duration"] = {"type": "indefinite"}
    elif options := pause.options():
        params["duration"] = {
            "type": "interval_options",
            "interval_options": [
                {"interval": option.interval, "interval_count": option.interval_count}
                for option in options
            ],
        }
    return params


def _cancel_params(cancel: SubscriptionCancel) -> dict[str, Any]:
    reason = cancel.cancellation_reason
    return {
        "enabled": cancel.enabled,
        "mode": cancel.mode,
        "proration_behavior": cancel.proration_behavior,
        "cancellation_reason": {"enabled": reason.enabled, "options": list(reason.options) or ""},
    }


def _update_params(update: SubscriptionUpdate, prices: Mapping[str, PriceFound]) -> dict[str, Any]:
    params: dict[str, Any] = {
        "enabled": update.enabled,
        "default_allowed_updates": list(update.default_allowed_updates) or "",
        "proration_behavior": update.proration_behavior,
        "billing_cycle_anchor": update.billing_cycle_anchor,
        "trial_update_behavior": update.trial_update_behavior,
        "schedule_at_period_end": {
            "conditions": [{"type": condition} for condition in update.schedule_at_period_end]
        },
    }
    if update.enabled:
        params["products"] = portal_products(update, prices)
    return params


def portal_products(
    update: SubscriptionUpdate, prices: Mapping[str, PriceFound]
) -> list[dict[str, Any]]:
    """Stripe's ``products`` list: the offers' prices grouped by the product they belong to."""
    grouped: dict[str, dict[str, Any]] = {}
    for offer in update.products:
        for key in offer.prices:
            price = prices[key]
            entry = grouped.setdefault(
                price.product_id,
                {
                    "product": price.product_id,
                    "prices": [],
                    "adjustable_quantity": _quantity_params(offer.adjustable_quantity),
                },
            )
            if price.price_id not in entry["prices"]:
                entry["prices"].append(price.price_id)
    if len(grouped) > MAX_PRODUCTS:
        raise ConfigurationInvalid(
            "Invalid portal configuration: Features.SubscriptionUpdate.Products: the lookup "
            f"keys belong to {len(grouped)} products; Stripe allows at most {MAX_PRODUCTS}"
        )
    return list(grouped.values())


def _quantity_params(quantity: AdjustableQuantity) -> dict[str, Any]:
    params: dict[str, Any] = {"enabled": quantity.enabled}
    if quantity.enabled:
        params["minimum"] = quantity.minimum
        if quantity.maximum is not None:
            params["maximum"] = quantity.maximum
    return params
