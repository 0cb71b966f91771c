"""Coupons and promotion codes, and the discounts they make."""

from __future__ import annotations

from sandbox.stripe_standin.core import (
    Obj,
    Params,
    StandinCore,
    StripeApiError,
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
