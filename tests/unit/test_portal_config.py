"""The declared portal configuration -> Stripe parameters (pure)."""

from __future__ import annotations

import pytest

from billing.provisioning.portal_config import (
    ConfigurationInvalid,
    PriceFound,
    parse_portal_configuration,
    resolve_lookup_keys,
    stripe_params,
)


def price(key: str, product: str, *, active: bool = True, recurring: bool = True) -> PriceFound:
    return PriceFound(key, f"price_{key}", product, active, recurring)


PLANS = {
    "Features": {
        "PaymentMethodUpdate": {"Enabled": "true"},
        "SubscriptionUpdate": {
            "Enabled": "true",
            "DefaultAllowedUpdates": "price,quantity",
            "Products": [
                {
                    "Prices": ["basic_monthly", "pro_monthly", "pro_yearly"],
                    "AdjustableQuantity": {"Enabled": "true", "Maximum": "20"},
                }
            ],
        },
    }
}
FOUND = [
    price("basic_monthly", "prod_basic"),
    price("pro_monthly", "prod_pro"),
    price("pro_yearly", "prod_pro"),
]


def test_keys_of_one_entry_are_grouped_by_their_product() -> None:
    spec = parse_portal_configuration(PLANS)

    params = stripe_params(spec, resolve_lookup_keys(spec, FOUND))

    update = params["features"]["subscription_update"]
    assert update["default_allowed_updates"] == ["price", "quantity"]
    assert update["products"] == [
        {
            "product": "prod_basic",
            "prices": ["price_basic_monthly"],
            "adjustable_quantity": {"enabled": True, "minimum": 1, "maximum": 20},
        },
        {
            "product": "prod_pro",
            "prices": ["price_pro_monthly", "price_pro_yearly"],
            "adjustable_quantity": {"enabled": True, "minimum": 1, "maximum": 20},
        },
    ]


def test_every_field_is_stated_so_removed_ones_are_reset_in_stripe() -> None:
    spec = parse_portal_configuration({"Metadata": {"team": "billing"}})

    params = stripe_params(spec, {}, previous_metadata_keys=["team", "owner"])

    assert params["name"] == ""
    assert params["business_profile"] == {"headline": ""}
    assert params["default_return_url"] == ""
    assert params["login_page"] == {"enabled": False}
    assert params["metadata"] == {"team": "billing", "owner": ""}  # owner is unset
    features = params["features"]
    assert features["customer_update"] == {"enabled": False, "allowed_updates": ""}
    assert features["subscription_cancel"]["cancellation_reason"] == {
        "enabled": False,
        "options": "",
    }
    assert features["subscription_update"]["enabled"] is False
    assert "products" not in features["subscription_update"]
    assert features["subscription_pause"] == {"enabled": False}


def test_keys_spanning_more_than_ten_products_fail_after_resolution() -> None:
    keys = [f"plan_{n}" for n in range(11)]
    spec = parse_portal_configuration(
        {
            "Features": {
                "PaymentMethodUpdate": {"Enabled": True},
                "SubscriptionUpdate": {"Enabled": True, "Products": [{"Prices": keys}]},
            }
        }
    )
    found = [price(key, f"prod_{key}") for key in keys]

    with pytest.raises(
        ConfigurationInvalid, match="belong to 11 products; Stripe allows at most 10"
    ):
        stripe_params(spec, resolve_lookup_keys(spec, found))


def test_one_off_prices_cannot_be_offered() -> None:
    spec = parse_portal_configuration(PLANS)
    found = [*FOUND[:2], price("pro_yearly", "prod_pro", recurring=False)]

    with pytest.raises(ConfigurationInvalid, match="pro_yearly is not recurring"):
        resolve_lookup_keys(spec, found)


@pytest.mark.parametrize(
    ("properties", "reason"),
    [
        ({"Features": {"CustomerUpdate": {"Enabled": True}}}, "AllowedUpdates must name"),
        (
            {"Features": {"SubscriptionCancel": {"CancellationReason": {"Enabled": True}}}},
            "Options must list at least one reason",
        ),
        (
            {
                "Features": {
                    "PaymentMethodUpdate": {"Enabled": True},
                    "SubscriptionUpdate": {"Enabled": True},
                }
            },
            "Products must name at least one price lookup key",
        ),
        (
            {
                "Features": {
                    "SubscriptionUpdate": {
                        "Products": [
                            {"Prices": "a", "AdjustableQuantity": {"Minimum": 5, "Maximum": 2}}
                        ]
                    }
                }
            },
            "Minimum must not exceed Maximum",
        ),
        ({"LoginPage": {"Enabled": "maybe"}}, "LoginPage.Enabled: Input should be a valid boolean"),
    ],
)
def test_more_rules_name_their_field(properties: dict[str, object], reason: str) -> None:
    with pytest.raises(ConfigurationInvalid, match=reason):
        parse_portal_configuration(properties)


def test_offered_flows_follow_the_enabled_features() -> None:
    spec = parse_portal_configuration(
        {
            "Features": {
                "SubscriptionCancel": {"Enabled": "true"},
                "InvoiceHistory": {"Enabled": "true"},
            }
        }
    )
    assert spec.offered_flows() == ("subscription_cancel",)
