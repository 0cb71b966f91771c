"""Customers: create, update (default payment method, address, tax ids), delete, list."""

from __future__ import annotations

import copy
from typing import TYPE_CHECKING

from sandbox.stripe_standin.core import (
    Obj,
    Params,
    StandinCore,
    StripeApiError,
    _ids,
    diff,
    merge_metadata,
    random_id,
)
from sandbox.stripe_standin.shapes import shaped


class Customers(StandinCore):
    """One resource of the stand-in account (``state.StripeState``)."""

    if TYPE_CHECKING:  # defined by another resource of the same account (state.py)

        def _attach(self, token_or_id: str, customer_id: str) -> Obj: ...

        def _subscriptions_of(self, customer_id: str) -> list[Obj]: ...

        def cancel_subscription(self, sub_id: str, params: Params) -> Obj: ...

    def create_customer(self, params: Params) -> Obj:
        with self.lock:
            customer = shaped(
                "customer",
                id=random_id("cus_", 14),
                created=self.now(),
                email=params.get("email"),
                name=params.get("name"),
                description=params.get("description"),
                phone=params.get("phone"),
                metadata=merge_metadata({}, params.get("metadata")),
                address=None,
                shipping=None,
                discount=None,
                currency=None,
                invoice_prefix="".join(_ids.choices("0123456789ABCDEF", k=8)),
                invoice_settings={
                    "custom_fields": None,
                    "default_payment_method": None,
                    "footer": None,
                    "rendering_options": None,
                },
                preferred_locales=[],
            )
            self._store(customer)
            self._record("customer.created", customer)
            if token := params.get("payment_method"):
                self._attach(token, customer["id"])
            default = (params.get("invoice_settings") or {}).get("default_payment_method")
            if default:
                self.update_customer(
                    customer["id"], {"invoice_settings": {"default_payment_method": default}}
                )
            return customer

    def update_customer(self, customer_id: str, params: Params) -> Obj:
        with self.lock, self._clock_of(customer_id):
            customer = self.get(customer_id, "customer", status=404)
            before = copy.deepcopy(customer)
            for field in ("email", "name", "description", "phone"):
                if field in params:
                    customer[field] = params[field] or None
            if "metadata" in params:
                customer["metadata"] = merge_metadata(customer["metadata"], params["metadata"])
            settings = params.get("invoice_settings") or {}
            if "default_payment_method" in settings:
                pm_id = settings["default_payment_method"] or None
                if pm_id is not None:
                    pm = self.get(
                        pm_id, "payment_method", param="invoice_settings[default_payment_method]"
                    )
                    if pm["customer"] != customer_id:
                        raise StripeApiError(
                            "The payment method must be attached to the customer first.",
                            param="invoice_settings[default_payment_method]",
                        )
                customer["invoice_settings"]["default_payment_method"] = pm_id
            if customer != before:
                self._record("customer.updated", customer, diff(before, customer))
            return customer

    def delete_customer(self, customer_id: str) -> Obj:
        with self.lock, self._clock_of(customer_id):
            customer = self.get(customer_id, "customer", status=404)
            for sub in self._subscriptions_of(customer_id):
                if sub["status"] != "canceled":
                    self.cancel_subscription(sub["id"], {})
            customer["deleted"] = True
            self._record("customer.deleted", {k: v for k, v in customer.items() if k != "deleted"})
            return shaped("deleted_customer", id=customer_id, deleted=True)

    def list_customers(self, params: Params) -> Obj:
        with self.lock:
            email = params.get("email")
            return self.page(
                "customer",
                params,
                "/v1/customers",
                lambda c: not c.get("deleted") and (email is None or c["email"] == email),
            )
