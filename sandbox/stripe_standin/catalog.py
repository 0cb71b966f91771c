"""Products and prices: lookup keys (and their transfer), nicknames, archiving."""

from __future__ import annotations

import copy
from typing import Any

import stripe

from sandbox.stripe_standin.core import (
    Obj,
    Params,
    StandinCore,
    StripeApiError,
    as_bool,
    as_int,
    diff,
    merge_metadata,
    missing_param,
    random_id,
)
from sandbox.stripe_standin.enums import stripe_values
from sandbox.stripe_standin.shapes import shaped

TAX_BEHAVIORS = stripe_values(stripe.params.PriceCreateParams, "tax_behavior")


class Catalog(StandinCore):
    """One resource of the stand-in account (``state.StripeState``)."""

    def create_product(self, params: Params) -> Obj:
        with self.lock:
            if not params.get("name"):
                raise missing_param("name")
            now = self.now()
            product = shaped(
                "product",
                id=params.get("id") or random_id("prod_", 14),
                created=now,
                updated=now,
                name=params["name"],
                description=params.get("description"),
                active=as_bool(params.get("active", True), "active"),
                metadata=merge_metadata({}, params.get("metadata")),
                default_price=None,
                images=[],
                marketing_features=[],
                package_dimensions=None,
                shippable=None,
                statement_descriptor=None,
                tax_code=None,
                unit_label=None,
                url=None,
                type="service",
            )
            self._store(product)
            self._record("product.created", product)
            return product

    def update_product(self, product_id: str, params: Params) -> Obj:
        with self.lock:
            product = self.get(product_id, "product", status=404)
            before = copy.deepcopy(product)
            for field in ("name", "description"):
                if field in params:
                    product[field] = params[field]
            if "active" in params:
                product["active"] = as_bool(params["active"], "active")
            if "metadata" in params:
                product["metadata"] = merge_metadata(product["metadata"], params["metadata"])
            if product != before:
                product["updated"] = self.now()
                self._record("product.updated", product, diff(before, product))
            return product

    def list_products(self, params: Params) -> Obj:
        with self.lock:
            active = params.get("active")
            return self.page(
                "product",
                params,
                "/v1/products",
                lambda p: active is None or p["active"] == as_bool(active, "active"),
            )

    def _price_with_lookup_key(self, lookup_key: str) -> Obj | None:
        for obj in self.objects.values():
            if obj.get("object") == "price" and obj.get("lookup_key") == lookup_key:
                return obj
        return None

    def _claim_lookup_key(self, lookup_key: str | None, transfer: Any, price_id: str) -> None:
        if not lookup_key:
            return
        holder = self._price_with_lookup_key(lookup_key)
        if holder is None or holder["id"] == price_id:
            return
        if not as_bool(transfer or False, "transfer_lookup_key"):
            raise StripeApiError(
                f"A price (`{holder['id']}`) already uses that lookup key.",
                param="lookup_key",
            )
        before = copy.deepcopy(holder)
        holder["lookup_key"] = None
        self._record("price.updated", holder, diff(before, holder))

    def create_price(self, params: Params) -> Obj:
        with self.lock:
            if product_data := params.get("product_data"):
                product_id = self.create_product(product_data)["id"]
            elif params.get("product"):
                product_id = self.get(params["product"], "product", param="product")["id"]
            else:
                raise missing_param("product")
            if not params.get("currency"):
                raise missing_param("currency")
            recurring = None
            if r := params.get("recurring"):
                if r.get("interval") not in ("day", "week", "month", "year"):
                    raise StripeApiError(
                        "Invalid recurring[interval].", param="recurring[interval]"
                    )
                trial = r.get("trial_period_days")
                recurring = {
                    "interval": r["interval"],
                    "interval_count": as_int(
                        r.get("interval_count", 1), "recurring[interval_count]"
                    ),
                    "meter": None,
                    "usage_type": "licensed",
                    "trial_period_days": (
                        as_int(trial, "recurring[trial_period_days]") if trial else None
                    ),
                }
            amount = as_int(params.get("unit_amount", 0), "unit_amount")
            price_id = random_id("price_")
            lookup_key = params.get("lookup_key") or None
            self._claim_lookup_key(lookup_key, params.get("transfer_lookup_key"), price_id)
            price = shaped(
                "price",
                id=price_id,
                created=self.now(),
                active=as_bool(params.get("active", True), "active"),
                currency=str(params["currency"]).lower(),
                product=product_id,
                unit_amount=amount,
                unit_amount_decimal=str(amount),
                recurring=recurring,
                type="recurring" if recurring else "one_time",
                lookup_key=lookup_key,
                nickname=params.get("nickname"),
                metadata=merge_metadata({}, params.get("metadata")),
                billing_scheme="per_unit",
                custom_unit_amount=None,
                tax_behavior=_tax_behavior(params.get("tax_behavior", "unspecified")),
                tiers_mode=None,
                transform_quantity=None,
            )
            self._store(price)
            self._record("price.created", price)
            return price

    def update_price(self, price_id: str, params: Params) -> Obj:
        with self.lock:
            price = self.get(price_id, "price", status=404)
            before = copy.deepcopy(price)
            if "lookup_key" in params:
                key = params["lookup_key"] or None
                self._claim_lookup_key(key, params.get("transfer_lookup_key"), price_id)
                price["lookup_key"] = key
            if "active" in params:
                price["active"] = as_bool(params["active"], "active")
            if "nickname" in params:
                price["nickname"] = params["nickname"] or None
            if "tax_behavior" in params:
                behavior = _tax_behavior(params["tax_behavior"])
                if price["tax_behavior"] not in ("unspecified", behavior):
                    raise StripeApiError(
                        "Tax behavior cannot be changed once it is inclusive or exclusive.",
                        param="tax_behavior",
                    )
                price["tax_behavior"] = behavior
            if "metadata" in params:
                price["metadata"] = merge_metadata(price["metadata"], params["metadata"])
            if price != before:
                self._record("price.updated", price, diff(before, price))
            return price

    def list_prices(self, params: Params) -> Obj:
        with self.lock:
            lookup_keys = params.get("lookup_keys")
            active = params.get("active")
            product = params.get("product")
            kind = params.get("type")

            def keep(p: Obj) -> bool:
                return (
                    (lookup_keys is None or p["lookup_key"] in lookup_keys)
                    and (active is None or p["active"] == as_bool(active, "active"))
                    and (product is None or p["product"] == product)
                    and (kind is None or p["type"] == kind)
                )

            return self.page("price", params, "/v1/prices", keep)


def _tax_behavior(value: Any) -> str:
    if value not in TAX_BEHAVIORS:
        raise StripeApiError(f"Invalid tax_behavior: {value}", param="tax_behavior")
    return str(value)
