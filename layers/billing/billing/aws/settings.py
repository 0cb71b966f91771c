"""Deployment settings, parsed once from the environment at cold start.

Every function but the snapshot's reads these models (``billing.read.settings``
explains why that one does not); a missing or malformed variable fails the
first invocation with a message naming it, instead of a ``KeyError`` deep inside
a request. Variable names are the field aliases below; ``template.yaml`` sets them.
"""

from __future__ import annotations

from functools import cache, cached_property
from typing import Annotated, Literal

from pydantic import AliasChoices, Field, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from billing.core.errors import ReturnUrlNotAllowed
from billing.portal.return_urls import ReturnUrlPolicy


class TableSettings(BaseSettings):
    """What every function needs: the table, and how users are named on Stripe customers."""

    model_config = SettingsConfigDict(frozen=True, extra="ignore", populate_by_name=True)

    table_name: str = Field(validation_alias="TABLE_NAME", min_length=1)
    # Customer metadata key holding the user id (the JWT ``sub``): the session
    # function writes it, the webhook projection reads it to link a customer.
    customer_user_metadata_key: str = Field(
        default="user_id",
        min_length=1,
        max_length=40,
        validation_alias="CUSTOMER_USER_METADATA_KEY",
    )


class StripeSettings(TableSettings):
    """Functions that call Stripe: where the key is, and how patient to be."""

    stripe_secret_name: str = Field(validation_alias="STRIPE_SECRET_NAME", min_length=1)
    # Points the Stripe client at the local stand-in; unset in AWS.
    stripe_api_base: str | None = Field(default=None, validation_alias="STRIPE_API_BASE")
    # A Stripe that hangs must cost less than the functions' 10 s Timeout, so the
    # caller gets 503 + Retry-After rather than API Gateway's bare 500: (retries
    # + 1) attempts of at most one timeout each, plus at most 1.5 s of backoff.
    stripe_max_network_retries: int = Field(
        default=2, ge=0, le=5, validation_alias="STRIPE_MAX_NETWORK_RETRIES"
    )
    stripe_connect_timeout_seconds: float = Field(
        default=2.0, gt=0, validation_alias="STRIPE_CONNECT_TIMEOUT_SECONDS"
    )
    stripe_read_timeout_seconds: float = Field(
        default=2.0, gt=0, validation_alias="STRIPE_READ_TIMEOUT_SECONDS"
    )
    # Secrets Manager values are cached this long per warm container, so a
    # rotated key is picked up within this many seconds without a redeploy.
    secret_cache_seconds: int = Field(default=300, ge=0, validation_alias="SECRET_CACHE_SECONDS")

    @field_validator("stripe_api_base", mode="before")
    @classmethod
    def _empty_base_is_unset(cls, value: object) -> object:
        return None if value == "" else value


