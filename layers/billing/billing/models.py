"""Domain and API models shared by the functions.

Domain models describe the state the product reads (a user's current
subscription, a catalog price); API models describe request and response
bodies and feed the OpenAPI document the resolvers generate.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Literal, Self

from pydantic import BaseModel, ConfigDict, Field, model_validator


class FlowKind(StrEnum):
    """Portal deep links this API offers (Stripe's ``flow_data.type``)."""

    PAYMENT_METHOD_UPDATE = "payment_method_update"
    SUBSCRIPTION_CANCEL = "subscription_cancel"
    SUBSCRIPTION_UPDATE = "subscription_update"
    SUBSCRIPTION_UPDATE_CONFIRM = "subscription_update_confirm"

    @property
    def needs_subscription(self) -> bool:
        return self is not FlowKind.PAYMENT_METHOD_UPDATE


class AfterCompletion(StrEnum):
    """Where the portal takes the customer once the flow is done."""

    REDIRECT = "redirect"  # back to the session's return_url
    HOSTED_CONFIRMATION = "hosted_confirmation"  # Stripe's confirmation page
    PORTAL_HOMEPAGE = "portal_homepage"  # the portal's home screen


# The statuses in which a customer still has a subscription to manage.
CURRENT_STATUSES = ("active", "trialing", "past_due")

# Locales Stripe's billing portal accepts (stripe-python 16's SessionCreateParams).
PortalLocale = Literal[
    "auto", "bg", "cs", "da", "de", "el", "en", "en-AU", "en-CA", "en-GB", "en-IE", "en-IN",
    "en-NZ", "en-SG", "es", "es-419", "et", "fi", "fil", "fr", "fr-CA", "hr", "hu", "id", "it",
    "ja", "ko", "lt", "lv", "ms", "mt", "nb", "nl", "pl", "pt", "pt-BR", "ro", "ru", "sk", "sl",
    "sv", "th", "tr", "vi", "zh", "zh-HK", "zh-TW",
]  # fmt: skip


class SubscriptionItem(BaseModel):
    model_config = ConfigDict(frozen=True)

    id: str
    price_id: str
    lookup_key: str | None = None
    quantity: int | None = None


class CurrentSubscription(BaseModel):
    """The subscription a user manages through the portal (see ``subscriptions``)."""

    model_config = ConfigDict(frozen=True)

    id: str
    status: str
    created: int
    items: tuple[SubscriptionItem, ...]
    cancel_at_period_end: bool = False
    cancel_at: int | None = None

    @property
    def is_cancelling(self) -> bool:
        """Already set to end: at period end, or at a scheduled date."""
        return self.cancel_at_period_end or self.cancel_at is not None


class CatalogPrice(BaseModel):
    """A recurring price, addressed by its lookup key."""

    model_config = ConfigDict(frozen=True)

    price_id: str
    lookup_key: str
    product_id: str
    active: bool
    currency: str
    unit_amount: int | None = None
    interval: str | None = None
    interval_count: int | None = None


class PlanChange(BaseModel):
    """What a ``subscription_update_confirm`` flow should switch the single item to."""

    model_config = ConfigDict(frozen=True)

    price: CatalogPrice | None = None  # None: keep the current price
    quantity: int | None = None  # None: keep the current quantity


# --- API bodies -----------------------------------------------------------------------------

LOOKUP_KEY_PATTERN = r"^[A-Za-z0-9_.:\-]{1,200}$"


class PortalSessionRequest(BaseModel):
    """Body of ``POST /portal-sessions``; every field is optional."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    flow: FlowKind | None = Field(
        default=None, description="Open the portal directly on one flow instead of its home page."
    )
    plan: str | None = Field(
        default=None,
        pattern=LOOKUP_KEY_PATTERN,
        description="Price lookup key to switch to; only with subscription_update_confirm.",
    )
    quantity: int | None = Field(
        default=None,
        ge=1,
        le=10_000,
        description="New quantity; only with subscription_update_confirm.",
    )
    return_url: str | None = Field(
        default=None,
        max_length=2048,
        description="Where the portal's return link (and a finished flow) goes. "
        "Must be under an allowed origin; defaults to the deployment's default.",
    )
    locale: PortalLocale | None = Field(default=None, description="Portal language.")
    after_completion: AfterCompletion | None = Field(
        default=None,
        description="With a flow: where the customer lands when it is done (default: redirect).",
    )

    @model_validator(mode="after")
    def _flow_arguments_fit_the_flow(self) -> Self:
        confirm = self.flow is FlowKind.SUBSCRIPTION_UPDATE_CONFIRM
        if (self.plan is not None or self.quantity is not None) and not confirm:
            raise ValueError("plan and quantity are only accepted with subscription_update_confirm")
        if confirm and self.plan is None and self.quantity is None:
            raise ValueError("subscription_update_confirm needs a plan, a quantity or both")
        if self.after_completion is not None and self.flow is None:
            raise ValueError("after_completion is only accepted together with a flow")
        return self


class PortalSessionResponse(BaseModel):
    url: str = Field(description="Short-lived Stripe portal URL; redirect the browser to it now.")


class SetupIntentResponse(BaseModel):
    client_secret: str = Field(
        description="Pass to Stripe.js confirmSetup(); it embeds the SetupIntent id by design."
    )


class ErrorDetail(BaseModel):
    code: str
    message: str


class ErrorResponse(BaseModel):
    error: ErrorDetail


class GatewayMessage(BaseModel):
    """API Gateway's own error body, e.g. its JWT authorizer's ``{"message": "Unauthorized"}``."""

    message: str
