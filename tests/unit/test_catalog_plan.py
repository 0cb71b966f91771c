"""The declared catalog: its validation (before any Stripe call) and the writes that make
Stripe hold it, planned from what Stripe holds (pure)."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from billing.provisioning.catalog import (
    Attachment,
    CatalogConflict,
    CatalogInvalid,
    StripeCatalogState,
    StripeFeature,
    StripePrice,
    StripeProduct,
    parse_catalog,
    plan_catalog,
    plan_removal,
)

DECLARED: dict[str, Any] = {
    "ServiceToken": "arn:aws:lambda:...",
    "StripeSecretName": "stripe",
    "Catalog": "acme-prod",
    "Features": [
        {"LookupKey": "exports", "Name": "CSV exports"},
        {"LookupKey": "sso", "Name": "Single sign-on"},
    ],
    "Products": [
        {
            "Key": "basic",
            "Name": "Basic",
            "Features": "exports",
            "Prices": [
                {
                    "LookupKey": "basic_monthly",
                    "Currency": "USD",
                    "UnitAmount": "900",
                    "Interval": "month",
                },
            ],
        },
        {
            "Key": "pro",
            "Name": "Pro",
            "Description": "For teams",
            "Features": ["exports", "sso"],
            "Prices": [
                {
                    "LookupKey": "pro_monthly",
                    "Currency": "usd",
                    "UnitAmount": 2900,
                    "Interval": "month",
                    "TrialDays": "14",
                },
                {
                    "LookupKey": "pro_yearly",
                    "Currency": "usd",
                    "UnitAmount": 29000,
                    "Interval": "year",
                },
            ],
        },
    ],
}
MARK = {"managed_by": "billing-portal", "catalog": "acme-prod"}


def declared(**changes: Any) -> dict[str, Any]:
    properties = copy.deepcopy(DECLARED)
    properties.update(changes)
    return properties


def stripe_holding(spec_properties: dict[str, Any]) -> StripeCatalogState:
    """What Stripe holds after an exact apply of ``spec_properties``."""
    spec = parse_catalog(spec_properties)
    features = [
        StripeFeature(f"feat_{f.lookup_key}", f.lookup_key, f.name, MARK, True)
        for f in spec.features
    ]
    products, prices, attachments = [], [], []
    for product in spec.products:
        products.append(
            StripeProduct(
                f"prod_{product.key}",
                product.name,
                product.description,
                {**product.metadata, **MARK, "catalog_key": product.key},
                product.active,
            )
        )
        for price in product.prices:
            prices.append(
                StripePrice(
                    f"price_{price.lookup_key}",
                    f"prod_{product.key}",
                    price.lookup_key,
                    price.currency,
                    price.unit_amount,
                    price.interval,
                    price.interval_count,
                    price.trial_days or None,
                    price.tax_behavior,
                    price.nickname,
                    MARK,
                    price.active,
                )
            )
        attachments += [
            Attachment(f"prodft_{product.key}_{key}", f"prod_{product.key}", f"feat_{key}")
            for key in product.features
        ]
    return StripeCatalogState(products, prices, features, attachments)


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"Products": []}, "Products: List should have at least 1 item"),
        (
            {"Products": [*DECLARED["Products"], {**DECLARED["Products"][0]}]},
            "Key basic is declared more than once",
        ),
        (
            {"Features": [*DECLARED["Features"], {"LookupKey": "audit", "Name": "Audit log"}]},
            "Features: audit is attached to no product",
        ),
        (
            {"Products": [{**DECLARED["Products"][0], "Features": ["exports", "ai"]}]},
            "Products.0.Features: ai is not a declared feature",
        ),
        (
            {
                "Products": [
                    {
                        **DECLARED["Products"][0],
                        "Prices": [
                            {
                                "LookupKey": "b",
                                "Currency": "dollars",
                                "UnitAmount": 1,
                                "Interval": "month",
                            }
                        ],
                    }
                ]
            },
            "Products.0.Prices.0.Currency",
        ),
        (
            {
                "Products": [
                    {
                        **DECLARED["Products"][0],
                        "Prices": [
                            {
                                "LookupKey": "b",
                                "Currency": "usd",
                                "UnitAmount": -1,
                                "Interval": "month",
                            }
                        ],
                    }
                ]
            },
            "Products.0.Prices.0.UnitAmount: Input should be greater than or equal to 0",
        ),
        (
            {
                "Products": [
                    {
                        **DECLARED["Products"][0],
                        "Prices": [
                            {
                                "LookupKey": "b",
                                "Currency": "usd",
                                "UnitAmount": 1,
                                "Interval": "month",
                                "IntervalCount": 13,
                            }
                        ],
                    }
                ]
            },
            "more than one year",
        ),
        (
            {"Products": [{**DECLARED["Products"][0], "Metadata": {"catalog": "mine"}}]},
            "Metadata keys catalog are the resource's own",
        ),
        (
            {
                "Products": [
                    {
                        "Key": f"p{n}",
                        "Name": f"P{n}",
                        "Prices": [
                            {
                                "LookupKey": f"k{n}",
                                "Currency": "usd",
                                "UnitAmount": 1,
                                "Interval": "month",
                            }
                        ],
                    }
                    for n in range(11)
                ],
                "Features": [],
            },
            "the portal offers at most 10",
        ),
        ({"Colour": "blue"}, "Colour: is not a known property"),
    ],
)
def test_an_invalid_declaration_names_the_field_and_the_rule(
    change: dict[str, Any], reason: str
) -> None:
    with pytest.raises(CatalogInvalid) as refused:
        parse_catalog(declared(**change))
    assert reason in str(refused.value)
    assert str(refused.value).startswith("Invalid catalog: ")


def test_cloudformation_strings_are_read_as_numbers_flags_and_lists() -> None:
    spec = parse_catalog(DECLARED)
    basic, pro = spec.products
    assert basic.features == ["exports"]
    assert basic.prices[0].currency == "usd"
    assert basic.prices[0].unit_amount == 900
    assert pro.prices[0].trial_days == 14
    assert spec.lookup_keys() == ["basic_monthly", "pro_monthly", "pro_yearly"]


def test_an_empty_account_gets_everything_created_in_order() -> None:
    plan = plan_catalog(parse_catalog(DECLARED), StripeCatalogState())

    actions = [w.action for w in plan.writes]
    assert actions == [
        "create_feature",
        "create_feature",
        "create_product",
        "create_product",
        "create_price",
        "create_price",
        "create_price",
        "attach_feature",
        "attach_feature",
        "attach_feature",
    ]
    first_price = plan.writes[4]
    assert first_price.target == "@basic"
    assert first_price.params["metadata"] == MARK
    assert "transfer_lookup_key" not in first_price.params
    assert plan.writes[5].params["recurring"] == {
        "interval": "month",
        "interval_count": 1,
        "trial_period_days": 14,
    }


def test_an_account_that_holds_the_declaration_gets_no_write() -> None:
    plan = plan_catalog(parse_catalog(DECLARED), stripe_holding(DECLARED))
    assert plan.writes == []
    assert plan.feature_changes == []


def test_a_changed_amount_is_a_new_price_taking_the_key_then_the_old_is_archived() -> None:
    now = declared()
    now["Products"][0]["Prices"][0]["UnitAmount"] = 1200
    plan = plan_catalog(parse_catalog(now), stripe_holding(DECLARED))

    create, archive = plan.writes
    assert (create.action, create.target, create.params["unit_amount"]) == (
        "create_price",
        "prod_basic",
        1200,
    )
    assert create.params["transfer_lookup_key"] is True
    assert (archive.action, archive.target, archive.params) == (
        "update_price",
        "price_basic_monthly",
        {"active": False},
    )


def test_what_can_change_in_place_is_updated_in_place() -> None:
    now = declared()
    now["Products"][1]["Name"] = "Pro (2027)"
    now["Products"][1]["Prices"][1]["Nickname"] = "Yearly"
    now["Features"][1]["Name"] = "SAML single sign-on"
    plan = plan_catalog(parse_catalog(now), stripe_holding(DECLARED))

    assert [(w.action, w.target, dict(w.params)) for w in plan.writes] == [
        ("update_feature", "feat_sso", {"name": "SAML single sign-on"}),
        ("update_product", "prod_pro", {"name": "Pro (2027)"}),
        ("update_price", "price_pro_yearly", {"nickname": "Yearly"}),
    ]


def test_a_removed_product_and_its_prices_are_archived_never_deleted() -> None:
    now = declared(Products=[DECLARED["Products"][1]])
    now["Features"] = DECLARED["Features"]
    plan = plan_catalog(parse_catalog(now), stripe_holding(DECLARED))

    assert [(w.action, w.target, dict(w.params)) for w in plan.writes] == [
        ("update_product", "prod_basic", {"active": False}),
        ("update_price", "price_basic_monthly", {"active": False}),
    ]


def test_a_removed_feature_is_detached_then_archived() -> None:
    now = declared(Features=[DECLARED["Features"][0]])
    now["Products"][1]["Features"] = ["exports"]
    plan = plan_catalog(parse_catalog(now), stripe_holding(DECLARED))

    assert [(w.action, w.target, dict(w.params)) for w in plan.writes] == [
        ("detach_feature", "prod_pro", {"attachment": "prodft_pro_sso"}),
        ("update_feature", "feat_sso", {"active": False}),
    ]
    assert plan.feature_changes == ["prod_pro"]


def test_a_lookup_key_held_elsewhere_is_taken_over_only_when_declared() -> None:
    foreign = StripePrice(
        "price_dashboard",
        "prod_dashboard",
        "basic_monthly",
        "usd",
        900,
        "month",
        1,
        None,
        "unspecified",
        "",
        {},
        True,
    )
    state = StripeCatalogState(prices=[foreign])

    with pytest.raises(CatalogConflict, match="set TransferLookupKey: true"):
        plan_catalog(parse_catalog(DECLARED), state)

    now = declared()
    now["Products"][0]["Prices"][0]["TransferLookupKey"] = "true"
    writes = plan_catalog(parse_catalog(now), state).writes
    taking = [w for w in writes if w.subject == "basic_monthly"]
    assert [(w.action, w.params["transfer_lookup_key"]) for w in taking] == [("create_price", True)]
    assert not [w for w in writes if w.target == "price_dashboard"]  # left as it is


def test_a_feature_made_elsewhere_is_never_taken_over() -> None:
    state = StripeCatalogState(features=[StripeFeature("feat_x", "sso", "SSO", {}, True)])
    with pytest.raises(CatalogConflict, match="was not made by this stack"):
        plan_catalog(parse_catalog(DECLARED), state)


def test_an_attachment_made_elsewhere_stays() -> None:
    state = stripe_holding(DECLARED)
    extra = Attachment("prodft_manual", "prod_basic", "feat_dashboard_made")
    state = StripeCatalogState(
        state.products, state.prices, state.features, [*state.attachments, extra]
    )
    assert plan_catalog(parse_catalog(DECLARED), state).writes == []


def test_removal_archives_only_what_this_catalog_made() -> None:
    state = stripe_holding(DECLARED)
    foreign = StripeProduct("prod_other", "Other", "", {}, True)
    state = StripeCatalogState(
        [*state.products, foreign], state.prices, state.features, state.attachments
    )
    writes = plan_removal("acme-prod", state)
    assert {w.target for w in writes} == {
        "price_basic_monthly",
        "price_pro_monthly",
        "price_pro_yearly",
        "prod_basic",
        "prod_pro",
        "feat_exports",
        "feat_sso",
    }
    assert all(dict(w.params) == {"active": False} for w in writes)
    assert plan_removal("another-stack", state) == []
