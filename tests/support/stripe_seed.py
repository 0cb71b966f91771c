"""Stripe-side fixtures, created over HTTP on the stand-in with stripe-python."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import requests
import stripe

from billing.stripe_api.client import STRIPE_API_VERSION
from sandbox.stripe_standin.server import StripeStandIn

PLANS = {
    # lookup key: (product, amount in cents, interval)
    "basic_monthly": ("Basic", 900, "month"),
    "pro_monthly": ("Pro", 2900, "month"),
    "pro_yearly": ("Pro", 29000, "year"),
    "enterprise_monthly": ("Enterprise", 9900, "month"),
}


@dataclass
class Account:
    """Handles on what was created: price ids by lookup key, and the portal configuration."""

    standin: StripeStandIn
    client: stripe.StripeClient
    prices: dict[str, str] = field(default_factory=dict)
    products: dict[str, str] = field(default_factory=dict)
    configuration: str = ""

    def requests_log(self) -> list[dict[str, Any]]:
        response = requests.get(f"{self.standin.url}/_standin/requests", timeout=5)
        data: list[dict[str, Any]] = response.json()["data"]
        return data

    def clear_requests_log(self) -> None:
        requests.delete(f"{self.standin.url}/_standin/requests", timeout=5)

    def changes(self) -> list[dict[str, Any]]:
        data: list[dict[str, Any]] = requests.get(
            f"{self.standin.url}/_standin/changes", timeout=5
        ).json()["data"]
        return data

    def last_session(self) -> dict[str, Any]:
        sessions = [c for c in self.changes() if c["type"] == "billing_portal.session.created"]
        return sessions[-1]["object"]  # type: ignore[no-any-return]

    def a_second_later(self) -> None:
        """Move the stand-in's clock one second ahead: Stripe's next change falls in a later
        second than every change so far (a test runs faster than a person edits a catalog)."""
        state = self.standin.state
        clock = state.clock
        state.clock = lambda: clock() + 1

    def inject_fault(self, **spec: Any) -> None:
        requests.post(
            f"{self.standin.url}/_standin/faults", json=spec, timeout=5
        ).raise_for_status()

    def clear_faults(self) -> None:
        requests.delete(f"{self.standin.url}/_standin/faults", timeout=5).raise_for_status()

    def customers_of(self, user_id: str) -> list[stripe.Customer]:
        customers = self.client.v1.customers.list(params={"limit": 100}).data
        return [
            c for c in customers if c.metadata and c.metadata.to_dict().get("user_id") == user_id
        ]

    def subscribe(
        self, customer_id: str, lookup_key: str, *, quantity: int = 1
    ) -> stripe.Subscription:
        """A paid subscription to ``lookup_key`` for an existing customer, with a card."""
        card = self.client.v1.payment_methods.attach(
            "pm_card_visa", params={"customer": customer_id}
        )
        self.client.v1.customers.update(
            customer_id, params={"invoice_settings": {"default_payment_method": card.id}}
        )
        return self.client.v1.subscriptions.create(
            params={
                "customer": customer_id,
                "items": [{"price": self.prices[lookup_key], "quantity": quantity}],
            }
        )


def seed_account(standin: StripeStandIn) -> Account:
    """Catalog of PLANS and a portal configuration offering all of them."""
    client = stripe.StripeClient(
        standin.api_key,
        stripe_version=STRIPE_API_VERSION,
        base_addresses={"api": standin.url},
    )
    account = Account(standin, client)
    for lookup_key, (product_name, amount, interval) in PLANS.items():
        if product_name not in account.products:
            account.products[product_name] = client.v1.products.create(
                params={"name": product_name}
            ).id
        account.prices[lookup_key] = client.v1.prices.create(
            params={
                "product": account.products[product_name],
                "currency": "usd",
                "unit_amount": amount,
                "recurring": {"interval": interval},
                "lookup_key": lookup_key,
            }
        ).id
    offered = [k for k in PLANS if k != "enterprise_monthly"]  # enterprise: sales-led only
    by_product: dict[str, list[str]] = {}
    for key in offered:
        by_product.setdefault(account.products[PLANS[key][0]], []).append(account.prices[key])
    account.configuration = client.v1.billing_portal.configurations.create(
        params={
            "business_profile": {"headline": "Manage your subscription"},
            "features": {
                "invoice_history": {"enabled": True},
                "payment_method_update": {"enabled": True},
                "subscription_cancel": {"enabled": True, "mode": "at_period_end"},
                "subscription_update": {
                    "enabled": True,
                    "default_allowed_updates": ["price", "quantity"],
                    "products": [{"product": p, "prices": ids} for p, ids in by_product.items()],
                },
            },
        }
    ).id
    return account
