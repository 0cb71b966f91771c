"""Settings are read once from the environment, with clear errors."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from billing.aws.settings import Settings

BASE = {
    "TABLE_NAME": "billing",
    "STRIPE_SECRET_NAME": "billing-portal/stripe-secret-key",
    "ALLOWED_ORIGINS": "https://app.example.com, http://localhost:5173",
    "DEFAULT_RETURN_URL": "https://app.example.com/account",
}


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for name in ("TABLE_NAME", "STRIPE_SECRET_NAME", "ALLOWED_ORIGINS", "ALLOWED_RETURN_URLS",
                 "DEFAULT_RETURN_URL", "PORTAL_CONFIGURATION_ID", "STRIPE_API_BASE"):  # fmt: skip
        monkeypatch.delenv(name, raising=False)
    for name, value in BASE.items():
        monkeypatch.setenv(name, value)
    return monkeypatch


def test_reads_the_environment_with_defaults(env: pytest.MonkeyPatch) -> None:
    settings = Settings()
    assert settings.table_name == "billing"
    assert settings.allowed_return_urls == ("https://app.example.com", "http://localhost:5173")
    assert settings.portal_configuration_id is None
    assert settings.stripe_api_base is None
    assert settings.stripe_max_network_retries == 2
    assert settings.customer_user_metadata_key == "user_id"


def test_empty_optional_values_mean_unset(env: pytest.MonkeyPatch) -> None:
    env.setenv("PORTAL_CONFIGURATION_ID", "")
    env.setenv("STRIPE_API_BASE", "")
    settings = Settings()
    assert settings.portal_configuration_id is None
    assert settings.stripe_api_base is None


def test_return_urls_override_origins(env: pytest.MonkeyPatch) -> None:
    env.setenv("ALLOWED_RETURN_URLS", "https://app.example.com/billing")
    env.setenv("DEFAULT_RETURN_URL", "https://app.example.com/billing/done")
    settings = Settings()
    assert settings.allowed_return_urls == ("https://app.example.com/billing",)
    assert settings.default_return_url == "https://app.example.com/billing/done"
    # The origins alone no longer admit other paths.
    env.setenv("DEFAULT_RETURN_URL", "https://app.example.com/account")
    with pytest.raises(ValidationError, match="DEFAULT_RETURN_URL"):
        Settings()


@pytest.mark.parametrize("missing", ["TABLE_NAME", "STRIPE_SECRET_NAME", "DEFAULT_RETURN_URL"])
def test_a_missing_variable_is_named_in_the_error(env: pytest.MonkeyPatch, missing: str) -> None:
    env.delenv(missing)
    with pytest.raises(ValidationError, match=missing):
        Settings()


def test_a_default_return_url_outside_the_allowed_origins_fails_at_startup(
    env: pytest.MonkeyPatch,
) -> None:
    env.setenv("DEFAULT_RETURN_URL", "https://elsewhere.example.org/")
    with pytest.raises(ValidationError, match="return_url is not under an allowed origin"):
        Settings()


def test_a_malformed_allowed_origin_fails_at_startup(env: pytest.MonkeyPatch) -> None:
    env.setenv("ALLOWED_ORIGINS", "app.example.com")
    with pytest.raises(ValidationError, match="only http and https"):
        Settings()
