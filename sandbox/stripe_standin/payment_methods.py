"""Payment methods from test tokens, and SetupIntents."""

from __future__ import annotations

import copy
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from sandbox.stripe_standin.core import (
    AUTHENTICATION_CARDS,
    TEST_CARDS,
    Obj,
    Params,
    StandinCore,
    StripeApiError,
    as_bool,
    diff,
    merge_metadata,
    missing_param,
    random_id,
)
from sandbox.stripe_standin.shapes import example, shaped


class PaymentMethods(StandinCore):
    """One resource of the stand-in account (``state.StripeState``)."""

    if TYPE_CHECKING:  # defined by another resource of the same account (state.py)

        def update_customer(self, customer_id: str, params: Params) -> Obj: ...

    def _attach(self, token_or_id: str, customer_id: str) -> Obj:
        self.get(customer_id, "customer", param="customer")
        if token_or_id in TEST_CARDS:
            brand, last4, attachable, chargeable = TEST_CARDS[token_or_id]
            if not attachable:
                raise StripeApiError(
                    "Your card was declined.", status=402, type_="card_error", code="card_declined"
                )
            card = example("payment_method")["card"]
            card |= {
                "brand": brand,
                "display_brand": brand,
                "last4": last4,
                "exp_month": 12,
                "exp_year": datetime.fromtimestamp(self.now(), UTC).year + 3,
                "fingerprint": random_id("", 16),
                "country": "US",
                "funding": "credit",
                "wallet": None,
                "generated_from": None,
                "networks": {"available": [brand], "preferred": None},
            }
            pm = shaped(
                "payment_method",
                id=random_id("pm_"),
                created=self.now(),
                customer=None,
                card=card,
                type="card",
                metadata={},
                billing_details={
                    "address": {
                        "city": None,
                        "country": None,
                        "line1": None,
                        "line2": None,
                        "postal_code": None,
                        "state": None,
                    },
                    "email": None,
                    "name": None,
                    "phone": None,
                    "tax_id": None,
                },
                allow_redisplay="unspecified",
            )
            self._store(pm)
            if not chargeable:
                self.declining_cards.add(pm["id"])
            if token_or_id in AUTHENTICATION_CARDS:
                self.authentication_cards.add(pm["id"])
        else:
            pm = self.get(token_or_id, "payment_method", param="payment_method", status=404)
            if pm["customer"] not in (None, customer_id):
                raise StripeApiError(
                    "The payment method is attached to another customer.", param="payment_method"
                )
        pm["customer"] = customer_id
        self._record("payment_method.attached", pm)
        return pm

    def attach_payment_method(self, pm_id: str, params: Params) -> Obj:
        with self.lock:
            if not params.get("customer"):
                raise missing_param("customer")
            with self._clock_of(params["customer"]):
                return self._attach(pm_id, params["customer"])

    def detach_payment_method(self, pm_id: str) -> Obj:
        with self.lock:
            pm = self.get(pm_id, "payment_method", status=404)
            customer_id = pm["customer"]
            if customer_id is None:
                raise StripeApiError("The payment method is not attached to a customer.")
            with self._clock_of(customer_id):
                pm["customer"] = None
                self._record("payment_method.detached", pm, {"customer": customer_id})
                customer = self.objects[customer_id]
                if customer["invoice_settings"]["default_payment_method"] == pm_id:
                    self.update_customer(
                        customer_id, {"invoice_settings": {"default_payment_method": ""}}
                    )
                return pm

    def list_payment_methods(self, params: Params, customer_id: str | None = None) -> Obj:
        with self.lock:
            customer_id = customer_id or params.get("customer")
            if customer_id:
                self.get(customer_id, "customer", param="customer", status=404)
            kind = params.get("type")
            return self.page(
                "payment_method",
                params,
                "/v1/payment_methods",
                lambda p: (
                    p["customer"] is not None
                    and (customer_id is None or p["customer"] == customer_id)
                    and (kind is None or p["type"] == kind)
                ),
            )

    def create_setup_intent(self, params: Params) -> Obj:
        with self.lock, self._clock_of(params.get("customer")):
            customer = params.get("customer")
            if customer:
                self.get(customer, "customer", param="customer")
            intent_id = random_id("seti_")
            automatic = params.get("automatic_payment_methods")
            intent = shaped(
                "setup_intent",
                id=intent_id,
                client_secret=f"{intent_id}_secret_{random_id('', 25)}",
                created=self.now(),
                customer=customer,
                metadata=merge_metadata({}, params.get("metadata")),
                usage=params.get("usage", "off_session"),
                status="requires_payment_method",
                automatic_payment_methods=(
                    {
                        "enabled": as_bool(
                            automatic.get("enabled", False), "automatic_payment_methods"
                        )
                    }
                    if automatic
                    else None
                ),
                payment_method_types=params.get("payment_method_types", ["card"]),
                payment_method=None,
                last_setup_error=None,
                next_action=None,
                latest_attempt=None,
                mandate=None,
                single_use_mandate=None,
                payment_method_configuration_details=None,
                payment_method_options={},
                cancellation_reason=None,
                description=params.get("description"),
                flow_directions=None,
                on_behalf_of=None,
                application=None,
                excluded_payment_method_types=None,
            )
            self._store(intent)
            self._record("setup_intent.created", intent)
            return intent

    def confirm_setup_intent(self, intent_id: str, params: Params) -> Obj:
        with self.lock:
            intent = self.get(intent_id, "setup_intent", status=404)
            if intent["status"] == "succeeded":
                raise StripeApiError(
                    "This SetupIntent has already succeeded.", code="setup_intent_unexpected_state"
                )
            token = params.get("payment_method")
            if not token:
                raise missing_param("payment_method")
            if intent["customer"] is None:
                raise StripeApiError("This SetupIntent has no customer.", param="customer")
            with self._clock_of(intent["customer"]):
                before = copy.deepcopy(intent)
                pm = self._attach(token, intent["customer"])
                intent.update(status="succeeded", payment_method=pm["id"])
                self._record("setup_intent.succeeded", intent, diff(before, intent))
                return intent
