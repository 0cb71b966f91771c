"""The demo data of ``make dev``: the template's catalog, and one subscribed customer."""

from __future__ import annotations

import stripe

from billing.provisioning.catalog import CatalogSpec, parse_catalog
from sandbox.cloudformation import load_template


def _declared_catalog() -> CatalogSpec:
    """The catalog ``template.yaml`` declares in its ``StripeCatalog`` resource."""
    properties = dict(load_template()["Resources"]["StripeCatalog"]["Properties"])
    properties["Catalog"] = "make-dev"  # !Ref AWS::StackName, resolved when it runs
    return parse_catalog(properties)


_DECLARED = _declared_catalog()
# The demo catalog is the template's, so the offline sandbox (which provisions it through
# Custom::StripeCatalog) and a developer's own account (completed below) sell the same.
# lookup key -> (product, amount in cents, interval)
CATALOG: dict[str, tuple[str, int, str]] = {
    price.lookup_key: (product.name, price.unit_amount, price.interval)
    for product in _DECLARED.products
    for price in product.prices
}
# What each product says of itself on a pricing table (GET /plans shows it).
DESCRIPTIONS = {product.name: product.description for product in _DECLARED.products}
# Entitlement features (lookup key -> name) and what each product includes.
FEATURES = {feature.lookup_key: feature.name for feature in _DECLARED.features}
PRODUCT_FEATURES = {product.name: list(product.features) for product in _DECLARED.products}
DEMO_USER = "demo-user"
DEMO_EMAIL = "demo@example.com"
DEMO_PLAN = "pro_monthly"


def ensure_catalog(client: stripe.StripeClient) -> dict[str, str]:
    """Price ids by lookup key for :data:`CATALOG`, creating only what the account lacks.

    Against a real test-mode account ``make dev`` starts many times: the prices
    found by lookup key are reused (with their products), so reruns add nothing.
    """
    found = client.v1.prices.list(
        {"lookup_keys": list(CATALOG), "active": True, "limit": len(CATALOG)}
    ).data
    prices = {price.lookup_key: price.id for price in found if price.lookup_key}
    products: dict[str, str] = {}
    for price in found:
        if price.lookup_key in CATALOG:
            products.setdefault(CATALOG[price.lookup_key][0], _id(price.product))
    for lookup_key, (name, amount, interval) in CATALOG.items():
        if lookup_key in prices:
            continue
        if name not in products:
            products[name] = client.v1.products.create(
                {"name": name, "description": DESCRIPTIONS[name]}
            ).id
        prices[lookup_key] = client.v1.prices.create(
            {
                "product": products[name],
                "currency": "usd",
                "unit_amount": amount,
                "recurring": {"interval": interval},
                "lookup_key": lookup_key,
            }
        ).id
    _ensure_features(client, products)
    return prices


def _ensure_features(client: stripe.StripeClient, products: dict[str, str]) -> None:
    """:data:`FEATURES` attached to the products as :data:`PRODUCT_FEATURES` says, creating
    and attaching only what is missing (a test-mode account keeps them between runs)."""
    api = client.v1.entitlements.features
    known = {f.lookup_key: f.id for f in api.list({"limit": 100}).data}
    for lookup_key, name in FEATURES.items():
        if lookup_key not in known:
            known[lookup_key] = api.create({"lookup_key": lookup_key, "name": name}).id
    for product, keys in PRODUCT_FEATURES.items():
        attached = {
            a.entitlement_feature.id
            for a in client.v1.products.features.list(products[product], {"limit": 100}).data
        }
        for key in keys:
            if known[key] not in attached:
                client.v1.products.features.create(
                    products[product], {"entitlement_feature": known[key]}
                )


def ensure_demo_customer(
    client: stripe.StripeClient,
    prices: dict[str, str],
    *,
    user_id: str = DEMO_USER,
    email: str = DEMO_EMAIL,
    metadata_key: str = "user_id",
) -> str:
    """The id of ``user_id``'s customer; created with a Visa card and ``DEMO_PLAN`` if missing.

    An existing demo customer is kept as it is (cancelled, on another plan, ...):
    it is what the developer left in their test account last time.
    """
    for customer in client.v1.customers.list({"email": email, "limit": 100}).data:
        metadata: dict[str, str] = customer.to_dict().get("metadata") or {}
        if metadata.get(metadata_key) == user_id:
            return customer.id
    customer = client.v1.customers.create(
        {"email": email, "name": "Demo User", "metadata": {metadata_key: user_id}}
    )
    card = client.v1.payment_methods.attach("pm_card_visa", {"customer": customer.id})
    client.v1.customers.update(
        customer.id, {"invoice_settings": {"default_payment_method": card.id}}
    )
    client.v1.subscriptions.create(
        {"customer": customer.id, "items": [{"price": prices[DEMO_PLAN]}]}
    )
    return customer.id


def _id(reference: str | stripe.StripeObject) -> str:
    return reference if isinstance(reference, str) else str(reference["id"])
