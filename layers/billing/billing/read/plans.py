"""What a pricing table shows: the plans this deployment sells, from the stored catalog.

Pure, no I/O, no Stripe, no pydantic (it is served by the snapshot function).

Rules (also in docs/api.md):

- **Which plans**: the lookup keys of ``PlanLookupKeys``, in that order: exactly what
  ``POST /checkout-sessions`` accepts as ``plan``. A key whose price the table does
  not hold, or whose price or product is archived, is left out (and named in the log:
  the catalog is filled by ``price.*``/``product.*`` events and ``make backfill``).
- **Each plan**: the lookup key, the product's name and description, the price's
  amount (smallest currency unit), currency, interval and interval count, and the
  trial the deployment's Checkout grants (``CheckoutTrialDays``; null without one).
- No Stripe ids: a browser has no use for them, and Checkout takes the lookup key.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from decimal import Decimal
from typing import Any

from billing.store.keys import PRICE_PREFIX, PRODUCT_PREFIX


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


@dataclass(frozen=True, slots=True)
class PlanList:
    data: list[PlanOffer]


@dataclass(frozen=True, slots=True)
class Offered:
    plans: PlanList
    missing: tuple[str, ...]  # offered keys the catalog cannot show (for the log)


def offered_plans(
    catalog: Iterable[Mapping[str, Any]], lookup_keys: Sequence[str], *, trial_days: int
) -> Offered:
    """The plans of ``lookup_keys`` that the stored catalog items can show."""
    prices: dict[str, Mapping[str, Any]] = {}
    products: dict[str, Mapping[str, Any]] = {}
    for item in catalog:
        sort_key = str(item.get("sk", ""))
        if sort_key.startswith(PRICE_PREFIX):
            prices[sort_key.removeprefix(PRICE_PREFIX)] = item
        elif sort_key.startswith(PRODUCT_PREFIX):
            products[sort_key.removeprefix(PRODUCT_PREFIX)] = item
    offers: list[PlanOffer] = []
    missing: list[str] = []
    for key in dict.fromkeys(lookup_keys):
        price = prices.get(key)
        product = products.get(str(price.get("product_id"))) if price else None
        if price is None or product is None or not _sellable(price) or not _sellable(product):
            missing.append(key)
            continue
        offers.append(
            PlanOffer(
                plan=key,
                name=str(product.get("name") or key),
                description=_text(product.get("description")),
                amount=_number(price.get("unit_amount")),
                currency=str(price.get("currency") or ""),
                interval=_text(price.get("interval")),
                interval_count=_number(price.get("interval_count")),
                trial_days=trial_days or None,
            )
        )
    return Offered(PlanList(offers), tuple(missing))


def plans_json(plans: PlanList) -> str:
    """The response body: compact UTF-8 JSON (its hash is the ETag)."""
    return json.dumps(asdict(plans), separators=(",", ":"), ensure_ascii=False)


def _sellable(item: Mapping[str, Any]) -> bool:
    return item.get("active") is not False and not item.get("deleted")


def _text(value: object) -> str | None:
    return value if isinstance(value, str) and value else None


def _number(value: object) -> int | None:
    # Stored numbers come back as Decimal; catalog amounts and counts are whole.
    if isinstance(value, bool) or not isinstance(value, int | Decimal):
        return None
    return int(value)
