"""The 2026 billing-portal API through POST /portal-sessions and Custom::PortalConfiguration:
customer_update and subscription_pause flows, a retention coupon in the cancel flow,
session recovery after expiry, pause durations; against the stand-in, whose rules come
from stripe-python's own types (``sandbox.stripe_standin.enums``).
"""

from __future__ import annotations

from typing import Any

import pytest
import requests
import stripe

from billing.provisioning.portal_config import (
    ConfigurationInvalid,
    parse_portal_configuration,
    stripe_params,
)
from billing.stripe_api.enums import FLOW_TYPES
from tests.conftest import forget_cached_clients
from tests.support.portal import STRIPE_ID, linked_user, post, snapshot
from tests.support.stripe_seed import Account
from tests.support.webhooks import StandinChanges


def full_configuration(account: Account) -> str:
    """A configuration with every 2026 feature a SaaS needs switched on."""
    prices = list(account.prices.values())
    products = {account.client.v1.prices.retrieve(p).product for p in prices}
    return account.client.v1.billing_portal.configurations.create(
        params={
            "features": {
                "customer_update": {"enabled": True, "allowed_updates": ["email", "name"]},
                "payment_method_update": {"enabled": True},
                "subscription_cancel": {"enabled": True, "mode": "at_period_end"},
                "subscription_pause": {
                    "enabled": True,
                    "duration": {
                        "type": "interval_options",
                        "interval_options": [{"interval": "month", "interval_count": 1}],
                    },
                },
                "subscription_update": {
                    "enabled": True,
                    "default_allowed_updates": ["price"],
                    "products": [
                        {
                            "product": str(product),
                            "prices": [
                                p
                                for p in prices
                                if account.client.v1.prices.retrieve(p).product == product
                            ],
                        }
                        for product in products
                    ],
                },
            }
        }
    ).id


@pytest.fixture
def portal(account: Account, monkeypatch: pytest.MonkeyPatch) -> Account:
    monkeypatch.setenv("PORTAL_CONFIGURATION_ID", full_configuration(account))
    # What the configuration resource's Flows output tells the snapshot function.
    monkeypatch.setenv(
        "PORTAL_FLOWS", ",".join(f for f in FLOW_TYPES if f != "subscription_update_confirm")
    )
    forget_cached_clients()
    return account


def subscription(account: Account, user: str, *, mode: str) -> Any:
    customer = linked_user(account, user)
    card = account.client.v1.payment_methods.attach("pm_card_visa", params={"customer": customer})
    return account.client.v1.subscriptions.create(
        params={
            "customer": customer,
            "items": [{"price": account.prices["pro_monthly"]}],
            "default_payment_method": card.id,
            "billing_mode": {"type": mode},
        }
    )


def test_the_customer_update_flow_needs_no_subscription(portal: Account) -> None:
    result = post({"flow": "customer_update"}, user="user-details")
    assert result.status == 200, result.raw
    assert portal.last_session()["flow"]["type"] == "customer_update"


def test_the_pause_flow_opens_for_a_flexible_subscription(portal: Account) -> None:
    sub = subscription(portal, "user-pause", mode="flexible")
    result = post({"flow": "subscription_pause"}, user="user-pause")
    assert result.status == 200, result.raw
    assert not STRIPE_ID.search(result.raw)
    assert portal.last_session()["flow"]["subscription_pause"] == {"subscription": sub.id}


def test_the_pause_flow_explains_that_classic_billing_cannot_pause(portal: Account) -> None:
    subscription(portal, "user-classic", mode="classic")
    result = post({"flow": "subscription_pause"}, user="user-classic")
    assert result.status == 409, result.raw
    assert result.body["error"]["code"] == "unsupported_subscription"
    assert "flexible billing mode" in result.body["error"]["message"]


def test_a_pause_flow_the_configuration_does_not_offer_is_refused_by_stripe(
    configured: Account,
) -> None:
    subscription(configured, "user-no-pause", mode="flexible")
    result = post({"flow": "subscription_pause"}, user="user-no-pause")
    assert result.status == 422, result.raw
    assert result.body["error"]["code"] == "flow_not_available"


