"""The snapshot functions' settings: the same contract as the pydantic ones, stdlib-parsed."""

from __future__ import annotations

import pytest

from billing.core.access import AccessPolicy
from billing.read.settings import DEFAULT_PORTAL_FLOWS, InvalidSettings, SnapshotSettings


def test_defaults_need_only_the_table() -> None:
    settings = SnapshotSettings.from_environment({"TABLE_NAME": "billing"})
    assert settings == SnapshotSettings(table_name="billing")
    assert settings.portal_flows == DEFAULT_PORTAL_FLOWS
    assert (settings.invoice_page_size, settings.card_expiry_warning_days) == (10, 30)


def test_reads_every_variable() -> None:
    settings = SnapshotSettings.from_environment(
        {
            "TABLE_NAME": "billing",
            "PORTAL_FLOWS": " payment_method_update , subscription_cancel,",
            "INVOICE_PAGE_SIZE": "2",
            "CARD_EXPIRY_WARNING_DAYS": "0",
            "ACCESS_PAST_DUE_GRACE_DAYS": "14",
            "ACCESS_INCOMPLETE_GRANTS": "true",
            "ACCESS_PAUSED_GRANTS": "TRUE",
            "ACCESS_UNTIL_PERIOD_END": "false",
        }
    )
    assert settings.portal_flows == ("payment_method_update", "subscription_cancel")
    assert settings.invoice_page_size == 2
    assert settings.card_expiry_warning_days == 0
    assert settings.access_policy == AccessPolicy(
        past_due_grace_days=14,
        incomplete_grants_access=True,
        paused_grants_access=True,
        access_until_period_end=False,
    )


def test_an_empty_flow_list_offers_no_flow() -> None:
    # The portal configuration may offer none; unset is different (the defaults).
    environ = {"TABLE_NAME": "billing", "PORTAL_FLOWS": ""}
    assert SnapshotSettings.from_environment(environ).portal_flows == ()


@pytest.mark.parametrize(
    ("environ", "named"),
    [
        ({}, "TABLE_NAME"),
        ({"TABLE_NAME": ""}, "TABLE_NAME"),
        ({"TABLE_NAME": "t", "INVOICE_PAGE_SIZE": "0"}, "INVOICE_PAGE_SIZE"),
        ({"TABLE_NAME": "t", "INVOICE_PAGE_SIZE": "51"}, "INVOICE_PAGE_SIZE"),
        ({"TABLE_NAME": "t", "INVOICE_PAGE_SIZE": "ten"}, "INVOICE_PAGE_SIZE"),
        ({"TABLE_NAME": "t", "INVOICE_PAGE_SIZE": "²"}, "INVOICE_PAGE_SIZE"),
        ({"TABLE_NAME": "t", "CARD_EXPIRY_WARNING_DAYS": "-1"}, "CARD_EXPIRY_WARNING_DAYS"),
        ({"TABLE_NAME": "t", "CARD_EXPIRY_WARNING_DAYS": "366"}, "CARD_EXPIRY_WARNING_DAYS"),
        ({"TABLE_NAME": "t", "ACCESS_PAST_DUE_GRACE_DAYS": "61"}, "ACCESS_PAST_DUE_GRACE_DAYS"),
        ({"TABLE_NAME": "t", "ACCESS_PAUSED_GRANTS": "yes"}, "ACCESS_PAUSED_GRANTS"),
    ],
)
def test_a_missing_or_malformed_variable_is_named(environ: dict[str, str], named: str) -> None:
    with pytest.raises(InvalidSettings, match=named):
        SnapshotSettings.from_environment(environ)
