"""Per-customer clocks, like Stripe's test clocks: period ends renew or cancel in time order."""

from __future__ import annotations

import copy
from typing import TYPE_CHECKING

from sandbox.stripe_standin.core import (
    _FROZEN_AT,
    BILLED_STATUSES,
    MAX_PERIOD_ENDS,
    Obj,
    StandinCore,
    StripeApiError,
    add_interval,
    diff,
)


class Clocks(StandinCore):
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

        def _subscriptions_of(self, customer_id: str) -> list[Obj]: ...

    def advance_clock(
        self, customer_id: str, *, seconds: int | None = None, to: int | None = None
    ) -> Obj:
        """Move ``customer_id``'s clock forward by ``seconds`` or ``to`` a moment, billing
        every period end on the way in time order (see the module docstring).

        Returns ``{"customer", "previous_time", "time", "period_ends", "events"}``.
        """
        with self.lock:
            self.get(customer_id, "customer", status=404)
            current = self.customer_now(customer_id)
            if (seconds is None) == (to is None):
                raise StripeApiError("Pass exactly one of seconds or to.")
            target = current + seconds if seconds is not None else int(to or 0)
            if target < current:
                raise StripeApiError(
                    "A clock can only move forward.", param="seconds" if seconds else "to"
                )
            first_change = len(self.changes)
            period_ends = 0
            while (due := self._next_period_end(customer_id, target)) is not None:
                period_ends += 1
                if period_ends > MAX_PERIOD_ENDS:
                    raise StripeApiError(
                        f"More than {MAX_PERIOD_ENDS} period ends: advance in smaller steps."
                    )
                moment, sub = due
                token = _FROZEN_AT.set(moment)
                try:
                    self._end_period(sub, moment)
                finally:
                    _FROZEN_AT.reset(token)
            self.clock_offsets[customer_id] = target - int(self.clock())
            return {
                "customer": customer_id,
                "previous_time": current,
                "time": target,
                "period_ends": period_ends,
                "events": [c["type"] for c in self.changes[first_change:]],
            }

    def _next_period_end(self, customer_id: str, until: int) -> tuple[int, Obj] | None:
        """The customer's earliest subscription period end (or ``cancel_at``) at or before
        ``until``."""
        due: list[tuple[int, int, Obj]] = []
        for sub in self._subscriptions_of(customer_id):
            if sub["status"] not in BILLED_STATUSES:
                continue
            moments = [i["current_period_end"] for i in sub["items"]["data"]]
            if sub["cancel_at"] is not None:
                moments.append(sub["cancel_at"])
            moment = min(moments)
            if moment <= until:
                due.append((moment, self.seq[sub["id"]], sub))
        if not due:
            return None
        moment, _, sub = min(due, key=lambda d: d[:2])
        return moment, sub

    def _end_period(self, sub: Obj, moment: int) -> None:
        """What happens at ``moment``, a period end or the ``cancel_at`` of ``sub``."""
        before = copy.deepcopy(sub)
        if sub["cancel_at"] is not None and sub["cancel_at"] <= moment:
            sub.update(status="canceled", ended_at=moment, canceled_at=sub["canceled_at"] or moment)
            sub["cancellation_details"]["reason"] = "cancellation_requested"
            self._record("customer.subscription.deleted", sub, diff(before, sub))
            return
        due = [i for i in sub["items"]["data"] if i["current_period_end"] <= moment]
        for item in due:
            recurring = item["price"]["recurring"]
            item["current_period_start"] = item["current_period_end"]
            item["current_period_end"] = add_interval(
                item["current_period_start"], recurring["interval"], recurring["interval_count"]
            )
        if sub["status"] == "trialing":
            sub["status"] = "active"
        invoice = self._new_subscription_invoice(
            self.objects[sub["customer"]], sub, "subscription_cycle", due
        )
        sub["latest_invoice"] = invoice["id"]
        self._record("customer.subscription.updated", sub, diff(before, sub))
        self._record_invoice_lifecycle(invoice)
        status = "active" if invoice["status"] == "paid" else "past_due"
        if sub["status"] != status:
            before = copy.deepcopy(sub)
            sub["status"] = status
            self._record("customer.subscription.updated", sub, diff(before, sub))
