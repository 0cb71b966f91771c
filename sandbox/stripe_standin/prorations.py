"""Prorations when a subscription's items change, as Stripe computes and bills them.

Stripe's rules (the API reference of ``POST /v1/subscriptions/<id>``, and Stripe's
"Prorations" guide): changing an item's price or quantity mid-period credits the unused
time on the old one and charges the remaining time on the new one, both to the second
(``remaining / period length`` of each amount, rounded to the cent). With
``proration_behavior``:

- ``create_prorations`` (the default): the two amounts become pending invoice items
  (``invoiceitem.created``, ``proration: true``) that the next invoice (the renewal)
  carries beside the new period's charge;
- ``always_invoice``: they are invoiced and charged at once;
- ``none``: nothing is prorated; the new price applies from the next period.

A change of billing interval (monthly to yearly) is billed at once whatever the
behaviour: the unused time is credited and the new period starts now, charged in full
(unless the behaviour is ``none``, which drops the credit). A trialing subscription is
not prorated: nothing was charged. An invoice whose credits exceed its charges costs
nothing and leaves the rest on the customer's balance, which later invoices use first.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from sandbox.stripe_standin.core import (
    Obj,
    StandinCore,
    StripeApiError,
    add_interval,
    random_id,
)
from sandbox.stripe_standin.shapes import shaped

PRORATION_BEHAVIORS = ("create_prorations", "always_invoice", "none")


class Prorations(StandinCore):
    """One resource of the stand-in account (``state.StripeState``)."""

    if TYPE_CHECKING:  # defined by another resource of the same account (state.py)

        def _new_subscription_invoice(
            self,
            customer: Obj,
            subscription: Obj,
            reason: str,
            items: list[Obj] | None = None,
            *,
            period_charge: bool = True,
        ) -> Obj: ...

        def _record_invoice_lifecycle(self, invoice: Obj) -> None: ...

    def proration_lines(self, before: list[Obj], after: list[Obj], now: int) -> list[Obj]:
        """``[{"item", "price", "quantity", "amount", "description", "period"}]``: the
        credit for each changed or removed item's unused time (negative) and the charge
        for each changed or added item's remaining time, within its current period."""
        lines: list[Obj] = []
        now_items = {item["id"]: item for item in after}
        for old in before:
            new = now_items.get(old["id"])
            if new is not None and (new["price"]["id"], new["quantity"]) == (
                old["price"]["id"],
                old["quantity"],
            ):
                continue
            share = _remaining_share(old, now)
            if share > 0:
                lines.append(self._line(old, -share, "Unused time on", now))
        before_ids = {item["id"]: item for item in before}
        for new in after:
            previous = before_ids.get(new["id"])
            if previous is not None and (new["price"]["id"], new["quantity"]) == (
                previous["price"]["id"],
                previous["quantity"],
            ):
                continue
            if previous is not None and _interval(previous) != _interval(new):
                continue  # a new period starts now: charged in full, not prorated
            share = _remaining_share(new, now)
            if share > 0:
                lines.append(self._line(new, share, "Remaining time on", now))
        return lines

    def _line(self, item: Obj, amount: int, words: str, now: int) -> Obj:
        product = self.objects.get(item["price"]["product"]) or {}
        name = product.get("name") or item["price"]["product"]
        when = datetime.fromtimestamp(now, UTC).strftime("%-d %b %Y")
        return {
            "item": item["id"],
            "price": item["price"],
            "quantity": item["quantity"],
            "amount": amount,
            "description": (
                f"{words} {item['quantity']} \N{MULTIPLICATION SIGN} {name} after {when}"
            ),
            "period": {"start": now, "end": item["current_period_end"]},
        }

    def preview_change(
        self, sub: Obj, price_id: str, quantity: int, behavior: str
    ) -> ChangePreview:
        """The bill of moving ``sub``'s single item to ``quantity`` of ``price_id`` now,
        by the same rules as the change itself (without the customer's credit)."""
        with self.lock, self._clock_of(sub["customer"]):
            now = self.now()
            (item,) = sub["items"]["data"]
            price = self.get(price_id, "price", param="price")
            after = copy.deepcopy(item) | {"price": price, "quantity": quantity}
            full = int(price["unit_amount"] or 0) * quantity
            restarted = _interval(item) != _interval(after)
            if restarted:
                recurring = price["recurring"]
                after["current_period_start"] = now
                after["current_period_end"] = add_interval(
                    now, recurring["interval"], recurring["interval_count"]
                )
            trialing = sub["status"] == "trialing"
            lines = (
                [] if behavior == "none" or trialing else self.proration_lines([item], [after], now)
            )
            prorated = sum(line["amount"] for line in lines)
            if trialing:
                return ChangePreview([], 0, item["current_period_end"], full)
            if restarted:
                return ChangePreview(
                    lines, max(0, full + prorated), after["current_period_end"], full
                )
            if behavior == "always_invoice":
                return ChangePreview(lines, max(0, prorated), item["current_period_end"], full)
            return ChangePreview(lines, 0, item["current_period_end"], max(0, full + prorated))

    def _prorate(self, sub: Obj, before: list[Obj], behavior: str) -> Obj | None:
        """Bill the change of ``sub``'s items from ``before`` as ``behavior`` says; the
        invoice made at once, if any (see the module docstring)."""
        if behavior not in PRORATION_BEHAVIORS:
            raise StripeApiError("Invalid proration_behavior.", param="proration_behavior")
        if sub["status"] == "trialing":
            return None
        now = self.now()
        after = sub["items"]["data"]
        restarted = [
            item
            for item in after
            if any(o["id"] == item["id"] and _interval(o) != _interval(item) for o in before)
        ]
        if behavior != "none":
            for line in self.proration_lines(before, after, now):
                self._pending_item(sub, line)
        if restarted:
            sub["billing_cycle_anchor"] = now
            return self._invoice_now(sub, "subscription_update", period_charge=True)
        if behavior == "always_invoice":
            return self._invoice_now(sub, "subscription_update", period_charge=False)
        return None

    def _invoice_now(self, sub: Obj, reason: str, *, period_charge: bool) -> Obj:
        """Invoice the pending items (and the new period, if it restarted) now and charge
        it; a declined charge leaves the subscription past due, as a renewal's does."""
        invoice = self._new_subscription_invoice(
            self.objects[sub["customer"]], sub, reason, period_charge=period_charge
        )
        sub["latest_invoice"] = invoice["id"]
        if invoice["status"] != "paid":
            sub["status"] = "past_due"
        return invoice

    def _pending_item(self, sub: Obj, line: Obj) -> Obj:
        item = shaped(
            "invoiceitem",
            id=random_id("ii_"),
            amount=line["amount"],
            currency=line["price"]["currency"],
            customer=sub["customer"],
            date=self.now(),
            description=line["description"],
            discountable=False,
            discounts=[],
            invoice=None,
            livemode=False,
            metadata={},
            period=line["period"],
            proration=True,
            quantity=line["quantity"],
            quantity_decimal=str(line["quantity"]),
            tax_rates=[],
            test_clock=None,
            net_amount=line["amount"],
            customer_account=None,
            parent={
                "subscription_details": {
                    "subscription": sub["id"],
                    "subscription_item": line["item"],
                },
                "type": "subscription_details",
            },
            pricing={
                "type": "price_details",
                "price_details": {
                    "price": line["price"]["id"],
                    "product": line["price"]["product"],
                },
                "unit_amount_decimal": line["price"]["unit_amount_decimal"],
            },
        )
        self._store(item)
        self._record("invoiceitem.created", item)
        return item

    def _take_pending_items(self, subscription_id: str, invoice_id: str) -> list[Obj]:
        """The subscription's pending invoice items, now on ``invoice_id``."""
        pending = [
            o
            for o in self.objects.values()
            if o.get("object") == "invoiceitem"
            and o["invoice"] is None
            and o["parent"]["subscription_details"]["subscription"] == subscription_id
        ]
        for item in pending:
            item["invoice"] = invoice_id
        return [copy.deepcopy(item) for item in pending]


def _interval(item: Obj) -> tuple[str, int]:
    recurring = item["price"]["recurring"]
    return recurring["interval"], recurring["interval_count"]


def _remaining_share(item: Obj, now: int) -> int:
    """The item's full amount times the unused share of its period, to the cent."""
    start, end = int(item["current_period_start"]), int(item["current_period_end"])
    if end <= now or end <= start:
        return 0
    full = int(item["price"]["unit_amount"] or 0) * int(item["quantity"])
    return round(full * (end - max(now, start)) / (end - start))


@dataclass(frozen=True)
class ChangePreview:
    """What a plan change will cost, as the portal's confirm page shows it: the
    proration lines, what is charged today, and the next invoice (date and amount)."""

    lines: list[Obj]
    due_today: int
    next_date: int
    next_amount: int