class Settings(StripeSettings):
    """The portal-session function's settings."""

    # Empty means: use the account's default portal configuration.
    portal_configuration_id: str | None = Field(
        default=None, validation_alias="PORTAL_CONFIGURATION_ID"
    )
    allowed_return_urls: Annotated[tuple[str, ...], NoDecode] = Field(
        validation_alias=AliasChoices("ALLOWED_RETURN_URLS", "ALLOWED_ORIGINS"), min_length=1
    )
    default_return_url: str = Field(validation_alias="DEFAULT_RETURN_URL")
    # A coupon offered in the cancel flow before the customer confirms (none when empty).
    cancel_retention_coupon: str | None = Field(
        default=None, validation_alias="CANCEL_RETENTION_COUPON"
    )
    # An expired portal link lets the customer sign in again instead of failing.
    portal_session_recovery: bool = Field(default=False, validation_alias="PORTAL_SESSION_RECOVERY")
    # The plans (price lookup keys) Checkout sells, and what a first subscription gets.
    plan_lookup_keys: Annotated[tuple[str, ...], NoDecode] = Field(
        default=(), validation_alias="PLAN_LOOKUP_KEYS"
    )
    checkout_trial_days: int = Field(
        default=0, ge=0, le=730, validation_alias="CHECKOUT_TRIAL_DAYS"
    )
    # Without: a trial starts without a card (payment_method_collection if_required).
    checkout_trial_requires_card: bool = Field(
        default=True, validation_alias="CHECKOUT_TRIAL_REQUIRES_CARD"
    )
    checkout_promotion_codes: bool = Field(
        default=False, validation_alias="CHECKOUT_PROMOTION_CODES"
    )
    checkout_automatic_tax: bool = Field(default=False, validation_alias="CHECKOUT_AUTOMATIC_TAX")
    checkout_tax_id_collection: bool = Field(
        default=False, validation_alias="CHECKOUT_TAX_ID_COLLECTION"
    )
    checkout_billing_address: Literal["auto", "required"] = Field(
        default="auto", validation_alias="CHECKOUT_BILLING_ADDRESS"
    )

    @field_validator("allowed_return_urls", "plan_lookup_keys", mode="before")
    @classmethod
    def _split_list(cls, value: object) -> object:
        if isinstance(value, str):
            return tuple(part.strip() for part in value.split(",") if part.strip())
        return value

    @field_validator("portal_configuration_id", "cancel_retention_coupon", mode="before")
    @classmethod
    def _empty_is_unset(cls, value: object) -> object:
        return None if value == "" else value

    @model_validator(mode="after")
    def _default_return_url_is_allowed(self) -> Settings:
        # Fails at cold start rather than on the first request without a return_url.
        try:
            self.return_url_policy.check(self.default_return_url)
        except ReturnUrlNotAllowed as error:
            raise ValueError(f"DEFAULT_RETURN_URL: {error.message}") from None
        return self

    @cached_property
    def return_url_policy(self) -> ReturnUrlPolicy:
        return ReturnUrlPolicy.from_allowed(self.allowed_return_urls)


class ProjectionSettings(StripeSettings):
    """Functions that write the webhook projection: the webhook and the backfill."""

    # Events of the other mode (test events on a live deployment) are ignored.
    stripe_livemode: bool = Field(default=False, validation_alias="STRIPE_LIVEMODE")
    # Stripe retries for 3 days; the dedupe record must outlive that.
    event_retention_days: int = Field(
        default=7, ge=4, le=365, validation_alias="EVENT_RETENTION_DAYS"
    )
    # The SQS queue of the catalog fan-out (billing.projection.catalog_fanout); unset (local runs
    # without a queue): a catalog change is copied to its subscribers in the caller.
    catalog_fanout_queue_url: str | None = Field(
        default=None, validation_alias="CATALOG_FANOUT_QUEUE_URL"
    )

    @field_validator("catalog_fanout_queue_url", mode="before")
    @classmethod
    def _empty_queue_is_unset(cls, value: object) -> object:
        return None if value == "" else value


class WebhookSettings(ProjectionSettings):
    """The webhook function's settings."""

    # Secrets Manager secret holding the endpoint's signing secret(s): one
    # ``whsec_...`` value, or several separated by commas or whitespace while a
    # secret is being rolled.
    webhook_secret_name: str = Field(validation_alias="WEBHOOK_SECRET_NAME", min_length=1)
    webhook_tolerance_seconds: int = Field(
        default=300, ge=1, le=3600, validation_alias="WEBHOOK_TOLERANCE_SECONDS"
    )


class FanoutSettings(TableSettings):
    """The catalog fan-out function's settings: it calls no Stripe."""

    # Where it hands on what is left when its invocation runs short of time.
    catalog_fanout_queue_url: str = Field(validation_alias="CATALOG_FANOUT_QUEUE_URL", min_length=1)


class ProvisioningSettings(StripeSettings):
    """The deploy-time custom resources' settings."""

    # CloudFormation is answered FAILED this long before the Lambda deadline,
    # leaving time for the answer's PUT and its retries.
    answer_margin_seconds: float = Field(
        default=5.0, gt=0, le=60, validation_alias="ANSWER_MARGIN_SECONDS"
    )


@cache
def get_settings() -> Settings:
    """The portal-session settings of this container, read on first use."""
    return Settings()


@cache
def get_webhook_settings() -> WebhookSettings:
    return WebhookSettings()


@cache
def get_backfill_settings() -> ProjectionSettings:
    """The backfill writes like the webhook but needs no signing secret."""
    return ProjectionSettings()


@cache
def get_fanout_settings() -> FanoutSettings:
    return FanoutSettings()


@cache
def get_provisioning_settings() -> ProvisioningSettings:
    return ProvisioningSettings()
