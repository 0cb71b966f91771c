"""What a pricing table shows: the plans this deployment sells, from the stored catalog.

Pure, no I/O, no Stripe, no pydantic (it is served by the snapshot function).

Rules (also in docs/api.md):

- **Which plans**: the lookup keys of ``PlanLookupKeys``, in that order: exactly what
  ``POST /checkout-sessions`` accepts as ``plan``. A key whose price the table does
  not hold, or whose price or product is archived, is left out (and named in the log:
  the catalog is filled by ``price.*``/``product.*`` events and ``make backfill``).
- **Each plan**: the lookup key, the product's name and description, the price's
  amount (smallest currency unit), currency, interval and interval count, the
  trial the deployment's Checkout grants (``CheckoutTrialDays``; null without one), and
  the features its product includes (lookup key and name, by lookup key; archived
  features left out), which are the entitlements a subscriber gets.
- No Stripe ids: a browser has no use for them, and Checkout takes the lookup key.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass

from billing.store.writes import StoredCatalog


@dataclass(frozen=True, slots=True)
class PlanFeature:
    lookup_key: str
    name: str


@dataclass(frozen=True, slots=True)
class PlanOffer:
    plan: str  # the lookup key: what POST /checkout-sessions takes as ``plan``
    name: str
    description: str | None
    amount: int | None
    currency: str
    interval: str | None
    interval_count: int | None
    trial_days: int | None
    features: list[PlanFeature]


@dataclass(frozen=True, slots=True)
class PlanList:
    data: list[PlanOffer]


@dataclass(frozen=True, slots=True)
class Offered:
    plans: PlanList
    missing: tuple[str, ...]  # offered keys the catalog cannot show (for the log)


def offered_plans(
    catalog: StoredCatalog, lookup_keys: Sequence[str], *, trial_days: int
) -> Offered:
    """The plans of ``lookup_keys`` that the stored catalog can show."""
    offers: list[PlanOffer] = []
    missing: list[str] = []
    for key in dict.fromkeys(lookup_keys):
        price = catalog.prices.get(key)
        product = catalog.products.get(price.product_id) if price else None
        # An archived or deleted price or product is stored inactive.
        if price is None or product is None or not price.active or not product.active:
            missing.append(key)
            continue
        offers.append(
            PlanOffer(
                plan=key,
                name=product.name or key,
                description=product.description,
                amount=price.unit_amount,
                currency=price.currency,
                interval=price.interval,
                interval_count=price.interval_count,
                trial_days=trial_days or None,
                features=_features(catalog, price.product_id),
            )
        )
    return Offered(PlanList(offers), tuple(missing))


def _features(catalog: StoredCatalog, product_id: str) -> list[PlanFeature]:
    stored = (catalog.features.get(f) for f in catalog.product_features.get(product_id, ()))
    included = [PlanFeature(f.lookup_key, f.name) for f in stored if f and f.active]
    return sorted(included, key=lambda feature: feature.lookup_key)


def plans_json(plans: PlanList) -> str:
    """The response body: compact UTF-8 JSON (its hash is the ETag)."""
    return json.dumps(asdict(plans), separators=(",", ":"), ensure_ascii=False)
