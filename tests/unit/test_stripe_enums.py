"""Stripe's enumerations come from stripe-python's types; the read path's copies match."""

from __future__ import annotations

from stripe.params import billing_portal as portal

from billing.core.domain import AfterCompletion, FlowKind
from billing.stripe_api.enums import (
    AFTER_COMPLETION_TYPES,
    CUSTOMER_UPDATE_FIELDS,
    FLOW_TYPES,
    PORTAL_LOCALES,
    stripe_values,
)


def test_the_read_paths_flow_kinds_are_exactly_stripes_flow_types() -> None:
    # The snapshot function cannot import stripe, so it keeps its own enum: held here.
    assert {kind.value for kind in FlowKind} == set(FLOW_TYPES)
    assert {choice.value for choice in AfterCompletion} == set(AFTER_COMPLETION_TYPES)


def test_values_are_the_literal_members_without_the_clearing_empty_string() -> None:
    assert "" not in CUSTOMER_UPDATE_FIELDS
    assert set(CUSTOMER_UPDATE_FIELDS) == {
        "address",
        "email",
        "name",
        "phone",
        "shipping",
        "tax_id",
    }
    assert {"auto", "en", "pt-BR", "zh-TW"} <= set(PORTAL_LOCALES)
    assert stripe_values(portal.SessionCreateParamsAfterExpiration, "type") == ("customer_login",)
