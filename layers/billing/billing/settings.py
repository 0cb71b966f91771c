"""Deployment settings, parsed once from the environment at cold start.

Every function reads the same model; a missing or malformed variable fails the
first invocation with a message naming it, instead of a ``KeyError`` deep inside
a request. Variable names are the field aliases below; ``template.yaml`` sets them.
"""

from __future__ import annotations

from functools import cache, cached_property
from typing import Annotated

from pydantic import AliasChoices, Field, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from billing.errors import ReturnUrlNotAllowed
from billing.return_urls import ReturnUrlPolicy


class Settings(BaseSettings):
    """What a function needs to know about its deployment."""

    model_config = SettingsConfigDict(frozen=True, extra="ignore", populate_by_name=True)

    table_name: str = Field(validation_alias="TABLE_NAME", min_length=1)
    stripe_secret_name: str = Field(validation_alias="STRIPE_SECRET_NAME", min_length=1)
    # Points the Stripe client at the local stand-in; unset in AWS.
    stripe_api_base: str | None = Field(default=None, validation_alias="STRIPE_API_BASE")
    stripe_max_network_retries: int = Field(
        default=2, ge=0, le=5, validation_alias="STRIPE_MAX_NETWORK_RETRIES"
    )
    stripe_connect_timeout_seconds: float = Field(
        default=3.0, gt=0, validation_alias="STRIPE_CONNECT_TIMEOUT_SECONDS"
    )
    stripe_read_timeout_seconds: float = Field(
        default=8.0, gt=0, validation_alias="STRIPE_READ_TIMEOUT_SECONDS"
    )
    # Secrets Manager values are cached this long per warm container, so a
    # rotated key is picked up within this many seconds without a redeploy.
    secret_cache_seconds: int = Field(default=300, ge=0, validation_alias="SECRET_CACHE_SECONDS")
    # Empty means: use the account's default portal configuration.
    portal_configuration_id: str | None = Field(
        default=None, validation_alias="PORTAL_CONFIGURATION_ID"
    )
    allowed_return_urls: Annotated[tuple[str, ...], NoDecode] = Field(
        validation_alias=AliasChoices("ALLOWED_RETURN_URLS", "ALLOWED_ORIGINS"), min_length=1
    )
    default_return_url: str = Field(validation_alias="DEFAULT_RETURN_URL")
    customer_user_metadata_key: str = Field(
        default="user_id",
        min_length=1,
        max_length=40,
        validation_alias="CUSTOMER_USER_METADATA_KEY",
    )

    @field_validator("allowed_return_urls", mode="before")
    @classmethod
    def _split_list(cls, value: object) -> object:
        if isinstance(value, str):
            return tuple(part.strip() for part in value.split(",") if part.strip())
        return value

    @field_validator("portal_configuration_id", "stripe_api_base", mode="before")
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


@cache
def get_settings() -> Settings:
    """The settings of this container, read from the environment on first use."""
    return Settings()
