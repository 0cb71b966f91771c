"""Coupons and promotion codes, and the discounts they make."""

from __future__ import annotations

from sandbox.stripe_standin.core import (
    Obj,
    Params,
    StandinCore,
    StripeApiError,
    add_interval,
    as_bool,
    as_int,
    merge_metadata,
    missing_param,
    random_id,
)
from sandbox.stripe_standin.shapes import shaped


class Coupons(StandinCore):
    """One resource of the stand-in account (``state.StripeState``)."""

    def create_coupon(self, params: Params) -> Obj:
        with self.lock:
            percent = params.get("percent_off")
            amount = params.get("amount_off")
            if (percent is None) == (amount is None):
                raise StripeApiError("Give exactly one of percent_off and amount_off.")
            duration = params.get("duration", "once")
            if duration not in ("forever", "once", "repeating"):
                raise StripeApiError("Invalid duration.", param="duration")
            coupon_id = params.get("id") or random_id("", 8)
            if coupon_id in self.objects:
                raise StripeApiError("Coupon already exists.", param="id")
            coupon = shaped(
                "coupon",
                id=coupon_id,
                created=self.now(),
                livemode=False,
                name=params.get("name"),
                percent_off=float(percent) if percent is not None else None,
                amount_off=as_int(amount, "amount_off") if amount is not None else None,
                currency=params.get("currency") if amount is not None else None,
                duration=duration,
                duration_in_months=(
                    as_int(params["duration_in_months"], "duration_in_months")
                    if duration == "repeating"
                    else None
                ),
                max_redemptions=None,
                metadata=merge_metadata({}, params.get("metadata")),
                redeem_by=None,
                times_redeemed=0,
                valid=True,
            )
            self._store(coupon)
            return coupon

    def create_promotion_code(self, params: Params) -> Obj:
        with self.lock:
            promotion = params.get("promotion") or {}
            if promotion.get("type") != "coupon" or not promotion.get("coupon"):
                raise missing_param("promotion[coupon]")
            self.get(promotion["coupon"], "coupon", param="promotion[coupon]")
            code = params.get("code") or random_id("", 8).upper()
            if self._promotion_code(code) is not None:
                raise StripeApiError(
                    "An active promotion code with that code exists.", param="code"
                )
            promo = shaped(
                "promotion_code",
                id=random_id("promo_"),
                code=code,
                created=self.now(),
                active=as_bool(params.get("active", True), "active"),
                customer=None,
                expires_at=None,
                livemode=False,
                max_redemptions=None,
                metadata=merge_metadata({}, params.get("metadata")),
                promotion={"type": "coupon", "coupon": promotion["coupon"]},
                times_redeemed=0,
            )
            self._store(promo)
            return promo

    def _promotion_code(self, code: str) -> Obj | None:
        found = [
            o
            for o in self.objects.values()
            if o.get("object") == "promotion_code" and o["code"] == code and o["active"]
        ]
        return found[0] if found else None

    def list_promotion_codes(self, params: Params) -> Obj:
        with self.lock:
            code = params.get("code")
            wanted = None if "active" not in params else as_bool(params["active"], "active")

            def keep(promo: Obj) -> bool:
                return (code is None or promo["code"] == code) and (
                    wanted is None or promo["active"] == wanted
                )

            return self.page("promotion_code", params, "/v1/promotion_codes", keep)

    def _discounts(self, specs: list[Params]) -> list[Obj]:
        """``discounts`` of a confirm flow: each names an existing coupon or promotion code."""
        discounts = []
        for n, spec in enumerate(specs):
            param = f"flow_data[subscription_update_confirm][discounts][{n}]"
            if spec.get("promotion_code"):
                self.get(spec["promotion_code"], "promotion_code", param=f"{param}[promotion_code]")
            elif spec.get("coupon"):
                self.get(spec["coupon"], "coupon", param=f"{param}[coupon]")
            else:
                raise missing_param(f"{param}[coupon]")
            discounts.append(
                {"coupon": spec.get("coupon"), "promotion_code": spec.get("promotion_code")}
            )
        return discounts

    def redeemable_promotion_code(self, code: str, currency: str) -> Obj:
        """The active promotion code a customer typed (codes are case-insensitive to
        customers, as on Stripe's pages), whose coupon can discount ``currency``."""
        with self.lock:
            found = [
                o
                for o in self.objects.values()
                if o.get("object") == "promotion_code"
                and o["active"]
                and o["code"].upper() == code.strip().upper()
            ]
            coupon = self.objects.get(found[0]["promotion"]["coupon"]) if found else None
            if (
                coupon is None
                or not coupon["valid"]
                or (coupon["amount_off"] is not None and coupon["currency"] != currency)
            ):
                raise StripeApiError("This code is invalid.", param="promotion_code")
            return found[0]

    def _new_discounts(
        self, specs: list[Params], customer_id: str, subscription_id: str
    ) -> list[str]:
        """``discounts`` of a new subscription: a Discount object for each coupon or
        promotion code (redeemed once more), as Stripe makes them; their ids."""
        ids = []
        for n, spec in enumerate(specs):
            promotion_id = spec.get("promotion_code")
            if promotion_id:
                promo = self.get(promotion_id, "promotion_code", param=f"discounts[{n}]")
                coupon = self.objects[promo["promotion"]["coupon"]]
                promo["times_redeemed"] += 1
            elif spec.get("coupon"):
                coupon = self.get(spec["coupon"], "coupon", param=f"discounts[{n}][coupon]")
            else:
                raise missing_param(f"discounts[{n}][coupon]")
            coupon["times_redeemed"] += 1
            start = self.now()
            months = coupon["duration_in_months"] if coupon["duration"] == "repeating" else None
            discount = shaped(
                "discount",
                id=random_id("di_"),
                customer=customer_id,
                subscription=subscription_id,
                promotion_code=promotion_id or None,
                source={"coupon": coupon["id"], "type": "coupon"},
                start=start,
                end=add_interval(start, "month", months) if months else None,
                checkout_session=None,
                invoice=None,
                invoice_item=None,
                subscription_item=None,
                customer_account=None,
            )
            self._store(discount)
            ids.append(discount["id"])
        return ids

    def _discount_amounts(self, discount_ids: list[str], amount: int, currency: str) -> list[Obj]:
        """What each of a subscription's discounts takes off an invoice of ``amount``:
        ``[{"amount", "discount"}]`` (Stripe's ``total_discount_amounts``). A ``once``
        coupon is spent by the first invoice with something to charge; a ``repeating``
        one lasts until its ``end``."""
        taken = []
        left = amount
        for discount_id in discount_ids:
            discount = self.objects[discount_id]
            coupon = self.objects[discount["source"]["coupon"]]
            if left <= 0 or discount_id in self.spent_discounts:
                continue
            if discount["end"] is not None and discount["end"] <= self.now():
                continue
            if coupon["percent_off"] is not None:
                off = round(left * coupon["percent_off"] / 100)
            elif coupon["currency"] == currency:
                off = min(coupon["amount_off"], left)
            else:
                continue
            if coupon["duration"] == "once":
                self.spent_discounts.add(discount_id)
            left -= off
            taken.append({"amount": off, "discount": discount_id})
        return taken
