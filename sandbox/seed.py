"""The demo data of ``make dev``: a catalog named by lookup key and one subscribed customer."""

from __future__ import annotations

from dataclasses import dataclass

import stripe

# lookup key -> (product, amount in cents, interval)
CATALOG: dict[str, tuple[str, int, str]] = {
    "basic_monthly": ("Basic", 900, "month"),
    "basic_yearly": ("Basic", 9000, "year"),
    "pro_monthly": ("Pro", 2900, "month"),
    "pro_yearly": ("Pro", 29000, "year"),
    "enterprise_monthly": ("Enterprise", 9900, "month"),
    "enterprise_yearly": ("Enterprise", 99000, "year"),
}
DEMO_USER = "demo-user"
DEMO_EMAIL = "demo@example.com"
DEMO_PLAN = "pro_monthly"


@dataclass(frozen=True)
class DemoCustomer:
    customer_id: str
    subscription_id: str


def seed_catalog(client: stripe.StripeClient) -> dict[str, str]:
    """Products and recurring prices of :data:`CATALOG`; returns price ids by lookup key."""
    products: dict[str, str] = {}
    prices: dict[str, str] = {}
    for lookup_key, (name, amount, interval) in CATALOG.items():
        if name not in products:
            products[name] = client.v1.products.create({"name": name}).id
        prices[lookup_key] = client.v1.prices.create(
            {
                "product": products[name],
                "currency": "usd",
                "unit_amount": amount,
                "recurring": {"interval": interval},
                "lookup_key": lookup_key,
            }
        ).id
    return prices


def seed_demo_customer(
    client: stripe.StripeClient,
    prices: dict[str, str],
    *,
    user_id: str = DEMO_USER,
    email: str = DEMO_EMAIL,
    metadata_key: str = "user_id",
) -> DemoCustomer:
    """A customer of ``user_id`` with a Visa card as default and a ``DEMO_PLAN`` subscription."""
    customer = client.v1.customers.create(
        {"email": email, "name": "Demo User", "metadata": {metadata_key: user_id}}
    )
    card = client.v1.payment_methods.attach("pm_card_visa", {"customer": customer.id})
    client.v1.customers.update(
        customer.id, {"invoice_settings": {"default_payment_method": card.id}}
    )
    subscription = client.v1.subscriptions.create(
        {"customer": customer.id, "items": [{"price": prices[DEMO_PLAN]}]}
    )
    return DemoCustomer(customer.id, subscription.id)
