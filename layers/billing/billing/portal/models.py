"""API bodies of the portal-session function, validated by pydantic.

They feed the OpenAPI document the resolvers generate. The domain's value types
are in ``billing.core.domain``; error bodies in ``billing.api.http``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal, Self

from pydantic import BaseModel, ConfigDict, Field, model_validator

from billing.core.domain import AfterCompletion, FlowKind
from billing.stripe_api.enums import CHECKOUT_LOCALES, PORTAL_LOCALES

# The locales Stripe's billing portal and Checkout accept, from stripe-python's own types.
if TYPE_CHECKING:
    PortalLocale = str
    CheckoutLocale = str
else:
    PortalLocale = Literal[PORTAL_LOCALES]
    CheckoutLocale = Literal[CHECKOUT_LOCALES]


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
    promotion_code: str | None = Field(
        default=None,
        pattern=r"^[A-Za-z0-9_-]{1,200}$",
        description="A promotion code the customer entered (e.g. SPRING25), applied to the plan "
        "change; only with subscription_update_confirm.",
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
        if self.promotion_code is not None and not confirm:
            raise ValueError("promotion_code is only accepted with subscription_update_confirm")
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


class CheckoutSessionRequest(BaseModel):
    """Body of ``POST /checkout-sessions``: the first subscription of the signed-in user."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    plan: str = Field(
        pattern=LOOKUP_KEY_PATTERN,
        description="The price lookup key to subscribe to; one of the deployment's plans "
        "(GET /plans lists them).",
    )
    quantity: int = Field(default=1, ge=1, le=10_000, description="How many seats.")
    return_url: str | None = Field(
        default=None,
        max_length=2048,
        description="The page to come back to: Checkout returns with checkout=success or "
        "checkout=cancel added to its query. Must be under an allowed origin; defaults to "
        "the deployment's default.",
    )
    locale: CheckoutLocale | None = Field(default=None, description="Checkout's language.")
    ui_mode: Literal["hosted", "embedded"] = Field(
        default="hosted",
        description="hosted: a Stripe page to redirect to (answers url); embedded: Checkout "
        "mounted in your page with Stripe.js (answers client_secret).",
    )


class CheckoutSessionResponse(BaseModel):
    url: str | None = Field(
        default=None, description="With ui_mode hosted: redirect the browser to it now."
    )
    client_secret: str | None = Field(
        default=None,
        description="With ui_mode embedded: pass to Stripe.js initEmbeddedCheckout().",
    )
