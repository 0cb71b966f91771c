"""Subscriptions and their invoices: create, update items, cancel, list."""

from __future__ import annotations

import copy
from typing import TYPE_CHECKING

from sandbox.stripe_standin.core import (
    Obj,
    Params,
    StandinCore,
    StripeApiError,
    add_interval,
    as_bool,
    as_int,
    diff,
    merge_metadata,
    missing,
    missing_param,
    random_id,
)
from sandbox.stripe_standin.shapes import example, shaped


class Subscriptions(StandinCore):
    """One resource of the stand-in account (``state.StripeState``)."""

    if TYPE_CHECKING:  # defined by another resource of the same account (state.py)

        def _attach(self, token_or_id: str, customer_id: str) -> Obj: ...

        def _new_discounts(
            self, specs: list[Params], customer_id: str, subscription_id: str
        ) -> list[str]: ...

        def _discount_amounts(
            self, discount_ids: list[str], amount: int, currency: str
        ) -> list[Obj]: ...

        def _prorate(self, sub: Obj, before: list[Obj], behavior: str) -> Obj | None: ...

        def _take_pending_items(self, subscription_id: str, invoice_id: str) -> list[Obj]: ...

    def _subscriptions_of(self, customer_id: str) -> list[Obj]:
        return [
            o
            for o in self.objects.values()
            if o.get("object") == "subscription" and o["customer"] == customer_id
        ]

    def _new_item(self, subscription_id: str, spec: Params, start: int, index: int) -> Obj:
        param = f"items[{index}][price]"
        if not spec.get("price"):
            raise missing_param(param)
        price = self.get(spec["price"], "price", param=param)
        if price["recurring"] is None:
            raise StripeApiError("The price must be recurring.", param=param)
        if not price["active"]:
            raise StripeApiError("The price is not active.", param=param)
        quantity = as_int(spec.get("quantity", 1), f"items[{index}][quantity]")
        recurring = price["recurring"]
        plan_template = example("subscription_item")["plan"]
        plan = dict.fromkeys(plan_template)
        plan.update(
            active=price["active"],
            amount=price["unit_amount"],
            amount_decimal=price["unit_amount_decimal"],
            billing_scheme="per_unit",
            created=price["created"],
            currency=price["currency"],
            id=price["id"],
            interval=recurring["interval"],
            interval_count=recurring["interval_count"],
            livemode=False,
            metadata=price["metadata"],
            nickname=price["nickname"],
            object="plan",
            product=price["product"],
            usage_type="licensed",
        )
        return shaped(
            "subscription_item",
            id=random_id("si_", 14),
            created=self.now(),
            price=copy.deepcopy(price),
            plan=plan,
            quantity=quantity,
            subscription=subscription_id,
            metadata={},
            discounts=[],
            tax_rates=[],
            billing_thresholds=None,
            current_period_start=start,
            current_period_end=add_interval(
                start, recurring["interval"], recurring["interval_count"]
            ),
        )

    def _payment_method_for(self, subscription: Obj) -> str | None:
        if subscription["default_payment_method"]:
            return str(subscription["default_payment_method"])
        customer = self.objects[subscription["customer"]]
        default = customer["invoice_settings"]["default_payment_method"]
        return str(default) if default else None

    def create_subscription(self, params: Params) -> Obj:
        with self.lock, self._clock_of(params.get("customer")):
            customer_id = params.get("customer")
            if not customer_id:
                raise missing_param("customer")
            customer = self.get(customer_id, "customer", param="customer")
            specs = params.get("items") or []
            if not specs:
                raise missing_param("items")
            now = self.now()
            trial_days = params.get("trial_period_days")
            trial_end = (
                now + 86_400 * as_int(trial_days, "trial_period_days") if trial_days else None
            )
            sub_id = random_id("sub_")
            items = [self._new_item(sub_id, spec, now, i) for i, spec in enumerate(specs)]
            if trial_end:
                for item in items:
                    item["current_period_end"] = trial_end
            pm_id = params.get("default_payment_method") or None
            if pm_id:
                self.get(pm_id, "payment_method", param="default_payment_method")
            mode = (params.get("billing_mode") or {}).get("type", "classic")
            if mode not in ("classic", "flexible"):
                raise StripeApiError("Invalid billing_mode[type].", param="billing_mode[type]")
            subscription = shaped(
                "subscription",
                id=sub_id,
                created=now,
                start_date=now,
                billing_cycle_anchor=trial_end or now,
                billing_cycle_anchor_config=None,
                billing_mode={"type": mode, "flexible": {} if mode == "flexible" else None},
                customer=customer_id,
                currency=items[0]["price"]["currency"],
                items={
                    "object": "list",
                    "data": items,
                    "has_more": False,
                    "url": f"/v1/subscription_items?subscription={sub_id}",
                },
                status="incomplete",
                cancel_at=None,
                cancel_at_period_end=False,
                canceled_at=None,
                ended_at=None,
                cancellation_details={"comment": None, "feedback": None, "reason": None},
                default_payment_method=pm_id,
                default_source=None,
                description=params.get("description"),
                discounts=self._new_discounts(params.get("discounts") or [], customer_id, sub_id),
                latest_invoice=None,
                metadata=merge_metadata({}, params.get("metadata")),
                next_pending_invoice_item_invoice=None,
                pending_invoice_item_interval=None,
                pending_setup_intent=None,
                pending_update=None,
                pause_collection=None,
                schedule=None,
                test_clock=None,
                transfer_data=None,
                billing_thresholds=None,
                application=None,
                application_fee_percent=None,
                days_until_due=None,
                on_behalf_of=None,
                trial_start=now if trial_end else None,
                trial_end=trial_end,
            )
            invoice = self._new_subscription_invoice(customer, subscription, "subscription_create")
            subscription["latest_invoice"] = invoice["id"]
            if trial_end:
                subscription["status"] = "trialing"
            elif invoice["status"] == "paid":
                subscription["status"] = "active"
            self._store(subscription)
            self._record("customer.subscription.created", subscription)
            self._record_invoice_lifecycle(invoice)
            return subscription

    def _new_subscription_invoice(
        self,
        customer: Obj,
        subscription: Obj,
        reason: str,
        items: list[Obj] | None = None,
        *,
        period_charge: bool = True,
    ) -> Obj:
        """An invoice for the current period of ``items`` (default: all the subscription's;
        none without ``period_charge``) and the subscription's pending invoice items
        (prorations), charged to its payment method after the customer's credit."""
        now = self.now()
        in_trial = subscription["trial_end"] is not None and subscription["trial_end"] > now
        items = items or subscription["items"]["data"]
        invoice_id = random_id("in_")
        lines = []
        for item in items if period_charge else []:
            amount = 0 if in_trial else item["price"]["unit_amount"] * item["quantity"]
            line = example("invoice")["lines"]["data"][0]
            line.update(
                id=random_id("il_"),
                invoice=invoice_id,
                amount=amount,
                currency=item["price"]["currency"],
                description=None,
                discount_amounts=[],
                discounts=[],
                metadata={},
                quantity=item["quantity"],
                subtotal=amount,
                period={"start": item["current_period_start"], "end": item["current_period_end"]},
                subscription=subscription["id"],
                pretax_credit_amounts=[],
                taxes=[],
                parent={
                    "invoice_item_details": None,
                    "subscription_item_details": {
                        "invoice_item": None,
                        "proration": False,
                        "proration_details": None,
                        "subscription": subscription["id"],
                        "subscription_item": item["id"],
                    },
                    "type": "subscription_item_details",
                },
                pricing={
                    "type": "price_details",
                    "unit_amount_decimal": item["price"]["unit_amount_decimal"],
                },
            )
            lines.append(line)
        lines += [
            self._pending_line(pending, invoice_id)
            for pending in self._take_pending_items(subscription["id"], invoice_id)
        ]
        subtotal = sum(line["amount"] for line in lines)
        discounted = self._discount_amounts(
            subscription["discounts"], subtotal, subscription["currency"]
        )
        if discounted and lines:  # one line in the subscriptions the stand-in makes
            lines[0]["discount_amounts"] = discounted
            lines[0]["discounts"] = [d["discount"] for d in discounted]
        total = subtotal - sum(d["amount"] for d in discounted)
        # The customer's credit (a negative balance) pays first; a negative total adds to it.
        starting_balance = customer["balance"]
        due = max(0, total + starting_balance)
        customer["balance"] = min(0, total + starting_balance)
        pm_id = self._payment_method_for(subscription)
        paid = due == 0 or (pm_id is not None and pm_id not in self.declining_cards)
        sequence = self.invoice_counter.get(customer["id"], 0) + 1
        self.invoice_counter[customer["id"]] = sequence
        token = random_id("", 32)
        invoice = shaped(
            "invoice",
            id=invoice_id,
            created=now,
            effective_at=now,
            customer=customer["id"],
            customer_email=customer["email"],
            customer_name=customer["name"],
            customer_address=None,
            customer_phone=None,
            customer_shipping=None,
            account_name=self.business_name,
            amount_due=due,
            amount_paid=due if paid else 0,
            amount_remaining=0 if paid else due,
            amount_overpaid=0,
            attempt_count=0 if due == 0 else 1,
            attempted=due > 0 or paid,
            auto_advance=not paid,
            automatically_finalizes_at=None,
            billing_reason=reason,
            currency=subscription["currency"],
            subtotal=subtotal,
            subtotal_excluding_tax=subtotal,
            total=total,
            total_excluding_tax=total,
            total_discount_amounts=discounted,
            total_pretax_credit_amounts=[],
            total_taxes=[],
            default_payment_method=None,
            default_source=None,
            description=None,
            discounts=[d["discount"] for d in discounted],
            due_date=None,
            ending_balance=customer["balance"],
            starting_balance=starting_balance,
            footer=None,
            from_invoice=None,
            last_finalization_error=None,
            latest_revision=None,
            hosted_invoice_url=f"{self.base_url}/i/{token}",
            invoice_pdf=f"{self.base_url}/i/{token}/pdf",
            lines={
                "object": "list",
                "data": lines,
                "has_more": False,
                "url": f"/v1/invoices/{invoice_id}/lines",
            },
            metadata={},
            next_payment_attempt=None if paid else now + 3 * 86_400,
            number=f"{customer['invoice_prefix']}-{sequence:04d}",
            parent={
                "quote_details": None,
                "subscription_details": {
                    "metadata": subscription["metadata"],
                    "subscription": subscription["id"],
                },
                "type": "subscription_details",
            },
            period_start=items[0]["current_period_start"] if period_charge else now,
            period_end=items[0]["current_period_start"] if period_charge else now,
            receipt_number=None,
            shipping_cost=None,
            shipping_details=None,
            statement_descriptor=None,
            status="paid" if paid else "open",
            status_transitions={
                "finalized_at": now,
                "marked_uncollectible_at": None,
                "paid_at": now if paid else None,
                "voided_at": None,
            },
            subscription=None,
            test_clock=None,
            webhooks_delivered_at=now,
        )
        return self._store(invoice)

    @staticmethod
    def _pending_line(pending: Obj, invoice_id: str) -> Obj:
        """An invoice line for a pending proration item, as Stripe shows it."""
        line: Obj = example("invoice")["lines"]["data"][0]
        details = pending["parent"]["subscription_details"]
        line.update(
            id=random_id("il_"),
            invoice=invoice_id,
            amount=pending["amount"],
            currency=pending["currency"],
            description=pending["description"],
            discount_amounts=[],
            discounts=[],
            metadata={},
            quantity=pending["quantity"],
            subtotal=pending["amount"],
            period=pending["period"],
            subscription=details["subscription"],
            pretax_credit_amounts=[],
            taxes=[],
            parent={
                "invoice_item_details": None,
                "subscription_item_details": {
                    "invoice_item": pending["id"],
                    "proration": True,
                    "proration_details": {"credited_items": None},
                    "subscription": details["subscription"],
                    "subscription_item": details["subscription_item"],
                },
                "type": "subscription_item_details",
            },
            pricing={
                "type": "price_details",
                "unit_amount_decimal": pending["pricing"]["unit_amount_decimal"],
            },
        )
        return line

    def _record_invoice_lifecycle(self, invoice: Obj) -> None:
        """The events of a new invoice: paid, failed, or waiting for 3-D Secure
        (``invoice.payment_action_required``: the card needs the customer, who can
        authenticate on a page such as Checkout's or the hosted invoice page)."""
        self._record("invoice.created", invoice)
        self._record("invoice.finalized", invoice)
        if invoice["status"] == "paid":
            self._record("invoice.paid", invoice)
            self._record("invoice.payment_succeeded", invoice)
        elif self._invoice_method(invoice) in self.authentication_cards:
            self._record("invoice.payment_action_required", invoice)
        else:
            self._record("invoice.payment_failed", invoice)

    def _invoice_method(self, invoice: Obj) -> str | None:
        """The payment method a subscription invoice is charged to."""
        details = invoice["parent"].get("subscription_details") or {}
        subscription = self.objects.get(details.get("subscription") or "")
        return self._payment_method_for(subscription) if subscription is not None else None

    def pay_invoice(self, invoice_id: str, params: Params) -> Obj:
        """``POST /v1/invoices/<id>/pay``: charge an open invoice now, as Stripe's API and
        its hosted invoice page do.

        The card is ``payment_method`` if given (attached to the customer first, as a
        token or one of its own), else the subscription's or the customer's default. Only
        an open invoice can be paid. A decline answers 402 ``card_declined``, counts the
        attempt and records ``invoice.payment_failed``; the invoice stays open. Paid, it
        records ``invoice.paid`` and ``invoice.payment_succeeded``, and a past-due, unpaid
        or incomplete subscription whose latest invoice it is becomes active again
        (``customer.subscription.updated``).
        """
        with self.lock:
            invoice = self.get(invoice_id, "invoice", param="id", status=404)
            with self._clock_of(invoice["customer"]):
                return self._pay_invoice(invoice, params)

    def _pay_invoice(self, invoice: Obj, params: Params, *, authenticated: bool = False) -> Obj:
        """Charge ``invoice`` (see ``pay_invoice``); ``authenticated``: the customer has just
        passed 3-D Secure on a page, so a card that needs it is charged."""
        if invoice["status"] == "paid":
            raise StripeApiError("Invoice is already paid", code="invoice_already_paid")
        if invoice["status"] != "open":
            raise StripeApiError(
                f"You can only pay an open invoice; this one is {invoice['status']}.",
                code="invoice_not_open",
            )
        subscription_id = (invoice["parent"].get("subscription_details") or {}).get("subscription")
        subscription = self.objects.get(subscription_id or "")
        if params.get("payment_method"):
            card = self._attach(str(params["payment_method"]), invoice["customer"])
            method: str | None = card["id"]
        elif subscription is not None:
            method = self._payment_method_for(subscription)
        else:
            default = self.objects[invoice["customer"]]["invoice_settings"]
            method = default["default_payment_method"]
        if method is None:
            raise StripeApiError(
                "This customer has no attached payment source or default payment method.",
                code="invoice_no_payment_method",
            )
        now = self.now()
        before = copy.deepcopy(invoice)
        invoice.update(attempt_count=invoice["attempt_count"] + 1, attempted=True)
        if method in self.authentication_cards and not authenticated:
            self._record("invoice.payment_action_required", invoice, diff(before, invoice))
            raise StripeApiError(
                "This payment requires additional user action before it can be completed "
                "successfully.",
                status=402,
                code="invoice_payment_intent_requires_action",
            )
        if method in self.declining_cards and method not in self.authentication_cards:
            invoice["next_payment_attempt"] = now + 3 * 86_400
            self._record("invoice.payment_failed", invoice, diff(before, invoice))
            raise StripeApiError(
                "Your card was declined.", status=402, type_="card_error", code="card_declined"
            )
        invoice.update(
            status="paid",
            amount_paid=invoice["amount_due"],
            amount_remaining=0,
            auto_advance=False,
            next_payment_attempt=None,
        )
        invoice["status_transitions"]["paid_at"] = now
        changed = diff(before, invoice)
        self._record("invoice.paid", invoice, changed)
        self._record("invoice.payment_succeeded", invoice, changed)
        if (
            subscription is not None
            and subscription["latest_invoice"] == invoice["id"]
            and subscription["status"] in ("past_due", "unpaid", "incomplete")
        ):
            was = copy.deepcopy(subscription)
            subscription["status"] = "active"
            self._record("customer.subscription.updated", subscription, diff(was, subscription))
        return invoice

    def update_subscription(self, sub_id: str, params: Params) -> Obj:
        with self.lock:
            sub = self.get(sub_id, "subscription", status=404)
            with self._clock_of(sub["customer"]):
                return self._update_subscription(sub, params)

    def _update_subscription(self, sub: Obj, params: Params) -> Obj:
        before = copy.deepcopy(sub)
        if sub["status"] in ("canceled", "incomplete_expired") and set(params) - {
            "cancellation_details",
            "metadata",
            "proration_behavior",
            "expand",
        }:
            raise StripeApiError(
                "A canceled subscription can only update its cancellation_details and metadata."
            )
        invoice = None
        if "items" in params:
            self._update_items(sub, params["items"])
            invoice = self._prorate(
                sub,
                before["items"]["data"],
                params.get("proration_behavior") or "create_prorations",
            )
        if "cancel_at_period_end" in params:
            ending = as_bool(params["cancel_at_period_end"], "cancel_at_period_end")
            sub["cancel_at_period_end"] = ending
            sub["cancel_at"] = (
                max(i["current_period_end"] for i in sub["items"]["data"]) if ending else None
            )
            sub["canceled_at"] = self.now() if ending else None
        if "cancel_at" in params:
            value = params["cancel_at"]
            sub["cancel_at"] = None if value == "" else as_int(value, "cancel_at")
            sub["cancel_at_period_end"] = False
            sub["canceled_at"] = self.now() if sub["cancel_at"] else None
        self._apply_cancellation_details(sub, params)
        if "metadata" in params:
            sub["metadata"] = merge_metadata(sub["metadata"], params["metadata"])
        if "default_payment_method" in params:
            pm_id = params["default_payment_method"] or None
            if pm_id:
                self.get(pm_id, "payment_method", param="default_payment_method")
            sub["default_payment_method"] = pm_id
        if sub != before:
            self._record("customer.subscription.updated", sub, diff(before, sub))
        if invoice is not None:
            self._record_invoice_lifecycle(invoice)
        return sub

    def _update_items(self, sub: Obj, specs: list[Params]) -> None:
        items: list[Obj] = sub["items"]["data"]
        now = self.now()
        for index, spec in enumerate(specs):
            if spec.get("id"):
                matches = [i for i in items if i["id"] == spec["id"]]
                if not matches:
                    raise missing("subscription_item", spec["id"], f"items[{index}][id]")
                item = matches[0]
                if as_bool(spec.get("deleted", False), f"items[{index}][deleted]"):
                    items.remove(item)
                    continue
                if spec.get("price") and spec["price"] != item["price"]["id"]:
                    replacement = self._new_item(
                        sub["id"], spec, item["current_period_start"], index
                    )
                    if (
                        replacement["price"]["recurring"]["interval"]
                        == item["price"]["recurring"]["interval"]
                    ):
                        replacement["current_period_end"] = item["current_period_end"]
                    else:  # an interval change restarts the billing period
                        replacement = self._new_item(sub["id"], spec, now, index)
                    replacement["id"] = item["id"]
                    replacement["quantity"] = as_int(
                        spec.get("quantity", item["quantity"]), f"items[{index}][quantity]"
                    )
                    items[items.index(item)] = replacement
                elif "quantity" in spec:
                    item["quantity"] = as_int(spec["quantity"], f"items[{index}][quantity]")
            else:
                items.append(self._new_item(sub["id"], spec, now, index))
        if not items:
            raise StripeApiError("A subscription needs at least one item.", param="items")

    @staticmethod
    def _apply_cancellation_details(sub: Obj, params: Params) -> None:
        for field in ("comment", "feedback"):
            if field in (params.get("cancellation_details") or {}):
                sub["cancellation_details"][field] = params["cancellation_details"][field] or None

    def cancel_subscription(self, sub_id: str, params: Params) -> Obj:
        with self.lock:
            sub = self.get(sub_id, "subscription", status=404)
            if sub["status"] == "canceled":
                raise StripeApiError(
                    "This subscription is already canceled.", status=400, code="resource_missing"
                )
            with self._clock_of(sub["customer"]):
                return self._cancel_subscription(sub, params)

    def _cancel_subscription(self, sub: Obj, params: Params) -> Obj:
        before = copy.deepcopy(sub)
        now = self.now()
        sub.update(status="canceled", canceled_at=now, ended_at=now)
        self._apply_cancellation_details(sub, params)
        sub["cancellation_details"]["reason"] = "cancellation_requested"
        self._record("customer.subscription.deleted", sub, diff(before, sub))
        return sub

    def list_subscriptions(self, params: Params) -> Obj:
        with self.lock:
            customer = params.get("customer")
            status = params.get("status")
            price = params.get("price")

            def keep(s: Obj) -> bool:
                if customer is not None and s["customer"] != customer:
                    return False
                if price is not None and all(i["price"]["id"] != price for i in s["items"]["data"]):
                    return False
                if status is None:  # Stripe's default: everything but canceled
                    return bool(s["status"] != "canceled")
                return bool(status == "all" or s["status"] == status)

            return self.page("subscription", params, "/v1/subscriptions", keep)

    def list_invoices(self, params: Params) -> Obj:
        with self.lock:
            customer = params.get("customer")
            subscription = params.get("subscription")
            status = params.get("status")
            return self.page(
                "invoice",
                params,
                "/v1/invoices",
                lambda i: (
                    (customer is None or i["customer"] == customer)
                    and (
                        subscription is None
                        or i["parent"]["subscription_details"]["subscription"] == subscription
                    )
                    and (status is None or i["status"] == status)
                ),
            )