def test_the_cancel_flow_offers_the_configured_retention_coupon(
    portal: Account, monkeypatch: pytest.MonkeyPatch
) -> None:
    coupon = portal.client.v1.coupons.create(
        params={"percent_off": 50, "duration": "repeating", "duration_in_months": 3}
    )
    monkeypatch.setenv("CANCEL_RETENTION_COUPON", coupon.id)
    forget_cached_clients()
    subscription(portal, "user-retain", mode="classic")
    result = post({"flow": "subscription_cancel"}, user="user-retain")
    assert result.status == 200, result.raw
    retention = portal.last_session()["flow"]["subscription_cancel"]["retention"]
    assert retention == {"type": "coupon_offer", "coupon_offer": {"coupon": coupon.id}}


def test_a_retention_coupon_stripe_does_not_have_fails_clearly(
    portal: Account, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CANCEL_RETENTION_COUPON", "GONE50")
    forget_cached_clients()
    subscription(portal, "user-retain-gone", mode="classic")
    result = post({"flow": "subscription_cancel"}, user="user-retain-gone")
    assert result.status == 422, result.raw
    assert result.body["error"]["code"] == "flow_not_available"


def test_an_expired_link_can_be_recovered_when_recovery_is_on(
    portal: Account, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PORTAL_SESSION_RECOVERY", "true")
    forget_cached_clients()
    recoverable = post({}, user="user-recover").body["url"]
    monkeypatch.setenv("PORTAL_SESSION_RECOVERY", "false")
    forget_cached_clients()
    plain = post({}, user="user-recover").body["url"]
    portal.standin.state.session_open_seconds = -1  # every unopened link has expired
    try:
        expired = requests.get(plain, timeout=5)
        recovered = requests.get(recoverable, timeout=5)
    finally:
        portal.standin.state.session_open_seconds = 300
    assert expired.status_code == 410
    assert recovered.status_code == 200
    assert 'data-testid="session-recovery"' in recovered.text


# --- the configuration -------------------------------------------------------------------


def test_pause_durations_from_a_template_parameter_reach_stripe() -> None:
    spec = parse_portal_configuration(
        {"Features": {"SubscriptionPause": {"Enabled": "true", "Durations": "1 month,3 months"}}}
    )
    params = stripe_params(spec, {})
    assert params["features"]["subscription_pause"] == {
        "enabled": True,
        "duration": {
            "type": "interval_options",
            "interval_options": [
                {"interval": "month", "interval_count": 1},
                {"interval": "month", "interval_count": 3},
            ],
        },
    }
    assert "subscription_pause" in spec.offered_flows()
    indefinite = parse_portal_configuration(
        {"Features": {"SubscriptionPause": {"Enabled": "true", "Durations": ["indefinite"]}}}
    )
    assert stripe_params(indefinite, {})["features"]["subscription_pause"]["duration"] == {
        "type": "indefinite"
    }


@pytest.mark.parametrize(
    ("durations", "reason"),
    [
        ("2 fortnight", "SubscriptionPause.Durations"),
        ("indefinite,1 month", "indefinite excludes preset durations"),
        ("", "at least one duration"),
    ],
)
def test_bad_pause_durations_fail_the_deploy_naming_the_field(durations: str, reason: str) -> None:
    with pytest.raises(ConfigurationInvalid, match=reason):
        parse_portal_configuration(
            {"Features": {"SubscriptionPause": {"Enabled": "true", "Durations": durations}}}
        )


# --- the stand-in takes Stripe's rules from stripe-python ---------------------------------


def test_the_standin_refuses_a_flow_type_stripe_python_does_not_know(account: Account) -> None:
    customer = linked_user(account, "user-unknown-flow")
    assert "subscription_resume" not in FLOW_TYPES
    with pytest.raises(stripe.InvalidRequestError) as refused:
        account.client.v1.billing_portal.sessions.create(
            params={"customer": customer, "flow_data": {"type": "subscription_resume"}}
        )
    assert refused.value.param == "flow_data[type]"


def test_the_standin_refuses_a_locale_stripe_python_does_not_list(account: Account) -> None:
    customer = linked_user(account, "user-locale")
    with pytest.raises(stripe.InvalidRequestError) as refused:
        account.client.v1.billing_portal.sessions.create(
            params={"customer": customer, "locale": "tlh"}
        )
    assert refused.value.param == "locale"


# --- finishing the new flows in the hosted portal (the stand-in's simulator) ---------------


@pytest.fixture
def hooked_portal(portal: Account, webhook_deployment: dict[str, Any]) -> Account:
    return portal


def test_a_customer_pauses_in_the_portal_and_the_snapshot_says_paused(
    hooked_portal: Account,
) -> None:
    account = hooked_portal
    sub = subscription(account, "user-pauses", mode="flexible")
    changes = StandinChanges(account)
    changes.flush()
    before = snapshot("user-pauses").body
    assert before["actions"]["subscription_pause"] is True

    url = post({"flow": "subscription_pause"}, user="user-pauses").body["url"]
    page = requests.get(url, timeout=5)
    assert 'data-testid="pause-page"' in page.text
    done = requests.post(
        f"{url}/subscriptions/{sub.id}/pause",
        data={"duration": "0"},
        timeout=5,
        allow_redirects=False,
    )
    assert done.status_code == 303
    changes.flush()

    after = snapshot("user-pauses").body
    assert after["status"] == "paused"
    assert after["paused"] is True
    assert after["renews_at"] is None
    assert after["actions"]["subscription_pause"] is False


def test_a_customer_updates_their_email_in_the_portal(hooked_portal: Account) -> None:
    account = hooked_portal
    linked_user(account, "user-email")
    changes = StandinChanges(account)
    changes.flush()
    url = post({"flow": "customer_update"}, user="user-email").body["url"]
    assert 'data-testid="customer-page"' in requests.get(url, timeout=5).text
    saved = requests.post(
        f"{url}/customer", data={"email": "new@example.com"}, timeout=5, allow_redirects=False
    )
    assert saved.status_code == 303
    changes.flush()
    assert snapshot("user-email").body["email"] == "new@example.com"


def test_the_retention_offer_keeps_the_customer_subscribed(
    hooked_portal: Account, monkeypatch: pytest.MonkeyPatch
) -> None:
    account = hooked_portal
    coupon = account.client.v1.coupons.create(params={"percent_off": 25, "duration": "once"})
    monkeypatch.setenv("CANCEL_RETENTION_COUPON", coupon.id)
    forget_cached_clients()
    sub = subscription(account, "user-stays", mode="classic")
    url = post({"flow": "subscription_cancel"}, user="user-stays").body["url"]
    page = requests.get(url, timeout=5).text
    assert 'data-testid="retention-offer"' in page
    assert "25% off on your next invoice" in page
    accepted = requests.post(
        f"{url}/subscriptions/{sub.id}/retention", timeout=5, allow_redirects=False
    )
    assert accepted.status_code == 303
    after = account.client.v1.subscriptions.retrieve(sub.id)
    assert after.status == "active"
    assert after.cancel_at is None
    assert after.discounts


# --- a promotion code on a plan change -----------------------------------------------------


def test_a_plan_change_applies_the_promotion_code_the_customer_typed(portal: Account) -> None:
    coupon = portal.client.v1.coupons.create(params={"percent_off": 20, "duration": "once"})
    promo = portal.client.v1.promotion_codes.create(
        params={"code": "SPRING20", "promotion": {"type": "coupon", "coupon": coupon.id}}
    )
    subscription(portal, "user-promo", mode="classic")
    body = {
        "flow": "subscription_update_confirm",
        "plan": "pro_yearly",
        "promotion_code": "SPRING20",
    }
    result = post(body, user="user-promo")
    assert result.status == 200, result.raw
    confirm = portal.last_session()["flow"]["subscription_update_confirm"]
    assert confirm["discounts"] == [{"coupon": None, "promotion_code": promo.id}]


def test_an_unknown_promotion_code_is_a_clear_422_and_opens_nothing(portal: Account) -> None:
    subscription(portal, "user-promo-bad", mode="classic")
    before = len(portal.changes())
    body = {"flow": "subscription_update_confirm", "plan": "pro_yearly", "promotion_code": "NOPE"}
    result = post(body, user="user-promo-bad")
    assert result.status == 422, result.raw
    assert result.body["error"]["code"] == "unknown_promotion_code"
    assert not [c for c in portal.changes()[before:] if c["type"].startswith("billing_portal")]


def test_a_promotion_code_outside_a_plan_change_names_the_field(portal: Account) -> None:
    result = post({"flow": "subscription_cancel", "promotion_code": "SPRING20"})
    assert result.status == 422, result.raw
    assert "promotion_code" in result.raw
